"""TFLite conversion from the SavedModel, builtin ops only."""

import numpy as np
import tensorflow as tf

from export.errors import ExportError

# name -> what it is. File names are capsnet_<name>.tflite.
VARIANTS = {
    "float32": "float32 weights and arithmetic",
    "float16": "float16 weights, float32 arithmetic",
    "dynamic_int8": "int8 weights, activations quantized on the fly",
    "int8": "int8 weights and activations, calibrated; the squash arithmetic stays float",
}
# Kept in float in the int8 file: the squash's 1 + |s|^2 spans 0..~2000, so in int8 its
# value 1 rounds to the zero point and DIV fails; float here costs ~0.05 points less than
# DIV alone (measured, BENCHMARKS.md) and adds nothing to the size.
INT8_FLOAT_OPS = ["DIV", "SQRT", "SQUARE", "SUM"]
# DenseCapsule formulation each file is converted from (default einsum). In int8, the
# einsum's BATCH_MATMUL of 1152 (1x8)@(8x160) products took 45% of batch-1 time; as
# one grouped CONV_2D it is 20x faster (whole file 0.60x the latency, per-channel
# weight scales, +5 MB of scales and zero bias). Float files run both alike, so they
# keep the smaller einsum (BENCHMARKS.md).
CAPSULE_IMPLEMENTATION = {"int8": "grouped_conv"}


INT8_IO_TYPES = ("float32", "int8", "uint8")


def _uint8_io(flatbuffer):
    """Float `images`/`reconstruction` of a calibrated file made uint8.

    The debugger behind selective quantization returns int8 when asked for
    uint8, so the float boundary is rewritten here with the converter's own
    routine (what `inference_input_type=tf.uint8` runs): the input's QUANTIZE
    then takes uint8 (requantized to int8 inside), the reconstruction's
    DEQUANTIZE becomes a QUANTIZE to uint8. Outputs computed in float
    (`scores`) stay float.
    """
    from tensorflow.lite.python.util import modify_model_io_type

    logger = tf.get_logger()  # it warns that float outputs stay float: by design here
    level = logger.level
    logger.setLevel("ERROR")
    try:
        return modify_model_io_type(flatbuffer, tf.uint8, tf.uint8)
    finally:
        logger.setLevel(level)


def _builtin_operator_names():
    from tensorflow.lite.python import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def op_list(flatbuffer):
    """`[(op name, version)]` of every operator code in a .tflite flatbuffer; custom
    and Flex ops come back as `("CUSTOM:<name>", version)`."""
    from tensorflow.lite.python import schema_py_generated as schema

    names = _builtin_operator_names()
    model = schema.Model.GetRootAsModel(flatbuffer, 0)
    ops = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = names.get(builtin, f"UNKNOWN_{builtin}")
        if name == "CUSTOM":
            name = "CUSTOM:" + code.CustomCode().decode()
        ops.append((name, code.Version()))
    return ops


def check_builtin_only(flatbuffer, variant):
    custom = [name for name, _ in op_list(flatbuffer) if name.startswith("CUSTOM")]
    if custom:
        raise ExportError(
            f"The {variant} TFLite file would need non-builtin ops ({', '.join(custom)}), "
            "which LiteRT on devices does not have. Only builtin ops are allowed."
        )


def convert(saved_model_dir, variant, representative_images=None, io_type="float32", legacy_runtimes=True):
    """Converts the SavedModel's `serving_default` to one TFLite variant.

    Args:
        variant: a key of `VARIANTS`.
        representative_images: float32 images in [0, 1] for calibrating `int8`.
        io_type: for `int8`: the type of the `images` input and `reconstruction`
            output: `float32`, `int8`, or `uint8` (images then take raw 0..255
            pixel values: scale 1/255, zero point 0). `class_id` is int32 and
            `scores` float32 in every case.
        legacy_runtimes: per-tensor instead of per-channel int8 weights in dense
            layers, so the files also run in tflite-runtime 2.14 (FULLY_CONNECTED
            v9 instead of v12); no measurable accuracy cost (BENCHMARKS.md).

    Returns:
        The .tflite flatbuffer (bytes), builtin ops only.
    """
    if variant not in VARIANTS:
        raise ExportError(f"Unknown TFLite variant {variant!r}; one of {', '.join(VARIANTS)}.")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=["serving_default"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if legacy_runtimes and variant in ("dynamic_int8", "int8"):
        # A private converter switch, the only one TF 2.21 offers for this.
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "int8":
        if representative_images is None or len(representative_images) == 0:
            raise ExportError("The int8 variant needs representative images for calibration.")
        images = np.asarray(representative_images, np.float32)

        def representative():
            for image in images:
                yield {"images": image[None]}

        converter.representative_dataset = representative
        if io_type not in INT8_IO_TYPES:
            raise ExportError(f"int8 file: input/output type {io_type!r} is not supported; "
                              f"use {', '.join(INT8_IO_TYPES)}.")
        if io_type == "int8":
            converter.inference_input_type = converter.inference_output_type = tf.int8
    try:
        if variant == "int8":
            # Selective quantization: TFLite's own tool for keeping named ops in float.
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter,
                debug_dataset=lambda: ([image[None]] for image in images[:8]),
                debug_options=tf.lite.experimental.QuantizationDebugOptions(
                    denylisted_ops=INT8_FLOAT_OPS, fully_quantize=io_type == "int8"),
            )
            flatbuffer = debugger.get_nondebug_quantized_model()
            if io_type == "uint8":
                flatbuffer = _uint8_io(flatbuffer)
        else:
            flatbuffer = converter.convert()
    except Exception as error:  # ConverterError carries the op that failed
        lines = [line for line in str(error).splitlines() if "error:" in line]
        detail = lines[0].split("error:")[-1].strip() if lines else str(error).splitlines()[0]
        raise ExportError(f"TFLite conversion ({variant}) failed with builtin ops only: {detail}") from None
    check_builtin_only(flatbuffer, variant)
    return flatbuffer
