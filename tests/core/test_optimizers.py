import keras
import numpy as np
import pytest

from keras_caps import CapsNet, TorchAdam


def np_torch_adam(w, grads, lr=1e-3, beta_1=0.9, beta_2=0.999, eps=1e-8, amsgrad=False):
    """torch.optim.Adam's update, step by step (its documented algorithm)."""
    m, v, v_max = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        if amsgrad:
            v_max = np.maximum(v_max, v)
        v_hat = (v_max if amsgrad else v) / (1 - beta_2**t)
        w = w - lr * (m / (1 - beta_1**t)) / (np.sqrt(v_hat) + eps)
    return w


def run(optimizer, w, grads):
    var = keras.Variable(w)
    for g in grads:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), var)])
    return keras.ops.convert_to_numpy(var)


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("scale", [1e-6, 1.0])
def test_matches_torch_adam_formula(scale, amsgrad):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3)).astype("float32")
    grads = [(scale * rng.normal(size=w.shape)).astype("float32") for _ in range(5)]
    got = run(TorchAdam(1e-3, amsgrad=amsgrad), w, grads)
    want = np_torch_adam(w.astype("float64"), [g.astype("float64") for g in grads], amsgrad=amsgrad)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-7)


def test_small_gradients_take_the_full_first_step():
    # With |g| ~ 1e-6 (CapsNet's scale) Keras's Adam moves ~4x less at step 1.
    w, g = np.zeros((3,), "float32"), np.full((3,), 1e-6, "float32")
    torch_step = -run(TorchAdam(1e-3), w, [g])
    keras_step = -run(keras.optimizers.Adam(1e-3), w, [g])
    np.testing.assert_allclose(torch_step, 1e-3 * 1e-6 / (1e-6 + 1e-8), rtol=1e-5)
    assert np.all(keras_step < 0.3 * torch_step)


def test_config_round_trip():
    opt = TorchAdam(2e-3, beta_2=0.99, epsilon=1e-9)
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(clone, TorchAdam)
    assert (clone.beta_2, clone.epsilon) == (0.99, 1e-9)
    assert float(keras.ops.convert_to_numpy(clone.learning_rate)) == pytest.approx(2e-3)


@pytest.mark.slow
def test_compiled_capsnet_saves_and_loads_with_it(tmp_path):
    model = CapsNet(input_shape=(28, 28, 1), classes=3, conv_filters=8, primary_channels=2, routings=1)
    model.compile(optimizer=TorchAdam(1e-3))
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (4, 28, 28, 1)).astype("float32"), np.array([0, 1, 2, 0])
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, TorchAdam)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_the_average_warms_up_as_tensorflow_num_updates_form():
    """Step t averages with momentum min(m, (1 + t) / (10 + t)); Keras's own starts at m."""
    from keras_caps.optimizers import EMAWarmupAdam

    rng = np.random.default_rng(0)
    x, y = rng.random((8, 3)).astype("float32"), rng.random((8, 2)).astype("float32")
    averages = {}
    for name, optimizer in (
        ("warmup", EMAWarmupAdam(0.1, use_ema=True, ema_momentum=0.9)),
        ("keras", keras.optimizers.Adam(0.1, use_ema=True, ema_momentum=0.9)),
    ):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer=optimizer, loss="mse")
        weights = []
        for _ in range(25):
            model.train_on_batch(x, y)
            weights.append(keras.ops.convert_to_numpy(model.trainable_variables[0]))
        averages[name] = keras.ops.convert_to_numpy(optimizer._model_variables_moving_average[0])
    expected = weights[0]
    for t in range(1, 25):
        momentum = min(0.9, (1 + t) / (10 + t))
        expected = momentum * expected + (1 - momentum) * weights[t]
    np.testing.assert_allclose(averages["warmup"], expected, rtol=1e-5, atol=1e-6)
    assert np.abs(averages["keras"] - expected).max() > 1e-3  # Keras's own: momentum 0.9 from step 1


def test_the_warmup_optimizer_records_its_peak_momentum():
    from keras_caps.optimizers import EMAWarmupAdam

    optimizer = EMAWarmupAdam(1e-3, use_ema=True, ema_momentum=0.999)
    assert optimizer.get_config()["ema_momentum"] == 0.999 and optimizer.peak_ema_momentum == 0.999
    clone = EMAWarmupAdam.from_config(optimizer.get_config())
    assert clone.peak_ema_momentum == 0.999 and clone.use_ema
