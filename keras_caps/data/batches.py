"""Training and evaluation batches from numpy arrays, as a `keras.utils.PyDataset`.

The input of a run on a backend other than TensorFlow (JAX on a GPU machine,
where TensorFlow need not be installed): the same scaling, per-epoch shuffle,
random shift with zero padding and random flip as
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
        training: shuffle every epoch, shift by up to `shift_pixels` and flip
            as `flip` says.
        shift_pixels: largest random shift in pixels while training.
        flip: random flip while training, a key of `FLIPS`.
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
    ):
        super().__init__()
        if len(images) != len(labels) or not len(images):
            raise ValueError(
                f"ArrayBatches: need as many images as labels, at least one; got {len(images)} and {len(labels)}."
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"ArrayBatches: `batch_size` must be an integer >= 1, got {batch_size!r}.")
        check_flip(flip)
        self.images, self.labels = images, labels
        self.batch_size, self.training, self.shift_pixels, self.flip = batch_size, training, shift_pixels, flip
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
            x = flip_batch(shift_batch(x, self.shift_pixels, rng), self.flip, rng)
        return x, self.labels[picked]

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._epoch_order()
