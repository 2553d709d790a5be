"""Polyak averaging (keras_caps.training.averaging), backend-neutral: the moving average
against its formula in numpy, and the per-epoch score of the averaged weights in `fit`."""

import keras
import numpy as np
import pytest

from keras_caps.training.averaging import AveragedValidation, averaged_weights, uses_average
from tests.helpers import small_model, toy_data


def _weights(model):
    return [keras.ops.convert_to_numpy(v).copy() for v in model.trainable_variables]


def _ema_model(momentum):
    model = small_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2, use_ema=True, ema_momentum=momentum))
    return model


@pytest.mark.slow
def test_averaged_weights_are_the_moving_average_and_go_back():
    x, y = toy_data(n=20)
    model = _ema_model(0.6)
    average = None
    for i in range(4):
        model.train_on_batch(x[5 * i : 5 * i + 5], y[5 * i : 5 * i + 5])
        trained = _weights(model)
        # Keras's EMA: the first step copies the weights, then avg = m * avg + (1 - m) * w.
        average = trained if average is None else [0.6 * a + 0.4 * w for a, w in zip(average, trained)]
    assert uses_average(model)
    with averaged_weights(model):
        inside = _weights(model)
        scores_inside = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
    for got, want in zip(inside, average):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert any(not np.allclose(a, w) for a, w in zip(average, trained))  # the test can tell them apart
    for got, want in zip(_weights(model), trained):
        np.testing.assert_array_equal(got, want)
    assert not np.allclose(scores_inside, keras.ops.convert_to_numpy(model.predict(x, verbose=0)))


def test_averaged_weights_is_a_no_op_without_an_average():
    x, y = toy_data(n=10)
    model = small_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.train_on_batch(x, y)
    before = _weights(model)
    with averaged_weights(model):
        for got, want in zip(_weights(model), before):
            np.testing.assert_array_equal(got, want)
    assert not uses_average(model) and not uses_average(_ema_model(0.9))  # the latter: no step yet


def test_fit_validates_the_average_and_ends_with_it():
    x, y = toy_data(n=40)
    model = _ema_model(0.5)
    history = model.fit(
        x,
        y,
        batch_size=10,
        epochs=2,
        validation_data=(x[:20], y[:20]),
        callbacks=[AveragedValidation((x[:20], y[:20]))],
        verbose=0,
    ).history
    assert set(history) >= {"val_accuracy", "val_loss", "raw_val_accuracy", "raw_val_loss"}
    # fit leaves the average in the model: the last val_ scores are those of the final weights.
    final = model.evaluate(x[:20], y[:20], verbose=0, return_dict=True)
    assert history["val_loss"][-1] == pytest.approx(final["loss"], rel=1e-5)
    assert history["val_loss"][-1] != pytest.approx(history["raw_val_loss"][-1], rel=1e-5)
