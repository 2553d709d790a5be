"""Training and inference speed of keras_caps against the seed's PyTorch model, in one run.

    python benchmarks/throughput.py [--steps 10] [--tflite_dir runs/one_epoch/dist]

Prints one JSON line per measurement and, last, Markdown rows for BENCHMARKS.md.
Each model runs in its own subprocess (for a clean peak-memory figure); the matmul
roofline is measured by the same command, so every ratio compares one session.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 100


def timed(fn, repeats, warmup):
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def median_ms(fn, repeats=30, warmup=5):
    # Not export.verify's twin on purpose: importing `export` loads TensorFlow, which
    # would inflate the PyTorch worker's peak-memory figure.
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return 1000 * times[len(times) // 2]


def worker_keras(policy, steps):
    import keras
    import numpy as np

    from keras_caps import CapsNet

    keras.mixed_precision.set_global_policy(policy)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (BATCH, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, BATCH)
    model = CapsNet()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    train_s = timed(lambda: model.train_on_batch(x, y), steps, warmup=3)
    predict = keras.ops.convert_to_numpy
    infer_s = timed(lambda: predict(model(x)["scores"]), steps, warmup=2)
    latency = median_ms(lambda: predict(model(x[:1])["scores"]))
    return train_s, infer_s, latency


def worker_torch(steps):
    import numpy as np
    import torch
    from reference_torch import CapsuleNet, caps_loss

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.uniform(0, 1, (BATCH, 1, 28, 28)).astype("float32"))
    y = torch.nn.functional.one_hot(torch.tensor(rng.integers(0, 10, BATCH)), 10).float()
    model = CapsuleNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        model.train()
        optimizer.zero_grad()
        y_pred, x_recon = model(x, y)
        caps_loss(y, y_pred, x, x_recon, 0.392).backward()
        optimizer.step()

    train_s = timed(step, steps, warmup=2)
    model.eval()
    with torch.no_grad():
        infer_s = timed(lambda: model(x), steps, warmup=2)
        latency = median_ms(lambda: model(x[:1]))
    return train_s, infer_s, latency


def run_worker(name, steps):
    if name == "torch_reference":
        train_s, infer_s, latency = worker_torch(steps)
    else:
        train_s, infer_s, latency = worker_keras(name.split(":", 1)[1], steps)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "config": name,
                "train_images_per_s": BATCH / train_s,
                "infer_images_per_s": BATCH / infer_s,
                "batch1_latency_ms": latency,
                "peak_rss_mib": peak_mib,
            }
        )
    )


def matmul_roofline(n=2048, repeats=10):
    import tensorflow as tf

    out = {}
    for dtype in ("float32", "bfloat16"):
        a = tf.random.uniform((n, n), dtype=tf.float32)
        a = tf.cast(a, dtype)
        mm = tf.function(lambda a=a: tf.linalg.matmul(a, a))
        seconds = min(timed(lambda: mm().numpy(), 1, warmup=1 if i == 0 else 0) for i in range(repeats))
        out[dtype] = 2 * n**3 / seconds / 1e9
    return out


def tflite_latencies(folder):
    import numpy as np

    from keras_caps.export.litert import TFLiteModel

    x = np.random.default_rng(0).uniform(0, 1, (1, 28, 28, 1)).astype("float32")
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".tflite"):
            runner = TFLiteModel(os.path.join(folder, name))
            out[name] = median_ms(lambda: runner(x), repeats=50)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="timed batches per measurement")
    parser.add_argument("--tflite_dir", default=None, help="folder of .tflite files to time at batch 1")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return run_worker(args.worker, args.steps)

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT, KERAS_BACKEND="tensorflow")
    rows = {}
    for name in ("keras:float32", "keras:mixed_bfloat16", "torch_reference"):
        result = subprocess.run(
            [sys.executable, __file__, "--worker", name, "--steps", str(args.steps)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        rows[name] = json.loads(result.stdout.strip().splitlines()[-1])
    from keras_caps import CapsNet
    from keras_caps.export.micro import flops_per_image

    roofline = matmul_roofline()
    flops = flops_per_image(CapsNet())
    print(json.dumps({"matmul_gflops": roofline, "flops_per_image": flops}))
    ref = rows["torch_reference"]
    for name, row in rows.items():
        row["train_gflops"] = row["train_images_per_s"] * flops["train"] / 1e9
        row["infer_gflops"] = row["infer_images_per_s"] * flops["forward"] / 1e9
        fp = roofline["bfloat16" if "bfloat16" in name else "float32"]
        row["train_fraction_of_matmul_roofline"] = row["train_gflops"] / fp
        row["train_vs_reference"] = row["train_images_per_s"] / ref["train_images_per_s"]
        row["infer_vs_reference"] = row["infer_images_per_s"] / ref["infer_images_per_s"]
        row["batch1_latency_vs_reference"] = row["batch1_latency_ms"] / ref["batch1_latency_ms"]
        row["peak_rss_vs_reference"] = row["peak_rss_mib"] / ref["peak_rss_mib"]
        print(json.dumps(row))
    if args.tflite_dir:
        for name, ms in tflite_latencies(args.tflite_dir).items():
            print(
                json.dumps(
                    {
                        "config": name,
                        "batch1_latency_ms": ms,
                        "batch1_latency_vs_reference": ms / ref["batch1_latency_ms"],
                    }
                )
            )
    print("\n| config | train img/s | × ref | % of matmul roofline | infer img/s | × ref | batch-1 ms | peak RSS MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, row in rows.items():
        print(
            f"| {name} | {row['train_images_per_s']:.1f} | {row['train_vs_reference']:.2f} | "
            f"{100 * row['train_fraction_of_matmul_roofline']:.0f}% | {row['infer_images_per_s']:.1f} | "
            f"{row['infer_vs_reference']:.2f} | {row['batch1_latency_ms']:.2f} | {row['peak_rss_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
