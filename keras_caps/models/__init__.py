"""Models built from the capsule layers, and the readers of saved model files."""

from keras_caps.models.capsnet import ARCHITECTURES, CapsNet

__all__ = ["ARCHITECTURES", "CapsNet"]
