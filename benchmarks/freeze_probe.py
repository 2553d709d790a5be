"""Probe: after `--transfer`, should the preset's stem be frozen (Keras's transfer-learning recipe)?

Runs `keras_caps.training.run` with `weights` and `transfer`, the stem's layers
(`keras_caps.models.transfer.stem_layers`) set `trainable = False` before the model is
compiled, so that only the new class capsules and decoder train (the batch normalization
in the stem keeps its moving statistics, as a frozen Keras layer does). Every other flag is
train.py's. Prints one JSON line: validation and test accuracy, from the run's metrics.json.

    python benchmarks/freeze_probe.py --data_dir ~/data/fashion600 --weights mnist_micro --transfer \\
        --architecture micro --recipe micro --epochs 30 --val_split 0.2 --seed 0 --save_dir RUNS/tiny_frozen_s0
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags

import train


def main(argv):
    from keras_caps.models.transfer import stem_layers
    from keras_caps.training import run, trainer

    transfer = trainer._transfer

    def frozen(*args, **kwargs):
        model = transfer(*args, **kwargs)
        for layer in stem_layers(model):
            layer.trainable = False
        print(f"Stem frozen: {len(model.trainable_weights)} trainable weights left.")
        return model

    trainer._transfer = frozen
    config = train.config_from_flags(flags.FLAGS)
    metrics = run(config)
    print(
        json.dumps(
            {
                "run": os.path.basename(config.save_dir),
                "validation_accuracy": metrics["validation_accuracy"],
                "test_accuracy": metrics["test_accuracy"],
                "train_seconds": metrics["train_seconds_this_run"],
                "policy": metrics["policy"],
                "machine": metrics["machine"],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    train.define_flags()
    app.run(main)
