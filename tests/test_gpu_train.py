"""A run on the JAX backend without TensorFlow: `benchmarks/gpu_train.py` over `keras_caps.training.run`,
fed by `keras_caps.data.batches.ArrayBatches`."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_caps.data.batches import ArrayBatches
from tests.helpers import ROOT, check_flips, check_turns, spot_images, write_mnist


def test_array_batches_flip_training_batches_only():
    images = np.random.default_rng(2).integers(0, 256, (200, 5, 4, 3), dtype=np.uint8)
    labels = np.arange(200)
    x, y = ArrayBatches(images, labels, 200, training=True, seed=4, flip="vertical")[0]
    check_flips(images[y] / np.float32(255), x, "vertical")
    x, y = ArrayBatches(images, labels, 200, flip="vertical")[0]
    np.testing.assert_array_equal(x, images / np.float32(255))
    with pytest.raises(ValueError, match="`flip` must be one of"):
        ArrayBatches(images, labels, 10, flip="up")


def test_array_batches_turn_training_batches_only():
    images = spot_images(200, "uint8")
    x, y = ArrayBatches(images, np.arange(200), 200, training=True, seed=4, shift_pixels=0, rotation=20)[0]
    check_turns(x, 20)
    x, y = ArrayBatches(images, np.arange(200), 200, rotation=20)[0]
    np.testing.assert_array_equal(x, images / np.float32(255))
    with pytest.raises(ValueError, match="`rotation` must be"):
        ArrayBatches(images, np.arange(200), 10, rotation=-1)


def test_epochs_are_permutations_reproducible_by_seed_and_epoch():
    images = np.arange(30, dtype="uint8").reshape(30, 1, 1, 1)
    labels = np.arange(30)

    def epoch(seed, first_epoch):
        batches = ArrayBatches(images, labels, 10, training=True, seed=seed, first_epoch=first_epoch)
        return [batches[i] for i in range(len(batches))]

    one = epoch(3, 1)
    assert len(one) == 3 and sorted(np.concatenate([y for _, y in one])) == list(range(30))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(one, epoch(3, 1)))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(one, epoch(3, 2)))
    for x, y in one:  # images stay with their labels, scaled to [0, 1]
        np.testing.assert_allclose(x[:, 0, 0, 0] * 255, y, atol=1e-4)
    # A resumed run's epoch 2 is an unbroken run's epoch 2.
    batches = ArrayBatches(images, labels, 10, training=True, seed=3, first_epoch=1)
    batches.on_epoch_end()
    assert all(np.array_equal(batches[i][1], b[1]) for i, b in enumerate(epoch(3, 2)))
    evaluation = ArrayBatches(images, labels, 7)
    assert len(evaluation) == 5 and len(evaluation[4][1]) == 2
    with pytest.raises(ValueError, match="batch_size"):
        ArrayBatches(images, labels, 0)


@pytest.mark.slow
def test_runs_on_jax_without_tensorflow_or_matplotlib(tmp_path):
    write_mnist(str(tmp_path / "mnist"), n_train=40, n_test=20)
    code = (
        "import sys, runpy; sys.modules['tensorflow'] = None; sys.modules['tensorflow_datasets'] = None; "
        "sys.modules['matplotlib'] = None; "
        "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            os.path.join(ROOT, "benchmarks", "gpu_train.py"),
            "--data_dir",
            str(tmp_path / "mnist"),
            "--epochs",
            "2",
            "--batch_size",
            "10",
            "--steps_per_epoch",
            "2",
            "--policy",
            "float32",
            "--recipe",
            "long",
            "--seed",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, KERAS_BACKEND="jax"),
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.load(open(out / "gpu_train.json"))
    assert report["summary"]["backend"] == "jax" and report["summary"]["epochs"] == 2
    # The long recipe (peak 0.003): a cosine to 0 over the 4 steps (its warm-up shrinks to none in so short
    # a run), each epoch's last rate logged; no average either (its window would outlast the run).
    assert [r["lr"] for r in report["epochs"]] == pytest.approx(
        [0.0015 * (1 + np.cos(np.pi / 4)), 0.0015 * (1 + np.cos(3 * np.pi / 4))], rel=1e-4
    )
    config = json.load(open(out / "metrics.json"))["config"]
    assert config["recipe"] == "long" and config["seed"] == 1  # as used:
    assert config["ema_momentum"] == 0.0 and config["warmup_steps"] == 0
    for row in report["epochs"]:
        assert np.isfinite(row["loss"]) and row["train_images_per_s"] > 0 and 0 <= row["test_accuracy"] <= 1
    assert (out / "final.keras").exists() and (out / "metrics.json").exists()
