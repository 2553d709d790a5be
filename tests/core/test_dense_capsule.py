import keras
import numpy as np
import pytest

from keras_caps import DenseCapsule
from tests.helpers import grad_wrt_weights, np_routing, np_squash, run_layer_test

IN_CAPS, IN_DIM, OUT_CAPS, OUT_DIM, BATCH = 6, 4, 3, 5, 2


def make_layer(routings, rng, implementation="einsum"):
    W = rng.normal(size=(OUT_CAPS, IN_CAPS, OUT_DIM, IN_DIM)) * 0.5
    u = np_squash(rng.normal(size=(BATCH, IN_CAPS, IN_DIM)))
    layer = DenseCapsule(OUT_CAPS, OUT_DIM, routings=routings, implementation=implementation)
    layer.build((None, IN_CAPS, IN_DIM))
    layer.set_weights([W.astype("float32")])
    return layer, W, u


@pytest.mark.parametrize("implementation", ["einsum", "grouped_conv"])
@pytest.mark.parametrize("routings", [1, 2, 3, 5])
def test_routing_matches_reference(routings, implementation):
    layer, W, u = make_layer(routings, np.random.default_rng(routings), implementation)
    out = keras.ops.convert_to_numpy(layer(u.astype("float32")))
    expected, _ = np_routing(W, u, routings)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("routings", [1, 3])
def test_gradient_flows_only_through_last_iteration(routings):
    rng = np.random.default_rng(10 + routings)
    layer, W, u = make_layer(routings, rng)
    G = rng.normal(size=(BATCH, OUT_CAPS, OUT_DIM))
    (dW,) = grad_wrt_weights(layer, lambda v: keras.ops.sum(v * G.astype("float32")), u.astype("float32"))

    # The reference detaches u_hat in every iteration but the last, so the
    # couplings of the last iteration are constants: finite differences on W
    # with those couplings frozen give the gradient it must produce.
    _, c_last = np_routing(W, u, routings)

    def frozen(Wp):
        return np.sum(np_routing(Wp, u, routings, frozen_coupling=c_last)[0] * G)

    def full(Wp):
        return np.sum(np_routing(Wp, u, routings)[0] * G)

    def numeric(f, eps=1e-6):
        g = np.zeros_like(W)
        for idx in np.ndindex(W.shape):
            Wp, Wm = W.copy(), W.copy()
            Wp[idx] += eps
            Wm[idx] -= eps
            g[idx] = (f(Wp) - f(Wm)) / (2 * eps)
        return g

    expected = numeric(frozen)
    np.testing.assert_allclose(dW, expected, rtol=1e-4, atol=1e-5)
    if routings > 1:
        # Backpropagating through every iteration would give another gradient.
        assert np.abs(numeric(full) - expected).max() > 1e-3


@pytest.mark.parametrize("use_bias,leaky", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("routings", [1, 3])
def test_the_authors_bias_and_leaky_routing_match_their_formulas(use_bias, leaky, routings):
    rng = np.random.default_rng(20 + routings)
    W = rng.normal(size=(OUT_CAPS, IN_CAPS, OUT_DIM, IN_DIM)) * 0.5
    u = np_squash(rng.normal(size=(BATCH, IN_CAPS, IN_DIM)))
    bias = rng.normal(size=(OUT_CAPS, OUT_DIM)) * 0.3
    layer = DenseCapsule(OUT_CAPS, OUT_DIM, routings=routings, use_bias=use_bias, leaky_routing=leaky)
    layer.build((None, IN_CAPS, IN_DIM))
    layer.set_weights([W.astype("float32")] + ([bias.astype("float32")] if use_bias else []))
    out = keras.ops.convert_to_numpy(layer(u.astype("float32")))
    expected, c = np_routing(W, u, routings, bias=bias if use_bias else None, leaky=leaky)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    plain, _ = np_routing(W, u, routings)
    assert np.abs(out - plain).max() > 1e-3  # each option changes the result
    if leaky:  # the orphan keeps a share: the couplings of an input sum to less than 1
        assert (c.sum(axis=1) < 1 - 1e-3).all()


def test_the_bias_starts_at_the_authors_constant():
    layer = DenseCapsule(3, 5, use_bias=True)
    layer.build((None, 6, 4))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.bias), np.full((3, 5), 0.1, "float32"))
    assert [w.name for w in layer.weights] == ["kernel", "bias"]
    assert DenseCapsule(3, 5).get_config()["use_bias"] is False


def test_coupling_softmax_is_over_output_capsules():
    # With one input capsule, a softmax over inputs would give c = 1 for every
    # output; over outputs, the couplings of the one input sum to 1.
    rng = np.random.default_rng(3)
    W = rng.normal(size=(4, 1, 3, 2))
    u = np_squash(rng.normal(size=(1, 1, 2)))
    layer = DenseCapsule(4, 3, routings=3)
    layer.build((None, 1, 2))
    layer.set_weights([W.astype("float32")])
    expected, c = np_routing(W, u, 3)
    np.testing.assert_allclose(c.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(u.astype("float32"))), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("routings", [1, 2, 3])
@pytest.mark.parametrize("batch", [1, 7])
def test_shapes(routings, batch):
    layer = DenseCapsule(10, 16, routings=routings)
    out = layer(np.random.rand(batch, 1152, 8).astype("float32"))
    assert tuple(out.shape) == (batch, 10, 16)
    assert layer.compute_output_shape((None, 1152, 8)) == (None, 10, 16)
    assert tuple(layer.kernel.shape) == (10, 1152, 16, 8)


def test_kernel_initializer_is_normal_001():
    layer = DenseCapsule(10, 16)
    layer.build((None, 1152, 8))
    W = keras.ops.convert_to_numpy(layer.kernel)
    assert abs(W.std() - 0.01) < 5e-4 and abs(W.mean()) < 5e-4


@pytest.mark.parametrize("bad", [0, -1, 1.5, None, True])
def test_bad_routings_raise_at_construction(bad):
    with pytest.raises(ValueError, match="routings"):
        DenseCapsule(10, 16, routings=bad)


def test_wrong_input_shape_is_a_clear_error():
    layer = DenseCapsule(10, 16)
    layer(np.zeros((1, 1152, 8), "float32"))
    with pytest.raises(ValueError, match="1152 capsules of 8"):
        layer(np.zeros((1, 100, 8), "float32"))
    with pytest.raises(ValueError, match="batch, in_capsules, in_dim"):
        DenseCapsule(10, 16)(np.zeros((2, 8), "float32"))


@pytest.mark.parametrize("implementation,options", [("einsum", {}), ("grouped_conv", {}), ("einsum", "authors")])
def test_layer_contract(implementation, options, tmp_path):
    # Routing runs in float32 under every policy, so the output is float32.
    authors = dict(use_bias=True, leaky_routing=True, bias_initializer="random_normal") if options else {}
    layer = run_layer_test(
        DenseCapsule,
        dict(num_capsule=7, dim_capsule=12, routings=2, implementation=implementation, name="dc", **authors),
        input_shape=(6, 4),
        expected_output_shape=(7, 12),
        mixed_output_dtype="float32",
        tmp_path=tmp_path,
    )
    assert (layer.num_capsule, layer.dim_capsule, layer.routings, layer.implementation) == (7, 12, 2, implementation)


def test_unknown_implementation_is_refused():
    with pytest.raises(ValueError, match="`implementation` must be one of einsum, grouped_conv; got 'loop'"):
        DenseCapsule(10, 16, implementation="loop")


def test_grouped_conv_predictions_and_gradients_equal_einsum():
    rng = np.random.default_rng(7)
    layer, W, u = make_layer(3, rng)
    u = u.astype("float32")
    loss = lambda out: keras.ops.sum(out * keras.ops.arange(OUT_DIM, dtype="float32"))  # noqa: E731
    einsum = grad_wrt_weights(layer, loss, u)
    expected = keras.ops.convert_to_numpy(layer.predictions(u))
    layer.implementation = "grouped_conv"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.predictions(u)), expected, rtol=1e-5, atol=1e-6)
    for a, b in zip(grad_wrt_weights(layer, loss, u), einsum):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_routing_is_float32_under_mixed_precision(policy):
    layer = DenseCapsule(3, 5, routings=3, dtype=policy)
    u = np_squash(np.random.default_rng(0).normal(size=(2, 6, 4))).astype("float32")
    out = layer(keras.ops.cast(u, layer.compute_dtype))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    W = keras.ops.convert_to_numpy(layer.kernel).astype("float64")
    expected, _ = np_routing(W, u.astype("float64"), 3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), expected, rtol=0.05, atol=2e-3)
