"""A user's own images end to end: train.py on a folder per class, predict.py naming
the classes, `python -m export --data_dir` writing labels.txt; bad folders and sizes."""

import json
import os
import re

import keras
import numpy as np
import pytest
from PIL import Image

from keras_caps import CapsNet
from tests.helpers import common, run_cli, train_here, write_image_folder, write_scans

CLASSES = ("cat", "dog", "sea horse")


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    write_image_folder(str(root / "train"), CLASSES, per_class=6, size=(24, 24))
    write_image_folder(str(root / "test"), CLASSES, per_class=2, size=(24, 24), seed=1)
    return str(root)


def _flags(data_dir, save_dir, *more):
    # Turned as photos may be: the run trains through the rotation (static shapes kept), and
    # the same seed turns alike whether the images come from memory or from their files.
    return (*common(data_dir, save_dir, batch_size=6), "--epochs", "1", "--rotation", "10", *more)


@pytest.fixture(scope="module")
def trained(colour_folder, tmp_path_factory):
    save = str(tmp_path_factory.mktemp("run"))
    result = train_here(*_flags(colour_folder, save))
    assert result.returncode == 0, result.stderr[-3000:]
    return save, result


def test_a_colour_folder_trains_and_the_class_names_travel(trained):
    save, result = trained
    assert "18 train, 6 test images of 3 classes, shape (24, 24, 3)" in result.stdout
    metrics = json.load(open(os.path.join(save, "metrics.json")))
    assert metrics["class_names"] == list(CLASSES) and metrics["image_shape"] == [24, 24, 3]
    assert metrics["data_in_memory"] is True
    import keras

    model = keras.models.load_model(os.path.join(save, "best.keras"))
    assert model.class_names == list(CLASSES) and model.image_shape == (24, 24, 3)
    assert model.reconstruct(np.zeros((1, 24, 24, 3), "float32")).shape == (1, 24, 24, 3)


def test_the_run_scores_each_class_and_draws_its_confusion_matrix(trained):
    save, result = trained
    metrics = json.load(open(os.path.join(save, "metrics.json")))
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum(axis=1).tolist() == [2, 2, 2]
    # Counted in its own pass over the test set, it agrees with Keras's evaluation.
    assert np.trace(matrix) / 6 == pytest.approx(metrics["test_accuracy"])
    rows = metrics["per_class"]
    assert [r["class"] for r in rows] == list(CLASSES) and [r["images"] for r in rows] == [2, 2, 2]
    assert [r["correct"] for r in rows] == np.diag(matrix).tolist()
    assert os.path.getsize(metrics["figures"]["confusion"]) > 0
    if np.trace(matrix) < 6:  # the line names the weakest class, with the class its images went to
        worst = min(rows, key=lambda r: r["accuracy"])
        assert f"Weakest classes: {worst['class']} {100 * worst['accuracy']:.2f}% (" in result.stdout
    else:
        assert "Weakest classes" not in result.stdout


def test_the_images_it_got_wrong_are_listed_by_file_most_confident_first(trained, colour_folder):
    import csv

    save, result = trained
    metrics = json.load(open(os.path.join(save, "metrics.json")))
    matrix = np.array(metrics["confusion_matrix"])
    with open(metrics["mistakes"]) as fh:
        rows = list(csv.DictReader(fh))
    counted = np.zeros_like(matrix)
    for row in rows:  # each a test file, under its own class's folder, that the model took for another
        folder = os.path.normpath(os.path.join(colour_folder, "test", row["class"]))
        assert os.path.normpath(os.path.dirname(row["image"])) == folder and os.path.isfile(row["image"])
        assert row["predicted"] != row["class"] and float(row["score"]) >= float(row["class_score"])
        counted[CLASSES.index(row["class"]), CLASSES.index(row["predicted"])] += 1
    np.testing.assert_array_equal(counted, matrix - np.diag(np.diag(matrix)))  # the matrix's errors, each once
    scores = [float(row["score"]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    assert (f"The {len(rows)} test image" in result.stdout) == bool(rows)


def test_predict_prints_the_class_name_beside_id_and_score(trained, colour_folder):
    save, _ = trained
    image = os.path.join(colour_folder, "test", "sea horse", "01.png")
    result = run_cli("predict.py", "--model", os.path.join(save, "best.keras"), image)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith(image + " ")
    class_id, score, class_name = line[len(image) + 1 :].split(" ", 2)
    assert class_name == CLASSES[int(class_id)] and 0 <= float(score) <= 1


def test_streaming_from_files_trains_alike(colour_folder, trained, tmp_path):
    """--cache none reads the files as it trains: the same seed gives the same model."""
    save, _ = trained
    streamed = str(tmp_path / "streamed")
    result = train_here(*_flags(colour_folder, streamed, "--cache", "none"))
    assert result.returncode == 0, result.stderr[-3000:]
    # The library names its argument (`cache`); train.py's output names the flag.
    assert "read from the files as training goes" in result.stdout and "; --cache memory holds them)" in result.stdout
    first = json.load(open(os.path.join(save, "metrics.json")))
    second = json.load(open(os.path.join(streamed, "metrics.json")))
    assert second["data_in_memory"] is False
    assert second["test_loss"] == pytest.approx(first["test_loss"], rel=1e-5)
    # Its test files come in their split's order too: the same images listed wrong, as the same classes.
    import csv

    listed = [[row[:3] for row in csv.reader(open(run["mistakes"]))] for run in (first, second)]
    assert sorted(listed[0]) == sorted(listed[1])  # (near-equal scores may swap places)


def test_grey_images_dark_on_light_are_inverted_by_the_model_and_others_not(trained, tmp_path):
    scans = str(tmp_path / "scans")
    write_scans(scans, 6, 2)
    result = train_here(*_flags(scans, str(tmp_path / "run")))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "Inverting the images inside the model (--invert_input auto: grey images, their edges' median "
        "brightness 1.00, a light background)" in result.stdout
    )
    assert keras.saving.load_model(str(tmp_path / "run" / "final.keras")).invert_input
    # predict.py gives the model the scans as they are (it inverts them itself): its score is the model's
    model_path = str(tmp_path / "run" / "final.keras")
    image = os.path.join(scans, "test", "pole", "0.png")
    predicted = run_cli("predict.py", "--model", model_path, image)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    _, score, _ = predicted.stdout.strip()[len(image) + 1 :].split(" ", 2)
    pixels = np.asarray(Image.open(image), np.float32)[None, :, :, None] / 255
    assert float(score) == pytest.approx(keras.saving.load_model(model_path).predict(pixels, verbose=0).max(), abs=1e-3)
    assert "Inverting" not in trained[1].stdout  # colour images


@pytest.mark.parametrize(
    "args,message",
    [
        (("--image_size", "12,12"), "is too small for convolutions"),
        (("--image_size", "12,x"), "--image_size must be HEIGHT,WIDTH"),
        (("--color_mode", "cmyk"), "FATAL Flags parsing error"),
        (("--test_split", "0.3"), "has a test/ folder; --test_split applies to a single tree only"),
        (("--image_size", "300,300"), r"too large for this architecture.*GB in float32.*--image_size.*micro"),
    ],
)
def test_bad_folder_settings_are_one_line_errors(colour_folder, tmp_path, args, message):
    result = train_here(*_flags(colour_folder, str(tmp_path / "r"), *args))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert re.search(message, result.stderr), result.stderr


def test_a_huge_input_is_refused_before_its_weights_are_made():
    import resource
    import time

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"346112 primary capsules.*1\.\d\d GB.*`image_size`.*`conv_strides`.*micro"):
        CapsNet.from_architecture("paper", input_shape=(224, 224, 3), classes=10)
    assert time.perf_counter() - start < 10
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200  # the 1.8 GB digit-capsule weight was never allocated
    # the same image through a strided stem fits
    model = CapsNet.from_architecture("micro", input_shape=(224, 224, 3), classes=10)
    assert model.image_shape == (224, 224, 3)


def test_class_names_must_name_every_class():
    with pytest.raises(ValueError, match="must name each of the 3 classes, got 2 names"):
        CapsNet(input_shape=(28, 28, 1), classes=3, class_names=["a", "b"])
    model = CapsNet(input_shape=(28, 28, 1), classes=2, class_names=["a", "b"])
    assert CapsNet.from_config(model.get_config()).class_names == ["a", "b"]


@pytest.mark.slow
def test_export_on_the_folder_writes_labels_and_named_c_arrays(trained, colour_folder, tmp_path):
    save, _ = trained
    out = str(tmp_path / "dist")
    result = run_cli(
        "export",
        "--model",
        os.path.join(save, "best.keras"),
        "--data_dir",
        colour_folder,
        "--out",
        out,
        "--variants",
        "int8",
        "--int8_io",
        "uint8",
        "--c_array",
        "--latency_runs",
        "2",
        "--tflm_images",
        "2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert open(os.path.join(out, "labels.txt")).read().splitlines() == list(CLASSES)
    report = json.load(open(os.path.join(out, "report.json")))
    assert report["context"]["class_names"] == list(CLASSES) and report["context"]["eval_images"] == 6
    source = open(os.path.join(out, "capsnet_int8.cc")).read()
    assert 'capsnet_int8_tflite_labels[] = {\n  "cat",\n  "dog",\n  "sea horse",\n};' in source
    assert "extern const char* const capsnet_int8_tflite_labels[];" in open(os.path.join(out, "capsnet_int8.h")).read()
    from keras_caps.export.litert import TFLiteModel

    runner = TFLiteModel(os.path.join(out, "capsnet_int8.tflite"))
    assert runner.image_shape == (24, 24, 3) and runner.input["dtype"] == np.uint8
    image = os.path.join(colour_folder, "test", "dog", "00.png")
    result = run_cli("predict.py", "--model", os.path.join(out, "capsnet_int8.tflite"), image)
    assert result.returncode == 0 and result.stdout.split(" ", 3)[3].strip() in CLASSES


def test_auto_chooses_the_architecture_from_the_images():
    from keras_caps.models.capsnet import MAX_WEIGHT_BYTES, choose_architecture, weight_bytes

    assert choose_architecture((28, 28, 1), 10)[0] == "paper"
    assert choose_architecture((32, 32, 3), 10)[0] == "paper_norm"
    name, why = choose_architecture((224, 224, 3), 10)
    assert name == "micro" and "too large for paper_norm" in why
    # the arithmetic is the built model's
    for shape, arch in (((28, 28, 1), "paper"), ((40, 36, 3), "paper_norm"), ((64, 64, 3), "micro")):
        model = CapsNet.from_architecture(arch, input_shape=shape, classes=7)
        digit = model.digit_caps.kernel.shape
        decoder = model.decoder_layers[-1].kernel.shape
        expected = 4 * (np.prod(digit) + (decoder[0] + 1) * decoder[1])
        assert weight_bytes(arch, shape, 7) == expected
    assert weight_bytes("paper", (224, 224, 3), 10) > MAX_WEIGHT_BYTES
    assert weight_bytes("paper", (16, 16, 1), 10) == 0  # too small for its convolutions


def test_the_run_says_which_architecture_auto_chose(trained):
    save, result = trained
    assert re.search(
        r"Test accuracy \d+\.\d\d% \(error \d+\.\d\d%\) on \d+ \w+ images; 1 epoch, \d+ s this run", result.stdout
    )
    assert "Architecture paper_norm, chosen by --architecture auto: colour images" in result.stdout
    metrics = json.load(open(os.path.join(save, "metrics.json")))
    assert metrics["architecture"] == "paper_norm" and metrics["config"]["architecture"] == "auto"


def test_a_colour_tfds_set_trains_streamed_from_its_files(tmp_path, monkeypatch):
    """TFDS's mock data stands in for cifar10: read from its files (--cache none), colour, named classes."""
    import tensorflow_datasets as tfds

    from keras_caps.data import datasets

    monkeypatch.setattr(datasets, "_can_resolve", lambda host: True)
    save = str(tmp_path / "cifar")
    with tfds.testing.mock_data(num_examples=12):
        flags = [f for f in _flags("", save, "--cache", "none") if f != ""]
        flags.remove("--data_dir")
        result = train_here("--dataset", "cifar10", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "read from TFDS's files as training goes" in result.stdout
    metrics = json.load(open(os.path.join(save, "metrics.json")))
    assert metrics["image_shape"] == [32, 32, 3] and metrics["architecture"] == "paper_norm"
    assert len(metrics["class_names"]) == 10 and metrics["data_in_memory"] is False


def test_a_keras_image_folder_dataset_is_told_to_scale_its_images(tmp_path):
    """`keras.utils.image_dataset_from_directory` gives pixels in [0, 255]: `CapsNet.fit` names
    the range and the fix before a step, and the fixed dataset trains."""
    from tests.helpers import small_model

    write_image_folder(str(tmp_path / "images"), ("cat", "dog"), per_class=4, size=(12, 12), mode="L")
    images = keras.utils.image_dataset_from_directory(
        str(tmp_path / "images"), image_size=(12, 12), color_mode="grayscale", batch_size=4, verbose=False
    )
    model = small_model(classes=2)
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"to 255 in its first batch: divide them by 255 \(in a tf\.data pipeline"):
        model.fit(images, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 0
    scaled = images.map(lambda x, y: (x / 255, y))
    model.fit(scaled, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 2
    with pytest.raises(ValueError, match=r"CapsNet\.evaluate: .*to 255 in its first batch"):
        model.evaluate(images, verbose=0)
