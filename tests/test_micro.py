"""TFLite Micro: files run in TFLM's interpreter, the arena search, clear errors, the C array."""

import os
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from keras_caps.export import micro
from keras_caps.export.litert import litert_interpreter, quantize_input
from keras_caps.export.tflite import load_flatbuffer, operator_names, pretransposed_matmul_weights

# Subprocess runs, exports and kills: the slow tier (pytest -m 'not slow' skips them).
pytestmark = pytest.mark.slow


def _tflite(fn, shape, int8=False, seed=0):
    """A .tflite flatbuffer of `fn` on float32 inputs of `shape` (int8: calibrated, int8 I/O)."""
    function = tf.function(fn, input_signature=[tf.TensorSpec(shape, tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function)
    if int8:
        rng = np.random.default_rng(seed)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([rng.uniform(0, 1, shape).astype(np.float32)] for _ in range(20))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def _litert(flat, inputs):
    """LiteRT's float32 outputs for each input (int8 I/O quantized here)."""
    interpreter = litert_interpreter(flat)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    results = []
    for x in inputs:
        interpreter.set_tensor(inp["index"], quantize_input(x.reshape(inp["shape"]), inp))
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])
        if out["dtype"] == np.int8:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        results.append(y.reshape(-1))
    return np.stack(results)


WEIGHTS = np.random.default_rng(0).normal(size=(6, 8, 5)).astype(np.float32)


def _batched_product(x):  # (6, 1, 8) @ (6, 8, 5): a BATCH_MATMUL with constant weights
    return tf.matmul(x, WEIGHTS)


def test_constant_matmul_weights_are_stored_transposed_and_tflm_needs_less_arena():
    flat = _tflite(_batched_product, (6, 1, 8), int8=True)
    moved = pretransposed_matmul_weights(flat)
    graph = load_flatbuffer(moved)
    (op,) = [op for name, op in zip(operator_names(graph), graph.subgraphs[0].operators) if name == "BATCH_MATMUL"]
    assert op.builtinOptions.adjY
    assert list(graph.subgraphs[0].tensors[int(op.inputs[1])].shape) == [6, 5, 8]
    x = np.random.default_rng(1).uniform(0, 1, (3, 6, 1, 8)).astype(np.float32)
    np.testing.assert_array_equal(_litert(flat, x), _litert(moved, x))  # the same int8 products
    tflm, _ = micro.run_tflm(moved, x, 1 << 16)
    np.testing.assert_array_equal(tflm, micro.run_tflm(flat, x, 1 << 16)[0])
    x = x[0]
    # TFLM copies a constant right operand into the arena unless it is stored transposed.
    assert micro.smallest_arena(moved, x) <= micro.smallest_arena(flat, x) - WEIGHTS.size
    assert pretransposed_matmul_weights(moved) == moved  # nothing left to move


def test_smallest_arena_is_the_smallest_that_runs():
    flat = _tflite(lambda x: tf.nn.relu(tf.matmul(x, WEIGHTS[0])), (1, 8), int8=True)
    x = np.random.default_rng(2).uniform(0, 1, (1, 8)).astype(np.float32)
    arena = micro.smallest_arena(flat, x[0])
    assert arena % micro.ARENA_ALIGNMENT == 0
    micro.run_tflm(flat, x, arena)
    with pytest.raises(micro.TFLMError, match=f"arena of {arena - micro.ARENA_ALIGNMENT} bytes is too small"):
        micro.run_tflm(flat, x, arena - micro.ARENA_ALIGNMENT)


def test_tflm_matches_litert_on_an_int8_file():
    flat = _tflite(lambda x: tf.nn.softmax(tf.matmul(x, WEIGHTS[0]) * 3.0), (1, 8), int8=True)
    x = np.random.default_rng(3).uniform(0, 1, (40, 8)).astype(np.float32)
    reference = _litert(flat, x)
    report = micro.verify(flat, x, reference, latency_runs=5)
    assert report["tflm_agreement"] == 1.0
    # Different softmax kernels (TFLM reference, LiteRT optimized): a few int8 steps apart.
    assert report["tflm_max_abs_score_diff"] <= 4 / 256 + 1e-6
    assert report["tflm_latency_ms"] > 0 and report["tflm_images"] == 40
    # Against LiteRT's reference kernels TFLM's results are the same to the bit.
    assert report["tflm_agreement_reference_kernels"] == 1.0
    assert report["tflm_max_abs_score_diff_reference_kernels"] == 0.0
    with pytest.raises(
        micro.TFLMError, match=f"needs a tensor arena of {report['tflm_arena_bytes']} bytes.*limit given is 1000 bytes"
    ):
        micro.verify(flat, x, reference, arena_limit=1000)


def test_an_op_tflm_lacks_is_named():
    flat = _tflite(lambda x: tf.math.top_k(x, 3).values, (1, 10))
    with pytest.raises(micro.TFLMError, match="TFLM has no kernel for TOPK_V2"):
        micro.run_tflm(flat, np.zeros((1, 1, 10), np.float32), 1 << 16)


def test_an_abort_inside_tflm_is_an_error_not_a_crash(monkeypatch):
    # A softmax whose int8 input scale is ~1e-9: TFLM's kernel cannot represent
    # its multiplier and would abort the process while preparing. Checked first ...
    flat = _tflite(lambda x: tf.nn.softmax(x * 1e-7), (1, 10), int8=True)
    with pytest.raises(
        micro.TFLMError,
        match=r"SOFTMAX \(operator \d+, input .*\) has an int8 input scale of "
        r".*needs more than 1.49e-08 and would abort",
    ):
        micro.run_tflm(flat, np.zeros((1, 1, 10), np.float32), 1 << 16)
    # ... and were it not, the abort in the child process is an error, not a crash.
    monkeypatch.setattr(micro, "check_kernel_limits", lambda flatbuffer: None)
    with pytest.raises(micro.TFLMError, match=r"TFLM aborted \(signal 6\)"):
        micro.run_tflm(flat, np.zeros((1, 1, 10), np.float32), 1 << 16)


def test_multiply_accumulates_counted_from_the_file():
    conv = tf.constant(np.random.default_rng(4).normal(size=(3, 3, 2, 4)).astype(np.float32))
    dense = tf.constant(np.random.default_rng(5).normal(size=(6 * 6 * 4, 7)).astype(np.float32))

    def net(x):
        y = tf.nn.relu(tf.nn.conv2d(x, conv, 1, "VALID"))
        return tf.matmul(tf.reshape(y, (1, -1)), dense)

    flat = _tflite(net, (1, 8, 8, 2))
    assert micro.multiply_accumulates(flat) == 6 * 6 * 4 * 3 * 3 * 2 + 6 * 6 * 4 * 7
    assert micro.operator_counts(flat) == {"CONV_2D": 1, "FULLY_CONNECTED": 1, "RESHAPE": 1}
    flat = _tflite(_batched_product, (6, 1, 8))
    assert micro.multiply_accumulates(flat) == 6 * 8 * 5


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs a C++ compiler")
def test_c_array_compiles_and_holds_the_file_byte_for_byte(tmp_path):
    flat = bytes(range(256)) * 3 + b"\x07"
    source, header = micro.write_c_array(flat, str(tmp_path), "capsnet_int8", "capsnet_int8_tflite")
    assert "alignas(16) const unsigned char capsnet_int8_tflite[]" in open(source).read()
    main = tmp_path / "main.cc"
    main.write_text(
        '#include <cstdio>\n#include "capsnet_int8.h"\n'
        "int main() { if (reinterpret_cast<unsigned long>(capsnet_int8_tflite) % 16) return 2;\n"
        "  fwrite(capsnet_int8_tflite, 1, capsnet_int8_tflite_len, stdout); return 0; }\n"
    )
    binary = tmp_path / "dump"
    subprocess.run(
        ["g++", "-std=c++11", "-Wall", "-Werror", "-o", str(binary), source, str(main)], check=True, cwd=tmp_path
    )
    assert subprocess.run([str(binary)], capture_output=True, check=True).stdout == flat


def test_c_array_name_must_be_an_identifier():
    with pytest.raises(micro.ExportError, match="'2bad-name' is not a C identifier"):
        micro.c_array(b"\x00", "2bad-name")


def test_missing_tflm_package_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tflm(name, *args, **kwargs):
        if name.startswith("tflite_micro"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tflm)
    with pytest.raises(micro.TFLMError, match="tflite-micro"):
        micro.run_tflm(b"", np.zeros((1, 1), np.float32), 1024)


def test_worker_runs_alone_without_tensorflow():
    # The child imports numpy and tflite_micro only: TensorFlow's import would cost seconds per probe.
    source = open(micro.WORKER).read()
    assert "tensorflow" not in source.replace("tflite_micro", "")
    assert os.path.isfile(micro.WORKER)
