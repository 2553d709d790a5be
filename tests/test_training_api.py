"""`keras_caps.training` in-process: the run configuration, `run(config)` and train.py's flag mapping."""

import json
import os
import re

import keras
import numpy as np
import pytest

from keras_caps import CapsNet
from keras_caps.cli import flag_names
from keras_caps.training import TrainConfig, TrainingError, run
from keras_caps.training.trainer import split_validation
from tests.helpers import program_module


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("routings", 0, "`routings` must be an integer >= 1, got 0"),
        ("epochs", 2.5, "`epochs` must be an integer >= 1"),
        ("batch_size", True, "`batch_size` must be an integer"),
        ("lr", -1.0, "`lr` must be a positive number"),
        ("lr", float("nan"), "`lr` must be a positive number"),
        ("lr_decay", 1.5, r"`lr_decay` must be in \(0, 1\]"),
        ("lam_recon", -0.1, "`lam_recon` must be a number >= 0"),
        ("val_split", 1.0, r"`val_split` must be in \[0, 1\)"),
        ("warmup_steps", -1, "`warmup_steps` must be an integer >= 0"),
        ("steps_per_epoch", 0, "`steps_per_epoch` must be an integer >= 1"),
        (
            "flip",
            "sideways",
            "`flip` must be one of none, horizontal, vertical, horizontal_and_vertical, got 'sideways'",
        ),
        ("rotation", 270, r"`rotation` must be a number of degrees in \[0, 180\], got 270"),
        ("rotation", -1.5, r"`rotation` must be a number of degrees in \[0, 180\], got -1.5"),
        ("architecture", "huge", "`architecture` must be one of auto, paper, paper_norm, micro"),
        ("lr_schedule", "step", "`lr_schedule` must be one of exponential, cosine"),
        ("mixed_precision", "float64", "`mixed_precision` must be one of"),
        ("strategy", "ring", "`strategy` must be one of"),
        ("class_weight", "auto", "`class_weight` must be one of none, balanced, got 'auto'"),
        ("verbose", 3, "`verbose` must be 0, 1 or 2"),
        ("testing", True, "`testing` needs `weights`"),
        ("transfer", True, "`transfer` needs `weights`, a .keras model or a preset"),
    ],
)
def test_config_names_the_bad_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_transfer_needs_a_whole_model_to_train():
    with pytest.raises(ValueError, match=r"a \.weights\.h5 file holds no network.*got 'w\.weights\.h5'"):
        TrainConfig(transfer=True, weights="w.weights.h5")
    with pytest.raises(ValueError, match="`transfer` trains new class capsules; it cannot go with `testing`"):
        TrainConfig(transfer=True, weights="m.keras", testing=True)


def test_flag_names_turn_arguments_into_flags():
    message = "TrainConfig: `val_split` must be in [0, 1), got 1.0; see `keras.Model`."
    assert (
        flag_names(message, {"val_split"}) == "TrainConfig: --val_split must be in [0, 1), got 1.0; see `keras.Model`."
    )


def test_what_a_program_prints_names_its_flags():
    import contextlib
    import io
    import sys

    from absl import flags

    from keras_caps.cli import absl_main

    values = flags.FlagValues()
    flags.DEFINE_float("lr", 0.1, "rate", flag_values=values)
    values(["prog"])
    seen = []

    def run(flag_values):
        seen.append(sys.stdout.isatty())  # the stream's own attributes pass through
        print("`lr` 0.1 chosen; `keras.Model` as it is")
        raise ValueError("`lr` too high")

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit):
        absl_main(run, lambda: (ValueError,), flag_values=values)(["prog"])
    assert out.getvalue() == "--lr 0.1 chosen; `keras.Model` as it is\n" and seen == [False]
    assert err.getvalue() == "error: --lr too high\n"


def test_train_py_flags_are_the_config_fields():
    """Every field has a flag of its name and default, and the mapping builds the config."""
    import dataclasses

    from absl import flags

    module = program_module("train.py")
    values = flags.FlagValues()
    module.define_flags(values)
    values(["train.py", "--epochs", "3", "--lr_schedule", "cosine", "--verbose", "3"])
    config = module.config_from_flags(values)
    assert config.epochs == 3 and config.lr_schedule == "cosine" and config.verbose == 2
    for field in dataclasses.fields(TrainConfig):
        assert values[field.name].default == field.default, field.name
        assert field.metadata["help"] in values[field.name].help, field.name
    assert set(values) >= {f.name for f in dataclasses.fields(TrainConfig)} | {"tune"}
    for text in ("32x48", "32X48", " 32 , 48 "):
        values(["train.py", "--image_size", text])
        assert module.config_from_flags(values).image_size == (32, 48), text
    values(["train.py", "--image_size", "40"])
    assert module.config_from_flags(values).image_size == (40, 40)


def test_a_runs_training_input_flips_as_its_config_says():
    from keras_caps.training.trainer import batches
    from tests.helpers import check_flips

    images = np.random.default_rng(0).integers(0, 256, (200, 5, 4, 1), dtype=np.uint8)
    config = TrainConfig(flip="horizontal", shift_pixels=0, batch_size=200, steps_per_epoch=1)
    x, y = next(iter(batches((images, np.arange(200)), config, training=True, seed=0)))
    check_flips(images[np.asarray(y)] / np.float32(255), np.asarray(x), "horizontal")


def test_a_runs_training_input_turns_as_its_config_says():
    from keras_caps.training.trainer import batches
    from tests.helpers import check_turns, spot_images

    config = TrainConfig(rotation=20, shift_pixels=0, batch_size=200, steps_per_epoch=1)
    x, _ = next(iter(batches((spot_images(200, "uint8"), np.arange(200)), config, training=True, seed=0)))
    check_turns(np.asarray(x), 20)
    x, _ = next(iter(batches((spot_images(200, "uint8"), np.arange(200)), config, training=False)))
    np.testing.assert_array_equal(np.asarray(x), spot_images(200, "uint8") / np.float32(255))


def test_border_brightness_is_the_median_of_the_outermost_pixels():
    from keras_caps.data.images import border_brightness

    images = np.full((2, 4, 5, 1), 0.2, np.float32)
    images[:, 1:3, 1:4] = 1.0  # the inside: not looked at
    images[1, 0, :] = 0.9  # one image's top edge: 5 of the 28 edge pixels (corners counted twice)
    assert border_brightness(images) == pytest.approx(0.2)
    assert border_brightness(1 - images) == pytest.approx(0.8)
    assert border_brightness(np.ones((1, 3, 3, 3))) == 1.0


def test_auto_inverts_grey_images_dark_on_light_only():
    from keras_caps.data.datasets import DataInfo
    from keras_caps.training.run_model import resolve_invert

    digits = np.zeros((40, 10, 10, 1), np.uint8)
    digits[:, 3:7, 4:6] = 255
    digits[:5, 0] = 255  # a few light edges do not move the median
    labels = np.arange(40) % 2
    grey, colour = (DataInfo("d", (10, 10, c), 2, 40, 0, "arrays") for c in (1, 3))
    auto = TrainConfig()
    assert resolve_invert(auto, (digits, labels), grey) == (False, "grey images, their edges' median brightness 0.00")
    assert resolve_invert(auto, (255 - digits, labels), grey) == (
        True,
        "grey images, their edges' median brightness 1.00",
    )
    assert resolve_invert(auto, (np.repeat(255 - digits, 3, axis=-1), labels), colour) == (False, "colour images")
    assert resolve_invert(TrainConfig(invert_input="on"), (digits, labels), grey) == (True, "as asked")
    assert resolve_invert(TrainConfig(invert_input="off"), (255 - digits, labels), grey) == (False, "as asked")
    with pytest.raises(ValueError, match="`invert_input` must be one of auto, on, off, got 'yes'"):
        TrainConfig(invert_input="yes")


@pytest.mark.slow
def test_a_run_on_scans_inverts_in_its_model_and_pads_its_shifts_white(tmp_path, monkeypatch, capsys):
    """What a run's model sees of a shifted or turned image has black edges, inverted or not: the
    training input of an inverting model is filled with 1 (its `background_value`)."""
    from keras_caps.training import trainer
    from tests.helpers import write_scans

    write_scans(str(tmp_path / "scans"), 6, 2)
    fills, pipeline = [], trainer.input_pipeline

    def recorded(*args, **kwargs):
        if kwargs["training"]:
            fills.append(kwargs["fill_value"])
        return pipeline(*args, **kwargs)

    monkeypatch.setattr(trainer, "input_pipeline", recorded)
    settings = dict(architecture="micro", recipe="micro", epochs=1, figures=False, rotation=10)
    scans = str(tmp_path / "scans")
    # auto inverts; a transfer from that model with `off` takes the run's choice (whatever its source did)
    runs = {"auto": dict(), "off": dict(weights=str(tmp_path / "auto" / "final.keras"), transfer=True)}
    for invert, more in runs.items():
        metrics = run(_config(scans, str(tmp_path / invert), invert_input=invert, **more, **settings))
        model = keras.saving.load_model(str(tmp_path / invert / "final.keras"))
        assert model.invert_input == metrics["invert_input"] == (invert == "auto")
        preset = json.load(open(tmp_path / invert / "preset" / "metadata.json"))
        assert preset["invert_input"] == (invert == "auto")
    assert fills == [1.0, 0.0]
    out = capsys.readouterr().out
    assert out.count("Inverting the images inside the model (`invert_input` auto: grey images, their edges'") == 1
    # a resumed run and a tested model keep their own: asking for the other is an error, not ignored
    with pytest.raises(TrainingError, match=r"auto: a resumed run keeps its model's `invert_input` \(on\); leave"):
        run(_config(scans, str(tmp_path / "auto"), invert_input="off", **settings))
    tested = dict(testing=True, weights=str(tmp_path / "off" / "final.keras"), invert_input="on")
    with pytest.raises(TrainingError, match="a tested model keeps its model's `invert_input` \\(off\\)"):
        run(_config(scans, str(tmp_path / "test"), **tested, **settings))


def test_split_validation_holds_out_a_seeded_share():
    x, y = np.arange(20).reshape(20, 1, 1, 1), np.arange(20)
    (xt, yt), (xv, yv) = split_validation((x, y), 0.25, seed=3)
    assert len(xv) == 5 and len(xt) == 15 and sorted(np.concatenate([yt, yv])) == list(range(20))
    assert np.array_equal(split_validation((x, y), 0.25, seed=3)[1][1], yv)
    with pytest.raises(TrainingError, match="at least 2 training images"):
        split_validation((x[:1], y[:1]), 0.5, seed=0)


def _config(data_dir, save_dir, **kw):
    small = dict(batch_size=10, steps_per_epoch=2, seed=1, verbose=0, mixed_precision="float32")
    return TrainConfig(data_dir=data_dir, save_dir=save_dir, **{**small, **kw})


@pytest.mark.slow
def test_run_in_process_trains_resumes_and_scores_the_test_set_once(mnist_dir, tmp_path, monkeypatch):
    save = str(tmp_path / "run")
    evaluations, fitting = [], []  # evaluate() calls outside fit (fit validates through evaluate too)
    evaluate, fit = keras.Model.evaluate, keras.Model.fit

    def counted_evaluate(self, *args, **kwargs):
        if not fitting:
            evaluations.append(1)
        return evaluate(self, *args, **kwargs)

    def flagged_fit(self, *args, **kwargs):
        fitting.append(1)
        try:
            return fit(self, *args, **kwargs)
        finally:
            fitting.pop()

    monkeypatch.setattr(keras.Model, "evaluate", counted_evaluate)
    monkeypatch.setattr(keras.Model, "fit", flagged_fit)
    metrics = run(_config(mnist_dir, save, recipe="reference", epochs=1, warmup_steps=1))
    # Validation on the test set after the last epoch is the test score: no second pass.
    assert evaluations == []
    history = json.load(open(os.path.join(save, "history.json")))
    assert metrics["test_accuracy"] == pytest.approx(history[-1]["val_accuracy"])
    assert metrics["validation_images"] is None and metrics["validation_accuracy"] is None  # none held out
    assert metrics["config"]["epochs"] == 1 and metrics["train_images"] == 60 and metrics["steps_per_epoch"] == 2
    assert 0 < history[-1]["train_seconds"] < history[-1]["seconds"]  # the test pass comes after the steps
    # Resumed with more epochs: the schedule comes back with the optimizer; the policy with the
    # checkpoint, whatever `auto` would pick for a new run here (bf16), and the record says so.
    from keras_caps.training import precision

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    auto = dict(mixed_precision="auto")
    metrics = run(_config(mnist_dir, save, recipe="reference", epochs=2, warmup_steps=1, **auto))
    history = json.load(open(os.path.join(save, "history.json")))
    assert [row["epoch"] for row in history] == [1, 2] and metrics["epochs_this_run"] == 1
    assert metrics["policy"] == "float32"
    assert [row["learning_rate"] for row in history] == pytest.approx([0.001, 0.0009])
    # Validating on held-out images: the test set is scored once, at the end.
    # (with the authors' levers a run can name: they reach the model it saves)
    levers = dict(decoder_init="authors", capsule_bias=True, loss_form="authors")
    metrics = run(_config(mnist_dir, str(tmp_path / "val"), epochs=1, val_split=0.2, figures=False, **levers))
    assert evaluations == [1]
    history = json.load(open(tmp_path / "val" / "history.json"))
    assert metrics["validation_images"] == 12 and metrics["validation_accuracy"] == history[-1]["val_accuracy"]
    saved = keras.saving.load_model(str(tmp_path / "val" / "final.keras")).get_config()
    assert saved["decoder_kernel_initializer"]["config"]["stddev"] == 0.1
    assert (saved["capsule_bias"], saved["loss_form"]) == (True, "authors")
    assert metrics["figures"] == {} and not list((tmp_path / "val").glob("*.png"))
    assert len(list((tmp_path / "run").glob("*.png"))) == 4


def test_fine_tuning_refuses_settings_that_would_change_the_models_network(mnist_dir, tmp_path):
    path = str(tmp_path / "m.keras")
    CapsNet(input_shape=(28, 28, 1), classes=10, conv_filters=16, primary_channels=4).save(path)
    for given, named in (
        (dict(capsule_bias=True), "`capsule_bias` (the model has no capsule biases)"),
        (dict(decoder_init="authors"), "`decoder_init` authors"),
        (dict(architecture="micro"), "`architecture` micro (the model's: its own)"),
    ):
        with pytest.raises(TrainingError, match=re.escape(named)):
            run(_config(mnist_dir, str(tmp_path / "r"), epochs=1, weights=path, **given))
    assert not (tmp_path / "r" / "final.keras").exists()


def test_transfer_trains_a_model_of_the_datas_classes_and_shape_on_the_models_stem(mnist_dir, tmp_path, capsys):
    from keras_caps.models.transfer import stem_layers

    path = str(tmp_path / "m.keras")
    source = CapsNet(input_shape=(20, 20, 1), classes=3, conv_filters=16, primary_channels=4, class_names=list("abc"))
    source.save(path)
    config = _config(mnist_dir, str(tmp_path / "r"), epochs=1, weights=path, transfer=True, capsule_bias=True)
    metrics = run(config)
    assert (
        "Transfer from " + path + ": its convolutions and primary capsules, new class capsules"
        in capsys.readouterr().out
    )
    model = keras.saving.load_model(str(tmp_path / "r" / "final.keras"))
    assert (model.image_shape, model.classes, model.class_names) == ((28, 28, 1), 10, [str(d) for d in range(10)])
    assert model.digit_caps.use_bias and metrics["config"]["transfer"]  # the new head takes the run's options
    assert model.get_config()["conv_filters"] == 16 and model.primary_caps.num_channels == 4
    # Trained for two steps from the source's stem: near it, not equal (the stem trains too).
    kernel, trained = stem_layers(source)[0].get_weights()[0], stem_layers(model)[0].get_weights()[0]
    assert not np.array_equal(kernel, trained) and np.abs(kernel - trained).max() < 0.05


def test_transfer_adapts_a_colour_model_to_grey_images_and_keeps_its_architecture(mnist_dir, tmp_path, capsys):
    path = str(tmp_path / "rgb.keras")
    CapsNet(input_shape=(28, 28, 3), classes=10, conv_filters=16, primary_channels=4).save(path)
    with pytest.raises(TrainingError, match=r"`transfer` keeps the model's stem; leave unset `architecture` micro"):
        run(_config(mnist_dir, str(tmp_path / "r"), epochs=1, weights=path, transfer=True, architecture="micro"))
    assert not (tmp_path / "r" / "final.keras").exists()
    run(_config(mnist_dir, str(tmp_path / "r"), epochs=1, weights=path, transfer=True))
    assert "first convolution, made for 3-channel images, adapted to 1 (its colour kernels summed" in (
        capsys.readouterr().out
    )
    assert keras.saving.load_model(str(tmp_path / "r" / "final.keras")).image_shape == (28, 28, 1)


def test_run_errors_name_arguments(mnist_dir, tmp_path):
    with pytest.raises(TrainingError, match=r"`warmup_steps` \(4\) leaves no steps of the 2"):
        run(_config(mnist_dir, str(tmp_path / "r"), epochs=1, lr_schedule="cosine", warmup_steps=4))
    with pytest.raises(TypeError, match="TrainConfig"):
        run({"epochs": 1})


def test_recipes_fill_the_fields_left_unset():
    from keras_caps.training.recipes import RECIPES

    fast = TrainConfig()
    assert fast.recipe == "fast" and {k: getattr(fast, k) for k in RECIPES["fast"]} == RECIPES["fast"]
    assert fast.epochs == 20 and fast.lr_schedule == "cosine" and fast.ema_momentum > 0
    reference = TrainConfig(recipe="reference")
    assert (reference.epochs, reference.lr, reference.lr_schedule) == (50, 0.001, "exponential")
    assert reference.warmup_steps == 0 and reference.ema_momentum == 0
    long = TrainConfig(recipe="long")
    assert (long.epochs, long.lr, long.lr_schedule, long.warmup_steps) == (50, 0.003, "cosine", 600)
    assert long.ema_momentum == 0.999
    # A value given explicitly wins over the recipe's, and is not counted as the recipe's.
    cut = TrainConfig(recipe="reference", epochs=20, warmup_steps=0)
    assert cut.epochs == 20 and cut.lr == 0.001
    assert cut.from_recipe == set(RECIPES["reference"]) - {"epochs", "warmup_steps"}
    assert cut.to_dict()["epochs"] == 20 and "from_recipe" not in cut.to_dict()
    with pytest.raises(ValueError, match="`recipe` must be one of fast, long, reference, micro, got 'paper'"):
        TrainConfig(recipe="paper")
    for bad in (1.0, -0.5, "0.9"):
        with pytest.raises(ValueError, match=r"`ema_momentum` must be in \[0, 1\)"):
            TrainConfig(ema_momentum=bad)


def test_a_recipes_warm_up_shrinks_for_a_short_run_but_a_given_one_does_not():
    from keras_caps.training.run_model import schedule
    from keras_caps.training.trainer import settings_for_run

    def warmup(config, steps):
        rates = schedule(settings_for_run(config, steps), steps)
        return rates.warmup_steps if hasattr(rates, "warmup_steps") else 0

    assert warmup(TrainConfig(), 600) == 600  # 20 epochs of MNIST: the recipe's as it is
    assert warmup(TrainConfig(epochs=1), 600) == 60  # a tenth of a one-epoch run
    assert warmup(TrainConfig(epochs=1), 5) == 0
    with pytest.raises(TrainingError, match=r"`warmup_steps` \(600\) leaves no steps of the 600"):
        schedule(settings_for_run(TrainConfig(epochs=1, warmup_steps=600), 600), 600)


def test_a_recipes_average_spans_at_most_a_tenth_of_a_short_run_but_a_given_one_does_not():
    from keras_caps.training.trainer import settings_for_run

    def ema_momentum(config, steps):
        return settings_for_run(config, steps).ema_momentum

    assert ema_momentum(TrainConfig(), 600) == 0.999  # 20 epochs of 60,000 images: the recipe's
    assert ema_momentum(TrainConfig(), 540) == 0.999  # and of the 54,000 a validation run trains on
    assert ema_momentum(TrainConfig(epochs=50), 600) == 0.999
    one_epoch = ema_momentum(TrainConfig(epochs=1), 600)
    assert one_epoch == pytest.approx(1 - 10 / 600)
    # The first step's weights keep a share momentum**steps of the average: half at 0.999, none here.
    assert 0.999**600 > 0.5 and one_epoch**600 < 1e-4
    assert ema_momentum(TrainConfig(epochs=1), 10) == 0.0  # too short to average at all
    assert ema_momentum(TrainConfig(epochs=1, ema_momentum=0.999), 600) == 0.999
    assert ema_momentum(TrainConfig(recipe="reference", epochs=1), 600) == 0.0


@pytest.mark.slow
def test_a_short_run_of_the_default_recipe_averages_over_its_own_length(mnist_dir, tmp_path):
    save = str(tmp_path / "run")
    # The default recipe, its momentum 0.999 left to it: 20 steps in all.
    metrics = run(_config(mnist_dir, save, epochs=1, steps_per_epoch=20, figures=False))
    # metrics.json records the momentum the run used, not the recipe's.
    assert metrics["config"]["ema_momentum"] == pytest.approx(0.5) and metrics["ema_momentum"] == pytest.approx(0.5)
    assert metrics["config"]["warmup_steps"] == 2  # the recipe's 600, cut to a tenth of 20 steps
    model = keras.models.load_model(os.path.join(save, "final.keras"))
    assert model.optimizer.use_ema and model.optimizer.peak_ema_momentum == pytest.approx(0.5)
    assert type(model.optimizer).__name__ == "EMAWarmupAdam"  # the default: the average warms up


def _weights(model):
    return [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]


@pytest.mark.slow
def test_run_with_an_average_keeps_validates_and_resumes_it(mnist_dir, tmp_path):
    """The default recipe's moving average: scored each epoch under val_ (the trained weights'
    scores under raw_val_), written into best.keras and final.keras, continued on resume."""
    from keras_caps.training.averaging import averaged_weights

    save = str(tmp_path / "run")
    metrics = run(_config(mnist_dir, save, recipe="reference", epochs=2, ema_momentum=0.5, figures=False))
    history = json.load(open(os.path.join(save, "history.json")))
    assert {"val_accuracy", "raw_val_accuracy", "raw_val_loss"} <= set(history[-1])
    assert metrics["test_accuracy"] == pytest.approx(history[-1]["val_accuracy"])
    assert metrics["validation_images"] is None and metrics["validation_accuracy"] is None  # none held out
    assert metrics["test_loss"] == pytest.approx(history[-1]["val_loss"], rel=1e-5)
    final = keras.models.load_model(os.path.join(save, "final.keras"))
    checkpoint = keras.models.load_model(os.path.join(save, "checkpoints", "epoch-0002.keras"))
    assert any(not np.allclose(a, b) for a, b in zip(_weights(final), _weights(checkpoint)))  # raw in the checkpoint
    with averaged_weights(checkpoint):
        for got, want in zip(_weights(final), _weights(checkpoint)):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    scores = final.evaluate(*_test_arrays(mnist_dir), batch_size=10, verbose=0, return_dict=True)
    assert scores["loss"] == pytest.approx(metrics["test_loss"], rel=1e-4)
    best_epoch = int(np.argmax([row["val_accuracy"] for row in history]))  # the first of equals
    if best_epoch == 1:
        best = keras.models.load_model(os.path.join(save, "best.keras"))
        for got, want in zip(_weights(best), _weights(final)):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert metrics["peak_rss_mib"] > 100 and set(metrics["machine"]) >= {"cpu", "cores", "avx512", "bf16"}

    # One epoch, then a resumed second: the same weights and average as two epochs in one go
    # (the same batches and shifts, the average continued from the checkpoint).
    resumed = str(tmp_path / "resumed")
    run(_config(mnist_dir, resumed, recipe="reference", epochs=1, ema_momentum=0.5, figures=False))
    run(_config(mnist_dir, resumed, recipe="reference", epochs=2, ema_momentum=0.5, figures=False))
    again = keras.models.load_model(os.path.join(resumed, "checkpoints", "epoch-0002.keras"))
    for got, want in zip(_weights(again), _weights(checkpoint)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    again = keras.models.load_model(os.path.join(resumed, "final.keras"))
    for got, want in zip(_weights(again), _weights(final)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def _test_arrays(mnist_dir):
    from keras_caps.data.datasets import load_arrays

    _, (x, y), _ = load_arrays("mnist", mnist_dir)
    return x.astype("float32") / 255.0, y


def test_the_machine_a_run_records_names_the_cpus_family_and_model(monkeypatch):
    from keras_caps import machine as facts

    info = "processor\t: 0\nmodel name\t: AMD EPYC\ncpu family\t: 25\nmodel\t\t: 17\n"
    info += "flags\t\t: fpu avx2 avx512f avx512_bf16\n"
    monkeypatch.setattr(facts, "_cpuinfo", lambda: info * 2)  # two cores, the first one's lines count
    machine = facts.describe_machine()
    assert (machine["cpu"], machine["cpu_family_model"], machine["avx512"], machine["bf16"]) == (
        "AMD EPYC",
        "25/17",
        True,
        True,
    )
    one_line = facts.machine_label({**machine, "cores": 2, "gpu": False})  # a history row's `machine`
    assert one_line == "AMD EPYC (family/model 25/17, 2 cores, AVX-512, bf16)"
    monkeypatch.setattr(facts, "_cpuinfo", lambda: "flags\t\t: fpu avx2\n")  # no /proc/cpuinfo lines: no guess
    machine = facts.describe_machine()
    assert machine["cpu_family_model"] is None and not machine["avx512"] and not machine["bf16"]


def test_the_averaged_weights_validate_close_to_the_trained_ones_after_one_epoch():
    """Momentum 0.999 with the warm-up: the average's first-epoch validation follows the
    trained weights'; Keras's plain average is still mostly the first steps' weights."""
    import keras

    from keras_caps.optimizers import EMAWarmupAdam
    from keras_caps.training.averaging import AveragedValidation
    from tests.helpers import small_model, toy_data

    x, y = toy_data(n=200, seed=0)
    x_val, y_val = toy_data(n=100, seed=1)
    scores = {}
    for name, optimizer in (("warmup", EMAWarmupAdam), ("keras", keras.optimizers.Adam)):
        keras.utils.set_random_seed(0)
        model = small_model()
        model.compile(optimizer=optimizer(3e-3, use_ema=True, ema_momentum=0.999))
        history = model.fit(
            x,
            y,
            batch_size=10,
            epochs=1,
            validation_data=(x_val, y_val),
            verbose=0,
            callbacks=[AveragedValidation((x_val, y_val))],
        )
        scores[name] = {k: v[-1] for k, v in history.history.items()}
    trained = scores["warmup"]["raw_val_accuracy"]
    assert trained > 0.9  # the toy task is learnt in 20 steps
    assert scores["keras"]["raw_val_accuracy"] == pytest.approx(trained)  # the average does not change training
    assert scores["warmup"]["val_accuracy"] >= trained - 0.05
    assert scores["keras"]["val_accuracy"] < trained - 0.2
