"""Training and evaluation batches from numpy arrays, as a `keras.utils.PyDataset`.

The input of a run on a backend other than TensorFlow (JAX on a GPU machine,
where TensorFlow need not be installed): the same scaling, per-epoch shuffle,
random shift with zero padding, random flip and random rotation as
`keras_caps.data.datasets.make_dataset`, in numpy.
"""

import math

import keras
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


def rotation_sources(radians, height, width):
    """Where each output pixel of an image turned by `radians` about its centre samples its
    input: `(x, y)` arrays `(n, height, width)` of input columns and rows. A positive angle
    turns the image as `numpy.rot90` does (at 90 degrees, exactly so)."""
    cos, sin = np.cos(radians)[:, None, None], np.sin(radians)[:, None, None]
    rows, cols = np.meshgrid(np.arange(height) - (height - 1) / 2, np.arange(width) - (width - 1) / 2, indexing="ij")
    return cos * cols - sin * rows + (width - 1) / 2, sin * cols + cos * rows + (height - 1) / 2


def rotate_by(images, radians):
    """Each image `(n, h, w, c)` turned by its angle `radians[i]` about its centre, sampled
    bilinearly, zeros where the turned image leaves the frame: TensorFlow's
    `ImageProjectiveTransformV3` (bilinear, constant fill 0), which `make_dataset` uses."""
    n, h, w, _ = images.shape
    x, y = rotation_sources(np.asarray(radians, np.float64), h, w)
    x0, y0 = np.floor(x), np.floor(y)
    batch = np.arange(n)[:, None, None]

    def read(rows, cols):  # the input's pixels, 0 outside it
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        pixels = images[batch, np.clip(rows, 0, h - 1).astype(int), np.clip(cols, 0, w - 1).astype(int)]
        return np.where(inside[..., None], pixels, 0)

    wx, wy = (x - x0)[..., None], (y - y0)[..., None]
    top = (1 - wx) * read(y0, x0) + wx * read(y0, x0 + 1)
    bottom = (1 - wx) * read(y0 + 1, x0) + wx * read(y0 + 1, x0 + 1)
    return ((1 - wy) * top + wy * bottom).astype(images.dtype)


def rotate_batch(images, degrees, rng):
    """Each image `(n, h, w, c)` turned about its centre by an angle drawn uniformly from
    [-degrees, degrees] (`rotate_by`).

    Args:
        images: float array `(n, height, width, channels)`.
        degrees: the largest turn either way, in [0, 180] (0 returns `images`).
        rng: a `numpy.random.Generator` that draws the angles.
    """
    check_rotation(degrees)
    if degrees == 0:
        return images
    return rotate_by(images, np.radians(degrees) * rng.uniform(-1, 1, len(images)))


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


def shift_batch(images, max_shift, rng):
    """Each image `(n, h, w, c)` moved by up to `max_shift` pixels per axis, zeros coming in.

    Args:
        images: array `(n, height, width, channels)`.
        max_shift: largest shift in pixels (0 returns `images`).
        rng: a `numpy.random.Generator` that draws the offsets.
    """
    if max_shift <= 0:
        return images
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
    offsets = rng.integers(0, 2 * max_shift + 1, size=(n, 2))
    rows = offsets[:, :1] + np.arange(h)[None, :]
    cols = offsets[:, 1:] + np.arange(w)[None, :]
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


class ArrayBatches(keras.utils.PyDataset):
    """Batches of `(float32 images in [0, 1], labels)` from in-memory arrays.

    Args:
        images: uint8 (divided by 255 per batch) or float images in [0, 1],
            `(n, height, width, channels)`.
        labels: integer class ids `(n,)`.
        batch_size: images per batch (>= 1).
        training: shuffle every epoch, shift by up to `shift_pixels`, flip
            as `flip` says and turn by up to `rotation` degrees.
        shift_pixels: largest random shift in pixels while training.
        flip: random flip while training, a key of `FLIPS`.
        rotation: random turn while training, up to this many degrees either way.
        seed: with a seed, epoch e's order and shifts are a function of
            (seed, `first_epoch` + e), so a resumed run sees the batches an
            uninterrupted one would have.
        steps: batches per epoch (default: one pass, the last batch partial
            when not training).
        first_epoch: epochs already done (for a resumed run).
    """

    def __init__(
        self,
        images,
        labels,
        batch_size,
        training=False,
        shift_pixels=0,
        seed=None,
        steps=None,
        first_epoch=0,
        flip="none",
        rotation=0,
    ):
        super().__init__()
        if len(images) != len(labels) or not len(images):
            raise ValueError(
                f"ArrayBatches: need as many images as labels, at least one; got {len(images)} and {len(labels)}."
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"ArrayBatches: `batch_size` must be an integer >= 1, got {batch_size!r}.")
        check_flip(flip)
        check_rotation(rotation)
        self.images, self.labels = images, labels
        self.batch_size, self.training, self.shift_pixels, self.flip = batch_size, training, shift_pixels, flip
        self.rotation = rotation
        self.seed = np.random.SeedSequence().entropy if seed is None else seed
        self.steps = steps or math.ceil(len(images) / batch_size)
        self.epoch = first_epoch
        self._divisor = 255.0 if np.issubdtype(images.dtype, np.integer) else 1.0
        self._order = self._epoch_order()

    def _epoch_order(self):
        if not self.training:
            return np.arange(len(self.images))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.images))

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        start = (index * self.batch_size) % len(self.images)
        picked = self._order[start : start + self.batch_size]
        x = self.images[picked].astype("float32") / self._divisor
        if self.training:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            x = rotate_batch(flip_batch(shift_batch(x, self.shift_pixels, rng), self.flip, rng), self.rotation, rng)
        return x, self.labels[picked]

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._epoch_order()
