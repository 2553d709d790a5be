"""python -m export --model runs/capsnet/best.keras --out dist/ [--data_dir DIR]

Writes dist/saved_model/, dist/capsnet_{float32,float16,dynamic_int8,int8}.tflite and
dist/report.{json,md}: size, test accuracy, agreement with the Keras model and
batch-1 latency in the LiteRT interpreter, for every file. The int8 file also runs
in TFLite Micro: its smallest tensor arena, latency and agreement with LiteRT, and
(--c_array) dist/capsnet_int8.{cc,h} for firmware.
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
flags.DEFINE_enum("int8_capsule_implementation", "grouped_conv", ["grouped_conv", "einsum"],
                  "How the int8 file computes the digit capsules' u_hat: grouped_conv (one grouped CONV_2D, "
                  "fastest in LiteRT, per-channel scales: +5 MB for the paper's model) or einsum (a BATCH_MATMUL: "
                  "the smallest file and tensor arena, for microcontrollers).")
flags.DEFINE_bool("scores_only", False, "Files without the decoder and its reconstruction output (scores and "
                  "class_id only): what a device that needs the class, not the picture, should carry.")
flags.DEFINE_bool("tflm", True, "Run the int8 file in TFLite Micro's interpreter: smallest tensor arena, "
                  "batch-1 latency, agreement with LiteRT; an op TFLM lacks is an error.")
flags.DEFINE_integer("tflm_images", 200, "Test images run through TFLite Micro (one at a time) for the "
                     "agreement with LiteRT; at most --eval_images.")
flags.DEFINE_integer("tflm_arena_limit", None, "The device's RAM for the tensor arena, in bytes (e.g. 262144): "
                     "a model needing more is an error.")
flags.DEFINE_bool("c_array", False, "Also write the int8 file as C++ source and header (capsnet_int8.cc/.h: "
                  "alignas(16) const unsigned char capsnet_int8_tflite[] and capsnet_int8_tflite_len).")
flags.DEFINE_float("mcu_mhz", 480.0, "Clock of the microcontroller for the latency estimate (480: a Cortex-M7 "
                   "such as the STM32H7).")
flags.DEFINE_float("mcu_macs_per_cycle", 1.0, "Assumed int8 multiply-accumulates per cycle of that "
                   "microcontroller for the estimate (CMSIS-NN's dual 16-bit MAC gives at most 2).")
flags.mark_flag_as_required("model")
flags.register_validator("calibration_images", lambda v: v >= 1, "--calibration_images must be >= 1.")
flags.register_validator("variants", lambda v: bool(v) and set(v) <= set(VARIANTS),
                         f"--variants: choose from {', '.join(VARIANTS)}.")
flags.register_validator("eval_images", lambda v: v is None or v >= 1, "--eval_images must be >= 1.")
flags.register_validator("latency_runs", lambda v: v >= 1, "--latency_runs must be >= 1.")
flags.register_validator("tflm_images", lambda v: v >= 1, "--tflm_images must be >= 1.")
flags.register_validator("tflm_arena_limit", lambda v: v is None or v >= 1, "--tflm_arena_limit must be >= 1 byte.")
flags.register_validator("mcu_mhz", lambda v: v > 0, "--mcu_mhz must be > 0.")
flags.register_validator("mcu_macs_per_cycle", lambda v: v > 0, "--mcu_macs_per_cycle must be > 0.")


def run(f):
    import numpy as np

    from export import ExportError, convert, export_saved_model, float32_copy, load_capsnet, micro
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
    saved_model = export_saved_model(model, os.path.join(f.out, "saved_model"), scores_only=f.scores_only)
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
    implementation = dict(CAPSULE_IMPLEMENTATION, int8=f.int8_capsule_implementation)
    source_of = {v: (implementation.get(v, "einsum"), v == "int8" and f.int8_integer_only)
                 for v in f.variants}
    sources = {("einsum", False): saved_model}
    scratch = tempfile.TemporaryDirectory(prefix="capsnet_export_")
    for implementation, integer_only in set(source_of.values()) - set(sources):
        sources[implementation, integer_only] = export_saved_model(
            float32_copy(trained, implementation),
            os.path.join(scratch.name, f"{implementation}_{int(integer_only)}"), integer_only=integer_only,
            scores_only=f.scores_only)
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
                     "ops": sorted({f"{name}/v{version}" for name, version in op_list(flat)}),
                     "op_counts": micro.operator_counts(flat), "macs": micro.multiply_accumulates(flat)})
        print(f"{path}: {len(flat) / 1e6:.3f} MB, accuracy {100 * rows[-1]['accuracy']:.2f}%, "
              f"agreement {100 * rows[-1]['agreement']:.2f}%")
        if variant == "int8":  # the estimate assumes int8 multiply-accumulates
            rows[-1]["mcu_estimate_ms"] = rows[-1]["macs"] / (f.mcu_macs_per_cycle * f.mcu_mhz * 1e3)
            if f.tflm:
                try:
                    rows[-1].update(micro.verify(flat, x_eval[:f.tflm_images], scores, f.tflm_arena_limit,
                                                 f.latency_runs))
                except micro.TFLMError as error:
                    raise micro.TFLMError(f"{path} (written; it runs in LiteRT): {error} --notflm skips "
                                          "the TFLite Micro check.") from None
                print(f"  TFLite Micro: arena {rows[-1]['tflm_arena_bytes']} bytes, "
                      f"{rows[-1]['tflm_latency_ms']:.2f} ms a call, class as LiteRT's on "
                      f"{100 * rows[-1]['tflm_agreement']:.2f}% of {rows[-1]['tflm_images']} images "
                      f"(as its reference kernels' on {100 * rows[-1]['tflm_agreement_reference_kernels']:.2f}%, "
                      f"largest score difference {rows[-1]['tflm_max_abs_score_diff_reference_kernels']:.3g})")
            if f.c_array:
                for written in micro.write_c_array(flat, f.out, "capsnet_int8", "capsnet_int8_tflite"):
                    print(f"  {written}")
    scratch.cleanup()
    write_report(rows, f.out, {"model": f.model, "dataset": info.name, "eval_images": count,
                               "int8_io": f.int8_io, "int8_integer_only": f.int8_integer_only,
                               "calibration_images": len(calibration), "scores_only": f.scores_only,
                               "int8_capsule_implementation": f.int8_capsule_implementation,
                               "mcu_mhz": f.mcu_mhz, "mcu_macs_per_cycle": f.mcu_macs_per_cycle})
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
