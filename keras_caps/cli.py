"""What the command-line programs share: flags made from a config's fields, quiet
start-up and the `main()` wrapper."""

import contextlib
import dataclasses
import re
import shlex
import sys
import types

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


class _FlagNamesStream:
    """A text stream writing to `stream` with the library's backticked argument names as flags
    (`flag_names`); everything else (flush, isatty, fileno, ...) is the stream's own."""

    def __init__(self, stream, names):
        self._stream, self._names = stream, names

    def write(self, text):
        return self._stream.write(flag_names(text, self._names))

    def __getattr__(self, name):
        return getattr(self._stream, name)


def absl_main(run, expected_errors, takes_args=False, verbose=lambda flag_values: False, flag_values=None):
    """An absl `main(argv)` that calls `run(flag_values)` (`run(flag_values, args)`
    with `takes_args`, for programs that take positional arguments); `flag_values`
    is absl's `flags.FLAGS` unless given (a test's own `flags.FlagValues`).

    `expected_errors()` returns the exception types that mean bad input; they
    end the program with one line on stderr and exit status 1, no traceback.
    In those lines and in what the library prints, its backticked argument
    names are written as this program's flags (`cache` as --cache).
    It is called only when needed, so `--help` does not import TensorFlow.
    `verbose(flag_values)` says whether TensorFlow's own logs are wanted.
    """
    values = flags.FLAGS if flag_values is None else flag_values

    def main(argv):
        quiet_logs(verbose(values))
        if len(argv) > 1 and not takes_args:
            raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
        try:
            with contextlib.redirect_stdout(_FlagNamesStream(sys.stdout, set(values))):
                run(values, argv[1:]) if takes_args else run(values)
        except Exception as error:
            if not isinstance(error, expected_errors()):
                raise
            print(f"error: {flag_names(str(error), set(values))}", file=sys.stderr)
            sys.exit(1)

    return main


def _base_type(annotation):
    """`int` of `int | None`, and so on."""
    if isinstance(annotation, types.UnionType):
        (base,) = [t for t in annotation.__args__ if t is not type(None)]
        return base
    return annotation


def define_config_flags(config_class, flag_values, skip=()):
    """One flag per field of the dataclass `config_class` (but those in `skip`), of
    the field's name, default and `help` metadata: an enum where the field has
    `choices`, a string where it has a `parse` function, a list for a tuple, else
    of the field's type. They are the calling program's flags (its `--help` lists them)."""
    caller = sys._getframe(1).f_globals.get("__name__")
    module = sys.argv[0] if caller == "__main__" else caller
    for field in dataclasses.fields(config_class):
        if field.name in skip:
            continue
        kind, meta = _base_type(field.type), field.metadata
        default = field.default
        common = {"help": meta["help"], "flag_values": flag_values, "module_name": module}
        if meta.get("parse") is not None:
            flags.DEFINE_string(field.name, None, **common)
        elif meta.get("choices"):
            flags.DEFINE_enum(field.name, default, [c for c in meta["choices"] if c is not None], **common)
        elif kind is tuple:
            flags.DEFINE_list(field.name, None if default is None else list(default), **common)
        else:
            define = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float}
            define.get(kind, flags.DEFINE_string)(field.name, default, **common)


def config_values(config_class, flag_values, skip=()):
    """The keyword arguments of `config_class` that its flags (`define_config_flags`) hold."""
    values = {}
    for field in dataclasses.fields(config_class):
        if field.name in skip:
            continue
        value = flag_values[field.name].value
        parse = field.metadata.get("parse")
        values[field.name] = parse(value) if parse is not None and value is not None else value
    return values


def given_flags(config_class, flag_values, program):
    """`program` and the flags of `config_class`'s fields given on its command line, as a
    shell would take them back (each as absl writes it)."""
    names = [f.name for f in dataclasses.fields(config_class)]
    return shlex.join([*program.split(), *(flag_values[n].serialize() for n in names if flag_values[n].present)])
