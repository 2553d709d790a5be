"""Per-class results on a test set: the confusion matrix, what it says of each class, and the
images the model got wrong.

    predictions = predict_classes(model, test_batches)
    matrix = count_confusion(predictions, classes=3)
    rows = per_class(matrix, ["cat", "dog", "sea horse"])
    print(weakest_classes(rows))  # cat 50.00% (1 of 2 wrong, most as dog); ...
    wrong = mistakes(predictions, ["cat", "dog", "sea horse"], files)  # most confident first

A run does this at its end (`trainer.run`): metrics.json's `per_class` and `confusion_matrix`,
and mistakes.csv.
"""

import collections

import keras
import numpy as np

# What a model made of each test image, in the data's order: its true class id, the class it
# chose, that class's score and the true class's score (capsule lengths).
Predictions = collections.namedtuple("Predictions", ["labels", "predicted", "score", "label_score"])
MISTAKE_COLUMNS = ("image", "class", "predicted", "score", "class_score")


def _one_pass(data):
    """The `(images, labels)` batches of a tf.data dataset or a `keras.utils.PyDataset`, once."""
    if isinstance(data, keras.utils.PyDataset):
        return (data[i] for i in range(len(data)))
    return iter(data)


def predict_classes(model, data):
    """The model's choice for every image of `data`, in its order (`Predictions`).

    The model is called directly, batch by batch, not through `predict`: under a
    tf.distribute strategy `predict` splits and regathers batches (across
    workers, out of order), while a direct call scores every image once beside
    its own label, on every backend and strategy.

    Args:
        model: a `CapsNet` (its call returns the class `scores`).
        data: `(images, integer labels)` batches, one pass: a `tf.data.Dataset`
            or a `keras.utils.PyDataset`.
    """
    parts = []
    for images, labels in _one_pass(data):
        scores = keras.ops.convert_to_numpy(model(images, training=False)["scores"]).astype(np.float32)
        truth = keras.ops.convert_to_numpy(labels).reshape(-1).astype(np.int64)
        chosen = scores.argmax(axis=-1)
        rows = np.arange(len(truth))
        parts.append((truth, chosen, scores[rows, chosen], scores[rows, truth]))
    if not parts:
        empty = np.zeros(0, np.int64)
        return Predictions(empty, empty, np.zeros(0, np.float32), np.zeros(0, np.float32))
    return Predictions(*(np.concatenate(column) for column in zip(*parts)))


def count_confusion(predictions, classes):
    """Counts of `predictions` by true class (rows) and chosen class (columns): int64
    `(classes, classes)`, whose trace over its sum is the accuracy."""
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (predictions.labels, predictions.predicted), 1)
    return matrix


def confusion_matrix(model, data, classes):
    """`count_confusion(predict_classes(model, data), classes)`: the test images by true class
    (rows) and the model's top class (columns)."""
    return count_confusion(predict_classes(model, data), classes)


def mistakes(predictions, names, files=None):
    """One dict per wrongly classified image (`MISTAKE_COLUMNS`), the most confident first:
    those are the images most worth a look (often mislabelled).

    `image` is its file (`files`, in the data's order) or, for data without
    files, its index in the test set; `class` and `predicted` are names;
    `score` is the chosen class's score, `class_score` the true class's.
    """
    wrong = np.flatnonzero(predictions.labels != predictions.predicted)
    wrong = wrong[np.argsort(-predictions.score[wrong], kind="stable")]
    return [
        {
            "image": str(files[i]) if files is not None else int(i),
            "class": names[predictions.labels[i]],
            "predicted": names[predictions.predicted[i]],
            "score": round(float(predictions.score[i]), 4),
            "class_score": round(float(predictions.label_score[i]), 4),
        }
        for i in wrong
    ]


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
