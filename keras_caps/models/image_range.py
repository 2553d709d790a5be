"""The range of the images given to `CapsNet.fit`, `evaluate` and `predict`, checked before any step.

CapsNet takes float images scaled to [0, 1]: its decoder draws them back through a sigmoid and
`invert_input` turns them to `1 - x`. Images left in [0, 255] (what `keras.utils.
image_dataset_from_directory` gives) or scaled to [-1, 1] would train without an error, with a
loss made almost all of a reconstruction error the decoder cannot lower; NaN or infinite pixels
would give scores that mean nothing. Inside a compiled step no backend-neutral check can stop
them, so the data are looked at once, before the steps: an array whole, a dataset through its
first batch."""

import math
import sys

import keras
import numpy as np

# Beyond these a batch was not scaled to [0, 1] (a resize's overshoot stays well inside).
HIGHEST, LOWEST = 1.5, -0.5
# Set on a tf.data dataset scaled by construction (`keras_caps.data.datasets.make_dataset`): its
# first batch is not looked at, which could cost a shuffle buffer of decoded files. A dataset
# made from it by another transformation is a new object, without the mark.
SCALED_MARK = "keras_caps_scaled"


def mark_scaled(dataset):
    """`dataset`, marked as holding images scaled to [0, 1] (`SCALED_MARK`)."""
    setattr(dataset, SCALED_MARK, True)
    return dataset


def first_images(x):
    """The images of `x` (an array's whole, a dataset's first batch), or None where they cannot
    be looked at without using the data up (a Python generator) or are not images (a dict).

    Args:
        x: what `fit`, `evaluate` or `predict` take: an array or tensor, a `tf.data.Dataset`
            or a `keras.utils.PyDataset` of images or of `(images, labels, ...)` tuples, or
            `fit`'s `validation_data`.
    """
    if isinstance(x, (tuple, list)):  # validation_data: (images, labels[, weights])
        x = x[0] if x else None
    if x is None or isinstance(x, dict):
        return None
    if isinstance(x, keras.utils.PyDataset):
        try:
            return _images_of(x[0])
        except (IndexError, NotImplementedError):  # an empty one: fit says so itself
            return None
    tf = sys.modules.get("tensorflow")  # a tf.data input means TensorFlow is loaded already
    if tf is not None and isinstance(x, tf.data.Dataset):
        if getattr(x, SCALED_MARK, False):
            return None
        for element in x.take(1):
            return _images_of(element)
        return None
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return x
    return None


def _images_of(element):
    """The images of one batch: the batch itself, or the first of an `(images, labels, ...)` tuple."""
    if isinstance(element, (tuple, list)):
        element = element[0] if element else None
    if element is None or isinstance(element, dict) or not hasattr(element, "shape"):
        return None
    return element


def check_image_range(x, where):
    """Raises ValueError when the images of `x` (`first_images`) were not scaled to [0, 1] or
    hold NaN or infinite pixels, naming what it found and the fix; `where` names the call
    (`fit`, `fit (validation_data)`, ...)."""
    images = first_images(x)
    if images is None:
        return
    batch = " in its first batch" if not hasattr(x, "shape") and not isinstance(x, (tuple, list)) else ""
    if not isinstance(images, np.ndarray):
        images = keras.ops.convert_to_numpy(images)
    if not images.size or not np.issubdtype(images.dtype, np.number):
        return
    low, high = float(np.min(images)), float(np.max(images))
    if not (math.isfinite(low) and math.isfinite(high)):
        # A compiled TensorFlow step turns them into ordinary-looking scores (its fused
        # convolution and ReLU give 0 for NaN), where an eager call gives NaN.
        bad = np.flatnonzero(~np.isfinite(images.reshape(images.shape[0] if images.ndim else 1, -1)).all(axis=1))
        some = f"{len(bad)} images{batch} hold" if len(bad) > 1 else f"1 image{batch} holds"
        raise ValueError(
            f"CapsNet.{where}: {some} NaN or infinite pixels (the first: image {bad[0]}); remove or "
            "repair them: their scores would mean nothing."
        )
    if high <= HIGHEST and low >= LOWEST:
        return
    if high > HIGHEST and low >= LOWEST:
        fix = f"divide them by {255 if high > 2 else 'their largest value'}"
        if high > 2:
            fix += " (in a tf.data pipeline: `.map(lambda x, y: (x / 255, y))`)"
    else:
        fix = "scale them to [0, 1] (for [-1, 1]: (x + 1) / 2)"
    raise ValueError(
        f"CapsNet.{where}: the images must be floats scaled to [0, 1]; they hold values from {low:.3g} "
        f"to {high:.3g}{batch}: {fix}."
    )
