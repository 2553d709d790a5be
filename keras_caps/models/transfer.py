"""A trained CapsNet's stem under new class capsules: transfer to other classes or image sizes.

The stem (the convolutions, their batch normalization and the primary capsules)
does not depend on the classes, and its kernels not on the image's height and
width (the first one's channels are adapted between grey and colour); the class
capsules' weight holds one matrix per primary capsule and class, and the
decoder draws the image, so both are made afresh for the new task (keras-hub's
`from_preset(..., num_classes=...)` keeps a backbone and makes a new head the
same way).
"""

import numpy as np

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
        classes: the new number of classes (default: `len(class_names)`; with neither
            given, the source's classes and their names).
        class_names: a name for each new class (default: none).
        input_shape: `(height, width, channels)` of the new images (default: the
            source's). Grey to colour and colour to grey adapt the first
            convolution's kernel (`adapt_channels`); other changes of channels
            are refused.
        **overrides: other `CapsNet` arguments for the new model (its routings, loss,
            the class capsules' biases, the decoder's initialisation); arguments that
            shape the stem are refused, since its weights would not fit.

    Returns:
        A new `CapsNet`, in the current dtype policy, built; its stem's weights are
        the source's, its class capsules and decoder freshly initialised.

    Raises:
        ValueError: channels that do not adapt (3 to 4, say), a stem argument in
            `overrides`, or new arguments `CapsNet` refuses (too small an image, ...).

    Example:

    >>> letters = with_new_head(keras_caps.CapsNet.from_preset("mnist_micro"), class_names=list("ABC"))
    """
    if not isinstance(source, CapsNet):
        raise ValueError(f"with_new_head: `source` must be a keras_caps.CapsNet, got {type(source).__name__}.")
    if classes is None and class_names is None:  # the same classes (other images, say): their names too
        classes, class_names = source.classes, source.class_names
    elif classes is None:
        classes = len(class_names)
    input_shape = source.image_shape if input_shape is None else tuple(input_shape)
    channels = input_shape[-1] if len(input_shape) == 3 else None
    if not can_adapt(source.image_shape[-1], channels):
        raise ValueError(
            f"with_new_head: the model's stem takes images of {source.image_shape[-1]} channels, "
            f"`input_shape` {input_shape} has {channels}: only grey to colour and colour to grey adapt."
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
        weights = kept.get_weights()
        if target is model.conv1:
            weights[0] = adapt_channels(weights[0], model.image_shape[-1])
        target.set_weights(weights)
    return model


def can_adapt(have, want):
    """Whether a first convolution made for `have` channels can serve images of `want`."""
    return have == want or have == 1 or want == 1


def adapt_channels(kernel, channels):
    """A first convolution's kernel `(height, width, in, filters)` for images of `channels`
    channels: a grey kernel is spread evenly over the colours, so that the stem sees a
    colour image as the mean of its channels (and a grey image copied into each channel
    exactly as before); a colour kernel is summed over them, so that a grey image reads
    as a colour one with equal channels. Training then learns what colour adds."""
    have = kernel.shape[2]
    if have == channels:
        return kernel
    if not can_adapt(have, channels):
        raise ValueError(f"adapt_channels: a kernel for {have} channels cannot serve {channels}.")
    if have == 1:
        return np.repeat(kernel, channels, axis=2) / channels
    return kernel.sum(axis=2, keepdims=True)


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
