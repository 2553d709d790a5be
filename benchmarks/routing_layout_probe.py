"""Three ways to compute the digit capsules (u_hat = W u and 3 routings), timed side by side.

    python benchmarks/routing_layout_probe.py [--batch 100] [--repeats 10]

- `einsum`: `ops.einsum("bik,jiok->bjio")` into (batch, out, in, dim), routing by einsums
  (the layer before session 4);
- `matmul`: `DenseCapsule` as shipped: one batched matmul over the input capsules, one transpose,
  the same routing;
- `capsule_major`: u_hat left as (in, batch, out, dim), routing sums as multiply-and-reduce.

TensorFlow, float32, random inputs of MNIST's shapes. One JSON line per form and pass
(forward, forward + backward), with the largest difference from `einsum`.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()

    import numpy as np
    import tensorflow as tf
    from keras import ops

    from keras_caps import DenseCapsule
    from keras_caps.activations import squash

    in_caps, in_dim, out_caps, out_dim, routings = 1152, 8, 10, 16, 3
    rng = np.random.default_rng(0)
    x = tf.constant(0.3 * rng.normal(size=(args.batch, in_caps, in_dim)).astype("float32"))
    layer = DenseCapsule(out_caps, out_dim, routings=routings)
    layer.build(x.shape)
    W = layer.kernel

    def route(u_hat, in_axis, out_axis, weighted_sum, agreement):
        frozen, logits = ops.stop_gradient(u_hat), None
        for r in range(routings):
            preds = u_hat if r == routings - 1 else frozen
            s = (ops.sum(preds, axis=in_axis) / out_caps if logits is None
                 else weighted_sum(ops.softmax(logits, axis=out_axis), preds))
            v = squash(s)
            if r < routings - 1:
                a = agreement(v, frozen)
                logits = a if logits is None else logits + a
        return v

    def einsum(u):
        return route(ops.einsum("bik,jiok->bjio", u, W), in_axis=2, out_axis=1,
                     weighted_sum=lambda c, u_hat: ops.einsum("bji,bjio->bjo", c, u_hat),
                     agreement=lambda v, u_hat: ops.einsum("bjo,bjio->bji", v, u_hat))

    def capsule_major(u):
        kernel = ops.reshape(ops.transpose(W, (1, 3, 0, 2)), (in_caps, in_dim, out_caps * out_dim))
        u_hat = ops.reshape(ops.matmul(ops.transpose(u, (1, 0, 2)), kernel), (in_caps, -1, out_caps, out_dim))
        return route(u_hat, in_axis=0, out_axis=2,
                     weighted_sum=lambda c, u_hat: ops.sum(c[..., None] * u_hat, axis=0),
                     agreement=lambda v, u_hat: ops.sum(u_hat * v[None], axis=-1))

    forms = {"einsum": einsum, "matmul": layer, "capsule_major": capsule_major}

    def with_gradients(fn):
        def step(u):
            with tf.GradientTape() as tape:
                tape.watch(u)
                v = fn(u)
                loss = tf.reduce_sum(v * v)
            return [v] + tape.gradient(loss, [u, W])
        return step

    passes = {"forward": lambda fn: (lambda u: [fn(u)]), "forward_backward": with_gradients}
    for pass_name, wrap in passes.items():
        compiled = {name: tf.function(wrap(fn)) for name, fn in forms.items()}
        baseline = [t.numpy() for t in compiled["einsum"](x)]
        for name, fn in compiled.items():
            out = [t.numpy() for t in fn(x)]
            start = time.perf_counter()
            for _ in range(args.repeats):
                fn(x)[0].numpy()
            print(json.dumps({
                "form": name, "pass": pass_name, "batch": args.batch,
                "ms": round((time.perf_counter() - start) / args.repeats * 1000, 2),
                "max_abs_diff_vs_einsum": max(float(np.abs(a - b).max()) for a, b in zip(out, baseline)),
            }))


if __name__ == "__main__":
    main()
