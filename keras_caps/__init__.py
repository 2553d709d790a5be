"""keras-caps: CapsNet (Sabour, Frosst & Hinton 2017) for Keras 3."""

from keras_caps.activations import safe_norm, squash
from keras_caps.capsnet import ARCHITECTURES, CapsNet
from keras_caps.dense_capsule import DenseCapsule
from keras_caps.losses import MarginLoss, margin_loss, reconstruction_loss
from keras_caps.optimizers import TorchAdam
from keras_caps.primary_capsule import PrimaryCapsule

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES",
    "CapsNet",
    "DenseCapsule",
    "MarginLoss",
    "PrimaryCapsule",
    "TorchAdam",
    "margin_loss",
    "reconstruction_loss",
    "safe_norm",
    "squash",
]
