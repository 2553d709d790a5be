"""The image loader and `predict.py` on all three model formats."""

import contextlib
import io
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from PIL import Image

from keras_caps import CapsNet
from keras_caps.apps.predict import load_classifier, predict_files
from keras_caps.data.images import ImageFileError, load_image, to_model_input
from keras_caps.training import precision
from tests.helpers import SMALL, program_module, run_cli, run_program, small_model


def digit(size=28):
    """A bright '7'-like stroke on black, MNIST style."""
    img = np.zeros((size, size), np.uint8)
    img[6:9, 7:21] = 255
    for r in range(9, 23):
        c = 20 - (r - 9) // 2
        img[r, c - 1 : c + 2] = 255
    return img


def test_ink_polarity_size_and_position_do_not_matter():
    plain = to_model_input(Image.fromarray(digit()), (28, 28, 1))
    assert plain.shape == (28, 28, 1) and plain.dtype == np.float32
    assert 0 <= plain.min() and plain.max() <= 1
    photo = Image.new("RGB", (300, 180), (230, 228, 220))
    ink = Image.fromarray(255 - digit()).resize((120, 120), Image.NEAREST).convert("RGB")
    photo.paste(ink, (20, 40))
    processed = to_model_input(photo, (28, 28, 1))
    # Same digit, same place: the two inputs overlap almost entirely.
    overlap = np.minimum(plain, processed).sum() / np.maximum(plain, processed).sum()
    assert overlap > 0.6
    ys, xs = np.nonzero(processed[..., 0] > 0.3)
    assert abs(ys.mean() - 14) < 3 and abs(xs.mean() - 14) < 3


def test_blank_and_rgb_models():
    assert to_model_input(Image.new("L", (40, 40), 0), (28, 28, 1)).max() == 0
    rgb = to_model_input(Image.new("RGB", (64, 48), (255, 0, 0)), (32, 32, 3))
    assert rgb.shape == (32, 32, 3) and rgb[..., 0].min() == 1.0 and rgb[..., 1].max() == 0.0


def test_models_of_other_sets_get_a_plain_resize_in_their_channels():
    """Not MNIST digits: no inversion, cropping or centring; the model's channels, 1 to 4."""
    image = Image.new("RGB", (20, 10), (200, 100, 50))
    image.putpixel((0, 0), (0, 0, 0))
    grey = to_model_input(image, (10, 20, 1), digits=False)
    assert grey.shape == (10, 20, 1)
    expected = (200 * 299 + 100 * 587 + 50 * 114) / 1000 / 255  # Pillow's luminance, not inverted
    assert grey[5, 10, 0] == pytest.approx(expected, abs=1 / 255)
    rgba = to_model_input(image, (5, 10, 4), digits=False)
    assert rgba.shape == (5, 10, 4) and rgba[..., 3].min() == 1.0
    assert to_model_input(image, (5, 10, 2), digits=False).shape == (5, 10, 2)
    with pytest.raises(ValueError, match="1 to 4"):
        to_model_input(image, (5, 10, 5))


def test_labels_txt_is_read_beside_a_file_or_in_a_folder(tmp_path):
    from keras_caps.models.labels import read_labels, write_labels

    assert read_labels(str(tmp_path / "m.tflite")) is None
    write_labels(["T-shirt/top", "Ankle boot"], str(tmp_path))
    assert (tmp_path / "labels.txt").read_text() == "T-shirt/top\nAnkle boot\n"
    assert read_labels(str(tmp_path / "m.tflite")) == ["T-shirt/top", "Ankle boot"]
    (tmp_path / "saved_model").mkdir()
    assert read_labels(str(tmp_path / "saved_model")) == ["T-shirt/top", "Ankle boot"]  # beside the folder


@pytest.mark.parametrize(
    "content,message",
    [(None, "no such file"), (b"", "not a readable image"), (b"GIF89a-not-really", "not a readable image")],
)
def test_bad_image_files(tmp_path, content, message):
    path = str(tmp_path / "x.png")
    if content is not None:
        open(path, "wb").write(content)
    with pytest.raises(ImageFileError, match=message) as info:
        load_image(path)
    assert path in str(info.value)


def test_truncated_png(tmp_path):
    path = tmp_path / "t.png"
    Image.fromarray(digit()).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageFileError, match="not a readable image"):
        load_image(str(path))


def test_batch_size_and_format_flags_reach_predict_files_and_bad_values_are_refused(monkeypatch):
    import keras_caps.apps.predict as library

    calls = []
    monkeypatch.setattr(library, "predict_files", lambda model, files, **kwargs: calls.append(kwargs) or 0)
    assert run_cli("predict.py", "--model", "m.keras", "a.png").returncode == 0
    assert run_cli("predict.py", "--model", "m.keras", "--batch_size", "3", "--format", "csv", "a.png").returncode == 0
    assert calls == [{"batch_size": 64, "output_format": "text"}, {"batch_size": 3, "output_format": "csv"}]
    result = run_cli("predict.py", "--model", "m.keras", "--batch_size", "0", "a.png")
    assert result.returncode == 1 and "--batch_size=0: 0 is not a positive integer" in result.stderr
    result = run_cli("predict.py", "--model", "m.keras", "--format", "xml", "a.png")
    assert result.returncode == 1 and "--format=xml: value should be one of <text|csv>" in result.stderr
    assert len(calls) == 2
    values = flags.FlagValues()
    program_module("predict.py").define_flags(values)
    assert values["format"].parser.enum_values == list(library.FORMATS)  # the CLI offers what the library writes


def test_csv_output_quotes_names_with_spaces_and_commas(tmp_path):
    """A file and class names that split a text line apart come back whole from CSV, with the
    class and score of the text line (and of the model itself)."""
    import csv

    keras.utils.set_random_seed(0)
    names = ["sea horse", "cat, tabby", "dog"]
    model = small_model(classes=3, class_names=names)
    model.save(str(tmp_path / "m.keras"))
    files = []
    for i, name in enumerate(["a b, c.png", 'quote".png']):
        files.append(str(tmp_path / name))
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (12, 12), dtype=np.uint8)).save(files[-1])
    out, text = io.StringIO(), io.StringIO()
    assert predict_files(str(tmp_path / "m.keras"), files, out=out, output_format="csv") == 0
    predict_files(str(tmp_path / "m.keras"), files, out=text)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == ["file", "class", "score", "class_name"] and [r[0] for r in rows[1:]] == files
    scores = model.predict(
        np.stack([to_model_input(load_image(f), (12, 12, 1), digits=False) for f in files]), verbose=0
    )
    for row, line, expected in zip(rows[1:], text.getvalue().splitlines(), scores):
        assert int(row[1]) == int(expected.argmax()) and row[3] == names[int(row[1])]
        assert float(row[2]) == pytest.approx(float(expected.max()), abs=1e-5)
        assert line == f"{row[0]} {row[1]} {float(row[2]):.4f} {row[3]}"
    with pytest.raises(ValueError, match="`output_format` must be one of text, csv, got 'json'"):
        predict_files(str(tmp_path / "m.keras"), files, output_format="json")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from keras_caps.export import convert, export_saved_model, float32_copy

    folder = tmp_path_factory.mktemp("predict")
    keras.utils.set_random_seed(0)
    model = CapsNet(conv_filters=16, primary_channels=4, digit_dim=8, decoder_units=(32, 64))
    model.save(str(folder / "m.keras"))
    saved = export_saved_model(float32_copy(model), str(folder / "saved_model"))
    with open(folder / "m.tflite", "wb") as f:
        f.write(convert(saved, "float32"))
    Image.fromarray(digit()).save(folder / "a.png")
    Image.fromarray(255 - digit()).resize((90, 70)).convert("RGB").save(folder / "b.jpg")
    open(folder / "c.png", "wb").write(b"not an image")
    return folder, model


# The command line and predict_files on exported files: the slow tier (pytest -m 'not slow' skips them).
# The .tflite file (what a device gets) runs in a new process, as a user runs it; the other
# formats in this process (tests.helpers.run_cli: the same flags and main, 12 s less a call).
@pytest.mark.slow
@pytest.mark.parametrize("name", ["m.keras", "saved_model", "m.tflite"])
def test_cli_on_each_format(models, name):
    folder, model = models
    images = [str(folder / "a.png"), str(folder / "b.jpg")]
    predict = run_program if name == "m.tflite" else run_cli
    result = predict("predict.py", "--model", folder / name, *images, folder / "c.png", folder / "gone.png")
    assert result.returncode == 1  # two files could not be read
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == images
    for line, path in zip(lines, images):
        x = to_model_input(load_image(path), (28, 28, 1))[None]
        scores = model.predict(x, verbose=0)[0]
        assert int(line.split()[1]) == int(scores.argmax())
        assert float(line.split()[2]) == pytest.approx(float(scores.max()), abs=1e-3)
    assert "c.png: not a readable image" in result.stderr and "gone.png: no such file" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_cli_bad_models(models, tmp_path):
    folder, _ = models
    fake = tmp_path / "fake.tflite"
    fake.write_bytes(b"TFL3 but not really")
    for model, message in (
        (fake, "not a runnable TFLite model"),
        (tmp_path / "none.keras", "no such file"),
        (tmp_path, "not a SavedModel"),
    ):
        result = run_cli("predict.py", "--model", model, folder / "a.png")
        assert result.returncode == 1 and message in result.stderr, result.stderr[-800:]
        assert "Traceback" not in result.stderr
    module = tf.Module()
    module.f = tf.function(lambda x: {"y": x}, input_signature=[tf.TensorSpec((None, 2), tf.float32, name="x")])
    tf.saved_model.save(module, str(tmp_path / "other"), signatures={"serving_default": module.f})
    result = run_cli("predict.py", "--model", tmp_path / "other", folder / "a.png")
    assert result.returncode == 1 and "does not take `images`" in result.stderr


@pytest.mark.slow
def test_a_folder_stands_for_the_images_under_it(models, tmp_path):
    import shutil

    folder, _ = models
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    shutil.copy(folder / "a.png", tmp_path / "d" / "sub" / "x.PNG")
    shutil.copy(folder / "b.jpg", tmp_path / "d" / "y.jpg")
    (tmp_path / "d" / "notes.txt").write_text("not an image")
    (tmp_path / "d" / ".DS_Store").write_bytes(b"\0")
    model = str(folder / "m.keras")
    out, err = io.StringIO(), io.StringIO()
    failures = predict_files(model, [str(tmp_path / "d"), str(tmp_path / "empty")], out=out, err=err)
    assert (
        failures == 1
        and err.getvalue() == f"error: {tmp_path / 'empty'}: a folder with no images (.png, .jpg, .jpeg, .bmp, .gif).\n"
    )
    one_by_one = io.StringIO()
    predict_files(model, [str(folder / "b.jpg"), str(folder / "a.png")], out=one_by_one)
    expected = [line.split(" ", 1)[1] for line in one_by_one.getvalue().splitlines()]
    lines = out.getvalue().splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == [
        str(tmp_path / "d" / "y.jpg"),
        str(tmp_path / "d" / "sub" / "x.PNG"),
    ]
    assert [line.split(" ", 1)[1] for line in lines] == expected  # the same class and score as each file alone


@pytest.mark.slow
@pytest.mark.parametrize("name", ["m.keras", "m.tflite"])
def test_images_go_to_the_model_in_batches_and_come_back_in_order(models, name):
    """Five files, one unreadable, in batches of two (the last one short): the lines of one at a time."""
    folder, _ = models
    files = [str(folder / f) for f in ("a.png", "b.jpg", "c.png", "b.jpg", "a.png")]
    lines = {}
    for size in (1, 2):
        out, err = io.StringIO(), io.StringIO()
        assert predict_files(str(folder / name), files, out=out, err=err, batch_size=size) == 1
        assert "c.png: not a readable image" in err.getvalue()
        lines[size] = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines[2]] == files[:2] + files[3:]
    assert [line.split()[:2] for line in lines[2]] == [line.split()[:2] for line in lines[1]]
    scores = [[float(line.split()[2]) for line in lines[size]] for size in (1, 2)]
    assert scores[1] == pytest.approx(scores[0], abs=2e-4)  # printed to 4 places; batched sums may round apart
    with pytest.raises(ValueError, match="`batch_size` must be an integer >= 1, got 0"):
        predict_files(str(folder / name), files, batch_size=0)


@pytest.mark.slow
def test_predict_files_writes_to_the_streams_of_its_call(models):
    """Imported above, before the streams are swapped: it writes where they are now (a
    notebook's, a test's), not where they were at its import."""
    folder, _ = models
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        failures = predict_files(str(folder / "m.keras"), [str(folder / "a.png"), str(folder / "gone.png")])
    assert failures == 1
    assert out.getvalue().split()[0] == str(folder / "a.png") and "gone.png: no such file" in err.getvalue()
    buffer = io.StringIO()
    assert predict_files(str(folder / "m.keras"), [str(folder / "a.png")], out=buffer) == 0
    assert buffer.getvalue().split()[0] == str(folder / "a.png")


@pytest.mark.parametrize("bf16_cpu", [False, True])
def test_a_bf16_model_predicts_in_float32_where_this_cpu_would_emulate_bf16(tmp_path, monkeypatch, bf16_cpu):
    """A model trained on a bf16 CPU, moved to an AVX2-only one: float32 there, its own policy where bf16 is native."""
    model = small_model(dtype="mixed_bfloat16")
    images = np.random.default_rng(0).random((8, 12, 12, 1), dtype=np.float32)
    in_bf16 = model.predict(images, verbose=0)
    model.save(tmp_path / "m.keras")
    monkeypatch.setattr(precision, "has_gpu", lambda: False)
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: bf16_cpu)
    classify, shape, _, _ = load_classifier(str(tmp_path / "m.keras"))
    in_float32 = precision.with_policy(model, "float32").predict(images, verbose=0)
    assert shape == (12, 12, 1) and not np.array_equal(in_bf16, in_float32)
    np.testing.assert_array_equal(classify(images), in_bf16 if bf16_cpu else in_float32)


def test_photo_like_digits_come_back_as_mnist_digits():
    """Photo-like digits (ink on paper, enlarged, off-centre, noisy,
    blurred, tinted RGB) are turned back by the predict loader into images close to the
    MNIST digit they came from."""
    import numpy as np

    from keras_caps.data.images import to_model_input
    from tests.helpers import photo_like

    rng = np.random.default_rng(0)
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255  # a "1"
    digit[6:9, 9:12] = 255
    for _ in range(5):
        photo = photo_like(digit, rng)
        assert photo.mode == "RGB" and min(photo.size) > 28
        assert np.asarray(photo).mean() > 128  # light paper
        x = to_model_input(photo, (28, 28, 1))[..., 0]
        correlation = np.corrcoef(x.ravel(), digit.ravel() / 255.0)[0, 1]
        assert correlation > 0.6, correlation


def test_a_digit_model_that_inverts_its_images_gets_the_frame_dark_on_light(tmp_path):
    """MNIST's framing gives light on dark; a model that inverts its images was trained on dark
    on light, so it is given the frame that way and scores a photo as the same weights without
    the inversion score MNIST's frame. Other models' images are as they were."""
    photo = Image.fromarray(255 - digit(40)).convert("RGB")
    framed = to_model_input(photo, (28, 28, 1))
    np.testing.assert_array_equal(to_model_input(photo, (28, 28, 1), inverted=True), 1 - framed)
    resized = to_model_input(photo, (12, 12, 1), digits=False)
    np.testing.assert_array_equal(to_model_input(photo, (12, 12, 1), digits=False, inverted=True), resized)
    keras.utils.set_random_seed(2)
    plain = CapsNet(input_shape=(28, 28, 1), classes=10, **SMALL)
    inverting = CapsNet(input_shape=(28, 28, 1), classes=10, invert_input=True, **SMALL)
    inverting.set_weights(plain.get_weights())
    photo.save(tmp_path / "seven.png")
    lines = []
    for name, model in (("plain", plain), ("inverting", inverting)):
        model.save(tmp_path / f"{name}.keras")
        buffer = io.StringIO()
        assert predict_files(str(tmp_path / f"{name}.keras"), [str(tmp_path / "seven.png")], out=buffer) == 0
        lines.append(buffer.getvalue().split()[1:])
    assert lines[0] == lines[1]
    # (given MNIST's frame as it is, the inverting model would score another image)
    assert not np.allclose(inverting.predict(framed[None], verbose=0), plain.predict(framed[None], verbose=0))
    # an exported file's folder says so in the exporter's report.json
    from keras_caps.models.labels import reads_inverted

    (tmp_path / "dist").mkdir()
    assert not reads_inverted(str(tmp_path / "dist" / "capsnet_int8.tflite"))
    (tmp_path / "dist" / "report.json").write_text(json.dumps({"context": {"invert_input": True}, "files": []}))
    assert reads_inverted(str(tmp_path / "dist" / "capsnet_int8.tflite"))
