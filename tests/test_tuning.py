"""keras-tuner search: the API on arrays, and train.py --tune end to end: a search in a new
process, then resumed with a larger budget in this one (tests.helpers.run_cli)."""

import json
import os

import keras
import numpy as np
import pytest

from keras_caps.training.tuning import CapsNetHyperModel, define_search_space, make_tuner, search
from tests.helpers import common, train, train_here

# Subprocess runs, exports and kills: the slow tier (pytest -m 'not slow' skips them).
pytestmark = pytest.mark.slow

SMALL = dict(conv_filters=16, decoder_units=(32, 64))


def _arrays(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, n)


@pytest.mark.parametrize("algorithm", ["hyperband", "bayesian"])
def test_search_runs_max_trials_and_returns_a_working_best_model(algorithm, tmp_path):
    tuner = search(
        _arrays(40, 0),
        _arrays(20, 1),
        str(tmp_path),
        algorithm=algorithm,
        max_trials=2,
        epochs=2,
        classes=10,
        seed=0,
        model_kwargs=SMALL,
        verbose=0,
    )
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 2 and all(t.status == "COMPLETED" for t in trials)
    best = tuner.get_best_hyperparameters(1)[0].values
    assert 1 <= best["routings"] <= 3 and 1e-4 <= best["lr"] <= 3e-3
    assert best["batch_size"] in (32, 64, 100, 128) and best["primary_channels"] in (8, 16, 32)
    assert 0.8 <= best["lr_decay"] <= 1.0 and 0.05 <= best["lam_recon"] <= 1.0
    model = tuner.get_best_models(1)[0]
    assert model.routings == best["routings"] and model.primary_channels == best["primary_channels"]
    assert model.lam_recon == pytest.approx(best["lam_recon"])
    assert model.predict(np.zeros((2, 28, 28, 1), "float32"), verbose=0).shape == (2, 10)
    # Scored on the validation arrays: the best trial's score is their accuracy.
    score = tuner.oracle.get_best_trials(1)[0].score
    x_val, y_val = _arrays(20, 1)
    accuracy = model.evaluate(x_val / 255.0, y_val, verbose=0, return_dict=True)["accuracy"]
    assert score == pytest.approx(accuracy, abs=1e-6)


def test_fixed_hyperparameters_stay_fixed(tmp_path):
    import keras_tuner as kt

    hp = kt.HyperParameters()
    hp.Fixed("routings", 2)
    tuner = make_tuner(
        CapsNetHyperModel(classes=10, model_kwargs=SMALL),
        str(tmp_path),
        algorithm="bayesian",
        max_trials=2,
        epochs=1,
        hyperparameters=hp,
        seed=0,
    )
    tuner.search(_arrays(20, 0), validation_data=_arrays(10, 1), epochs=1, verbose=0)
    assert {t.hyperparameters.get("routings") for t in tuner.oracle.trials.values()} == {2}
    cosine = define_search_space(kt.HyperParameters(), "cosine")
    assert "lr_decay" not in {p.name for p in cosine.space}  # the cosine schedule has no decay to search
    space = define_search_space(kt.HyperParameters())
    assert {p.name for p in space.space} == {
        "routings",
        "lr",
        "lr_decay",
        "lam_recon",
        "primary_channels",
        "batch_size",
    }


def test_make_tuner_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="Unknown tuning algorithm 'grid'"):
        make_tuner(CapsNetHyperModel(), str(tmp_path), algorithm="grid")
    with pytest.raises(ValueError, match="max_trials must be >= 1"):
        make_tuner(CapsNetHyperModel(), str(tmp_path), max_trials=0)


def test_train_tune_saves_best_and_resumes(mnist_dir, tmp_path):
    save = str(tmp_path / "tune")
    flags = common(mnist_dir, save)
    del flags[flags.index("--batch_size") : flags.index("--batch_size") + 2]  # searched
    args = [*flags, "--tune", "--epochs", "2", "--capsule_bias", "--decoder_init", "authors"]
    result = train(*args, "--max_trials", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Best hyperparameters: " in result.stdout
    summary = json.load(open(os.path.join(save, "tuning.json")))
    # The search never sees the test set: 10% of the 60 training images score it.
    assert (summary["train_images"], summary["validation_images"]) == (54, 6)
    assert summary["trials"] == summary["trials_completed"] == 1
    assert 0 <= summary["test_accuracy"] <= 1
    # Its test score per class, as a run's: every test image once, the diagonal its accuracy.
    matrix = np.array(summary["confusion_matrix"])
    assert [row["images"] for row in summary["per_class"]] == matrix.sum(axis=1).tolist()
    assert np.trace(matrix) / matrix.sum() == pytest.approx(summary["test_accuracy"], abs=1e-6)
    assert os.path.isfile(summary["figures"]["confusion"])
    assert ("Weakest classes: " in result.stdout) == (summary["test_accuracy"] < 1)

    # Run again with a larger budget: the tuner reloads its state and adds one trial.
    result = train_here(*args, "--max_trials", "2", "--tuner", "hyperband")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Reloading Tuner" in result.stdout
    summary = json.load(open(os.path.join(save, "tuning.json")))
    assert summary["trials"] == 2
    best = json.load(open(os.path.join(save, "best_hyperparameters.json")))
    assert best == summary["best_hyperparameters"]
    import keras_caps  # noqa: F401

    model = keras.models.load_model(os.path.join(save, "best.keras"))
    assert model.routings == best["routings"] and model.primary_channels == best["primary_channels"]
    config = model.get_config()  # the run's own model settings reach every trial
    assert config["capsule_bias"] and config["decoder_bias_initializer"]["config"]["value"] == 0.1
    assert model.predict(np.zeros((1, 28, 28, 1), "float32"), verbose=0).shape == (1, 10)


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--testing", "--weights", "x.keras"], "--tune and --testing exclude each other"),
        (["--max_trials", "0"], "--max_trials must be an integer >= 1"),
        (["--tuner", "grid"], "grid"),
        (["--batch_size", "10"], "--batch_size is searched by --tune: leave it unset"),
        (["--lr", "0.01", "--routings", "2"], "--routings, --lr are searched by --tune"),
        (["--resume"], "--resume: not used by --tune"),
        (["--weights", "mnist_micro"], "--weights: not used by --tune"),
        (["--weights", "mnist_micro", "--transfer", "--architecture", "paper"], "--transfer keeps the model's stem"),
        (["--ema_momentum", "0.9"], "--ema_momentum: not used by --tune"),
    ],
)
def test_tune_flag_errors(mnist_dir, tmp_path, extra, message):
    result = train_here("--data_dir", mnist_dir, "--save_dir", str(tmp_path / "t"), "--tune", *extra)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_search_gives_every_trial_its_class_weights_flips_turns_and_inversion(tmp_path, monkeypatch):
    import keras_caps.training.tuning as tuning

    seen, flips, fit, make_dataset = [], [], keras.Model.fit, tuning.make_dataset

    def recording_fit(self, *args, **kwargs):
        seen.append(kwargs.get("class_weight"))
        return fit(self, *args, **kwargs)

    def recording_make_dataset(*args, **kwargs):
        if kwargs["training"]:
            flips.append((kwargs.get("flip"), kwargs.get("rotation"), kwargs.get("fill_value")))
        return make_dataset(*args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", recording_fit)
    monkeypatch.setattr(tuning, "make_dataset", recording_make_dataset)
    weights = {i: 1.0 + i / 10 for i in range(10)}
    search(
        _arrays(20, 0),
        _arrays(10, 1),
        str(tmp_path),
        algorithm="bayesian",
        max_trials=2,
        epochs=1,
        classes=10,
        seed=0,
        model_kwargs={**SMALL, "invert_input": True},  # (its shifts and turns then bring in white)
        verbose=0,
        class_weight=weights,
        flip="horizontal",
        rotation=12.5,
    )
    assert seen == [weights, weights] and flips == [("horizontal", 12.5, 1.0)] * 2


def test_a_search_from_a_models_stem_keeps_it_in_every_trial(mnist_dir, tmp_path):
    """`--tune --transfer`: each trial is `with_new_head` of the model (its primary channels
    not searched), so every trial starts from the same learnt stem."""
    import keras_tuner as kt

    from keras_caps import CapsNet
    from keras_caps.models.transfer import stem_layers

    keras.utils.set_random_seed(0)
    source = CapsNet(input_shape=(28, 28, 1), classes=4, primary_channels=8, **SMALL)
    source.save(tmp_path / "source.keras")
    hypermodel = CapsNetHyperModel(classes=10, stem=source, model_kwargs={"class_names": list("abcdefghij")})
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    assert "primary_channels" not in hp.values and model.primary_channels == 8 and model.classes == 10
    for kept, made in zip(stem_layers(source), stem_layers(model)):
        for a, b in zip(kept.get_weights(), made.get_weights()):
            np.testing.assert_array_equal(a, b)
    save = str(tmp_path / "tune")
    flags = common(mnist_dir, save)
    del flags[flags.index("--batch_size") : flags.index("--batch_size") + 2]  # searched
    result = train_here(
        *flags,
        "--tune",
        "--epochs",
        "1",
        "--max_trials",
        "1",
        "--weights",
        str(tmp_path / "source.keras"),
        "--transfer",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Tuning CapsNet (its own: the stem of {tmp_path / 'source.keras'})" in result.stdout
    summary = json.load(open(os.path.join(save, "tuning.json")))
    assert (
        summary["stem"] == str(tmp_path / "source.keras") and "primary_channels" not in summary["best_hyperparameters"]
    )
    best = keras.models.load_model(os.path.join(save, "best.keras"))
    assert (best.classes, best.primary_channels) == (10, 8)
