"""Capsule non-linearities, computed in float32 whatever the input dtype."""

import keras
from keras import ops

# Inside the square root, so that lengths and squash have finite gradients at
# s = 0 (the plain norm's gradient is 0/0 there).
EPSILON = 1e-7


def safe_norm(x, axis=-1, keepdims=False):
    """Euclidean length of `x` along `axis`, in float32, differentiable at 0.

    Returns `sqrt(sum(x**2) + 1e-7)`: within 1.6e-4 of the exact norm at 0 and
    within 5e-7 of it for lengths above 0.1 (capsule lengths are probabilities).
    """
    x = ops.cast(x, "float32")
    return ops.sqrt(ops.sum(ops.square(x), axis=axis, keepdims=keepdims) + EPSILON)


@keras.saving.register_keras_serializable(package="keras_caps")
def squash(x, axis=-1):
    """Capsule squashing: `||s||^2 / (1 + ||s||^2) * s / ||s||`.

    Short vectors shrink to almost zero length, long ones to just under one;
    the direction is kept. The arithmetic runs in float32 (float16 overflows
    at `||s||^2 > 65504`) and the result is cast back to the input dtype.

    Args:
        x: tensor of capsule vectors.
        axis: the axis that holds the capsule's components.

    Returns:
        A tensor of the shape and dtype of `x`, every vector along `axis` of
        length below 1. Finite, with a finite gradient, at `x = 0`.

    Example:
    >>> squash(np.array([[3.0, 4.0]]))  # length 5 -> 25/26
    """
    x = ops.convert_to_tensor(x)
    dtype = x.dtype
    x32 = ops.cast(x, "float32")
    squared = ops.sum(ops.square(x32), axis=axis, keepdims=True)
    # |s|^2/(1+|s|^2) / |s| == |s| / (1+|s|^2): one division, no 0/0.
    scale = ops.sqrt(squared + EPSILON) / (1.0 + squared)
    return ops.cast(scale * x32, dtype)
