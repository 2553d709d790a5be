"""What the command-line programs share: quiet start-up and the `main()` wrapper."""

import re
import sys

from absl import app, flags, logging


def quiet_logs(verbose=False):
    """absl's INFO and WARNING lines (TensorFlow's, TFDS's, the converter's) only when `verbose`.

    TensorFlow's C++ logs follow TF_CPP_MIN_LOG_LEVEL, which TensorFlow reads as
    it loads: each program sets it from its own flag before importing keras_caps.
    """
    logging.set_verbosity(logging.INFO if verbose else logging.ERROR)


def flag_names(message, names):
    """`message` with each backticked argument that is one of `names` written as its flag, `--name`."""
    return re.sub(r"`(\w+)`", lambda m: f"--{m.group(1)}" if m.group(1) in names else m.group(0), message)


def absl_main(run, expected_errors, takes_args=False, verbose=lambda flag_values: False):
    """An absl `main(argv)` that calls `run(flags.FLAGS)` (`run(flags.FLAGS, args)`
    with `takes_args`, for programs that take positional arguments).

    `expected_errors()` returns the exception types that mean bad input; they
    end the program with one line on stderr and exit status 1, no traceback,
    with the library's argument names written as this program's flags.
    It is called only when needed, so `--help` does not import TensorFlow.
    `verbose(FLAGS)` says whether TensorFlow's own logs are wanted.
    """

    def main(argv):
        quiet_logs(verbose(flags.FLAGS))
        if len(argv) > 1 and not takes_args:
            raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
        try:
            run(flags.FLAGS, argv[1:]) if takes_args else run(flags.FLAGS)
        except Exception as error:
            if not isinstance(error, expected_errors()):
                raise
            print(f"error: {flag_names(str(error), set(flags.FLAGS))}", file=sys.stderr)
            sys.exit(1)

    return main
