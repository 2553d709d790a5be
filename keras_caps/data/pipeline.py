"""The input of training and evaluation, whatever the source and backend."""

import keras

from keras_caps.data.batches import ArrayBatches
from keras_caps.data.datasets import TfdsSplit, make_dataset
from keras_caps.data.folders import FileSplit


def input_pipeline(
    split,
    batch_size,
    training,
    shift_pixels=2,
    seed=None,
    first_epoch=0,
    steps_per_epoch=None,
    flip="none",
    rotation=0,
    fill_value=0.0,
):
    """Batches of a split: `(images, labels)` arrays, a `FileSplit` or a `TfdsSplit`.

    On TensorFlow a tf.data pipeline (files decoded in parallel, shuffled,
    shifted, prefetched; `make_dataset`), on other backends a `PyDataset` of
    numpy arrays. Training input is shuffled, shifted by up to
    `shift_pixels`, flipped as `flip` says (`keras_caps.data.augment.FLIPS`)
    and turned by up to `rotation` degrees either way (`fill_value` coming in at
    the edges: 0, black, or 1 for a model that inverts its images), seeded by `seed` and
    the epoch (from `first_epoch` on, so a resumed run sees the batches an
    unbroken one would), and repeats for `steps_per_epoch` batches an epoch
    (None: one pass).
    """
    images, labels = (split, None) if isinstance(split, FileSplit | TfdsSplit) else split
    common = {
        "training": training,
        "shift_pixels": shift_pixels,
        "flip": flip,
        "rotation": rotation,
        "fill_value": fill_value,
        "seed": seed,
        "first_epoch": first_epoch,
    }
    if keras.backend.backend() == "tensorflow":
        return make_dataset(images, labels, batch_size, repeat=training, steps_per_epoch=steps_per_epoch, **common)
    return ArrayBatches(images, labels, batch_size, steps=steps_per_epoch if training else None, **common)
