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


def absl_main(run, expected_errors, takes_args=False, verbose=lambda flag_values: False, flag_values=None):
    """An absl `main(argv)` that calls `run(flag_values)` (`run(flag_values, args)`
    with `takes_args`, for programs that take positional arguments); `flag_values`
    is absl's `flags.FLAGS` unless given (a test's own `flags.FlagValues`).

    `expected_errors()` returns the exception types that mean bad input; they
    end the program with one line on stderr and exit status 1, no traceback,
    with the library's argument names written as this program's flags.
    It is called only when needed, so `--help` does not import TensorFlow.
    `verbose(flag_values)` says whether TensorFlow's own logs are wanted.
    """
    values = flags.FLAGS if flag_values is None else flag_values

    def main(argv):
        quiet_logs(verbose(values))
        if len(argv) > 1 and not takes_args:
            raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
        try:
            run(values, argv[1:]) if takes_args else run(values)
        except Exception as error:
            if not isinstance(error, expected_errors()):
                raise
            print(f"error: {flag_names(str(error), set(values))}", file=sys.stderr)
            sys.exit(1)

    return main
