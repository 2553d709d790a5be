"""tf.distribute: two replicas train like one, two workers on loopback like one process."""

import csv
import json
import os
import socket
import subprocess
import sys

import pytest
import tensorflow as tf

from keras_caps.training.distribution import StrategyError, is_chief, make_strategy, worker_dir
from tests.helpers import ROOT, common, train_here

# Subprocess runs, exports and kills: the slow tier (pytest -m 'not slow' skips them).
pytestmark = pytest.mark.slow

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")


def test_mirrored_on_two_cpus_follows_one_device():
    out = subprocess.run(
        [sys.executable, "-m", "tests.mirrored_child"], capture_output=True, text=True, timeout=300, env=ENV, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    one, two = result["one"], result["two"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    assert len(one["losses"]) == len(two["losses"]) == 8
    # The loss moves over the steps (so the comparison means something) ...
    assert abs(one["losses"][-1] - one["losses"][0]) > 1e-3
    # ... and two replicas, each on half of every batch, take the same steps.
    assert two["losses"] == pytest.approx(one["losses"], abs=1e-5)
    assert two["weights"] == pytest.approx(one["weights"], rel=1e-5)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _losses(save_dir):
    return [float(row["loss"]) for row in csv.DictReader(open(os.path.join(save_dir, "log.csv")))]


def test_two_workers_on_loopback_agree_with_one_process(mnist_dir, tmp_path):
    save = str(tmp_path / "two_workers")
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    args = [
        sys.executable,
        os.path.join(ROOT, "train.py"),
        *common(mnist_dir, save),
        "--epochs",
        "2",
        "--steps_per_epoch",
        "3",
        "--strategy",
        "multi_worker",
    ]
    procs = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(
            subprocess.Popen(
                args,
                env=dict(ENV, TF_CONFIG=json.dumps(config)),
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        outputs = [p.communicate(timeout=300) for p in procs]
    except subprocess.TimeoutExpired:  # a hang: say where each worker had got to
        for p in procs:
            p.kill()
        ends = [p.communicate() for p in procs]
        tails = [f"worker {i}:\n{out[-1500:]}\n{err[-1500:]}" for i, (out, err) in enumerate(ends)]
        pytest.fail("The two workers did not finish in 300 s.\n" + "\n".join(tails))
    finally:
        for p in procs:
            p.kill()
    for p, (_stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stderr[-3000:]
    assert "2 replicas (multi_worker)" in outputs[0][0]
    # Only the chief (worker 0) leaves files; worker 1's scratch folder is gone.
    assert sorted(n for n in os.listdir(save) if n.startswith(".")) == []
    for name in ("best.keras", "final.keras", "metrics.json", "log.csv", "checkpoints/epoch-0002.keras"):
        assert os.path.exists(os.path.join(save, name)), name
    assert json.load(open(os.path.join(save, "metrics.json")))["replicas"] == 2

    # One process, one replica, same global batches: the same loss curve.
    single = str(tmp_path / "one_process")
    result = train_here(*common(mnist_dir, single), "--epochs", "2", "--steps_per_epoch", "3", "--strategy", "mirrored")
    assert result.returncode == 0, result.stderr[-3000:]
    assert _losses(save) == pytest.approx(_losses(single), abs=1e-4)


@pytest.mark.parametrize(
    "strategy,tf_config,message",
    [
        ("multi_worker", None, "needs TF_CONFIG"),
        ("multi_worker", "{not json", "not a valid cluster description"),
        (
            "multi_worker",
            '{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 3}}',
            "is not in the cluster",
        ),
        ("tpu", None, "no TPU found"),
    ],
)
def test_strategy_errors_are_one_clear_line(mnist_dir, tmp_path, monkeypatch, strategy, tf_config, message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf_config:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    # In this process (tests.helpers.run_cli): each error comes before any strategy is made.
    result = train_here("--data_dir", mnist_dir, "--save_dir", str(tmp_path / "r"), "--strategy", strategy)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def test_chief_is_worker_zero_unless_the_cluster_has_a_chief(tmp_path):
    class Fake:
        def __init__(self, spec, task_type, task_id):
            self.cluster_resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
                tf.train.ClusterSpec(spec), task_type=task_type, task_id=task_id
            )

    workers = {"worker": ["a:1", "b:1"]}
    assert is_chief(Fake(workers, "worker", 0)) and not is_chief(Fake(workers, "worker", 1))
    with_chief = {"chief": ["c:1"], "worker": ["a:1", "b:1"]}
    assert is_chief(Fake(with_chief, "chief", 0)) and not is_chief(Fake(with_chief, "worker", 0))
    assert is_chief(make_strategy("default"))
    assert worker_dir(str(tmp_path), Fake(workers, "worker", 1)) == str(tmp_path / ".worker-1")
    assert worker_dir(str(tmp_path), make_strategy("default")) == str(tmp_path)
    with pytest.raises(StrategyError, match="Unknown strategy"):
        make_strategy("ring")


def test_keras_still_fails_multi_worker_without_the_workaround():
    """Why CapsNet overrides Keras's private `_maybe_symbolic_build` (and requirements.txt pins
    Keras): a plain Keras model's fit fails under MultiWorkerMirroredStrategy. When this test
    fails because fit succeeds, Keras has fixed keras-team/keras#20585: drop the override."""
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    configs = [{"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}} for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.keras_20585_child"],
            env=dict(ENV, TF_CONFIG=json.dumps(config)),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for config in configs
    ]
    try:
        outputs = [p.communicate(timeout=300)[0].strip().splitlines() for p in procs]
    finally:
        for p in procs:
            p.kill()
    last = outputs[0][-1] if outputs[0] else ""
    assert last.startswith("error:") and "PerReplica" in last, last
