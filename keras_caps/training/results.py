"""What a run or a search reports at its end: each class's test results and the images it got
wrong (`keras_caps.training.evaluation`), its figures, the lines it prints, and the metadata of
its preset."""

import os

from keras_caps.data.datasets import spread_images
from keras_caps.training import checkpoints, evaluation, figures


def plot_figures(model, history, test, save_dir, matrix, names):
    """A run's PNG figures in `save_dir` (curves, confusion matrix, reconstructions and one image's
    capsule dimensions varied, from 50 spread test images); returns their paths by name."""
    x_test = spread_images(test, 50)
    paths = {}
    if history:
        paths["curves"] = os.path.join(save_dir, "training_curves.png")
        figures.plot_history(history, paths["curves"])
    paths["confusion"] = plot_confusion(matrix, names, save_dir)
    paths["reconstructions"] = os.path.join(save_dir, "reconstructions.png")
    figures.plot_reconstructions(model, x_test, paths["reconstructions"])
    paths["manipulate_latent"] = os.path.join(save_dir, "manipulate_latent.png")
    figures.plot_manipulated_latent(model, x_test[0], paths["manipulate_latent"])
    return paths


def plot_confusion(matrix, names, save_dir):
    """Draws the confusion matrix (a run's and a search's figure) and returns its path."""
    path = os.path.join(save_dir, "confusion_matrix.png")
    figures.plot_confusion(matrix, names, path)
    return path


def printed_names(class_names, classes):
    """The names a run prints and records per class: the model's or data's, else the ids as text."""
    return class_names or [str(i) for i in range(classes)]


def class_results(model, test_batches, data, path):
    """`(names, matrix, rows)`: the confusion matrix of the test set (`test_batches`, one pass
    in `data.test_files`' order) and its per-class rows (`evaluation`), under the names a run
    prints; the images it got wrong are written to `path` (CSV, the most confident first)."""
    names = printed_names(model.class_names or data.info.class_names, model.classes)
    predictions = evaluation.predict_classes(model, test_batches)
    matrix = evaluation.count_confusion(predictions, model.classes)
    wrong = evaluation.mistakes(predictions, names, data.test_files)
    checkpoints.atomic_write_csv(path, wrong, columns=evaluation.MISTAKE_COLUMNS)
    return names, matrix, evaluation.per_class(matrix, names)


def print_weakest(rows, mistakes_path):
    """The lines that end a run or search: its weakest classes and where its mistakes are listed."""
    weakest = evaluation.weakest_classes(rows)
    if weakest:
        wrong = sum(row["images"] - row["correct"] for row in rows)
        print(f"Weakest classes: {weakest}.")
        print(f"The {count(wrong, 'test image')} it got wrong, the most confident first: {mistakes_path}")


def count(n, noun):
    """`n` and `noun`, plural unless one."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def preset_metadata(metrics, dataset, test_images, command):
    """What a run's preset records of it (from its `metrics`): data, accuracy, command, seed, machine."""
    config = metrics["config"]
    return {
        "description": f"CapsNet ({metrics['architecture']}) trained by keras-caps on {dataset}",
        "dataset": dataset,
        "data_source": metrics["data_source"],
        "architecture": metrics["architecture"],
        "invert_input": metrics.get("invert_input", False),  # runs before the option had none
        "test_accuracy": metrics["test_accuracy"],
        "test_images": test_images,
        "epochs": metrics["epochs"],
        "seed": config["seed"],
        "command": command,
        "machine": metrics["machine"],
        "policy": metrics["policy"],
        "backend": metrics["backend"],
        "config": config,
    }
