"""TensorFlow Lite for Microcontrollers (TFLM): the int8 file run in TFLM's own
interpreter (the kernels that run on the chips), its tensor arena, its cost, and
the file as a C array for firmware.

TFLM runs in a child process (`_tflm_worker.py`): on some failures it aborts
the process instead of raising, and an exporter must report, not crash.
"""

import collections
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

from keras_caps.export.errors import ExportError
from keras_caps.export.litert import litert_interpreter, quantize_input
from keras_caps.export.savedmodel import export_saved_model, float32_copy
from keras_caps.export.tflite import convert, load_flatbuffer, operator_names

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_tflm_worker.py")
# TFLM aligns its arena allocations to 16 bytes: the arena search stops there.
ARENA_ALIGNMENT = 16


class TFLMError(ExportError):
    """A .tflite file that TFLM cannot run as asked; the message says why."""


def _tflm_available():
    try:
        import tflite_micro  # noqa: F401
    except ImportError:
        raise TFLMError(
            "TFLite Micro is not installed: `pip install -r requirements.txt` "
            "installs its Python interpreter (package tflite-micro)."
        ) from None


def _failure(stderr, returncode, arena_size):
    """What went wrong in the child, from TFLM's own messages."""
    missing = sorted(set(re.findall(r"Didn't find op for builtin opcode '(\w+)'", stderr)))
    if missing:
        return (
            f"TFLM has no kernel for {', '.join(missing)}: the file cannot run on a "
            "microcontroller. Export a model whose layers convert to ops TFLM has."
        )
    if "Failed to allocate" in stderr or "failed to allocate" in stderr.lower():
        short = re.search(r"missing: (\d+)", stderr)
        more = f" ({short.group(1)} bytes short)" if short else ""
        return f"a tensor arena of {arena_size} bytes is too small for this model in TFLM{more}."
    prepare = re.search(r"Node (\w+) \(number (\d+)\) failed to (prepare|invoke)", stderr)
    if prepare:
        detail = next((line.strip() for line in stderr.splitlines() if line.strip()), "")
        return f"TFLM's {prepare.group(1)} kernel (operator {prepare.group(2)}) failed to {prepare.group(3)}: {detail}"
    lines = [
        line.strip()
        for line in stderr.splitlines()
        if line.strip() and "temp buffers" not in line and "ResetTempAllocations" not in line
    ]
    if returncode < 0:
        return (
            f"TFLM aborted (signal {-returncode}) while loading or running the file"
            + (f": {lines[-1]}" if lines else "")
            + "."
        )
    return "TFLM failed: " + (lines[-1] if lines else f"exit status {returncode}")


def check_kernel_limits(flatbuffer):
    """Raises TFLMError for what TFLM's kernels would abort on instead of reporting.

    Its int8 SOFTMAX needs `beta * input_scale * 2**26 > 1` (a fixed-point
    multiplier it cannot represent otherwise): a calibration that saw almost
    constant softmax inputs, as an untrained CapsNet's routing logits are,
    gives a smaller scale.
    """
    model = load_flatbuffer(flatbuffer)
    graph = model.subgraphs[0]
    for number, (name, op) in enumerate(zip(operator_names(model), graph.operators)):
        tensor = graph.tensors[int(op.inputs[0])]
        if name != "SOFTMAX" or tensor.type != schema.TensorType.INT8 or tensor.quantization is None:
            continue
        scale = float(tensor.quantization.scale[0])
        beta = float(op.builtinOptions.beta) if op.builtinOptions is not None else 1.0
        if beta * scale * 2.0**26 <= 1.0:
            raise TFLMError(
                f"SOFTMAX (operator {number}, input {tensor.name.decode(errors='replace')}) has an int8 input "
                f"scale of {scale:.3g}; TFLM's kernel needs more than {2.0**-26 / beta:.3g} and would abort. "
                "Its inputs were almost constant on the calibration images: is the model trained?"
            )


def run_tflm(flatbuffer, images, arena_size, latency_runs=0, output_index=0):
    """Runs `images` (float32 in [0, 1], `(N, H, W, C)`) one at a time through TFLM.

    Returns `(outputs, info)`: the raw values of output `output_index` per image,
    and a dict with the batch-1 median `latency_ms` and TFLM's `recorded_arena`.
    Raises TFLMError naming the cause (a missing op, an arena too small).
    """
    with _checked_model_file(flatbuffer) as scratch:
        return _run_child(scratch, images, arena_size, latency_runs, output_index)


@contextlib.contextmanager
def _checked_model_file(flatbuffer):
    """A scratch folder holding the file as model.tflite, once TFLM is known to be there
    and the file is known not to make it abort."""
    _tflm_available()
    check_kernel_limits(flatbuffer)
    with tempfile.TemporaryDirectory(prefix="tflm_") as scratch:
        with open(os.path.join(scratch, "model.tflite"), "wb") as fh:
            fh.write(flatbuffer)
        yield scratch


def _run_child(scratch, images, arena_size, latency_runs=0, output_index=0):
    """One TFLM run of `scratch`/model.tflite in a child process (see `run_tflm`)."""
    inputs, outputs = os.path.join(scratch, "images.npy"), os.path.join(scratch, "out.npy")
    np.save(inputs, np.asarray(images, np.float32))
    result = subprocess.run(
        [
            sys.executable,
            WORKER,
            os.path.join(scratch, "model.tflite"),
            str(int(arena_size)),
            inputs,
            outputs,
            str(int(latency_runs)),
            str(int(output_index)),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise TFLMError(_failure(result.stderr, result.returncode, arena_size))
    return np.load(outputs), json.loads(result.stdout.strip().splitlines()[-1])


def smallest_arena(flatbuffer, image, ceiling=None):
    """The smallest tensor arena (bytes, a multiple of 16) in which TFLM runs the file.

    Starts from what TFLM records using in an arena that is large enough
    (`ceiling`, default ten times the file and at least 1 MB) and checks that
    16 bytes less fails; TFLMError if the file fails for another reason than
    the arena's size.
    """
    image = np.asarray(image, np.float32)[None]
    ceiling = ceiling or max(10 * len(flatbuffer), 1 << 20)
    with _checked_model_file(flatbuffer) as scratch:
        _, info = _run_child(scratch, image, ceiling)
        # TFLM records what it used; that is usually the answer, so it is tried first
        # (each probe is a process), and a binary search below it runs only if needed.
        high = min(ceiling, _aligned(info.get("recorded_arena") or ceiling))
        if high != ceiling and not _runs(scratch, image, high):
            high = ceiling
        low = 0
        if _runs(scratch, image, high - ARENA_ALIGNMENT):
            high -= ARENA_ALIGNMENT
        else:
            low = high - ARENA_ALIGNMENT
        while high - low > ARENA_ALIGNMENT:
            middle = _aligned((low + high) // 2)
            if middle in (low, high):
                break
            if _runs(scratch, image, middle):
                high = middle
            else:
                low = middle
    return high


def _aligned(size):
    return -(-int(size) // ARENA_ALIGNMENT) * ARENA_ALIGNMENT


def _runs(scratch, image, arena):
    try:
        _run_child(scratch, image, arena)
        return True
    except TFLMError as error:
        if "too small" in str(error) or "aborted" in str(error):
            return False
        raise


def scores_output(flatbuffer):
    """`(position, dtype, scale, zero_point)` of the file's `scores` output."""
    graph = load_flatbuffer(flatbuffer).subgraphs[0]
    outputs = [graph.tensors[int(i)] for i in graph.outputs]
    position = next((p for p, t in enumerate(outputs) if b"scores" in (t.name or b"")), None)
    if position is None:  # unnamed: the one 2-D non-integer-id output
        position = next(p for p, t in enumerate(outputs) if len(t.shape) == 2 and t.type != schema.TensorType.INT32)
    tensor = outputs[position]
    dtype = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.INT8: np.int8, schema.TensorType.UINT8: np.uint8}[
        tensor.type
    ]
    quantization = tensor.quantization
    scale = float(quantization.scale[0]) if quantization is not None and quantization.scale is not None else 1.0
    zero = int(quantization.zeroPoint[0]) if quantization is not None and quantization.zeroPoint is not None else 0
    return position, dtype, scale, zero


def _scores_as_float(raw, output):
    """Raw values of the scores output (`scores_output(...)`) as float32 scores."""
    _, dtype, scale, zero = output
    return raw.astype(np.float32) if dtype == np.float32 else (raw.astype(np.float32) - zero) * scale


def tflm_scores(flatbuffer, images, arena_size, latency_runs=0):
    """Float32 scores `(N, classes)` of the file in TFLM, and the worker's info dict."""
    output = scores_output(flatbuffer)
    raw, info = run_tflm(flatbuffer, images, arena_size, latency_runs, output_index=output[0])
    return _scores_as_float(raw, output), info


def verify(flatbuffer, images, litert_scores, arena_limit=None, latency_runs=50):
    """The file run in TFLM beside LiteRT: what a firmware engineer needs.

    Args:
        flatbuffer: the .tflite file (bytes).
        images: float32 images in [0, 1]; each runs through TFLM at batch 1.
        litert_scores: LiteRT's scores for the same images.
        arena_limit: the most RAM (bytes) the device has for the tensor arena;
            TFLMError if the model needs more. None: no limit.
        latency_runs: batch-1 calls timed at least (median reported).

    Returns:
        A dict: `tflm_arena_bytes` (the smallest arena that runs it),
        `tflm_latency_ms`, `tflm_agreement` (share of images whose class
        matches LiteRT's) and `tflm_max_abs_score_diff`, both against LiteRT's
        default (optimized) kernels, whose int8 rounding differs in places, and
        the same two `..._reference_kernels` against LiteRT's reference kernels,
        which TFLM's match exactly; `tflm_images`.
    """
    arena = smallest_arena(flatbuffer, images[0])
    if arena_limit is not None and arena > arena_limit:
        raise TFLMError(
            f"the model needs a tensor arena of {arena} bytes in TFLM; the limit given is "
            f"{arena_limit} bytes. Use a smaller architecture (e.g. CapsNet.from_architecture"
            "('micro')) or a device with more RAM."
        )
    scores, info = tflm_scores(flatbuffer, images, arena, latency_runs)
    optimized = np.asarray(litert_scores, np.float32)[: len(images)]
    reference = litert_reference_scores(flatbuffer, images)
    return {
        "tflm_arena_bytes": arena,
        "tflm_latency_ms": info["latency_ms"],
        "tflm_agreement": float((scores.argmax(-1) == optimized.argmax(-1)).mean()),
        "tflm_max_abs_score_diff": float(np.abs(scores - optimized).max()),
        "tflm_agreement_reference_kernels": float((scores.argmax(-1) == reference.argmax(-1)).mean()),
        "tflm_max_abs_score_diff_reference_kernels": float(np.abs(scores - reference).max()),
        "tflm_images": int(len(images)),
    }


def litert_reference_scores(flatbuffer, images):
    """Float32 scores of the file in LiteRT with its reference kernels, one image a call, as TFLM runs it."""
    interpreter = litert_interpreter(flatbuffer, reference_kernels=True)
    details = interpreter.get_input_details()[0]
    output = scores_output(flatbuffer)
    index = interpreter.get_output_details()[output[0]]["index"]
    results = []
    for image in np.asarray(images, np.float32):
        interpreter.set_tensor(details["index"], quantize_input(image.reshape(details["shape"]), details))
        interpreter.invoke()
        results.append(interpreter.get_tensor(index)[0])
    return _scores_as_float(np.stack(results), output)


def operator_counts(flatbuffer):
    """`{op name: how many}` of the file's main graph."""
    return dict(sorted(collections.Counter(operator_names(load_flatbuffer(flatbuffer))).items()))


def multiply_accumulates(flatbuffer):
    """Multiply-accumulates of one inference, counted from the file's tensor shapes.

    CONV_2D (grouped too), DEPTHWISE_CONV_2D, FULLY_CONNECTED and BATCH_MATMUL:
    output elements times the products each sums. Element-wise ops, softmax and
    reductions are left out (a few percent of a CapsNet's work).
    """
    model = load_flatbuffer(flatbuffer)
    graph = model.subgraphs[0]
    total = 0
    for name, op in zip(operator_names(model), graph.operators):
        shape = lambda i: [int(d) for d in graph.tensors[int(op.inputs[i])].shape]  # noqa: E731
        out = int(np.prod([int(d) for d in graph.tensors[int(op.outputs[0])].shape]))
        if name == "CONV_2D":  # filter (out_ch, kh, kw, in_ch per group)
            _, kh, kw, per_group = shape(1)
            total += out * kh * kw * per_group
        elif name == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, out_ch)
            total += out * shape(1)[1] * shape(1)[2]
        elif name == "FULLY_CONNECTED":  # weights (units, in)
            total += out * shape(1)[-1]
        elif name == "BATCH_MATMUL":
            adj_x = bool(getattr(op.builtinOptions, "adjX", False))
            lhs = shape(0)
            total += out * (lhs[-2] if adj_x else lhs[-1])
    return total


def flops_per_image(model):
    """Floating-point operations of one image through `model` (a CapsNet), counted as
    the exporter counts a file's: `multiply_accumulates` of its float32 TFLite file, two
    operations each. `train` counts a training step as three forward passes (the
    backward pass computes two products for each of the forward's), the usual rule.
    Returns `{"forward": ..., "train": ...}`."""
    with tempfile.TemporaryDirectory(prefix="capsnet_flops_") as scratch:
        saved_model = export_saved_model(float32_copy(model), os.path.join(scratch, "saved_model"))
        forward = 2 * multiply_accumulates(convert(saved_model, "float32"))
    return {"forward": forward, "train": 3 * forward}


def c_string(text):
    """`text` as a C string literal: UTF-8, with quotes, backslashes and other
    than printable ASCII written as 3-digit octal escapes (which, unlike \\x, end
    where they should)."""
    return '"' + "".join(chr(b) if 32 <= b < 127 and b not in b'"\\?' else f"\\{b:03o}" for b in text.encode()) + '"'


def c_array(flatbuffer, name, header_file=None, class_names=None):
    """The file as C++ source and header texts: `alignas(16) const unsigned char NAME[]`
    and `const unsigned int NAME_len`, as TFLM's examples hold their models, and
    with `class_names`, `const char* const NAME_labels[]` (the class of each
    score, in order) and `const int NAME_labels_count`.

    `name` must be a C identifier; the source includes `header_file` (`NAME.h`).
    Returns `(source, header)`.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ExportError(f"C array name {name!r} is not a C identifier.")
    rows = []
    for start in range(0, len(flatbuffer), 12):
        rows.append("  " + ", ".join(f"0x{b:02x}" for b in flatbuffer[start : start + 12]) + ",")
    guard = name.upper() + "_H_"
    labels_decl = labels_def = ""
    if class_names:
        labels_decl = (
            f"// The class of each score, in order.\nextern const char* const {name}_labels[];\n"
            f"extern const int {name}_labels_count;\n"
        )
        labels_def = (
            f"const char* const {name}_labels[] = {{\n"
            + "".join(f"  {c_string(str(c))},\n" for c in class_names)
            + f"}};\nconst int {name}_labels_count = {len(class_names)};\n"
        )
    header = (
        f"// {name}: a TFLite flatbuffer of {len(flatbuffer)} bytes, written by keras-caps' exporter.\n"
        f"#ifndef {guard}\n#define {guard}\n\n"
        f"extern const unsigned char {name}[];\nextern const unsigned int {name}_len;\n{labels_decl}\n"
        f"#endif  // {guard}\n"
    )
    source = (
        f'#include "{header_file or name + ".h"}"\n\n'
        "// TFLM reads the model in place: 16-byte alignment, as its examples use.\n"
        f"alignas(16) const unsigned char {name}[] = {{\n" + "\n".join(rows) + "\n};\n"
        f"const unsigned int {name}_len = {len(flatbuffer)};\n{labels_def}"
    )
    return source, header


def write_c_array(flatbuffer, folder, stem, name, class_names=None):
    """Writes `folder/STEM.cc` and `folder/STEM.h` holding array `name` (and the
    class names, `c_array`); returns their paths."""
    source, header = c_array(flatbuffer, name, stem + ".h", class_names)
    paths = os.path.join(folder, stem + ".cc"), os.path.join(folder, stem + ".h")
    for path, text in zip(paths, (source, header)):
        with open(path, "w") as fh:
            fh.write(text)
    return paths
