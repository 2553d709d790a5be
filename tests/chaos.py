"""Kill train.py with SIGKILL at random moments, restart it, and check what it left.

    python -m tests.chaos --kills 20 --epochs 40 --seed 0     # the RELIABILITY.md figures

Each round starts `train.py` on a small IDX slice with the same --save_dir and
kills it either while it writes a file (a `.tmp-*` file exists) or at a random
moment of the run. After every kill, every file under the final names must
load (`.keras` models, JSON, CSV), and the epoch the next start resumes from
may lag the last epoch that finished training by at most one. The last round
runs to the end, which must hold every epoch. Prints one JSON report.
"""

import argparse
import csv
import glob
import json
import os
import random
import subprocess
import sys
import tempfile
import time

from tests.helpers import ROOT


def _train_args(data_dir, save_dir, epochs):
    return [
        sys.executable,
        os.path.join(ROOT, "train.py"),
        "--data_dir",
        data_dir,
        "--save_dir",
        save_dir,
        "--epochs",
        str(epochs),
        "--batch_size",
        "10",
        "--steps_per_epoch",
        "6",
        "--seed",
        "1",
        "--verbose",
        "0",
        "--mixed_precision",
        "float32",
    ]


def _finished_epochs(save_dir):
    """Epochs whose training ended (history.json is written before the epoch's checkpoint)."""
    try:
        with open(os.path.join(save_dir, "history.json")) as f:
            return max((row["epoch"] for row in json.load(f)), default=0)
    except FileNotFoundError:
        return 0


def _writing(save_dir):
    return glob.glob(os.path.join(save_dir, ".tmp-*")) + glob.glob(os.path.join(save_dir, "checkpoints", ".tmp-*"))


def check_files(save_dir):
    """Loads every file under its final name; returns how many were checked."""
    import keras

    import keras_caps  # noqa: F401 -- registers CapsNet
    from keras_caps.training.checkpoints import latest_checkpoint

    checked = 0
    for path in glob.glob(os.path.join(save_dir, "*.keras")) + glob.glob(
        os.path.join(save_dir, "checkpoints", "*.keras")
    ):
        keras.models.load_model(path)
        checked += 1
    for path in glob.glob(os.path.join(save_dir, "*.json")):
        json.load(open(path))
        checked += 1
    if os.path.exists(os.path.join(save_dir, "log.csv")):
        rows = list(csv.DictReader(open(os.path.join(save_dir, "log.csv"))))
        assert [int(r["epoch"]) for r in rows] == list(range(1, len(rows) + 1)), rows
        checked += 1
    return checked, latest_checkpoint(save_dir)[0]


def run_with_kills(data_dir, save_dir, epochs=4, kills=3, seed=0, timeout=600):
    rng = random.Random(seed)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    rounds = []
    deadline = time.time() + timeout
    while len([r for r in rounds if r["killed"]]) < kills and time.time() < deadline:
        mode = rng.choice(["while_writing", "random_moment"])
        before = set(_writing(save_dir))  # temporaries a previous kill left (removed at start)
        start_epoch = _finished_epochs(save_dir)
        proc = subprocess.Popen(
            _train_args(data_dir, save_dir, epochs),
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if mode == "while_writing":  # the first file this start writes, once it has trained an epoch
            while (
                proc.poll() is None
                and time.time() < deadline
                and not (_finished_epochs(save_dir) > start_epoch and set(_writing(save_dir)) - before)
            ):
                time.sleep(0.002)
        else:  # at a random point of the first or second epoch after the restart
            target = min(epochs, start_epoch + rng.randint(1, 2))
            while proc.poll() is None and _finished_epochs(save_dir) < target - 1 and time.time() < deadline:
                time.sleep(0.01)
            if _finished_epochs(save_dir) == 0:  # before the first epoch ends: still starting up
                while proc.poll() is None and not os.path.exists(os.path.join(save_dir, "tensorboard")):
                    time.sleep(0.01)
            wait_until = time.time() + rng.uniform(0.0, 1.0)
            while proc.poll() is None and time.time() < wait_until:
                time.sleep(0.01)
        if proc.poll() is not None:  # the run ended before the kill: start again
            _, err = proc.communicate()
            assert proc.returncode == 0, err.decode()[-2000:]
            if _finished_epochs(save_dir) >= epochs:
                break
            continue
        proc.kill()
        proc.wait()
        finished = _finished_epochs(save_dir)
        checked, resumes_from = check_files(save_dir)
        assert finished - resumes_from <= 1, (finished, resumes_from)
        rounds.append(
            {
                "killed": True,
                "mode": mode,
                "finished_epochs": finished,
                "resumes_from": resumes_from,
                "files_checked": checked,
                "temporaries_left": len(_writing(save_dir)),
            }
        )
    result = subprocess.run(
        _train_args(data_dir, save_dir, epochs),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=max(60, deadline - time.time()),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    checked, resumes_from = check_files(save_dir)
    metrics = json.load(open(os.path.join(save_dir, "metrics.json")))
    assert metrics["epochs"] == epochs and resumes_from == epochs
    assert not _writing(save_dir)
    return {
        "kills": len(rounds),
        "epochs": epochs,
        "rounds": rounds,
        "epochs_lost": sum(r["finished_epochs"] - r["resumes_from"] for r in rounds),
        "final_files_checked": checked,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=int, default=3600)
    args = parser.parse_args()
    from tests.helpers import write_mnist

    with tempfile.TemporaryDirectory() as tmp:
        write_mnist(os.path.join(tmp, "mnist"), n_train=60, n_test=20)
        report = run_with_kills(
            os.path.join(tmp, "mnist"), os.path.join(tmp, "run"), args.epochs, args.kills, args.seed, args.timeout
        )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
