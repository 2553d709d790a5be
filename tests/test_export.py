"""The exporter on a tiny trained CapsNet: every file runs and agrees with Keras."""

import json
import os
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_caps import CapsNet
from keras_caps.export import ExportError, convert, float32_copy
from keras_caps.export.litert import TFLiteModel
from tests.helpers import ROOT, run_cli, run_program, write_mnist

# Subprocess runs, exports and kills: the slow tier (pytest -m 'not slow' skips them).
pytestmark = pytest.mark.slow

TINY = dict(conv_filters=16, primary_channels=4, primary_dim=8, digit_dim=8, decoder_units=(32, 64))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    write_mnist(str(folder / "mnist"), n_train=40, n_test=30)
    keras.utils.set_random_seed(0)
    model = CapsNet(input_shape=(28, 28, 1), classes=10, **TINY)
    model.compile(optimizer="adam")
    x = np.random.default_rng(0).uniform(0, 1, (40, 28, 28, 1)).astype("float32")
    model.fit(x, np.arange(40) % 10, batch_size=20, epochs=1, verbose=0)
    # Routing logits of a trained model's size: after one epoch on noise they are
    # ~1e-7, below what TFLM's int8 softmax can scale (export.micro.check_kernel_limits).
    model.digit_caps.kernel.assign(model.digit_caps.kernel * 10)
    path = str(folder / "tiny.keras")
    model.save(path)
    return folder, path, model


def test_export_cli_writes_verified_files(trained):
    folder, path, model = trained
    out = folder / "dist"
    result = _export(
        [
            "--model",
            path,
            "--out",
            str(out),
            "--data_dir",
            str(folder / "mnist"),
            "--latency_runs",
            "3",
            "--calibration_images",
            "10",
        ],
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Without --verbose the converter's calibration lines and TFLite's own deprecation warning stay quiet.
    assert "fully_quantize" not in result.stderr and "tf.lite.Interpreter is deprecated" not in result.stderr
    report = json.load(open(out / "report.json"))
    rows = {row["file"]: row for row in report["files"]}
    assert set(rows) == {
        "keras (float32)",
        "saved_model",
        "capsnet_float32.tflite",
        "capsnet_float16.tflite",
        "capsnet_dynamic_int8.tflite",
        "capsnet_int8.tflite",
    }
    assert rows["saved_model"]["max_abs_score_diff"] < 1e-5
    assert rows["capsnet_float32.tflite"]["max_abs_score_diff"] < 1e-4
    assert rows["capsnet_float16.tflite"]["max_abs_score_diff"] < 1e-2
    assert rows["capsnet_dynamic_int8.tflite"]["max_abs_score_diff"] < 0.05
    assert rows["capsnet_int8.tflite"]["max_abs_score_diff"] < 0.1
    for name, row in rows.items():
        assert row["latency_ms"] > 0
        if name.endswith(".tflite"):
            assert os.path.getsize(out / name) == row["size_bytes"]
            assert not [op for op in row["ops"] if op.startswith("CUSTOM")]
    report_md = open(out / "report.md").read()
    assert "| capsnet_float16.tflite |" in report_md and "| tensor arena (KB) |" in report_md
    # The int8 file also ran in TFLite Micro, one image at a time, as LiteRT runs it.
    int8 = rows["capsnet_int8.tflite"]
    assert int8["tflm_images"] == 30 and int8["tflm_agreement"] >= 0.9
    assert 0 < int8["tflm_arena_bytes"] < 4_000_000 and int8["tflm_latency_ms"] > 0
    assert int8["op_counts"]["CONV_2D"] == 3 and int8["macs"] > 0 and int8["mcu_estimate_ms"] > 0
    assert "tflm_arena_bytes" not in rows["capsnet_float32.tflite"]
    # The int8 file computes u_hat as one grouped CONV_2D (3 convolutions), the others by BATCH_MATMUL.
    assert conv_count(out / "capsnet_int8.tflite") == 3
    assert conv_count(out / "capsnet_float32.tflite") == 2
    from keras_caps.export.tflite import float_arithmetic

    # Integer-only by default: float only where the float I/O meets it.
    assert float_arithmetic(open(out / "capsnet_int8.tflite", "rb").read()) == ["ARG_MAX"]
    assert float_arithmetic(open(out / "capsnet_float32.tflite", "rb").read())
    assert not list(out.glob("capsnet_export_*")) and not (out / "grouped_conv").exists()

    # The SavedModel's signature gives scores, class and reconstruction.
    serve = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    x = np.random.default_rng(1).uniform(0, 1, (3, 28, 28, 1)).astype("float32")
    outputs = serve(images=tf.constant(x))
    assert set(outputs) == {"scores", "class_id", "reconstruction"}
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(outputs["scores"].numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(outputs["class_id"].numpy(), expected.argmax(-1))
    assert outputs["reconstruction"].shape == (3, 28, 28, 1)
    # Batch 1 and batch 5 through the same .tflite file.
    runner = TFLiteModel(str(out / "capsnet_float32.tflite"))
    np.testing.assert_allclose(runner(x[:1]), expected[:1], rtol=1e-4, atol=1e-5)
    assert runner(np.concatenate([x, x[:2]])).shape == (5, 10)


def conv_count(path):
    from keras_caps.export.tflite import load_flatbuffer, operator_names

    return operator_names(load_flatbuffer(open(path, "rb").read())).count("CONV_2D")


def float_tensors(flat):
    from tensorflow.lite.python import schema_py_generated as schema

    graph = schema.Model.GetRootAsModel(flat, 0).Subgraphs(0)
    return sum(graph.Tensors(i).Type() == schema.TensorType.FLOAT32 for i in range(graph.TensorsLength()))


@pytest.mark.parametrize("integer_only", [True, False])
@pytest.mark.parametrize("io_type", ["int8", "uint8"])
def test_int8_file_with_integer_io_runs_and_agrees(trained, tmp_path, io_type, integer_only):
    folder, path, model = trained
    from keras_caps.export import export_saved_model
    from keras_caps.export.tflite import float_arithmetic

    saved = export_saved_model(float32_copy(model, "grouped_conv"), str(tmp_path / "sm"), integer_only=integer_only)
    x = np.random.default_rng(3).uniform(0, 1, (16, 28, 28, 1)).astype("float32")
    flat = convert(saved, "int8", x, io_type=io_type, integer_only=integer_only)
    runner = TFLiteModel(flat)
    dtype = np.dtype(io_type).type
    assert runner.input["dtype"] == dtype
    kinds = {d["shape"].size: d["dtype"] for d in runner.interpreter.get_output_details()}
    assert kinds == {4: dtype, 1: np.int32, 2: dtype}  # reconstruction, class_id, scores
    if integer_only:  # no float tensor anywhere
        assert float_tensors(flat) == 0
    else:  # the squash in float; its float scores quantized at the end with scale 1/255
        assert float_arithmetic(flat) == ["ARG_MAX", "DIV", "SQRT", "SQUARE", "SUM"]
        assert abs(runner.scores["quantization"][0] - 1 / 255) < 1e-7
    float_io = TFLiteModel(convert(saved, "int8", x, integer_only=integer_only))
    np.testing.assert_allclose(runner(x), model.predict(x, verbose=0), atol=0.1)
    np.testing.assert_allclose(runner(x), float_io(x), atol=0.02)
    # class_id is the argmax of the scores.
    interpreter = runner.interpreter
    class_id = next(o["index"] for o in interpreter.get_output_details() if o["dtype"] == np.int32)
    np.testing.assert_array_equal(interpreter.get_tensor(class_id), float_io(x).argmax(-1))
    if io_type == "uint8":
        # Raw pixel bytes go straight in: 0..255 is 0..1.
        scale, zero = runner.input["quantization"]
        assert zero == 0 and abs(scale - 1 / 255) < 1e-6
        interpreter = runner.interpreter
        pixels = np.round(x[:1] * 255).astype(np.uint8)
        interpreter.resize_tensor_input(runner.input["index"], pixels.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels)
        interpreter.invoke()
        scores = next(
            interpreter.get_tensor(o["index"])
            for o in interpreter.get_output_details()
            if o["shape"].size == 2 and o["dtype"] == np.uint8
        )
        scale, zero = runner.scores["quantization"]
        np.testing.assert_allclose((scores.astype("float32") - zero) * scale, float_io(pixels / 255.0), atol=0.02)
    with pytest.raises(ExportError, match="int8 file: input/output type 'int16'"):
        convert(saved, "int8", x, io_type="int16")
    with pytest.raises(ExportError, match="representative images"):
        convert(saved, "int8", None)


def dense_weights(flat):
    """(version, int8 weights' scale count) of each FULLY_CONNECTED op."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(flat, 0)
    graph, found = model.Subgraphs(0), []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == schema.BuiltinOperator.FULLY_CONNECTED:
            weights = graph.Tensors(op.Inputs(1))
            assert weights.Type() == schema.TensorType.INT8
            found.append((code.Version(), weights.Quantization().ScaleLength()))
    return found


def test_legacy_runtimes_give_the_dynamic_int8_file_per_tensor_dense_weights(trained, tmp_path):
    _, _, model = trained
    from keras_caps.export import export_saved_model

    saved = export_saved_model(float32_copy(model, "grouped_conv"), str(tmp_path / "sm"))
    x = np.random.default_rng(4).uniform(0, 1, (8, 28, 28, 1)).astype("float32")
    units = [TINY["decoder_units"][0], TINY["decoder_units"][1], 28 * 28]
    legacy, modern = (convert(saved, "dynamic_int8", legacy_runtimes=flag) for flag in (True, False))
    assert dense_weights(legacy) == [(9, 1)] * 3  # one scale a layer: tflite-runtime 2.14 runs it
    assert dense_weights(modern) == [(12, n) for n in units]  # a scale per output unit
    for flat in (legacy, modern):
        np.testing.assert_allclose(TFLiteModel(flat)(x), model.predict(x, verbose=0), atol=0.02)
    # The int8 file keeps per-channel weights either way: its FULLY_CONNECTED v4 runs in 2.14 as it is.
    int8 = convert(saved, "int8", x, legacy_runtimes=True)
    assert dense_weights(int8) == [(4, n) for n in units]
    assert convert(saved, "int8", x, legacy_runtimes=False) == int8


def test_integer_only_needs_the_integer_only_savedmodel(trained, tmp_path):
    _, _, model = trained
    from keras_caps.export import export_saved_model

    saved = export_saved_model(float32_copy(model, "grouped_conv"), str(tmp_path / "sm"))
    x = np.random.default_rng(3).uniform(0, 1, (8, 28, 28, 1)).astype("float32")
    with pytest.raises(ExportError, match="not integer-only: .+ compute in float"):
        convert(saved, "int8", x, io_type="uint8", integer_only=True)


def test_mixed_precision_model_exports_as_float32(trained, tmp_path):
    _, path, _ = trained
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = CapsNet(input_shape=(28, 28, 1), classes=10, **TINY)
    keras.mixed_precision.set_global_policy("float32")
    clone = float32_copy(model)
    assert clone.dtype_policy.name == "float32"
    x = np.random.default_rng(2).uniform(0, 1, (2, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(np.asarray(clone(x)["scores"]), np.asarray(model(x)["scores"]), rtol=0.05, atol=5e-3)


def test_non_builtin_op_is_a_clear_error(tmp_path):
    class Bitwise(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.int32, name="images")])
        def serve(self, images):
            return {"scores": tf.bitwise.bitwise_and(images, 3)}

    module = Bitwise()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    with pytest.raises(ExportError, match="builtin ops only"):
        convert(str(tmp_path), "float32")
    # A file that holds a custom op anyway is refused by name.
    from keras_caps.export.tflite import check_builtin_only, op_list

    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path))
    converter.allow_custom_ops = True
    flat = converter.convert()
    assert ("CUSTOM:BitwiseAnd", 1) in op_list(flat)
    with pytest.raises(ExportError, match=r"non-builtin ops \(CUSTOM:BitwiseAnd\)"):
        check_builtin_only(flat, "float32")
    with pytest.raises(ExportError, match="Unknown TFLite variant"):
        convert(str(tmp_path), "int4")


@pytest.mark.parametrize("content,message", [(b"not a model", "not a loadable"), (None, "no such file")])
def test_bad_model_files(tmp_path, content, message):
    path = str(tmp_path / "m.keras")
    if content is not None:
        open(path, "wb").write(content)
    result = _export_here(["--model", path, "--out", str(tmp_path / "o")])
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_other_keras_model_is_refused(tmp_path):
    path = str(tmp_path / "dense.keras")
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(path)
    from keras_caps.export import load_capsnet
    from keras_caps.models.files import ModelFileError

    with pytest.raises(ModelFileError, match="not a keras_caps.CapsNet"):
        load_capsnet(path)


def legacy_python():
    """The venv with tflite-runtime 2.14 that .ci/run makes (or $TFLITE_RUNTIME_214_PYTHON)."""
    path = os.environ.get("TFLITE_RUNTIME_214_PYTHON", os.path.join(ROOT, ".venv-tflite214", "bin", "python"))
    return path if os.path.exists(path) else None


@pytest.mark.skipif(legacy_python() is None, reason="no tflite-runtime 2.14 venv: `bash .ci/run` makes .venv-tflite214")
def test_every_variant_runs_in_tflite_runtime_2_14(trained, tmp_path):
    _, _, model = trained
    from keras_caps.export import VARIANTS, export_saved_model

    saved = {i: export_saved_model(float32_copy(model, i), str(tmp_path / i)) for i in ("einsum", "grouped_conv")}
    saved["integer_only"] = export_saved_model(
        float32_copy(model, "grouped_conv"), str(tmp_path / "io"), integer_only=True
    )
    x = np.random.default_rng(4).uniform(0, 1, (4, 28, 28, 1)).astype("float32")
    paths = []
    runs = (
        [(v, i, "float32") for v in VARIANTS for i in ("einsum", "grouped_conv")]
        + [("int8", "grouped_conv", t) for t in ("int8", "uint8")]
        + [("int8", "integer_only", t) for t in ("float32", "int8", "uint8")]
    )
    for variant, source, io_type in runs:
        path = str(tmp_path / f"capsnet_{variant}_{source}_{io_type}.tflite")
        with open(path, "wb") as f:
            f.write(convert(saved[source], variant, x, io_type=io_type, integer_only=source == "integer_only"))
        paths.append(path)
    np.save(tmp_path / "x.npy", x)
    result = subprocess.run(
        [legacy_python(), os.path.join(ROOT, "tests", "legacy_runtime.py"), str(tmp_path / "x.npy"), str(tmp_path)]
        + paths,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for path in paths:
        old = np.load(path + ".npy")
        new = TFLiteModel(path)(x)  # ai-edge-litert
        # int8 BATCH_MATMUL with pre-transposed weights (adj_y) rounds one step apart in 2.14's kernel.
        np.testing.assert_allclose(old, new, atol=1e-4 if "_int8_" in path else 1e-5, err_msg=path)


def test_unknown_variant_is_refused_before_any_work(tmp_path):
    result = _export_here(["--model", "absent.keras", "--variants", "float32,int4", "--out", str(tmp_path / "o")])
    assert result.returncode != 0 and "--variants: choose from float32" in result.stderr
    assert not (tmp_path / "o").exists()


def test_export_cli_int8_with_the_squash_in_float(trained):
    folder, path, _ = trained
    from keras_caps.export.tflite import float_arithmetic

    out = folder / "dist_float_squash"
    result = _export_here(
        [
            "--model",
            path,
            "--out",
            str(out),
            "--data_dir",
            str(folder / "mnist"),
            "--latency_runs",
            "2",
            "--calibration_images",
            "8",
            "--variants",
            "int8",
            "--noint8_integer_only",
            "--int8_io",
            "uint8",
            "--notflm",  # TFLM has no float -> uint8 QUANTIZE
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    flat = open(out / "capsnet_int8.tflite", "rb").read()
    assert float_arithmetic(flat) == ["ARG_MAX", "DIV", "SQRT", "SQUARE", "SUM"]
    assert TFLiteModel(flat).input["dtype"] == np.uint8
    report = json.load(open(out / "report.json"))
    assert report["context"]["int8_integer_only"] is False and report["context"]["int8_io"] == "uint8"
    assert "squash in float" in open(out / "report.md").read()


def _export(args, timeout=600):
    return run_program("export", *args, timeout=timeout)


def _export_here(args):
    """`_export` in this process (tests.helpers.run_cli): 12 s less a call on a 2-core CPU."""
    return run_cli("export", *args)


def test_export_cli_scores_only_files_for_a_microcontroller(trained):
    folder, path, model = trained
    out = folder / "dist_micro"
    result = _export_here(
        [
            "--model",
            path,
            "--out",
            str(out),
            "--data_dir",
            str(folder / "mnist"),
            "--latency_runs",
            "2",
            "--calibration_images",
            "8",
            "--variants",
            "int8,float32",
            "--scores_only",
            "--c_array",
            "--int8_io",
            "int8",
            "--tflm_images",
            "12",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TFLite Micro: arena" in result.stdout
    flat = open(out / "capsnet_int8.tflite", "rb").read()
    # No decoder: two outputs (scores, class_id), no FULLY_CONNECTED left.
    from keras_caps.export import micro

    assert "FULLY_CONNECTED" not in micro.operator_counts(flat)
    runner = TFLiteModel(flat)
    assert len(runner.interpreter.get_output_details()) == 2
    x = np.random.default_rng(5).uniform(0, 1, (6, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(runner(x), model.predict(x, verbose=0), atol=0.1)
    report = json.load(open(out / "report.json"))
    assert report["context"]["scores_only"] is True
    row = next(r for r in report["files"] if r["file"] == "capsnet_int8.tflite")
    assert row["tflm_images"] == 12 and row["tflm_agreement"] >= 0.9
    # The C array holds exactly the file's bytes.
    source = open(out / "capsnet_int8.cc").read()
    values = bytes(int(v, 16) for v in source.split("{", 1)[1].split("}", 1)[0].replace(",", " ").split())
    assert values == flat and f"capsnet_int8_tflite_len = {len(flat)};" in source
    assert "extern const unsigned char capsnet_int8_tflite[];" in open(out / "capsnet_int8.h").read()


def test_an_inverting_models_files_invert_the_images_themselves(trained, tmp_path):
    """`invert_input` is inside the network: its files, float and int8 (in LiteRT and TFLite
    Micro), take the images as they are and score them as the Keras model does."""
    folder = trained[0]
    model, plain = (CapsNet(input_shape=(28, 28, 1), classes=10, invert_input=i, **TINY) for i in (True, False))
    model.set_weights(trained[2].get_weights())
    model.digit_caps.kernel.assign(model.digit_caps.kernel * 10)  # scores of tenths, not thousandths
    plain.set_weights(model.get_weights())
    path = str(tmp_path / "inverting.keras")
    model.save(path)
    out = tmp_path / "dist"
    flags = ["--model", path, "--out", str(out), "--data_dir", str(folder / "mnist"), "--latency_runs", "1"]
    flags += ["--calibration_images", "8", "--variants", "int8,float32", "--int8_io", "int8", "--tflm_images", "12"]
    result = _export_here([*flags, "--scores_only"])
    assert result.returncode == 0, result.stderr[-3000:]
    x = np.random.default_rng(6).uniform(0, 1, (6, 28, 28, 1)).astype("float32")
    wanted = model.predict(x, verbose=0)
    np.testing.assert_allclose(wanted, plain.predict(1 - x, verbose=0), atol=1e-6)
    float_file = TFLiteModel(str(out / "capsnet_float32.tflite"))
    np.testing.assert_allclose(float_file(x), wanted, atol=1e-5)
    assert np.abs(float_file(x) - plain.predict(x, verbose=0)).max() > 0.05  # the inversion is in the file
    # (an untrained network's int8 error: 0.023 on average here, inverting or not)
    np.testing.assert_allclose(TFLiteModel(str(out / "capsnet_int8.tflite"))(x), wanted, atol=0.05)
    report = json.load(open(out / "report.json"))
    row = next(r for r in report["files"] if r["file"] == "capsnet_int8.tflite")
    assert row["tflm_images"] == 12 and row["tflm_agreement"] >= 0.9
    # predict.py frames a digit photo for it as it does for the .keras model (report.json says it inverts)
    assert report["context"]["invert_input"] is True
    from PIL import Image

    from keras_caps.apps.predict import load_classifier

    photo = tmp_path / "ink.png"
    Image.fromarray(np.pad(np.full((12, 4), 20, np.uint8), 10, constant_values=235)).save(photo)
    lines = [
        run_cli("predict.py", "--model", m, str(photo)).stdout.split()[1:3]
        for m in (path, str(out / "capsnet_float32.tflite"))
    ]
    assert lines[0] == lines[1] and load_classifier(str(out / "capsnet_float32.tflite"))[3]


def test_export_cli_arena_limit_is_a_clear_error(trained):
    folder, path, _ = trained
    result = _export_here(
        [
            "--model",
            path,
            "--out",
            str(folder / "dist_small"),
            "--data_dir",
            str(folder / "mnist"),
            "--latency_runs",
            "1",
            "--calibration_images",
            "8",
            "--variants",
            "int8",
            "--scores_only",
            "--tflm_arena_limit",
            "4096",
        ]
    )
    assert result.returncode != 0
    assert "needs a tensor arena of" in result.stderr and "limit given is 4096 bytes" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--tflm_images=0", "--tflm_images must be >= 1"),
        ("--tflm_arena_limit=0", "--tflm_arena_limit must be >= 1 byte"),
        ("--mcu_mhz=0", "--mcu_mhz must be > 0"),
        ("--mcu_macs_per_cycle=-1", "--mcu_macs_per_cycle must be > 0"),
        ("--int8_capsule_implementation=matmul", "value should be one of <grouped_conv|einsum>"),
    ],
)
def test_bad_microcontroller_flags_are_refused_before_any_work(tmp_path, flag, message):
    result = _export_here(["--model", "absent.keras", "--out", str(tmp_path / "o"), flag])
    assert result.returncode != 0 and message in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("below", [False, True])
def test_an_out_that_is_a_file_is_refused_before_any_work(trained, tmp_path, below):
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" / "dist" if below else tmp_path / "f"
    # --data_dir is absent: the data are never read.
    result = _export_here(["--model", trained[1], "--out", str(out), "--data_dir", str(tmp_path / "absent")])
    assert result.returncode == 1
    assert f"error: --out {out}: {tmp_path / 'f'} is a file, not a folder." in result.stderr
    assert (tmp_path / "f").read_text() == "x"


def test_an_unwritable_out_is_refused_before_any_work(tmp_path, monkeypatch):
    from keras_caps.export import ExportConfig, export

    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as a user without the right (tests run as root)
    with pytest.raises(ExportError, match=f"`out` {tmp_path}/o: {tmp_path} is not writable"):
        export(ExportConfig(model="absent.keras", out=str(tmp_path / "o")))
    assert not (tmp_path / "o").exists()


def test_a_micro_model_exports_for_a_microcontroller_by_default(trained, tmp_path, monkeypatch):
    folder = trained[0]
    keras.utils.set_random_seed(0)
    model = CapsNet.from_architecture("micro", input_shape=(28, 28, 1), classes=10)
    model.compile(optimizer="adam")
    x = np.random.default_rng(0).uniform(0, 1, (40, 28, 28, 1)).astype("float32")
    model.fit(x, np.arange(40) % 10, batch_size=20, epochs=1, verbose=0)
    model.digit_caps.kernel.assign(model.digit_caps.kernel * 10)  # trained-size routing logits (see `trained`)
    path = str(tmp_path / "micro.keras")
    model.save(path)
    common = ["--model", path, "--data_dir", str(folder / "mnist"), "--latency_runs", "1"]
    common += ["--calibration_images", "8", "--tflm_images", "4", "--eval_images", "8"]
    out = tmp_path / "dist"
    result = _export_here([*common, "--out", str(out)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Target micro (a micro-architecture model; --target chooses another)." in result.stdout
    assert sorted(n for n in os.listdir(out) if n.startswith("capsnet")) == [
        "capsnet_int8.cc",
        "capsnet_int8.h",
        "capsnet_int8.tflite",
    ]
    runner = TFLiteModel(str(out / "capsnet_int8.tflite"))
    assert runner.input["dtype"] == np.int8 and len(runner.interpreter.get_output_details()) == 2
    report = json.load(open(out / "report.json"))
    assert report["context"]["target"] == "micro" and report["context"]["int8_capsule_implementation"] == "einsum"
    row = next(r for r in report["files"] if r["file"] == "capsnet_int8.tflite")
    assert row["size_bytes"] < 512 * 1024 and row["tflm_arena_bytes"] < 256 * 1024 and row["over_target"] == []
    assert "every file within them" in open(out / "report.md").read()

    # Over the target's limits (here made tiny): a warning on the command line and in the report.
    from keras_caps.export import targets

    monkeypatch.setitem(targets.TARGETS["micro"], "limits", {"size_bytes": 1024, "tflm_arena_bytes": 1024})
    result = _export_here([*common, "--out", str(tmp_path / "over"), "--target", "micro"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning: capsnet_int8.tflite: its flash takes" in result.stdout
    assert "over the micro target's 1 KiB" in result.stdout
    assert "its tensor arena takes" in open(tmp_path / "over" / "report.md").read()
