"""Long training runs, carried on across sessions: the runs a runs file names.

    python benchmarks/long_runs.py benchmarks/runs/converged.txt --data_dir ../shared/data/mnist \
        [--runs_dir ~/runs] [--results benchmarks/results/converged] [--one] [--dry_run] [--progress]

The runs file holds one run a line: its name, then train.py's flags beyond `--routings 3
--data_dir D --verbose 2 --save_dir RUNS_DIR/NAME` (`#` starts a comment). Runs, one after
another, each run whose record is not yet in `--results` (RESULTS/NAME/{history,metrics}.json;
by default benchmarks/results/ and the runs file's name), and copies each finished run's record
there. A run's checkpoints live in `--runs_dir`/NAME, so a killed run continues where it stopped
when this is started again with the same `--runs_dir`: on another machine too, where that folder
travels (sessions keep it in the working tree, `--runs_dir carried_runs`, since their home folder
does not reach the next one). Prints one JSON line per run. `--progress` runs nothing: it copies
each pending run's epochs so far (its history.json, and running.json naming its flags) to
RESULTS/NAME, where a session leaves a run going; convergence.py tables them as running.
Then, for the table and figure:

    python benchmarks/convergence.py benchmarks/results/converged/* \
        --out benchmarks/figures/mnist_convergence.png --markdown
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORD = ("history.json", "metrics.json")


def read_runs(path):
    """`[(name, flags)]` of a runs file, in its order; a ValueError names a bad line."""
    runs = []
    with open(path) as fh:
        for number, line in enumerate(fh, 1):
            words = shlex.split(line, comments=True)
            if not words:
                continue
            if words[0].startswith("-") or words[0] in dict(runs):
                raise ValueError(f"{path}:{number}: a line must start with a new run's name, got {words[0]!r}.")
            runs.append((words[0], tuple(words[1:])))
    if not runs:
        raise ValueError(f"{path}: names no run.")
    return runs


def pending(runs, results):
    """The names of `runs` whose record is not (wholly) in `results`, in the order to run them."""
    return [name for name, _ in runs if not all(os.path.isfile(os.path.join(results, name, f)) for f in RECORD)]


def command(runs, name, data_dir, runs_dir):
    """train.py's command line for run `name` of `runs`."""
    args = dict(runs)[name]
    save_dir = os.path.join(runs_dir, name)
    train = [sys.executable, os.path.join(ROOT, "train.py"), "--routings", "3", "--data_dir", data_dir]
    return [*train, "--verbose", "2", "--save_dir", save_dir, *args]


def keep_record(name, runs_dir, results):
    """Copies a finished run's history.json and metrics.json into `results`/NAME."""
    source = os.path.join(runs_dir, name)
    missing = [f for f in RECORD if not os.path.isfile(os.path.join(source, f))]
    if missing:
        raise FileNotFoundError(f"{source}: no {', '.join(missing)}; the run did not finish.")
    os.makedirs(os.path.join(results, name), exist_ok=True)
    for f in RECORD:
        shutil.copy(os.path.join(source, f), os.path.join(results, name, f))
    for f in ("running.json", "log.csv"):  # what --progress kept of it while it ran
        if os.path.isfile(os.path.join(results, name, f)):
            os.remove(os.path.join(results, name, f))
    return os.path.join(results, name)


def keep_progress(name, runs, runs_dir, results):
    """Copies an unfinished run's history.json (a row per epoch done) into `results`/NAME, with
    `running.json` (its flags, seed and recipe from the runs file), so convergence.py can table it;
    returns its epochs done, or None where the run has not started. A finished run's record replaces it."""
    source = os.path.join(runs_dir, name, "history.json")
    if not os.path.isfile(source):
        return None
    folder = os.path.join(results, name)
    os.makedirs(folder, exist_ok=True)
    shutil.copy(source, os.path.join(folder, "history.json"))
    flags = dict(runs)[name]
    value = dict(zip(flags, flags[1:]))  # --flag value pairs
    config = {
        "recipe": value.get("--recipe", "fast"),  # train.py's default recipe
        "seed": int(value["--seed"]) if "--seed" in value else None,
        "val_split": float(value.get("--val_split", 0)),
    }
    with open(os.path.join(folder, "running.json"), "w") as fh:
        json.dump({"flags": list(flags), "config": config}, fh, indent=1)
    with open(source) as fh:
        return len(json.load(fh))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", help="the runs file (benchmarks/runs/*.txt)")
    p.add_argument("--data_dir", required=True, help="the four MNIST IDX files (train.py's --data_dir)")
    p.add_argument("--runs_dir", default=os.path.expanduser("~/runs"), help="the runs' --save_dir parent")
    p.add_argument("--results", help="where finished runs' records are kept (default: benchmarks/results/RUNS)")
    p.add_argument("--one", action="store_true", help="run only the next pending run")
    p.add_argument("--dry_run", action="store_true", help="print the pending runs' commands, run nothing")
    p.add_argument("--progress", action="store_true", help="copy the pending runs' epochs so far, run nothing")
    args = p.parse_args(argv)
    if not os.path.isdir(args.data_dir):
        p.error(f"--data_dir {args.data_dir}: no such folder.")
    try:
        runs = read_runs(args.runs)
    except (OSError, ValueError) as error:
        p.error(str(error))
    stem = os.path.splitext(os.path.basename(args.runs))[0]
    results = args.results or os.path.join(ROOT, "benchmarks", "results", stem)
    # train.py runs in the repository's root: the folders are taken from where this was started.
    data_dir, runs_dir = os.path.abspath(args.data_dir), os.path.abspath(args.runs_dir)
    names = pending(runs, results)[: 1 if args.one else None]
    for name in names:
        if args.progress:
            print(json.dumps({"run": name, "epochs_done": keep_progress(name, runs, runs_dir, results)}))
            continue
        cmd = command(runs, name, data_dir, runs_dir)
        if args.dry_run:
            print(json.dumps({"run": name, "command": cmd}))
            continue
        rc = subprocess.run(cmd, cwd=ROOT).returncode
        if rc != 0:
            sys.exit(f"long_runs.py: {name} failed (train.py exit status {rc}); its log is above.")
        print(json.dumps({"run": name, "record": keep_record(name, runs_dir, results)}))
    if not names:
        print(json.dumps({"pending": [], "results": results}))
    return names


if __name__ == "__main__":
    main(sys.argv[1:])
