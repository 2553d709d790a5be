"""Backend-neutral helpers and the seed's formulas, in numpy, for golden tests."""

import keras
import numpy as np


# ---------------------------------------------------------------- seed formulas
def np_squash(s, axis=-1):
    """The reference: scale = norm**2 / (1 + norm**2) / (norm + 1e-8)."""
    norm = np.linalg.norm(s, axis=axis, keepdims=True)
    return norm ** 2 / (1 + norm ** 2) / (norm + 1e-8) * s


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_predictions(W, u):
    """x_hat = squeeze(matmul(W, u[:, None, :, :, None])): (batch, out, in, out_dim)."""
    return np.squeeze(np.matmul(W[None], u[:, None, :, :, None]), -1)


def np_routing(W, u, routings, frozen_coupling=None):
    """The reference's DenseCapsule.forward. With `frozen_coupling`, the last
    iteration uses those couplings (used to differentiate through it alone)."""
    x_hat = np_predictions(W, u)
    b = np.zeros(x_hat.shape[:3])
    for i in range(routings):
        c = np_softmax(b, axis=1)
        if i == routings - 1 and frozen_coupling is not None:
            c = frozen_coupling
        outputs = np_squash(np.sum(c[:, :, :, None] * x_hat, axis=-2, keepdims=True))
        b = b + np.sum(outputs * x_hat, axis=-1)
    return np.squeeze(outputs, -2), c


def np_caps_loss(y_true, y_pred, x, x_recon, lam_recon):
    L = y_true * np.clip(0.9 - y_pred, 0, None) ** 2 + 0.5 * (1 - y_true) * np.clip(y_pred - 0.1, 0, None) ** 2
    return L.sum(axis=1).mean() + lam_recon * np.mean((x_recon - x) ** 2)


# ---------------------------------------------------------------- gradients
def grad(fn, x):
    """d fn(x) / dx for a scalar-valued `fn`, on whichever backend is active."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return keras.ops.convert_to_numpy(tape.gradient(y, x))
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(fn)(keras.ops.convert_to_tensor(x)))
    raise NotImplementedError(backend)


def grad_wrt_weights(layer, fn, *inputs):
    """Gradients of `fn(layer(*inputs))` w.r.t. each trainable weight, via stateless_call."""
    weights = [keras.ops.convert_to_tensor(v.value) for v in layer.trainable_variables]
    others = [v.value for v in layer.non_trainable_variables]

    def loss(ws):
        out, _ = layer.stateless_call(ws, others, *inputs)
        return fn(out)

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        weights = [tf.Variable(w) for w in weights]
        with tf.GradientTape() as tape:
            y = loss([w for w in weights])
        return [g.numpy() for g in tape.gradient(y, weights)]
    if backend == "jax":
        import jax

        return [np.asarray(g) for g in jax.grad(loss)(weights)]
    raise NotImplementedError(backend)
