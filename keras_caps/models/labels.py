"""What an exported file's folder says of it: its class names (`labels.txt`, one name per line,
as TFLite tools read them) and the exporter's `report.json`."""

import json
import os

LABELS_FILE = "labels.txt"
REPORT_FILE = "report.json"


def _beside(model_path, name):
    """The path of `name` beside an exported file (or inside a SavedModel folder, or beside
    that folder); None if absent."""
    folder = model_path if os.path.isdir(model_path) else os.path.dirname(os.path.abspath(model_path))
    for candidate in (folder, os.path.dirname(os.path.abspath(folder))):
        path = os.path.join(candidate, name)
        if os.path.isfile(path):
            return path
    return None


def read_labels(model_path):
    """The class names of an exported file: `labels.txt` beside it, one name per line; None if absent."""
    path = _beside(model_path, LABELS_FILE)
    if path is None:
        return None
    with open(path, encoding="utf-8") as fh:
        return [line.rstrip("\n") for line in fh if line.strip()]


def reads_inverted(model_path):
    """Whether an exported file's model inverts its images (`CapsNet`'s `invert_input`), as the
    exporter's `report.json` beside it says; False without one (files exported before it said)."""
    path = _beside(model_path, REPORT_FILE)
    if path is None:
        return False
    try:
        with open(path, encoding="utf-8") as fh:
            return bool(json.load(fh).get("context", {}).get("invert_input", False))
    except (OSError, ValueError, AttributeError):
        return False


def write_labels(class_names, folder):
    """Writes `labels.txt` (one class name per line) into `folder`; returns its path."""
    path = os.path.join(folder, LABELS_FILE)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("".join(f"{name}\n" for name in class_names))
    return path
