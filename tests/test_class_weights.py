"""Class weights for unequal classes: counts, scikit-learn's "balanced" weights and the lines a
run prints, against numbers worked out here; and that a run's `fit` really weighs its loss."""

import json
import os
import shutil

import numpy as np
import pytest

from keras_caps.training import TrainConfig, run
from keras_caps.training.class_weights import balanced_weights, class_counts, describe_weights, unequal_note
from tests.helpers import write_image_folder


def test_counts_are_per_class_id_including_empty_classes():
    assert class_counts([2, 0, 2, 2], classes=4).tolist() == [1, 0, 3, 0]
    with pytest.raises(ValueError, match=r"class ids in \[0, 3\), got 0\.\.3"):
        class_counts([0, 3], classes=3)


def test_balanced_weights_give_each_class_the_same_total_and_average_one():
    counts = np.array([1000, 50, 400, 0])
    weights = balanced_weights(counts)
    # n / (classes present x count): 1450 / (3 x count); the empty class keeps 1.
    assert weights == pytest.approx({0: 1450 / 3000, 1: 1450 / 150, 2: 1450 / 1200, 3: 1.0})
    totals = [weights[i] * c for i, c in enumerate(counts) if c]
    assert totals == pytest.approx([totals[0]] * 3)
    assert sum(weights[i] * c for i, c in enumerate(counts)) / counts.sum() == pytest.approx(1.0)
    assert balanced_weights([5, 5]) == {0: 1.0, 1: 1.0}
    with pytest.raises(ValueError, match="no class has any image"):
        balanced_weights([0, 0])


def test_a_note_names_unequal_classes_from_twice_the_images_on():
    names = ["cat", "dog", "eel"]
    assert unequal_note([20, 10, 15], names) == (
        "Unequal classes: cat has 20 training images, dog 10; "
        "`class_weight` balanced weighs each class alike in the loss."
    )
    assert unequal_note([19, 10, 15], names) == ""
    assert unequal_note([19, 0, 0], names) == ""  # one class: nothing to balance
    assert describe_weights(balanced_weights([20, 10, 15]), [20, 10, 15], names) == (
        "from 0.75 (cat, 20 images) to 1.5 (dog, 10 images)"
    )


def _run(data, save, weight):
    config = TrainConfig(
        data_dir=data,
        save_dir=save,
        class_weight=weight,
        epochs=1,
        batch_size=4,
        seed=3,
        verbose=0,
        mixed_precision="float32",
        recipe="reference",
        figures=False,
    )
    metrics = run(config)
    return metrics, json.load(open(os.path.join(save, "history.json")))[0]["loss"]


@pytest.mark.slow
def test_balanced_weights_reach_the_runs_loss_and_its_record(tmp_path, capsys):
    data = str(tmp_path / "own")
    write_image_folder(os.path.join(data, "train"), ("cat", "dog"), per_class=6, size=(20, 20), mode="L")
    write_image_folder(os.path.join(data, "test"), ("cat", "dog"), per_class=2, size=(20, 20), mode="L", seed=1)
    # Equal classes: the balanced weights are all 1, so the loss is the unweighted one exactly.
    _, plain = _run(data, str(tmp_path / "plain"), "none")
    metrics, weighed = _run(data, str(tmp_path / "equal"), "balanced")
    assert weighed == pytest.approx(plain, rel=1e-6) and metrics["class_weights"] == [1.0, 1.0]
    # Four dogs fewer: a note without weights; with them each dog weighs 2, each cat 2/3 (8 images
    # over 2 classes of 6 and 2), and the loss changes.
    for i in range(4):
        os.remove(os.path.join(data, "train", "dog", f"{i:02d}.png"))
    capsys.readouterr()
    metrics, unweighed = _run(data, str(tmp_path / "unequal"), "none")
    assert "Unequal classes: cat has 6 training images, dog 2; `class_weight` balanced" in capsys.readouterr().out
    assert metrics["class_weights"] is None
    metrics, weighed = _run(data, str(tmp_path / "balanced"), "balanced")
    assert "Class weights (balanced): from 0.667 (cat, 6 images) to 2 (dog, 2 images)." in capsys.readouterr().out
    assert (
        metrics["class_weights"] == pytest.approx([8 / 12, 8 / 4]) and metrics["config"]["class_weight"] == "balanced"
    )
    assert weighed != pytest.approx(unweighed, rel=1e-4)
    shutil.rmtree(data)
