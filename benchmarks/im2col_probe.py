"""The primary-capsule convolution (9x9, stride 2, 256 -> 256 channels, batch 100) two ways:
TensorFlow's Conv2D, and im2col (tf.image.extract_patches + one matmul).

    python benchmarks/im2col_probe.py [--repeats 5]

Prints one JSON line per formulation: forward ms and forward+backward ms (gradients for the
kernel and the input), and the largest difference between the two outputs; then each of the
convolution's three passes (forward, gradient for the input, gradient for the kernel) and the
patch extraction alone, with GFLOP/s and the share of this run's float32 matmul roofline.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from throughput import matmul_roofline, timed

    rng = np.random.default_rng(0)
    h = tf.constant(rng.random((100, 20, 20, 256), np.float32))
    kernel = tf.Variable(rng.random((9, 9, 256, 256), np.float32) * 0.01)
    patch = 9 * 9 * 256

    def conv(x):
        return tf.nn.conv2d(x, kernel, 2, "VALID")

    def im2col(x):
        patches = tf.image.extract_patches(x, [1, 9, 9, 1], [1, 2, 2, 1], [1, 1, 1, 1], "VALID")
        return tf.reshape(tf.reshape(patches, (-1, patch)) @ tf.reshape(kernel, (patch, 256)), (100, 6, 6, 256))

    for name, fn in (("conv2d", conv), ("im2col", im2col)):
        forward = tf.function(lambda fn=fn: fn(h))

        @tf.function
        def both(fn=fn):
            with tf.GradientTape() as tape:
                tape.watch(h)
                loss = tf.reduce_sum(fn(h))
            return tape.gradient(loss, [kernel, h])

        fwd = timed(lambda: forward().numpy(), args.repeats, warmup=2)
        fwd_bwd = timed(lambda: [g.numpy() for g in both()], args.repeats, warmup=2)
        print(json.dumps({"formulation": name, "forward_ms": round(1000 * fwd, 1),
                          "forward_backward_ms": round(1000 * fwd_bwd, 1)}))
    print(json.dumps({"max_abs_output_diff": float(tf.reduce_max(tf.abs(conv(h) - im2col(h))))}))

    dy = tf.constant(rng.random((100, 6, 6, 256), np.float32))
    flop = 2 * 100 * 6 * 6 * patch * 256  # each pass is one such product
    roofline = matmul_roofline()["float32"]
    passes = {
        "conv_forward": lambda: conv(h),
        "conv_input_gradient": lambda: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=h.shape, filter=kernel, out_backprop=dy, strides=[1, 2, 2, 1], padding="VALID"),
        "conv_kernel_gradient": lambda: tf.raw_ops.Conv2DBackpropFilter(
            input=h, filter_sizes=kernel.shape, out_backprop=dy, strides=[1, 2, 2, 1], padding="VALID"),
        "extract_patches_alone": lambda: tf.image.extract_patches(h, [1, 9, 9, 1], [1, 2, 2, 1], [1, 1, 1, 1],
                                                                  "VALID"),
    }
    for name, fn in passes.items():
        compiled = tf.function(fn)
        seconds = timed(lambda: compiled().numpy(), args.repeats, warmup=2)
        row = {"pass": name, "ms": round(1000 * seconds, 1)}
        if name.startswith("conv"):
            row.update(gflop_per_s=round(flop / seconds / 1e9, 1),
                       fraction_of_matmul_roofline=round(flop / seconds / 1e9 / roofline, 3))
        print(json.dumps(row))
    print(json.dumps({"matmul_roofline_gflop_per_s": round(roofline, 1)}))


if __name__ == "__main__":
    main()
