import os

import keras
import numpy as np
import pytest

from keras_caps import CapsNet
from tests.helpers import small_model, toy_data


@pytest.mark.parametrize("routings", [1, 2, 3])
@pytest.mark.parametrize("classes", [3, 10])
@pytest.mark.parametrize("input_shape", [(28, 28, 1), (32, 32, 3)])
def test_paper_sized_shapes(routings, classes, input_shape):
    model = CapsNet(input_shape=input_shape, classes=classes, routings=routings)
    for batch in (1, 7):
        x = np.random.rand(batch, *input_shape).astype("float32")
        out = model.forward(x)
        assert tuple(model(x)["scores"].shape) == (batch, classes)
        assert tuple(out["capsules"].shape) == (batch, classes, 16)
        assert tuple(out["reconstruction"].shape) == (batch,) + input_shape
    caps = (input_shape[0] - 8 - 8 + 1) // 2 + (1 if (input_shape[0] - 16) % 2 else 0)
    assert tuple(model.digit_caps.kernel.shape) == (classes, caps * caps * 32, 16, 8)


@pytest.mark.slow
def test_fit_lowers_loss_and_reports_parts():
    x, y = toy_data()
    model = small_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = model.evaluate(x, y, verbose=0, return_dict=True)
    history = model.fit(x, y, batch_size=16, epochs=4, verbose=0, validation_data=(x, y))
    after = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(after) == {"loss", "margin_loss", "reconstruction_loss", "accuracy"}
    assert after["loss"] < 0.7 * before["loss"]
    assert after["accuracy"] > 0.9
    assert after["loss"] == pytest.approx(after["margin_loss"] + 0.392 * after["reconstruction_loss"], rel=1e-4)
    assert {"val_accuracy", "val_margin_loss", "val_reconstruction_loss"} <= set(history.history)
    scores = model.predict(x, verbose=0)
    assert scores.shape == (len(x), 3) and scores.dtype == np.float32


def test_one_hot_labels_train_like_integer_labels():
    x, y = toy_data(48)
    losses = []
    for labels in (y, np.eye(3, dtype="float32")[y]):
        keras.utils.set_random_seed(7)
        model = small_model()
        model.compile(optimizer="adam")
        losses.append(model.fit(x, labels, batch_size=16, epochs=1, verbose=0, shuffle=False).history["loss"])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


def test_decoder_masks_by_label_or_longest_capsule():
    model = small_model()
    rng = np.random.default_rng(0)
    caps = rng.normal(size=(4, 3, 8)).astype("float32")
    labels = np.array([0, 2, 1, 2])
    only_true = caps * np.eye(3, dtype="float32")[labels][:, :, None]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model.decode(caps, labels)),
        keras.ops.convert_to_numpy(model.decode(only_true, labels)),
        rtol=1e-6,
        atol=1e-7,
    )
    longest = np.argmax(np.linalg.norm(caps, axis=-1), axis=-1)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model.decode(caps)),
        keras.ops.convert_to_numpy(model.decode(caps, longest)),
        rtol=1e-6,
        atol=1e-7,
    )
    other = (longest + 1) % 3
    assert (
        np.abs(
            keras.ops.convert_to_numpy(model.decode(caps, other)) - keras.ops.convert_to_numpy(model.decode(caps))
        ).max()
        > 1e-3
    )
    x, _ = toy_data(4)
    assert tuple(model.reconstruct(x).shape) == (4, 12, 12, 1)


@pytest.mark.slow
def test_save_load_keras_and_weights(tmp_path):
    x, y = toy_data(32)
    model = small_model(routings=2, lam_recon=0.5)
    model.compile(optimizer="adam")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-7)
    assert (loaded.routings, loaded.lam_recon) == (2, 0.5)
    # The optimizer state comes back too: the next step is the same step.
    a = model.train_on_batch(x[:16], y[:16], return_dict=True)["loss"]
    b = loaded.train_on_batch(x[:16], y[:16], return_dict=True)["loss"]
    assert a == pytest.approx(b, rel=1e-5)

    weights = os.path.join(tmp_path, "m.weights.h5")
    model.save_weights(weights)
    fresh = small_model(routings=2)
    fresh.load_weights(weights)
    np.testing.assert_allclose(fresh.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-7)


def test_get_config_from_config():
    model = small_model(routings=1, classes=4, m_plus=0.95)
    clone = CapsNet.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.count_params() == model.count_params()
    # PyTorch-style biases survive the round trip; "zeros" gives Keras's.
    bias = keras.ops.convert_to_numpy(clone.conv1.bias)
    assert 0 < np.abs(bias).max() <= 1 / 3  # U(+-1/sqrt(3*3*1))
    zeros = CapsNet.from_config(small_model(bias_initializer="zeros").get_config())
    assert not np.any(keras.ops.convert_to_numpy(zeros.conv1.bias))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_fit_has_no_nan(policy):
    keras.mixed_precision.set_global_policy(policy)
    x, y = toy_data(64)
    model = small_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][-1] < history.history["loss"][0]
    scores = model.predict(x, verbose=0)
    assert scores.dtype == np.float32 and np.isfinite(scores).all()


def test_build_again_is_a_no_op():
    # The model builds itself; Keras code often calls build() anyway.
    model = small_model()
    weights = [w.copy() for w in model.get_weights()]
    model.build((None, 12, 12, 1))
    model.build([None, 12, 12, 1])
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights))
    assert tuple(model(np.zeros((2, 12, 12, 1), "float32"))["scores"].shape) == (2, 3)


def test_bad_inputs_are_clear_errors():
    model = small_model()
    with pytest.raises(ValueError, match=r"expects images of shape \(batch, 12, 12, 1\)"):
        model(np.zeros((2, 12, 12), "float32"))
    with pytest.raises(ValueError, match="expects images of shape"):
        model(np.zeros((2, 12, 12, 3), "float32"))
    with pytest.raises(ValueError, match="expects images of shape"):
        model(np.zeros((2, 14, 14, 1), "float32"))
    with pytest.raises(ValueError, match="float images scaled to"):
        model(np.zeros((2, 12, 12, 1), "uint8"))
    with pytest.raises(ValueError, match="routings"):
        small_model(routings=0)
    with pytest.raises(ValueError, match="classes"):
        small_model(classes=1)
    with pytest.raises(ValueError, match="too small"):
        CapsNet(input_shape=(12, 12, 1))
    with pytest.raises(ValueError, match=r"expects images of shape \(batch, 12, 12, 1\).*got \(None, 28, 28, 1\)"):
        model.build((None, 28, 28, 1))
    with pytest.raises(ValueError, match="own loss"):
        small_model().compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="one-hot"):
        small_model().one_hot(np.zeros((2, 5)))


def test_images_not_scaled_to_one_are_refused_before_any_step():
    """Images in [0, 255] (what keras.utils.image_dataset_from_directory gives) or [-1, 1] would
    train without an error, with a decoder that cannot draw them: fit, evaluate and predict name
    the range first."""
    x, y = toy_data(n=16)
    model = small_model()
    model.compile(optimizer="adam")
    weights = model.get_weights()
    dark = r"scaled to \[0, 1\]; they hold values from 0\.\d+ to 255: divide them by 255"
    with pytest.raises(ValueError, match=r"CapsNet\.fit: .*" + dark):
        model.fit(x * 255, y, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 0  # refused before a step
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights))
    with pytest.raises(ValueError, match=r"CapsNet\.fit \(validation_data\): .*" + dark):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(x * 255, y))
    with pytest.raises(ValueError, match=r"CapsNet\.evaluate: .*divide them by 255"):
        model.evaluate(x * 255, y, verbose=0)
    with pytest.raises(ValueError, match=r"CapsNet\.predict: .*from -1 to 1: .*\(x \+ 1\) / 2"):
        model.predict(x * 2 - 1, verbose=0)
    with pytest.raises(ValueError, match=r"CapsNet\.predict: .*from 0 to 255"):
        model.predict((x * 255).astype("uint8"), verbose=0)

    class Batches(keras.utils.PyDataset):  # a dataset is looked at through its first batch
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return x[8 * i : 8 * i + 8] * 255, y[8 * i : 8 * i + 8]

    with pytest.raises(ValueError, match=r"CapsNet\.fit: .*to 255 in its first batch: divide them by 255"):
        model.fit(Batches(), epochs=1, verbose=0)


def test_the_range_is_looked_at_once_per_call_and_lets_scaled_images_through(monkeypatch):
    """Once for x and once for validation_data: not again for the validation fit runs each epoch.
    A resize's overshoot passes."""
    from keras_caps.models import capsnet

    looked, check = [], capsnet.check_image_range
    monkeypatch.setattr(capsnet, "check_image_range", lambda x, where: looked.append(where) or check(x, where))
    x, y = toy_data(n=16)
    model = small_model()
    model.compile(optimizer="adam")
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, validation_data=(x, y))
    assert looked == ["fit", "fit (validation_data)"]
    model.evaluate(np.clip(x * 1.2 - 0.1, -0.2, 1.2), y, verbose=0)
    assert model.predict(x, verbose=0).shape == (16, 3)
    assert looked == ["fit", "fit (validation_data)", "evaluate", "predict"]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused_by_fit_evaluate_and_predict(bad):
    """A compiled TensorFlow step turns a NaN pixel into an ordinary-looking score (its fused
    convolution and ReLU give 0 for NaN): the calls that take data name the images instead."""
    x, y = toy_data(n=16)
    model = small_model()
    model.compile(optimizer="adam")
    x[[3, 9], 5, 5, 0] = bad
    refused = r"CapsNet\.predict: 2 images hold NaN or infinite pixels \(the first: image 3\); remove or repair"
    with pytest.raises(ValueError, match=refused):
        model.predict(x, verbose=0)
    with pytest.raises(ValueError, match=r"CapsNet\.fit: 2 images hold NaN"):
        model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"CapsNet\.evaluate: 1 image holds NaN .*image 0\)"):
        model.evaluate(x[9:], y[9:], verbose=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_an_eager_call_gives_nan_scores_for_non_finite_pixels(bad):
    """Documented behaviour of `model(x)`, which looks at no data: a NaN or infinite pixel makes
    that image's scores NaN; the other images are untouched."""
    model = small_model()
    x = np.random.rand(3, 12, 12, 1).astype("float32")
    clean = keras.ops.convert_to_numpy(model(x)["scores"])
    x[1, 5, 5, 0] = bad
    scores = keras.ops.convert_to_numpy(model(x)["scores"])
    assert np.isnan(scores[1]).all()
    np.testing.assert_allclose(scores[[0, 2]], clean[[0, 2]], rtol=1e-5, atol=1e-6)


def test_conv_stack_shapes_and_weights():
    model = small_model(conv_filters=(8, 16), conv_kernel_size=(3, 3), conv_strides=(1, 2))
    assert [layer.name for layer in model.conv_layers] == ["conv1", "conv2"]
    assert [tuple(layer.kernel.shape) for layer in model.conv_layers] == [(3, 3, 1, 8), (3, 3, 8, 16)]
    # 12 -> 10 (3x3) -> 4 (3x3/2) -> 1 (primary 3x3/2): 1 position x 4 capsule types.
    assert tuple(model.digit_caps.kernel.shape) == (3, 4, 8, 4)
    x = np.random.default_rng(0).uniform(0, 1, (5, 12, 12, 1)).astype("float32")
    assert tuple(model(x)["scores"].shape) == (5, 3)
    # An int beside a sequence applies to every layer.
    broadcast = small_model(conv_filters=(8, 16), conv_kernel_size=3, conv_strides=(1, 2))
    assert broadcast.conv_kernel_size == 3 and broadcast.get_config()["conv_kernel_size"] == 3


@pytest.mark.slow
def test_conv_stack_with_batch_norm_trains_and_round_trips(tmp_path):
    x, y = toy_data()
    model = small_model(conv_filters=(8, 16), conv_kernel_size=3, conv_strides=(1, 1), conv_batch_norm=True)
    assert [layer.name for layer in model.conv_norms] == ["conv1_norm", "conv2_norm"]
    assert all(layer.bias is None for layer in model.conv_layers)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    assert model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] > 0.9
    # Inference uses the moving statistics: the same scores for one image alone or in a batch.
    np.testing.assert_allclose(model.predict(x[:1], verbose=0), model.predict(x[:8], verbose=0)[:1], atol=1e-5)
    path = str(tmp_path / "bn.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.conv_batch_norm and loaded.conv_strides == (1, 1)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_named_architectures():
    from keras_caps import ARCHITECTURES

    assert set(ARCHITECTURES) >= {"paper", "micro"}
    micro = CapsNet.from_architecture("micro")
    encoder = [w for w in micro.weights if "decoder" not in w.path and "moving" not in w.path]
    assert sum(int(np.prod(w.shape)) for w in encoder) < 300_000  # fits 512 KB as int8
    paper = CapsNet.from_architecture("paper", classes=5)
    assert {**paper.get_config(), "name": None} == {**CapsNet(classes=5).get_config(), "name": None}
    assert CapsNet.from_architecture("micro", routings=2).routings == 2
    with pytest.raises(ValueError, match="unknown architecture 'tiny'; one of paper, paper_norm, micro"):
        CapsNet.from_architecture("tiny")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(conv_filters=(8, 16), conv_strides=(1, 2, 1)), "must have equal lengths"),
        (dict(conv_filters=()), "`conv_filters` must be a positive integer or a non-empty sequence"),
        (dict(conv_kernel_size=(3, 0)), "`conv_kernel_size` must be a positive integer"),
        (dict(conv_strides=1.5), "`conv_strides` must be a positive integer"),
    ],
)
def test_bad_conv_stacks_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        small_model(**kwargs)


def test_config_of_a_model_saved_before_conv_stacks_still_loads():
    config = small_model().get_config()
    for key in ("conv_strides", "conv_batch_norm", "capsule_implementation"):
        config.pop(key)
    model = CapsNet.from_config(config)
    assert model.conv_strides == 1 and not model.conv_batch_norm and model.more_convs == []


def test_input_standardization_is_per_image_and_round_trips(tmp_path):
    x = np.random.default_rng(0).uniform(0, 1, (3, 12, 12, 1)).astype("float32")
    x[2] = 0.7  # a flat image: divided by 1/sqrt(pixels), not by 0
    got = keras.ops.convert_to_numpy(CapsNet.standardize(x))
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = np.maximum(x.std(axis=(1, 2, 3), keepdims=True), 1 / np.sqrt(144))
    np.testing.assert_allclose(got, (x - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[2], 0.0, atol=1e-4)  # float32 rounding of 0.7 - mean
    # a change of brightness and contrast of the whole image leaves the scores as they are
    model = small_model(input_standardization=True, capsule_bias=True, leaky_routing=True)
    np.testing.assert_allclose(
        model.predict(x[:2] * 0.5 + 0.3, verbose=0), model.predict(x[:2], verbose=0), rtol=1e-4, atol=1e-5
    )
    config = model.get_config()
    assert (config["input_standardization"], config["capsule_bias"], config["leaky_routing"]) == (True, True, True)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.digit_caps.use_bias and loaded.digit_caps.leaky_routing and loaded.input_standardization
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_a_standardized_model_reconstructs_the_standardized_image_and_draws_it_back():
    """Its capsules see no image's brightness or contrast: the decoder's target is
    sigmoid(standardized image), and `reconstruct` undoes that with the image's own moments."""
    rng = np.random.default_rng(4)
    x = rng.uniform(0.2, 0.8, (3, 12, 12, 1)).astype("float32")
    model = small_model(input_standardization=True)
    target = keras.ops.convert_to_numpy(model.reconstruction_target(x))
    z = (x - x.mean(axis=(1, 2, 3), keepdims=True)) / x.std(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(target, 1 / (1 + np.exp(-z)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.to_images(target, x)), x, rtol=1e-4, atol=1e-4)
    labels = np.array([0, 1, 2])
    decoded = keras.ops.convert_to_numpy(model.forward(x, labels)["reconstruction"])
    loss = float(model.compute_loss(x, labels, model(x), training=True))
    margin = float(np.mean(keras.ops.convert_to_numpy(model.margin_loss_tracker.result())))
    assert loss == pytest.approx(margin + model.lam_recon * np.mean((decoded - target) ** 2), rel=1e-4)
    plain = small_model()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(plain.reconstruction_target(x)), x)


def test_the_authors_decoder_initialisation_reaches_only_the_decoder_and_round_trips(tmp_path):
    from keras_caps.models.capsnet import AUTHORS_DECODER_INIT

    model = small_model(decoder_units=(256, 256), **AUTHORS_DECODER_INIT)
    for layer in model.decoder_layers:
        kernel, bias = (keras.ops.convert_to_numpy(w) for w in (layer.kernel, layer.bias))
        np.testing.assert_array_equal(bias, np.float32(0.1))
        assert np.abs(kernel).max() <= 0.2  # a normal of deviation 0.1, redrawn beyond two
        # the deviation of that truncated normal: 0.1 * 0.8796
        assert kernel.std() == pytest.approx(0.08796, rel=0.05)
    # the convolutions keep PyTorch's U(+-1/sqrt(fan_in)) and fan-in biases
    conv = keras.ops.convert_to_numpy(model.conv1.kernel)
    assert np.abs(conv).max() <= 1 / np.sqrt(np.prod(conv.shape[:3]))
    default = small_model(decoder_units=(256, 256))
    assert keras.ops.convert_to_numpy(default.decoder_layers[0].bias).std() > 0
    assert default.get_config()["decoder_kernel_initializer"] is None
    path = str(tmp_path / "m.keras")
    model.save(path)
    config = keras.models.load_model(path).get_config()
    assert config["decoder_kernel_initializer"]["class_name"] == "TruncatedNormal"
    assert config["decoder_bias_initializer"]["config"]["value"] == 0.1


@pytest.mark.parametrize("standardized", [False, True])
def test_an_inverting_model_is_a_plain_model_of_the_negatives(standardized, tmp_path):
    """`invert_input`: the same weights score `x` as a plain model scores `1 - x`, the decoder
    learns to draw `1 - x`, and `reconstruct` gives it back in the images' own colours."""
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, (3, 12, 12, 1)).astype("float32")
    labels = np.array([0, 1, 2])
    plain = small_model(input_standardization=standardized)
    inverting = small_model(input_standardization=standardized, invert_input=True)
    inverting.set_weights(plain.get_weights())
    assert (plain.background_value, inverting.background_value) == (0.0, 1.0)
    for key in ("scores", "capsules"):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(inverting(x)[key]), keras.ops.convert_to_numpy(plain(1 - x)[key]), atol=1e-6
        )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(inverting.reconstruction_target(x)),
        keras.ops.convert_to_numpy(plain.reconstruction_target(1 - x)),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(inverting.reconstruct(x, labels)),
        1 - keras.ops.convert_to_numpy(plain.reconstruct(1 - x, labels)),
        atol=1e-5,
    )
    if not standardized:
        np.testing.assert_allclose(keras.ops.convert_to_numpy(inverting.reconstruction_target(x)), 1 - x, atol=1e-7)
    loss = float(inverting.compute_loss(x, labels, inverting(x), training=True))
    assert loss == pytest.approx(float(plain.compute_loss(1 - x, labels, plain(1 - x), training=True)), rel=1e-5)
    assert inverting.get_config()["invert_input"] is True
    path = str(tmp_path / "m.keras")
    inverting.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.invert_input and loaded.background_value == 1.0
    np.testing.assert_allclose(loaded.predict(x, verbose=0), inverting.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    config = plain.get_config()
    config.pop("invert_input")  # a model saved before the option: not inverting
    assert not CapsNet.from_config(config).invert_input
