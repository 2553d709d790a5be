"""Writes MNIST-format IDX files out as an image folder, one sub-folder per class:
OUT/train/<class>/NNNNN.png and OUT/test/<class>/NNNNN.png.

    # MNIST as 70,000 greyscale PNG files (the folder path's speed and memory beside IDX)
    python benchmarks/write_image_folder.py --data_dir ../shared/data/mnist --out ~/data/mnist_png
    # the colour set of BENCHMARKS.md: each digit in a random colour on a random colour
    # background, 32x32 RGB, 10,000 training and 2,000 test images
    python benchmarks/write_image_folder.py --data_dir ../shared/data/mnist --out ~/data/color_mnist \\
        --recolor --train 10000 --test 2000
    # coloured digits on light backgrounds (each background channel 176-255), as photographed on paper
    python benchmarks/write_image_folder.py --data_dir ../shared/data/mnist --out ~/data/color3k_light \
        --recolor --lightest_background 176 --train 3000 --test 2000
    # an unequal set: of the first 10,000 training images, digits 5-9 keep 100 each
    python benchmarks/write_image_folder.py --data_dir ../shared/data/mnist --out ~/data/mnist_unequal \\
        --train 10000 --test 2000 --minority_classes 5,6,7,8,9 --minority_train 100
    # dark digits on white, as scanned from paper: 3,000 training images
    python benchmarks/write_image_folder.py --data_dir ../shared/data/mnist --out ~/data/mnist3k_inv \\
        --train 3000 --test 10000 --invert

Prints one JSON line: the folder, image counts, shape and seconds.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
from absl import app, flags


def recolor(digits, rng, size=32, min_contrast=96, lightest_background=0):
    """Grey digits `(n, h, w)` uint8 -> RGB `(n, size, size, 3)`: ink and background
    of random colours whose mean channel difference is at least `min_contrast`, each
    background channel at least `lightest_background` (e.g. 176: light backgrounds only)."""
    n, h, w = digits.shape
    top, left = (size - h) // 2, (size - w) // 2
    ink = np.zeros((n, size, size, 1), np.float32)
    ink[:, top : top + h, left : left + w, 0] = digits / 255.0

    def draw(count):
        return rng.integers(0, 256, (count, 3)), rng.integers(lightest_background, 256, (count, 3))

    fore, back = draw(n)
    weak = np.abs(fore - back).mean(1) < min_contrast
    while weak.any():  # redraw the pairs too alike to tell apart
        fore[weak], back[weak] = draw(int(weak.sum()))
        weak = np.abs(fore - back).mean(1) < min_contrast
    out = ink * fore[:, None, None, :] + (1 - ink) * back[:, None, None, :]
    return np.round(out).astype(np.uint8)


def keep_few(labels, classes, count):
    """Indices of `labels` in order, keeping only the first `count` of each class in `classes`."""
    labels = np.asarray(labels)
    seen = {c: 0 for c in classes}
    kept = []
    for i, label in enumerate(labels.tolist()):
        if label in seen:
            seen[label] += 1
            if seen[label] > count:
                continue
        kept.append(i)
    return np.array(kept, np.int64)


def write_folder(images, labels, folder, class_names, extension="png"):
    """Writes `images` (uint8 `(n, h, w)` or `(n, h, w, c)`) under folder/<class name>/NNNNN.<extension>."""
    from PIL import Image

    for name in class_names:
        os.makedirs(os.path.join(folder, name), exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        image = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
        Image.fromarray(image).save(os.path.join(folder, class_names[label], f"{i:05d}.{extension}"))


flags.DEFINE_string("data_dir", None, "Folder with the four MNIST-format IDX files.")
flags.DEFINE_string("out", None, "Folder to write (train/ and test/ inside).")
flags.DEFINE_bool("recolor", False, "32x32 RGB: each digit in a random colour on a random colour background.")
flags.DEFINE_integer(
    "lightest_background",
    0,
    "With --recolor: each background channel drawn from this value to 255 (176: light backgrounds).",
    lower_bound=0,
    upper_bound=255,
)
flags.DEFINE_bool("invert", False, "Grey, inverted: dark digits on a white background (255 - each pixel).")
flags.DEFINE_integer("train", None, "Write only the first N training images.")
flags.DEFINE_integer("test", None, "Write only the first N test images.")
flags.DEFINE_integer("seed", 0, "Seed of the colours.")
flags.DEFINE_list("minority_classes", [], "Digits of which only --minority_train training images are written.")
flags.register_validator(
    "minority_classes",
    lambda digits: all(d.isdigit() and int(d) < 10 for d in digits),
    message="--minority_classes must be digits 0-9 separated by commas, e.g. 5,6,7,8,9",
)
flags.DEFINE_integer(
    "minority_train", 100, "Training images kept of each --minority_classes digit (the first ones).", lower_bound=0
)
flags.DEFINE_enum("format", "png", ["png", "jpg", "bmp", "gif"], "Image file format.")
flags.mark_flags_as_required(["data_dir", "out"])
flags.register_multi_flags_validator(
    ["invert", "recolor"],
    lambda values: not (values["invert"] and values["recolor"]),
    message="--invert and --recolor exclude each other (--recolor draws its own background)",
)
FLAGS = flags.FLAGS


def main(argv):
    from keras_caps.data.idx import load_mnist_idx

    start = time.time()
    rng = np.random.default_rng(FLAGS.seed)
    (x_train, y_train), (x_test, y_test) = load_mnist_idx(FLAGS.data_dir)
    names = [str(d) for d in range(10)]
    counts = {}
    for split, x, y, limit in (("train", x_train, y_train, FLAGS.train), ("test", x_test, y_test, FLAGS.test)):
        x, y = x[:limit], y[:limit]
        if split == "train" and FLAGS.minority_classes:
            kept = keep_few(y, [int(c) for c in FLAGS.minority_classes], FLAGS.minority_train)
            x, y = x[kept], y[kept]
        if FLAGS.recolor:
            x = recolor(x, rng, lightest_background=FLAGS.lightest_background)
        if FLAGS.invert:
            x = 255 - x
        write_folder(x, y, os.path.join(FLAGS.out, split), names, FLAGS.format)
        counts[split] = len(x)
    shape = list(x.shape[1:]) if x.ndim == 4 else list(x.shape[1:]) + [1]
    print(json.dumps({"out": FLAGS.out, **counts, "shape": shape, "seconds": round(time.time() - start, 1)}))


if __name__ == "__main__":
    app.run(main)
