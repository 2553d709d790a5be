"""PNG figures of a run: training curves, reconstructions, latent manipulation, confusion matrix."""

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    import os

    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    os.replace(tmp, path)


def plot_history(history, path):
    """Loss parts and accuracy per epoch, from `history.json`'s rows."""
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("loss", "margin_loss", "reconstruction_loss", "val_loss"):
        if any(key in row for row in history):
            ax_loss.plot(epochs, [row.get(key, np.nan) for row in history], marker="o", label=key)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_yscale("log")
    ax_loss.legend()
    for key in ("accuracy", "val_accuracy", "raw_val_accuracy"):  # raw_: the trained weights beside their average
        if any(key in row for row in history):
            ax_acc.plot(epochs, [row.get(key, np.nan) for row in history], marker="o", label=key)
    ax_acc.set_xlabel("epoch")
    ax_acc.legend()
    ax_acc.set_title("accuracy")
    ax_loss.set_title("loss")
    _save(fig, path)
    plt.close(fig)


def _tile(images, columns):
    """Images `(n, h, w, c)` in [0, 1] -> one `(rows*h, columns*w, c)` mosaic."""
    n, h, w, c = images.shape
    rows = -(-n // columns)
    canvas = np.ones((rows * h, columns * w, c), dtype=np.float32)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        canvas[r * h : (r + 1) * h, col * w : (col + 1) * w] = image
    return canvas


def _show(canvas, path, title):
    plt = _pyplot()
    fig = plt.figure(figsize=(canvas.shape[1] / 40 + 1, canvas.shape[0] / 40 + 1))
    plt.imshow(canvas.squeeze(-1) if canvas.shape[-1] == 1 else canvas, cmap="gray", vmin=0, vmax=1)
    plt.axis("off")
    plt.title(title)
    _save(fig, path)
    plt.close(fig)


def plot_reconstructions(model, images, path, count=50, columns=10):
    """Rows of test images, each followed by a row of their reconstructions."""
    images = np.asarray(images[:count], dtype=np.float32)
    recon = np.asarray(model.reconstruct(images))
    blocks = []
    for start in range(0, len(images), columns):
        blocks += [images[start : start + columns], recon[start : start + columns]]
    # Pad short rows so that originals and reconstructions stay aligned.
    padded = [np.concatenate([b, np.ones((columns - len(b),) + b.shape[1:], np.float32)]) for b in blocks]
    _show(_tile(np.concatenate(padded), columns), path, "test images (odd rows) and reconstructions (even rows)")


def plot_manipulated_latent(model, image, path, low=-0.25, high=0.25, step=0.05):
    """The paper's figure 4: each capsule dimension of the predicted class
    tweaked from `low` to `high`, decoded. One row per dimension."""
    image = np.asarray(image, dtype=np.float32)[None]
    capsules = np.asarray(model.encode(image))  # (1, classes, dim)
    label = int(np.argmax(np.linalg.norm(capsules, axis=-1)))
    tweaks = np.arange(low, high + step / 2, step, dtype=np.float32)
    dim = capsules.shape[-1]
    batch = np.repeat(capsules, dim * len(tweaks), axis=0)
    for d in range(dim):
        batch[d * len(tweaks) : (d + 1) * len(tweaks), label, d] += tweaks
    labels = np.full((len(batch),), label)
    decoded = np.asarray(model.to_images(model.decode(batch, labels), np.repeat(image, len(batch), axis=0)))
    _show(
        _tile(decoded, len(tweaks)), path, f"class {label}: dimension d (row) + [{low}, {high}] step {step} (columns)"
    )
    return label


def plot_confusion(matrix, names, path):
    """The test set's confusion matrix, each row (true class) as fractions of its images,
    with the counts written in the cells where there are few enough classes to read them."""
    plt = _pyplot()
    matrix = np.asarray(matrix)
    n = len(names)
    fractions = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    side = min(4 + 0.45 * n, 30)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    shown = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(shown, ax=ax, fraction=0.046, label="fraction of the true class")
    ticks = np.arange(n)
    ax.set_xticks(ticks, [str(name) for name in names], rotation=90)
    ax.set_yticks(ticks, [str(name) for name in names])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if n <= 20:
        for (row, col), count in np.ndenumerate(matrix):
            if count:
                dark = fractions[row, col] > 0.5
                ax.text(col, row, str(count), ha="center", va="center", color="white" if dark else "black")
    ax.set_title(f"test set: {int(np.trace(matrix))} of {int(matrix.sum())} right")
    _save(fig, path)
    plt.close(fig)
