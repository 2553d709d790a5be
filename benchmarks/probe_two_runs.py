"""Do two training runs side by side, one thread each, train more images an hour than one run on both cores?

    python benchmarks/probe_two_runs.py [--policy mixed_bfloat16] [--steps 15] [--rounds 3]

Times CapsNet's `train_on_batch` (batch 100) three ways, each in its own process: alone with
TensorFlow's default threads, alone with one thread, and two one-thread processes at once.
The three are repeated `--rounds` times in turn, since a shared machine's speed drifts between
minutes. Prints one JSON line per round: each measurement, and the two ways' steps per second.
"""

import argparse
import json
import os
import subprocess
import sys
import time


def worker(policy, steps):
    import keras
    import numpy as np

    from keras_caps import CapsNet

    keras.mixed_precision.set_global_policy(policy)
    model = CapsNet()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (100, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, 100)
    for _ in range(3):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    print(json.dumps({"ms_per_step": 1000 * (time.perf_counter() - start) / steps}))


def launch(policy, steps, threads):
    env = dict(os.environ)
    if threads:
        env.update(TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS=str(threads))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--policy", policy, "--steps", str(steps)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def ms(process):
    out, _ = process.communicate()
    if process.returncode:
        sys.exit(f"probe_two_runs.py: a worker failed (exit status {process.returncode}).")
    return json.loads(out.strip().splitlines()[-1])["ms_per_step"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", default="mixed_bfloat16")
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.policy, args.steps)
    for round_ in range(args.rounds):
        alone = ms(launch(args.policy, args.steps, None))
        one_thread = ms(launch(args.policy, args.steps, 1))
        pair = [ms(w) for w in [launch(args.policy, args.steps, 1) for _ in range(2)]]
        one_run, two_runs = 1000 / alone, sum(1000 / v for v in pair)
        row = {
            "policy": args.policy,
            "round": round_,
            "ms_per_step_alone_default_threads": round(alone, 1),
            "ms_per_step_alone_1_thread": round(one_thread, 1),
            "ms_per_step_pair_1_thread_each": [round(v, 1) for v in pair],
            "steps_per_s_one_run_all_cores": round(one_run, 3),
            "steps_per_s_two_runs_one_thread_each": round(two_runs, 3),
            "ratio_two_runs_to_one": round(two_runs / one_run, 3),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
