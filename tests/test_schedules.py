"""train.py's learning-rate schedule: linear warm-up over steps, then lr * decay**epoch."""

import keras
import numpy as np
import pytest

from keras_caps.schedules import EpochDecay, LinearWarmUp


class Record(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def _fit(model, warmup, epochs, initial_epoch=0):
    x, y = np.random.rand(12, 3).astype("float32"), np.random.rand(12, 1).astype("float32")
    record = Record()
    history = model.fit(x, y, batch_size=4, epochs=epochs, initial_epoch=initial_epoch, verbose=0,
                        callbacks=[EpochDecay(0.1, 0.5), LinearWarmUp(warmup), record])
    return record.rates, history.history["learning_rate"]


def test_warm_up_then_epoch_decay_and_no_second_warm_up_on_resume():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    rates, logged = _fit(model, warmup=4, epochs=2)  # 3 steps per epoch
    assert rates == pytest.approx([0.025, 0.05, 0.075, 0.05, 0.05, 0.05])
    assert logged == pytest.approx([0.1, 0.05])  # the epoch's rate, not a warm-up fraction
    # Continued (as a resumed run is): the optimizer has taken 6 steps, no warm-up again.
    rates, _ = _fit(model, warmup=4, epochs=3, initial_epoch=2)
    assert rates == pytest.approx([0.025] * 3)


def test_no_warm_up():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    rates, _ = _fit(model, warmup=0, epochs=2)
    assert rates == pytest.approx([0.1] * 3 + [0.05] * 3)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        LinearWarmUp(-1)


def test_warm_up_cosine_per_step_and_resumed():
    from keras_caps.schedules import WarmUpCosine

    schedule = WarmUpCosine(0.2, total_steps=10, warmup_steps=2)
    assert [schedule.rate(s) for s in range(3)] == pytest.approx([0.1, 0.2, 0.2])
    assert schedule.rate(6) == pytest.approx(0.1)  # half way through the decay
    assert schedule.rate(10) == pytest.approx(0.0, abs=1e-12)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    x, y = np.random.rand(12, 3).astype("float32"), np.random.rand(12, 1).astype("float32")
    record = Record()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[WarmUpCosine(0.2, 10, 2), record])
    model.fit(x, y, batch_size=4, epochs=3, initial_epoch=2, verbose=0, callbacks=[WarmUpCosine(0.2, 10, 2), record])
    assert record.rates == pytest.approx([schedule.rate(s) for s in range(9)])
    with pytest.raises(ValueError, match="warmup_steps < total_steps"):
        WarmUpCosine(0.1, total_steps=5, warmup_steps=5)
