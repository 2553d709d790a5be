import keras
import numpy as np
import pytest

from keras_caps import safe_norm, squash
from tests.helpers import grad, np_squash


@pytest.mark.parametrize("scale", [1e-3, 0.1, 1.0, 10.0, 1e3])
@pytest.mark.parametrize("axis", [-1, 1])
def test_squash_matches_reference(scale, axis):
    rng = np.random.default_rng(0)
    s = rng.normal(size=(4, 5, 8)) * scale
    out = keras.ops.convert_to_numpy(squash(s.astype("float32"), axis=axis))
    np.testing.assert_allclose(out, np_squash(s, axis=axis), rtol=1e-5, atol=1e-6)
    assert (np.linalg.norm(out, axis=axis) <= 1).all()


def test_squash_keeps_direction_and_known_value():
    out = keras.ops.convert_to_numpy(squash(np.array([[3.0, 4.0]], "float32")))
    np.testing.assert_allclose(np.linalg.norm(out), 25 / 26, rtol=1e-6)
    np.testing.assert_allclose(out / np.linalg.norm(out), [[0.6, 0.8]], rtol=1e-6)


def test_squash_finite_value_and_gradient_at_zero():
    zero = np.zeros((2, 8), "float32")
    assert np.all(keras.ops.convert_to_numpy(squash(zero)) == 0)
    g = grad(lambda x: keras.ops.sum(squash(x)), zero)
    assert np.isfinite(g).all()
    g = grad(lambda x: keras.ops.sum(safe_norm(x)), zero)
    assert np.isfinite(g).all()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_squash_low_precision_computes_in_float32(dtype):
    # 300**2 * 8 overflows float16 if squared in float16.
    s = np.full((3, 8), 300.0, "float32")
    s[1] = 1e-3
    s[2] = 0.0
    x = keras.ops.cast(s, dtype)
    out = squash(x)
    assert keras.backend.standardize_dtype(out.dtype) == dtype
    out = keras.ops.convert_to_numpy(keras.ops.cast(out, "float32"))
    assert np.isfinite(out).all()
    ref = np_squash(keras.ops.convert_to_numpy(keras.ops.cast(x, "float32")).astype("float64"))
    np.testing.assert_allclose(out, ref, rtol=1e-2, atol=1e-6)
    g = grad(lambda v: keras.ops.sum(keras.ops.cast(squash(v), "float32")), x)
    assert np.isfinite(np.asarray(g, "float32")).all()


def test_integer_only_forms_match_exact_above_the_floor_and_stay_below_it():
    from keras_caps.activations import integer_only_math

    rng = np.random.default_rng(3)
    directions = rng.normal(size=(200, 8))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    lengths = np.geomspace(1e-3, 1e3, 200)[:, None]
    s = (directions * lengths).astype("float32")
    exact = np_squash(s.astype("float64"))
    with integer_only_math():
        approx = keras.ops.convert_to_numpy(squash(s)).astype("float64")
        norm = keras.ops.convert_to_numpy(safe_norm(exact.astype("float32"))).astype("float64")
    # Squashed length q/(1+q) >= 1/64, i.e. |s| >= 1/sqrt(63): the same values.
    above = (lengths[:, 0] ** 2 / (1 + lengths[:, 0] ** 2)) >= 1 / 64
    np.testing.assert_allclose(approx[above], exact[above], rtol=2e-5, atol=1e-6)
    # Below: same direction, shorter (never longer) by the floor's factor.
    cosine = (approx * exact).sum(-1) / np.linalg.norm(approx, axis=-1) / np.linalg.norm(exact, axis=-1)
    np.testing.assert_allclose(cosine, 1, atol=1e-5)
    assert (np.linalg.norm(approx[~above], axis=-1) < np.linalg.norm(exact[~above], axis=-1)).all()
    # safe_norm: exact for lengths >= 1/8 (a = length^2 >= 1/64).
    true = np.linalg.norm(exact, axis=-1)
    np.testing.assert_allclose(norm[true >= 0.125], true[true >= 0.125], rtol=2e-5)
    assert (norm[true < 0.124] < true[true < 0.124]).all()
    # The scope ends with the block.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(squash(s[:3])), exact[:3], rtol=1e-5, atol=1e-6)
