"""Where a CapsNet training step's time goes: each stage's forward + backward timed alone.

    python benchmarks/profile_step.py [--policy float32|mixed_bfloat16] [--repeats 10]

Batch 100, TensorFlow, tf.function per stage with gradients for the stage's weights (and its
input where the step needs it). Prints one JSON line per stage, with its FLOPs (counted from
the shapes, as benchmarks/throughput.py does) and GFLOP/s, then the whole `train_on_batch` step.
"""

import argparse
import json

BATCH = 100


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default="float32")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf
    from throughput import matmul_roofline, timed

    from keras_caps import CapsNet, DenseCapsule
    from keras_caps.models.flops import capsnet_flops

    keras.mixed_precision.set_global_policy(args.policy)
    model = CapsNet()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(0, 1, (BATCH, 28, 28, 1)).astype("float32"))
    y = rng.integers(0, 10, BATCH)
    h = model.conv1(x)
    u = model.primary_caps(h)
    v = model.digit_caps(u)
    one_caps = DenseCapsule(10, 16, routings=1, dtype=model.dtype_policy)
    one_caps.build(u.shape)
    masked = tf.reshape(v, (BATCH, -1))

    def stage(fn, inputs, weights, needs_input_grad):
        inputs = tf.convert_to_tensor(inputs)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                out = fn(inputs)
                loss = tf.reduce_sum(tf.cast(out, tf.float32))
            targets = list(weights) + ([inputs] if needs_input_grad else [])
            return tape.gradient(loss, targets)

        return timed(lambda: [g.numpy() for g in step()], args.repeats, warmup=2)

    def decoder(z):
        for layer in model.decoder_layers:
            z = layer(z)
        return z

    dec_weights = [w for layer in model.decoder_layers for w in layer.trainable_weights]
    # FLOPs per image, forward + backward, from the shapes (multiply-add = 2).
    counts = {name: sum(pair) for name, pair in capsnet_flops()["stages"].items()}
    one_routing = sum(capsnet_flops(routings=1)["stages"]["digit_caps"])
    stages = {
        "conv1": (lambda: stage(model.conv1, x, model.conv1.trainable_weights, False), counts["conv1"]),
        "primary_caps": (
            lambda: stage(model.primary_caps, h, model.primary_caps.trainable_weights, True),
            counts["primary_caps"],
        ),
        "digit_caps_u_hat_plus_1_routing": (lambda: stage(one_caps, u, one_caps.trainable_weights, True), one_routing),
        "digit_caps_3_routings": (
            lambda: stage(model.digit_caps, u, model.digit_caps.trainable_weights, True),
            counts["digit_caps"],
        ),
        "decoder": (lambda: stage(decoder, masked, dec_weights, True), counts["decoder"]),
    }
    total = 0.0
    rows = []
    for name, (run, flops) in stages.items():
        seconds = run()
        if name != "digit_caps_u_hat_plus_1_routing":
            total += seconds
        rows.append(
            {"stage": name, "ms": round(1000 * seconds, 1), "gflop_per_s": round(flops * BATCH / seconds / 1e9, 1)}
        )
    step = timed(lambda: model.train_on_batch(x, y), args.repeats, warmup=3)
    roofline = matmul_roofline()
    for row in rows:
        row["share_of_step"] = round(row["ms"] / (1000 * step), 3)
        print(json.dumps({"policy": args.policy, **row}))
    print(
        json.dumps(
            {
                "policy": args.policy,
                "stage": "train_on_batch (whole step)",
                "ms": round(1000 * step, 1),
                "stages_sum_ms": round(1000 * total, 1),
                "other_ms (loss, Adam update, masking, overhead)": round(1000 * (step - total), 1),
                "matmul_roofline_gflop_per_s": {k: round(v, 1) for k, v in roofline.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
