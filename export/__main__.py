"""python -m export --model runs/capsnet/best.keras --out dist/ [--data_dir DIR]

The command line of `keras_caps.export.pipeline.export`: each flag is an
`ExportConfig` field of the same name, its help the field's.

Writes dist/saved_model/, dist/capsnet_{float32,float16,dynamic_int8,int8}.tflite and
dist/report.{json,md}: size, test accuracy, agreement with the Keras model and
batch-1 latency in the LiteRT interpreter, for every file. The int8 file also runs
in TFLite Micro: its smallest tensor arena, latency and agreement with LiteRT, and
(--c_array) dist/capsnet_int8.{cc,h} for firmware.
"""

import os
import sys

# TensorFlow reads its C++ log level when it loads: its logs and the converter's only with --verbose.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if "--verbose" in sys.argv else "3")

from absl import app, flags

from keras_caps.cli import config_values, define_config_flags
from keras_caps.export.pipeline import ExportConfig


def define_flags(fv=flags.FLAGS):
    """Defines the exporter's flags on `fv`: one per `ExportConfig` field (its name, default
    and help), and --verbose."""
    define_config_flags(ExportConfig, fv)
    flags.DEFINE_bool("verbose", False, "Also show TensorFlow's own logs and the TFLite converter's.", flag_values=fv)
    flags.mark_flag_as_required("model", flag_values=fv)


def main(flag_values):
    from keras_caps.export.pipeline import export

    return export(ExportConfig(**config_values(ExportConfig, flag_values)))


def _expected_errors():
    from keras_caps.data.idx import DataError
    from keras_caps.export.errors import ExportError

    return (ExportError, DataError, ValueError, OSError)


def cli_main(flag_values=flags.FLAGS):
    """The absl `main(argv)` of this program, on `flag_values` as `define_flags` left them."""
    from keras_caps.cli import absl_main

    return absl_main(main, _expected_errors, verbose=lambda f: f.verbose, flag_values=flag_values)


if __name__ == "__main__":
    define_flags()
    app.run(cli_main())
