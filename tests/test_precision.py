"""The dtype policy a run computes in, and a saved model moved onto another one (a bf16 run
resumed on a CPU without bf16 must not crawl through emulated bfloat16)."""

import json
import os

import keras
import numpy as np
import pytest

from keras_caps.optimizers import EMAWarmupAdam
from keras_caps.training import TrainConfig, precision, run
from tests.helpers import small_model, toy_data


def _machine(monkeypatch, gpu=False, bf16=False):
    monkeypatch.setattr(precision, "has_gpu", lambda: gpu)
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: bf16)


@pytest.mark.parametrize(
    "saved, mode, gpu, bf16, want",
    [
        ("mixed_bfloat16", "auto", False, True, "mixed_bfloat16"),  # the same kind of CPU: its own
        ("mixed_bfloat16", "auto", False, False, "float32"),  # AVX2 only: bf16 would be emulated
        ("float32", "auto", False, True, "float32"),  # float32 runs anywhere: kept
        ("mixed_float16", "auto", False, True, "mixed_bfloat16"),  # a GPU run resumed on a bf16 CPU
        ("mixed_float16", "auto", False, False, "float32"),
        ("mixed_bfloat16", "auto", True, False, "mixed_bfloat16"),  # GPUs run bf16
        ("float32", "auto", True, False, "float32"),
        ("mixed_bfloat16", "float32", False, True, "float32"),  # asked for: always
        ("float32", "mixed_bfloat16", False, False, "mixed_bfloat16"),
    ],
)
def test_a_saved_model_keeps_its_policy_unless_asked_or_emulated_here(monkeypatch, saved, mode, gpu, bf16, want):
    _machine(monkeypatch, gpu=gpu, bf16=bf16)
    assert precision.policy_for_saved(saved, mode) == want


def _trained(policy):
    """A small CapsNet in `policy`, compiled with an averaging optimizer, after three steps."""
    model = small_model(dtype=policy)
    model.compile(optimizer=EMAWarmupAdam(1e-3, use_ema=True, ema_momentum=0.9))
    x, y = toy_data(n=30, seed=0)
    model.fit(x, y, batch_size=10, epochs=1, verbose=0)
    return model


def _state(model):
    weights = [keras.ops.convert_to_numpy(v) for v in model.weights]
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    return weights, [keras.ops.convert_to_numpy(v) for v in optimizer.variables]


@pytest.mark.parametrize("source, target", [("mixed_bfloat16", "float32"), ("float32", "mixed_float16")])
def test_a_copy_in_another_policy_keeps_weights_and_optimizer_state(source, target):
    model = _trained(source)
    copy = precision.with_policy(model, target)
    assert copy is not model and copy.dtype_policy.name == target
    assert copy.primary_caps.dtype_policy.name == target and copy.digit_caps.dtype_policy.name == target
    (weights, slots), (got_weights, got_slots) = _state(model), _state(copy)
    assert int(copy.optimizer.iterations) == 3 and len(got_slots) == len(slots) > 3  # steps, moments, average
    for got, want in zip(got_weights + got_slots, weights + slots):
        np.testing.assert_array_equal(got, want)
    assert isinstance(copy.optimizer, keras.optimizers.LossScaleOptimizer) == (target == "mixed_float16")
    # It trains on from there: one more step moves the weights by about Adam's rate, not from scratch.
    x, y = toy_data(n=10, seed=1)
    copy.fit(x, y, batch_size=10, epochs=1, verbose=0)
    assert int(copy.optimizer.iterations) == 4
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(_state(copy)[0], weights))
    assert 0 < moved < 0.01
    assert precision.with_policy(model, source) is model


def _config(data_dir, save_dir, **kw):
    small = dict(batch_size=10, steps_per_epoch=2, seed=1, verbose=0, figures=False, recipe="reference")
    return TrainConfig(data_dir=data_dir, save_dir=save_dir, **{**small, **kw})


@pytest.mark.slow
def test_a_bf16_run_resumed_on_a_cpu_without_bf16_continues_in_float32(mnist_dir, tmp_path, monkeypatch, capsys):
    save = str(tmp_path / "run")
    _machine(monkeypatch, bf16=True)
    run(_config(mnist_dir, save, epochs=1, ema_momentum=0.5))
    first = keras.models.load_model(os.path.join(save, "checkpoints", "epoch-0001.keras"))
    assert first.dtype_policy.name == "mixed_bfloat16"
    _machine(monkeypatch, bf16=False)  # the next session's CPU
    capsys.readouterr()
    metrics = run(_config(mnist_dir, save, epochs=2, ema_momentum=0.5))
    assert "computes in mixed_bfloat16; continuing in float32" in capsys.readouterr().out
    assert metrics["policy"] == "float32" and metrics["epochs"] == 2
    second = keras.models.load_model(os.path.join(save, "checkpoints", "epoch-0002.keras"))
    assert second.dtype_policy.name == "float32" and int(second.optimizer.iterations) == 4  # not restarted
    history = json.load(open(os.path.join(save, "history.json")))
    assert [row["policy"] for row in history] == ["mixed_bfloat16", "float32"]  # where each epoch ran
    assert all(" cores" in row["machine"] for row in history)
    # `testing` on such a machine scores the bf16 checkpoint in float32 too.
    checkpoint = os.path.join(save, "checkpoints", "epoch-0001.keras")
    capsys.readouterr()
    tested = run(_config(mnist_dir, str(tmp_path / "test"), testing=True, weights=checkpoint))
    assert tested["policy"] == "float32" and "scoring it in float32" in capsys.readouterr().out
