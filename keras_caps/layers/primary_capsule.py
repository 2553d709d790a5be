"""PrimaryCapsule: a convolution whose output channels are read as capsules."""

import keras
from keras import ops

from keras_caps.activations import squash


@keras.saving.register_keras_serializable(package="keras_caps")
class PrimaryCapsule(keras.layers.Layer):
    """Conv2D, then reshape to capsules, then squash.

    The convolution has `num_channels * dim_capsule` filters. At every output
    position, each group of `dim_capsule` consecutive channels is one capsule,
    so there are `out_height * out_width * num_channels` capsules, derived from
    the input shape (32 * 6 * 6 = 1152 for the paper's 20x20x256 input).

    Capsule order is (row, column, channel group), channels-last. The PyTorch
    reference reshapes a channels-first tensor instead, which puts 8 pixels of
    one channel into a capsule; we keep the paper's grouping (8 channels of one
    pixel). Both train to the same accuracy; weights do not port one-to-one.

    Args:
        num_channels: capsule types per position (32 in the paper).
        dim_capsule: components per capsule (8 in the paper).
        kernel_size: convolution kernel size (9).
        strides: convolution strides (2).
        padding: `"valid"` or `"same"`.
        kernel_initializer, bias_initializer: of the convolution.

    Input shape:
        `(batch, height, width, channels)`.

    Output shape:
        `(batch, num_capsules, dim_capsule)`, vectors of length < 1.

    Example:
    >>> layer = PrimaryCapsule(num_channels=32, dim_capsule=8)
    >>> layer(np.zeros((2, 20, 20, 256))).shape
    (2, 1152, 8)
    """

    def __init__(
        self,
        num_channels=32,
        dim_capsule=8,
        kernel_size=9,
        strides=2,
        padding="valid",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("num_channels", num_channels), ("dim_capsule", dim_capsule)):
            if int(value) < 1:
                raise ValueError(f"PrimaryCapsule: `{name}` must be >= 1, got {value}.")
        self.num_channels = int(num_channels)
        self.dim_capsule = int(dim_capsule)
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.conv = keras.layers.Conv2D(
            self.num_channels * self.dim_capsule,
            kernel_size,
            strides=strides,
            padding=padding,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name="conv",
        )

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "PrimaryCapsule expects images of shape (batch, height, width, "
                f"channels); got rank {len(input_shape)}: {tuple(input_shape)}."
            )
        self.conv.build(input_shape)

    def _grid_size(self, input_shape):
        _, height, width, _ = self.conv.compute_output_shape(input_shape)
        if height is None or width is None:
            return None
        return height * width

    def call(self, inputs):
        outputs = self.conv(inputs)
        _, height, width, channels = outputs.shape
        # A static capsule count, so DenseCapsule sees it inside tf.function too.
        num_caps = height * width * channels // self.dim_capsule
        outputs = ops.reshape(outputs, (-1, num_caps, self.dim_capsule))
        return squash(outputs)

    def compute_output_shape(self, input_shape):
        grid = self._grid_size(input_shape)
        num_caps = None if grid is None else grid * self.num_channels
        return (input_shape[0], num_caps, self.dim_capsule)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_channels": self.num_channels,
                "dim_capsule": self.dim_capsule,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
