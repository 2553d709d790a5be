"""The settings of one training run (or one search), validated."""

import dataclasses
import math

from keras_caps.data.augment import FLIPS, check_rotation
from keras_caps.data.datasets import CACHE_MODES
from keras_caps.data.folders import COLOR_MODES
from keras_caps.losses import LOSS_FORMS
from keras_caps.models.capsnet import ARCHITECTURES, DECODER_INITS
from keras_caps.settings import check_choices, setting
from keras_caps.training import class_weights, distribution, precision, recipes, schedules

# The choices of the fields that name things, from the modules that own them.
SCHEDULE_NAMES = schedules.SCHEDULES
POLICIES = ("auto",) + precision.POLICIES
STRATEGIES = distribution.STRATEGIES
CLASS_WEIGHTS = class_weights.CLASS_WEIGHTS
INVERT_INPUT = ("auto", "on", "off")
TUNERS = ("hyperband", "bayesian")  # keras_caps.training.tuning's algorithms (it imports keras-tuner)
RECIPE_NAMES = tuple(recipes.RECIPES)
_RECIPES_TEXT = "; ".join(
    f"{name}: " + ", ".join(f"{k} {v}" for k, v in values.items() if k != "lr_decay" or v != 0.9)
    for name, values in recipes.RECIPES.items()
)


def parse_image_size(text):
    """ "32,48", "32x48", "32X48" or "32" (square) -> (height, width)."""
    parts = text.lower().replace("x", ",").split(",")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise ValueError(
            f"`image_size` must be HEIGHT,WIDTH or HEIGHTxWIDTH (two integers >= 1) or one for a square, got {text!r}."
        )
    return size


@dataclasses.dataclass
class TrainConfig:
    """Everything a run of `keras_caps.training.run` (and `tune`) needs.

    The schedule fields (`epochs`, `lr`, `lr_decay`, `lr_schedule`,
    `warmup_steps`, `ema_momentum`) left `None` take the values of `recipe`
    (`keras_caps.training.recipes.RECIPES`); one given explicitly wins. Invalid
    values raise `ValueError` naming the field when the config is made.

    Each field's meaning is its `help` metadata (`dataclasses.fields(TrainConfig)`),
    from which `train.py` makes its flag of the same name.
    """

    recipe: str = setting(
        "fast",
        "The schedule settings left unset take (epochs, lr, lr_decay, lr_schedule, warmup_steps, "
        "ema_momentum). fast (the default) is 20 epochs of the paper's model (its measured test error: "
        "BENCHMARKS.md, section 1); long is its shape over the ports' 50 epochs (on MNIST no better); reference is the "
        "PyTorch/Keras ports' schedule, 50 epochs; micro is "
        f"architecture micro's. {_RECIPES_TEXT}.",
        RECIPE_NAMES,
    )
    architecture: str = setting(
        "auto",
        "auto (the default): chosen from the data's images and printed: paper for grey images, paper_norm "
        "for colour ones, micro for images too large for those. paper: the paper's CapsNet (8.2M weights "
        "on MNIST). paper_norm: the paper's with each image standardized and batch normalization in its "
        "stem, which learns on colour images whose backgrounds are not black. micro: 0.26M weights before "
        "the decoder (three convolutions with batch normalization, 128 primary capsules), whose int8 file "
        "fits a microcontroller; train it with recipe micro (keras_caps.ARCHITECTURES, BENCHMARKS.md).",
        ("auto",) + tuple(ARCHITECTURES),
    )
    routings: int = setting(3, "Routing iterations of the digit capsules (>= 1).")
    epochs: int | None = setting(None, "Epochs to train (>= 1; default: the recipe's); with tune, each trial's most.")
    batch_size: int = setting(100, "Global batch size (>= 1).")
    lr: float | None = setting(None, "Peak Adam learning rate (> 0; default: the recipe's).")
    lr_decay: float | None = setting(
        None, "Learning rate multiplier per epoch of the exponential schedule: lr * lr_decay**epoch (0 < d <= 1)."
    )
    lr_schedule: str | None = setting(
        None,
        "exponential: lr * lr_decay**epoch (the reference's). cosine: from lr down to 0 at the run's last step, "
        "a cosine per step (lr_decay unused). authors: the authors' code's lr * 0.96**floor(step / 2000) "
        "(lr_decay unused). Default: the recipe's.",
        SCHEDULE_NAMES,
    )
    warmup_steps: int | None = setting(
        None,
        "Linear learning-rate warm-up over the first N optimizer steps of a run, before either schedule "
        "(0: none; default: the recipe's, cut to a tenth of a shorter run).",
    )
    ema_momentum: float | None = setting(
        None,
        "Keep a moving average of the weights with this momentum (Polyak averaging, [0, 1); 0: none; "
        "default: the recipe's, lowered for a run too short for it, so that the average spans at most a tenth "
        "of the run's steps): it is validated every epoch and is the run's best.keras and final.keras.",
    )
    ema_warmup: bool = setting(
        True,
        "The average's momentum rises as min(ema_momentum, (1 + t) / (10 + t)) over the steps t "
        "(TensorFlow's num_updates form, keras_caps.EMAWarmupAdam), so the average follows the trained "
        "weights from the first epoch; off: Keras's plain average.",
    )
    lam_recon: float = setting(0.392, "Weight of the mean squared reconstruction error (>= 0; 0.0005 * 784).")
    loss_form: str = setting(
        "ports",
        "ports: the margin loss summed over classes (the paper's, the PyTorch/Keras ports'). authors: the "
        "authors' code's (half the present term, a quarter the absent one, averaged over classes), beside "
        "which the reconstruction weighs 20x as much on 10 classes.",
        tuple(LOSS_FORMS),
    )
    capsule_bias: bool = setting(
        False, "A bias per digit-capsule component before each squash, as the authors' code has (0.1 at start)."
    )
    decoder_init: str = setting(
        "default",
        "The decoder's initialisation. default: the convolutions' (PyTorch's). authors: the authors' code's, "
        "weights from a normal of deviation 0.1 truncated at two, biases 0.1.",
        tuple(DECODER_INITS),
    )
    shift_pixels: int = setting(
        2,
        "Random shift of training images, up to this many pixels (0 = none); black comes in (white where the "
        "model inverts its images, invert_input).",
    )
    flip: str = setting(
        "none",
        "Random flip of training images, each axis of each image with probability 1/2: none, horizontal "
        "(left-right: photos of things, animals, clothes), vertical, or horizontal_and_vertical (images with "
        "no up, as from a microscope). Not for digits or text, which flipping makes other signs.",
        tuple(FLIPS),
    )
    rotation: float = setting(
        0.0,
        "Random rotation of training images about their centre, up to this many degrees either way (0 = none, "
        "at most 180): as Keras's RandomRotation with fill_mode constant, bilinear, the corners black (white "
        "where the model inverts its images).",
    )
    invert_input: str = setting(
        "auto",
        "Whether the model turns each image to its negative (1 - x) first, so that dark strokes on a light "
        "background (scans, drawings) reach the network light on dark, as MNIST's, on which such grey images "
        "learn better; prediction and exported files take the images as they are. auto (the default): on "
        "for grey images whose edges are mostly light (median over 200 images spread over the training set "
        "above 0.5; not looked for in a TFDS set read from its files), printed; on; off. A resumed run and a "
        "tested model keep their own (on or off against it is an error); a fine-tuned or transferred model "
        "takes this run's.",
        INVERT_INPUT,
    )
    dataset: str = setting(
        "mnist",
        "TFDS image classification data set (mnist, fashion_mnist, cifar10, ...); with data_dir of IDX files, "
        "which set they hold (for class names).",
    )
    data_dir: str | None = setting(
        None,
        "Folder with the four MNIST IDX files (.gz or raw), or of images (PNG, JPEG, BMP, GIF) with one "
        "sub-folder per class: DIR/train/<class>/ and DIR/test/<class>/ (DIR/val/<class>/ optional), or one "
        "tree DIR/<class>/ split by test_split and val_split. TFDS if unset.",
    )
    image_size: tuple | None = setting(
        None,
        "An image folder's images resized to HEIGHT,WIDTH (or one number for a square); unset: their own "
        "size, which they must then share.",
        parse=parse_image_size,
    )
    color_mode: str | None = setting(
        None,
        "An image folder's images as grey or RGB; unset: as the files are (RGB if any has colour).",
        COLOR_MODES,
    )
    test_split: float | None = setting(
        None,
        "Share of a single image tree (no test/ folder) held out, stratified and seeded, as its test set (unset: 0.2).",
    )
    cache: str = setting(
        "auto",
        "An image folder's decoded images in memory: auto (when they fit in a quarter of the free memory, "
        "at most 4 GiB), memory (always) or none (decoded from the files as training goes, in parallel).",
        CACHE_MODES,
    )
    class_weight: str = setting(
        "none",
        "Weights of the classes in the training loss: none, or balanced (each class weighs alike in "
        "total, for a set whose classes have unequal numbers of images).",
        CLASS_WEIGHTS,
    )
    save_dir: str = setting("runs/capsnet", "Folder for models, logs, checkpoints, figures and the preset.")
    testing: bool = setting(False, "Evaluate weights on the test set and draw figures; no training.")
    weights: str | None = setting(
        None,
        "A .keras model, a preset (a shipped name such as mnist_micro, or a run's preset/ folder) or a "
        ".weights.h5 file: evaluated with testing, else trained further (a model or preset in its own "
        "architecture; it must take the data's images and classes, unless transfer).",
    )
    transfer: bool = setting(
        False,
        "With weights (a .keras model or preset): keep its convolutions and primary capsules and train new "
        "class capsules and decoder for this data's classes and image size (e.g. letters from mnist_micro's "
        "digits); a grey model's first convolution is adapted to colour images, and a colour one's to grey.",
    )
    mixed_precision: str = setting(
        "auto",
        "Dtype policy. auto: mixed_float16 on GPU, mixed_bfloat16 on CPUs with bf16, else float32; a resumed "
        "or tested model keeps its own unless this machine would only emulate it.",
        POLICIES,
    )
    seed: int | None = setting(None, "Random seed for weights, shuffling, shifts, flips and rotations (unset: random).")
    steps_per_epoch: int | None = setting(None, "Batches per epoch (default: one pass over the training set).")
    resume: bool = setting(
        False,
        "Continue from the last completed epoch in save_dir (also automatic when save_dir holds checkpoints "
        "of an interrupted run).",
    )
    val_split: float = setting(
        0.0,
        "Share of the training set held out for validation and best-model selection, in [0, 1); 0 validates "
        "on the test set, as the PyTorch reference does.",
    )
    strategy: str = setting(
        "default",
        "tf.distribute strategy: default (one device), mirrored (all local GPUs), multi_worker "
        "(MultiWorkerMirroredStrategy, cluster from TF_CONFIG) or tpu. batch_size is global.",
        STRATEGIES,
    )
    tuner: str = setting("hyperband", "Search algorithm of a hyperparameter search.", TUNERS)
    max_trials: int = setting(10, "Most trials (models tried) of a hyperparameter search (>= 1).")
    verbose: int = setting(1, "0 silent, 1 progress bar, 2 one line per epoch.")
    figures: bool = setting(
        True, "PNG figures at the end: training curves, reconstructions, latent walk, confusion matrix."
    )

    def __post_init__(self):
        if self.recipe not in RECIPE_NAMES:
            raise ValueError(f"TrainConfig: `recipe` must be one of {', '.join(RECIPE_NAMES)}, got {self.recipe!r}.")
        # Not a field: which values came from the recipe (a recipe's warm-up shrinks for a short run).
        self.from_recipe = frozenset(n for n in recipes.RECIPES[self.recipe] if getattr(self, n) is None)
        for name in self.from_recipe:
            setattr(self, name, recipes.RECIPES[self.recipe][name])
        for name, low in (
            ("routings", 1),
            ("epochs", 1),
            ("batch_size", 1),
            ("warmup_steps", 0),
            ("shift_pixels", 0),
            ("max_trials", 1),
        ):
            _check_int(name, getattr(self, name), low)
        for name in ("seed", "steps_per_epoch"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1 if name == "steps_per_epoch" else None)
        check_choices(self)
        checks = (
            ("lr", lambda v: v > 0, "a positive number"),
            ("lr_decay", lambda v: 0 < v <= 1, "in (0, 1]"),
            ("lam_recon", lambda v: v >= 0, "a number >= 0"),
            ("ema_momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
            ("val_split", lambda v: 0 <= v < 1, "in [0, 1)"),
            ("test_split", lambda v: 0 < v < 1, "in (0, 1)"),
        )
        for name, ok, what in checks:
            value = getattr(self, name)
            if value is None and name == "test_split":
                continue
            number = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
            if not number or not ok(value):
                raise ValueError(f"TrainConfig: `{name}` must be {what}, got {value!r}.")
        try:  # its range is the augmentation's own
            check_rotation(self.rotation)
        except ValueError as error:
            raise ValueError(f"TrainConfig: {error}") from None
        if self.image_size is not None:
            self.image_size = tuple(self.image_size)
            if len(self.image_size) != 2 or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in self.image_size
            ):
                raise ValueError(
                    f"TrainConfig: `image_size` must be (height, width), two integers >= 1, got {self.image_size!r}."
                )
        if self.verbose not in (0, 1, 2):
            raise ValueError(f"TrainConfig: `verbose` must be 0, 1 or 2, got {self.verbose!r}.")
        if self.testing and not self.weights:
            raise ValueError("TrainConfig: `testing` needs `weights` (a .keras model saved by a run).")
        if self.transfer and (not self.weights or self.weights.endswith(".weights.h5")):
            raise ValueError(
                "TrainConfig: `transfer` needs `weights`, a .keras model or a preset (a .weights.h5 file "
                f"holds no network to take the stem from), got {self.weights!r}."
            )
        if self.transfer and self.testing:
            raise ValueError("TrainConfig: `transfer` trains new class capsules; it cannot go with `testing`.")

    def to_dict(self):
        return dataclasses.asdict(self)


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        bound = f" >= {low}" if low is not None else ""
        raise ValueError(f"TrainConfig: `{name}` must be an integer{bound}, got {value!r}.")
