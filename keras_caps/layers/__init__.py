"""Capsule layers: primary capsules and fully connected capsules with dynamic routing."""

from keras_caps.layers.dense_capsule import DenseCapsule
from keras_caps.layers.primary_capsule import PrimaryCapsule

__all__ = ["DenseCapsule", "PrimaryCapsule"]
