"""CapsNet: the paper's MNIST network as a subclassed `keras.Model`."""

import inspect
import math

import keras
from keras import ops

from keras_caps import losses
from keras_caps.activations import safe_norm
from keras_caps.initializers import TORCH_UNIFORM, FanInUniform
from keras_caps.layers.dense_capsule import DenseCapsule, check_routings
from keras_caps.layers.primary_capsule import PrimaryCapsule
from keras_caps.models import presets
from keras_caps.models.image_range import check_image_range
from keras_caps.models.multi_worker import local_values, step_outputs


@keras.saving.register_keras_serializable(package="keras_caps")
class CapsNet(keras.Model):
    """Capsule network with dynamic routing and a reconstruction decoder.

    Conv2D(`conv_filters`, `conv_kernel_size`, `conv_strides`, ReLU), one or
    several -> PrimaryCapsule
    (`primary_channels` x `primary_dim`D, `primary_kernel_size`, stride
    `primary_strides`) -> DenseCapsule(`classes` x `digit_dim`D, `routings`) ->
    capsule lengths. The decoder (Dense `decoder_units`, then one sigmoid unit
    per pixel) reconstructs the image from the digit capsules, all zeroed but
    the true class's while training and the longest one's otherwise.

    The loss is the margin loss plus `lam_recon` times the mean squared
    reconstruction error; `compile()` takes no `loss`. `fit`, `evaluate` and
    callbacks see `loss`, `margin_loss`, `reconstruction_loss` and `accuracy`.
    Labels may be integer class ids `(batch,)` or one-hot `(batch, classes)`.

    Args:
        input_shape: image shape `(height, width, channels)`; images are floats
            in [0, 1].
        classes: number of classes (>= 2).
        routings: routing iterations (>= 1).
        conv_filters, conv_kernel_size, conv_strides: the convolutions before the
            primary capsules, each ReLU and "valid": an int for one (the paper's
            256, 9, 1) or equal-length sequences for a stack (an int beside a
            sequence is used for every layer).
        conv_batch_norm: batch normalization between each of those
            convolutions and its ReLU (the convolutions then have no bias);
            TFLite folds it into the convolution.
        primary_channels, primary_dim, primary_kernel_size, primary_strides:
            the primary capsules (32, 8, 9, 2).
        digit_dim: components per class capsule (16).
        decoder_units: hidden sizes of the decoder ((512, 1024)).
        lam_recon: weight of the reconstruction error (0.392 = 0.0005 * 784).
        m_plus, m_minus, down_weight: margin-loss constants (0.9, 0.1, 0.5).
        kernel_initializer: for the convolutions and the decoder. The default
            is PyTorch's, U(+-1/sqrt(fan_in)), as in the reference.
        bias_initializer: `"fan_in_uniform"` (PyTorch's, the default) or a Keras
            initializer such as `"zeros"` (Keras's usual choice).
        decoder_kernel_initializer, decoder_bias_initializer: the decoder's
            own (None: `kernel_initializer` and `bias_initializer`). The
            authors' code draws its weights from a normal of standard
            deviation 0.1 truncated at two, and sets its biases to 0.1
            (`AUTHORS_DECODER_INIT`).
        capsule_implementation: how the digit capsules compute `u_hat`
            (`DenseCapsule`'s `implementation`): `"einsum"` to train,
            `"grouped_conv"` for int8 TFLite files. Same weights and values.
        class_names: a name for each class (saved with the model, written
            beside its exported files); None: none.
        input_standardization: standardize each image (zero mean and unit
            variance over its pixels, as `tf.image.per_image_standardization`)
            before the first convolution: a uniform background of any colour
            then reads as zero.
        invert_input: each image turned to its negative (1 - x) before anything
            else, for images of dark strokes on a light background (scans,
            drawings): the network then sees light on dark, as on MNIST, on
            which such grey images learn better (BENCHMARKS.md, "Grey images on
            white"). Inside the model, so `predict` and exported files take the
            images as they are; the decoder learns to draw the negative, and
            `reconstruct` returns the images' own colours.
        capsule_bias, leaky_routing: the digit capsules' `use_bias` and
            `leaky_routing` (`DenseCapsule`), both from the authors' code.
        loss_form: `"ports"` (the paper's margin loss summed over classes, as
            the PyTorch and Keras ports compute it) or `"authors"` (the
            authors' code's: half the present term, a quarter the absent one,
            averaged over classes: beside `lam_recon` the reconstruction then
            weighs 2 x classes times as much; `keras_caps.losses.LOSS_FORMS`).

    The number of primary capsules, and with it the digit capsules' weight,
    grows with the image's area, as does the decoder's output layer: a model
    whose weights would exceed `MAX_WEIGHT_BYTES` is refused before they are
    made, with what brings them down.

    Call:
        `model(images)` returns a dict: `scores`, the class scores (capsule
        lengths, float32, `(batch, classes)`), and `capsules`, the digit
        capsules `(batch, classes, digit_dim)`. `model.predict(images)` returns
        the scores alone, as a classifier's does.
        `model.forward(images)` adds the `reconstruction`;
        `model.reconstruct(images, labels=None)` returns just that.

        One output structure whatever the caller: the loss decodes the
        capsules, so `call` must return them to `fit` and `evaluate`, while a
        user of `predict` wants the scores. A separate backbone model (the
        keras-hub way) would split one network that has a single input and a
        single task into two saved objects; the dict keeps one, and `predict`
        picks the scores from it (a backend's `predict_step` has a different
        signature on each backend, `predict` one for all).

    Named configurations (`ARCHITECTURES`): `"paper"`, the paper's 8.2M
    weights (the defaults), and `"micro"`, 0.26M weights before the decoder,
    whose int8 scores-only file fits a microcontroller (BENCHMARKS.md); build
    one with `CapsNet.from_architecture(name, **overrides)`.

    Example:
    >>> model = CapsNet(input_shape=(28, 28, 1), classes=10, routings=3)
    >>> model.compile(optimizer="adam")
    >>> model.fit(x_train, y_train, batch_size=100, epochs=1)
    >>> scores = model.predict(x_test)
    """

    def __init__(
        self,
        input_shape=(28, 28, 1),
        classes=10,
        routings=3,
        conv_filters=256,
        conv_kernel_size=9,
        conv_strides=1,
        conv_batch_norm=False,
        primary_channels=32,
        primary_dim=8,
        primary_kernel_size=9,
        primary_strides=2,
        digit_dim=16,
        decoder_units=(512, 1024),
        lam_recon=losses.LAM_RECON,
        m_plus=losses.M_PLUS,
        m_minus=losses.M_MINUS,
        down_weight=losses.DOWN_WEIGHT,
        kernel_initializer=None,
        bias_initializer="fan_in_uniform",
        decoder_kernel_initializer=None,
        decoder_bias_initializer=None,
        capsule_implementation="einsum",
        class_names=None,
        input_standardization=False,
        invert_input=False,
        capsule_bias=False,
        leaky_routing=False,
        loss_form="ports",
        **kwargs,
    ):
        super().__init__(**kwargs)
        input_shape = tuple(input_shape)
        if len(input_shape) != 3 or not all(isinstance(d, int) and d > 0 for d in input_shape):
            raise ValueError(
                f"CapsNet: `input_shape` must be (height, width, channels) of positive integers, got {input_shape!r}."
            )
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
            raise ValueError(f"CapsNet: `classes` must be an integer >= 2, got {classes!r}.")
        self.image_shape = input_shape
        self.classes = classes
        if class_names is not None:
            class_names = [str(name) for name in class_names]
            if len(class_names) != classes:
                raise ValueError(
                    f"CapsNet: `class_names` must name each of the {classes} classes, got {len(class_names)} names."
                )
        self.class_names = class_names
        self.input_standardization = bool(input_standardization)
        self.invert_input = bool(invert_input)
        if loss_form not in losses.LOSS_FORMS:
            raise ValueError(f"CapsNet: `loss_form` must be one of {', '.join(losses.LOSS_FORMS)}, got {loss_form!r}.")
        self.loss_form = loss_form
        self.routings = check_routings(routings)
        convs = _conv_stack(conv_filters, conv_kernel_size, conv_strides)
        self.conv_batch_norm = bool(conv_batch_norm)
        # As given: an int stays an int (a one-conv model's config is as it always was).
        self.conv_filters, self.conv_kernel_size, self.conv_strides = (
            tuple(v) if isinstance(v, (list, tuple)) else v for v in (conv_filters, conv_kernel_size, conv_strides)
        )
        self.primary_channels = primary_channels
        self.primary_dim = primary_dim
        self.primary_kernel_size = primary_kernel_size
        self.primary_strides = primary_strides
        self.digit_dim = digit_dim
        self.decoder_units = tuple(decoder_units)
        self.lam_recon = float(lam_recon)
        self.m_plus = float(m_plus)
        self.m_minus = float(m_minus)
        self.down_weight = float(down_weight)
        if kernel_initializer is None:
            kernel_initializer = TORCH_UNIFORM
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

        self.bias_initializer = bias_initializer

        def fresh(spec):
            # One initializer object per layer: shared ones would repeat draws.
            return keras.initializers.get(keras.initializers.serialize(keras.initializers.get(spec)))

        def init():
            return fresh(self.kernel_initializer)

        def bias_init(fan_in):
            if bias_initializer == "fan_in_uniform":
                return FanInUniform(fan_in)
            return fresh(bias_initializer)

        self.decoder_kernel_initializer = _optional_initializer(decoder_kernel_initializer)
        self.decoder_bias_initializer = _optional_initializer(decoder_bias_initializer)

        def decoder_init():
            return init() if self.decoder_kernel_initializer is None else fresh(self.decoder_kernel_initializer)

        def decoder_bias_init(fan_in):
            if self.decoder_bias_initializer is None:
                return bias_init(fan_in)
            return fresh(self.decoder_bias_initializer)

        policy = self.dtype_policy
        conv_layers, channels = [], input_shape[-1]
        for i, (filters, kernel_size, strides) in enumerate(convs):
            conv_layers.append(
                keras.layers.Conv2D(
                    filters,
                    kernel_size,
                    strides=strides,
                    activation=None if conv_batch_norm else "relu",
                    use_bias=not conv_batch_norm,
                    kernel_initializer=init(),
                    bias_initializer=bias_init(kernel_size**2 * channels),
                    dtype=policy,
                    name=f"conv{i + 1}",
                )
            )
            channels = filters
        # `conv1` by itself so that models saved before stacks existed still load.
        self.conv1, self.more_convs = conv_layers[0], conv_layers[1:]
        self.conv_norms = [
            keras.layers.BatchNormalization(dtype=policy, name=f"conv{i + 1}_norm")
            for i in range(len(conv_layers) if conv_batch_norm else 0)
        ]
        self.primary_caps = PrimaryCapsule(
            num_channels=primary_channels,
            dim_capsule=primary_dim,
            kernel_size=primary_kernel_size,
            strides=primary_strides,
            kernel_initializer=init(),
            bias_initializer=bias_init(primary_kernel_size**2 * channels),
            dtype=policy,
            name="primary_caps",
        )
        self.digit_caps = DenseCapsule(
            num_capsule=classes,
            dim_capsule=digit_dim,
            routings=routings,
            implementation=capsule_implementation,
            use_bias=capsule_bias,
            leaky_routing=leaky_routing,
            dtype=policy,
            name="digit_caps",
        )
        fan_ins = (classes * digit_dim,) + self.decoder_units
        self.decoder_layers = [
            keras.layers.Dense(
                units,
                activation="relu",
                kernel_initializer=decoder_init(),
                bias_initializer=decoder_bias_init(fan_in),
                dtype=policy,
                name=f"decoder_{i}",
            )
            for i, (units, fan_in) in enumerate(zip(self.decoder_units, fan_ins))
        ]
        # Sigmoid output kept in float32 under mixed precision.
        self.decoder_layers.append(
            keras.layers.Dense(
                math.prod(input_shape),
                activation="sigmoid",
                kernel_initializer=decoder_init(),
                bias_initializer=decoder_bias_init(fan_ins[-1]),
                dtype="float32",
                name="decoder_output",
            )
        )
        self.margin_loss_tracker = keras.metrics.Mean(name="margin_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.accuracy_tracker = keras.metrics.CategoricalAccuracy(name="accuracy")
        self._batch_mean = losses.SampleMean(name="capsnet_loss")
        self.build((None,) + input_shape)

    # ----------------------------------------------------------------- build
    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self._check_image_shape(input_shape)
        if self.built:  # built in __init__; `model.build(shape)` again is a no-op
            return
        try:
            shape = input_shape
            for i, layer in enumerate(self.conv_layers):
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
                if self.conv_norms:
                    self.conv_norms[i].build(shape)
            self.primary_caps.build(shape)
            shape = self.primary_caps.compute_output_shape(shape)
        except ValueError:
            shape = (None, None)
        if shape[1] is None or shape[1] < 1:
            raise ValueError(
                f"CapsNet: input_shape {self.image_shape} is too small for "
                f"convolutions of kernel size {self.conv_kernel_size} and strides "
                f"{self.conv_strides} followed by {self.primary_kernel_size}x"
                f"{self.primary_kernel_size} primary capsules."
            )
        self._check_size(shape[1])
        self.digit_caps.build(shape)
        shape = (None, self.classes * self.digit_dim)
        for layer in self.decoder_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def _check_size(self, primary_capsules):
        digit = primary_capsules * self.classes * self.digit_dim * self.primary_dim
        decoder = (self.decoder_units[-1] + 1) * math.prod(self.image_shape) if self.decoder_units else 0
        total = 4 * (digit + decoder)  # float32 bytes; the convolutions are small beside these
        if total > MAX_WEIGHT_BYTES:
            raise ValueError(
                f"CapsNet: input_shape {self.image_shape} is too large for this architecture: it gives "
                f"{primary_capsules} primary capsules, so the digit capsules' weight holds {digit / 1e6:.0f}M values "
                f"and the decoder's output layer {decoder / 1e6:.0f}M, {total / 1e9:.2f} GB in float32, over the "
                f"{MAX_WEIGHT_BYTES / 1e9:.2f} GB limit. Bring it down with a smaller `image_size`, strided "
                "convolutions (`conv_strides`, e.g. 2) or the `micro` architecture."
            )

    @property
    def conv_layers(self):
        """The convolutions before the primary capsules, in order."""
        return [self.conv1, *self.more_convs]

    @classmethod
    def from_architecture(cls, name, **overrides):
        """A CapsNet of a named configuration (`ARCHITECTURES`), with any argument overridden."""
        if name not in ARCHITECTURES:
            raise ValueError(f"CapsNet: unknown architecture {name!r}; one of {', '.join(ARCHITECTURES)}.")
        return cls(**{**ARCHITECTURES[name], **overrides})

    @classmethod
    def from_preset(cls, preset, classes=None, class_names=None, input_shape=None):
        """A trained CapsNet from a preset: a shipped name (`keras_caps.presets()` lists
        them) or a folder written by `save_to_preset` or `train.py`. Its files are
        checked against the sha256 hashes in its `metadata.json` first.

        Given `classes`, `class_names` or `input_shape`, the preset is a starting point
        for another task (as keras-hub's `from_preset(..., num_classes=...)`): its
        convolutions and primary capsules are kept, the class capsules and decoder are
        new, to be trained (`keras_caps.models.transfer.with_new_head`).

        Args:
            preset: a shipped preset's name or a preset folder.
            classes: the number of classes of the new task.
            class_names: the new task's class names (their number gives `classes`).
            input_shape: `(height, width, channels)` of the new task's images; grey
                and colour adapt to each other.

        Raises:
            keras_caps.models.presets.PresetError: an unknown name, a folder that is not
                a preset, or a missing or corrupted file.
            ValueError: a new task the preset's stem cannot serve (channels that do not
                adapt, 3 to 4 say).
        """
        path = presets.model_path(preset)
        model = keras.saving.load_model(path)
        if not isinstance(model, cls):
            raise presets.PresetError(f"{path}: holds a {type(model).__name__}, not a {cls.__name__}.")
        if classes is None and class_names is None and input_shape is None:
            return model
        from keras_caps.models.transfer import with_new_head  # it builds on this module

        return with_new_head(model, classes=classes, class_names=class_names, input_shape=input_shape)

    def save_to_preset(self, preset_dir, metadata=None, device_dir=None):
        """Writes this model as a preset folder (`model.keras`, `metadata.json`,
        `labels.txt`); `device_dir`, an export folder, adds its int8 file and C array.
        See `keras_caps.models.presets.save_preset`. Returns the metadata written."""
        return presets.save_preset(self, preset_dir, metadata, device_dir=device_dir)

    def _check_image_shape(self, shape):
        if len(shape) != 4 or tuple(shape[1:]) != self.image_shape:
            raise ValueError(
                f"CapsNet expects images of shape (batch, {', '.join(map(str, self.image_shape))}) "
                f"(batch, height, width, channels); got {tuple(shape)}."
            )

    # ----------------------------------------------------------------- forward
    def encode(self, images, training=None):
        """Digit capsules, float32 `(batch, classes, digit_dim)`."""
        return self.digit_caps(self.primary_capsules(images, training=training))

    def primary_capsules(self, images, training=None):
        """The stem's output: the primary capsules `(batch, capsules, primary_dim)`."""
        images = ops.convert_to_tensor(images)
        self._check_image_shape(images.shape)
        if "float" not in str(images.dtype):
            raise ValueError(
                f"CapsNet expects float images scaled to [0, 1]; got dtype "
                f"{images.dtype}. Convert with `images.astype('float32') / 255`."
            )
        x = self.seen(images)
        if self.input_standardization:
            x = self.standardize(x)
        for i, layer in enumerate(self.conv_layers):
            x = layer(x)
            if self.conv_norms:
                x = ops.relu(self.conv_norms[i](x, training=training))
        return self.primary_caps(x)

    def seen(self, images):
        """The images as the network sees them: their negatives with `invert_input`."""
        return 1.0 - images if self.invert_input else images

    @property
    def background_value(self):
        """The pixel value the network sees as black (1 with `invert_input`, else 0): what
        shifts and turns of its training images bring in at the edges."""
        return 1.0 if self.invert_input else 0.0

    @staticmethod
    def standardize(images):
        """Each image minus its mean, over its standard deviation (at least 1/sqrt(pixels))."""
        mean, inverse_std = CapsNet._moments(images)
        return (images - mean) * inverse_std

    @staticmethod
    def _moments(images):
        """Each image's mean and 1 / max(std, 1/sqrt(pixels)): RSQRT, not SQRT and DIV, which
        int8 TFLite files (TFLite Micro's kernels) lack."""
        axes = (1, 2, 3)
        mean = ops.mean(images, axis=axes, keepdims=True)
        variance = ops.mean(ops.square(images - mean), axis=axes, keepdims=True)
        return mean, ops.rsqrt(ops.maximum(variance, 1.0 / math.prod(images.shape[1:])))

    def decode(self, capsules, labels=None):
        """Reconstruction from the capsules, masked by `labels` or else by the longest capsule."""
        if labels is None:
            # The longest capsule, found by comparison: keras.ops.argmax's
            # TensorFlow form (BitwiseAnd, for -0.0) has no TFLite builtin op.
            # A select, not a multiply by a cast mask: it stays integer in int8 TFLite files.
            lengths = safe_norm(capsules)
            longest = ops.equal(lengths, ops.max(lengths, axis=-1, keepdims=True))
            masked = ops.where(longest[:, :, None], capsules, 0.0)
        else:
            masked = capsules * ops.cast(self.one_hot(labels), capsules.dtype)[:, :, None]
        x = ops.reshape(masked, (ops.shape(capsules)[0], self.classes * self.digit_dim))
        for layer in self.decoder_layers:
            x = layer(x)
        return ops.reshape(x, (-1,) + self.image_shape)

    def forward(self, images, labels=None):
        """Everything at once: `call`'s dict plus the `reconstruction` (the decoder's
        output, what the loss compares with `reconstruction_target(images)`)."""
        outputs = self(images)
        return {**outputs, "reconstruction": self.decode(outputs["capsules"], labels)}

    def reconstruction_target(self, images):
        """What the decoder learns to draw: the images as the network sees them (`seen`), and
        with `input_standardization` those standardized, through a sigmoid (the capsules see
        no image's own brightness and contrast, so no decoder could draw them back)."""
        images = self.seen(ops.cast(images, "float32"))
        return ops.sigmoid(self.standardize(images)) if self.input_standardization else images

    def to_images(self, decoded, images):
        """Decoder outputs back in the space of `images`: a standardized model's undone with
        each image's own mean and deviation, an inverting model's turned back."""
        decoded = ops.cast(decoded, "float32")
        if self.input_standardization:
            mean, inverse_std = self._moments(self.seen(ops.cast(images, "float32")))
            p = ops.clip(decoded, 1e-6, 1 - 1e-6)
            decoded = ops.clip(ops.log(p / (1 - p)) / inverse_std + mean, 0.0, 1.0)
        return self.seen(decoded)

    def reconstruct(self, images, labels=None):
        """Reconstructed images, `(batch,) + input_shape`, float32 in [0, 1], in the images' own colours."""
        return self.to_images(self.decode(self.encode(images), labels), images)

    def call(self, inputs, training=None):
        capsules = self.encode(inputs, training=training)
        return {"scores": safe_norm(capsules), "capsules": capsules}

    def compute_output_spec(self, inputs, training=None):
        batch = inputs.shape[0]
        return {
            "scores": keras.KerasTensor((batch, self.classes), dtype="float32"),
            "capsules": keras.KerasTensor((batch, self.classes, self.digit_dim), dtype="float32"),
        }

    def predict(self, x, *args, **kwargs):
        """`keras.Model.predict`, returning the class scores `(n, classes)` alone, after the
        same look at `x` as `fit`."""
        check_image_range(x, "predict")
        return super().predict(x, *args, **kwargs)["scores"]

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`, after a look at the images of `x` and `validation_data` (an array
        whole, a dataset's first batch): images not scaled to [0, 1], or with NaN or infinite
        pixels, are a ValueError that says so (`keras_caps.models.image_range`)."""
        check_image_range(x, "fit")
        check_image_range(kwargs.get("validation_data"), "fit (validation_data)")
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`, after the same look at `x` as `fit` (not again for the
        validation that `fit` runs through it each epoch)."""
        if not kwargs.get("_use_cached_eval_dataset"):
            check_image_range(x, "evaluate")
        return super().evaluate(x, y, *args, **kwargs)

    def one_hot(self, labels):
        """Integer labels `(batch,)`/`(batch, 1)` or one-hot `(batch, classes)` to one-hot float32."""
        labels = ops.convert_to_tensor(labels)
        if len(labels.shape) == 2 and labels.shape[-1] == self.classes:
            return ops.cast(labels, "float32")
        if len(labels.shape) > 2 or (len(labels.shape) == 2 and labels.shape[-1] != 1):
            raise ValueError(
                f"CapsNet: labels must be class ids of shape (batch,) or one-hot of "
                f"shape (batch, {self.classes}); got shape {tuple(labels.shape)}."
            )
        return self._ids_to_one_hot(ops.reshape(labels, (-1,)))

    def _ids_to_one_hot(self, ids):
        ids = ops.cast(ids, "int32")[:, None]
        return ops.cast(ops.equal(ids, ops.arange(self.classes, dtype="int32")[None, :]), "float32")

    # ----------------------------------------------------------------- training
    def compile(self, optimizer="adam", loss=None, **kwargs):
        if loss is not None:
            raise ValueError(
                "CapsNet computes its own loss (margin loss + lam_recon x "
                "reconstruction error): call compile() without `loss`, and set "
                "`lam_recon`, `m_plus`, `m_minus` or `down_weight` on the model."
            )
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        # Keras skips a custom compile() when loading; ours takes the same
        # arguments, so restore it (and the optimizer state after it).
        config = keras.saving.deserialize_keras_object(config)
        config.pop("loss", None)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # TensorFlow trainer only. Keras 3 all-reduces one data batch across
        # replicas just to learn its shapes, which fails under
        # MultiWorkerMirroredStrategy (keras-team/keras#20585); this replica's
        # own share of the batch has the same structure and serves as well.
        # No public route exists: fit() pulls and reduces the batch whether or
        # not the model is built, and the dataset's elements are PerReplica
        # values however it is distributed. tests/test_distribute.py's
        # test_keras_still_fails_multi_worker_without_the_workaround shows the
        # failure with a plain Keras model; when it stops failing, drop this.
        if iterator is not None and getattr(self, "_distribute_strategy", None) is not None:
            for _, _, it in iterator:
                data_batch = local_values(next(it))
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y_pred, dict):
            raise ValueError(
                "CapsNet.compute_loss needs the capsules: pass `model(x)` "
                "(a dict of scores and capsules), not the scores alone."
            )
        if y is None:
            raise ValueError("CapsNet needs labels to compute its loss; got y=None.")
        y_onehot = self.one_hot(y)
        # Masked by the true class while training, by the prediction otherwise,
        # as the reference's train and test loops do.
        reconstruction = self.decode(y_pred["capsules"], y_onehot if training else None)
        form = losses.LOSS_FORMS[self.loss_form]
        down_weight = self.down_weight * form["down_weight"] / losses.DOWN_WEIGHT  # the authors' halves it too
        per_image = losses.margin_loss(
            y_onehot,
            y_pred["scores"],
            self.m_plus,
            self.m_minus,
            down_weight,
            form["present_weight"],
            form["class_reduction"],
        )
        per_image_recon = losses.reconstruction_loss(self.reconstruction_target(x), reconstruction)
        # Weighted by batch size, like Keras's own `loss` tracker.
        batch = ops.shape(x)[0]
        self.margin_loss_tracker.update_state(losses.weighted_mean(per_image, sample_weight), sample_weight=batch)
        self.reconstruction_loss_tracker.update_state(
            losses.weighted_mean(per_image_recon, sample_weight), sample_weight=batch
        )
        # Reduced by a Keras loss, which under tf.distribute also divides by the
        # replicas (whose gradients are summed), as Keras's own losses do.
        total = self._batch_mean(per_image, per_image + self.lam_recon * per_image_recon, sample_weight)
        if self.losses:  # add_loss and regularizers, scaled alike by Keras
            total = total + super().compute_loss(x, y, y_pred, sample_weight)
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        scores = y_pred["scores"] if isinstance(y_pred, dict) else y_pred
        self.accuracy_tracker.update_state(self.one_hot(y), scores, sample_weight=sample_weight)
        return step_outputs(super().compute_metrics(x, y, scores, sample_weight))

    # ----------------------------------------------------------------- config
    def get_config(self):
        return {
            "name": self.name,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "input_shape": list(self.image_shape),
            "classes": self.classes,
            "routings": self.routings,
            "conv_filters": self.conv_filters,
            "conv_kernel_size": self.conv_kernel_size,
            "conv_strides": self.conv_strides,
            "conv_batch_norm": self.conv_batch_norm,
            "primary_channels": self.primary_channels,
            "primary_dim": self.primary_dim,
            "primary_kernel_size": self.primary_kernel_size,
            "primary_strides": self.primary_strides,
            "digit_dim": self.digit_dim,
            "decoder_units": list(self.decoder_units),
            "lam_recon": self.lam_recon,
            "m_plus": self.m_plus,
            "m_minus": self.m_minus,
            "down_weight": self.down_weight,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "capsule_implementation": self.digit_caps.implementation,
            "class_names": self.class_names,
            "input_standardization": self.input_standardization,
            "invert_input": self.invert_input,
            "capsule_bias": self.digit_caps.use_bias,
            "leaky_routing": self.digit_caps.leaky_routing,
            "loss_form": self.loss_form,
            "bias_initializer": (
                self.bias_initializer
                if isinstance(self.bias_initializer, str)
                else keras.initializers.serialize(keras.initializers.get(self.bias_initializer))
            ),
            "decoder_kernel_initializer": _serialize_optional(self.decoder_kernel_initializer),
            "decoder_bias_initializer": _serialize_optional(self.decoder_bias_initializer),
        }


def _optional_initializer(spec):
    return None if spec is None else keras.initializers.get(spec)


def _serialize_optional(initializer):
    return None if initializer is None else keras.initializers.serialize(initializer)


# The authors' code's decoder (Sarasra/models, research/capsules, layers.reconstruction):
# weights from a normal of standard deviation 0.1 truncated at two, biases 0.1.
AUTHORS_DECODER_INIT = {
    "decoder_kernel_initializer": {"class_name": "TruncatedNormal", "config": {"stddev": 0.1}},
    "decoder_bias_initializer": {"class_name": "Constant", "config": {"value": 0.1}},
}
# The decoder's initialisations a run can name (`TrainConfig.decoder_init`): CapsNet's arguments.
DECODER_INITS = {"default": {}, "authors": AUTHORS_DECODER_INIT}


# The largest model CapsNet builds: 1 GiB of float32 weights (the paper's MNIST model holds 33 MB).
MAX_WEIGHT_BYTES = 1 << 30

# Named configurations for `CapsNet.from_architecture` and `train.py --architecture`.
ARCHITECTURES = {
    # The paper's: Conv 256@9x9 -> 32x8D primary capsules @9x9/2 (1152) -> 10x16D.
    "paper": {},
    # The paper's for colour images whose backgrounds are not black: each image standardized
    # (zero mean, unit variance) and batch normalization between the convolution and its ReLU;
    # neither alone learns (chosen on a validation split, BENCHMARKS.md).
    "paper_norm": {"input_standardization": True, "conv_batch_norm": True},
    # For microcontrollers: Conv 32@5x5 -> Conv 64@3x3/2 -> Conv 64@3x3, each with batch
    # normalization -> 8x8D primary capsules @3x3/2 (4x4x8 = 128) -> 10x16D. 0.26M weights
    # before the decoder; chosen on a validation split (BENCHMARKS.md).
    "micro": {
        "conv_filters": (32, 64, 64),
        "conv_kernel_size": (5, 3, 3),
        "conv_strides": (1, 2, 1),
        "conv_batch_norm": True,
        "primary_channels": 8,
        "primary_dim": 8,
        "primary_kernel_size": 3,
        "primary_strides": 2,
        "kernel_initializer": "he_uniform",
    },
}


def weight_bytes(name, input_shape, classes, **overrides):
    """float32 bytes of the digit capsules' weight and the decoder's output layer
    of architecture `name` on `input_shape` (what grows with the image), from
    shape arithmetic alone; 0 when the image is too small for its convolutions."""
    args = {**ARCHITECTURES[name], **overrides}
    defaults = {k: p.default for k, p in inspect.signature(CapsNet.__init__).parameters.items() if k != "self"}
    args = {**defaults, **args}
    height, width, _ = input_shape
    for _, kernel, stride in _conv_stack(args["conv_filters"], args["conv_kernel_size"], args["conv_strides"]):
        height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
    kernel, stride = args["primary_kernel_size"], args["primary_strides"]
    height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
    if height < 1 or width < 1:
        return 0
    capsules = height * width * args["primary_channels"]
    digit = capsules * classes * args["digit_dim"] * args["primary_dim"]
    decoder = (tuple(args["decoder_units"])[-1] + 1) * math.prod(input_shape) if args["decoder_units"] else 0
    return 4 * (digit + decoder)


def choose_architecture(input_shape, classes):
    """`(name, why)`: the architecture `architecture="auto"` takes for images of `input_shape`.

    Grey images: the paper's CapsNet. Colour images: `paper_norm`, the paper's
    with each image standardized and batch normalization in its stem (on
    digits in random colours on random colour backgrounds the paper's model
    stays near chance for hundreds of steps; this one learns, BENCHMARKS.md).
    Images too large for either: `micro`, whose strided stem keeps the
    capsules few.
    """
    name = "paper" if input_shape[-1] == 1 else "paper_norm"
    why = "grey images" if name == "paper" else "colour images: each standardized, batch normalization in the stem"
    if weight_bytes(name, input_shape, classes) > MAX_WEIGHT_BYTES:
        return "micro", f"{input_shape[0]}x{input_shape[1]} images are too large for {name}'s capsules"
    return name, why


# What tells the named architectures apart (the rest is the same in all, or chosen per run).
_STRUCTURE = ("conv_batch_norm", "primary_channels", "primary_dim", "primary_kernel_size", "primary_strides")


def architecture_of(model):
    """The name in `ARCHITECTURES` whose network `model` has (stem, capsules,
    normalization), or None for one of its own."""
    config = model.get_config()
    defaults = {k: p.default for k, p in inspect.signature(CapsNet.__init__).parameters.items() if k != "self"}

    def shape(args):
        stem = _conv_stack(args["conv_filters"], args["conv_kernel_size"], args["conv_strides"])
        return stem, [args[k] for k in _STRUCTURE], bool(args["input_standardization"])

    for name, overrides in ARCHITECTURES.items():
        if shape({**defaults, **overrides}) == shape({**defaults, **config}):
            return name
    return None


def _conv_stack(filters, kernel_sizes, strides):
    """`[(filters, kernel_size, strides)]` of the convolutions, validated."""
    values = {"conv_filters": filters, "conv_kernel_size": kernel_sizes, "conv_strides": strides}
    lengths = {len(v) for v in values.values() if isinstance(v, (list, tuple))}
    if len(lengths) > 1:
        raise ValueError(
            "CapsNet: `conv_filters`, `conv_kernel_size` and `conv_strides` given as "
            f"sequences must have equal lengths; got {filters!r}, {kernel_sizes!r}, {strides!r}."
        )
    count = lengths.pop() if lengths else 1
    columns = []
    for name, value in values.items():
        column = list(value) if isinstance(value, (list, tuple)) else [value] * count
        if not column or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in column):
            raise ValueError(
                f"CapsNet: `{name}` must be a positive integer or a non-empty sequence of them; got {value!r}."
            )
        columns.append(column)
    return list(zip(*columns))
