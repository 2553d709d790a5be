"""Crash-safe run directories: atomic writes, per-epoch checkpoints, resume."""

import contextlib
import csv
import io
import json
import math
import os
import re
import shutil
import tempfile

import keras

from keras_caps.training.averaging import averaged_weights

CHECKPOINT_DIR = "checkpoints"
_EPOCH_FILE = re.compile(r"^epoch-(\d{4,})\.keras$")
MIN_FREE_BYTES = 256 << 20


@contextlib.contextmanager
def _atomic_target(path, suffix=""):
    """Yields a temporary path beside `path`; on success it is synced and renamed to `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_bytes(path, data):
    """Writes `data` to `path` via a temporary file and a rename: never half-written."""
    with _atomic_target(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_json(path, obj):
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_write_csv(path, rows, columns=None):
    """Rows are dicts; the header is `columns`, or else the union of their keys, `epoch` first."""
    if columns is None:
        columns = ["epoch"] + sorted({k for row in rows for k in row} - {"epoch"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode())


def save_model_atomic(model, path):
    """`model.save(path)` through a temporary `.keras` file and a rename."""
    with _atomic_target(path, suffix=".keras") as tmp:
        model.save(tmp)


def check_writable(save_dir, min_free=MIN_FREE_BYTES):
    """Creates `save_dir` and makes sure a run can write there, before any training.

    The probe is a file of this call's own (the workers of a multi-worker run
    check the same folder at once: a shared name let one remove the other's).
    """
    try:
        os.makedirs(save_dir, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=save_dir, prefix=".write-test-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(b"ok")
                f.flush()
                os.fsync(f.fileno())
        finally:
            os.remove(probe)
    except OSError as error:
        raise OSError(f"`save_dir` {save_dir} is not writable: {error.strerror or error}.") from None
    free = shutil.disk_usage(save_dir).free
    if free < min_free:
        raise OSError(
            f"`save_dir` {save_dir}: only {free >> 20} MiB free; a run needs at least "
            f"{min_free >> 20} MiB for its checkpoints."
        )


def latest_checkpoint(save_dir):
    """`(epochs_done, path)` of the newest per-epoch checkpoint, or `(0, None)`."""
    folder = os.path.join(save_dir, CHECKPOINT_DIR)
    if not os.path.isdir(folder):
        return 0, None
    found = [(int(m.group(1)), name) for name in os.listdir(folder) if (m := _EPOCH_FILE.match(name))]
    if not found:
        return 0, None
    epoch, name = max(found)
    return epoch, os.path.join(folder, name)


class RunCheckpoint(keras.callbacks.Callback):
    """At each epoch's end: the epoch checkpoint (with optimizer state), the
    best model by `monitor` (the averaged weights, when the optimizer keeps a
    moving average), `history.json` and `log.csv`, each written atomically.
    A run killed at any moment resumes from the last whole epoch. `facts` (a dict) go into
    every epoch's row beside its logs: a run carried across machines says where each epoch ran.
    """

    def __init__(self, save_dir, history=None, monitor="val_accuracy", keep=2, facts=None):
        super().__init__()
        self.save_dir = save_dir
        self.facts = dict(facts or {})
        self.history = list(history or [])
        self.monitor = monitor
        self.keep = keep
        values = [row[monitor] for row in self.history if monitor in row]
        self.best = max(values) if values else None
        os.makedirs(os.path.join(save_dir, CHECKPOINT_DIR), exist_ok=True)
        if self.history:  # resumed: drop rows of an epoch whose checkpoint never landed
            self._write_history()

    def _write_history(self):
        atomic_write_json(os.path.join(self.save_dir, "history.json"), self.history)
        atomic_write_csv(os.path.join(self.save_dir, "log.csv"), self.history)

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if not math.isfinite(logs.get("loss", 0.0)):
            return  # a diverged epoch: keep the last good checkpoint as the one to resume from
        done = epoch + 1
        folder = os.path.join(self.save_dir, CHECKPOINT_DIR)
        # The epoch checkpoint is written last: it is what a restart resumes from,
        # and everything it needs (the history up to it) is already on disk.
        self.history = [row for row in self.history if row["epoch"] < done] + [{"epoch": done, **logs, **self.facts}]
        self._write_history()
        value = logs.get(self.monitor)
        if value is not None and (self.best is None or value > self.best):
            self.best = value
            # The model that was scored: the averaged weights, where the run keeps an average.
            with averaged_weights(self.model):
                save_model_atomic(self.model, os.path.join(self.save_dir, "best.keras"))
        save_model_atomic(self.model, os.path.join(folder, f"epoch-{done:04d}.keras"))
        for _old, name in sorted((int(m.group(1)), n) for n in os.listdir(folder) if (m := _EPOCH_FILE.match(n)))[
            : -self.keep
        ]:
            os.remove(os.path.join(folder, name))


class StopOnNaN(keras.callbacks.Callback):
    """Stops at the first non-finite loss, before the epoch's checkpoint is written,
    so the last good one stays as it was."""

    def __init__(self):
        super().__init__()
        self.bad_batch = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.bad_batch = batch
            self.model.stop_training = True


def remove_temporaries(save_dir):
    """Deletes `.tmp-*` files a killed run may have left behind."""
    for folder in (save_dir, os.path.join(save_dir, CHECKPOINT_DIR)):
        if os.path.isdir(folder):
            for name in os.listdir(folder):
                if name.startswith(".tmp-"):
                    os.remove(os.path.join(folder, name))
