"""Train CapsNet (Sabour et al. 2017) on MNIST and friends: the command line of
`keras_caps.training` (each flag is a `TrainConfig` field of the same name).

    python train.py --routings 3                       # TFDS mnist (downloads when online), 20 epochs
    python train.py --recipe reference                 # the PyTorch/Keras ports' 50-epoch schedule
    python train.py --data_dir ../shared/data/mnist    # the four local IDX files
    python train.py --testing --weights runs/capsnet/best.keras --data_dir DIR

A run leaves in --save_dir: best.keras (by validation accuracy), final.keras,
checkpoints/epoch-NNNN.keras (with optimizer state, for --resume), log.csv,
history.json, tensorboard/, metrics.json, PNG figures and preset/ (the final model
with its metadata: `CapsNet.from_preset`, or --weights/--model of the front ends).
"""

import argparse
import dataclasses
import os
import sys

# TensorFlow reads its C++ log level when it loads, before flags are parsed:
# its start-up lines and logs only with --verbose 3.
_tf_logs = "--verbose=3" in sys.argv or any(a == "--verbose" and b == "3" for a, b in zip(sys.argv, sys.argv[1:]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if _tf_logs else "3")

from absl import app, flags

from keras_caps import ARCHITECTURES
from keras_caps.training import config as cfg
from keras_caps.training.recipes import RECIPES


def define_flags(fv=flags.FLAGS):
    """Defines train.py's flags on `fv`: one per `TrainConfig` field, of its name and default."""
    D = argparse.Namespace(**{f.name: f.default for f in dataclasses.fields(cfg.TrainConfig)})  # the defaults
    recipes = "; ".join(
        f"{name}: " + ", ".join(f"--{k} {v}" for k, v in values.items() if k != "lr_decay" or v != 0.9)
        for name, values in RECIPES.items()
    )
    flags.DEFINE_enum(
        "recipe",
        D.recipe,
        cfg.RECIPE_NAMES,
        "The schedule settings a flag left unset takes (--epochs, --lr, --lr_decay, --lr_schedule, "
        "--warmup_steps, --ema_momentum). fast (the default) is 20 epochs of the paper's model (its measured "
        "test error: BENCHMARKS.md, section 1); reference is the PyTorch/Keras ports' schedule, 50 epochs; "
        f"micro is --architecture micro's. {recipes}.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "architecture",
        D.architecture,
        ("auto",) + tuple(ARCHITECTURES),
        "auto (the default): chosen from the data's images and printed: paper for grey images, paper_norm "
        "for colour ones, micro for images too large for those. paper: the paper's CapsNet (8.2M weights "
        "on MNIST). paper_norm: the paper's with each image standardized and batch normalization in its "
        "stem, which learns on colour images whose backgrounds are not black. micro: 0.26M weights before "
        "the decoder (three convolutions with batch normalization, 128 primary capsules), whose int8 file "
        "fits a microcontroller; train it with --recipe micro (keras_caps.ARCHITECTURES, BENCHMARKS.md).",
        flag_values=fv,
    )
    flags.DEFINE_integer("routings", D.routings, "Routing iterations of the digit capsules (>= 1).", flag_values=fv)
    flags.DEFINE_integer("epochs", D.epochs, "Epochs to train (>= 1; default: the recipe's).", flag_values=fv)
    flags.DEFINE_integer("batch_size", D.batch_size, "Batch size (>= 1).", flag_values=fv)
    flags.DEFINE_float("lr", D.lr, "Peak Adam learning rate (> 0; default: the recipe's).", flag_values=fv)
    flags.DEFINE_float(
        "lr_decay",
        D.lr_decay,
        "Learning rate multiplier per epoch of the exponential schedule: lr * lr_decay**epoch (0 < d <= 1).",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "lr_schedule",
        D.lr_schedule,
        cfg.SCHEDULE_NAMES,
        "exponential: --lr * --lr_decay**epoch (the reference's). cosine: from --lr down to 0 at the "
        "run's last step, a cosine per step (--lr_decay unused). Default: the recipe's.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "warmup_steps",
        D.warmup_steps,
        "Linear learning-rate warm-up over the first N optimizer steps of a run, before either schedule "
        "(0: none; default: the recipe's).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "ema_momentum",
        D.ema_momentum,
        "Keep a moving average of the weights with this momentum (Polyak averaging, [0, 1); 0: none; "
        "default: the recipe's, lowered for a run too short for it, so that the average spans at most a tenth "
        "of the run's steps): it is validated every epoch and is the run's best.keras and final.keras.",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "ema_warmup",
        D.ema_warmup,
        "The average's momentum rises as min(--ema_momentum, (1 + t) / (10 + t)) over the steps t "
        "(TensorFlow's num_updates form), so the average follows the trained weights from the first epoch; "
        "--noema_warmup: Keras's plain average.",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "lam_recon", D.lam_recon, "Weight of the mean squared reconstruction error (0.0005 * 784).", flag_values=fv
    )
    flags.DEFINE_enum(
        "loss_form",
        D.loss_form,
        ["ports", "authors"],
        "ports: the margin loss summed over classes (the paper's, the PyTorch/Keras ports'). authors: the "
        "authors' code's (half the present term, a quarter the absent one, averaged over classes), beside "
        "which the reconstruction weighs 20x as much on 10 classes.",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "capsule_bias",
        D.capsule_bias,
        "A bias per digit-capsule component before each squash, as the authors' code has (0.1 at start).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "shift_pixels",
        D.shift_pixels,
        "Random shift of training images, up to this many pixels (0 = none).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "dataset", D.dataset, "TFDS image classification data set (mnist, fashion_mnist, cifar10, ...).", flag_values=fv
    )
    flags.DEFINE_string(
        "data_dir",
        D.data_dir,
        "Folder with the four MNIST IDX files (.gz or raw), or of images (PNG, JPEG, BMP, GIF) with one "
        "sub-folder per class: DIR/train/<class>/ and DIR/test/<class>/ (DIR/val/<class>/ optional), or one "
        "tree DIR/<class>/ split by --test_split and --val_split. TFDS if unset.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "image_size",
        None,
        "An image folder's images resized to HEIGHT,WIDTH (or one number for a square); unset: their own "
        "size, which they must then share.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "color_mode",
        D.color_mode,
        ["grayscale", "rgb"],
        "An image folder's images as grey or RGB; unset: as the files are (RGB if any has colour).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "test_split",
        D.test_split,
        "Share of a single image tree (no test/ folder) held out, stratified and seeded, as its test set (unset: 0.2).",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "cache",
        D.cache,
        ["auto", "memory", "none"],
        "An image folder's decoded images in memory: auto (when they fit in a quarter of the free memory, "
        "at most 4 GiB), memory (always) or none (decoded from the files as training goes, in parallel).",
        flag_values=fv,
    )
    flags.DEFINE_string("save_dir", D.save_dir, "Folder for models, logs, checkpoints and figures.", flag_values=fv)
    flags.DEFINE_bool(
        "testing", D.testing, "Evaluate --weights on the test set and draw figures; no training.", flag_values=fv
    )
    flags.DEFINE_string(
        "weights",
        D.weights,
        "A .keras model, a preset (a shipped name such as mnist_micro, or a run's preset/ folder) or a "
        ".weights.h5 file: evaluated with --testing, else trained further (a model or preset in its own "
        "architecture).",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "mixed_precision",
        D.mixed_precision,
        cfg.POLICIES,
        "Dtype policy. auto: mixed_float16 on GPU, mixed_bfloat16 on CPUs with bf16, else float32.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "seed", D.seed, "Random seed for weights, shuffling and shifts (unset: random).", flag_values=fv
    )
    flags.DEFINE_integer(
        "steps_per_epoch",
        D.steps_per_epoch,
        "Batches per epoch (default: one pass over the training set).",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "resume",
        D.resume,
        "Continue from the last completed epoch in --save_dir (also automatic "
        "when --save_dir holds checkpoints of an interrupted run).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "val_split",
        D.val_split,
        "Share of the training set held out for validation and best-model "
        "selection; 0 validates on the test set, as the PyTorch reference does.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "strategy",
        D.strategy,
        cfg.STRATEGIES,
        "tf.distribute strategy: default (one device), mirrored (all local GPUs), multi_worker "
        "(MultiWorkerMirroredStrategy, cluster from TF_CONFIG) or tpu. --batch_size is global.",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "tune",
        False,
        "Hyperparameter search with keras-tuner instead of one run: routings, lr, "
        "lr_decay, lam_recon, primary channels, batch size; --epochs per trial; scored on a "
        "validation split of the training set (--val_split, 0.1 if unset).",
        flag_values=fv,
    )
    flags.DEFINE_enum("tuner", D.tuner, cfg.TUNERS, "Search algorithm for --tune.", flag_values=fv)
    flags.DEFINE_integer("max_trials", D.max_trials, "Most trials (models tried) for --tune.", flag_values=fv)
    flags.DEFINE_integer(
        "verbose",
        D.verbose,
        "0 silent, 1 progress bar, 2 one line per epoch, 3 one line per epoch "
        "and TensorFlow's own logs (hidden otherwise).",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "figures", D.figures, "PNG figures at the end: training curves, reconstructions, latent walk.", flag_values=fv
    )
    flags.register_validator("verbose", lambda v: 0 <= v <= 3, "--verbose must be 0, 1, 2 or 3.", flag_values=fv)


FIELDS = [field.name for field in dataclasses.fields(cfg.TrainConfig)]


def config_from_flags(flag_values):
    """The `TrainConfig` the flags describe (a ValueError names the bad one as its flag)."""
    values = {name: flag_values[name].value for name in FIELDS}
    values["verbose"] = min(values["verbose"], 2)
    if values["image_size"] is not None:
        values["image_size"] = parse_image_size(values["image_size"])
    return cfg.TrainConfig(**values)


def parse_image_size(text):
    """ "32,48", "32x48" or "32" (square) -> (height, width)."""
    parts = text.replace("x", ",").split(",")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"`image_size` must be HEIGHT,WIDTH (two integers >= 1) or one for a square, got {text!r}.")
    return size


def main(flag_values):
    from keras_caps.training import run, tune

    config = config_from_flags(flag_values)
    return tune(config) if flag_values.tune else run(config, command=command_line(flag_values))


def command_line(flag_values):
    """This run's command as a shell takes it: the flags given, each as absl writes it back."""
    import shlex

    given = [flag_values[name].serialize() for name in FIELDS if flag_values[name].present]
    return shlex.join(["python", "train.py", *given])


def _expected_errors():
    from keras_caps.data.idx import DataError
    from keras_caps.training import TrainingError

    return (DataError, TrainingError, ValueError, OSError)


def cli_main(flag_values=flags.FLAGS):
    """The absl `main(argv)` of this program, on `flag_values` as `define_flags` left them."""
    from keras_caps.cli import absl_main

    return absl_main(main, _expected_errors, verbose=lambda f: f.verbose >= 3, flag_values=flag_values)


if __name__ == "__main__":
    define_flags()
    app.run(cli_main())
