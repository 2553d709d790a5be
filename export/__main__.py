"""python -m export --model runs/capsnet/best.keras --out dist/ [--data_dir DIR]

The command line of `keras_caps.export.pipeline.export` (each flag is an
`ExportConfig` field of the same name).

Writes dist/saved_model/, dist/capsnet_{float32,float16,dynamic_int8,int8}.tflite and
dist/report.{json,md}: size, test accuracy, agreement with the Keras model and
batch-1 latency in the LiteRT interpreter, for every file. The int8 file also runs
in TFLite Micro: its smallest tensor arena, latency and agreement with LiteRT, and
(--c_array) dist/capsnet_int8.{cc,h} for firmware.
"""

import dataclasses
import os
import sys

# TensorFlow reads its C++ log level when it loads: its logs and the converter's only with --verbose.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if "--verbose" in sys.argv else "3")

from absl import app, flags

from keras_caps.export.targets import CHOICES
from keras_caps.export.tflite import VARIANTS


def define_flags(fv=flags.FLAGS):
    """Defines the exporter's flags on `fv`: one per `ExportConfig` field, whose checks
    and messages are the values' (naming these flags: keras_caps.cli.flag_names)."""
    flags.DEFINE_string(
        "model",
        None,
        "A .keras CapsNet saved by train.py or model.save, or a preset (a shipped name such as mnist_micro, "
        "or a run's preset/ folder).",
        flag_values=fv,
    )
    flags.DEFINE_string("out", "dist", "Output folder.", flag_values=fv)
    flags.DEFINE_string("dataset", "mnist", "TFDS data set for calibration and the accuracy report.", flag_values=fv)
    flags.DEFINE_string(
        "data_dir",
        None,
        "Folder with MNIST-format IDX files, or an image folder with one sub-folder per class (as train.py "
        "reads it, at the model's size and channels), instead of TFDS.",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "test_split",
        None,
        "A single image tree's test share, as given to train.py (unset: 0.2); the same images are held out.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "target",
        "auto",
        list(CHOICES),
        "What the files are for, which sets the five flags below it unless they are given: any (every "
        "variant for phones and servers: float32 I/O, grouped_conv, with the decoder) or micro (a "
        "microcontroller: the int8 file alone, int8 I/O, einsum, scores only, its C array, checked against "
        "512 KiB flash and a 256 KiB tensor arena, with a warning when over). auto: micro for a model of "
        "the micro architecture, any otherwise.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "int8_io",
        None,
        ["float32", "int8", "uint8"],
        "int8 file's images input and scores/reconstruction output type (int8 or uint8 for "
        "integer pipelines, scale 1/255: uint8 images are raw 0..255 pixels; class_id is int32 "
        "either way). Unset: the target's.",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "int8_integer_only",
        True,
        "int8 file with every op in int8, the squash in an "
        "integer-friendly form (Edge TPUs, float-less microcontrollers); --noint8_integer_only keeps "
        "the exact squash in float inside it.",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "variants",
        None,
        f"TFLite variants to write: {', '.join(VARIANTS)}. Unset: the target's.",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "legacy_runtimes",
        True,
        "Keep every file runnable in tflite-runtime 2.14 (per-tensor "
        "int8 weights in dense layers); --nolegacy_runtimes for per-channel.",
        flag_values=fv,
    )
    flags.DEFINE_integer("calibration_images", 200, "Training images used to calibrate the int8 file.", flag_values=fv)
    flags.DEFINE_integer("eval_images", None, "Test images for the accuracy report (default: all).", flag_values=fv)
    flags.DEFINE_integer("latency_runs", 50, "Batch-1 calls timed per file (median reported).", flag_values=fv)
    flags.DEFINE_enum(
        "int8_capsule_implementation",
        None,
        ["grouped_conv", "einsum"],
        "How the int8 file computes the digit capsules' u_hat: grouped_conv (one grouped CONV_2D, "
        "fastest in LiteRT, per-channel scales: +5 MB for the paper's model) or einsum (a BATCH_MATMUL: "
        "the smallest file and tensor arena, for microcontrollers). Unset: the target's.",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "scores_only",
        None,
        "Files without the decoder and its reconstruction output (scores and "
        "class_id only): what a device that needs the class, not the picture, should carry. Unset: the target's.",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "tflm",
        True,
        "Run the int8 file in TFLite Micro's interpreter: smallest tensor arena, "
        "batch-1 latency, agreement with LiteRT; an op TFLM lacks is an error.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "tflm_images",
        200,
        "Test images run through TFLite Micro (one at a time) for the agreement with LiteRT; at most --eval_images.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "tflm_arena_limit",
        None,
        "The device's RAM for the tensor arena, in bytes (e.g. 262144): a model needing more is an error.",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "c_array",
        None,
        "Also write the int8 file as C++ source and header (capsnet_int8.cc/.h: "
        "alignas(16) const unsigned char capsnet_int8_tflite[] and capsnet_int8_tflite_len). Unset: the target's.",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "mcu_mhz",
        480.0,
        "Clock of the microcontroller for the latency estimate (480: a Cortex-M7 such as the STM32H7).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "mcu_macs_per_cycle",
        1.0,
        "Assumed int8 multiply-accumulates per cycle of that "
        "microcontroller for the estimate (CMSIS-NN's dual 16-bit MAC gives at most 2).",
        flag_values=fv,
    )
    flags.DEFINE_bool("verbose", False, "Also show TensorFlow's own logs and the TFLite converter's.", flag_values=fv)
    flags.mark_flag_as_required("model", flag_values=fv)


def main(flag_values):
    from keras_caps.export.pipeline import ExportConfig, export

    fields = [field.name for field in dataclasses.fields(ExportConfig)]
    return export(ExportConfig(**{name: flag_values[name].value for name in fields}))


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
