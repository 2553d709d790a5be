"""Per-class results: the confusion matrix counted batch by batch on every kind of input,
and what it says of each class, against counts made here in numpy."""

import keras
import numpy as np
import pytest

from keras_caps.data.batches import ArrayBatches
from keras_caps.training.evaluation import (
    confusion_matrix,
    count_confusion,
    mistakes,
    per_class,
    predict_classes,
    weakest_classes,
)


class FirstPixels:
    """A stand-in model whose class scores are an image's first `classes` pixels."""

    def __init__(self, classes):
        self.classes = classes

    def __call__(self, images, training=None):
        flat = keras.ops.reshape(images, (keras.ops.shape(images)[0], -1))
        return {"scores": flat[:, : self.classes]}


def _data(count=23, classes=4, seed=0):
    """uint8 images (both inputs divide them by 255, which keeps each image's argmax), labels and
    the matrix counted here."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 3, 3, 1), dtype=np.uint8)
    labels = rng.integers(0, classes, count)
    expected = np.zeros((classes, classes), np.int64)
    for label, image in zip(labels, images):
        expected[label, int(np.argmax(image.reshape(-1)[:classes]))] += 1
    return images, labels, expected


def test_the_matrix_counts_every_image_once_from_a_py_dataset():
    images, labels, expected = _data()
    batches = ArrayBatches(images, labels, batch_size=5)  # the last batch is short
    matrix = confusion_matrix(FirstPixels(4), batches, classes=4)
    assert matrix.dtype == np.int64 and matrix.sum() == 23
    np.testing.assert_array_equal(matrix, expected)


def test_the_matrix_counts_every_image_once_from_a_tf_dataset():
    """The TensorFlow backend's input (this file runs on it; JAX's end-to-end runs take a PyDataset)."""
    from keras_caps.data.datasets import make_dataset

    images, labels, expected = _data(seed=1)
    batches = make_dataset(images, labels, 5, training=False)
    np.testing.assert_array_equal(confusion_matrix(FirstPixels(4), batches, classes=4), expected)


def test_predictions_keep_the_datas_order_with_both_scores():
    images, labels, expected = _data(seed=2)
    predictions = predict_classes(FirstPixels(4), ArrayBatches(images, labels, batch_size=5))
    pixels = images.reshape(len(images), -1)[:, :4] / np.float32(255)
    np.testing.assert_array_equal(predictions.labels, labels)
    np.testing.assert_array_equal(predictions.predicted, pixels.argmax(axis=1))
    np.testing.assert_allclose(predictions.score, pixels.max(axis=1), rtol=1e-6)
    np.testing.assert_allclose(predictions.label_score, pixels[np.arange(len(labels)), labels], rtol=1e-6)
    np.testing.assert_array_equal(count_confusion(predictions, 4), expected)


def test_mistakes_name_each_wrong_image_the_most_confident_first():
    from keras_caps.training.evaluation import Predictions

    predictions = Predictions(
        labels=np.array([0, 1, 2, 2, 1]),
        predicted=np.array([0, 2, 0, 1, 1]),
        score=np.array([0.9, 0.6, 0.8, 0.6, 0.7], np.float32),
        label_score=np.array([0.9, 0.3, 0.1, 0.2, 0.7], np.float32),
    )
    names = ["cat", "dog", "sea horse"]
    rows = mistakes(predictions, names, files=np.array(["a.png", "b.png", "c.png", "d.png", "e.png"]))
    assert rows == [  # by score, the tie in the data's order
        {"image": "c.png", "class": "sea horse", "predicted": "cat", "score": 0.8, "class_score": 0.1},
        {"image": "b.png", "class": "dog", "predicted": "sea horse", "score": 0.6, "class_score": 0.3},
        {"image": "d.png", "class": "sea horse", "predicted": "dog", "score": 0.6, "class_score": 0.2},
    ]
    assert [row["image"] for row in mistakes(predictions, names)] == [2, 1, 3]  # no files: test-set indices
    assert mistakes(predictions._replace(predicted=predictions.labels), names) == []


def test_per_class_reads_each_row():
    matrix = np.array([[3, 1, 0], [0, 0, 0], [2, 2, 1]])
    rows = per_class(matrix, ["cat", "dog", "sea horse"])
    assert rows[0] == {"class": "cat", "images": 4, "correct": 3, "accuracy": 0.75, "most_mistaken_for": "dog"}
    # A class without test images has no accuracy and no errors.
    assert rows[1] == {"class": "dog", "images": 0, "correct": 0, "accuracy": None, "most_mistaken_for": None}
    # Its errors tie between cat and dog: the lower id is named.
    assert rows[2]["accuracy"] == pytest.approx(0.2) and rows[2]["most_mistaken_for"] == "cat"
    assert per_class(np.eye(2, dtype=int) * 5, ["a", "b"])[1]["most_mistaken_for"] is None


def test_per_class_refuses_a_matrix_that_does_not_fit_the_names():
    with pytest.raises(ValueError, match=r"a 3x3 matrix for 3 names, got \(2, 2\)"):
        per_class(np.zeros((2, 2)), ["a", "b", "c"])


def test_the_weakest_classes_come_first_and_perfect_ones_are_left_out():
    rows = per_class(np.array([[9, 1, 0, 0], [0, 10, 0, 0], [1, 3, 6, 0], [0, 0, 0, 0]]), ["0", "1", "2", "3"])
    assert weakest_classes(rows) == "2 60.00% (4 of 10 wrong, most as 1); 0 90.00% (1 of 10 wrong, most as 1)"
    assert weakest_classes(rows, count=1) == "2 60.00% (4 of 10 wrong, most as 1)"
    assert weakest_classes(per_class(np.eye(3, dtype=int), ["a", "b", "c"])) == ""
