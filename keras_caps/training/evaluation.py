"""Per-class results on a test set: the confusion matrix and what it says of each class.

    matrix = confusion_matrix(model, test_batches, classes=3)
    rows = per_class(matrix, ["cat", "dog", "sea horse"])
    print(weakest_classes(rows))  # cat 50.00% (1 of 2 wrong, most as dog); ...

A run does this at its end (`trainer.run`): metrics.json's `per_class` and `confusion_matrix`.
"""

import keras
import numpy as np


def _one_pass(data):
    """The `(images, labels)` batches of a tf.data dataset or a `keras.utils.PyDataset`, once."""
    if isinstance(data, keras.utils.PyDataset):
        return (data[i] for i in range(len(data)))
    return iter(data)


def confusion_matrix(model, data, classes):
    """Counts of test images by true class (rows) and the model's top class (columns).

    The model is called directly, batch by batch, not through `predict`: under a
    tf.distribute strategy `predict` splits and regathers batches (across
    workers, out of order), while a direct call scores every image once beside
    its own label, on every backend and strategy.

    Args:
        model: a `CapsNet` (its call returns the class `scores`).
        data: `(images, integer labels)` batches, one pass: a `tf.data.Dataset`
            or a `keras.utils.PyDataset`.
        classes: number of classes.

    Returns:
        int64 array `(classes, classes)`; its trace over its sum is the accuracy.
    """
    matrix = np.zeros((classes, classes), np.int64)
    for images, labels in _one_pass(data):
        scores = keras.ops.convert_to_numpy(model(images, training=False)["scores"])
        truth = keras.ops.convert_to_numpy(labels).reshape(-1).astype(np.int64)
        np.add.at(matrix, (truth, scores.argmax(axis=-1)), 1)
    return matrix


def per_class(matrix, names):
    """One dict per class of a confusion matrix, in class order.

    Each has `class` (its name), `images`, `correct`, `accuracy` (None for a
    class without test images) and `most_mistaken_for` (the class most of its
    errors went to, None without errors; the lower id on a tie).
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(names):
        raise ValueError(f"per_class: a {len(names)}x{len(names)} matrix for {len(names)} names, got {matrix.shape}.")
    rows = []
    for i, name in enumerate(names):
        images, correct = int(matrix[i].sum()), int(matrix[i, i])
        errors = np.where(np.arange(len(names)) == i, -1, matrix[i])
        rows.append(
            {
                "class": name,
                "images": images,
                "correct": correct,
                "accuracy": correct / images if images else None,
                "most_mistaken_for": names[int(errors.argmax())] if images > correct else None,
            }
        )
    return rows


def weakest_classes(rows, count=3):
    """A line naming the `count` classes with the lowest accuracy among those with errors
    (`""` when every image is right): `dog 50.00% (1 of 2 wrong, most as cat); ...`."""
    wrong = sorted((r for r in rows if r["images"] > r["correct"]), key=lambda r: (r["accuracy"], r["class"]))
    return "; ".join(
        f"{r['class']} {100 * r['accuracy']:.2f}% ({r['images'] - r['correct']} of {r['images']} wrong, "
        f"most as {r['most_mistaken_for']})"
        for r in wrong[:count]
    )
