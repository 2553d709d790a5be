"""Loading a CapsNet from a .keras file or a preset, with errors that name the file."""

import os

import keras

from keras_caps.models import presets
from keras_caps.models.capsnet import CapsNet


class ModelFileError(ValueError):
    """A model file that cannot be loaded or run; the message names it."""


def check_model_path(path):
    """Raises ModelFileError where `path` is neither a preset nor a file. Nothing is read,
    so a program can name a mistyped model before its slow work."""
    if presets.is_preset(path):
        return
    if os.path.isdir(path):
        raise ModelFileError(
            f"{path}: is a folder, neither a preset (no {presets.METADATA_FILE}) nor a .keras model file."
        )
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: no such file{presets.missing_file_hint(path)}.")


def load_capsnet(path, compile=True):
    """Loads a `keras_caps.CapsNet` from a `.keras` file or a preset (a shipped name or a
    preset folder, its files checked first), or raises ModelFileError. `compile=False`
    leaves out the optimizer and its state (enough to predict or export)."""
    check_model_path(path)
    if presets.is_preset(path):
        try:
            path = presets.model_path(path)
        except presets.PresetError as error:
            raise ModelFileError(str(error)) from None
    try:
        model = keras.models.load_model(path, compile=compile)
    except Exception as error:  # zip, JSON, h5 and deserialization errors alike
        raise ModelFileError(f"{path}: not a loadable .keras model ({type(error).__name__}: {error}).") from None
    if not isinstance(model, CapsNet):
        raise ModelFileError(f"{path}: holds a {type(model).__name__}, not a keras_caps.CapsNet.")
    return model
