"""The paper's MNIST run on the Keras JAX backend (made for the lent GPU machines), with its timings.

    KERAS_BACKEND=jax python benchmarks/gpu_train.py --data_dir DIR [--recipe fast|long|...] [--seed 0]
        [--policy mixed_float16] [--routings 3] [--out FOLDER] [train.py's schedule flags: --epochs, --lr, ...]

`keras_caps.training.run`, the same run as `python train.py`: on a backend other than TensorFlow
its input is `keras_caps.data.batches.ArrayBatches` (numpy; TensorFlow need not be installed).
Prints one JSON line per epoch (seconds with and without the test pass, training images/s, loss,
test accuracy and error) and a
summary line, and writes them to `--out`/gpu_train.json beside the run's own files.
"""

import argparse
import json
import os
import sys


def main():
    from keras_caps.training.recipes import RECIPES
    from keras_caps.training.schedules import SCHEDULES

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True, help="folder with the four MNIST IDX files")
    p.add_argument("--recipe", default="fast", choices=list(RECIPES), help="train.py's --recipe")
    # The schedule: unset, the recipe's (as in train.py).
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--lr_decay", type=float)
    p.add_argument("--lr_schedule", choices=list(SCHEDULES))
    p.add_argument("--warmup_steps", type=int)
    p.add_argument("--ema_momentum", type=float)
    p.add_argument("--batch_size", type=int, default=100)
    p.add_argument("--routings", type=int, default=3)
    p.add_argument("--shift_pixels", type=int, default=2)
    p.add_argument("--policy", default="mixed_float16", choices=["float32", "mixed_float16", "mixed_bfloat16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps_per_epoch", type=int, default=None, help="for short runs")
    p.add_argument("--out", default="runs/gpu_train")
    args = p.parse_args()

    import keras

    from keras_caps.training import TrainConfig, run

    try:
        config = TrainConfig(
            data_dir=args.data_dir,
            recipe=args.recipe,
            epochs=args.epochs,
            ema_momentum=args.ema_momentum,
            batch_size=args.batch_size,
            lr=args.lr,
            lr_decay=args.lr_decay,
            lr_schedule=args.lr_schedule,
            warmup_steps=args.warmup_steps,
            routings=args.routings,
            shift_pixels=args.shift_pixels,
            mixed_precision=args.policy,
            seed=args.seed,
            steps_per_epoch=args.steps_per_epoch,
            figures=False,  # the GPU machines need no matplotlib
            save_dir=args.out,
            verbose=2,
        )
    except ValueError as error:
        p.error(str(error))
    metrics = run(config)
    with open(os.path.join(args.out, "history.json")) as f:
        history = json.load(f)
    # Images one epoch trains on: the whole set, or --steps_per_epoch full batches.
    images = metrics["train_images"] if args.steps_per_epoch is None else args.steps_per_epoch * args.batch_size
    rows = [
        {
            "epoch": h["epoch"],
            "lr": h["learning_rate"],
            "seconds": h["seconds"],
            "train_seconds": h["train_seconds"],
            "train_images_per_s": round(images / h["train_seconds"], 1),
            "loss": round(h["loss"], 5),
            "test_accuracy": h["val_accuracy"],
            "test_error_percent": round(100 * (1 - h["val_accuracy"]), 3),
        }
        for h in history
    ]
    for row in rows:
        print(json.dumps(row))
    steady = rows[1:] or rows  # the first epoch includes compilation
    device = str(keras.ops.convert_to_tensor(0.0).device) if keras.backend.backend() == "jax" else "n/a"
    summary = {
        "policy": metrics["policy"],
        "backend": metrics["backend"],
        "device": device,
        "epochs": len(rows),
        "routings": args.routings,
        "batch_size": args.batch_size,
        "final_test_error_percent": round(100 * metrics["test_error"], 3),
        "best_test_error_percent": min(r["test_error_percent"] for r in rows),
        "mean_seconds_per_epoch_after_first": round(sum(r["seconds"] for r in steady) / len(steady), 2),
        "first_epoch_seconds": rows[0]["seconds"],
        "command": sys.argv,
    }
    print(json.dumps(summary), flush=True)
    with open(os.path.join(args.out, "gpu_train.json"), "w") as f:
        json.dump({"summary": summary, "epochs": rows}, f, indent=2)


if __name__ == "__main__":
    main()
