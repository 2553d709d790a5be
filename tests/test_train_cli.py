"""train.py from the command line, end to end: on a tiny IDX slice, as a user runs it (a new process: `train`),
or in this process through the same flags and `main` (`train_here`, 12 s less a call)."""

import csv
import json
import os

import keras
import numpy as np
import pytest

from tests.helpers import common, run_program, train, train_here, write_mnist

# Subprocess runs, exports and kills: the slow tier (pytest -m 'not slow' skips them).
pytestmark = pytest.mark.slow


def test_run_leaves_every_file_and_resumes(mnist_dir, tmp_path):
    save = str(tmp_path / "run")
    result = train(*common(mnist_dir, save), "--epochs", "2", "--recipe", "reference")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Test accuracy" in result.stdout
    for name in (
        "best.keras",
        "final.keras",
        "log.csv",
        "history.json",
        "metrics.json",
        "training_curves.png",
        "reconstructions.png",
        "manipulate_latent.png",
        "confusion_matrix.png",
    ):
        assert os.path.getsize(os.path.join(save, name)) > 0, name
    assert os.listdir(os.path.join(save, "tensorboard"))
    metrics = json.load(open(os.path.join(save, "metrics.json")))
    assert metrics["epochs"] == 2 and 0 <= metrics["test_accuracy"] <= 1
    assert metrics["test_error"] == pytest.approx(1 - metrics["test_accuracy"])
    assert metrics["config"]["routings"] == 3
    rows = list(csv.DictReader(open(os.path.join(save, "log.csv"))))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[1]["learning_rate"]) == pytest.approx(0.001 * 0.9)
    import keras_caps  # noqa: F401

    for name in ("best.keras", "final.keras", "checkpoints/epoch-0002.keras"):
        model = keras.models.load_model(os.path.join(save, name))
        assert model.predict(np.zeros((1, 28, 28, 1), "float32"), verbose=0).shape == (1, 10)

    # Same save_dir, more epochs: it continues at epoch 3 with the optimizer state.
    result = train_here(*common(mnist_dir, save), "--epochs", "3", "--resume", "--recipe", "reference")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(open(os.path.join(save, "log.csv"))))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert json.load(open(os.path.join(save, "metrics.json")))["epochs_this_run"] == 1
    assert sorted(os.listdir(os.path.join(save, "checkpoints"))) == ["epoch-0002.keras", "epoch-0003.keras"]

    # --testing evaluates a saved model and draws its figures, no training.
    result = train_here(
        "--data_dir",
        mnist_dir,
        "--save_dir",
        str(tmp_path / "eval"),
        "--testing",
        "--weights",
        os.path.join(save, "best.keras"),
        "--verbose",
        "0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.exists(tmp_path / "eval" / "reconstructions.png")
    tested = json.load(open(tmp_path / "eval" / "test_metrics.json"))
    assert tested["epochs_this_run"] == 0
    # Digits without names are classes "0".."9"; the matrix's diagonal is evaluate's accuracy.
    matrix = np.array(tested["confusion_matrix"])
    assert [r["class"] for r in tested["per_class"]] == [str(i) for i in range(10)]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(tested["test_accuracy"])


@pytest.mark.parametrize(
    "args,message",
    [
        (["--routings", "0"], "--routings must be an integer >= 1, got 0"),
        (["--lr_decay", "1.5"], "--lr_decay must be in (0, 1]"),
        (["--dataset", "no_such_set"], "Unknown dataset 'no_such_set'"),
        (["--testing"], "--testing needs --weights"),
        (["--testing", "--weights", "/nonexistent.keras"], "no such file"),
        (["--mixed_precision", "float8"], "float8"),
        (["--warmup_steps", "-1"], "--warmup_steps must be an integer >= 0"),
        (["--lr_schedule", "linear"], "linear"),
        (["--recipe", "paper"], "paper"),
        (["--ema_momentum", "1"], "--ema_momentum must be in [0, 1), got 1.0"),
    ],
)
def test_bad_flags_are_one_clear_line(mnist_dir, tmp_path, args, message):
    data_args = [] if "--dataset" in args else ["--data_dir", mnist_dir]
    result = train_here(*data_args, "--save_dir", str(tmp_path / "r"), *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_model_is_named_before_the_data_are_read(tmp_path):
    # The data folder is absent too: the model's error comes first.
    absent = str(tmp_path / "w.keras")
    for args, message in (
        (["--weights", absent], f"error: --weights {absent}: no such file.\n"),
        (["--testing", "--weights", "mnist_micr"], "error: --weights mnist_micr: no such file, and no preset of"),
    ):
        result = train_here("--data_dir", str(tmp_path / "absent"), "--save_dir", str(tmp_path / "r"), *args)
        assert result.returncode == 1 and message in result.stderr, result.stderr


def test_missing_data_dir_and_corrupt_file(tmp_path):
    result = train_here("--data_dir", str(tmp_path / "absent"), "--save_dir", str(tmp_path / "r"))
    assert result.returncode == 1 and "no such directory" in result.stderr and "Traceback" not in result.stderr
    folder = tmp_path / "bad"
    write_mnist(str(folder), n_train=10, n_test=5)
    with open(folder / "train-images-idx3-ubyte.gz", "r+b") as f:
        f.truncate(40)
    result = train_here("--data_dir", str(folder), "--save_dir", str(tmp_path / "r"))
    assert result.returncode == 1 and "train-images-idx3-ubyte.gz" in result.stderr
    assert "Traceback" not in result.stderr


def test_unwritable_save_dir_fails_before_training(mnist_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = train_here("--data_dir", mnist_dir, "--save_dir", str(blocker / "run"))
    assert result.returncode == 1 and "not writable" in result.stderr


def test_nan_loss_stops_and_keeps_last_good_checkpoint(mnist_dir, tmp_path):
    save = str(tmp_path / "run")
    good = train_here(*common(mnist_dir, save), "--epochs", "1")
    assert good.returncode == 0, good.stderr[-2000:]
    checkpoint = os.path.join(save, "checkpoints", "epoch-0001.keras")
    before = open(checkpoint, "rb").read()
    # A learning rate of 1e30 sends the weights to inf within a step or two.
    result = train_here(*common(mnist_dir, save), "--epochs", "3", "--lr", "1e30")
    assert result.returncode == 1
    assert "NaN or infinite" in result.stderr and "Traceback" not in result.stderr
    assert open(checkpoint, "rb").read() == before
    assert not os.path.exists(os.path.join(save, "checkpoints", "epoch-0002.keras"))


def test_cosine_schedule_with_warm_up(mnist_dir, tmp_path):
    save = str(tmp_path / "run")
    flags = ("--epochs", "2", "--lr_schedule", "cosine", "--warmup_steps", "1", "--recipe", "reference")
    result = train_here(*common(mnist_dir, save), *flags)  # the flags given win over the recipe's
    assert result.returncode == 0, result.stderr[-3000:]
    rates = [float(r["learning_rate"]) for r in csv.DictReader(open(os.path.join(save, "log.csv")))]
    # 4 steps: warm-up step 0, then cosine from step 1 to 0 at step 4; the log holds each epoch's last rate.
    assert rates == pytest.approx([0.001, 0.001 * 0.5 * (1 + np.cos(np.pi * 2 / 3))], rel=1e-4)
    # No schedule flag: the default recipe, its moving average scored beside the trained weights
    # (over 12 steps its momentum is lowered to 1 - 10/12, a window of a tenth of the run).
    fast = (*common(mnist_dir, str(tmp_path / "fast")), "--steps_per_epoch", "12", "--epochs", "1", "--figures=false")
    result = train_here(*fast)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.load(open(tmp_path / "fast" / "metrics.json"))
    config = metrics["config"]
    assert config["recipe"] == "fast" and config["lr_schedule"] == "cosine"
    # The config recorded is the one the run used: the momentum and warm-up lowered for 12 steps.
    assert config["ema_momentum"] == metrics["ema_momentum"] == pytest.approx(1 - 10 / 12)
    assert config["warmup_steps"] == 1
    assert "raw_val_accuracy" in next(csv.DictReader(open(tmp_path / "fast" / "log.csv")))
    result = train_here(
        *common(mnist_dir, str(tmp_path / "r2")), "--epochs", "1", "--lr_schedule", "cosine", "--warmup_steps", "2"
    )
    assert result.returncode == 1 and "leaves no steps" in result.stderr and "Traceback" not in result.stderr


def test_val_split_needs_two_training_images(tmp_path):
    write_mnist(str(tmp_path / "one"), n_train=1, n_test=5)
    result = train_here("--data_dir", str(tmp_path / "one"), "--save_dir", str(tmp_path / "r"), "--val_split", "0.5")
    assert result.returncode == 1
    assert "--val_split needs at least 2 training images, got 1" in result.stderr and "Traceback" not in result.stderr


def test_micro_architecture_trains_and_saves(mnist_dir, tmp_path):
    save = str(tmp_path / "micro")
    result = train_here(*common(mnist_dir, save), "--epochs", "1", "--architecture", "micro")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.load(open(os.path.join(save, "metrics.json")))["config"]["architecture"] == "micro"
    import keras_caps

    model = keras.models.load_model(os.path.join(save, "final.keras"))
    expected = keras_caps.ARCHITECTURES["micro"]
    assert model.conv_filters == expected["conv_filters"] and model.conv_batch_norm
    assert tuple(model.digit_caps.kernel.shape) == (10, 128, 16, 8)


def test_bad_value_is_the_only_line_on_stderr_without_verbose(tmp_path):
    """As a new user runs them (no TF_CPP_MIN_LOG_LEVEL set): none of TensorFlow's start-up
    lines, just the one error line."""
    for program, args, line in (
        ("train.py", ["--epochs", "0"], "error: TrainConfig: --epochs must be an integer >= 1, got 0."),
        (
            "predict.py",
            ["--model", tmp_path / "absent.keras", "a.png"],
            f"error: {tmp_path / 'absent.keras'}: no such file or folder.",
        ),
        (
            "export",
            ["--model", "absent.keras", "--tflm_images", "0", "--out", tmp_path / "o"],
            "error: ExportConfig: --tflm_images must be >= 1, got 0.",
        ),
    ):
        result = run_program(program, *args, timeout=120, quiet=False)
        assert result.returncode == 1 and result.stderr.strip().splitlines() == [line], program
