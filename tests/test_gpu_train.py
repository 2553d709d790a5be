"""A run on the JAX backend without TensorFlow: `benchmarks/gpu_train.py` over `keras_caps.training.run`,
fed by `keras_caps.data.batches.ArrayBatches`."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_caps.data.batches import FLIPS, ArrayBatches, flip_batch, rotate_batch, rotate_by, shift_batch
from tests.helpers import ROOT, check_flips, check_turns, spot_images, turned_by, write_mnist


def test_shift_moves_each_image_within_its_zero_padding():
    rng = np.random.default_rng(0)
    images = rng.uniform(0.5, 1, (64, 6, 5, 1)).astype("float32")
    out = shift_batch(images, 2, np.random.default_rng(1))
    assert out.shape == images.shape
    for image, shifted in zip(images, out):
        padded = np.pad(image, ((2, 2), (2, 2), (0, 0)))
        matches = [
            (dy, dx) for dy in range(5) for dx in range(5) if np.array_equal(padded[dy : dy + 6, dx : dx + 5], shifted)
        ]
        assert len(matches) == 1
    # Every offset of -2..2 on each axis turns up; none at all for max_shift 0.
    sums = [(s > 0).sum() for s in out]
    assert len(set(sums)) > 5
    np.testing.assert_array_equal(shift_batch(images, 0, rng), images)


@pytest.mark.parametrize("flip", list(FLIPS))
def test_flip_batch_mirrors_each_image_along_its_axes_with_probability_half(flip):
    images = np.random.default_rng(0).uniform(size=(400, 5, 4, 2)).astype("float32")
    out = flip_batch(images, flip, np.random.default_rng(1))
    check_flips(images, out, flip)
    np.testing.assert_array_equal(flip_batch(images, flip, np.random.default_rng(1)), out)
    with pytest.raises(ValueError, match="`flip` must be one of none, horizontal, .* got 'diagonal'"):
        flip_batch(images, "diagonal", np.random.default_rng(1))


def test_array_batches_flip_training_batches_only():
    images = np.random.default_rng(2).integers(0, 256, (200, 5, 4, 3), dtype=np.uint8)
    labels = np.arange(200)
    x, y = ArrayBatches(images, labels, 200, training=True, seed=4, flip="vertical")[0]
    check_flips(images[y] / np.float32(255), x, "vertical")
    x, y = ArrayBatches(images, labels, 200, flip="vertical")[0]
    np.testing.assert_array_equal(x, images / np.float32(255))
    with pytest.raises(ValueError, match="`flip` must be one of"):
        ArrayBatches(images, labels, 10, flip="up")


def test_rotate_by_turns_as_rot90_at_right_angles_and_follows_any_angle():
    rng = np.random.default_rng(0)
    square, oblong = rng.uniform(size=(3, 7, 7, 2)), rng.uniform(size=(3, 6, 9, 1))
    quarter = np.full(3, np.pi / 2)
    np.testing.assert_allclose(rotate_by(square, quarter), np.rot90(square, 1, axes=(1, 2)), atol=1e-12)
    np.testing.assert_allclose(rotate_by(square, -quarter), np.rot90(square, 3, axes=(1, 2)), atol=1e-12)
    np.testing.assert_allclose(rotate_by(oblong, 2 * quarter), oblong[:, ::-1, ::-1], atol=1e-12)
    np.testing.assert_array_equal(rotate_by(oblong, np.zeros(3)), oblong)
    angles = np.array([-135.0, -40.0, 0.0, 25.0, 100.0])
    np.testing.assert_allclose(turned_by(rotate_by(spot_images(5), np.radians(angles))), angles, atol=0.5)
    # A turn by a small angle keeps a spot's mass; a corner that leaves the frame comes back as 0.
    small = rotate_by(spot_images(1), np.radians([7.0]))
    assert abs(small.sum() - spot_images(1).sum()) < 0.01 * spot_images(1).sum()
    ones = rotate_by(np.ones((1, 9, 9, 1), "float32"), np.radians([45.0]))
    assert ones.dtype == np.float32 and ones[0, 0, 0, 0] == 0 and ones[0, 4, 4, 0] == 1


def test_rotate_batch_turns_each_image_by_an_angle_drawn_within_degrees():
    images = spot_images(300)
    out = rotate_batch(images, 30, np.random.default_rng(1))
    check_turns(out, 30)
    np.testing.assert_array_equal(rotate_batch(images, 30, np.random.default_rng(1)), out)
    np.testing.assert_array_equal(rotate_batch(images, 0, np.random.default_rng(1)), images)
    for bad in (-5, 181, float("nan"), "10", True):
        with pytest.raises(ValueError, match=r"`rotation` must be a number of degrees in \[0, 180\], got"):
            rotate_batch(images, bad, np.random.default_rng(1))


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
