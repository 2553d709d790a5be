"""predict.py's speed on a folder: `predict_files` one image per model call against its
default batch of 64, for each model given (any form predict.py takes). Prints one JSON line
per model: seconds for the whole folder each way (the model's loading included) and their ratio.

    python benchmarks/predict_folder.py --folder ~/data/predict500 \\
        --models keras_caps/shipped_presets/mnist_micro/capsnet_int8.tflite,mnist_micro,RUN/best.keras
"""

import io
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags

flags.DEFINE_string("folder", None, "A folder of images (sub-folders too).")
flags.DEFINE_list("models", None, "Models to time, as predict.py's --model takes them.")
flags.DEFINE_list("batch_sizes", ["1", "64"], "Images per model call to compare; the first is the baseline.")
flags.register_validator(
    "batch_sizes",
    lambda sizes: bool(sizes) and all(s.isdigit() and int(s) >= 1 for s in sizes),
    message="--batch_sizes must be integers >= 1 separated by commas, e.g. 1,64",
)
flags.mark_flags_as_required(["folder", "models"])
FLAGS = flags.FLAGS


def time_model(model, folder, batch_sizes):
    """`{"model", "images", "batch_<n>_s" for each size, "speedup"}`: the last size against the first."""
    from keras_caps.apps.predict import predict_files
    from keras_caps.data.folders import image_files

    files = image_files(folder)[0]
    row, seconds = {"model": model, "images": len(files)}, []
    for size in batch_sizes:
        predict_files(model, files[:1], out=io.StringIO(), batch_size=size)  # warm: imports, first trace
        start = time.perf_counter()
        row["unreadable"] = predict_files(model, [folder], out=io.StringIO(), batch_size=size)
        seconds.append(time.perf_counter() - start)
        row[f"batch_{size}_s"] = round(seconds[-1], 3)
    row["speedup"] = round(seconds[0] / seconds[-1], 1)
    return row


def main(argv):
    sizes = [int(s) for s in FLAGS.batch_sizes]
    for model in FLAGS.models:
        print(json.dumps(time_model(model, FLAGS.folder, sizes)), flush=True)


if __name__ == "__main__":
    app.run(main)
