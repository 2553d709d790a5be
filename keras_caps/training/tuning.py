"""Hyperparameter search for CapsNet with keras-tuner.

    from keras_caps.training.tuning import search
    tuner = search((x_train, y_train), (x_val, y_val), directory="runs/tune",
                   algorithm="bayesian", max_trials=20, epochs=5)
    best_model = tuner.get_best_models(1)[0]
    best_hp = tuner.get_best_hyperparameters(1)[0].values

The validation arrays score the trials; keep the test set out of the search.
Tuner state lives in `directory/project_name`, so calling `search` again with
the same arguments resumes an interrupted search.
"""

import math

import keras
import keras_tuner as kt

from keras_caps.data.datasets import make_dataset
from keras_caps.models.capsnet import CapsNet
from keras_caps.models.transfer import with_new_head
from keras_caps.training.config import TUNERS
from keras_caps.training.schedules import capped_warmup, learning_rate_schedule

ALGORITHMS = TUNERS


# The TrainConfig fields a search chooses itself (a run's value for them is refused).
SEARCHED = ("routings", "lr", "lr_decay", "lam_recon", "batch_size")


def define_search_space(hp, lr_schedule="exponential", stem=False):
    """Registers the searched hyperparameters on `hp` (a `kt.HyperParameters`).

    routings 1-3, Adam's (peak) learning rate 1e-4..3e-3 (log), with the
    exponential schedule its per-epoch decay 0.8..1.0, `lam_recon` 0.05..1.0
    (log), primary-capsule channels 8/16/32 (not with a kept `stem`, whose
    primary capsules are made) and batch size 32/64/100/128.
    Values fixed beforehand on `hp` (`hp.Fixed("routings", 3)`) are kept.
    """
    hp.Int("routings", 1, 3, default=3)
    hp.Float("lr", 1e-4, 3e-3, sampling="log", default=1e-3)
    if lr_schedule == "exponential":
        hp.Float("lr_decay", 0.8, 1.0, default=0.9)
    hp.Float("lam_recon", 0.05, 1.0, sampling="log", default=0.392)
    if not stem:
        hp.Choice("primary_channels", [8, 16, 32], default=32)
    hp.Choice("batch_size", [32, 64, 100, 128], default=100)
    return hp


class CapsNetHyperModel(kt.HyperModel):
    """Builds and trains one `CapsNet` per trial.

    Args:
        input_shape, classes: the data's image shape and class count.
        shift_pixels, flip, rotation: training shift, flip and rotation, as in `train.py`.
        seed: shuffling and augmentation seed.
        steps_per_epoch: batches per epoch (default: one pass).
        model_kwargs: other fixed `CapsNet` arguments (e.g. `conv_filters`).
        stem: None, or a trained `CapsNet` whose convolutions and primary capsules every
            trial keeps under new class capsules and decoder (`with_new_head`; a transfer),
            its primary channels then not searched; `model_kwargs` may not shape the stem.
        lr_schedule, warmup_steps: the run's schedule (a recipe's), the peak
            rate and the exponential decay searched; the warm-up takes at most
            a tenth of a trial.

    `fit(hp, model, train, validation_data)` takes `(images, labels)` arrays:
    each trial batches them with its own `batch_size`.
    """

    def __init__(
        self,
        input_shape=(28, 28, 1),
        classes=10,
        shift_pixels=2,
        seed=None,
        steps_per_epoch=None,
        model_kwargs=None,
        lr_schedule="exponential",
        warmup_steps=0,
        name="capsnet",
        tunable=True,
        flip="none",
        rotation=0,
        stem=None,
    ):
        super().__init__(name=name, tunable=tunable)
        self.stem = stem
        self.lr_schedule = lr_schedule
        self.warmup_steps = warmup_steps
        self.input_shape = tuple(input_shape)
        self.classes = classes
        self.shift_pixels = shift_pixels
        self.flip = flip
        self.rotation = rotation
        self.seed = seed
        self.steps_per_epoch = steps_per_epoch
        self.model_kwargs = dict(model_kwargs or {})

    def build(self, hp):
        define_search_space(hp, self.lr_schedule, stem=self.stem is not None)
        searched = {"routings": hp.get("routings"), "lam_recon": hp.get("lam_recon")}
        shape = {"input_shape": self.input_shape, "classes": self.classes}
        if self.stem is not None:
            model = with_new_head(self.stem, **shape, **searched, **self.model_kwargs)
        else:
            model = CapsNet(**shape, **searched, primary_channels=hp.get("primary_channels"), **self.model_kwargs)
        # The trial's schedule is made in fit(), where its batch size (hence steps per epoch) is known.
        model.compile(optimizer=keras.optimizers.Adam(hp.get("lr")))
        return model

    def fit(self, hp, model, train, validation_data=None, callbacks=None, epochs=1, **kwargs):
        batch_size = hp.get("batch_size")
        steps = self.steps_per_epoch or math.ceil(len(train[0]) / batch_size)
        train_ds = make_dataset(
            *train,
            batch_size,
            training=True,
            shift_pixels=self.shift_pixels,
            flip=self.flip,
            rotation=self.rotation,
            fill_value=model.background_value,
            seed=self.seed,
            repeat=self.steps_per_epoch is not None,
        )
        val_ds = make_dataset(*validation_data, batch_size, training=False) if validation_data else None
        total = epochs * steps
        decay = hp.get("lr_decay") if self.lr_schedule == "exponential" else 1.0
        model.optimizer.learning_rate = learning_rate_schedule(
            self.lr_schedule,
            hp.get("lr"),
            steps,
            total,
            decay=decay,
            warmup_steps=capped_warmup(self.warmup_steps, total),
        )
        return model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=epochs,
            steps_per_epoch=self.steps_per_epoch,
            callbacks=list(callbacks or []),
            shuffle=False,
            **kwargs,
        )


def make_tuner(
    hypermodel,
    directory,
    algorithm="hyperband",
    max_trials=10,
    epochs=10,
    project_name="tuner",
    seed=None,
    distribution_strategy=None,
    hyperparameters=None,
    overwrite=False,
    **kwargs,
):
    """A keras-tuner `Hyperband` or `BayesianOptimization` tuner maximising `val_accuracy`.

    `epochs` is each trial's training length (Hyperband: the most any trial
    gets); `max_trials` caps the number of trials for both algorithms. Other
    keyword arguments go to the tuner.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"Unknown tuning algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}.")
    if max_trials < 1:
        raise ValueError(f"max_trials must be >= 1, got {max_trials}.")
    common = dict(
        hypermodel=hypermodel,
        objective=kt.Objective("val_accuracy", "max"),
        seed=seed,
        hyperparameters=hyperparameters,
        directory=directory,
        project_name=project_name,
        distribution_strategy=distribution_strategy,
        overwrite=overwrite,
        **kwargs,
    )
    if algorithm == "bayesian":
        return kt.BayesianOptimization(max_trials=max_trials, **common)
    tuner = kt.Hyperband(max_epochs=max(epochs, 2), factor=3, **common)
    # Hyperband sizes its brackets from max_epochs; the oracle's max_trials
    # (honoured by every keras-tuner oracle) caps the total.
    tuner.oracle.max_trials = max_trials
    return tuner


def search(
    train,
    validation,
    directory,
    algorithm="hyperband",
    max_trials=10,
    epochs=10,
    input_shape=None,
    classes=None,
    shift_pixels=2,
    seed=None,
    steps_per_epoch=None,
    model_kwargs=None,
    verbose=1,
    lr_schedule="exponential",
    warmup_steps=0,
    class_weight=None,
    flip="none",
    rotation=0,
    stem=None,
    **tuner_kwargs,
):
    """Runs (or resumes) a search and returns the tuner.

    Args:
        train, validation: `(images, labels)` arrays; images uint8 or floats in
            [0, 1], labels integer class ids. `validation` scores the trials.
        directory: where the tuner keeps its state (a `tuner/` folder).
        algorithm: `hyperband` or `bayesian`.
        max_trials, epochs: see `make_tuner`.
        input_shape, classes: default to the training data's.
        class_weight: `{class id: weight}` for every trial's `fit` (None: unweighted).
        shift_pixels, flip, rotation: every trial's training augmentation (`CapsNetHyperModel`).
        stem: a trained `CapsNet` whose stem every trial keeps (`CapsNetHyperModel`).
    """
    images, labels = train
    hypermodel = CapsNetHyperModel(
        input_shape=input_shape or images.shape[1:],
        classes=classes or int(labels.max()) + 1,
        shift_pixels=shift_pixels,
        flip=flip,
        rotation=rotation,
        stem=stem,
        seed=seed,
        steps_per_epoch=steps_per_epoch,
        model_kwargs=model_kwargs,
        lr_schedule=lr_schedule,
        warmup_steps=warmup_steps,
    )
    tuner = make_tuner(
        hypermodel, directory, algorithm=algorithm, max_trials=max_trials, epochs=epochs, seed=seed, **tuner_kwargs
    )
    tuner.search(train, validation_data=validation, epochs=epochs, verbose=verbose, class_weight=class_weight)
    return tuner
