"""Where a .tflite file's batch-1 time goes, operator by operator.

    python benchmarks/tflite_profile.py runs/one_epoch/dist/capsnet_int8.tflite [--repeats 200] [--top 8]

LiteRT's Python interpreter has no per-op profiler, so this times prefixes: for every k,
the model cut after its k-th operator (that operator's outputs made the graph's outputs)
runs at batch 1 in ai-edge-litert, and an operator's cost is the median latency with it
minus without it. Delegates (XNNPACK) see the same prefixes, so fused work is attributed
where its last operator is. Prints one JSON line per operator, then the `--top` costliest.
Small differences (< ~0.02 ms) are timer noise and can be negative.
"""

import argparse
import json
import time

import numpy as np


def operators(flatbuffer):
    """`[(name, output shapes)]` of the main subgraph's operators, in execution order."""
    from keras_caps.export.tflite import load_flatbuffer, operator_names

    model = load_flatbuffer(flatbuffer)
    graph = model.subgraphs[0]
    shapes = [[[int(d) for d in graph.tensors[i].shape] for i in op.outputs] for op in graph.operators]
    return list(zip(operator_names(model), shapes))


def prefix(flatbuffer, k):
    """The model cut after its first `k` operators, as a flatbuffer."""
    from keras_caps.export.tflite import load_flatbuffer, save_flatbuffer

    model = load_flatbuffer(flatbuffer)
    graph = model.subgraphs[0]
    graph.operators = graph.operators[:k]
    graph.outputs = np.array(graph.operators[-1].outputs, dtype=np.int32)
    model.signatureDefs = []  # they name outputs that are gone
    return save_flatbuffer(model, len(flatbuffer))


def batch1_ms(flatbuffer, repeats):
    from keras_caps.export.litert import litert_interpreter

    interpreter = litert_interpreter(flatbuffer)
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    for _ in range(10):
        interpreter.invoke()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def profile(flatbuffer, repeats=200):
    """One dict per operator: index, op, output shapes, cumulative and own ms."""
    rows, previous = [], 0.0
    for k, (name, shapes) in enumerate(operators(flatbuffer), start=1):
        ms = batch1_ms(prefix(flatbuffer, k), repeats)
        rows.append(
            {"index": k, "op": name, "outputs": shapes, "cumulative_ms": round(ms, 4), "op_ms": round(ms - previous, 4)}
        )
        previous = ms
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a .tflite file")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per prefix (median)")
    parser.add_argument("--top", type=int, default=8, help="costliest operators listed at the end")
    args = parser.parse_args()
    with open(args.model, "rb") as f:
        flatbuffer = f.read()
    rows = profile(flatbuffer, args.repeats)
    for row in rows:
        print(json.dumps(row))
    total = rows[-1]["cumulative_ms"]
    print(f"\n{args.model}: {total:.3f} ms at batch 1; costliest operators:")
    for row in sorted(rows, key=lambda r: -r["op_ms"])[: args.top]:
        print(
            f"  #{row['index']:<4d} {row['op']:<18s} {row['op_ms']:7.3f} ms  {100 * row['op_ms'] / total:4.1f}%"
            f"  -> {row['outputs']}"
        )


if __name__ == "__main__":
    main()
