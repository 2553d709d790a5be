"""PyTorch's default initialisation, for parity with the PyTorch reference.

PyTorch initialises `Conv2d` and `Linear` weights with kaiming_uniform(a=sqrt(5)),
which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and their biases from the same
range; Keras's defaults are Glorot-uniform weights and zero biases.
benchmarks/HISTORY.md ("What moves the one-epoch accuracy") says why `CapsNet` keeps PyTorch's.
"""

import math

import keras

# U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as a Keras config: VarianceScaling's uniform
# limit is sqrt(3 * scale / fan_in), so scale = 1/3.
TORCH_UNIFORM = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1.0 / 3.0, "mode": "fan_in", "distribution": "uniform"},
}


@keras.saving.register_keras_serializable(package="keras_caps")
class FanInUniform(keras.initializers.Initializer):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for a bias, whose own shape does not tell fan_in.

    Args:
        fan_in: inputs per output unit of the layer the bias belongs to
            (kernel height x width x input channels for a convolution).
        seed: an int, or None for a random draw.

    Example:
    >>> conv = keras.layers.Conv2D(8, 3, bias_initializer=FanInUniform(3 * 3 * 1))
    """

    def __init__(self, fan_in, seed=None):
        if isinstance(fan_in, bool) or not isinstance(fan_in, int) or fan_in < 1:
            raise ValueError(f"FanInUniform: `fan_in` must be a positive integer, got {fan_in!r}.")
        self.fan_in = fan_in
        self.seed = seed

    def __call__(self, shape, dtype=None):
        limit = 1.0 / math.sqrt(self.fan_in)
        return keras.random.uniform(shape, -limit, limit, dtype=dtype, seed=self.seed)

    def get_config(self):
        return {"fan_in": self.fan_in, "seed": self.seed}
