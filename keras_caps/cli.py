"""The shared `main()` of the command-line programs (train.py, python -m export)."""

import sys

from absl import app, flags, logging


def absl_main(run, expected_errors, takes_args=False):
    """An absl `main(argv)` that calls `run(flags.FLAGS)` (`run(flags.FLAGS, args)`
    with `takes_args`, for programs that take positional arguments).

    `expected_errors()` returns the exception types that mean bad input; they
    end the program with one line on stderr and exit status 1, no traceback.
    It is called only when needed, so `--help` does not import TensorFlow.
    """

    def main(argv):
        logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines drown the progress output
        if len(argv) > 1 and not takes_args:
            raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
        try:
            run(flags.FLAGS, argv[1:]) if takes_args else run(flags.FLAGS)
        except Exception as error:
            if not isinstance(error, expected_errors()):
                raise
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)

    return main
