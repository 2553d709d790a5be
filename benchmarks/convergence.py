"""Test error against wall-clock minutes for train.py runs, with the paper's and the ports' figures.

    python benchmarks/convergence.py ~/runs/fast_s0 ~/runs/fast_s1 ~/runs/fast_s2 ~/runs/reference20_s0 \
        --out benchmarks/figures/mnist_convergence.png [--json summary.json] [--markdown [--epochs 1,2,5,10]]

Each argument is a run's --save_dir (its history.json and metrics.json), optionally as LABEL=DIR,
or a run still going as `long_runs.py --progress` records it (history.json and running.json: its
epochs so far, no final error, left out of the means); runs are grouped by label (default: the
run's recipe). `--epochs` picks the per-epoch table's columns. The
curve is the per-epoch validation score (the test set for runs with --val_split 0, as the final
runs are; the held-out training images otherwise) against the cumulative wall-clock minutes of
the epochs (training and validation). Prints one JSON line per run, one per label (mean, spread
and sample standard deviation of the final error over its seeds), and each label's mean error and
minutes as ratios to the `reference` label's, when there is one (the minutes' only when all those
runs were on one machine kind and policy). The figure has two panels: the error by epoch (the
schedules side by side, whatever the machine) and against each run's minutes. The final error is the model a
run keeps (final.keras, the last epoch), never the best epoch.
"""

import argparse
import json
import math
import os
import sys
import textwrap

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keras_caps.machine loads TensorFlow: not its start-up lines

from keras_caps.machine import machine_label  # noqa: E402  (run as a script, from any folder)

PORTS_ERROR = 0.34  # % test error: the PyTorch and Keras ports of the reference, mean of 3 runs after 50 epochs
PAPER_ERROR = 0.25  # % test error: Sabour et al. 2017, 3 routings with reconstruction
Y_TOP = 5.0  # % error: the figure's ceiling


class RunError(ValueError):
    """A folder that is not a finished run."""


def load_run(folder, label=None):
    """One run's figures from its `history.json` and `metrics.json`; a run still going
    (long_runs.py --progress: `history.json` and `running.json`) has no final error."""
    running = not os.path.isfile(os.path.join(folder, "metrics.json")) and os.path.isfile(
        os.path.join(folder, "running.json")
    )
    rows = {}
    for name in ("history.json", "running.json" if running else "metrics.json"):
        path = os.path.join(folder, name)
        try:
            with open(path) as f:
                rows[name] = json.load(f)
        except (OSError, ValueError) as error:
            raise RunError(f"{path}: not a finished or running run's file ({error}).") from None
    history, metrics = rows["history.json"], rows["running.json" if running else "metrics.json"]
    if not history or any("val_accuracy" not in row or "seconds" not in row for row in history):
        raise RunError(f"{folder}: history.json has no per-epoch val_accuracy and seconds.")
    config = metrics["config"]
    minutes, elapsed = [], 0.0
    for row in history:
        elapsed += row["seconds"]
        minutes.append(elapsed / 60)
    recipe = config.get("recipe", "reference")
    return {
        "run": folder,
        "label": label or recipe,
        "recipe": recipe,
        "seed": config.get("seed"),
        "on_test_set": not config.get("val_split"),
        "epochs": len(history),
        "error_percent": [round(100 * (1 - row["val_accuracy"]), 3) for row in history],
        # A run that keeps an average of its weights also scores the weights as trained.
        "raw_error_percent": [round(100 * (1 - row["raw_val_accuracy"]), 3) for row in history]
        if all("raw_val_accuracy" in row for row in history)
        else None,
        "minutes": [round(m, 2) for m in minutes],
        "running": running,
        "final_error_percent": None if running else round(100 * metrics["test_error"], 3),
        "train_minutes": round(sum(row.get("train_seconds", row["seconds"]) for row in history) / 60, 1),
        "wall_minutes": round(minutes[-1], 1),
        "policy": metrics.get("policy"),
        "machine": metrics.get("machine"),
        **where_epochs_ran(history, metrics),
        "peak_rss_mib": metrics.get("peak_rss_mib"),
    }


def where_epochs_ran(history, metrics):
    """`{"cpu": text, "policies": text}` of a run: one machine and policy, or, for a run resumed
    elsewhere, each with its epochs ("A (epochs 1-37); B (epochs 38-50)"). Each history row names
    its own (train.py since commit bf8b784); rows before that are taken as the finishing machine's."""
    unknown = "not recorded"  # a running run's rows from before rows named their machine
    finished = (
        machine_label(metrics["machine"]) if metrics.get("machine") else unknown,
        metrics.get("policy", unknown),
    )
    spans = []  # [(machine, policy), first, last]
    for row in history:
        where = (row.get("machine", finished[0]), row.get("policy", finished[1]))
        if spans and spans[-1][0] == where:
            spans[-1][2] = row["epoch"]
        else:
            spans.append([where, row["epoch"], row["epoch"]])

    def text(index):
        values = [(where[index], first, last) for where, first, last in spans]
        if len({v for v, _, _ in values}) == 1:
            return str(values[0][0])
        return "; ".join(f"{v} (epochs {a}-{b})" for v, a, b in values)

    return {"cpu": text(0), "policies": text(1)}


def summarize(runs):
    """Per label: the finished runs' final errors (mean, sample std, min, max) and mean minutes."""
    labels = {}
    for run in runs:
        if not run["running"]:  # a run still going has no final error yet
            labels.setdefault(run["label"], []).append(run)
    out = []
    for label, group in labels.items():
        errors = [r["final_error_percent"] for r in group]
        mean = sum(errors) / len(errors)
        std = math.sqrt(sum((e - mean) ** 2 for e in errors) / (len(errors) - 1)) if len(errors) > 1 else None
        out.append(
            {
                "label": label,
                "runs": len(group),
                "seeds": [r["seed"] for r in group],
                "epochs": sorted({r["epochs"] for r in group}),
                "mean_error_percent": round(mean, 3),
                "std_error_percent": None if std is None else round(std, 3),
                "min_error_percent": min(errors),
                "max_error_percent": max(errors),
                "mean_train_minutes": round(sum(r["train_minutes"] for r in group) / len(group), 1),
                "mean_wall_minutes": round(sum(r["wall_minutes"] for r in group) / len(group), 1),
            }
        )
    reference = next((s for s in out if s["label"] == "reference"), None)
    if reference:
        for s in out:
            s["error_ratio_to_reference"] = round(s["mean_error_percent"] / reference["mean_error_percent"], 3)
            # Minutes compare only within one machine and policy: across sessions the CPU differs.
            pair = [r for r in runs if r["label"] in (s["label"], "reference")]
            comparable = len({_where(r) for r in pair}) == 1
            ratio = round(s["mean_wall_minutes"] / reference["mean_wall_minutes"], 3) if comparable else None
            s["minutes_ratio_to_reference"] = ratio
    return out


def _where(run):
    return run["cpu"], run["policies"]


def plot(runs, path):
    """Writes the figure to `path`; returns its legend's labels, one per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Runs recorded on different machines (sessions) name their CPU and policy each: their minutes differ.
    one_machine = len({_where(r) for r in runs}) == 1
    colors, seen, labels = {}, {}, []
    # Left, by epoch: the schedules side by side whatever the machine; right, by the run's own minutes.
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for run in runs:
        color = colors.setdefault(run["label"], f"C{len(colors)}")
        labels.append(
            f"{run['label']} (seed {run['seed']}): "
            + (
                f"{run['error_percent'][-1]:.2f}% after {run['epochs']} epochs, running"
                if run["running"]
                else f"{run['final_error_percent']:.2f}% after {run['epochs']} epochs"
            )
            + ("" if one_machine else f", {run['cpu']}, {run['policies']}")
        )
        # One colour a label, one marker a seed within it: the seeds stay apart where they cross.
        nth = seen[run["label"]] = seen.get(run["label"], -1) + 1
        style = {"marker": "osv^D"[nth % 5], "markersize": 3.5, "color": color, "alpha": 0.85}
        axes[0].plot(range(1, run["epochs"] + 1), run["error_percent"], **style, label=labels[-1])
        axes[1].plot(run["minutes"], run["error_percent"], **style)
    # The averaged weights' first epochs (tens of %) would squash the region that matters.
    top = min(Y_TOP, max(2.0, max(max(r["error_percent"]) for r in runs) * 1.1))
    for ax in axes:
        ax.axhline(PORTS_ERROR, color="grey", linestyle="--", label=f"PyTorch/Keras ports, 50 epochs: {PORTS_ERROR}%")
        ax.axhline(PAPER_ERROR, color="black", linestyle=":", label=f"paper: {PAPER_ERROR}%")
        ax.set_yscale("log")
        ax.set_ylim(0.15, top)
        ax.set_yticks([t for t in (0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0) if t <= top])
        ax.get_yaxis().set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
    where = "test" if runs[0]["on_test_set"] else "validation"
    clipped = any(e > top for r in runs for e in r["error_percent"])
    axes[0].set_ylabel(f"MNIST {where} error (%) after each epoch" + (f" (above {top:g}%: off)" if clipped else ""))
    axes[0].set_xlabel("epoch")
    axes[1].set_xlabel("wall-clock minutes (training and per-epoch scoring)")
    where_run = f"\n{runs[0]['cpu']}, {runs[0]['policies']}" if one_machine else ""  # long: a line of its own
    axes[0].set_title(f"CapsNet (3 routings) on MNIST{where_run}")
    axes[1].set_title("against each run's minutes" + ("" if one_machine else " (on its own machine)"))
    axes[0].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    # Below both panels: the machine names are long and would cover the curves.
    handles, names = axes[0].get_legend_handles_labels()
    names = [textwrap.fill(name, 90) for name in names]  # a run that moved names each machine: in lines
    fig.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=8)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return labels


def markdown(runs, epochs=None):
    """The runs' table, then their error after each epoch (or after each of `epochs`)."""
    lines = [
        "| run | seed | test error | epochs | training minutes | wall minutes | CPU | policy | peak RSS |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        rss = f"{r['peak_rss_mib'] / 1024:.2f} GiB" if r["peak_rss_mib"] else ""
        error = "running" if r["running"] else f"{r['final_error_percent']:.2f}%"
        lines.append(
            f"| {r['label']} | {r['seed']} | {error} | {r['epochs']} | {r['train_minutes']} "
            f"| {r['wall_minutes']} | {r['cpu']} | {r['policies']} | {rss} |"
        )
    # The runs epoch by epoch, side by side: the error of the model each run keeps after that epoch.
    epochs = epochs or range(1, max(r["epochs"] for r in runs) + 1)
    lines += [
        "",
        f"| {'test' if runs[0]['on_test_set'] else 'validation'} error (%) after epoch | "
        + " | ".join(str(e) for e in epochs)
        + " |",
        "| --- |" + " --- |" * len(epochs),
    ]
    for r in runs:
        for name, errors in (
            (f"{r['label']}, seed {r['seed']}", r["error_percent"]),
            (f"{r['label']}, seed {r['seed']}, weights as trained", r["raw_error_percent"]),
        ):
            if errors:
                cells = [f"{errors[e - 1]:.2f}" if e <= len(errors) else "" for e in epochs]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders (train.py --save_dir), each optionally LABEL=DIR")
    p.add_argument("--out", required=True, help="the PNG to write")
    p.add_argument("--json", help="also write the runs and the summary to this JSON file")
    p.add_argument("--markdown", action="store_true", help="also print a Markdown table of the runs")
    p.add_argument("--epochs", help="the epochs the Markdown table shows, e.g. 1,2,5,10,20 (default: all)")
    args = p.parse_args(argv)
    try:
        epochs = [int(e) for e in args.epochs.split(",")] if args.epochs else None
    except ValueError:
        p.error(f"--epochs {args.epochs}: not a comma-separated list of epoch numbers.")
    if epochs and min(epochs) < 1:
        p.error(f"--epochs {args.epochs}: epochs count from 1.")
    try:
        runs = [load_run(*reversed(arg.split("=", 1))) if "=" in arg else load_run(arg) for arg in args.runs]
    except RunError as error:
        p.error(str(error))
    if len({r["on_test_set"] for r in runs}) > 1:
        p.error("the runs mix test-set and validation-split curves; plot them separately.")
    summary = summarize(runs)
    for row in runs:
        print(json.dumps({k: v for k, v in row.items() if k not in ("error_percent", "raw_error_percent", "minutes")}))
    for row in summary:
        print(json.dumps(row))
    plot(runs, args.out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": runs, "summary": summary}, f, indent=2)
    if args.markdown:
        print(markdown(runs, epochs))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
