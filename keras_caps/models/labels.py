"""Class names beside a model's files: `labels.txt`, one name per line, as TFLite tools read them."""

import os

LABELS_FILE = "labels.txt"


def read_labels(model_path):
    """The class names of an exported file: `labels.txt` beside it (or inside a SavedModel
    folder, or beside that folder), one name per line, as TFLite tools read them; None if absent."""
    folder = model_path if os.path.isdir(model_path) else os.path.dirname(os.path.abspath(model_path))
    for candidate in (folder, os.path.dirname(os.path.abspath(folder))):
        path = os.path.join(candidate, LABELS_FILE)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as fh:
                return [line.rstrip("\n") for line in fh if line.strip()]
    return None


def write_labels(class_names, folder):
    """Writes `labels.txt` (one class name per line) into `folder`; returns its path."""
    path = os.path.join(folder, LABELS_FILE)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("".join(f"{name}\n" for name in class_names))
    return path
