"""One training run, or one hyperparameter search, from a `TrainConfig`.

    from keras_caps.training import TrainConfig, run
    metrics = run(TrainConfig(data_dir="../shared/data/mnist", epochs=1, seed=0))

A run leaves in `save_dir`: best.keras (by validation accuracy), final.keras,
checkpoints/epoch-NNNN.keras (with optimizer state and its learning-rate
schedule, for resuming), log.csv, history.json, tensorboard/ (TensorFlow
backend), metrics.json (with each class's test accuracy and the confusion
matrix), mistakes.csv (the test images it got wrong, the most confident first),
PNG figures and preset/ (the final model with its metadata, for
`CapsNet.from_preset`). A run whose `save_dir` holds an interrupted run's
checkpoints continues it. The model it trains comes from `run_model` (new, fine-tuned,
transferred, resumed or tested), what it reports at its end from `results`.
"""

import dataclasses
import json
import math
import os
import shutil
import time
import warnings

import keras
import numpy as np

from keras_caps.data.datasets import TfdsSplit, load_data, split_labels, split_size, to_arrays
from keras_caps.data.pipeline import input_pipeline
from keras_caps.machine import describe_machine, machine_label, peak_rss_mib
from keras_caps.models.capsnet import ARCHITECTURES, architecture_of
from keras_caps.training import averaging, checkpoints, class_weights, schedules
from keras_caps.training.config import TrainConfig
from keras_caps.training.distribution import StrategyError, is_chief, make_strategy, worker_dir
from keras_caps.training.errors import TrainingError
from keras_caps.training.precision import resolve_policy
from keras_caps.training.results import (
    class_results,
    count,
    plot_confusion,
    plot_figures,
    preset_metadata,
    print_weakest,
    printed_names,
)
from keras_caps.training.run_model import (
    build_or_resume,
    check_fits,
    load_model,
    model_options,
    print_invert,
    resolve_architecture,
    resolve_invert,
    transfer,
)


def split_validation(train, fraction, seed):
    """`(train, validation)`: a random `fraction` of the `(images, labels)` arrays held out."""
    x, y = train
    if len(x) < 2:
        raise TrainingError(f"`val_split` needs at least 2 training images, got {len(x)}.")
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = min(len(x) - 1, max(1, int(round(len(x) * fraction))))
    val, keep = order[:n_val], order[n_val:]
    return (x[keep], y[keep]), (x[val], y[val])


def batches(split, config, training, seed=None, first_epoch=0, fill_value=0.0):
    """The input of a run from one of its splits, with the config's batch size, shifts, flips, turns
    and steps; `fill_value` what shifts and turns bring in (the model's `background_value`)."""
    return input_pipeline(
        split,
        config.batch_size,
        training=training,
        shift_pixels=config.shift_pixels,
        flip=config.flip,
        rotation=config.rotation,
        fill_value=fill_value,
        seed=seed,
        first_epoch=first_epoch,
        steps_per_epoch=config.steps_per_epoch,
    )


class EpochSeconds(keras.callbacks.Callback):
    """Puts each epoch's wall-clock seconds into its logs: `train_seconds` (its
    training steps) and `seconds` (with its validation)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._trained = None

    def on_test_begin(self, logs=None):
        # fit validates through evaluate, with these callbacks, after the epoch's steps.
        if self._trained is None:
            self._trained = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            end = time.perf_counter()
            logs["train_seconds"] = round((self._trained or end) - self._start, 2)
            logs["seconds"] = round(end - self._start, 2)


def _class_weight(config, train, info):
    """`fit`'s `class_weight` for `config.class_weight` (None: unweighted), after a line on the
    classes' balance: their weights' range, or a note when unweighted classes are unequal."""
    if config.class_weight == "none" and isinstance(train, TfdsSplit):
        return None  # its labels would cost a pass over its files, for a note only
    names = printed_names(info.class_names, info.classes)
    counts = class_weights.class_counts(split_labels(train), info.classes)
    if config.class_weight == "none":
        note = class_weights.unequal_note(counts, names)
        if note:
            print(note)
        return None
    weights = class_weights.balanced_weights(counts)
    print(f"Class weights ({config.class_weight}): {class_weights.describe_weights(weights, counts, names)}.")
    return weights


def _prepare(config):
    """Checks the save folder, makes the strategy, seeds, sets the policy and loads the data."""
    checkpoints.check_writable(config.save_dir)
    checkpoints.remove_temporaries(config.save_dir)
    if config.weights:  # a mistyped model is named before the data are read (a folder's can take minutes)
        load_model(config.weights, check_only=True)
    # Made first: a multi-worker strategy must exist before other TensorFlow work.
    try:
        strategy = make_strategy(config.strategy)
    except StrategyError as error:
        raise TrainingError(str(error)) from None
    seed = config.seed
    if seed is None and config.strategy == "multi_worker":
        seed = 0  # every worker must shuffle alike for the data shards to partition the set
        print("Strategy multi_worker without a seed: using seed 0 on every worker.")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    policy = resolve_policy(config.mixed_precision)
    keras.mixed_precision.set_global_policy(policy)
    data = load_data(
        config.dataset,
        config.data_dir,
        image_size=config.image_size,
        color_mode=config.color_mode,
        val_split=config.val_split,
        test_split=config.test_split,
        cache=config.cache,
    )
    return strategy, seed, policy, data


def settings_for_run(config, steps):
    """`config` as a run of `steps` batches an epoch uses it, and records it in metrics.json.

    A recipe's warm-up and average take at most a tenth of a short run (the
    average's window is `1 / (1 - momentum)` steps): a one-epoch run of the
    20-epoch recipe would otherwise keep an average still half made of its
    first, untrained steps' weights (52.9% test accuracy against 99.07% for
    the trained weights, on MNIST). 20 epochs of 54,000 or 60,000 images keep
    the recipe's 600 steps and 0.999; values given explicitly are kept as they are.
    """
    total = config.epochs * steps
    changes = {}
    if "warmup_steps" in config.from_recipe:
        changes["warmup_steps"] = schedules.capped_warmup(config.warmup_steps, total)
    momentum = config.ema_momentum
    if momentum and "ema_momentum" in config.from_recipe and total * (1 - momentum) < schedules.SHORT_RUN_SHARE:
        changes["ema_momentum"] = max(0.0, 1 - schedules.SHORT_RUN_SHARE / total)
    return dataclasses.replace(config, **changes) if changes else config


def run(config, command=None):
    """Trains (or, with `config.testing`, evaluates) one CapsNet; returns its metrics.

    Args:
        config: a `TrainConfig`.
        command: how the run was started, for its preset's metadata (train.py
            gives its command line; None: this call, with the config).

    Returns:
        The dict written to `metrics.json` (`test_metrics.json` when testing):
        test accuracy, error and losses, each class's accuracy (`per_class`)
        and the confusion matrix, the last epoch's accuracy on held-out
        validation images (`validation_accuracy`; None when the test set
        validated), epochs, seconds, policy, backend, whether the model inverts its images
        (`invert_input`, what `auto` chose), the figures' paths and
        the configuration.

    Raises:
        TrainingError: a run that cannot start or go on (diverged loss, a
            model that does not fit the data, ...).
        keras_caps.data.idx.DataError: unreadable or invalid data.
        OSError: a `save_dir` that cannot be written.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"run() takes a TrainConfig, got {type(config).__name__}.")
    strategy, seed, policy, data = _prepare(config)
    train, val, test, info = data.train, data.val, data.test, data.info
    validate_on_test = val is None and not config.val_split
    if val is None:
        train, val = split_validation(train, config.val_split, seed) if config.val_split else (train, test)
    save_dir = config.save_dir
    # Every worker runs the same calls (saving can need them all); only the
    # chief writes into save_dir, the others into a scratch folder deleted at the end.
    out_dir = worker_dir(save_dir, strategy)
    steps = config.steps_per_epoch or math.ceil(split_size(train) / config.batch_size)
    config = settings_for_run(config, steps)
    done, checkpoint = checkpoints.latest_checkpoint(save_dir)
    history = []
    if done and checkpoint and not config.testing:
        history_path = os.path.join(save_dir, "history.json")
        if os.path.isfile(history_path):
            with open(history_path) as fh:
                history = [row for row in json.load(fh) if row["epoch"] <= done]
    with strategy.scope():
        model = build_or_resume(config, info, steps, done, checkpoint, train)
    # A resumed or tested model keeps the policy it was saved with where this machine runs it
    # (CapsNet's config carries it to every layer), whatever `auto` would pick for a new one.
    policy = model.dtype_policy.name
    check_fits(model, info, "The model")

    start = time.time()
    epochs_run = 0
    class_weight = None
    if not config.testing:
        if done >= config.epochs:
            print(f"{save_dir} already holds {done} of {config.epochs} epochs; nothing to train.")
        train_data = batches(
            train, config, training=True, seed=seed, first_epoch=done, fill_value=model.background_value
        )
        val_data = batches(val, config, training=False)
        nan_stop = checkpoints.StopOnNaN()
        run_checkpoint = checkpoints.RunCheckpoint(
            out_dir, history, facts={"policy": policy, "machine": machine_label()}
        )
        # AveragedValidation first: it renames the val_ scores the others read.
        callbacks = [
            averaging.AveragedValidation(val_data),
            schedules.LogLearningRate(),
            EpochSeconds(),
            nan_stop,
            run_checkpoint,
        ]
        if keras.backend.backend() == "tensorflow":
            callbacks.append(keras.callbacks.TensorBoard(os.path.join(out_dir, "tensorboard"), write_graph=False))
        class_weight = _class_weight(config, train, info)
        replicas = strategy.num_replicas_in_sync
        momentum = averaging.average_momentum(model)
        print(
            f"Training CapsNet on {info.name} ({info.source}): {split_size(train)} images, "
            f"{steps} steps/epoch, epochs {done + 1}..{config.epochs}, policy {policy}, "
            f"{f'moving average of the weights (momentum {momentum:.4g}), ' if momentum else ''}"
            f"{f'{replicas} replicas ({config.strategy}), ' if replicas > 1 else ''}"
            f"validation on {'the test set' if validate_on_test else 'held-out training images'}."
        )
        if done < config.epochs:
            result = model.fit(
                train_data,
                epochs=config.epochs,
                initial_epoch=done,
                steps_per_epoch=steps,
                validation_data=val_data,
                callbacks=callbacks,
                verbose=config.verbose,
                shuffle=False,
                class_weight=class_weight,
            )  # the input shuffles itself
            epochs_run = len(result.epoch)
        history = run_checkpoint.history
        if averaging.uses_average(model):  # fit ends with the average in the model; a run with no epoch left too
            averaging.write_average(model)
        if nan_stop.bad_batch is not None:
            raise TrainingError(
                f"The loss became NaN or infinite at batch {nan_stop.bad_batch} of epoch "
                f"{len(history) + 1}; training stopped. The last good checkpoint "
                f"({checkpoints.latest_checkpoint(save_dir)[1]}) is intact. Try a smaller `lr`."
            )
        checkpoints.save_model_atomic(model, os.path.join(out_dir, "final.keras"))
    train_seconds = time.time() - start

    test_data = batches(test, config, training=False)
    if validate_on_test and epochs_run:
        # The last epoch's validation already scored these weights on the test set.
        results = {k[4:]: v for k, v in history[-1].items() if k.startswith("val_")}
    else:
        results = model.evaluate(test_data, verbose=0, return_dict=True)
    mistakes_file = "test_mistakes.csv" if config.testing else "mistakes.csv"
    names, matrix, classes = class_results(model, test_data, data, os.path.join(out_dir, mistakes_file))
    held_out = bool(history) and not validate_on_test
    figure_paths = plot_figures(model, history, test, out_dir, matrix, names) if config.figures else {}
    metrics = {
        "test_accuracy": results["accuracy"],
        "test_error": 1.0 - results["accuracy"],
        "test_loss": results["loss"],
        "test_margin_loss": results["margin_loss"],
        "test_reconstruction_loss": results["reconstruction_loss"],
        "epochs": len(history) if not config.testing else None,
        "epochs_this_run": epochs_run,
        "train_images": split_size(train),
        # Held-out validation (None: the test set validated, or none ran): the figure to choose settings by.
        "validation_images": split_size(val) if held_out else None,
        "validation_accuracy": history[-1]["val_accuracy"] if held_out else None,
        "steps_per_epoch": steps,
        "train_seconds_this_run": round(train_seconds, 1),
        "policy": policy,
        "ema_momentum": averaging.average_momentum(model),
        "backend": keras.backend.backend(),
        "machine": describe_machine(),
        "peak_rss_mib": peak_rss_mib(),
        "replicas": strategy.num_replicas_in_sync,
        "data_source": info.source,
        "architecture": architecture_of(model),
        "invert_input": model.invert_input,  # what `auto` chose (the config says "auto")
        "data_in_memory": info.cached,
        "image_shape": list(info.image_shape),
        "class_names": model.class_names or info.class_names,
        "class_weights": None if class_weight is None else [class_weight[i] for i in range(len(class_weight))],
        "per_class": classes,
        "confusion_matrix": matrix.tolist(),  # rows: true class, columns: predicted
        "mistakes": os.path.join(save_dir, mistakes_file),
        "figures": figure_paths,
        "config": config.to_dict(),
    }
    if not config.testing:  # the final model as a preset: `CapsNet.from_preset(save_dir/preset)`
        metrics["preset"] = os.path.join(save_dir, "preset")
        command = command or f"keras_caps.training.run({config!r})"
        model.save_to_preset(
            os.path.join(out_dir, "preset"), preset_metadata(metrics, info.name, info.test_size, command)
        )
    name = "test_metrics.json" if config.testing else "metrics.json"
    checkpoints.atomic_write_json(os.path.join(out_dir, name), metrics)
    if not is_chief(strategy):
        shutil.rmtree(out_dir, ignore_errors=True)
        return metrics
    acc = results["accuracy"]
    print(
        f"Test accuracy {100 * acc:.2f}% (error {100 * (1 - acc):.2f}%) on {info.test_size} "
        f"{info.name} images; {count(metrics['epochs'] or 0, 'epoch')}, {train_seconds:.0f} s this run; "
        f"results in {save_dir}/"
    )
    print_weakest(classes, metrics["mistakes"])
    return metrics


def _check_search_settings(config):
    """A search chooses some settings itself and has no use for others: given, they are an error."""
    from keras_caps.training.tuning import SEARCHED  # keras-tuner loads only for a search

    defaults = TrainConfig()
    searched = [
        name
        for name in SEARCHED
        if name not in config.from_recipe and getattr(config, name) != getattr(defaults, name, None)
    ]
    if searched:
        raise TrainingError(
            f"{', '.join(f'`{n}`' for n in searched)} {'is' if len(searched) == 1 else 'are'} searched by `tune`: "
            "leave it unset (the search space is keras_caps.training.tuning.define_search_space)."
        )
    unused = ["resume"] if config.resume else []
    if config.weights and not config.transfer:
        unused.append("weights")
    if "ema_momentum" not in config.from_recipe and config.ema_momentum:
        unused.append("ema_momentum")
    if unused:
        raise TrainingError(
            f"{', '.join(f'`{n}`' for n in unused)}: not used by `tune` (its trials start afresh, or from "
            "a model's stem with `transfer`, without a moving average); leave unset."
        )


def tune(config):
    """A keras-tuner search (`config.tuner`, at most `config.max_trials` trials of
    `config.epochs` epochs) on a validation split of the training set
    (`config.val_split`, 0.1 if 0); the best model is saved to `save_dir`/best.keras
    and evaluated once on the test set, overall and per class (`per_class`,
    `confusion_matrix` and, with `config.figures`, confusion_matrix.png, as a
    run's). Returns the summary written to tuning.json."""
    from keras_caps.training.tuning import search  # keras-tuner loads only for a search

    if config.strategy in ("multi_worker", "tpu"):
        raise TrainingError(
            "A search runs on one machine: use strategy default or mirrored "
            "(keras-tuner distributes trials itself, see its KERASTUNER_* variables)."
        )
    if config.testing:
        raise TrainingError("`tune` and `testing` exclude each other.")
    _check_search_settings(config)
    strategy, seed, _, data = _prepare(config)
    # keras-tuner's trials take arrays: a set read from its files is decoded here.
    train, val, test = (None if s is None else to_arrays(s) for s in (data.train, data.val, data.test))
    info = data.info
    save_dir = config.save_dir
    if val is None:
        train, val = split_validation(train, config.val_split or 0.1, seed)
    class_weight = _class_weight(config, train, info)
    invert, invert_why = resolve_invert(config, train, info)
    print_invert(config, invert, invert_why)
    model_kwargs = {**model_options(config), "class_names": info.class_names or None, "invert_input": invert}
    stem = None
    if config.transfer:  # every trial keeps this model's stem; made once here to check it serves
        stem = load_model(config.weights)
        transfer(stem, config, info, model_kwargs)
        architecture, why = architecture_of(stem) or "its own", f"the stem of {config.weights}"
    else:
        architecture, why = resolve_architecture(config, info)
        model_kwargs.update(ARCHITECTURES[architecture])
    print(
        f"Tuning CapsNet ({architecture}: {why}) on {info.name} ({info.source}) with {config.tuner}: "
        f"at most {config.max_trials} "
        f"trials of {config.epochs} epochs ({config.lr_schedule} schedule of recipe {config.recipe}, "
        f"no moving average), {len(train[0])} training and {len(val[0])} validation images."
    )
    start = time.time()
    tuner = search(
        train,
        val,
        save_dir,
        algorithm=config.tuner,
        max_trials=config.max_trials,
        epochs=config.epochs,
        input_shape=info.image_shape,
        classes=info.classes,
        shift_pixels=config.shift_pixels,
        flip=config.flip,
        rotation=config.rotation,
        seed=seed,
        model_kwargs=model_kwargs,
        stem=stem,
        lr_schedule=config.lr_schedule,
        warmup_steps=config.warmup_steps,
        steps_per_epoch=config.steps_per_epoch,
        verbose=config.verbose,
        distribution_strategy=strategy if config.strategy != "default" else None,
        class_weight=class_weight,
    )
    best = tuner.get_best_hyperparameters(1)
    if not best:
        raise TrainingError(f"No trial of the search in {save_dir}/tuner completed; see the trial errors above.")
    hp = {k: v for k, v in best[0].values.items() if not k.startswith("tuner/")}
    with warnings.catch_warnings():  # the trial checkpoints hold no optimizer state worth restoring
        warnings.simplefilter("ignore", UserWarning)
        model = tuner.get_best_models(1)[0]
    model.optimizer.build(model.trainable_variables)  # a loadable .keras with a whole optimizer
    checkpoints.atomic_write_json(os.path.join(save_dir, "best_hyperparameters.json"), hp)
    checkpoints.save_model_atomic(model, os.path.join(save_dir, "best.keras"))
    test_data = batches(test, config, training=False)
    results = model.evaluate(test_data, verbose=0, return_dict=True)
    mistakes_path = os.path.join(save_dir, "mistakes.csv")
    names, matrix, classes = class_results(model, test_data, data, mistakes_path)
    figure_paths = {"confusion": plot_confusion(matrix, names, save_dir)} if config.figures else {}
    trials = tuner.oracle.trials.values()
    summary = {
        "best_hyperparameters": hp,
        "best_val_accuracy": tuner.oracle.get_best_trials(1)[0].score,
        "test_accuracy": results["accuracy"],
        "test_error": 1.0 - results["accuracy"],
        "train_images": len(train[0]),
        "validation_images": len(val[0]),
        "trials": len(trials),
        "trials_completed": sum(t.status == "COMPLETED" for t in trials),
        "tuner": config.tuner,
        "stem": config.weights if config.transfer else None,
        "seconds_this_run": round(time.time() - start, 1),
        "per_class": classes,
        "confusion_matrix": matrix.tolist(),  # rows: true class, columns: predicted
        "mistakes": mistakes_path,
        "figures": figure_paths,
    }
    checkpoints.atomic_write_json(os.path.join(save_dir, "tuning.json"), summary)
    print(
        "Best hyperparameters: "
        + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in hp.items())
    )
    print(
        f"Best model: validation accuracy {100 * summary['best_val_accuracy']:.2f}%, test accuracy "
        f"{100 * results['accuracy']:.2f}% ({summary['trials_completed']} trials); "
        f"results in {save_dir}/best.keras, best_hyperparameters.json, tuning.json"
    )
    print_weakest(classes, mistakes_path)
    return summary
