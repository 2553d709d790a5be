"""CapsNet losses: margin loss on capsule lengths, reconstruction error."""

import keras
from keras import ops

M_PLUS = 0.9
M_MINUS = 0.1
DOWN_WEIGHT = 0.5
# The paper scales the summed squared error by 0.0005; over 784 pixels that is
# 0.392 times the mean squared error, which is what the reference computes.
LAM_RECON = 0.392
# The margin loss's forms: the paper's and the ports' (summed over classes), and the authors'
# code's (Sarasra/models research/capsules `_margin_loss`: 0.5 x present + 0.5 x 0.5 x absent,
# averaged over classes as its `evaluate` takes `reduce_mean`). Against a reconstruction
# term of the same weight, the authors' margin weighs 0.5 / classes of the ports' (1/20 on
# MNIST): their reconstruction counts 20x as much.
LOSS_FORMS = {
    "ports": {"present_weight": 1.0, "down_weight": DOWN_WEIGHT, "class_reduction": "sum"},
    "authors": {"present_weight": 0.5, "down_weight": 0.5 * DOWN_WEIGHT, "class_reduction": "mean"},
}


def margin_loss(
    y_true,
    lengths,
    m_plus=M_PLUS,
    m_minus=M_MINUS,
    down_weight=DOWN_WEIGHT,
    present_weight=1.0,
    class_reduction="sum",
):
    """Per-sample margin loss, summed (or averaged) over classes (float32, shape `(batch,)`).

    `L_k = present_weight T_k max(0, m+ - ||v_k||)^2 + down_weight (1 - T_k) max(0, ||v_k|| - m-)^2`

    Args:
        y_true: one-hot targets, `(batch, classes)`.
        lengths: capsule lengths, `(batch, classes)`.
        present_weight: weight of the present class's term (1; the authors' code 0.5).
        class_reduction: `"sum"` over classes (the paper's) or `"mean"` (the authors' code's).
    """
    if class_reduction not in ("sum", "mean"):
        raise ValueError(f"margin_loss: `class_reduction` must be 'sum' or 'mean', got {class_reduction!r}.")
    y_true = ops.cast(y_true, "float32")
    lengths = ops.cast(lengths, "float32")
    present = present_weight * y_true * ops.square(ops.relu(m_plus - lengths))
    absent = down_weight * (1.0 - y_true) * ops.square(ops.relu(lengths - m_minus))
    reduce = ops.sum if class_reduction == "sum" else ops.mean
    return reduce(present + absent, axis=-1)


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


class SampleMean(keras.losses.Loss):
    """The batch mean of per-sample losses computed elsewhere (`y_pred`; `y_true` is
    not used), by Keras's own reduction: weighted like Keras's losses and, under
    tf.distribute, divided by the replicas whose gradients are summed."""

    def call(self, y_true, y_pred):
        return y_pred


@keras.saving.register_keras_serializable(package="keras_caps")
class MarginLoss(keras.losses.Loss):
    """Margin loss as a Keras loss, for models of your own built from capsule layers.

    `y_true` is one-hot `(batch, classes)`; `y_pred` the capsule lengths.

    Example:
    >>> model.compile(optimizer="adam", loss=MarginLoss())
    """

    def __init__(
        self,
        m_plus=M_PLUS,
        m_minus=M_MINUS,
        down_weight=DOWN_WEIGHT,
        present_weight=1.0,
        class_reduction="sum",
        name="margin_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if class_reduction not in ("sum", "mean"):
            raise ValueError(f"MarginLoss: `class_reduction` must be 'sum' or 'mean', got {class_reduction!r}.")
        self.m_plus = m_plus
        self.m_minus = m_minus
        self.down_weight = down_weight
        self.present_weight = present_weight
        self.class_reduction = class_reduction

    def call(self, y_true, y_pred):
        return margin_loss(
            y_true, y_pred, self.m_plus, self.m_minus, self.down_weight, self.present_weight, self.class_reduction
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "m_plus": self.m_plus,
                "m_minus": self.m_minus,
                "down_weight": self.down_weight,
                "present_weight": self.present_weight,
                "class_reduction": self.class_reduction,
            }
        )
        return config
