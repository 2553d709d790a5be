"""Train CapsNet (Sabour et al. 2017) on MNIST and friends: the command line of
`keras_caps.training`: each flag is a `TrainConfig` field of the same name, its help the
field's, made by `keras_caps.cli.define_config_flags`.

    python train.py --routings 3                       # TFDS mnist (downloads when online), 20 epochs
    python train.py --recipe long                      # the default's schedule over 50 epochs
    python train.py --recipe reference                 # the PyTorch/Keras ports' 50-epoch schedule
    python train.py --data_dir ../shared/data/mnist    # the four local IDX files
    python train.py --testing --weights runs/capsnet/best.keras --data_dir DIR

A run leaves in --save_dir: best.keras (by validation accuracy), final.keras,
checkpoints/epoch-NNNN.keras (with optimizer state, for --resume), log.csv,
history.json, tensorboard/, metrics.json (with each class's test accuracy and the
confusion matrix), mistakes.csv (the test images it got wrong), PNG figures and
preset/ (the final model with its metadata: `CapsNet.from_preset`, or
--weights/--model of the front ends)."""

import os
import sys

# TensorFlow reads its C++ log level when it loads, before flags are parsed:
# its start-up lines and logs only with --verbose 3.
_tf_logs = "--verbose=3" in sys.argv or any(a == "--verbose" and b == "3" for a, b in zip(sys.argv, sys.argv[1:]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if _tf_logs else "3")

from absl import app, flags

from keras_caps.cli import config_values, define_config_flags, given_flags
from keras_caps.training.config import TrainConfig


def define_flags(fv=flags.FLAGS):
    """Defines train.py's flags on `fv`: one per `TrainConfig` field (its name, default and
    help), and --tune."""
    define_config_flags(TrainConfig, fv)
    fv["verbose"].help += " 3: as 2, with TensorFlow's own logs (hidden otherwise)."
    flags.DEFINE_bool(
        "tune",
        False,
        "Hyperparameter search with keras-tuner instead of one run: routings, lr, lr_decay, lam_recon, "
        "batch size; --epochs per trial; scored on a validation split of the training set (--val_split, "
        "0.1 if unset).",
        flag_values=fv,
    )
    flags.register_validator("verbose", lambda v: 0 <= v <= 3, "--verbose must be 0, 1, 2 or 3.", flag_values=fv)


def config_from_flags(flag_values):
    """The `TrainConfig` the flags describe (a ValueError names the bad one as its flag)."""
    values = config_values(TrainConfig, flag_values)
    values["verbose"] = min(values["verbose"], 2)
    return TrainConfig(**values)


def main(flag_values):
    from keras_caps.training import run, tune

    config = config_from_flags(flag_values)
    if flag_values.tune:
        return tune(config)
    return run(config, command=given_flags(TrainConfig, flag_values, "python train.py"))


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
