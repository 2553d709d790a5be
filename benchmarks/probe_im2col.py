"""Probe (session 11): the primary capsules' 9x9 stride-2 convolution as im2col + one matmul, fwd + bwd.

    python benchmarks/probe_im2col.py

Batch 100, 20x20x256 -> 6x6x256, gradients for the input and the kernel; prints one JSON line per
dtype with both times and the relative differences of output and gradients.
"""

import json
import time

import numpy as np
import tensorflow as tf

B = 100


def im2col_conv(x, w):  # x [B,20,20,C], w [9,9,C,F], stride 2, valid
    cols = [x[:, i : i + 11 : 2, j : j + 11 : 2, :] for i in range(9) for j in range(9)]
    p = tf.concat(cols, axis=-1)  # [B,6,6,81C], order (i,j,c)
    y = tf.reshape(p, [-1, 81 * x.shape[-1]]) @ tf.reshape(w, [-1, w.shape[-1]])
    return tf.reshape(y, [-1, 6, 6, w.shape[-1]])


def conv(x, w):
    return tf.nn.conv2d(x, w, 2, "VALID")


for dt in (tf.bfloat16, tf.float32):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(B, 20, 20, 256)).astype("float32"))
    w = tf.constant(rng.normal(size=(9, 9, 256, 256)).astype("float32") * 0.01)
    d = tf.constant(rng.normal(size=(B, 6, 6, 256)).astype("float32"))
    res = {}
    for name, f in (("conv", conv), ("im2col", im2col_conv)):

        @tf.function
        def step(x, w):
            xc, wc = tf.cast(x, dt), tf.cast(w, dt)
            with tf.GradientTape() as t:
                t.watch([xc, wc])
                y = f(xc, wc)
                loss = tf.reduce_sum(tf.cast(y, tf.float32) * d)
            gx, gw = t.gradient(loss, [xc, wc])
            return y, gx, gw

        out = step(x, w)
        out = step(x, w)
        ts = []
        for _ in range(3):
            t0 = time.perf_counter()
            o = step(x, w)
            _ = [v.numpy() for v in o]
            ts.append(time.perf_counter() - t0)
        res[name] = (min(ts) * 1000, [v.numpy().astype("float32") for v in o])
    a, b = res["conv"][1], res["im2col"][1]
    err = [float(np.max(np.abs(p - q)) / (np.max(np.abs(p)) + 1e-9)) for p, q in zip(a, b)]
    print(
        json.dumps(
            {
                "dtype": dt.name,
                "conv_ms": round(res["conv"][0], 1),
                "im2col_ms": round(res["im2col"][0], 1),
                "rel_err_y_gx_gw": err,
            }
        )
    )
