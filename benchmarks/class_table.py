"""A markdown table of runs' test accuracy by class group, from their metrics.json files.

    python benchmarks/class_table.py --groups 0,1,2,3,4:5,6,7,8,9 RUNS/unequal_none_s0 RUNS/unequal_balanced_s0

Prints one JSON line per run (the last epoch's accuracy on held-out validation images where the
run had them, the test accuracy, each group's mean class accuracy, the weakest class), then the
table with the mean of each setting's runs, a setting being a run's name without its `_sN` seed
suffix. Choose between settings by the validation column; the test column is each run's one
look at the test set.
"""

import json
import os
import re
import sys

import numpy as np
from absl import app, flags

flags.DEFINE_string("groups", None, "Class-name groups to average, `a,b:c,d` (unset: all classes as one).")
FLAGS = flags.FLAGS


def run_row(run_dir, groups=None):
    """`{"run", "validation" (only for a run with held-out validation images), "accuracy",
    "<group>": mean class accuracy, "weakest"}` of one run's metrics.json."""
    with open(os.path.join(run_dir, "metrics.json")) as fh:
        metrics = json.load(fh)
    by_name = {row["class"]: row["accuracy"] for row in metrics["per_class"]}
    groups = groups or [list(by_name)]
    row = {"run": os.path.basename(os.path.normpath(run_dir))}
    validation = metrics.get("validation_accuracy")
    if "validation_accuracy" not in metrics and metrics.get("config", {}).get("val_split"):
        with open(os.path.join(run_dir, "history.json")) as fh:  # a run from before metrics.json had it
            validation = json.load(fh)[-1]["val_accuracy"]
    if validation is not None:
        row["validation"] = validation
    row["accuracy"] = metrics["test_accuracy"]
    for group in groups:
        unknown = [name for name in group if name not in by_name]
        if unknown:
            raise ValueError(
                f"{run_dir}: no class {', '.join(unknown)} in its metrics.json (it has {', '.join(by_name)})."
            )
        row[",".join(group)] = float(np.mean([by_name[name] for name in group]))
    weakest = min(by_name, key=lambda name: by_name[name])
    row["weakest"] = f"{weakest} {100 * by_name[weakest]:.1f}%"
    return row


def markdown(rows):
    """One table line per setting (runs averaged over seeds), accuracies in percent; the
    validation column only when every run has one."""
    keys = [k for k in rows[0] if k not in ("run", "weakest") and all(k in row for row in rows)]
    titles = {"accuracy": "test accuracy", "validation": "validation accuracy"}
    settings = {}
    for row in rows:
        settings.setdefault(re.sub(r"_s\d+$", "", row["run"]), []).append(row)
    lines = [
        "| setting | runs | " + " | ".join(titles.get(k, f"classes {k}") for k in keys) + " |",
        "| --- | --- |" + " --- |" * len(keys),
    ]
    for name, group in settings.items():
        cells = []
        for key in keys:
            values = [100 * r[key] for r in group]
            spread = f" ({', '.join(f'{v:.2f}' for v in values)})" if len(values) > 1 else ""
            cells.append(f"{np.mean(values):.2f}{spread}")
        lines.append(f"| {name} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv):
    groups = [g.split(",") for g in FLAGS.groups.split(":")] if FLAGS.groups else None
    if len(argv) < 2:
        print("error: name the run folders (each with a metrics.json).", file=sys.stderr)
        return 1
    try:
        rows = [run_row(path, groups) for path in argv[1:]]
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for row in rows:
        print(json.dumps(row))
    print(markdown(rows))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    app.run(main)
