"""python -m export --model runs/capsnet/best.keras --out dist/ [--data_dir DIR]

Writes dist/saved_model/, dist/capsnet_{float32,float16,dynamic_int8,int8}.tflite and
dist/report.{json,md}: size, test accuracy, agreement with the Keras model and
batch-1 latency in the LiteRT interpreter, for every file.
"""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags

from export.tflite import VARIANTS

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A .keras CapsNet saved by train.py or model.save.")
flags.DEFINE_string("out", "dist", "Output folder.")
flags.DEFINE_string("dataset", "mnist", "TFDS data set for calibration and the accuracy report.")
flags.DEFINE_string("data_dir", None, "Folder with MNIST-format IDX files instead of TFDS.")
flags.DEFINE_enum("int8_io", "float32", ["float32", "int8", "uint8"],
                  "int8 file's images input and scores/reconstruction output type (int8 or uint8 for "
                  "integer pipelines, scale 1/255: uint8 images are raw 0..255 pixels; class_id is int32 "
                  "either way).")
flags.DEFINE_bool("int8_integer_only", True, "int8 file with every op in int8, the squash in an "
                  "integer-friendly form (Edge TPUs, float-less microcontrollers); --noint8_integer_only keeps "
                  "the exact squash in float inside it.")
flags.DEFINE_list("variants", ["float32", "float16", "dynamic_int8", "int8"],
                  "TFLite variants to write: float32, float16, dynamic_int8, int8.")
flags.DEFINE_bool("legacy_runtimes", True, "Keep every file runnable in tflite-runtime 2.14 (per-tensor "
                  "int8 weights in dense layers); --nolegacy_runtimes for per-channel.")
flags.DEFINE_integer("calibration_images", 200, "Training images used to calibrate the int8 file.")
flags.DEFINE_integer("eval_images", None, "Test images for the accuracy report (default: all).")
flags.DEFINE_integer("latency_runs", 50, "Batch-1 calls timed per file (median reported).")
flags.mark_flag_as_required("model")
flags.register_validator("calibration_images", lambda v: v >= 1, "--calibration_images must be >= 1.")
flags.register_validator("variants", lambda v: bool(v) and set(v) <= set(VARIANTS),
                         f"--variants: choose from {', '.join(VARIANTS)}.")
flags.register_validator("eval_images", lambda v: v is None or v >= 1, "--eval_images must be >= 1.")
flags.register_validator("latency_runs", lambda v: v >= 1, "--latency_runs must be >= 1.")


def run(f):
    import numpy as np

    from export import ExportError, convert, export_saved_model, float32_copy, load_capsnet
    from export.report import write_report
    from export.tflite import CAPSULE_IMPLEMENTATION, op_list
    from export.verify import compare, median_latency_ms, predict_batches
    from keras_caps.model_files import TFLiteModel
    from keras_caps.data import load_arrays

    trained = load_capsnet(f.model)
    model = float32_copy(trained)
    (x_train, _), (x_test, y_test), info = load_arrays(f.dataset, f.data_dir)
    if tuple(info.image_shape) != tuple(model.image_shape):
        raise ValueError(f"The model takes {model.image_shape} images; {info.name} has {info.image_shape}.")
    rng = np.random.default_rng(0)
    calibration = x_train[rng.choice(len(x_train), min(f.calibration_images, len(x_train)), replace=False)]
    calibration = calibration.astype(np.float32) / 255.0
    count = min(f.eval_images or len(x_test), len(x_test))
    x_eval, y_eval = x_test[:count].astype(np.float32) / 255.0, y_test[:count]

    os.makedirs(f.out, exist_ok=True)
    saved_model = export_saved_model(model, os.path.join(f.out, "saved_model"))
    keras_fn = lambda x: np.asarray(model(x))  # noqa: E731
    keras_scores = predict_batches(keras_fn, x_eval)
    rows = [{"file": "keras (float32)", "size_bytes": None, **compare(keras_scores, keras_scores, y_eval),
             "latency_ms": median_latency_ms(keras_fn, x_eval[0], f.latency_runs)}]

    import tensorflow as tf

    loaded = tf.saved_model.load(saved_model).signatures["serving_default"]
    saved_fn = lambda x: loaded(images=tf.constant(x))["scores"].numpy()  # noqa: E731
    rows.append({"file": "saved_model", "size_bytes": _folder_size(saved_model),
                 **compare(predict_batches(saved_fn, x_eval), keras_scores, y_eval),
                 "latency_ms": median_latency_ms(saved_fn, x_eval[0], f.latency_runs)})
    # The SavedModel each file is converted from: (u_hat formulation, integer-only forms).
    source_of = {v: (CAPSULE_IMPLEMENTATION.get(v, "einsum"), v == "int8" and f.int8_integer_only)
                 for v in f.variants}
    sources = {("einsum", False): saved_model}
    scratch = tempfile.TemporaryDirectory(prefix="capsnet_export_")
    for implementation, integer_only in set(source_of.values()) - set(sources):
        sources[implementation, integer_only] = export_saved_model(
            float32_copy(trained, implementation),
            os.path.join(scratch.name, f"{implementation}_{int(integer_only)}"), integer_only=integer_only)
    for variant in f.variants:
        flat = convert(sources[source_of[variant]], variant, calibration,
                       io_type=f.int8_io if variant == "int8" else "float32", legacy_runtimes=f.legacy_runtimes,
                       integer_only=source_of[variant][1])
        path = os.path.join(f.out, f"capsnet_{variant}.tflite")
        with open(path, "wb") as fh:
            fh.write(flat)
        runner = TFLiteModel(path)
        try:
            scores = predict_batches(runner, x_eval)
        except RuntimeError as error:
            raise ExportError(f"{path} converts but does not run in LiteRT: {str(error).splitlines()[0]}") from None
        rows.append({"file": os.path.basename(path), "size_bytes": len(flat), **compare(scores, keras_scores, y_eval),
                     "latency_ms": median_latency_ms(runner, x_eval[0], f.latency_runs),
                     "ops": sorted({f"{name}/v{version}" for name, version in op_list(flat)})})
        print(f"{path}: {len(flat) / 1e6:.1f} MB, accuracy {100 * rows[-1]['accuracy']:.2f}%, "
              f"agreement {100 * rows[-1]['agreement']:.2f}%")
    scratch.cleanup()
    write_report(rows, f.out, {"model": f.model, "dataset": info.name, "eval_images": count,
                               "int8_io": f.int8_io, "int8_integer_only": f.int8_integer_only,
                               "calibration_images": len(calibration)})
    return rows


def _folder_size(path):
    return sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(path) for n in names)


def _expected_errors():
    from export.errors import ExportError
    from keras_caps.idx import DataError

    return (ExportError, DataError, ValueError, OSError)


if __name__ == "__main__":
    from keras_caps.cli import absl_main

    app.run(absl_main(run, _expected_errors))
