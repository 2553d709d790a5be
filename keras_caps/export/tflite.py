"""TFLite conversion from the SavedModel, builtin ops only."""

import collections
import contextlib
import os
import sys
import warnings

import numpy as np
import tensorflow as tf

from keras_caps.export.errors import ExportError

# name -> what it is. File names are capsnet_<name>.tflite.
VARIANTS = {
    "float32": "float32 weights and arithmetic",
    "float16": "float16 weights, float32 arithmetic",
    "dynamic_int8": "int8 weights, activations quantized on the fly",
    "int8": "int8 weights and activations, calibrated; integer-only (or the squash in float)",
}
# Kept in float in an int8 file that is not integer-only (`integer_only=False`): the exact
# squash's 1 + |s|^2 spans 0..~2000, so in int8 its value 1 rounds to the zero point and
# DIV fails. An integer-only file is converted from a SavedModel traced with the
# integer-only forms instead (`export_saved_model(..., integer_only=True)`).
INT8_FLOAT_OPS = ["DIV", "SQRT", "SQUARE", "SUM"]
# DenseCapsule formulation each file is converted from (default einsum). In int8, the
# einsum's BATCH_MATMUL of 1152 (1x8)@(8x160) products took 45% of batch-1 time; as
# one grouped CONV_2D it is 20x faster (whole file 0.60x the latency, per-channel
# weight scales, +5 MB of scales and zero bias). Float files run both alike, so they
# keep the smaller einsum (BENCHMARKS.md).
CAPSULE_IMPLEMENTATION = {"int8": "grouped_conv"}


INT8_IO_TYPES = ("float32", "int8", "uint8")


def _integer_io(flatbuffer, io_type):
    """A calibrated file with float32 I/O made integer at its boundary.

    The debugger behind selective quantization ignores uint8, so the boundary
    is rewritten here: the converter's own routine (what `inference_input_type`
    runs) makes `images` and `reconstruction` int8/uint8, then `scores`, which
    the float squash computes, get a QUANTIZE of their own (see `_quantize_outputs`).
    """
    from absl import logging as absl_logging
    from tensorflow.lite.python.util import modify_model_io_type

    dtype = {"int8": tf.int8, "uint8": tf.uint8}[io_type]
    flatbuffer = _argmax_before_dequantize(flatbuffer)
    verbosity = absl_logging.get_verbosity()  # it warns of outputs it leaves alone: handled below
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        flatbuffer = modify_model_io_type(flatbuffer, dtype, dtype)
    finally:
        absl_logging.set_verbosity(verbosity)
    return _quantize_outputs(flatbuffer, io_type)


def load_flatbuffer(flatbuffer):
    """A .tflite flatbuffer as TFLite's mutable object tree (`schema.ModelT`)."""
    from tensorflow.lite.python import schema_py_generated as schema

    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))


def save_flatbuffer(model, size_hint):
    """A `schema.ModelT` back to .tflite bytes (`size_hint`: the starting buffer size)."""
    import flatbuffers

    builder = flatbuffers.Builder(size_hint)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _builtin(code):
    """An operator code's builtin op (older files hold it in the deprecated field)."""
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def operator_names(model):
    """Names of a loaded model's main-subgraph operators, in execution order."""
    names = _builtin_operator_names()
    return [names.get(_builtin(model.operatorCodes[op.opcodeIndex]), "UNKNOWN") for op in model.subgraphs[0].operators]


def _argmax_before_dequantize(flatbuffer):
    """ARG_MAX ops that read a dequantized graph output read its int8 source instead
    (same argmax: quantization is monotonic). Else making that output int8, which
    drops the DEQUANTIZE, would leave the ARG_MAX without its input."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = load_flatbuffer(flatbuffer)
    codes = [_builtin(c) for c in model.operatorCodes]
    graph = model.subgraphs[0]
    outputs = set(int(i) for i in graph.outputs)
    source = {
        int(op.outputs[0]): int(op.inputs[0])
        for op in graph.operators
        if codes[op.opcodeIndex] == schema.BuiltinOperator.DEQUANTIZE and int(op.outputs[0]) in outputs
    }
    changed = False
    for op in graph.operators:
        if codes[op.opcodeIndex] == schema.BuiltinOperator.ARG_MAX and int(op.inputs[0]) in source:
            op.inputs = np.array([source[int(op.inputs[0])]] + [int(i) for i in op.inputs[1:]], dtype=np.int32)
            changed = True
    return save_flatbuffer(model, len(flatbuffer) + 4096) if changed else flatbuffer


def _quantize_outputs(flatbuffer, io_type):
    """Every float32 output (the capsule lengths, in [0, 1]) gets a QUANTIZE to
    `io_type` with scale 1/255: uint8 0..255 or int8 -128..127 is 0..1. The class
    id is taken from the float scores before, so it is exact."""
    from tensorflow.lite.python import schema_py_generated as schema

    kind = {"int8": (schema.TensorType.INT8, -128), "uint8": (schema.TensorType.UINT8, 0)}[io_type]
    model = load_flatbuffer(flatbuffer)
    codes = [_builtin(c) for c in model.operatorCodes]
    if schema.BuiltinOperator.QUANTIZE in codes:
        quantize = codes.index(schema.BuiltinOperator.QUANTIZE)
    else:
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.QUANTIZE
        code.version = 1
        model.operatorCodes.append(code)
        quantize = len(model.operatorCodes) - 1
    graph = model.subgraphs[0]
    outputs = list(graph.outputs)
    for position, index in enumerate(outputs):
        source = graph.tensors[index]
        if source.type != schema.TensorType.FLOAT32:
            continue
        target = schema.TensorT()
        target.name, source.name = source.name, source.name + b"_float"
        target.shape, target.shapeSignature = source.shape, source.shapeSignature
        target.type, zero_point = kind
        target.quantization = schema.QuantizationParametersT()
        target.quantization.scale, target.quantization.zeroPoint = [1 / 255], [zero_point]
        empty = schema.BufferT()
        model.buffers.append(empty)
        target.buffer = len(model.buffers) - 1
        graph.tensors.append(target)
        new_index = len(graph.tensors) - 1
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = quantize, [index], [new_index]
        graph.operators.append(op)
        outputs[position] = new_index
        for signature in model.signatureDefs or []:
            for output in signature.outputs:
                if output.tensorIndex == index:
                    output.tensorIndex = new_index
    graph.outputs = np.array(outputs, dtype=np.int32)
    return save_flatbuffer(model, len(flatbuffer) + 4096)


def pretransposed_matmul_weights(flatbuffer):
    """BATCH_MATMULs with a constant right-hand side get it stored transposed (`adj_y`).

    Same products, but TFLM's BATCH_MATMUL then reads the weights in place: with
    `adj_y` false it copies every constant right operand, transposed, into the
    tensor arena (164 KB of RAM for the digit capsules of candidate A of the micro
    CapsNet, BENCHMARKS.md: its arena 260 -> 96 KB). LiteRT gives the same results.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    model = load_flatbuffer(flatbuffer)
    graph = model.subgraphs[0]
    uses = collections.Counter(int(i) for op in graph.operators for i in op.inputs)
    itemsize = {
        schema.TensorType.INT8: 1,
        schema.TensorType.UINT8: 1,
        schema.TensorType.INT16: 2,
        schema.TensorType.FLOAT32: 4,
        schema.TensorType.FLOAT16: 2,
        schema.TensorType.INT32: 4,
    }
    changed = False
    for name, op in zip(operator_names(model), graph.operators):
        if name != "BATCH_MATMUL" or op.builtinOptions.adjY:
            continue
        index = int(op.inputs[1])
        tensor = graph.tensors[index]
        buffer = model.buffers[tensor.buffer]
        quantization = tensor.quantization
        per_channel = quantization is not None and quantization.scale is not None and len(quantization.scale) > 1
        if (
            buffer.data is None
            or len(buffer.data) == 0
            or uses[index] != 1
            or per_channel
            or tensor.type not in itemsize
            or len(tensor.shape) < 2
        ):
            continue
        shape = [int(d) for d in tensor.shape]
        values = np.frombuffer(bytes(buffer.data), np.dtype(f"V{itemsize[tensor.type]}")).reshape(shape)
        buffer.data = np.frombuffer(np.ascontiguousarray(np.swapaxes(values, -1, -2)).tobytes(), np.uint8)
        shape[-1], shape[-2] = shape[-2], shape[-1]
        tensor.shape = np.array(shape, np.int32)
        if tensor.shapeSignature is not None and len(tensor.shapeSignature):
            signature = [int(d) for d in tensor.shapeSignature]
            signature[-1], signature[-2] = signature[-2], signature[-1]
            tensor.shapeSignature = np.array(signature, np.int32)
        op.builtinOptions.adjY = True
        changed = True
    return save_flatbuffer(model, len(flatbuffer) + 4096) if changed else flatbuffer


def _builtin_operator_names():
    from tensorflow.lite.python import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def op_list(flatbuffer):
    """`[(op name, version)]` of every operator code in a .tflite flatbuffer; custom
    and Flex ops come back as `("CUSTOM:<name>", version)`."""
    names = _builtin_operator_names()
    ops = []
    for code in load_flatbuffer(flatbuffer).operatorCodes:
        name = names.get(_builtin(code), f"UNKNOWN_{_builtin(code)}")
        if name == "CUSTOM":
            name = "CUSTOM:" + bytes(code.customCode).decode()
        ops.append((name, code.version))
    return ops


def check_builtin_only(flatbuffer, variant):
    custom = [name for name, _ in op_list(flatbuffer) if name.startswith("CUSTOM")]
    if custom:
        raise ExportError(
            f"The {variant} TFLite file would need non-builtin ops ({', '.join(custom)}), "
            "which LiteRT on devices does not have. Only builtin ops are allowed."
        )


def _convert(converter, variant, images, integer_only):
    if variant != "int8":
        return converter.convert()
    # Selective quantization: TFLite's own tool for keeping named ops in float.
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=lambda: ([image[None]] for image in images[:8]),
        debug_options=tf.lite.experimental.QuantizationDebugOptions(
            denylisted_ops=[] if integer_only else INT8_FLOAT_OPS, fully_quantize=False
        ),
    )
    return debugger.get_nondebug_quantized_model()


@contextlib.contextmanager
def _quiet_converter():
    """The converter's calibration prints C++ lines to stderr and warns that TFLite's own
    calibrator uses the deprecated tf.lite.Interpreter: neither is the user's concern.
    Silenced where TensorFlow's logs are (TF_CPP_MIN_LOG_LEVEL=3, as the command lines set
    it without --verbose); shown otherwise."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "3":
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated")
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def convert(
    saved_model_dir, variant, representative_images=None, io_type="float32", legacy_runtimes=True, integer_only=False
):
    """Converts the SavedModel's `serving_default` to one TFLite variant.

    Args:
        variant: a key of `VARIANTS`.
        representative_images: float32 images in [0, 1] for calibrating `int8`.
        io_type: for `int8`: the type of the `images` input and of the `scores`
            and `reconstruction` outputs: `float32`, `int8`, or `uint8` (images
            then take raw 0..255 pixel values: scale 1/255, zero point 0; scores
            are 0..1 in steps of 1/255). `class_id` is int32 in every case.
        integer_only: for `int8`: every op in int8 (the SavedModel must come from
            `export_saved_model(..., integer_only=True)`). With integer I/O this is
            checked (ExportError if any op computes in float); with float I/O the
            file's edges are float: QUANTIZE of the images, DEQUANTIZE of the
            outputs, and class_id's ARG_MAX on the dequantized scores. Otherwise
            `INT8_FLOAT_OPS` stay float.
        legacy_runtimes: for `dynamic_int8`: per-tensor instead of per-channel
            int8 weights in dense layers, so the file also runs in tflite-runtime
            2.14 (FULLY_CONNECTED v9 instead of v12); no measurable accuracy cost
            (BENCHMARKS.md). The other variants run there as they are.

    Returns:
        The .tflite flatbuffer (bytes), builtin ops only.
    """
    if variant not in VARIANTS:
        raise ExportError(f"Unknown TFLite variant {variant!r}; one of {', '.join(VARIANTS)}.")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=["serving_default"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if legacy_runtimes and variant == "dynamic_int8":
        # A private converter switch, the only one TF 2.21 offers for this. The int8 file's
        # FULLY_CONNECTED (v4) keeps per-channel weights, which 2.14 runs: the switch leaves it as it is.
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
            raise ExportError(
                f"int8 file: input/output type {io_type!r} is not supported; use {', '.join(INT8_IO_TYPES)}."
            )
    try:
        with _quiet_converter():
            flatbuffer = _convert(converter, variant, images if variant == "int8" else None, integer_only)
        if variant == "int8" and io_type != "float32":
            flatbuffer = _integer_io(flatbuffer, io_type)
    except Exception as error:  # ConverterError carries the op that failed
        lines = [line for line in str(error).splitlines() if "error:" in line]
        detail = lines[0].split("error:")[-1].strip() if lines else str(error).splitlines()[0]
        raise ExportError(f"TFLite conversion ({variant}) failed with builtin ops only: {detail}") from None
    check_builtin_only(flatbuffer, variant)
    flatbuffer = pretransposed_matmul_weights(flatbuffer)
    if variant == "int8" and integer_only and io_type != "float32":
        float_ops = float_arithmetic(flatbuffer)
        if float_ops:
            raise ExportError(
                f"The int8 file is not integer-only: {', '.join(float_ops)} compute in float. "
                "Export the SavedModel with integer_only=True, or allow float ops."
            )
    return flatbuffer


def float_arithmetic(flatbuffer):
    """Names of the ops that read or write float32 tensors, beside the QUANTIZE and
    DEQUANTIZE that convert float inputs and outputs; empty for an integer-only file."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = load_flatbuffer(flatbuffer)
    graph = model.subgraphs[0]
    found = set()
    for name, op in zip(operator_names(model), graph.operators):
        tensors = [int(t) for t in op.inputs] + [int(t) for t in op.outputs]
        if name not in ("QUANTIZE", "DEQUANTIZE") and any(
            t >= 0 and graph.tensors[t].type == schema.TensorType.FLOAT32 for t in tensors
        ):
            found.add(name)
    return sorted(found)
