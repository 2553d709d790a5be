"""Runs .tflite files in tflite-runtime 2.14 (the last standalone runtime), in its own venv.

    python tests/legacy_runtime.py INPUT.npy OUT_DIR FILE.tflite [...]

Needs only numpy<2 and tflite-runtime==2.14.0; writes OUT_DIR/<file>.npy with the
scores for INPUT (float32 images), or exits 1 naming the file that failed.
"""

import os
import sys

import numpy as np
from tflite_runtime.interpreter import Interpreter


def run(path, images):
    interpreter = Interpreter(model_path=path)
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], images.shape)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    if inp["dtype"] != np.float32:
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        images = np.clip(np.round(images / scale + zero), info.min, info.max).astype(inp["dtype"])
    interpreter.set_tensor(inp["index"], images)
    interpreter.invoke()
    # The scores: the one (batch, classes) output that is not the int32 class id.
    out = next(o for o in interpreter.get_output_details() if len(o["shape"]) == 2 and o["dtype"] != np.int32)
    scores = interpreter.get_tensor(out["index"])
    if out["dtype"] != np.float32:
        scale, zero = out["quantization"]
        scores = (scores.astype(np.float32) - zero) * scale
    return scores


def main():
    images = np.load(sys.argv[1])
    for path in sys.argv[3:]:
        try:
            scores = run(path, images)
        except Exception as error:  # report which file, then fail
            print(f"{path}: {type(error).__name__}: {error}", file=sys.stderr)
            sys.exit(1)
        np.save(os.path.join(sys.argv[2], os.path.basename(path) + ".npy"), scores)


if __name__ == "__main__":
    main()
