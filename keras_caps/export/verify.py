"""Runs each exported file on real data: accuracy, agreement with Keras, latency."""

import time

import numpy as np


def predict_batches(fn, images, batch_size=100):
    return np.concatenate([fn(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


def median_latency_ms(fn, image, repeats=50, warmup=5):
    """Median wall time of one batch-1 call, in milliseconds."""
    batch = np.asarray(image, np.float32)[None]
    for _ in range(warmup):
        fn(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(batch)
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def compare(scores, reference_scores, labels):
    """Accuracy, agreement of predicted classes and largest score difference."""
    pred, ref = scores.argmax(-1), reference_scores.argmax(-1)
    return {
        "accuracy": float((pred == labels).mean()),
        "agreement": float((pred == ref).mean()),
        "max_abs_score_diff": float(np.abs(scores - reference_scores).max()),
    }
