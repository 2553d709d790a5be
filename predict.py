"""Classify image files with a trained CapsNet: .keras, preset, SavedModel folder or .tflite.

    python predict.py --model dist/capsnet_int8.tflite a.png b.jpg
    python predict.py --model mnist_micro my_digit.png      # a preset shipped in the package
    python predict.py --model runs/capsnet/best.keras photos/   # every image under a folder

Prints one line per image: the file name, the predicted class and its score
(the capsule length); `--format csv` writes CSV instead, for programs. Any size
or colour mode is accepted (see `keras_caps.data.images.to_model_input`). A
missing or unreadable file gets one line on stderr naming it; the others are
still classified; the exit status is 1.
Images go to the model 64 at a time (`--batch_size`), so a folder of many is
classified at the model's batch speed, not one call per image. The work is
`keras_caps.apps.predict.predict_files`.
"""

import os
import sys

# TensorFlow reads its C++ log level when it loads: its start-up lines only with --verbose.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if "--verbose" in sys.argv else "3")

from absl import app, flags


def define_flags(fv=flags.FLAGS):
    """Defines predict.py's flags on `fv`."""
    flags.DEFINE_string(
        "model",
        None,
        "A .keras CapsNet, a preset (a shipped name such as mnist_micro, or a run's preset/ folder), a "
        "SavedModel folder from `python -m export`, or a .tflite file.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "batch_size",
        64,
        "Images given to the model at once: more is faster on a large folder and holds more in memory.",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "format",
        "text",
        ["text", "csv"],  # keras_caps.apps.predict.FORMATS, not imported here: --help stays quick
        "text: a line per image (file, class id, score, class name). csv: a header, then a row per image, "
        "quoted where a file or class name holds a comma; for programs and spreadsheets.",
        flag_values=fv,
    )
    flags.DEFINE_bool("verbose", False, "Also show TensorFlow's own logs.", flag_values=fv)
    flags.mark_flag_as_required("model", flag_values=fv)


def main(flag_values, files):
    from keras_caps.apps.predict import predict_files

    if not files:
        raise app.UsageError("Name at least one image file or folder.")
    if predict_files(flag_values.model, files, batch_size=flag_values.batch_size, output_format=flag_values.format):
        sys.exit(1)


def _expected_errors():
    from keras_caps.models.files import ModelFileError

    return (ModelFileError,)


def cli_main(flag_values=flags.FLAGS):
    """The absl `main(argv)` of this program, on `flag_values` as `define_flags` left them."""
    from keras_caps.cli import absl_main

    return absl_main(main, _expected_errors, takes_args=True, verbose=lambda f: f.verbose, flag_values=flag_values)


if __name__ == "__main__":
    define_flags()
    app.run(cli_main())
