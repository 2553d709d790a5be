"""What the benchmarks rest on: the FLOP count (the exporter's, against TensorFlow's own
count of the forward graph), the long-run runner, the convergence tables and the colour set."""

import pytest
import tensorflow as tf

from keras_caps import CapsNet
from keras_caps.export.micro import flops_per_image


def test_forward_flops_match_tensorflow_profiler():
    from tensorflow.python.profiler import model_analyzer, option_builder

    model = CapsNet()
    fn = tf.function(lambda x: model.forward(x)["scores"])
    graph = fn.get_concrete_function(tf.zeros((1, 28, 28, 1))).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    counted = model_analyzer.profile(graph, options=options).total_float_ops
    ours = flops_per_image(model)
    # TF counts convolutions and dense layers, not the batched matmuls of the routing.
    assert counted == pytest.approx(ours["forward"], rel=0.02)
    assert counted < ours["forward"]
    assert ours["train"] == 3 * ours["forward"]


def _fake_run(folder, recipe, seed, errors, seconds=60.0, val_split=0.0, machine=None, raw_errors=None):
    import json
    import os

    os.makedirs(folder)
    history = [
        {"epoch": i + 1, "val_accuracy": 1 - e / 100, "seconds": seconds, "train_seconds": seconds - 5}
        for i, e in enumerate(errors)
    ]
    for row, e in zip(history, raw_errors or ()):
        row["raw_val_accuracy"] = 1 - e / 100
    metrics = {
        "test_error": errors[-1] / 100,
        "policy": "mixed_bfloat16",
        "peak_rss_mib": 1536.0,
        "machine": machine or {"cpu": "AMD EPYC", "cores": 2, "avx512": True, "bf16": True, "gpu": False},
        "config": {"recipe": recipe, "seed": seed, "val_split": val_split},
    }
    for name, data in (("history.json", history), ("metrics.json", metrics)):
        with open(os.path.join(folder, name), "w") as f:
            json.dump(data, f)
    return str(folder)


def test_convergence_summary_and_figure(tmp_path, capsys):
    import json

    from benchmarks.convergence import main

    runs = [
        _fake_run(tmp_path / "f0", "fast", 0, [1.0, 0.5, 0.30]),
        _fake_run(tmp_path / "f1", "fast", 1, [1.1, 0.6, 0.26], raw_errors=[0.8, 0.5, 0.31]),
        _fake_run(tmp_path / "f2", "fast", 2, [0.9, 0.4, 0.28]),
        _fake_run(tmp_path / "r0", "reference", 0, [1.2, 0.7, 0.40], seconds=50.0),
    ]
    summary = {row["label"]: row for row in main([*runs, "--out", str(tmp_path / "c.png"), "--markdown"])}
    assert summary["fast"]["mean_error_percent"] == pytest.approx(0.28)
    assert summary["fast"]["std_error_percent"] == pytest.approx(0.02)
    assert (summary["fast"]["min_error_percent"], summary["fast"]["max_error_percent"]) == (0.26, 0.30)
    assert summary["fast"]["mean_wall_minutes"] == pytest.approx(3.0)
    assert summary["fast"]["mean_train_minutes"] == pytest.approx(2.8, abs=0.05)
    assert summary["fast"]["error_ratio_to_reference"] == pytest.approx(0.7)
    assert summary["fast"]["minutes_ratio_to_reference"] == pytest.approx(1.2)
    assert (tmp_path / "c.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert json.loads(out.splitlines()[0])["final_error_percent"] == 0.30
    assert "| fast | 1 | 0.26% | 3 |" in out and "AMD EPYC (2 cores, AVX-512, bf16)" in out and "1.50 GiB" in out
    assert "| test error (%) after epoch | 1 | 2 | 3 |" in out and "| reference, seed 0 | 1.20 | 0.70 | 0.40 |" in out
    # The averaged run's weights as trained get their own row; runs without them, none.
    assert "| fast, seed 1, weights as trained | 0.80 | 0.50 | 0.31 |" in out
    assert out.count("weights as trained") == 1
    # Labels given on the command line; curves on the test set and on a validation split do not mix.
    summary = main([f"mine={runs[0]}", "--out", str(tmp_path / "d.png")])
    assert summary[0]["label"] == "mine" and "error_ratio_to_reference" not in summary[0]
    val = _fake_run(tmp_path / "v", "fast", 0, [1.0], val_split=0.1)
    with pytest.raises(SystemExit):
        main([runs[0], val, "--out", str(tmp_path / "e.png")])
    with pytest.raises(SystemExit):
        main([str(tmp_path / "absent"), "--out", str(tmp_path / "e.png")])
    # --epochs: the table's columns, named in the error when they are not epoch numbers.
    for bad, message in (("1,two", "not a comma-separated list of epoch numbers"), ("0,5", "epochs count from 1")):
        with pytest.raises(SystemExit):
            main([runs[0], "--out", str(tmp_path / "e.png"), "--markdown", "--epochs", bad])
        assert f"--epochs {bad}: {message}" in capsys.readouterr().err


def test_convergence_names_each_runs_cpu_when_the_runs_were_on_different_machines(tmp_path):
    from benchmarks.convergence import load_run, plot, summarize

    avx2 = {"cpu": "AMD EPYC", "cpu_family_model": "25/1", "cores": 2, "avx512": False, "bf16": False, "gpu": False}
    same = [load_run(_fake_run(tmp_path / f"s{i}", "fast", i, [1.0, 0.3])) for i in range(2)]
    assert plot(same, str(tmp_path / "same.png")) == [
        "fast (seed 0): 0.30% after 2 epochs",
        "fast (seed 1): 0.30% after 2 epochs",
    ]
    other = load_run(_fake_run(tmp_path / "o", "fast", 2, [1.0, 0.28], machine=avx2))
    labels = plot([same[0], other], str(tmp_path / "mixed.png"))
    # The minutes of runs on different machines are no ratio; the errors still are.
    reference = load_run(_fake_run(tmp_path / "r", "reference", 0, [1.0, 0.4], seconds=30.0))
    fast = {row["label"]: row for row in summarize([same[0], other, reference])}["fast"]
    assert fast["minutes_ratio_to_reference"] is None and fast["error_ratio_to_reference"] == pytest.approx(0.725)
    fast = {row["label"]: row for row in summarize([same[0], reference])}["fast"]
    assert fast["minutes_ratio_to_reference"] == pytest.approx(2.0)
    assert labels[0].endswith("0.30% after 2 epochs, AMD EPYC (2 cores, AVX-512, bf16), mixed_bfloat16")
    assert labels[1].endswith("0.28% after 2 epochs, AMD EPYC (family/model 25/1, 2 cores, no AVX-512), mixed_bfloat16")


def test_convergence_names_where_each_epoch_ran_for_a_run_resumed_elsewhere(tmp_path):
    import json

    from benchmarks.convergence import load_run

    folder = _fake_run(tmp_path / "r", "long", 0, [1.0, 0.5, 0.4, 0.3])
    history = json.load(open(f"{folder}/history.json"))
    for row in history[2:]:  # epochs 3-4 resumed on an AVX2-only CPU (rows 1-2 predate the row's facts)
        row.update(machine="Intel Xeon (2 cores, no AVX-512)", policy="float32")
    json.dump(history, open(f"{folder}/history.json", "w"))
    run = load_run(folder)
    assert run["cpu"] == "AMD EPYC (2 cores, AVX-512, bf16) (epochs 1-2); Intel Xeon (2 cores, no AVX-512) (epochs 3-4)"
    assert run["policies"] == "mixed_bfloat16 (epochs 1-2); float32 (epochs 3-4)"
    one = load_run(_fake_run(tmp_path / "one", "long", 1, [1.0, 0.3]))
    assert (one["cpu"], one["policies"]) == ("AMD EPYC (2 cores, AVX-512, bf16)", "mixed_bfloat16")


def test_long_runs_runs_what_is_not_recorded_and_keeps_each_record(tmp_path, monkeypatch, capsys):
    import json
    import os
    import subprocess

    from benchmarks import long_runs

    results, runs_dir = tmp_path / "results", tmp_path / "runs"
    runs = long_runs.read_runs(os.path.join(long_runs.ROOT, "benchmarks", "runs", "converged.txt"))
    assert long_runs.pending(runs, str(results)) == ["fast_s0", "reference20_s0", "fast_s1", "fast_s2"]
    # The default command for the recipe's seeds; the reference's schedule cut to the recipe's 20 epochs.
    assert long_runs.command(runs, "fast_s1", "D", str(runs_dir))[1:] == [
        os.path.join(long_runs.ROOT, "train.py"),
        *("--routings", "3", "--data_dir", "D", "--verbose", "2", "--save_dir", str(runs_dir / "fast_s1")),
        *("--seed", "1"),
    ]
    assert "--recipe reference --epochs 20 --seed 0" in " ".join(long_runs.command(runs, "reference20_s0", "D", "R"))
    ran = []

    def fake_train(cmd, cwd):  # a finished run writes its record; seed 1's run fails
        save_dir = cmd[cmd.index("--save_dir") + 1]
        ran.append(os.path.basename(save_dir))
        if save_dir.endswith("fast_s1"):
            return subprocess.CompletedProcess(cmd, 1)
        os.makedirs(save_dir)
        for name in ("history.json", "metrics.json"):
            with open(os.path.join(save_dir, name), "w") as f:
                json.dump({"run": os.path.basename(save_dir)}, f)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(long_runs.subprocess, "run", fake_train)
    runs_file = str(tmp_path / "mine.txt")
    with open(runs_file, "w") as fh:
        fh.write("# a comment\nfast_s0 --seed 0\nreference20_s0 --recipe reference --epochs 20 --seed 0\n\n")
        fh.write("fast_s1 --seed 1  # seed 1\nfast_s2 --seed 2\n")
    with pytest.raises(SystemExit):  # argparse's error names the folder
        long_runs.main([runs_file, "--data_dir", str(tmp_path / "absent"), "--dry_run"])
    assert "--data_dir " + str(tmp_path / "absent") + ": no such folder" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_text("fast_s0 --seed 0\n--seed 1\n")
    with pytest.raises(SystemExit):
        long_runs.main([str(bad), "--data_dir", str(tmp_path)])
    assert "bad.txt:2: a line must start with a new run's name, got '--seed'" in capsys.readouterr().err
    args = [runs_file, "--data_dir", str(tmp_path), "--runs_dir", str(runs_dir), "--results", str(results)]
    assert long_runs.main([*args, "--one"]) == ["fast_s0"]
    assert json.load(open(results / "fast_s0" / "metrics.json")) == {"run": "fast_s0"}
    with pytest.raises(SystemExit, match="fast_s1 failed .*exit status 1"):
        long_runs.main(args)
    assert ran == ["fast_s0", "reference20_s0", "fast_s1"]
    assert long_runs.pending(runs, str(results)) == ["fast_s1", "fast_s2"]
    # A dry run prints the pending commands and runs nothing.
    capsys.readouterr()
    assert long_runs.main([*args, "--dry_run"]) == ["fast_s1", "fast_s2"] and len(ran) == 3
    assert [json.loads(line)["run"] for line in capsys.readouterr().out.splitlines()] == ["fast_s1", "fast_s2"]
    with pytest.raises(FileNotFoundError, match="no history.json, metrics.json; the run did not finish"):
        long_runs.keep_record("fast_s2", str(runs_dir), str(results))
    # --progress copies a run's epochs so far (fast_s1 has two), and runs nothing.
    os.makedirs(runs_dir / "fast_s1")
    epochs = [{"epoch": 1, "val_accuracy": 0.99, "seconds": 60.0}, {"epoch": 2, "val_accuracy": 0.995, "seconds": 60.0}]
    (runs_dir / "fast_s1" / "history.json").write_text(json.dumps(epochs))
    capsys.readouterr()
    assert long_runs.main([*args, "--progress"]) == ["fast_s1", "fast_s2"] and len(ran) == 3
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == [{"run": "fast_s1", "epochs_done": 2}, {"run": "fast_s2", "epochs_done": None}]
    assert json.load(open(results / "fast_s1" / "history.json")) == epochs
    running = json.load(open(results / "fast_s1" / "running.json"))
    assert running["config"] == {"recipe": "fast", "seed": 1, "val_split": 0.0}
    # convergence.py tables it as running: its epochs, no final error, not in the seeds' mean.
    from benchmarks.convergence import load_run, markdown, summarize

    run = load_run(str(results / "fast_s1"))
    assert run["running"] and run["final_error_percent"] is None and run["error_percent"] == [1.0, 0.5]
    assert "| fast | 1 | running | 2 |" in markdown([run]) and summarize([run]) == []
    assert "| fast, seed 1 | 0.50 |" in markdown([run], epochs=[2])  # the columns asked for
    assert long_runs.pending(runs, str(results)) == ["fast_s1", "fast_s2"]  # still to run
    # Finished, its record replaces what --progress kept.
    for f in ("history.json", "metrics.json"):
        (runs_dir / "fast_s1" / f).write_text(json.dumps(epochs if f == "history.json" else {"run": "fast_s1"}))
    long_runs.keep_record("fast_s1", str(runs_dir), str(results))
    assert sorted(os.listdir(results / "fast_s1")) == ["history.json", "metrics.json"]
    assert long_runs.pending(runs, str(results)) == ["fast_s2"]
    # With no --results, the records go to benchmarks/results/<runs file's name>: all four are there.
    converged = os.path.join(long_runs.ROOT, "benchmarks", "runs", "converged.txt")
    assert long_runs.main([converged, "--data_dir", "."]) == []


def test_recoloured_digits_keep_their_shape_on_contrasting_colours(tmp_path):
    """benchmarks/write_image_folder.py's colour set: ink of one colour, background of
    another at least 96 apart on average, the digit where MNIST had it, padded to 32x32."""
    import os

    import numpy as np

    from benchmarks.write_image_folder import recolor, write_folder

    digits = np.zeros((50, 28, 28), np.uint8)
    digits[:, 10:18, 12:16] = 255
    images = recolor(digits, np.random.default_rng(0))
    assert images.shape == (50, 32, 32, 3) and images.dtype == np.uint8
    ink, background = images[:, 14, 16].astype(int), images[:, 0, 0].astype(int)
    assert (np.abs(ink - background).mean(axis=1) >= 96).all()
    assert (images[:, 12:20, 14:18] == ink[:, None, None, :]).all()  # the stroke, shifted by the padding
    light = recolor(digits, np.random.default_rng(1), lightest_background=176)
    ink, background = light[:, 14, 16].astype(int), light[:, 0, 0].astype(int)
    assert background.min() >= 176 and (np.abs(ink - background).mean(axis=1) >= 96).all()
    write_folder(images[:4], np.array([0, 1, 1, 0]), str(tmp_path), ["a", "b"])
    assert sorted(os.listdir(tmp_path / "b")) == ["00001.png", "00002.png"]


def test_an_unequal_set_keeps_the_first_few_of_its_minority_classes():
    import numpy as np

    from benchmarks.write_image_folder import keep_few

    labels = np.array([5, 1, 5, 5, 2, 1, 5, 2])
    np.testing.assert_array_equal(keep_few(labels, [5, 2], 2), [0, 1, 2, 4, 5, 7])
    np.testing.assert_array_equal(keep_few(labels, [], 1), np.arange(8))


def test_the_predict_timing_covers_the_folder_each_way(tmp_path):
    import os

    import numpy as np
    from PIL import Image

    import keras_caps
    from benchmarks.predict_folder import time_model

    for i in range(3):
        Image.fromarray(np.full((28, 28), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    model = os.path.join(os.path.dirname(keras_caps.__file__), "shipped_presets", "mnist_micro", "capsnet_int8.tflite")
    row = time_model(model, str(tmp_path), [1, 2])
    assert row["images"] == 3 and row["unreadable"] == 0
    assert row["batch_1_s"] > 0 and row["batch_2_s"] > 0
    assert row["speedup"] > 0


def test_the_class_table_averages_groups_and_seeds(tmp_path):
    import json

    from benchmarks.class_table import markdown, run_row

    def write(name, accuracy, per_class):
        (tmp_path / name).mkdir()
        rows = [{"class": c, "accuracy": a} for c, a in per_class.items()]
        (tmp_path / name / "metrics.json").write_text(json.dumps({"test_accuracy": accuracy, "per_class": rows}))
        return str(tmp_path / name)

    first = run_row(write("w_s0", 0.9, {"a": 1.0, "b": 0.9, "c": 0.5}), [["a"], ["b", "c"]])
    assert first == {"run": "w_s0", "accuracy": 0.9, "a": 1.0, "b,c": 0.7, "weakest": "c 50.0%"}
    second = run_row(write("w_s1", 0.8, {"a": 0.8, "b": 0.8, "c": 0.8}), [["a"], ["b", "c"]])
    table = markdown([first, second]).splitlines()
    assert table[0] == "| setting | runs | test accuracy | classes a | classes b,c |"
    assert table[2] == "| w | 2 | 85.00 (90.00, 80.00) | 90.00 (100.00, 80.00) | 75.00 (70.00, 80.00) |"
    with pytest.raises(ValueError, match=r"w_s1: no class d in its metrics.json \(it has a, b, c\)"):
        run_row(str(tmp_path / "w_s1"), [["a", "d"]])

    # Runs that held out validation images: their last epoch's accuracy there, the column to choose by.
    (tmp_path / "w_s0" / "metrics.json").write_text(
        json.dumps({"test_accuracy": 0.9, "validation_accuracy": 0.95, "per_class": [{"class": "a", "accuracy": 0.9}]})
    )
    (tmp_path / "w_s1" / "metrics.json").write_text(  # written before metrics.json had it: from history.json
        json.dumps({"test_accuracy": 0.8, "config": {"val_split": 0.1}, "per_class": [{"class": "a", "accuracy": 0.8}]})
    )
    (tmp_path / "w_s1" / "history.json").write_text(json.dumps([{"val_accuracy": 0.5}, {"val_accuracy": 0.75}]))
    rows = [run_row(str(tmp_path / name)) for name in ("w_s0", "w_s1")]
    assert [row["validation"] for row in rows] == [0.95, 0.75]
    table = markdown(rows).splitlines()
    assert table[0] == "| setting | runs | validation accuracy | test accuracy | classes a |"
    assert table[2] == "| w | 2 | 85.00 (95.00, 75.00) | 85.00 (90.00, 80.00) | 85.00 (90.00, 80.00) |"
    assert "validation" not in markdown([rows[0], first]).splitlines()[0]  # not every run has one


@pytest.mark.parametrize(
    "script, args, message",
    [
        ("class_table.py", ["RUN"], "RUN/metrics.json"),  # a run folder without one (tmp_path/RUN)
        ("class_table.py", [], "error: name the run folders"),
        ("write_image_folder.py", ["--data_dir", ".", "--out", "o", "--minority_classes", "5,x"], "digits 0-9"),
        ("write_image_folder.py", ["--data_dir", ".", "--out", "o", "--minority_train", "-1"], "minority_train"),
        ("write_image_folder.py", ["--data_dir", ".", "--out", "o", "--invert", "--recolor"], "exclude each other"),
        (
            "write_image_folder.py",
            ["--data_dir", ".", "--out", "o", "--lightest_background", "300"],
            "300 is not an integer in the range [0, 255]",
        ),
        ("predict_folder.py", ["--folder", ".", "--models", "m", "--batch_sizes", "1,0"], "integers >= 1"),
    ],
)
def test_the_benchmark_tools_refuse_bad_flags_in_a_line(script, args, message, tmp_path):
    import os
    import subprocess
    import sys

    args = [str(tmp_path / "RUN") if a == "RUN" else a for a in args]
    message = message.replace("RUN", str(tmp_path / "RUN"))
    tool = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", script)
    result = subprocess.run([sys.executable, tool, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and message in result.stderr, result.stderr[-1000:]
    assert "Traceback" not in result.stderr
