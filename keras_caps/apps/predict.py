"""Classify images with a trained CapsNet in any of its saved forms: .keras, preset, SavedModel folder or .tflite
(`predict.py`'s work)."""

import csv
import os
import sys

import numpy as np

from keras_caps.data.folders import IMAGE_EXTENSIONS, image_files
from keras_caps.data.images import ImageFileError, load_image, to_model_input
from keras_caps.export.litert import TFLiteModel
from keras_caps.models import presets
from keras_caps.models.files import ModelFileError, load_capsnet
from keras_caps.models.labels import read_labels, reads_inverted
from keras_caps.training.precision import policy_for_saved, with_policy


def load_classifier(path):
    """`(fn, (H, W, C), class_names, inverted)`: fn maps float32 images `(N, H, W, C)` to
    scores `(N, classes)`; class_names from a .keras model's config or an exported file's
    `labels.txt` (None when neither has them); inverted: whether the model inverts its
    images itself (`invert_input`; an exported file's `report.json` says)."""
    if not presets.is_preset(path):  # a preset, like a .keras file, is a CapsNet: the last lines
        if os.path.isdir(path):
            import tensorflow as tf

            try:
                signature = tf.saved_model.load(path).signatures["serving_default"]
            except (KeyError, OSError, ValueError) as error:
                raise ModelFileError(f"{path}: not a SavedModel with a serving_default signature ({error}).") from None
            spec = signature.structured_input_signature[1].get("images")
            if spec is None or "scores" not in signature.structured_outputs:
                raise ModelFileError(f"{path}: its serving_default signature does not take `images` and give `scores`.")
            fn = lambda x: signature(images=tf.constant(x))["scores"].numpy()  # noqa: E731
            return fn, tuple(spec.shape[1:]), read_labels(path), reads_inverted(path)
        if not os.path.isfile(path):
            raise ModelFileError(f"{path}: no such file or folder{presets.missing_file_hint(path)}.")
        if path.endswith(".tflite"):
            runner = TFLiteModel(path)
            return runner, runner.image_shape, read_labels(path), reads_inverted(path)
    model = load_capsnet(path, compile=False)
    # A model trained in bfloat16 runs in float32 where this CPU would only emulate bf16 (~9x slower).
    model = with_policy(model, policy_for_saved(model.dtype_policy.name))
    return (lambda x: np.asarray(model.predict(x, verbose=0))), model.image_shape, model.class_names, model.invert_input


# How predict_files writes its results: lines for people, or CSV for programs (quoted, so a
# file or class name may hold spaces and commas).
FORMATS = ("text", "csv")
CSV_COLUMNS = ("file", "class", "score", "class_name")


def predict_files(model_path, files, out=None, err=None, batch_size=64, output_format="text"):
    """Classifies `files` (image files, or folders: the images under them), a line
    each on `out` (a readable file's name, class id, score and, where the model has
    them, class name) or `err` (why it could not be read); `None`: `sys.stdout` and
    `sys.stderr` as they are at the call, not when this module was imported. Images
    go to the model `batch_size` at a time (one call's overhead for many images);
    the lines keep the files' order. `output_format` "csv" writes `out` as CSV
    instead: a header (`CSV_COLUMNS`), then a row per image, the score to 6
    places, the class name empty where the model has none. Returns the number of
    files (and folders without images) that could not be read."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"predict_files: `batch_size` must be an integer >= 1, got {batch_size!r}.")
    if output_format not in FORMATS:
        raise ValueError(f"predict_files: `output_format` must be one of {', '.join(FORMATS)}, got {output_format!r}.")
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    table = csv.writer(out, lineterminator="\n") if output_format == "csv" else None

    classify, shape, class_names, inverted = load_classifier(model_path)
    if table:
        table.writerow(CSV_COLUMNS)
    # MNIST's framing (crop, centre, light on dark) for digit models; a plain resize for any other set.
    digits = shape[-1] == 1 and class_names in (None, [str(d) for d in range(10)])
    failures = 0
    pending = []  # (file name, model input) not yet classified

    def classify_pending():
        if not pending:
            return
        scores = classify(np.stack([image for _, image in pending]).astype(np.float32))
        for (name, _), row in zip(pending, scores):
            label = int(np.argmax(row))
            class_name = class_names[label] if class_names and label < len(class_names) else ""
            if table:
                table.writerow((name, label, f"{float(row[label]):.6f}", class_name))
            else:
                named = f" {class_name}" if class_name else ""
                print(f"{name} {label} {float(row[label]):.4f}{named}", file=out)
        pending.clear()

    for given in files:
        names = image_files(given)[0] if os.path.isdir(given) else [given]
        if not names:
            print(f"error: {given}: a folder with no images ({', '.join(IMAGE_EXTENSIONS)}).", file=err)
            failures += 1
        for name in names:
            try:
                pending.append((name, to_model_input(load_image(name), shape, digits=digits, inverted=inverted)))
            except ImageFileError as error:
                print(f"error: {error}", file=err)
                failures += 1
                continue
            if len(pending) == batch_size:
                classify_pending()
    classify_pending()
    return failures
