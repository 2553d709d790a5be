"""The paper's MNIST run on a machine without TensorFlow: Keras's JAX backend, numpy data.

    KERAS_BACKEND=jax python benchmarks/gpu_train.py --data_dir DIR [--epochs 50] [--policy mixed_float16]
        [--routings 3] [--out FOLDER]

What train.py does, minus tf.data: the IDX files read by `keras_caps.idx`, pixels scaled to
[0, 1], each epoch a fresh permutation and a random shift of up to `--shift_pixels` pixels
per image with zero padding (as `keras_caps.data.shift_images`), Adam `--lr` decayed by
`--lr_decay` per epoch, the same `CapsNet`. Made for the lent GPU machines (JAX, no
TensorFlow; carry the keras wheel and its missing dependencies). Prints one JSON line per
epoch (seconds, training images/s, loss, test accuracy and error) and a summary line, and
writes them to `--out`/gpu_train.json.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def shift_batch(images, max_shift, rng):
    """Each image `(n, h, w, c)` moved by up to `max_shift` pixels per axis, zeros coming in."""
    if max_shift <= 0:
        return images
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
    offsets = rng.integers(0, 2 * max_shift + 1, size=(n, 2))
    rows = offsets[:, :1] + np.arange(h)[None, :]
    cols = offsets[:, 1:] + np.arange(w)[None, :]
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def batches(images, labels, batch_size, max_shift, seed, epoch, steps=None):
    """One epoch of shuffled, shifted batches; the same for the same seed and epoch."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(images))
    count = len(images) // batch_size if steps is None else steps
    for i in range(count):
        index = order[(i * batch_size) % len(images):][:batch_size]
        yield shift_batch(images[index], max_shift, rng), labels[index]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True, help="folder with the four MNIST IDX files")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch_size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr_decay", type=float, default=0.9)
    p.add_argument("--routings", type=int, default=3)
    p.add_argument("--shift_pixels", type=int, default=2)
    p.add_argument("--policy", default="mixed_float16", choices=["float32", "mixed_float16", "mixed_bfloat16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps_per_epoch", type=int, default=None, help="for short runs")
    p.add_argument("--test_images", type=int, default=None, help="test on the first N (default all)")
    p.add_argument("--out", default="runs/gpu_train")
    args = p.parse_args()
    if args.epochs < 1 or args.batch_size < 1:
        p.error("--epochs and --batch_size must be >= 1")

    import keras

    from keras_caps import CapsNet
    from keras_caps.idx import load_mnist_idx

    keras.utils.set_random_seed(args.seed)
    keras.mixed_precision.set_global_policy(args.policy)
    (x_train, y_train), (x_test, y_test) = load_mnist_idx(args.data_dir)
    x_train = (x_train.astype("float32") / 255)[..., None]
    x_test = (x_test[:args.test_images].astype("float32") / 255)[..., None]
    y_test = y_test[:args.test_images]
    model = CapsNet(routings=args.routings)
    model.compile(optimizer=keras.optimizers.Adam(args.lr))
    os.makedirs(args.out, exist_ok=True)
    device = str(keras.ops.convert_to_tensor(0.0).device) if keras.backend.backend() == "jax" else "n/a"
    rows = []
    for epoch in range(args.epochs):
        model.optimizer.learning_rate = args.lr * args.lr_decay ** epoch
        start, losses, seen = time.perf_counter(), [], 0
        for x, y in batches(x_train, y_train, args.batch_size, args.shift_pixels, args.seed, epoch,
                            args.steps_per_epoch):
            # A Python float: train_on_batch waits for the step, so the timing is honest.
            losses.append(model.train_on_batch(x, y, return_dict=True)["loss"])
            seen += len(x)
        seconds = time.perf_counter() - start
        scores = model.predict(x_test, batch_size=500, verbose=0)
        accuracy = float((scores.argmax(-1) == y_test).mean())
        rows.append({"epoch": epoch + 1, "lr": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
                     "seconds": round(seconds, 2), "train_images_per_s": round(seen / seconds, 1),
                     "loss": round(float(np.mean(losses)), 5), "test_accuracy": accuracy,
                     "test_error_percent": round(100 * (1 - accuracy), 3)})
        print(json.dumps(rows[-1]), flush=True)
    steady = rows[1:] or rows  # the first epoch includes compilation
    summary = {"policy": args.policy, "backend": keras.backend.backend(), "device": device,
               "epochs": args.epochs, "routings": args.routings, "batch_size": args.batch_size,
               "final_test_error_percent": rows[-1]["test_error_percent"],
               "best_test_error_percent": min(r["test_error_percent"] for r in rows),
               "mean_seconds_per_epoch_after_first": round(float(np.mean([r["seconds"] for r in steady])), 2),
               "first_epoch_seconds": rows[0]["seconds"], "test_images": len(x_test), "command": sys.argv}
    print(json.dumps(summary), flush=True)
    with open(os.path.join(args.out, "gpu_train.json"), "w") as f:
        json.dump({"summary": summary, "epochs": rows}, f, indent=2)
    model.save(os.path.join(args.out, "final.keras"))


if __name__ == "__main__":
    main()
