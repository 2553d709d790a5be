"""Export a trained CapsNet: SavedModel and verified TFLite (LiteRT) files.

    python -m export --model runs/capsnet/best.keras --out dist/ [--data_dir DIR]
"""

from export.savedmodel import export_saved_model, float32_copy
from keras_caps.model_files import ModelFileError, load_capsnet
from export.tflite import VARIANTS, ExportError, convert
from export import micro

__all__ = ["VARIANTS", "ExportError", "ModelFileError", "convert", "micro", "export_saved_model", "float32_copy", "load_capsnet"]
