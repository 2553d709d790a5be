"""The random changes of training images, each in two twins: TensorFlow (for tf.data,
`keras_caps.data.datasets.make_dataset`) and numpy (`keras_caps.data.batches.ArrayBatches`,
the input on other backends). A shift, a flip and a rotation, applied in that order by
`augment_images` and `augment_batch`; what comes in at the edges is `fill_value` (0, black,
unless a model inverts its images: then 1, so that it too sees black). A seeded TensorFlow draw
is stateless, from a (seed, batch number) pair, each change its own stream; the numpy twins draw
from one generator.

TensorFlow is imported inside the TensorFlow twins, so the numpy ones run without it.
"""

import math

import numpy as np

# The random flips of training images (Keras's `RandomFlip` modes, and none): the image axes of
# `(n, height, width, channels)` each mode may reverse, each axis of each image with probability 1/2.
FLIPS = {"none": (), "horizontal": (2,), "vertical": (1,), "horizontal_and_vertical": (1, 2)}


def check_flip(flip):
    if flip not in FLIPS:
        raise ValueError(f"`flip` must be one of {', '.join(FLIPS)}, got {flip!r}.")


def check_rotation(degrees):
    number = not isinstance(degrees, bool) and isinstance(degrees, int | float) and math.isfinite(degrees)
    if not number or not 0 <= degrees <= 180:
        raise ValueError(f"`rotation` must be a number of degrees in [0, 180], got {degrees!r}.")


def augment_images(images, shift_pixels=0, flip="none", rotation=0, seed=None, fill_value=0.0):
    """A training batch shifted (`shift_images`), flipped (`flip_images`) and turned
    (`rotate_images`): the TensorFlow twin of `augment_batch`. `seed` as each of them takes;
    `fill_value` what the shift and the turn bring in."""
    images = flip_images(shift_images(images, shift_pixels, seed=seed, fill_value=fill_value), flip, seed=seed)
    return rotate_images(images, rotation, seed=seed, fill_value=fill_value)


def augment_batch(images, shift_pixels, flip, rotation, rng, fill_value=0.0):
    """A numpy training batch shifted (`shift_batch`), flipped (`flip_batch`) and turned
    (`rotate_batch`), each drawing from `rng` in turn: the numpy twin of `augment_images`."""
    images = flip_batch(shift_batch(images, shift_pixels, rng, fill_value), flip, rng)
    return rotate_batch(images, rotation, rng, fill_value)


def shift_images(images, max_shift, seed=None, fill_value=0.0):
    """Shifts each image of a batch by up to `max_shift` pixels per axis, filling with
    `fill_value` (the TensorFlow twin of `shift_batch`).

    Args:
        images: float tensor `(batch, height, width, channels)`.
        max_shift: largest shift in pixels (0 returns `images`).
        seed: None (random), an int (op seed of a stateful draw) or a shape-(2,)
            int tensor: a stateless draw, the same for the same seed wherever
            and in whatever order it runs.
        fill_value: the value of the pixels that come in (0: black).
    """
    import tensorflow as tf

    if max_shift <= 0:
        return images
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    margins = [[0, 0], [max_shift, max_shift], [max_shift, max_shift], [0, 0]]
    padded = tf.pad(images, margins, constant_values=tf.cast(fill_value, images.dtype))
    if tf.is_tensor(seed):
        offsets = tf.random.stateless_uniform((batch, 2), seed, 0, 2 * max_shift + 1, dtype=tf.int32)
    else:
        offsets = tf.random.uniform((batch, 2), 0, 2 * max_shift + 1, dtype=tf.int32, seed=seed)
    rows = offsets[:, 0:1] + tf.range(height)[None, :]  # (batch, height)
    cols = offsets[:, 1:2] + tf.range(width)[None, :]  # (batch, width)
    picked = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(picked, cols, axis=2, batch_dims=1)


def shift_batch(images, max_shift, rng, fill_value=0.0):
    """Each image `(n, h, w, c)` moved by up to `max_shift` pixels per axis, `fill_value`
    coming in.

    Args:
        images: array `(n, height, width, channels)`.
        max_shift: largest shift in pixels (0 returns `images`).
        rng: a `numpy.random.Generator` that draws the offsets.
        fill_value: the value of the pixels that come in (0: black).
    """
    if max_shift <= 0:
        return images
    n, h, w, _ = images.shape
    margins = ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0))
    padded = np.pad(images, margins, constant_values=fill_value)
    offsets = rng.integers(0, 2 * max_shift + 1, size=(n, 2))
    rows = offsets[:, :1] + np.arange(h)[None, :]
    cols = offsets[:, 1:] + np.arange(w)[None, :]
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def flip_images(images, flip, seed=None):
    """Mirrors each image of a batch along each axis of `FLIPS[flip]` with probability 1/2
    (the TensorFlow twin of `flip_batch`).

    Args:
        images: tensor `(batch, height, width, channels)`.
        flip: a key of `FLIPS` ("none" returns `images`).
        seed: None (random), an int (op seed of a stateful draw) or a shape-(2,)
            int tensor: a stateless draw, the same for the same seed.
    """
    import tensorflow as tf

    check_flip(flip)
    batch = tf.shape(images)[0]
    for axis in FLIPS[flip]:
        if tf.is_tensor(seed):  # each axis its own stream, apart from the shift's
            draw = tf.random.stateless_uniform((batch,), tf.random.experimental.stateless_fold_in(seed, axis))
        else:
            draw = tf.random.uniform((batch,), seed=None if seed is None else seed + axis)
        images = tf.where((draw < 0.5)[:, None, None, None], tf.reverse(images, [axis]), images)
    return images


def flip_batch(images, flip, rng):
    """Each image `(n, h, w, c)` mirrored along each axis of `FLIPS[flip]` with probability 1/2.

    Args:
        images: array `(n, height, width, channels)`.
        flip: a key of `FLIPS` ("none" returns `images`).
        rng: a `numpy.random.Generator` that draws which images flip.
    """
    check_flip(flip)
    for axis in FLIPS[flip]:
        flipped = rng.random(len(images)) < 0.5
        images = np.where(flipped[:, None, None, None], np.flip(images, axis), images)
    return images


def rotate_images(images, degrees, seed=None, fill_value=0.0):
    """Turns each image of a batch about its centre by an angle drawn uniformly from
    [-degrees, degrees] (`rotate_images_by`; the TensorFlow twin of `rotate_batch`).

    Args:
        images: float tensor `(batch, height, width, channels)`.
        degrees: the largest turn either way, in [0, 180] (0 returns `images`).
        seed: None (random), an int (op seed of a stateful draw) or a shape-(2,)
            int tensor: a stateless draw, the same for the same seed.
        fill_value: the value where the turned image leaves the frame (0: black).
    """
    import tensorflow as tf

    check_rotation(degrees)
    if degrees == 0:
        return images
    batch = tf.shape(images)[0]
    if tf.is_tensor(seed):  # a stream apart from the shift's and the flips' (axes 1 and 2)
        draw = tf.random.stateless_uniform((batch,), tf.random.experimental.stateless_fold_in(seed, 3), -1.0, 1.0)
    else:
        draw = tf.random.uniform((batch,), -1.0, 1.0, seed=seed)
    return rotate_images_by(images, draw * (degrees * math.pi / 180), fill_value)


def rotate_batch(images, degrees, rng, fill_value=0.0):
    """Each image `(n, h, w, c)` turned about its centre by an angle drawn uniformly from
    [-degrees, degrees] (`rotate_by`).

    Args:
        images: float array `(n, height, width, channels)`.
        degrees: the largest turn either way, in [0, 180] (0 returns `images`).
        rng: a `numpy.random.Generator` that draws the angles.
        fill_value: the value where the turned image leaves the frame (0: black).
    """
    check_rotation(degrees)
    if degrees == 0:
        return images
    return rotate_by(images, np.radians(degrees) * rng.uniform(-1, 1, len(images)), fill_value)


def rotate_images_by(images, radians, fill_value=0.0):
    """Each image of a batch turned by its angle `radians[i]` about its centre, sampled
    bilinearly, `fill_value` where the turned image leaves the frame; a positive angle
    turns as `numpy.rot90` does (`rotate_by`, its numpy twin).

    Args:
        images: float tensor `(batch, height, width, channels)`.
        radians: float tensor `(batch,)`.
        fill_value: the value outside the frame (0: black).
    """
    import tensorflow as tf

    shape = tf.shape(images)
    cx, cy = (tf.cast(shape[2], tf.float32) - 1) / 2, (tf.cast(shape[1], tf.float32) - 1) / 2
    cos, sin = tf.cos(radians), tf.sin(radians)
    zeros = tf.zeros_like(cos)
    # Output pixel (x, y) samples the input at R (x - c, y - c) + c
    # (`rotation_sources`), as the op's 8-number transform.
    transforms = tf.stack([cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, zeros, zeros], 1)
    turned = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=shape[1:3],
        fill_value=tf.cast(fill_value, tf.float32),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    # The op's output has no static height and width (output_shape is a tensor); a model needs them.
    return tf.ensure_shape(turned, images.shape)


def rotate_by(images, radians, fill_value=0.0):
    """Each image `(n, h, w, c)` turned by its angle `radians[i]` about its centre, sampled
    bilinearly, `fill_value` where the turned image leaves the frame: in numpy what
    TensorFlow's `ImageProjectiveTransformV3` (bilinear, constant fill) does in
    `rotate_images_by`."""
    n, h, w, _ = images.shape
    x, y = rotation_sources(np.asarray(radians, np.float64), h, w)
    x0, y0 = np.floor(x), np.floor(y)
    batch = np.arange(n)[:, None, None]

    def read(rows, cols):  # the input's pixels, fill_value outside it
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        pixels = images[batch, np.clip(rows, 0, h - 1).astype(int), np.clip(cols, 0, w - 1).astype(int)]
        return np.where(inside[..., None], pixels, fill_value)

    wx, wy = (x - x0)[..., None], (y - y0)[..., None]
    top = (1 - wx) * read(y0, x0) + wx * read(y0, x0 + 1)
    bottom = (1 - wx) * read(y0 + 1, x0) + wx * read(y0 + 1, x0 + 1)
    return ((1 - wy) * top + wy * bottom).astype(images.dtype)


def rotation_sources(radians, height, width):
    """Where each output pixel of an image turned by `radians` about its centre samples its
    input: `(x, y)` arrays `(n, height, width)` of input columns and rows. A positive angle
    turns the image as `numpy.rot90` does (at 90 degrees, exactly so)."""
    cos, sin = np.cos(radians)[:, None, None], np.sin(radians)[:, None, None]
    rows, cols = np.meshgrid(np.arange(height) - (height - 1) / 2, np.arange(width) - (width - 1) / 2, indexing="ij")
    return cos * cols - sin * rows + (width - 1) / 2, sin * cols + cos * rows + (height - 1) / 2
