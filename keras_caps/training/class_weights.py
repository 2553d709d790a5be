"""Weights of the classes in the training loss, for data whose classes are unequal.

    counts = class_counts(train_labels, classes=3)        # [1000, 50, 400]
    model.fit(data, class_weight=balanced_weights(counts))  # {0: 0.483, 1: 9.67, 2: 1.21}

A folder per class rarely holds as many images of each; unweighted, the loss is
dominated by the largest classes. `balanced` gives each class the same total
weight (scikit-learn's "balanced": n / (classes present x the class's count)).
"""

import numpy as np

CLASS_WEIGHTS = ("none", "balanced")

# A note suggests weighting when the largest class has at least this many times the smallest's images.
UNEQUAL_RATIO = 2.0


def class_counts(labels, classes):
    """Training images per class id, `(classes,)` int64."""
    labels = np.asarray(labels).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(
            f"class_counts: labels must be class ids in [0, {classes}), got {labels.min()}..{labels.max()}."
        )
    return np.bincount(labels.astype(np.int64), minlength=classes)


def balanced_weights(counts):
    """`{class id: weight}` for `fit(class_weight=...)`: each class present weighs as much in total,
    and the weights average 1 over the images, so the loss keeps its scale (and the learning rate
    its meaning). A class without images gets 1 (it never comes up)."""
    counts = np.asarray(counts)
    present = counts > 0
    if not present.any():
        raise ValueError("balanced_weights: no class has any image.")
    total, kinds = counts.sum(), present.sum()
    return {i: float(total / (kinds * c)) if c else 1.0 for i, c in enumerate(counts.tolist())}


def _extremes(counts):
    present = [i for i, c in enumerate(counts) if c]
    big = max(present, key=lambda i: counts[i])
    small = min(present, key=lambda i: counts[i])
    return big, small


def unequal_note(counts, names):
    """A line that names the largest and smallest classes when they differ by `UNEQUAL_RATIO` or
    more and suggests `class_weight`; `""` otherwise."""
    counts = np.asarray(counts)
    if (counts > 0).sum() < 2:
        return ""
    big, small = _extremes(counts)
    if counts[big] < UNEQUAL_RATIO * counts[small]:
        return ""
    return (
        f"Unequal classes: {names[big]} has {counts[big]} training images, {names[small]} {counts[small]}; "
        "`class_weight` balanced weighs each class alike in the loss."
    )


def describe_weights(weights, counts, names):
    """`from 0.483 (cat, 1000 images) to 9.67 (dog, 50 images)`: the range of the weights given."""
    counts = np.asarray(counts)
    big, small = _extremes(counts)
    return (
        f"from {weights[big]:.3g} ({names[big]}, {counts[big]} images) "
        f"to {weights[small]:.3g} ({names[small]}, {counts[small]} images)"
    )
