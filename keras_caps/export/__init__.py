"""Export a trained CapsNet: SavedModel and verified TFLite (LiteRT) files.

python -m export --model runs/capsnet/best.keras --out dist/ [--data_dir DIR]
"""

from keras_caps.export import micro
from keras_caps.export.pipeline import ExportConfig, export
from keras_caps.export.savedmodel import export_saved_model, float32_copy
from keras_caps.export.tflite import VARIANTS, ExportError, convert
from keras_caps.models.files import ModelFileError, load_capsnet

__all__ = [
    "ExportConfig",
    "export",
    "VARIANTS",
    "ExportError",
    "ModelFileError",
    "convert",
    "micro",
    "export_saved_model",
    "float32_copy",
    "load_capsnet",
]
