"""Presets: a trained model in a folder, with what it was trained on and how.

A preset folder holds `model.keras`, `metadata.json` and, for device presets,
the int8 TFLite file, its C array (`.cc`/`.h`) and `labels.txt`. The metadata
records the data set, class names, test accuracy, the training command and
machine, and the sha256 of every other file, checked before anything is loaded.
Presets shipped with the package are found by name (`presets()` lists them);
any other preset by its folder, as `CapsNet.save_to_preset` or `train.py` wrote it.

This module reads and writes the folders only; `CapsNet.from_preset` and
`keras_caps.models.files.load_capsnet` load the model in them.
"""

import datetime
import hashlib
import json
import os
import shutil

from keras_caps.models.labels import write_labels

METADATA_FILE = "metadata.json"
MODEL_FILE = "model.keras"
# The folder of the presets shipped in the package: one sub-folder per preset, named as the preset.
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "shipped_presets")
# What a device preset takes from an export folder (`python -m export --c_array`), when there.
DEVICE_FILES = ("capsnet_int8.tflite", "capsnet_int8.cc", "capsnet_int8.h")


class PresetError(ValueError):
    """A preset that cannot be found, is incomplete or fails its checks; the message says which."""


def shipped_names():
    """The names of the presets shipped in the package, sorted."""
    if not os.path.isdir(SHIPPED_DIR):
        return []
    return sorted(n for n in os.listdir(SHIPPED_DIR) if os.path.isfile(os.path.join(SHIPPED_DIR, n, METADATA_FILE)))


def presets():
    """The shipped presets: `{name: summary}`, each summary its metadata's description,
    data set, classes, input shape, test accuracy and, for device presets, the int8
    file's flash and TFLite Micro arena in bytes."""
    keys = ("description", "dataset", "class_names", "image_shape", "architecture", "test_accuracy", "device")
    return {
        name: {k: v for k, v in read_metadata(os.path.join(SHIPPED_DIR, name)).items() if k in keys}
        for name in shipped_names()
    }


def _is_shipped_name(text):
    """A shipped preset's name, and no file or folder of that name here."""
    return not os.path.exists(text) and text in shipped_names()


def is_preset(name_or_dir):
    """Whether `name_or_dir` names a shipped preset or is a folder with a `metadata.json`."""
    if os.path.isdir(name_or_dir):
        return os.path.isfile(os.path.join(name_or_dir, METADATA_FILE))
    return _is_shipped_name(name_or_dir)


def looks_like_name(text):
    """A bare word (no folder, no file extension): what a preset name looks like."""
    return os.sep not in text and "/" not in text and "." not in text


def unknown_name_hint():
    """The end of an error about a name that is neither a file nor a preset."""
    names = shipped_names()
    return f"shipped presets: {', '.join(names)}" if names else "no presets are shipped with this installation"


def missing_file_hint(path):
    """What to add to a missing file's error: where `path` looks like a preset name, that no
    preset has it either, and the shipped ones; else nothing."""
    return f", and no preset of that name ({unknown_name_hint()})" if looks_like_name(path) else ""


def resolve(name_or_dir):
    """The checked folder of a preset given by shipped name or folder; raises PresetError.

    Every file the metadata lists must be there with its sha256.
    """
    if not isinstance(name_or_dir, str | os.PathLike):
        raise PresetError(f"A preset is a name or a folder, got {name_or_dir!r}.")
    name_or_dir = os.fspath(name_or_dir)
    if os.path.isdir(name_or_dir):
        directory = name_or_dir
    elif _is_shipped_name(name_or_dir):
        directory = os.path.join(SHIPPED_DIR, name_or_dir)
    elif os.path.exists(name_or_dir):
        raise PresetError(f"{name_or_dir}: a file, not a preset (a preset is a folder or a shipped name).")
    else:
        raise PresetError(f"{name_or_dir!r}: no such preset or folder ({unknown_name_hint()}).")
    verify(directory)
    return directory


def read_metadata(directory):
    """The parsed `metadata.json` of a preset folder; raises PresetError naming what is missing."""
    path = os.path.join(directory, METADATA_FILE)
    if not os.path.isfile(path):
        present = sorted(os.listdir(directory))
        raise PresetError(
            f"{directory}: not a preset: it has no {METADATA_FILE} (a preset holds {MODEL_FILE} and "
            f"{METADATA_FILE}, as `save_to_preset` writes them; this folder holds "
            f"{', '.join(present[:8]) or 'nothing'}{', ...' if len(present) > 8 else ''})."
        )
    try:
        with open(path, encoding="utf-8") as fh:
            metadata = json.load(fh)
    except (OSError, ValueError) as error:
        raise PresetError(f"{path}: not readable JSON ({error}).") from None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("files"), dict):
        raise PresetError(f"{path}: has no `files` table of file names and sha256 hashes.")
    if MODEL_FILE not in metadata["files"]:
        raise PresetError(f"{path}: its `files` table does not list {MODEL_FILE}.")
    return metadata


def sha256(path):
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(directory):
    """Checks that every file `metadata.json` lists is in `directory` with its sha256;
    returns the metadata, or raises PresetError naming the first file that is not."""
    metadata = read_metadata(directory)
    for name, expected in sorted(metadata["files"].items()):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            raise PresetError(f"{directory}: incomplete preset: {name} is missing (listed in {METADATA_FILE}).")
        if sha256(path) != expected:
            raise PresetError(
                f"{path}: corrupted or replaced: its sha256 is not the one {METADATA_FILE} records. "
                "Restore the preset's files (or write the preset again)."
            )
    return metadata


def model_path(name_or_dir):
    """The checked `model.keras` of a preset."""
    return os.path.join(resolve(name_or_dir), MODEL_FILE)


def save_preset(model, directory, metadata=None, device_dir=None):
    """Writes `model` as a preset in `directory`; returns the metadata written.

    Args:
        model: a built, trained `CapsNet`.
        directory: the preset folder (made if needed; files of the same names are replaced).
        metadata: more entries for `metadata.json` (data set, test accuracy, command, ...).
            The class names, input shape, date and Keras/TensorFlow versions are filled in.
        device_dir: an export folder (`python -m export --out`) whose int8 TFLite file,
            C array and `report.json` make this a device preset: the int8 file's flash
            size, TFLite Micro arena and accuracy go into the metadata's `device` entry.

    Every file in `directory` (sub-folders too) is hashed into the metadata's `files`.
    """
    import keras

    os.makedirs(directory, exist_ok=True)
    # The weights alone, without the optimizer's state (a third of the size): an uncompiled copy.
    copy = type(model).from_config(model.get_config())  # built by its constructor
    copy.set_weights(model.get_weights())
    copy.save(os.path.join(directory, MODEL_FILE))
    entry = {
        "format_version": 1,
        "class_names": list(model.class_names) if model.class_names else None,
        "image_shape": list(model.image_shape),
        "classes": model.classes,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "keras_version": keras.__version__,
        "tensorflow_version": _tensorflow_version(),
    }
    entry.update(metadata or {})
    if model.class_names:
        write_labels(model.class_names, directory)
    if device_dir is not None:
        entry["device"] = _device_entry(device_dir, directory)
    names = []
    for folder, _, files in sorted(os.walk(directory)):
        relative = os.path.relpath(folder, directory)
        names += sorted(n if relative == "." else f"{relative}/{n}" for n in files)
    names = [n for n in names if n != METADATA_FILE]
    entry["files"] = {name: sha256(os.path.join(directory, name)) for name in names}
    tmp = os.path.join(directory, METADATA_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(entry, fh, indent=1)
    os.replace(tmp, os.path.join(directory, METADATA_FILE))
    return entry


def _device_entry(device_dir, directory):
    report_path = os.path.join(device_dir, "report.json")
    tflite = os.path.join(device_dir, DEVICE_FILES[0])
    if not os.path.isfile(tflite) or not os.path.isfile(report_path):
        raise PresetError(
            f"{device_dir}: a device preset needs the export's {DEVICE_FILES[0]} and report.json "
            "(`python -m export --variants int8 --c_array`)."
        )
    with open(report_path, encoding="utf-8") as fh:
        report = json.load(fh)
    row = next((r for r in report.get("files", []) if r["file"] == DEVICE_FILES[0]), None)
    if row is None:
        raise PresetError(f"{report_path}: has no row for {DEVICE_FILES[0]}.")
    for name in DEVICE_FILES:
        if os.path.isfile(os.path.join(device_dir, name)):
            shutil.copyfile(os.path.join(device_dir, name), os.path.join(directory, name))
    keep = ("size_bytes", "accuracy", "agreement", "tflm_arena_bytes", "tflm_agreement", "macs", "mcu_estimate_ms")
    entry = {"tflite": DEVICE_FILES[0], **{k: row[k] for k in keep if k in row}}
    entry["flash_bytes"] = entry.pop("size_bytes")
    entry["export"] = {k: v for k, v in report.get("context", {}).items() if k not in ("model", "class_names")}
    return entry


def _tensorflow_version():
    try:
        import tensorflow as tf
    except ImportError:
        return None
    return tf.__version__
