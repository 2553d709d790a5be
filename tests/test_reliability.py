"""Faults and hostile model files: train.py killed with SIGKILL at random moments and
restarted (tests/chaos.py); corrupt, foreign and missing model files for predict,
export and train.py --testing; bad tensors for the TFLite runner."""

import io
import os
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_caps import CapsNet
from keras_caps.apps.predict import load_classifier
from keras_caps.export.litert import TFLiteModel
from keras_caps.models.files import ModelFileError, load_capsnet
from tests.chaos import run_with_kills
from tests.helpers import write_mnist

# Subprocess runs, exports and kills: the slow tier (pytest -m 'not slow' skips them).
pytestmark = pytest.mark.slow

TINY = dict(conv_filters=8, primary_channels=2, digit_dim=4, decoder_units=(16,))


def test_random_kills_lose_at_most_one_epoch_each_and_no_file(tmp_path):
    write_mnist(str(tmp_path / "mnist"), n_train=60, n_test=20)
    report = run_with_kills(str(tmp_path / "mnist"), str(tmp_path / "run"), epochs=6, kills=3, seed=0, timeout=400)
    # run_with_kills asserts after every kill that each file loads and the resume point lags
    # the last trained epoch by at most one, and at the end that all 6 epochs are there.
    assert report["kills"] == 3
    assert all(r["finished_epochs"] - r["resumes_from"] <= 1 for r in report["rounds"])
    assert report["epochs_lost"] <= report["kills"]


# ------------------------------------------------------------------ hostile model files


@pytest.fixture(scope="module")
def hostile_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    good = CapsNet(**TINY)
    good.save(str(folder / "good.keras"))
    data = (folder / "good.keras").read_bytes()
    files = {
        "random_bytes.keras": np.random.default_rng(0).bytes(5000),
        "truncated.keras": data[: len(data) // 2],
        "empty.keras": b"",
        "zip_of_nothing.keras": _zip_bytes({"hello.txt": b"hi"}),
        "not_a_model.tflite": b"TFL3" + bytes(100),
        "random_bytes.tflite": np.random.default_rng(1).bytes(3000),
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(str(folder / "other_model.keras"))
    module = tf.Module()
    module.f = tf.function(lambda x: {"y": x}, input_signature=[tf.TensorSpec((None, 2), tf.float32, name="x")])
    tf.saved_model.save(module, str(folder / "wrong_signature"), signatures={"serving_default": module.f})
    os.makedirs(folder / "empty_folder")
    return folder


def _zip_bytes(members):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    return out.getvalue()


KERAS_FILES = [
    "random_bytes.keras",
    "truncated.keras",
    "empty.keras",
    "zip_of_nothing.keras",
    "other_model.keras",
    "wrong_signature",
    "missing.keras",
]
ALL_FILES = KERAS_FILES + ["not_a_model.tflite", "random_bytes.tflite", "empty_folder", "missing.tflite"]


# predict loads any format; `python -m export --model` and `train.py --testing --weights` load .keras files.
@pytest.mark.parametrize(
    "loader,name", [(load_classifier, n) for n in ALL_FILES] + [(load_capsnet, n) for n in KERAS_FILES]
)
def test_hostile_model_files_are_clear_errors(hostile_models, loader, name):
    path = str(hostile_models / name)
    with pytest.raises(ModelFileError) as error:
        loader(path)
    assert path in str(error.value)


def test_tflite_runner_rejects_bad_tensors(tmp_path):
    from keras_caps.export import convert, export_saved_model, float32_copy

    model = CapsNet(**TINY)
    runner = TFLiteModel(convert(export_saved_model(float32_copy(model), str(tmp_path / "sm")), "float32"))
    good = np.random.rand(2, 28, 28, 1).astype("float32")
    np.testing.assert_allclose(runner(good), model.predict(good, verbose=0), atol=1e-5)
    for bad in (good[0], good[:, :20], np.repeat(good, 3, axis=-1), good[:0], np.array([["a"]])):
        with pytest.raises(ValueError, match="TFLite model: images must be"):
            runner(bad)
    # Documented: a NaN pixel gives NaN scores for that image in a float file.
    nan = good.copy()
    nan[1, 3, 3, 0] = np.nan
    scores = runner(nan)
    assert np.isnan(scores[1]).all() and np.isfinite(scores[0]).all()
