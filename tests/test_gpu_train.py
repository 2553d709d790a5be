"""benchmarks/gpu_train.py: the JAX-backend, TensorFlow-free training run for the GPU machines."""

import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from gpu_train import batches, shift_batch  # noqa: E402

from tests.test_idx import write_mnist  # noqa: E402


def test_shift_moves_each_image_within_its_zero_padding():
    rng = np.random.default_rng(0)
    images = rng.uniform(0.5, 1, (64, 6, 5, 1)).astype("float32")
    out = shift_batch(images, 2, np.random.default_rng(1))
    assert out.shape == images.shape
    for image, shifted in zip(images, out):
        padded = np.pad(image, ((2, 2), (2, 2), (0, 0)))
        matches = [(dy, dx) for dy in range(5) for dx in range(5)
                   if np.array_equal(padded[dy:dy + 6, dx:dx + 5], shifted)]
        assert len(matches) == 1
    # Every offset of -2..2 on each axis turns up; none at all for max_shift 0.
    sums = [(s > 0).sum() for s in out]
    assert len(set(sums)) > 5
    np.testing.assert_array_equal(shift_batch(images, 0, rng), images)


def test_epochs_are_permutations_reproducible_by_seed_and_epoch():
    images = np.arange(30, dtype="float32").reshape(30, 1, 1, 1)
    labels = np.arange(30)
    epoch = list(batches(images, labels, 10, 0, seed=3, epoch=1))
    assert len(epoch) == 3 and sorted(np.concatenate([y for _, y in epoch])) == list(range(30))
    again = list(batches(images, labels, 10, 0, seed=3, epoch=1))
    other = list(batches(images, labels, 10, 0, seed=3, epoch=2))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(epoch, again))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(epoch, other))
    for x, y in epoch:  # images stay with their labels
        np.testing.assert_array_equal(x[:, 0, 0, 0], y)


def test_runs_on_jax_without_tensorflow(tmp_path):
    write_mnist(str(tmp_path / "mnist"), n_train=40, n_test=20)
    code = ("import sys, runpy; sys.modules['tensorflow'] = None; sys.modules['tensorflow_datasets'] = None; "
            "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-c", code, os.path.join(ROOT, "benchmarks", "gpu_train.py"), "--data_dir",
         str(tmp_path / "mnist"), "--epochs", "2", "--batch_size", "10", "--steps_per_epoch", "2",
         "--policy", "float32", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, KERAS_BACKEND="jax"), cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.load(open(out / "gpu_train.json"))
    assert report["summary"]["backend"] == "jax" and report["summary"]["epochs"] == 2
    assert [round(r["lr"], 6) for r in report["epochs"]] == [0.001, 0.0009]
    for row in report["epochs"]:
        assert np.isfinite(row["loss"]) and row["train_images_per_s"] > 0 and 0 <= row["test_accuracy"] <= 1
    assert (out / "final.keras").exists()
