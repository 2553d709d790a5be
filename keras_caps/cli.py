"""The shared `main()` of the command-line programs (train.py, python -m export)."""

import sys

from absl import app, flags, logging


def absl_main(run, expected_errors):
    """An absl `main(argv)` that calls `run(flags.FLAGS)`.

    `expected_errors()` returns the exception types that mean bad input; they
    end the program with one line on stderr and exit status 1, no traceback.
    It is called only when needed, so `--help` does not import TensorFlow.
    """

    def main(argv):
        logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines drown the progress output
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
        try:
            run(flags.FLAGS)
        except Exception as error:
            if not isinstance(error, expected_errors()):
                raise
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)

    return main
