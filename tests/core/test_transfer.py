"""`with_new_head`: a trained CapsNet's stem under new class capsules and decoder."""

import keras
import numpy as np
import pytest

from keras_caps.models.transfer import adapt_channels, stem_layers, with_new_head
from tests.helpers import small_model, toy_data


@pytest.fixture(scope="module")
def trained():
    """A small CapsNet with batch normalization in its stem, trained for an epoch
    (so that the moving statistics differ from their initial values)."""
    keras.utils.set_random_seed(7)
    x, y = toy_data(n=24)
    model = small_model(class_names=["tl", "tr", "bl"], conv_batch_norm=True)
    model.compile(optimizer="adam")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    return model, x


def _weights(layers):
    return [w for layer in layers for w in layer.get_weights()]


def _assert_same(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_the_stem_is_kept_and_the_class_capsules_and_decoder_are_new(trained):
    source, x = trained
    model = with_new_head(source, class_names=list("vwxyz"))
    assert (model.classes, model.class_names, model.image_shape) == (5, list("vwxyz"), source.image_shape)
    kept = _weights(stem_layers(source))
    assert len(kept) == 1 + 4 + 2  # conv kernel (no bias before a norm), the norm's four, the primary capsules' two
    assert not np.array_equal(stem_layers(source)[1].get_weights()[2], 0)  # a moving mean, trained
    _assert_same(_weights(stem_layers(model)), kept)
    _, capsules, dim, primary_dim = source.digit_caps.kernel.shape
    assert tuple(model.digit_caps.kernel.shape) == (5, capsules, dim, primary_dim)
    assert tuple(model.decoder_layers[0].kernel.shape) == (5 * dim, source.decoder_units[0])
    # The decoder's hidden layer has the source's shape, and fresh weights all the same.
    assert model.decoder_layers[1].kernel.shape == source.decoder_layers[1].kernel.shape
    assert not np.array_equal(model.decoder_layers[1].kernel.numpy(), source.decoder_layers[1].kernel.numpy())
    assert model.predict(x, verbose=0).shape == (len(x), 5)


def test_without_new_classes_the_names_stay_and_the_head_is_new_all_the_same(trained):
    source, x = trained
    model = with_new_head(source)
    assert (model.classes, model.class_names) == (3, ["tl", "tr", "bl"])
    assert model.digit_caps.kernel.shape == source.digit_caps.kernel.shape
    assert not np.array_equal(model.digit_caps.kernel.numpy(), source.digit_caps.kernel.numpy())
    # Classes given are a new task's: the old names go, even where their number is the same.
    assert with_new_head(source, classes=4).class_names is None
    assert with_new_head(source, classes=3).class_names is None


def test_other_image_sizes_take_the_stem_with_more_primary_capsules(trained):
    source, _ = trained
    model = with_new_head(source, input_shape=(16, 20, 1), routings=1, capsule_bias=True)
    _assert_same(_weights(stem_layers(model)), _weights(stem_layers(source)))
    # 12x12 -> 10x10 -> 4x4 primary positions; 16x20 -> 14x18 -> 6x8.
    assert source.digit_caps.kernel.shape[1] == 4 * 4 * 4 and model.digit_caps.kernel.shape[1] == 6 * 8 * 4
    assert (model.routings, model.digit_caps.use_bias) == (1, True)
    images = np.random.default_rng(0).uniform(size=(3, 16, 20, 1)).astype("float32")
    assert model.reconstruct(images).shape == (3, 16, 20, 1)


def test_a_transferred_model_trains_and_round_trips(trained, tmp_path):
    source, x = trained
    _, y = toy_data(n=24)
    model = with_new_head(source, classes=3)
    model.compile(optimizer="adam")
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    path = str(tmp_path / "t.keras")
    model.save(path)
    np.testing.assert_allclose(
        keras.saving.load_model(path).predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )


def test_the_new_model_computes_in_the_current_policy(trained):
    source, x = trained
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = with_new_head(source, classes=4)
    assert model.dtype_policy.name == "mixed_bfloat16" and model.conv1.compute_dtype == "bfloat16"
    _assert_same(_weights(stem_layers(model)), _weights(stem_layers(source)))
    assert model.predict(x, verbose=0).shape == (len(x), 4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(conv_filters=8), "`conv_filters` would change the stem whose weights are kept"),
        (
            dict(primary_dim=8, input_standardization=True),
            "`input_standardization`, `primary_dim` would change the stem",
        ),
        (dict(input_shape=(4, 4, 1)), r"input_shape \(4, 4, 1\) is too small"),
        (dict(classes=1), "`classes` must be an integer >= 2, got 1"),
    ],
)
def test_a_new_task_the_stem_cannot_serve_is_refused(trained, kwargs, message):
    with pytest.raises(ValueError, match=message):
        with_new_head(trained[0], **kwargs)


def test_grey_and_colour_adapt_the_first_convolution_so_that_the_stem_sees_the_same(trained):
    source, x = trained
    colour = with_new_head(source, input_shape=(12, 12, 3))
    # A grey image copied into each channel gives the source's primary capsules.
    np.testing.assert_allclose(
        colour.primary_capsules(np.repeat(x, 3, axis=-1)), source.primary_capsules(x), rtol=1e-5, atol=1e-6
    )
    # And back: a grey model from the colour one reads a grey image as its colour copy.
    grey = with_new_head(colour, input_shape=(12, 12, 1))
    np.testing.assert_allclose(grey.primary_capsules(x), colour.primary_capsules(np.repeat(x, 3, axis=-1)), atol=1e-5)
    _assert_same(_weights(stem_layers(colour)[1:]), _weights(stem_layers(source)[1:]))  # only the first adapts


def test_adapt_channels_spreads_a_grey_kernel_and_sums_a_colour_one():
    kernel = np.arange(2 * 2 * 1 * 3, dtype="float32").reshape(2, 2, 1, 3)
    spread = adapt_channels(kernel, 4)
    assert spread.shape == (2, 2, 4, 3)
    np.testing.assert_array_equal(spread[:, :, 2], kernel[:, :, 0] / 4)
    colour = np.random.default_rng(0).normal(size=(3, 3, 3, 5)).astype("float32")
    np.testing.assert_allclose(adapt_channels(colour, 1)[:, :, 0], colour[:, :, 0] + colour[:, :, 1] + colour[:, :, 2])
    assert adapt_channels(colour, 3) is colour
    with pytest.raises(ValueError, match="a kernel for 3 channels cannot serve 4"):
        adapt_channels(colour, 4)


def test_channels_that_do_not_adapt_are_refused():
    colour = small_model(input_shape=(12, 12, 3))
    with pytest.raises(ValueError, match=r"takes images of 3 channels, `input_shape` \(12, 12, 4\) has 4: only grey"):
        with_new_head(colour, input_shape=(12, 12, 4))


def test_the_source_must_be_a_capsnet():
    with pytest.raises(ValueError, match="`source` must be a keras_caps.CapsNet, got Sequential"):
        with_new_head(keras.Sequential([keras.layers.Dense(2)]))


def test_class_names_give_the_number_of_classes():
    model = with_new_head(small_model(classes=2), class_names=["a", "b", "c"])
    assert (model.classes, model.class_names) == (3, ["a", "b", "c"])


def test_a_new_head_for_images_of_the_other_polarity_inverts_them_for_the_same_stem(trained):
    """`invert_input` says what the data are, not what the stem is: a stem learnt on light
    strokes on dark sees the same in the negatives of dark-on-light images."""
    source, x = trained
    model = with_new_head(source, invert_input=True)
    assert model.invert_input and not source.invert_input
    _assert_same(_weights(stem_layers(model)), _weights(stem_layers(source)))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model.primary_capsules(1 - x)),
        keras.ops.convert_to_numpy(source.primary_capsules(x)),
        atol=1e-5,
    )
    assert with_new_head(model).invert_input  # kept unless given
