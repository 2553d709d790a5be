"""A trained CapsNet's stem under new class capsules: transfer to other classes or image sizes.

The stem (the convolutions, their batch normalization and the primary capsules)
does not depend on the classes, and its kernels not on the image's height and
width; the class capsules' weight holds one matrix per primary capsule and
class, and the decoder draws the image, so both are made afresh for the new
task (keras-hub's `from_preset(..., num_classes=...)` keeps a backbone and
makes a new head the same way).
"""

from keras_caps.models.capsnet import CapsNet

# What a transfer keeps and what it makes afresh, in the words messages use.
KEPT = "its convolutions and primary capsules"
NEW = "new class capsules and decoder"


def stem_layers(model):
    """The layers whose weights a transfer keeps, in order."""
    return [*model.conv_layers, *model.conv_norms, model.primary_caps]


def with_new_head(source, classes=None, class_names=None, input_shape=None, **overrides):
    """A CapsNet with `source`'s stem (weights copied) and new class capsules and decoder.

    Args:
        source: a `CapsNet`, trained.
        classes: the new number of classes (default: `len(class_names)`, else the source's).
        class_names: a name for each new class (default: none, unless `classes` is the
            source's, whose names are then kept).
        input_shape: `(height, width, channels)` of the new images (default: the
            source's). The channels must be the source's: its first convolution's
            kernel is made for them.
        **overrides: other `CapsNet` arguments for the new model (its routings, loss,
            the class capsules' biases, the decoder's initialisation); arguments that
            shape the stem are refused, since its weights would not fit.

    Returns:
        A new `CapsNet`, in the current dtype policy, built; its stem's weights are
        the source's, its class capsules and decoder freshly initialised.

    Raises:
        ValueError: a number of channels other than the source's, a stem argument in
            `overrides`, or new arguments `CapsNet` refuses (too small an image, ...).

    Example:

    >>> letters = with_new_head(keras_caps.CapsNet.from_preset("mnist_micro"), class_names=list("ABC"))
    """
    if not isinstance(source, CapsNet):
        raise ValueError(f"with_new_head: `source` must be a keras_caps.CapsNet, got {type(source).__name__}.")
    if class_names is not None and classes is None:
        classes = len(class_names)
    if classes is None:
        classes = source.classes
    if class_names is None and classes == source.classes:
        class_names = source.class_names
    input_shape = source.image_shape if input_shape is None else tuple(input_shape)
    if len(input_shape) == 3 and input_shape[-1] != source.image_shape[-1]:
        raise ValueError(
            f"with_new_head: the model's stem takes images of {source.image_shape[-1]} channel(s), "
            f"`input_shape` {input_shape} has {input_shape[-1]}."
        )
    stem_arguments = sorted(set(overrides) & _STEM_ARGUMENTS)
    if stem_arguments:
        raise ValueError(
            f"with_new_head: {', '.join(f'`{name}`' for name in stem_arguments)} would change the stem whose "
            "weights are kept; only the class capsules, decoder, routing and loss may differ."
        )
    config = {k: v for k, v in source.get_config().items() if k not in ("name", "dtype")}
    config.update(overrides, classes=classes, class_names=class_names, input_shape=list(input_shape))
    model = CapsNet.from_config(config)  # built by its constructor
    for target, kept in zip(stem_layers(model), stem_layers(source)):
        target.set_weights(kept.get_weights())
    return model


# The CapsNet arguments that give the stem its weights' shapes and meaning.
_STEM_ARGUMENTS = {
    "conv_filters",
    "conv_kernel_size",
    "conv_strides",
    "conv_batch_norm",
    "primary_channels",
    "primary_dim",
    "primary_kernel_size",
    "primary_strides",
    "input_standardization",
}
