"""CapsNet losses: margin loss on capsule lengths, reconstruction error."""

import keras
from keras import ops

M_PLUS = 0.9
M_MINUS = 0.1
DOWN_WEIGHT = 0.5
# The paper scales the summed squared error by 0.0005; over 784 pixels that is
# 0.392 times the mean squared error, which is what the reference computes.
LAM_RECON = 0.392


def margin_loss(y_true, lengths, m_plus=M_PLUS, m_minus=M_MINUS, down_weight=DOWN_WEIGHT):
    """Per-sample margin loss, summed over classes (float32, shape `(batch,)`).

    `L_k = T_k max(0, m+ - ||v_k||)^2 + down_weight (1 - T_k) max(0, ||v_k|| - m-)^2`

    Args:
        y_true: one-hot targets, `(batch, classes)`.
        lengths: capsule lengths, `(batch, classes)`.
    """
    y_true = ops.cast(y_true, "float32")
    lengths = ops.cast(lengths, "float32")
    present = y_true * ops.square(ops.relu(m_plus - lengths))
    absent = down_weight * (1.0 - y_true) * ops.square(ops.relu(lengths - m_minus))
    return ops.sum(present + absent, axis=-1)


def reconstruction_loss(images, reconstructions):
    """Per-sample mean squared error over all pixels (float32, `(batch,)`)."""
    images = ops.cast(images, "float32")
    reconstructions = ops.cast(reconstructions, "float32")
    batch = ops.shape(images)[0]
    error = ops.reshape(ops.square(images - reconstructions), (batch, -1))
    return ops.mean(error, axis=-1)


def weighted_mean(values, sample_weight=None):
    """Mean of per-sample `values`, weighted like Keras losses ("sum_over_batch_size")."""
    if sample_weight is None:
        return ops.mean(values)
    sample_weight = ops.reshape(ops.cast(sample_weight, "float32"), ops.shape(values))
    return ops.sum(values * sample_weight) / ops.cast(ops.shape(values)[0], "float32")


@keras.saving.register_keras_serializable(package="keras_caps")
class MarginLoss(keras.losses.Loss):
    """Margin loss as a Keras loss, for models of your own built from capsule layers.

    `y_true` is one-hot `(batch, classes)`; `y_pred` the capsule lengths.

    Example:
    >>> model.compile(optimizer="adam", loss=MarginLoss())
    """

    def __init__(self, m_plus=M_PLUS, m_minus=M_MINUS, down_weight=DOWN_WEIGHT, name="margin_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.m_plus = m_plus
        self.m_minus = m_minus
        self.down_weight = down_weight

    def call(self, y_true, y_pred):
        return margin_loss(y_true, y_pred, self.m_plus, self.m_minus, self.down_weight)

    def get_config(self):
        config = super().get_config()
        config.update({"m_plus": self.m_plus, "m_minus": self.m_minus, "down_weight": self.down_weight})
        return config
