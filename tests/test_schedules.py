"""The learning-rate schedules of a run: Keras schedules, saved with the optimizer."""

import keras
import numpy as np
import pytest

from keras_caps.training.schedules import LinearWarmUp, LogLearningRate, capped_warmup, learning_rate_schedule


class Record(keras.callbacks.Callback):
    """The rate each optimizer step uses."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def _rates(schedule, steps):
    return [float(keras.ops.convert_to_numpy(schedule(step))) for step in range(steps)]


def test_exponential_is_per_epoch_with_a_linear_warm_up():
    # 3 steps per epoch, x0.5 per epoch, warm-up over 4 steps: (s + 1) / 4 of the epoch's rate.
    schedule = learning_rate_schedule("exponential", 0.1, steps_per_epoch=3, total_steps=9, decay=0.5, warmup_steps=4)
    assert _rates(schedule, 9) == pytest.approx([0.025, 0.05, 0.075, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025])
    plain = learning_rate_schedule("exponential", 0.1, steps_per_epoch=3, total_steps=9, decay=0.5)
    assert isinstance(plain, keras.optimizers.schedules.ExponentialDecay) and plain.staircase
    assert _rates(plain, 7) == pytest.approx([0.1] * 3 + [0.05] * 3 + [0.025])


def test_a_warm_up_takes_at_most_a_tenth_of_a_short_run():
    # The trainer (a recipe's warm-up) and a search's trials cut it by this one rule.
    assert capped_warmup(600, total_steps=20 * 540) == 600
    assert capped_warmup(600, total_steps=540) == 54
    assert capped_warmup(600, total_steps=9) == 0
    assert capped_warmup(0, total_steps=10_000) == 0


def test_the_authors_schedule_falls_by_0_96_every_2000_steps_whatever_the_epoch():
    steps = [0, 1999, 2000, 3999, 4000, 10_000, 30_001]
    expected = [1e-3 * 0.96 ** (s // 2000) for s in steps]
    for steps_per_epoch in (540, 600):
        schedule = learning_rate_schedule("authors", 1e-3, steps_per_epoch, total_steps=40_000, decay=0.5)
        got = [float(keras.ops.convert_to_numpy(schedule(s))) for s in steps]
        assert got == pytest.approx(expected, rel=1e-6)
    # Saved with the optimizer like the others (a Keras schedule), with a warm-up in front.
    warm = learning_rate_schedule("authors", 1e-3, 600, 40_000, warmup_steps=10)
    config = keras.optimizers.schedules.serialize(warm)
    again = keras.optimizers.schedules.deserialize(config)
    assert _rates(again, 12) == pytest.approx([1e-3 * (s + 1) / 10 for s in range(10)] + [1e-3, 1e-3])


def test_cosine_warms_up_then_decays_to_zero_at_the_last_step():
    schedule = learning_rate_schedule("cosine", 0.2, steps_per_epoch=5, total_steps=10, warmup_steps=2)
    rates = _rates(schedule, 11)
    # Keras's CosineDecay warm-up: linear from 0.2 / 2 at step 0 to 0.2 at step 2.
    assert rates[:3] == pytest.approx([0.1, 0.15, 0.2])
    decay = 0.5 * 0.2 * (1 + np.cos(np.pi * np.arange(9) / 8))  # steps 2..10
    assert rates[2:] == pytest.approx(decay, abs=1e-7)
    no_warmup = _rates(learning_rate_schedule("cosine", 0.2, 5, 10), 11)
    assert no_warmup == pytest.approx(0.5 * 0.2 * (1 + np.cos(np.pi * np.arange(11) / 10)), abs=1e-7)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kind="step"), "`kind` must be one of exponential, cosine"),
        (dict(learning_rate=0.0), "`learning_rate` must be > 0"),
        (dict(steps_per_epoch=0), "`steps_per_epoch` and `total_steps` must be >= 1"),
        (dict(warmup_steps=-1), "`warmup_steps` must be >= 0"),
        (dict(kind="cosine", warmup_steps=10), r"`warmup_steps` \(10\) leaves no steps of the 10"),
        (dict(decay=1.5), r"`decay` must lie in \(0, 1\]"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, message):
    args = dict(kind="exponential", learning_rate=0.1, steps_per_epoch=5, total_steps=10, decay=0.9, warmup_steps=0)
    with pytest.raises(ValueError, match=message):
        learning_rate_schedule(**{**args, **kwargs})
    with pytest.raises(ValueError, match="warmup_steps"):
        LinearWarmUp(keras.optimizers.schedules.ExponentialDecay(0.1, 3, 0.5), 0)


def test_the_schedule_is_saved_with_the_optimizer_and_resumes_where_it_stopped(tmp_path):
    """A model saved after 2 epochs and loaded again continues the curve: no
    second warm-up, the epoch's decay where an unbroken run would have it."""
    x, y = np.random.rand(12, 3).astype("float32"), np.random.rand(12, 1).astype("float32")
    schedule = learning_rate_schedule("exponential", 0.1, steps_per_epoch=3, total_steps=15, decay=0.5, warmup_steps=4)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    first = Record()
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[first, LogLearningRate()])
    assert history.history["learning_rate"] == pytest.approx([0.075, 0.05])  # each epoch's last step
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(restored.optimizer._learning_rate, LinearWarmUp)
    second = Record()
    restored.fit(x, y, batch_size=4, epochs=4, initial_epoch=2, verbose=0, callbacks=[second])
    assert first.rates + second.rates == pytest.approx(_rates(schedule, 12))


def test_logged_rate_under_mixed_float16_is_the_schedules():
    """Keras wraps the optimizer in a LossScaleOptimizer under mixed_float16 (the GPU's
    `auto` policy); the log shows the schedule's rate, not the wrapper's placeholder 0."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    x, y = np.random.rand(12, 3).astype("float32"), np.random.rand(12, 1).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    schedule = learning_rate_schedule("exponential", 0.1, steps_per_epoch=3, total_steps=6, decay=0.5)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    assert type(model.optimizer).__name__ == "LossScaleOptimizer"
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[LogLearningRate()])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05])
