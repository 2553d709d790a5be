"""The random changes of training images (`keras_caps.data.augment`): each TensorFlow twin
(tf.data) and numpy twin (the input on other backends) against what it must do, and the
rotation's two twins against each other."""

import numpy as np
import pytest
import tensorflow as tf

from keras_caps.data import augment
from keras_caps.data.augment import FLIPS, flip_batch, rotate_batch, rotate_by, shift_batch
from tests.helpers import check_flips, check_turns, spot_images, turned_by


def test_shift_images_moves_each_image_within_bounds():
    x = np.zeros((400, 9, 9, 1), np.float32)
    x[:, 4, 4, 0] = 1.0
    y = augment.shift_images(tf.constant(x), 2, seed=0).numpy()
    assert y.shape == x.shape
    positions = np.argwhere(y[..., 0] == 1.0)
    assert len(positions) == 400  # the pixel survives, once per image
    offsets = positions[:, 1:] - 4
    assert np.abs(offsets).max() == 2
    assert len({tuple(o) for o in offsets}) == 25  # every shift in [-2, 2]^2 occurs
    assert y.sum() == 400


def test_shift_pads_with_zeros():
    x = np.ones((50, 6, 6, 1), np.float32)
    y = augment.shift_images(tf.constant(x), 2, seed=1).numpy()
    assert set(np.unique(y)) <= {0.0, 1.0}
    assert (y.reshape(50, -1).sum(1) >= 16).all()  # at least a 4x4 block stays
    assert (y.reshape(50, -1).sum(1) < 36).any()
    np.testing.assert_array_equal(augment.shift_images(tf.constant(x), 0).numpy(), x)


def test_shift_moves_each_image_within_its_zero_padding():
    rng = np.random.default_rng(0)
    images = rng.uniform(0.5, 1, (64, 6, 5, 1)).astype("float32")
    out = shift_batch(images, 2, np.random.default_rng(1))
    assert out.shape == images.shape
    for image, shifted in zip(images, out):
        padded = np.pad(image, ((2, 2), (2, 2), (0, 0)))
        matches = [
            (dy, dx) for dy in range(5) for dx in range(5) if np.array_equal(padded[dy : dy + 6, dx : dx + 5], shifted)
        ]
        assert len(matches) == 1
    # Every offset of -2..2 on each axis turns up; none at all for max_shift 0.
    sums = [(s > 0).sum() for s in out]
    assert len(set(sums)) > 5
    np.testing.assert_array_equal(shift_batch(images, 0, rng), images)


@pytest.mark.parametrize("flip", list(FLIPS))
def test_flip_images_mirrors_each_image_along_its_axes_with_probability_half(flip):
    images = np.random.default_rng(0).uniform(size=(400, 5, 4, 2)).astype(np.float32)
    seed = tf.constant([3, 7], tf.int64)
    out = augment.flip_images(tf.constant(images), flip, seed=seed).numpy()
    check_flips(images, out, flip)
    # Stateless: the same seed flips the same images, another seed others.
    np.testing.assert_array_equal(augment.flip_images(tf.constant(images), flip, seed=seed).numpy(), out)
    other = augment.flip_images(tf.constant(images), flip, seed=tf.constant([3, 8], tf.int64)).numpy()
    assert np.array_equal(other, out) == (flip == "none")
    check_flips(images, augment.flip_images(tf.constant(images), flip).numpy(), flip)  # unseeded
    with pytest.raises(ValueError, match="`flip` must be one of none, horizontal, .* got 'diagonal'"):
        augment.flip_images(tf.constant(images), "diagonal")


@pytest.mark.parametrize("flip", list(FLIPS))
def test_flip_batch_mirrors_each_image_along_its_axes_with_probability_half(flip):
    images = np.random.default_rng(0).uniform(size=(400, 5, 4, 2)).astype("float32")
    out = flip_batch(images, flip, np.random.default_rng(1))
    check_flips(images, out, flip)
    np.testing.assert_array_equal(flip_batch(images, flip, np.random.default_rng(1)), out)
    with pytest.raises(ValueError, match="`flip` must be one of none, horizontal, .* got 'diagonal'"):
        flip_batch(images, "diagonal", np.random.default_rng(1))


def test_rotate_by_turns_as_rot90_at_right_angles_and_follows_any_angle():
    rng = np.random.default_rng(0)
    square, oblong = rng.uniform(size=(3, 7, 7, 2)), rng.uniform(size=(3, 6, 9, 1))
    quarter = np.full(3, np.pi / 2)
    np.testing.assert_allclose(rotate_by(square, quarter), np.rot90(square, 1, axes=(1, 2)), atol=1e-12)
    np.testing.assert_allclose(rotate_by(square, -quarter), np.rot90(square, 3, axes=(1, 2)), atol=1e-12)
    np.testing.assert_allclose(rotate_by(oblong, 2 * quarter), oblong[:, ::-1, ::-1], atol=1e-12)
    np.testing.assert_array_equal(rotate_by(oblong, np.zeros(3)), oblong)
    angles = np.array([-135.0, -40.0, 0.0, 25.0, 100.0])
    np.testing.assert_allclose(turned_by(rotate_by(spot_images(5), np.radians(angles))), angles, atol=0.5)
    # A turn by a small angle keeps a spot's mass; a corner that leaves the frame comes back as 0.
    small = rotate_by(spot_images(1), np.radians([7.0]))
    assert abs(small.sum() - spot_images(1).sum()) < 0.01 * spot_images(1).sum()
    ones = rotate_by(np.ones((1, 9, 9, 1), "float32"), np.radians([45.0]))
    assert ones.dtype == np.float32 and ones[0, 0, 0, 0] == 0 and ones[0, 4, 4, 0] == 1


def test_rotate_images_by_is_the_numpy_twin_on_any_image_and_angle():
    """TensorFlow's projective transform (tf.data) and rotate_by (numpy,
    the JAX backend's input) sample the same points: two implementations, one answer."""
    rng = np.random.default_rng(3)
    for shape in ((6, 9, 12, 3), (5, 7, 7, 1)):
        images = rng.uniform(size=shape).astype(np.float32)
        radians = rng.uniform(-np.pi, np.pi, shape[0]).astype(np.float32)
        got = augment.rotate_images_by(tf.constant(images), tf.constant(radians)).numpy()
        np.testing.assert_allclose(got, rotate_by(images, radians), atol=1e-5)
    square = rng.uniform(size=(2, 7, 7, 1)).astype(np.float32)
    quarter = tf.constant([np.pi / 2] * 2, tf.float32)
    np.testing.assert_allclose(
        augment.rotate_images_by(tf.constant(square), quarter), np.rot90(square, 1, axes=(1, 2)), atol=1e-5
    )


def test_rotate_batch_turns_each_image_by_an_angle_drawn_within_degrees():
    images = spot_images(300)
    out = rotate_batch(images, 30, np.random.default_rng(1))
    check_turns(out, 30)
    np.testing.assert_array_equal(rotate_batch(images, 30, np.random.default_rng(1)), out)
    np.testing.assert_array_equal(rotate_batch(images, 0, np.random.default_rng(1)), images)
    for bad in (-5, 181, float("nan"), "10", True):
        with pytest.raises(ValueError, match=r"`rotation` must be a number of degrees in \[0, 180\], got"):
            rotate_batch(images, bad, np.random.default_rng(1))


def test_rotate_images_turns_each_image_within_degrees_statelessly():
    images = tf.constant(spot_images(300))
    seed = tf.constant([3, 7], tf.int64)
    out = augment.rotate_images(images, 45, seed=seed).numpy()
    check_turns(out, 45)
    np.testing.assert_array_equal(augment.rotate_images(images, 45, seed=seed).numpy(), out)
    assert not np.array_equal(augment.rotate_images(images, 45, seed=tf.constant([3, 8], tf.int64)).numpy(), out)
    check_turns(augment.rotate_images(images, 10).numpy(), 10)  # unseeded
    np.testing.assert_array_equal(augment.rotate_images(images, 0, seed=seed).numpy(), images.numpy())
    with pytest.raises(ValueError, match=r"`rotation` must be a number of degrees in \[0, 180\], got 270"):
        augment.rotate_images(images, 270)


def test_what_comes_in_at_the_edges_is_the_fill_value_in_both_twins():
    """An inverting model's images are augmented with fill 1: what it then sees, 1 - aug(x),
    is aug(1 - x) with fill 0, exactly what a plain model sees of inverted images."""
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(40, 9, 8, 1)).astype(np.float32)
    seed = tf.constant([5, 1], tf.int64)
    settings = (2, "horizontal", 30)

    def tf_twin(images, fill):
        return augment.augment_images(tf.constant(images), *settings, seed=seed, fill_value=fill).numpy()

    def numpy_twin(images, fill):
        return augment.augment_batch(images, *settings, np.random.default_rng(7), fill_value=fill)

    for twin in (tf_twin, numpy_twin):
        np.testing.assert_allclose(1 - twin(x, 1.0), twin(1 - x, 0.0), atol=1e-5)
        blank = twin(np.zeros_like(x), 1.0)  # nothing but what came in is above 0
        assert blank.max() == pytest.approx(1.0) and (blank.reshape(40, -1).max(1) > 0.5).mean() > 0.8
    assert set(np.unique(shift_batch(np.zeros((30, 3, 3, 1)), 1, rng, fill_value=0.5))) == {0.0, 0.5}
    shifted = augment.shift_images(tf.zeros((30, 3, 3, 1)), 1, seed=seed, fill_value=0.25).numpy()
    assert set(np.unique(shifted)) == {0.0, 0.25}
    corners = rotate_by(np.zeros((1, 9, 9, 1), np.float32), np.array([np.pi / 4]), fill_value=1.0)
    assert corners[0, 0, 0, 0] == 1.0 and corners[0, 4, 4, 0] == 0.0  # a corner comes from outside
