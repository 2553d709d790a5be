"""DenseCapsule: fully connected capsules with routing-by-agreement."""

import keras
from keras import ops

from keras_caps.activations import squash

# Formulations of u_hat = W u, same weights and values (see `implementation`).
IMPLEMENTATIONS = ("einsum", "grouped_conv")


def check_routings(routings):
    """Returns `routings` as an int, or raises a ValueError saying why not."""
    if isinstance(routings, bool) or not isinstance(routings, int) or routings < 1:
        raise ValueError(f"`routings` must be an integer >= 1 (the paper uses 3), got {routings!r}.")
    return routings


@keras.saving.register_keras_serializable(package="keras_caps")
class DenseCapsule(keras.layers.Layer):
    """Capsule layer with dynamic routing (Sabour et al. 2017, Procedure 1).

    Every input capsule `u_i` predicts every output capsule through its own
    matrix: `u_hat[j, i] = W[j, i] @ u_i`. Routing then repeats `routings`
    times: coupling `c = softmax(b)` over the output capsules, weighted sum
    `s_j = sum_i c[j, i] * u_hat[j, i]`, `v_j = squash(s_j)`, and agreement
    `b[j, i] += v_j . u_hat[j, i]`.

    As in the PyTorch reference, iterations before the last see
    `stop_gradient(u_hat)`, so gradients reach `W` and the inputs only through
    the last iteration's weighted sum; the couplings act as constants.

    Routing arithmetic runs in float32 under any dtype policy; only the
    `u_hat` product uses the layer's compute dtype (float16/bfloat16 under
    mixed precision). The output is float32.

    Args:
        num_capsule: number of output capsules (the classes, 10 on MNIST).
        dim_capsule: components per output capsule (16 in the paper).
        routings: routing iterations, an integer >= 1 (3 in the paper).
        kernel_initializer: for `W`; normal with stddev 0.01 as in the reference.
        use_bias: add a bias per output capsule component to `s_j` before
            each squash, as the authors' code does (`biases` in its
            `_update_routing`; off in the PyTorch and Keras ports).
        bias_initializer: for that bias; the authors' constant 0.1.
        leaky_routing: couple each input capsule also to an extra "orphan"
            output whose logit stays 0 and whose share is dropped
            (`_leaky_routing` in the authors' code, used for CIFAR-10): an
            input capsule that agrees with no output gives them little.
        implementation: how `u_hat` is computed; the weights and the result are
            the same. `"einsum"` (default): one batched matrix product, the
            fast one to train. `"grouped_conv"`: one 1x1 convolution with a
            group per input capsule, which TFLite runs as a single CONV_2D
            (the calibrated int8 file's batch-1 latency drops by 40%) but
            TensorFlow's CPU kernels train ~80x slower: for export only.

    Input shape:
        `(batch, in_capsules, in_dim)`, with both sizes known.

    Output shape:
        `(batch, num_capsule, dim_capsule)`, float32.

    Weights:
        `kernel` of shape `(num_capsule, in_capsules, dim_capsule, in_dim)`;
        with `use_bias`, `bias` of shape `(num_capsule, dim_capsule)`.

    Example:
    >>> layer = DenseCapsule(num_capsule=10, dim_capsule=16, routings=3)
    >>> layer(np.random.rand(4, 1152, 8)).shape
    (4, 10, 16)
    """

    def __init__(
        self,
        num_capsule,
        dim_capsule,
        routings=3,
        kernel_initializer=None,
        implementation="einsum",
        use_bias=False,
        bias_initializer=None,
        leaky_routing=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("num_capsule", num_capsule), ("dim_capsule", dim_capsule)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DenseCapsule: `{name}` must be an integer >= 1, got {value!r}.")
        self.num_capsule = num_capsule
        self.dim_capsule = dim_capsule
        self.routings = check_routings(routings)
        if kernel_initializer is None:
            kernel_initializer = keras.initializers.RandomNormal(stddev=0.01)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"DenseCapsule: `implementation` must be one of {', '.join(IMPLEMENTATIONS)}; got {implementation!r}."
            )
        self.implementation = implementation
        self.use_bias = bool(use_bias)
        self.bias_initializer = keras.initializers.get(
            keras.initializers.Constant(0.1) if bias_initializer is None else bias_initializer
        )
        self.leaky_routing = bool(leaky_routing)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                "DenseCapsule expects capsules of shape (batch, in_capsules, in_dim) "
                f"with both sizes known; got {tuple(input_shape)}."
            )
        self.in_capsules = int(input_shape[1])
        self.in_dim = int(input_shape[2])
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.num_capsule, self.in_capsules, self.dim_capsule, self.in_dim),
            initializer=self.kernel_initializer,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.num_capsule, self.dim_capsule), initializer=self.bias_initializer
            )

    def predictions(self, inputs):
        """`u_hat`, shape `(batch, num_capsule, in_capsules, dim_capsule)`."""
        if self.implementation == "einsum":
            # One batched product per input capsule, then one transpose: the same
            # as ops.einsum("bik,jiok->bjio"), whose TensorFlow gradient made a
            # training step through this layer ~1.5x slower.
            x = ops.transpose(inputs, (1, 0, 2))
            kernel = ops.reshape(
                ops.transpose(self.kernel, (1, 3, 0, 2)),
                (self.in_capsules, self.in_dim, self.num_capsule * self.dim_capsule),
            )
            y = ops.reshape(
                ops.matmul(x, ops.cast(kernel, x.dtype)), (self.in_capsules, -1, self.num_capsule, self.dim_capsule)
            )
            return ops.transpose(y, (1, 2, 0, 3))
        # Input capsule i's components are group i's channels; its filters are
        # W[:, i] flattened, so output channel i*J*O + j*O + o is u_hat[j, i, o].
        x = ops.reshape(inputs, (-1, 1, 1, self.in_capsules * self.in_dim))
        kernel = ops.reshape(ops.transpose(self.kernel, (3, 1, 0, 2)), (1, 1, self.in_dim, -1))
        y = ops.conv(x, ops.cast(kernel, x.dtype), strides=1, padding="valid")
        y = ops.reshape(y, (-1, self.in_capsules, self.num_capsule, self.dim_capsule))
        return ops.transpose(y, (0, 2, 1, 3))

    def call(self, inputs):
        shape = inputs.shape
        if shape[1] != self.in_capsules or shape[2] != self.in_dim:
            raise ValueError(
                f"DenseCapsule was built for {self.in_capsules} capsules of "
                f"{self.in_dim} components; got input of shape {tuple(shape)}."
            )
        u_hat = ops.cast(self.predictions(inputs), "float32")
        u_hat_frozen = ops.stop_gradient(u_hat)
        # Leaky routing: one more output, the orphan, of logit 0 throughout.
        outputs_coupled = self.num_capsule + int(self.leaky_routing)
        logits = None
        for i in range(self.routings):
            last = i == self.routings - 1
            preds = u_hat if last else u_hat_frozen
            if logits is None:
                # b = 0 gives uniform couplings: skip the softmax.
                s = ops.sum(preds, axis=2) / outputs_coupled
            else:
                if self.leaky_routing:
                    orphan = ops.zeros_like(logits[:, :1])
                    coupling = ops.softmax(ops.concatenate([orphan, logits], axis=1), axis=1)[:, 1:]
                else:
                    coupling = ops.softmax(logits, axis=1)
                s = ops.einsum("bji,bjio->bjo", coupling, preds)
            if self.use_bias:
                s = s + ops.cast(self.bias, "float32")
            outputs = squash(s)
            if not last:
                agreement = ops.einsum("bjo,bjio->bji", outputs, u_hat_frozen)
                logits = agreement if logits is None else logits + agreement
        return outputs

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_capsule, self.dim_capsule)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_capsule": self.num_capsule,
                "dim_capsule": self.dim_capsule,
                "routings": self.routings,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "implementation": self.implementation,
                "use_bias": self.use_bias,
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "leaky_routing": self.leaky_routing,
            }
        )
        return config
