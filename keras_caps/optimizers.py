"""Adam with the reference's (PyTorch's) epsilon placement."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_caps")
class TorchAdam(keras.optimizers.Adam):
    """Adam as `torch.optim.Adam` computes it: epsilon added after bias correction.

    Keras's `Adam` adds `epsilon` to `sqrt(v)` before the bias correction of
    `v` (the "epsilon hat" form of the Adam paper), so early in training its
    epsilon is worth `epsilon / sqrt(1 - beta_2**t)`: at step 1 about 32
    times larger. CapsNet's gradients are small (median |g| ~1e-6 for the
    capsule and primary-convolution weights at initialisation), so with
    Keras's form and its default `epsilon=1e-7` the first steps are several
    times shorter than the reference's. This class takes the same arguments
    as `keras.optimizers.Adam`, with PyTorch's default `epsilon=1e-8`, and
    updates

        m_hat = m / (1 - beta_1**t),  v_hat = v / (1 - beta_2**t)
        w -= learning_rate * m_hat / (sqrt(v_hat) + epsilon)

    Example:

    >>> model.compile(optimizer=keras_caps.TorchAdam(1e-3))
    """

    def __init__(
        self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, amsgrad=False, name="torch_adam", **kwargs
    ):
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
            name=name,
            **kwargs,
        )

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, dtype), step)
        beta_2_power = ops.power(ops.cast(self.beta_2, dtype), step)
        index = self._get_variable_index(variable)
        m = self._momentums[index]
        v = self._velocities[index]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        if self.amsgrad:
            v_max = self._velocity_hats[index]
            self.assign(v_max, ops.maximum(v_max, v))
            v = v_max
        denominator = ops.add(ops.sqrt(ops.divide(v, 1 - beta_2_power)), self.epsilon)
        self.assign_sub(variable, ops.divide(ops.multiply(m, lr / (1 - beta_1_power)), denominator))


@keras.saving.register_keras_serializable(package="keras_caps")
class EMAWarmupAdam(keras.optimizers.Adam):
    """Keras's Adam whose moving average of the weights (`use_ema`) has a warm-up.

    Keras's average runs at `ema_momentum` from its second step, so at momentum
    0.999 the first epochs' average is still mostly the barely trained weights
    of its first steps (36-53% MNIST validation error after the first epoch of
    a 20-epoch run, against ~1.7% for the weights as trained). Here step t
    (from 0) averages with momentum `min(ema_momentum, (1 + t) / (10 + t))`,
    the `num_updates` form of TensorFlow's `ExponentialMovingAverage`: the
    average follows the weights closely at first and widens to `ema_momentum`
    (0.999 is reached after 8,990 steps).

    Takes the arguments of `keras.optimizers.Adam`; `ema_momentum` is the
    momentum the warm-up ends at, and what `get_config` records.

    Example:

    >>> model.compile(optimizer=keras_caps.EMAWarmupAdam(1e-3, use_ema=True, ema_momentum=0.999))
    """

    @property
    def ema_momentum(self):
        # Read by Keras's average update at every step: a tensor of the step once it exists.
        iterations = getattr(self, "_iterations", None)
        if iterations is None:
            return self._peak_ema_momentum
        t = ops.cast(iterations, "float32")
        return ops.minimum(ops.cast(self._peak_ema_momentum, "float32"), (1.0 + t) / (10.0 + t))

    @ema_momentum.setter
    def ema_momentum(self, value):
        self._peak_ema_momentum = value

    @property
    def peak_ema_momentum(self):
        """The momentum the warm-up ends at (`ema_momentum` as given)."""
        return self._peak_ema_momentum

    def get_config(self):
        config = super().get_config()
        config["ema_momentum"] = self._peak_ema_momentum
        return config
