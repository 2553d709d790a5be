"""Make a preset shipped in the package from a finished run and its device export.

    python benchmarks/ship_preset.py --name mnist_micro --run runs/micro_s0 --export dist_micro \
        --data_dir ../shared/data/mnist --command "python train.py ..." --export_command "python -m export ..."

Writes keras_caps/shipped_presets/NAME/: the run's final model in float32 (so that it
computes alike on every CPU), the export's int8 file and C array, labels.txt,
`check_images.npz` (real test images, drawn with a fixed seed, with which
tests/test_presets.py checks the preset's accuracy claim), one example image per
class under examples/, and metadata.json: the run's command, seed, machine and
figures, the float32 model's accuracy on the whole test set, and the sha256 of
every file. Prints the metadata as JSON.
"""

import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="The preset's name (a bare word).")
    parser.add_argument("--run", required=True, help="A finished run's save_dir (final.keras, metrics.json).")
    parser.add_argument("--export", required=True, help="Its `python -m export --c_array` folder.")
    parser.add_argument("--data_dir", required=True, help="The run's IDX data, for the test figures.")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--command", required=True, help="The exact training command.")
    parser.add_argument("--export_command", required=True, help="The exact export command.")
    parser.add_argument("--check_images", type=int, default=200)
    parser.add_argument("--description", default=None)
    args = parser.parse_args()

    from PIL import Image

    from keras_caps.data.datasets import IDX_CLASS_NAMES
    from keras_caps.data.idx import load_mnist_idx
    from keras_caps.export.litert import TFLiteModel
    from keras_caps.export.savedmodel import float32_copy
    from keras_caps.models import presets
    from keras_caps.models.files import load_capsnet
    from keras_caps.training.results import preset_metadata

    if not presets.looks_like_name(args.name):
        parser.error(f"--name must be a bare word, got {args.name!r}")
    with open(os.path.join(args.run, "metrics.json")) as fh:
        run = json.load(fh)
    trained = load_capsnet(os.path.join(args.run, "final.keras"))
    model = float32_copy(trained, trained.digit_caps.implementation)
    if not model.class_names:
        model.class_names = list(IDX_CLASS_NAMES[args.dataset])
    _, (x_test, y_test) = load_mnist_idx(args.data_dir)
    x_test = x_test[..., None]
    scores = model.predict(x_test.astype("float32") / 255, batch_size=500, verbose=0)
    test_accuracy = float(np.mean(np.argmax(scores, -1) == y_test))

    out = os.path.join(presets.SHIPPED_DIR, args.name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "examples"))
    index = np.sort(np.random.default_rng(0).choice(len(y_test), args.check_images, replace=False))
    images, labels = x_test[index], y_test[index].astype(np.uint8)
    np.savez_compressed(os.path.join(out, "check_images.npz"), images=images, labels=labels, test_set_index=index)
    keras_right = np.argmax(scores[index], -1) == labels  # the whole test set's scores, already computed
    runner = TFLiteModel(os.path.join(args.export, presets.DEVICE_FILES[0]))
    int8_scores = np.concatenate([runner(images[i : i + 1].astype("float32") / 255) for i in range(len(images))])
    checked = set(index)
    for label in range(model.classes):  # the first test image of each class not in the check slice
        first = next(i for i in np.flatnonzero(y_test == label) if i not in checked)
        Image.fromarray(x_test[first].squeeze(-1)).save(os.path.join(out, "examples", f"{label}.png"))

    # What train.py's own preset records of the run, then what this preset adds or measures anew.
    metadata = preset_metadata(run, args.dataset, int(len(y_test)), args.command)
    metadata.update(
        {
            "name": args.name,
            "description": args.description
            or f"CapsNet ({run['architecture']}) trained on {args.dataset}, with its microcontroller int8 file",
            "test_accuracy": test_accuracy,
            "test_accuracy_note": "this float32 model on the whole test set (the run's own figure: run_test_accuracy)",
            "run_test_accuracy": run["test_accuracy"],
            "run_policy": run["policy"],
            "export_command": args.export_command,
            "train_seconds": run["train_seconds_this_run"],
            "check_images": {
                "file": "check_images.npz",
                "count": int(len(index)),
                "source": f"{args.dataset} test set: {len(index)} images drawn by numpy default_rng(0) "
                "(their indices in the file's test_set_index)",
                "keras_accuracy": float(np.mean(keras_right)),
                "int8_accuracy": float(np.mean(np.argmax(int8_scores, -1) == labels)),
            },
        }
    )
    written = presets.save_preset(model, out, metadata, device_dir=args.export)
    print(json.dumps({k: v for k, v in written.items() if k != "config"}, indent=1))


if __name__ == "__main__":
    main()
