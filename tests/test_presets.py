"""Presets: writing and loading them, their checks and errors, and the shipped ones' provenance."""

import io
import json
import os
import shutil

import numpy as np
import pytest

from keras_caps import CapsNet
from keras_caps.models import presets
from keras_caps.models.files import ModelFileError, load_capsnet
from tests.helpers import small_model, toy_data


@pytest.fixture(scope="module")
def toy_preset(tmp_path_factory):
    """A small trained-for-a-step CapsNet saved as a preset, with its images."""
    x, y = toy_data(n=24)
    model = small_model(class_names=["tl", "tr", "bl"])
    model.compile(optimizer="adam")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    folder = str(tmp_path_factory.mktemp("presets") / "toy")
    model.save_to_preset(folder, {"dataset": "toy", "test_accuracy": 0.5})
    return folder, model, x


def test_round_trip_keeps_predictions_and_records_provenance(toy_preset):
    folder, model, x = toy_preset
    loaded = CapsNet.from_preset(folder)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert not loaded.compiled  # the weights alone, no optimizer state
    meta = json.load(open(os.path.join(folder, presets.METADATA_FILE)))
    assert meta["dataset"] == "toy" and meta["test_accuracy"] == 0.5
    assert meta["class_names"] == ["tl", "tr", "bl"] and meta["image_shape"] == [12, 12, 1]
    assert meta["keras_version"] and meta["tensorflow_version"] and meta["date"].endswith("Z")
    assert sorted(meta["files"]) == ["labels.txt", "model.keras"]
    assert meta["files"]["model.keras"] == presets.sha256(os.path.join(folder, "model.keras"))
    assert open(os.path.join(folder, "labels.txt")).read() == "tl\ntr\nbl\n"


def test_a_preset_with_new_classes_keeps_its_stem_under_a_new_head(toy_preset):
    from keras_caps.models.transfer import stem_layers

    folder, model, x = toy_preset
    new = CapsNet.from_preset(folder, class_names=["a", "b"], input_shape=(14, 12, 1))
    assert (new.classes, new.class_names, new.image_shape) == (2, ["a", "b"], (14, 12, 1))
    for kept, source in zip(stem_layers(new), stem_layers(model)):
        for a, b in zip(kept.get_weights(), source.get_weights()):
            np.testing.assert_array_equal(a, b)
    assert CapsNet.from_preset(folder, input_shape=(16, 16, 1)).class_names == ["tl", "tr", "bl"]
    assert CapsNet.from_preset(folder, classes=3).class_names is None  # a new task's classes
    assert CapsNet.from_preset(folder, input_shape=(12, 12, 3)).conv1.kernel.shape[2] == 3  # grey to colour
    with pytest.raises(ValueError, match=r"`input_shape` must be \(height, width, channels\).*got \(12, 12\)"):
        CapsNet.from_preset(folder, input_shape=(12, 12))


@pytest.fixture
def shipped(toy_preset, tmp_path, monkeypatch):
    """The toy preset as the only one shipped with the package."""
    root = tmp_path / "shipped"
    shutil.copytree(toy_preset[0], root / "toy")
    monkeypatch.setattr(presets, "SHIPPED_DIR", str(root))
    return root / "toy"


def test_shipped_presets_load_by_name_and_are_listed(shipped, toy_preset, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # a name, not a path
    _, model, x = toy_preset
    np.testing.assert_allclose(CapsNet.from_preset("toy").predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert load_capsnet("toy").class_names == ["tl", "tr", "bl"]
    listed = presets.presets()
    assert list(listed) == ["toy"] and listed["toy"]["test_accuracy"] == 0.5
    assert "files" not in listed["toy"]


def test_unknown_name_lists_the_shipped_ones(shipped, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(presets.PresetError, match=r"'tyo': no such preset or folder \(shipped presets: toy\)"):
        CapsNet.from_preset("tyo")
    with pytest.raises(ModelFileError, match=r"tyo: no such file, and no preset of that name \(shipped presets: toy\)"):
        load_capsnet("tyo")


def test_a_folder_that_is_not_a_preset_says_what_is_missing(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"x")
    with pytest.raises(presets.PresetError, match="not a preset: it has no metadata.json .*holds model.keras"):
        CapsNet.from_preset(str(tmp_path))
    with pytest.raises(ModelFileError, match="neither a preset"):
        load_capsnet(str(tmp_path))


def test_a_missing_or_corrupted_file_is_named(toy_preset, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(toy_preset[0], folder)
    os.remove(folder / "labels.txt")
    with pytest.raises(presets.PresetError, match="incomplete preset: labels.txt is missing"):
        CapsNet.from_preset(str(folder))
    shutil.copy(os.path.join(toy_preset[0], "labels.txt"), folder / "labels.txt")
    data = bytearray((folder / "model.keras").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights
    (folder / "model.keras").write_bytes(bytes(data))
    with pytest.raises(presets.PresetError, match=r"model.keras: corrupted or replaced: its sha256"):
        CapsNet.from_preset(str(folder))
    with pytest.raises(ModelFileError, match="corrupted or replaced"):  # the front ends' loader too
        load_capsnet(str(folder))


def test_device_preset_takes_the_int8_file_and_its_figures(toy_preset, tmp_path):
    _, model, _ = toy_preset
    export = tmp_path / "dist"
    export.mkdir()
    (export / "capsnet_int8.tflite").write_bytes(b"TFL3" * 10)
    (export / "capsnet_int8.h").write_text("// header\n")
    row = {"file": "capsnet_int8.tflite", "size_bytes": 40, "accuracy": 0.9, "tflm_arena_bytes": 1234}
    report = {"context": {"model": "m", "int8_io": "int8"}, "files": [row]}
    (export / "report.json").write_text(json.dumps(report))
    meta = model.save_to_preset(str(tmp_path / "p"), device_dir=str(export))
    assert meta["device"]["flash_bytes"] == 40 and meta["device"]["tflm_arena_bytes"] == 1234
    assert meta["device"]["export"] == {"int8_io": "int8"}
    assert {"capsnet_int8.tflite", "capsnet_int8.h"} <= set(meta["files"])
    presets.verify(str(tmp_path / "p"))
    os.remove(export / "report.json")
    with pytest.raises(presets.PresetError, match="needs the export's capsnet_int8.tflite and report.json"):
        model.save_to_preset(str(tmp_path / "q"), device_dir=str(export))


def test_predict_names_classes_from_a_preset(shipped, monkeypatch, tmp_path):
    from PIL import Image

    from keras_caps.apps.predict import predict_files

    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.zeros((12, 12), np.uint8)).save("a.png")
    out = io.StringIO()
    assert predict_files("toy", ["a.png"], out=out, err=io.StringIO()) == 0
    assert out.getvalue().split()[0] == "a.png" and out.getvalue().split()[-1] in ("tl", "tr", "bl")
    with pytest.raises(ModelFileError, match="no preset of that name"):
        predict_files("toyy", ["a.png"], out=out, err=io.StringIO())


# ---------------------------------------------------------------- the shipped presets' provenance
def check_preset(name_or_dir):
    """A shipped preset's claims: its files' hashes, and its accuracy on its own slice of
    real test images against the full test set's figure in its metadata, within the
    slice's binomial error (three standard deviations, one image more for rounding).
    Returns the accuracies measured on the slice (Keras, and the int8 file if any)."""
    directory = presets.resolve(name_or_dir)
    meta = presets.verify(directory)
    check = meta["check_images"]
    with np.load(os.path.join(directory, check["file"])) as arrays:
        images, labels = arrays["images"], arrays["labels"]
    assert len(images) == len(labels) == check["count"]
    n, p = len(labels), meta["test_accuracy"]
    least = n * p - 3 * np.sqrt(n * p * (1 - p)) - 1
    model = CapsNet.from_preset(directory)
    correct = int(np.sum(np.argmax(model.predict(images.astype("float32") / 255, verbose=0), -1) == labels))
    assert correct >= least, f"{directory}: {correct} of {n} check images right; accuracy {p} needs {least:.1f}"
    found = {"keras": correct / n}
    if "device" in meta:
        from keras_caps.export.litert import TFLiteModel

        runner = TFLiteModel(os.path.join(directory, meta["device"]["tflite"]))
        scores = np.concatenate([runner(images[i : i + 1].astype("float32") / 255) for i in range(n)])
        found["int8"] = float(np.mean(np.argmax(scores, -1) == labels))
        int8_least = (n * meta["device"]["accuracy"] - 3 * np.sqrt(n * p * (1 - p)) - 1) / n
        assert found["int8"] >= int8_least, f"{directory}: the int8 file gets {found['int8']:.3f} of the check images"
    return found


@pytest.mark.skipif(not presets.shipped_names(), reason="no preset is shipped in this checkout")
@pytest.mark.parametrize("name", presets.shipped_names())
def test_shipped_preset_files_and_accuracy(name):
    meta = presets.read_metadata(os.path.join(presets.SHIPPED_DIR, name))
    found = check_preset(name)
    # The slice's own accuracies were recorded when the preset was made; they must come back.
    assert found["keras"] == pytest.approx(meta["check_images"]["keras_accuracy"])
    if "int8" in found:
        assert found["int8"] == pytest.approx(meta["check_images"]["int8_accuracy"])
    for key in ("dataset", "class_names", "test_accuracy", "command", "seed", "machine", "date", "keras_version"):
        assert meta.get(key) is not None, key


@pytest.mark.skipif(not presets.shipped_names(), reason="no preset is shipped in this checkout")
def test_the_provenance_check_fails_on_swapped_weights(tmp_path):
    name = presets.shipped_names()[0]
    source = os.path.join(presets.SHIPPED_DIR, name)
    meta = presets.read_metadata(source)
    folder = tmp_path / name
    shutil.copytree(source, folder)
    trained = CapsNet.from_preset(source)
    fresh = CapsNet.from_config(trained.get_config())  # the same architecture, untrained
    # Re-hashed: the files check passes, so only the accuracy check can catch it.
    fresh.save_to_preset(str(folder), {k: v for k, v in meta.items() if k not in ("files", "device")})
    with pytest.raises(AssertionError, match="check images right"):
        check_preset(str(folder))


# ---------------------------------------------------------------- train.py and presets
@pytest.mark.slow
def test_a_run_writes_a_preset_that_tests_and_fine_tunes(mnist_dir, tmp_path):
    from tests.helpers import common, train_here

    save = str(tmp_path / "run")
    result = train_here(*common(mnist_dir, save), "--epochs", "1", "--nofigures")
    assert result.returncode == 0, result.stderr[-3000:]
    preset = os.path.join(save, "preset")
    meta = presets.verify(preset)
    metrics = json.load(open(os.path.join(save, "metrics.json")))
    assert metrics["preset"] == preset and meta["test_accuracy"] == metrics["test_accuracy"]
    assert meta["command"].startswith("python train.py") and "--epochs=1" in meta["command"]
    assert meta["seed"] == 1 and meta["dataset"] == "mnist" and meta["epochs"] == 1 and meta["machine"]

    tested = train_here("--testing", "--weights", preset, "--data_dir", mnist_dir, "--save_dir", save, "--nofigures")
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert json.load(open(os.path.join(save, "test_metrics.json")))["test_accuracy"] == pytest.approx(
        metrics["test_accuracy"], abs=1e-6
    )
    tuned = str(tmp_path / "tuned")
    result = train_here(*common(mnist_dir, tuned), "--epochs", "1", "--weights", preset, "--nofigures")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Fine-tuning" in result.stdout and presets.verify(os.path.join(tuned, "preset"))


@pytest.mark.slow
def test_a_preset_that_does_not_fit_the_data_is_refused_before_training(toy_preset, mnist_dir, tmp_path):
    from tests.helpers import common, train_here

    save = tmp_path / "run"
    result = train_here(*common(mnist_dir, str(save)), "--epochs", "1", "--weights", toy_preset[0])
    assert result.returncode == 1
    assert (
        f"error: --weights {toy_preset[0]} does not fit mnist: it takes (12, 12, 1) images, the data has (28, 28, 1); "
        "it has 3 classes, the data 10. --transfer keeps its convolutions and primary capsules and trains new "
        "class capsules and decoder for the data." in result.stderr
    )
    assert not (save / "checkpoints").exists()


# ---------------------------------------------------------------- the front ends on the shipped preset
needs_shipped = pytest.mark.skipif("mnist_micro" not in presets.shipped_names(), reason="mnist_micro not shipped")


@pytest.mark.slow
@needs_shipped
def test_predict_with_the_shipped_preset_needs_no_data_and_no_training():
    from tests.helpers import run_program

    examples = os.path.join(presets.SHIPPED_DIR, "mnist_micro", "examples")
    files = [os.path.join(examples, f"{digit}.png") for digit in (3, 7)]
    result = run_program("predict.py", "--model", "mnist_micro", *files)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [line.split()[1] for line in result.stdout.splitlines()] == ["3", "7"]


@pytest.mark.slow
@needs_shipped
def test_export_and_fine_tuning_take_the_shipped_preset(mnist_dir, tmp_path):
    from tests.helpers import common, run_cli, train_here

    out = tmp_path / "dist"
    args = ["--model", "mnist_micro", "--out", str(out), "--data_dir", mnist_dir, "--latency_runs", "1"]
    result = run_cli("export", *args, "--calibration_images", "8", "--tflm_images", "2", "--eval_images", "8")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Target micro" in result.stdout and (out / "capsnet_int8.cc").is_file()
    assert open(out / "labels.txt").read().split() == [str(d) for d in range(10)]

    save = str(tmp_path / "tuned")
    result = train_here(*common(mnist_dir, save), "--epochs", "1", "--weights", "mnist_micro", "--nofigures")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.load(open(os.path.join(save, "metrics.json")))["architecture"] == "micro"


@pytest.mark.slow
@needs_shipped
def test_the_shipped_preset_transfers_to_colour_images_of_other_classes_and_size(tmp_path):
    from tests.helpers import common, train_here, write_image_folder

    folder = str(tmp_path / "pets")
    write_image_folder(folder, classes=("cat", "dog", "fox"), per_class=5, size=(20, 24))
    save = str(tmp_path / "run")
    result = train_here(*common(folder, save, batch_size=4), "--epochs", "1", "--weights", "mnist_micro", "--transfer")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Transfer from mnist_micro: its convolutions and primary capsules" in result.stdout
    assert "made for 1-channel images, adapted to 3" in result.stdout
    metrics = json.load(open(os.path.join(save, "metrics.json")))
    assert metrics["class_names"] == ["cat", "dog", "fox"] and metrics["image_shape"] == [20, 24, 3]
    assert metrics["architecture"] == "micro" and presets.verify(os.path.join(save, "preset"))
