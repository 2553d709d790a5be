"""Train CapsNet (Sabour et al. 2017) on MNIST and friends.

    python train.py --routings 3                       # TFDS mnist (downloads when online)
    python train.py --data_dir ../shared/data/mnist    # the four local IDX files
    python train.py --testing --weights runs/capsnet/best.keras --data_dir DIR

A run leaves in --save_dir: best.keras (by validation accuracy), final.keras,
checkpoints/epoch-NNNN.keras (with optimizer state, for --resume), log.csv,
history.json, tensorboard/, metrics.json and PNG figures.
"""

import json
import math
import os
import time

# TensorFlow's start-up INFO lines (oneDNN, CUDA stubs) say nothing a user needs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_enum("architecture", "paper", ["paper", "micro"],
                  "paper: the paper's CapsNet (8.2M weights). micro: 0.26M weights before the decoder (three "
                  "convolutions with batch normalization, 128 primary capsules), whose int8 file fits a "
                  "microcontroller; train it with --lr_schedule cosine --lr 0.002 --warmup_steps 100 "
                  "--epochs 15 (keras_caps.ARCHITECTURES, BENCHMARKS.md).")
flags.DEFINE_integer("routings", 3, "Routing iterations of the digit capsules (>= 1).")
flags.DEFINE_integer("epochs", 50, "Epochs to train (>= 1).")
flags.DEFINE_integer("batch_size", 100, "Batch size (>= 1).")
flags.DEFINE_float("lr", 0.001, "Initial Adam learning rate (> 0).")
flags.DEFINE_float("lr_decay", 0.9, "Learning rate multiplier per epoch: lr * lr_decay**epoch (0 < d <= 1).")
flags.DEFINE_enum("lr_schedule", "exponential", ["exponential", "cosine"],
                  "exponential: --lr * --lr_decay**epoch (the reference's). cosine: from --lr down to 0 at the "
                  "run's last step, a cosine per step (--lr_decay unused).")
flags.DEFINE_integer("warmup_steps", 0, "Linear learning-rate warm-up over the first N optimizer steps of a "
                     "run, before either schedule (0: none).")
flags.DEFINE_float("lam_recon", 0.392, "Weight of the mean squared reconstruction error (0.0005 * 784).")
flags.DEFINE_integer("shift_pixels", 2, "Random shift of training images, up to this many pixels (0 = none).")
flags.DEFINE_string("dataset", "mnist", "TFDS image classification data set (mnist, fashion_mnist, cifar10, ...).")
flags.DEFINE_string("data_dir", None, "Folder with the four MNIST-format IDX files (.gz or raw); TFDS if unset.")
flags.DEFINE_string("save_dir", "runs/capsnet", "Folder for models, logs, checkpoints and figures.")
flags.DEFINE_bool("testing", False, "Evaluate --weights on the test set and draw figures; no training.")
flags.DEFINE_string("weights", None, "A .keras model or .weights.h5 file: evaluated with --testing, else trained further.")
flags.DEFINE_enum("mixed_precision", "auto", ["auto", "float32", "mixed_float16", "mixed_bfloat16"],
                  "Dtype policy. auto: mixed_float16 on GPU, mixed_bfloat16 on CPUs with bf16, else float32.")
flags.DEFINE_integer("seed", None, "Random seed for weights, shuffling and shifts (unset: random).")
flags.DEFINE_integer("steps_per_epoch", None, "Batches per epoch (default: one pass over the training set).")
flags.DEFINE_bool("resume", False, "Continue from the last completed epoch in --save_dir (also automatic when "
                  "--save_dir holds checkpoints of an interrupted run).")
flags.DEFINE_float("val_split", 0.0, "Share of the training set held out for validation and best-model "
                   "selection; 0 validates on the test set, as the PyTorch reference does.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker", "tpu"],
                  "tf.distribute strategy: default (one device), mirrored (all local GPUs), multi_worker "
                  "(MultiWorkerMirroredStrategy, cluster from TF_CONFIG) or tpu. --batch_size is global.")
flags.DEFINE_bool("tune", False, "Hyperparameter search with keras-tuner instead of one run: routings, lr, "
                  "lr_decay, lam_recon, primary channels, batch size; --epochs per trial; scored on a "
                  "validation split of the training set (--val_split, 0.1 if unset).")
flags.DEFINE_enum("tuner", "hyperband", ["hyperband", "bayesian"], "Search algorithm for --tune.")
flags.DEFINE_integer("max_trials", 10, "Most trials (models tried) for --tune.")
flags.DEFINE_integer("verbose", 1, "Keras verbosity: 0 silent, 1 progress bar, 2 one line per epoch.")

flags.register_validator("routings", lambda v: v >= 1, "--routings must be >= 1.")
flags.register_validator("epochs", lambda v: v >= 1, "--epochs must be >= 1.")
flags.register_validator("batch_size", lambda v: v >= 1, "--batch_size must be >= 1.")
flags.register_validator("lr", lambda v: v > 0 and math.isfinite(v), "--lr must be a positive number.")
flags.register_validator("lr_decay", lambda v: 0 < v <= 1, "--lr_decay must lie in (0, 1].")
flags.register_validator("warmup_steps", lambda v: v >= 0, "--warmup_steps must be >= 0.")
flags.register_validator("lam_recon", lambda v: v >= 0 and math.isfinite(v), "--lam_recon must be >= 0.")
flags.register_validator("shift_pixels", lambda v: v >= 0, "--shift_pixels must be >= 0.")
flags.register_validator("steps_per_epoch", lambda v: v is None or v >= 1, "--steps_per_epoch must be >= 1.")
flags.register_validator("max_trials", lambda v: v >= 1, "--max_trials must be >= 1.")
flags.register_validator("val_split", lambda v: 0 <= v < 1, "--val_split must lie in [0, 1).")


class TrainingError(RuntimeError):
    """A run that cannot go on; the message says why."""


def _split_validation(train, fraction, seed):
    import numpy as np

    x, y = train
    order = np.random.default_rng(seed).permutation(len(x))
    if len(x) < 2:
        raise TrainingError(f"--val_split needs at least 2 training images, got {len(x)}.")
    n_val = min(len(x) - 1, max(1, int(round(len(x) * fraction))))
    val, keep = order[:n_val], order[n_val:]
    return (x[keep], y[keep]), (x[val], y[val])


def _load_model(path):
    from keras_caps.model_files import ModelFileError, load_capsnet

    try:
        return load_capsnet(path)
    except ModelFileError as error:
        raise TrainingError(f"--weights {error}") from None


def _figures(model, history, test_images, save_dir):
    from keras_caps import figures

    x_test = test_images[:50].astype("float32") / 255.0
    paths = {}
    if history:
        paths["curves"] = os.path.join(save_dir, "training_curves.png")
        figures.plot_history(history, paths["curves"])
    paths["reconstructions"] = os.path.join(save_dir, "reconstructions.png")
    figures.plot_reconstructions(model, x_test, paths["reconstructions"])
    paths["manipulate_latent"] = os.path.join(save_dir, "manipulate_latent.png")
    figures.plot_manipulated_latent(model, x_test[0], paths["manipulate_latent"])
    return paths


def _tune(f, train, test, info, strategy, save_dir):
    """--tune: a keras-tuner search on a validation split; the best model is
    kept, saved and evaluated once on the test set."""
    import warnings

    from keras_caps import checkpoints
    from keras_caps.data import make_dataset
    from keras_caps.tuning import search

    if f.strategy in ("multi_worker", "tpu"):
        raise TrainingError("--tune runs on one machine: use --strategy default or mirrored "
                            "(keras-tuner distributes trials itself, see its KERASTUNER_* variables).")
    train, val = _split_validation(train, f.val_split or 0.1, f.seed)
    print(f"Tuning CapsNet on {info.name} ({info.source}) with {f.tuner}: at most {f.max_trials} trials "
          f"of {f.epochs} epochs, {len(train[0])} training and {len(val[0])} validation images.")
    start = time.time()
    tuner = search(train, val, save_dir, algorithm=f.tuner, max_trials=f.max_trials, epochs=f.epochs,
                   input_shape=info.image_shape, classes=info.classes, shift_pixels=f.shift_pixels,
                   seed=f.seed, steps_per_epoch=f.steps_per_epoch, verbose=f.verbose,
                   distribution_strategy=strategy if f.strategy != "default" else None)
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
    results = model.evaluate(make_dataset(*test, f.batch_size, training=False), verbose=0, return_dict=True)
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
        "tuner": f.tuner,
        "seconds_this_run": round(time.time() - start, 1),
    }
    checkpoints.atomic_write_json(os.path.join(save_dir, "tuning.json"), summary)
    print("Best hyperparameters: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                for k, v in hp.items()))
    print(f"Best model: validation accuracy {100 * summary['best_val_accuracy']:.2f}%, test accuracy "
          f"{100 * results['accuracy']:.2f}% ({summary['trials_completed']} trials); "
          f"results in {save_dir}/best.keras, best_hyperparameters.json, tuning.json")
    return summary


def run(argv_flags):
    import shutil

    import keras

    from keras_caps import CapsNet, checkpoints, schedules
    from keras_caps.data import load_arrays, make_dataset
    from keras_caps.distribution import StrategyError, is_chief, make_strategy, worker_dir
    from keras_caps.precision import resolve_policy

    f = argv_flags
    save_dir = f.save_dir
    checkpoints.check_writable(save_dir)
    checkpoints.remove_temporaries(save_dir)
    # Made first: a multi-worker strategy must exist before other TensorFlow work.
    try:
        strategy = make_strategy(f.strategy)
    except StrategyError as error:
        raise TrainingError(str(error)) from None
    seed = f.seed
    if seed is None and f.strategy == "multi_worker":
        seed = 0  # every worker must shuffle alike for the data shards to partition the set
        print("--strategy multi_worker: no --seed given; using --seed 0 on every worker.")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    policy = resolve_policy(f.mixed_precision)
    keras.mixed_precision.set_global_policy(policy)

    train, test, info = load_arrays(f.dataset, f.data_dir)
    if f.tune:
        if f.testing:
            raise TrainingError("--tune and --testing exclude each other.")
        return _tune(f, train, test, info, strategy, save_dir)
    if f.val_split:
        train, val = _split_validation(train, f.val_split, seed)
    else:
        val = test

    # Every worker runs the same calls (saving can need them all); only the
    # chief writes into save_dir, the others into a scratch folder deleted at the end.
    out_dir = worker_dir(save_dir, strategy)
    done, ckpt_path = checkpoints.latest_checkpoint(save_dir)
    history = []
    with strategy.scope():
        if f.testing:
            if not f.weights:
                raise TrainingError("--testing needs --weights (a .keras model saved by a run).")
            model = _load_model(f.weights)
        elif done and ckpt_path:
            if not f.resume:
                print(f"{save_dir} holds an interrupted run ({done} epochs done): resuming it.")
            model = _load_model(ckpt_path)
            history_path = os.path.join(save_dir, "history.json")
            if os.path.isfile(history_path):
                with open(history_path) as fh:
                    history = [row for row in json.load(fh) if row["epoch"] <= done]
        else:
            if f.resume:
                print(f"--resume: no checkpoint in {save_dir}; starting afresh.")
            model = CapsNet.from_architecture(f.architecture, input_shape=info.image_shape,
                                              classes=info.classes, routings=f.routings, lam_recon=f.lam_recon)
            if f.weights:
                if f.weights.endswith(".weights.h5"):
                    model.load_weights(f.weights)
                else:
                    model.set_weights(_load_model(f.weights).get_weights())
            model.compile(optimizer=keras.optimizers.Adam(f.lr))

    if model.image_shape != info.image_shape or model.classes != info.classes:
        raise TrainingError(
            f"The model takes {model.image_shape} images in {model.classes} classes; "
            f"{info.name} has {info.image_shape} in {info.classes}."
        )

    start = time.time()
    epochs_run = 0
    if not f.testing:
        if done >= f.epochs:
            print(f"{save_dir} already holds {done} of {f.epochs} epochs; nothing to train.")
        steps = f.steps_per_epoch or math.ceil(len(train[0]) / f.batch_size)
        train_ds = make_dataset(*train, f.batch_size, training=True, shift_pixels=f.shift_pixels,
                                seed=seed, repeat=True, first_epoch=done)
        val_ds = make_dataset(*val, f.batch_size, training=False)
        nan_stop = checkpoints.StopOnNaN()
        run_checkpoint = checkpoints.RunCheckpoint(out_dir, history)
        if f.lr_schedule == "cosine":
            if f.warmup_steps >= f.epochs * steps:
                raise TrainingError(f"--warmup_steps {f.warmup_steps} leaves no steps of the {f.epochs * steps} "
                                    "in the run for the cosine schedule.")
            lr_callbacks = [schedules.WarmUpCosine(f.lr, f.epochs * steps, f.warmup_steps)]
        else:
            lr_callbacks = [schedules.EpochDecay(f.lr, f.lr_decay), schedules.LinearWarmUp(f.warmup_steps)]
        callbacks = [
            *lr_callbacks,
            nan_stop,
            run_checkpoint,
            keras.callbacks.TensorBoard(os.path.join(out_dir, "tensorboard"), write_graph=False),
        ]
        replicas = strategy.num_replicas_in_sync
        print(f"Training CapsNet on {info.name} ({info.source}): {len(train[0])} images, "
              f"{steps} steps/epoch, epochs {done + 1}..{f.epochs}, policy {policy}, "
              f"{f'{replicas} replicas ({f.strategy}), ' if replicas > 1 else ''}"
              f"validation on {'held-out training images' if f.val_split else 'the test set'}.")
        if done < f.epochs:
            result = model.fit(train_ds, epochs=f.epochs, initial_epoch=done, steps_per_epoch=steps,
                               validation_data=val_ds, callbacks=callbacks, verbose=f.verbose,
                               shuffle=False)  # the dataset shuffles itself
            epochs_run = len(result.epoch)
        history = run_checkpoint.history
        if nan_stop.bad_batch is not None:
            raise TrainingError(
                f"The loss became NaN or infinite at batch {nan_stop.bad_batch} of epoch "
                f"{len(history) + 1}; training stopped. The last good checkpoint "
                f"({checkpoints.latest_checkpoint(save_dir)[1]}) is intact. Try a smaller --lr."
            )
        checkpoints.save_model_atomic(model, os.path.join(out_dir, "final.keras"))
    train_seconds = time.time() - start

    test_ds = make_dataset(*test, f.batch_size, training=False)
    results = model.evaluate(test_ds, verbose=0, return_dict=True)
    figure_paths = _figures(model, history, test[0], out_dir)
    metrics = {
        "test_accuracy": results["accuracy"],
        "test_error": 1.0 - results["accuracy"],
        "test_loss": results["loss"],
        "test_margin_loss": results["margin_loss"],
        "test_reconstruction_loss": results["reconstruction_loss"],
        "epochs": len(history) if not f.testing else None,
        "epochs_this_run": epochs_run,
        "train_seconds_this_run": round(train_seconds, 1),
        "policy": policy,
        "backend": keras.backend.backend(),
        "replicas": strategy.num_replicas_in_sync,
        "data_source": info.source,
        "figures": figure_paths,
        "flags": {name: f[name].value for name in
                  ("architecture", "routings", "epochs", "batch_size", "lr", "lr_decay", "lr_schedule", "warmup_steps", "lam_recon", "shift_pixels",
                   "dataset", "data_dir", "save_dir", "testing", "weights", "mixed_precision", "seed",
                   "steps_per_epoch", "resume", "val_split", "strategy")},
    }
    name = "test_metrics.json" if f.testing else "metrics.json"
    checkpoints.atomic_write_json(os.path.join(out_dir, name), metrics)
    if not is_chief(strategy):
        shutil.rmtree(out_dir, ignore_errors=True)
        return metrics
    acc = results["accuracy"]
    print(f"Test accuracy {100 * acc:.2f}% (error {100 * (1 - acc):.2f}%) on {info.test_size} "
          f"{info.name} images; {metrics['epochs'] or 0} epochs, {train_seconds:.0f} s this run; "
          f"results in {save_dir}/")
    return metrics


def _expected_errors():
    from keras_caps.idx import DataError

    return (DataError, TrainingError, OSError)


if __name__ == "__main__":
    from keras_caps.cli import absl_main

    app.run(absl_main(run, _expected_errors))
