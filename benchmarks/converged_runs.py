"""The converged-accuracy runs of BENCHMARKS.md section 1, carried on across sessions.

    python benchmarks/converged_runs.py --data_dir ../shared/data/mnist [--runs_dir ~/runs] [--one] [--dry_run]

Runs, one after another, each of the four runs (three seeds of the default command, the
reference's schedule for the same 20 epochs) whose record is not yet in `--results`
(benchmarks/results/converged/NAME/{history,metrics}.json), and copies each finished run's record
there. A run's checkpoints live in `--runs_dir`/NAME, so a killed run continues where it stopped
when this is started again with the same `--runs_dir`: on another machine too, where that folder
travels (sessions keep it in the working tree, `--runs_dir carried_runs`, since their home folder
does not reach the next one). Prints one JSON line per run. Then, for the table and figure:

    python benchmarks/convergence.py benchmarks/results/converged/* \
        --out benchmarks/figures/mnist_convergence.png --markdown
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "converged")
RECORD = ("history.json", "metrics.json")
# In the order they are run: the headline first, then the comparison, then the spread.
RUNS = (
    ("fast_s0", ("--seed", "0")),
    ("reference20_s0", ("--recipe", "reference", "--epochs", "20", "--seed", "0")),
    ("fast_s1", ("--seed", "1")),
    ("fast_s2", ("--seed", "2")),
)


def pending(results=RESULTS):
    """The runs whose record is not (wholly) in `results`, in the order to run them."""
    return [name for name, _ in RUNS if not all(os.path.isfile(os.path.join(results, name, f)) for f in RECORD)]


def command(name, data_dir, runs_dir):
    """train.py's command line for run `name`."""
    args = dict(RUNS)[name]
    save_dir = os.path.join(runs_dir, name)
    train = [sys.executable, os.path.join(ROOT, "train.py"), "--routings", "3", "--data_dir", data_dir]
    return [*train, "--verbose", "2", "--save_dir", save_dir, *args]


def keep_record(name, runs_dir, results=RESULTS):
    """Copies a finished run's history.json and metrics.json into `results`/NAME."""
    source = os.path.join(runs_dir, name)
    missing = [f for f in RECORD if not os.path.isfile(os.path.join(source, f))]
    if missing:
        raise FileNotFoundError(f"{source}: no {', '.join(missing)}; the run did not finish.")
    os.makedirs(os.path.join(results, name), exist_ok=True)
    for f in RECORD:
        shutil.copy(os.path.join(source, f), os.path.join(results, name, f))
    return os.path.join(results, name)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True, help="the four MNIST IDX files (train.py's --data_dir)")
    p.add_argument("--runs_dir", default=os.path.expanduser("~/runs"), help="the runs' --save_dir parent")
    p.add_argument("--results", default=RESULTS, help="where finished runs' records are kept")
    p.add_argument("--one", action="store_true", help="run only the next pending run")
    p.add_argument("--dry_run", action="store_true", help="print the pending runs' commands, run nothing")
    args = p.parse_args(argv)
    if not os.path.isdir(args.data_dir):
        p.error(f"--data_dir {args.data_dir}: no such folder.")
    # train.py runs in the repository's root: the folders are taken from where this was started.
    data_dir, runs_dir = os.path.abspath(args.data_dir), os.path.abspath(args.runs_dir)
    names = pending(args.results)[: 1 if args.one else None]
    for name in names:
        cmd = command(name, data_dir, runs_dir)
        if args.dry_run:
            print(json.dumps({"run": name, "command": cmd}))
            continue
        rc = subprocess.run(cmd, cwd=ROOT).returncode
        if rc != 0:
            sys.exit(f"converged_runs.py: {name} failed (train.py exit status {rc}); its log is above.")
        print(json.dumps({"run": name, "record": keep_record(name, runs_dir, args.results)}))
    if not names:
        print(json.dumps({"pending": [], "results": args.results}))
    return names


if __name__ == "__main__":
    main(sys.argv[1:])
