"""Training and inference images/s of CapsNet on the active Keras backend (CPU probe).

    KERAS_BACKEND=tensorflow python benchmarks/backends.py --jit_compile auto
    KERAS_BACKEND=tensorflow python benchmarks/backends.py --jit_compile true
    KERAS_BACKEND=jax python benchmarks/backends.py

Batch 100 of synthetic images; one warm-up fit of 2 batches, then --images/100 timed batches. Prints JSON.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jit_compile", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--policy", default="float32")
    parser.add_argument("--images", type=int, default=1000, help="timed images (multiple of 100)")
    args = parser.parse_args()
    import keras
    import numpy as np

    from keras_caps import CapsNet

    keras.mixed_precision.set_global_policy(args.policy)
    model = CapsNet()
    model.compile(optimizer="adam", jit_compile={"auto": "auto", "true": True, "false": False}[args.jit_compile])
    rng = np.random.default_rng(0)
    n = args.images
    x = rng.uniform(0, 1, (n, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, n)
    model.fit(x[:200], y[:200], batch_size=100, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=100, epochs=1, verbose=0)
    train = n / (time.perf_counter() - start)
    model.predict(x[:200], batch_size=100, verbose=0)
    start = time.perf_counter()
    model.predict(x, batch_size=100, verbose=0)
    infer = n / (time.perf_counter() - start)
    print(json.dumps({"backend": keras.backend.backend(), "jit_compile": args.jit_compile, "policy": args.policy,
                      "train_images_per_s": train, "infer_images_per_s": infer}))


if __name__ == "__main__":
    main()
