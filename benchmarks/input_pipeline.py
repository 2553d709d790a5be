"""Speed and memory of a run's training input, by data source: the IDX files, or
the same images as a folder of PNG files, held decoded in memory or read from the
files as training goes.

Each source is measured in a process of its own (its peak RSS is its own): the
training input `train.py` builds (load, shuffle, 2-pixel shifts, batches of 100,
seed 0) read for `--batches` batches without a model (`input` images/s), then,
with `--train_steps`, the paper's model trained on it for that many steps
(`training` images/s, after 5 warm-up steps). Prints one JSON line per source,
then the ratios to the IDX path.

    python benchmarks/write_image_folder.py --data_dir ../shared/data/mnist --out ~/data/mnist_png
    python benchmarks/input_pipeline.py --idx ../shared/data/mnist --folder ~/data/mnist_png
"""

import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags

flags.DEFINE_string("idx", None, "Folder with the four MNIST IDX files.")
flags.DEFINE_string("folder", None, "The same images as an image folder (benchmarks/write_image_folder.py).")
flags.DEFINE_integer("batches", 600, "Batches read without a model (600: one MNIST epoch).")
flags.DEFINE_integer("train_steps", 40, "Training steps of the paper's model on each input (0: none).")
flags.DEFINE_string("one", None, "Internal: measure one source, SOURCE:CACHE, in this process.")
FLAGS = flags.FLAGS


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(data_dir, cache):
    import keras

    from keras_caps.data.datasets import load_data, make_dataset, split_size
    from keras_caps.data.folders import FileSplit

    start = time.perf_counter()
    data = load_data(data_dir=data_dir, cache=cache)
    open_seconds = time.perf_counter() - start
    images, labels = (data.train, None) if isinstance(data.train, FileSplit) else data.train
    ds = make_dataset(images, labels, 100, training=True, shift_pixels=2, seed=0, repeat=True)
    it = iter(ds)
    next(it)
    start = time.perf_counter()
    for _ in range(FLAGS.batches):
        next(it)
    input_rate = FLAGS.batches * 100 / (time.perf_counter() - start)
    row = {
        "source": "idx" if not data.info.source.startswith("folder") else f"png folder, cache {cache}",
        "images": split_size(data.train),
        "open_seconds": round(open_seconds, 1),
        "input_images_per_s": round(input_rate),
        "peak_rss_mib_input": round(peak_rss_mib()),
    }
    if FLAGS.train_steps:
        from keras_caps import CapsNet
        from keras_caps.training.precision import resolve_policy

        policy = resolve_policy("auto")
        keras.mixed_precision.set_global_policy(policy)
        keras.utils.set_random_seed(0)
        model = CapsNet(input_shape=data.info.image_shape, classes=data.info.classes)
        model.compile(optimizer="adam")
        model.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)
        start = time.perf_counter()
        model.fit(ds, steps_per_epoch=FLAGS.train_steps, epochs=1, verbose=0)
        row["training_images_per_s"] = round(FLAGS.train_steps * 100 / (time.perf_counter() - start), 1)
        row["policy"] = policy
        row["peak_rss_mib"] = round(peak_rss_mib())
    return row


def main(argv):
    if FLAGS.one:
        source, cache = FLAGS.one.rsplit(":", 1)
        print(json.dumps(measure(source, cache)), flush=True)
        return
    from keras_caps.machine import describe_machine

    if not (FLAGS.idx and FLAGS.folder):
        raise app.UsageError("--idx and --folder are both needed.")
    rows = []
    for source, cache in ((FLAGS.idx, "auto"), (FLAGS.folder, "memory"), (FLAGS.folder, "none")):
        command = [sys.executable, __file__, f"--one={source}:{cache}", f"--batches={FLAGS.batches}"]
        command.append(f"--train_steps={FLAGS.train_steps}")
        out = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, check=True
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    idx = rows[0]
    for row in rows[1:]:
        ratios = {
            "source": row["source"],
            "input_speed_vs_idx": round(row["input_images_per_s"] / idx["input_images_per_s"], 3),
        }
        if "training_images_per_s" in row:
            ratios["training_speed_vs_idx"] = round(row["training_images_per_s"] / idx["training_images_per_s"], 3)
            ratios["peak_rss_vs_idx"] = round(row["peak_rss_mib"] / idx["peak_rss_mib"], 3)
        print(json.dumps(ratios))
    print(json.dumps({"machine": describe_machine()}))


if __name__ == "__main__":
    app.run(main)
