"""keras-caps: CapsNet (Sabour, Frosst & Hinton 2017) for Keras 3."""

import importlib.util
import os
import sys


def _load_tensorflow_quietly():
    """TensorFlow prints its CUDA-stub and CPU-feature lines while it loads, before
    its own log level applies. When TF_CPP_MIN_LOG_LEVEL=3 asks it for silence
    (as the command-line programs do unless told --verbose), keep those off
    stderr as well. Nothing else is changed, and nothing if TensorFlow is
    loaded already or not wanted."""
    if (
        os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "3"
        or "tensorflow" in sys.modules
        or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow"
        or importlib.util.find_spec("tensorflow") is None
    ):
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_load_tensorflow_quietly()

from keras_caps.activations import safe_norm, squash  # noqa: E402
from keras_caps.layers.dense_capsule import DenseCapsule
from keras_caps.layers.primary_capsule import PrimaryCapsule
from keras_caps.losses import MarginLoss, margin_loss, reconstruction_loss
from keras_caps.models.capsnet import ARCHITECTURES, CapsNet
from keras_caps.models.presets import presets
from keras_caps.optimizers import EMAWarmupAdam, TorchAdam

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES",
    "CapsNet",
    "DenseCapsule",
    "EMAWarmupAdam",
    "MarginLoss",
    "PrimaryCapsule",
    "TorchAdam",
    "margin_loss",
    "presets",
    "reconstruction_loss",
    "safe_norm",
    "squash",
]
