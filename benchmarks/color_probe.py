"""Probe: which CapsNet learns on colour images whose backgrounds are not black.

Trains each candidate with the default recipe on an image folder's validation
split (`--val_split 0.1`, seed 0) and prints one JSON line per candidate: its
validation accuracy after each epoch, of the trained weights and of their
average. The test images are not looked at.

    python benchmarks/write_image_folder.py --data_dir ../shared/data/mnist --out ~/data/color_mnist \\
        --recolor --train 10000 --test 2000
    python benchmarks/color_probe.py --data_dir ~/data/color_mnist --epochs 2 --candidates paper,paper_bn,micro
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags

# The candidates, as overrides of the paper's CapsNet (keras_caps.ARCHITECTURES).
CANDIDATES = {
    "paper": {},
    # normalization in the stem: batch normalization between the convolution and its ReLU
    "paper_bn": {"conv_batch_norm": True},
    # each image standardized (zero mean, unit variance over its pixels) before the convolution
    "paper_std": {"input_standardization": True},
    "paper_std_bn": {"input_standardization": True, "conv_batch_norm": True},
    # the authors' CIFAR-10 setup (Sarasra/models research/capsules): standardized images, 64 primary
    # capsule types, leaky routing, a bias in the digit capsules
    "authors_cifar": {
        "input_standardization": True,
        "primary_channels": 64,
        "leaky_routing": True,
        "capsule_bias": True,
    },
    "paper_leaky": {"leaky_routing": True},
    "micro": "micro",
}

flags.DEFINE_string("data_dir", None, "Image folder with one sub-folder per class.")
flags.DEFINE_list("candidates", list(CANDIDATES), "Candidates to train, in order.")
flags.DEFINE_integer("epochs", 2, "Epochs per candidate.")
flags.DEFINE_integer("seed", 0, "Seed of every candidate.")
flags.DEFINE_string("save_dir", "/tmp/color_probe", "Folder of the candidates' runs.")
flags.mark_flag_as_required("data_dir")
FLAGS = flags.FLAGS


def main(argv):
    from keras_caps import ARCHITECTURES
    from keras_caps.training import TrainConfig, run

    for name in FLAGS.candidates:
        spec = CANDIDATES[name]
        if isinstance(spec, dict):
            ARCHITECTURES[f"probe_{name}"] = {**ARCHITECTURES["paper"], **spec}
            architecture = f"probe_{name}"
        else:
            architecture = spec
        metrics = run(
            TrainConfig(
                architecture=architecture,
                data_dir=FLAGS.data_dir,
                val_split=0.1,
                seed=FLAGS.seed,
                epochs=FLAGS.epochs,
                verbose=2,
                figures=False,
                save_dir=os.path.join(FLAGS.save_dir, name),
            )
        )
        with open(os.path.join(FLAGS.save_dir, name, "history.json")) as fh:
            history = json.load(fh)
        print(
            json.dumps(
                {
                    "candidate": name,
                    "val_accuracy": [round(row["val_accuracy"], 4) for row in history],
                    "raw_val_accuracy": [round(row.get("raw_val_accuracy", row["val_accuracy"]), 4) for row in history],
                    "train_seconds": round(sum(row["train_seconds"] for row in history), 1),
                    "policy": metrics["policy"],
                    "machine": metrics["machine"],
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)
