"""Capsule non-linearities, computed in float32 whatever the input dtype."""

import contextlib
import contextvars

import keras
from keras import ops

# Inside the square root, so that lengths and squash have finite gradients at
# s = 0 (the plain norm's gradient is 0/0 there).
EPSILON = 1e-7
# Integer-only forms take sqrt(a) = a * rsqrt(max(a, SQRT_FLOOR)) for a in [0, 1):
# exact for a >= 1/64, an under-estimate below (where the value is < 0.125 anyway).
SQRT_FLOOR = 1.0 / 64

_integer_only = contextvars.ContextVar("keras_caps_integer_only", default=False)


@contextlib.contextmanager
def integer_only_math():
    """Within it, `squash` and `safe_norm` trace as TFLite int8-only ops.

    For exporting an integer-only file: no SQRT (int8 SQRT is an op version that
    tflite-runtime 2.14 lacks) and no DIV (int8 cannot hold 1 + |s|^2, which
    spans 0..~2000). With `r = rsqrt(1 + |s|^2)`, `a = 1 - r^2 = |s|^2 / (1 + |s|^2)`
    lies in [0, 1): squash scale `|s| / (1 + |s|^2) = sqrt(a) * r`, and every
    intermediate fits int8. `sqrt(a)` is `a * rsqrt(max(a, 1/64))`. Not for
    training: the values differ from the exact ones below length 0.125.
    """
    token = _integer_only.set(True)
    try:
        yield
    finally:
        _integer_only.reset(token)


def _sqrt_unit(a):
    """sqrt(a) for a in [0, 1) by RSQRT and MUL only (see `integer_only_math`)."""
    return a * ops.rsqrt(ops.maximum(a, SQRT_FLOOR))


def safe_norm(x, axis=-1, keepdims=False):
    """Euclidean length of `x` along `axis`, in float32, differentiable at 0.

    Returns `sqrt(sum(x**2) + 1e-7)`: within 1.6e-4 of the exact norm at 0 and
    within 5e-7 of it for lengths above 0.1 (capsule lengths are probabilities).
    """
    x = ops.cast(x, "float32")
    if _integer_only.get():  # capsule lengths lie in [0, 1)
        return _sqrt_unit(ops.sum(x * x, axis=axis, keepdims=keepdims))
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
    if _integer_only.get():
        r = ops.rsqrt(1.0 + ops.sum(x32 * x32, axis=axis, keepdims=True))
        return ops.cast(x32 * (_sqrt_unit(1.0 - r * r) * r), dtype)
    squared = ops.sum(ops.square(x32), axis=axis, keepdims=True)
    # |s|^2/(1+|s|^2) / |s| == |s| / (1+|s|^2): one division, no 0/0.
    scale = ops.sqrt(squared + EPSILON) / (1.0 + squared)
    return ops.cast(scale * x32, dtype)
