"""Runs a .tflite file in TFLite Micro's interpreter; started by `export.micro` as a child.

    python export/_tflm_worker.py MODEL.tflite ARENA_BYTES IMAGES.npy OUT.npy LATENCY_RUNS

A child process because TFLM aborts the whole process on some failures (a
softmax whose input scale it cannot represent, say) instead of raising. It
imports only numpy and tflite_micro, so it starts in well under a second.
Prints one JSON line: the batch-1 median latency and the arena TFLM recorded.
Images are float32 in [0, 1]; they are quantized here when the input is integer.
OUT.npy receives the raw values of output OUTPUT_INDEX (default 0) per image.
"""

import json
import os
import sys
import time

import numpy as np


def _quantize(images, details):
    dtype = details["dtype"]
    if dtype == np.float32:
        return images.astype(np.float32)
    scale = float(details["quantization_parameters"]["scales"][0])
    zero = int(details["quantization_parameters"]["zero_points"][0])
    info = np.iinfo(dtype)
    return np.clip(np.round(images / scale + zero), info.min, info.max).astype(dtype)


def main(argv):
    from tflite_micro import runtime

    model, arena, images, out, latency_runs = argv[1:6]
    output_index = int(argv[6]) if len(argv) > 6 else 0
    interpreter = runtime.Interpreter.from_file(model, arena_size=int(arena))
    details = interpreter.get_input_details(0)
    batch = _quantize(np.load(images), details)
    results, times = [], []
    shape = tuple(int(d) for d in details["shape"])
    for image in batch:  # one input each: an image of batch 1
        interpreter.set_input(image.reshape(shape), 0)
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
        results.append(np.array(interpreter.get_output(output_index))[0])
    for _ in range(max(0, int(latency_runs) - len(batch))):  # more timed calls than images
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    np.save(out, np.stack(results))
    # The recorded arena use, printed by TFLM's C++ on fd 2: read it back from there.
    sys.stderr.flush()
    read, write = os.pipe()
    saved = os.dup(2)
    os.dup2(write, 2)
    try:
        interpreter.print_allocations()
    finally:
        os.dup2(saved, 2)
        os.close(write)
    log = os.read(read, 1 << 16).decode(errors="replace")
    recorded = next(
        (int(line.split("total")[1].split()[0]) for line in log.splitlines() if "Arena allocation total" in line), None
    )
    print(json.dumps({"latency_ms": 1000.0 * float(np.median(times[1:] or times)), "recorded_arena": recorded}))


if __name__ == "__main__":
    main(sys.argv)
