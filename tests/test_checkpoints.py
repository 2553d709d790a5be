import json
import os

import pytest

from keras_caps.training import checkpoints


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    path = str(tmp_path / "m.json")
    checkpoints.atomic_write_json(path, {"a": 1})

    with pytest.raises(RuntimeError):
        with checkpoints._atomic_target(path) as tmp:
            with open(tmp, "w") as f:
                f.write('{"a": 2, "trunc')
            raise RuntimeError("killed mid-write")
    assert json.load(open(path)) == {"a": 1}
    assert os.listdir(tmp_path) == ["m.json"]  # no temporary left behind


def test_latest_checkpoint_and_temporaries(tmp_path):
    save = str(tmp_path)
    assert checkpoints.latest_checkpoint(save) == (0, None)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name in ("epoch-0002.keras", "epoch-0010.keras", "epoch-0003.keras", "notes.txt", ".tmp-xyz.keras"):
        (folder / name).write_bytes(b"x")
    (tmp_path / ".tmp-best.keras").write_bytes(b"half")
    assert checkpoints.latest_checkpoint(save) == (10, str(folder / "epoch-0010.keras"))
    checkpoints.remove_temporaries(save)
    assert not (tmp_path / ".tmp-best.keras").exists() and not (folder / ".tmp-xyz.keras").exists()


def test_csv_header_is_union_with_epoch_first(tmp_path):
    path = str(tmp_path / "log.csv")
    checkpoints.atomic_write_csv(path, [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.4, "val_loss": 0.3}])
    lines = open(path).read().splitlines()
    assert lines[0] == "epoch,loss,val_loss" and lines[2] == "2,0.4,0.3"


def test_workers_checking_one_save_dir_at_once_do_not_trip_each_other(tmp_path):
    """The workers of a multi-worker run check the same folder together: each probe is its own
    (a shared probe name let one worker remove another's, which then stopped and hung the run)."""
    import threading

    errors = []

    def check():
        for _ in range(100):
            try:
                checkpoints.check_writable(str(tmp_path / "run"), min_free=0)
            except OSError as error:
                errors.append(str(error))

    threads = [threading.Thread(target=check) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and os.listdir(tmp_path / "run") == []  # no probe left behind


def test_check_writable_rejects_a_file_path(tmp_path):
    blocker = tmp_path / "f"
    blocker.write_text("x")
    with pytest.raises(OSError, match="not writable"):
        checkpoints.check_writable(str(blocker / "run"))
    with pytest.raises(OSError, match="MiB free"):
        checkpoints.check_writable(str(tmp_path / "ok"), min_free=1 << 62)
