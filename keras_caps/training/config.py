"""The settings of one training run (or one search), validated."""

import dataclasses
import math

from keras_caps.data.datasets import CACHE_MODES
from keras_caps.data.folders import COLOR_MODES
from keras_caps.losses import LOSS_FORMS
from keras_caps.models.capsnet import ARCHITECTURES
from keras_caps.training import distribution, precision, recipes, schedules

# The choices of the fields that name things, from the modules that own them.
SCHEDULE_NAMES = schedules.SCHEDULES
POLICIES = ("auto",) + precision.POLICIES
STRATEGIES = distribution.STRATEGIES
TUNERS = ("hyperband", "bayesian")  # keras_caps.training.tuning's algorithms (it imports keras-tuner)
RECIPE_NAMES = tuple(recipes.RECIPES)


@dataclasses.dataclass
class TrainConfig:
    """Everything a run of `keras_caps.training.run` (and `tune`) needs.

    The schedule fields (`epochs`, `lr`, `lr_decay`, `lr_schedule`,
    `warmup_steps`, `ema_momentum`) left `None` take the values of `recipe`
    (`keras_caps.training.recipes.RECIPES`); one given explicitly wins. Invalid
    values raise `ValueError` naming the field when the config is made.

    Attributes:
        recipe: `"fast"` (the default: the recipe chosen for 20 epochs),
            `"reference"` (the PyTorch and Keras ports': 50 epochs of Adam
            1e-3, x0.9 per epoch) or `"micro"` (for `architecture="micro"`).
        architecture: `"auto"` (the default: chosen from the data's images,
            `keras_caps.models.capsnet.choose_architecture`: `paper` for grey
            images, `paper_norm` for colour ones, `micro` for images too large
            for those) or a name of `keras_caps.ARCHITECTURES`.
        routings: routing iterations of the digit capsules (>= 1).
        epochs: epochs to train (>= 1); with `tune`, each trial's most.
        batch_size: global batch size (>= 1).
        lr: peak Adam learning rate (> 0).
        lr_decay: per-epoch factor of the exponential schedule, in (0, 1].
        lr_schedule: `"exponential"` (`lr * lr_decay**epoch`) or `"cosine"`
            (per step, to 0 at the run's last step).
        warmup_steps: linear warm-up over the first optimizer steps (>= 0).
        ema_momentum: momentum of a moving average of the weights (Polyak
            averaging; Keras's `use_ema`) that is validated every epoch and
            kept as the run's model, in [0, 1); 0: none.
        ema_warmup: the average's momentum rises as `min(ema_momentum,
            (1 + t) / (10 + t))` over the steps t (`keras_caps.EMAWarmupAdam`),
            so that it follows the trained weights from the first epoch on.
        lam_recon: weight of the mean squared reconstruction error (>= 0).
        loss_form: `"ports"` or `"authors"`: the margin loss's form
            (`CapsNet`'s `loss_form`; the authors' weighs reconstruction 20x).
        capsule_bias: a bias in the digit capsules, as the authors' code has.
        shift_pixels: random shift of training images, in pixels (>= 0).
        dataset: a TFDS image classification data set name (with
            `data_dir` of IDX files: which set they hold, for class names).
        data_dir: folder of four MNIST-format IDX files, or of images with
            one sub-folder per class (`keras_caps.data.folders`), instead of TFDS.
        image_size: `(height, width)` an image folder's images are resized
            to (None: their own size, when all share it).
        color_mode: an image folder's `"grayscale"` or `"rgb"` (None: as the
            files are).
        test_split: share of a single image tree held out, stratified, as
            its test set (None: 0.2).
        cache: `"auto"`, `"memory"` or `"none"`: whether an image folder's
            decoded images are held in memory (auto: when they fit).
        save_dir: folder for models, logs, checkpoints and figures.
        testing: evaluate `weights` on the test set instead of training.
        weights: a `.keras` file, a preset (shipped name or folder) or a
            `.weights.h5` file to evaluate or to train further. A model or
            preset is fine-tuned in its own architecture; it must take the
            data's images and classes.
        mixed_precision: `"auto"` or a Keras dtype policy name.
        seed: seed of weights, shuffling and shifts (None: random).
        steps_per_epoch: batches per epoch (None: one pass over the data).
        resume: continue the run in `save_dir` (also automatic when it holds
            an interrupted run's checkpoints).
        val_split: share of the training images held out for validation and
            model selection, in [0, 1); 0 validates on the test set.
        strategy: `"default"`, `"mirrored"`, `"multi_worker"` or `"tpu"`.
        tuner: `"hyperband"` or `"bayesian"` (for `tune`).
        max_trials: most trials of a search (>= 1).
        verbose: Keras verbosity (0 silent, 1 progress bar, 2 a line per epoch).
        figures: draw the PNG figures at the end (needs matplotlib).
    """

    recipe: str = "fast"
    architecture: str = "auto"
    routings: int = 3
    epochs: int | None = None
    batch_size: int = 100
    lr: float | None = None
    lr_decay: float | None = None
    lr_schedule: str | None = None
    warmup_steps: int | None = None
    ema_momentum: float | None = None
    ema_warmup: bool = True
    lam_recon: float = 0.392
    loss_form: str = "ports"
    capsule_bias: bool = False
    shift_pixels: int = 2
    dataset: str = "mnist"
    data_dir: str | None = None
    image_size: tuple | None = None
    color_mode: str | None = None
    test_split: float | None = None
    cache: str = "auto"
    save_dir: str = "runs/capsnet"
    testing: bool = False
    weights: str | None = None
    mixed_precision: str = "auto"
    seed: int | None = None
    steps_per_epoch: int | None = None
    resume: bool = False
    val_split: float = 0.0
    strategy: str = "default"
    tuner: str = "hyperband"
    max_trials: int = 10
    verbose: int = 1
    figures: bool = True

    def __post_init__(self):
        # Here, not at the top: keras_caps.models imports this package.

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
        for name, choices in (
            ("architecture", ("auto",) + tuple(ARCHITECTURES)),
            ("lr_schedule", SCHEDULE_NAMES),
            ("mixed_precision", POLICIES),
            ("strategy", STRATEGIES),
            ("tuner", TUNERS),
            ("cache", CACHE_MODES),
            ("loss_form", tuple(LOSS_FORMS)),
            ("color_mode", (None,) + COLOR_MODES),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"TrainConfig: `{name}` must be one of {', '.join(map(str, choices))}, got {getattr(self, name)!r}."
                )
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

    def to_dict(self):
        return dataclasses.asdict(self)


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        bound = f" >= {low}" if low is not None else ""
        raise ValueError(f"TrainConfig: `{name}` must be an integer{bound}, got {value!r}.")
