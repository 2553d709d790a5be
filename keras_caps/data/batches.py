"""Training and evaluation batches from numpy arrays, as a `keras.utils.PyDataset`.

The input of a run on a backend other than TensorFlow (JAX on a GPU machine,
where TensorFlow need not be installed): the same scaling, per-epoch shuffle,
random shift, random flip and random rotation as
`keras_caps.data.datasets.make_dataset`, in numpy.
"""

import math

import keras
import numpy as np

from keras_caps.data.augment import augment_batch, check_flip, check_rotation


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
        fill_value: what the shift and the turn bring in at the edges (0: black).
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
        fill_value=0.0,
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
        self.rotation, self.fill_value = rotation, fill_value
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
            x = augment_batch(x, self.shift_pixels, self.flip, self.rotation, rng, self.fill_value)
        return x, self.labels[picked]

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._epoch_order()
