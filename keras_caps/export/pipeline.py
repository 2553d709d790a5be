"""The whole export of a trained CapsNet: SavedModel, TFLite variants, their
verification in LiteRT and TFLite Micro, and the report (`python -m export`)."""

import dataclasses
import os
import tempfile

import numpy as np

from keras_caps.data.datasets import TfdsSplit, load_data, split_size, to_arrays
from keras_caps.data.folders import FileSplit, decode_all, is_image_folder
from keras_caps.export import micro, targets
from keras_caps.export.errors import ExportError
from keras_caps.export.litert import TFLiteModel
from keras_caps.export.report import write_report
from keras_caps.export.savedmodel import export_saved_model, float32_copy
from keras_caps.export.tflite import CAPSULE_IMPLEMENTATION, VARIANTS, convert, op_list
from keras_caps.export.verify import compare, median_latency_ms, predict_batches
from keras_caps.models.files import load_capsnet
from keras_caps.models.labels import write_labels
from keras_caps.settings import check_choices, setting


@dataclasses.dataclass
class ExportConfig:
    """What to export and how to check it: each field's `help` metadata says what it
    means (and is `python -m export --help`'s text for its flag)."""

    model: str | None = setting(
        None,
        "A .keras CapsNet saved by train.py or model.save, or a preset (a shipped name such as mnist_micro, "
        "or a run's preset/ folder).",
    )
    out: str = setting("dist", "Output folder.")
    dataset: str = setting("mnist", "TFDS data set for calibration and the accuracy report.")
    data_dir: str | None = setting(
        None,
        "Folder with MNIST-format IDX files, or an image folder with one sub-folder per class (as train.py "
        "reads it, at the model's size and channels), instead of TFDS.",
    )
    test_split: float | None = setting(
        None, "A single image tree's test share, as given to train.py (unset: 0.2); the same images are held out."
    )
    target: str = setting(
        "auto",
        "What the files are for, which sets variants, int8_io, int8_capsule_implementation, scores_only and "
        "c_array unless they are given: any (every variant for phones and servers: float32 I/O, grouped_conv, "
        "with the decoder) or micro (a microcontroller: the int8 file alone, int8 I/O, einsum, scores only, "
        "its C array, checked against 512 KiB flash and a 256 KiB tensor arena, with a warning when over). "
        "auto: micro for a model of the micro architecture, any otherwise.",
        targets.CHOICES,
    )
    int8_io: str | None = setting(
        None,
        "int8 file's images input and scores/reconstruction output type (int8 or uint8 for integer pipelines, "
        "scale 1/255: uint8 images are raw 0..255 pixels; class_id is int32 either way). Unset: the target's.",
        ("float32", "int8", "uint8"),
    )
    int8_integer_only: bool = setting(
        True,
        "int8 file with every op in int8, the squash in an integer-friendly form (Edge TPUs, float-less "
        "microcontrollers); off keeps the exact squash in float inside it.",
    )
    variants: tuple | None = setting(None, f"TFLite variants to write: {', '.join(VARIANTS)}. Unset: the target's.")
    legacy_runtimes: bool = setting(
        True,
        "Keep every file runnable in tflite-runtime 2.14 (the dynamic-range int8 file's dense layers with "
        "per-tensor int8 weights); off for per-channel there too.",
    )
    calibration_images: int = setting(200, "Training images used to calibrate the int8 file.")
    eval_images: int | None = setting(None, "Test images for the accuracy report (default: all).")
    latency_runs: int = setting(50, "Batch-1 calls timed per file (median reported).")
    int8_capsule_implementation: str | None = setting(
        None,
        "How the int8 file computes the digit capsules' u_hat: grouped_conv (one grouped CONV_2D, fastest in "
        "LiteRT, per-channel scales: +5 MB for the paper's model) or einsum (a BATCH_MATMUL: the smallest file "
        "and tensor arena, for microcontrollers). Unset: the target's.",
        ("grouped_conv", "einsum"),
    )
    scores_only: bool | None = setting(
        None,
        "Files without the decoder and its reconstruction output (scores and class_id only): what a device "
        "that needs the class, not the picture, should carry. Unset: the target's.",
    )
    tflm: bool = setting(
        True,
        "Run the int8 file in TFLite Micro's interpreter: smallest tensor arena, batch-1 latency, agreement "
        "with LiteRT; an op TFLM lacks is an error.",
    )
    tflm_images: int = setting(
        200, "Test images run through TFLite Micro (one at a time) for the agreement with LiteRT; at most eval_images."
    )
    tflm_arena_limit: int | None = setting(
        None, "The device's RAM for the tensor arena, in bytes (e.g. 262144): a model needing more is an error."
    )
    c_array: bool | None = setting(
        None,
        "Also write the int8 file as C++ source and header (capsnet_int8.cc/.h: alignas(16) const unsigned "
        "char capsnet_int8_tflite[] and capsnet_int8_tflite_len). Unset: the target's.",
    )
    mcu_mhz: float = setting(
        480.0, "Clock of the microcontroller for the latency estimate (480: a Cortex-M7 such as the STM32H7)."
    )
    mcu_macs_per_cycle: float = setting(
        1.0,
        "Assumed int8 multiply-accumulates per cycle of that microcontroller for the estimate (CMSIS-NN's "
        "dual 16-bit MAC gives at most 2).",
    )

    def __post_init__(self):
        if not isinstance(self.model, str | os.PathLike) or not str(self.model):
            raise ValueError(f"ExportConfig: `model` (a .keras file or a preset) is required, got {self.model!r}.")
        if self.variants is not None:
            self.variants = tuple(self.variants)
            if not self.variants or not set(self.variants) <= set(VARIANTS):
                raise ValueError(
                    "ExportConfig: `variants`: choose from "
                    f"{', '.join(VARIANTS)}; got {', '.join(self.variants) or 'none'}."
                )
        check_choices(self)
        for name in ("calibration_images", "latency_runs", "tflm_images", "eval_images", "tflm_arena_limit"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"ExportConfig: `{name}` must be an integer, got {value!r}.")
            if value < 1:
                unit = " byte" if name == "tflm_arena_limit" else ""
                raise ValueError(f"ExportConfig: `{name}` must be >= 1{unit}, got {value!r}.")
        for name in ("mcu_mhz", "mcu_macs_per_cycle"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ExportConfig: `{name}` must be > 0, got {getattr(self, name)!r}.")


def _check_out(out):
    """Refuses an `out` that cannot become a writable folder, before any work (and writes nothing)."""
    existing = os.path.abspath(out)
    while not os.path.exists(existing):  # the nearest part of the path that exists
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ExportError(f"`out` {out}: {existing} is a file, not a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ExportError(f"`out` {out}: {existing} is not writable.")


def export(config):
    """Writes every file `config` asks for and the report; returns the report's rows.

    Args:
        config: an `ExportConfig`.

    Raises:
        ExportError: a file that cannot be made or does not run as it should.
        keras_caps.models.files.ModelFileError: an unreadable `model`.
        keras_caps.data.idx.DataError: unreadable data.
    """
    _check_out(config.out)
    trained = load_capsnet(config.model)
    f = targets.resolve(config, trained)
    if config.target == "auto":
        print(f"Target {f.target} ({targets.choose_target(trained)[1]}; `target` chooses another).")
    model = float32_copy(trained)
    # An image folder is read as the model saw it: its own size unless the model takes another, in its channels.
    image_size, color_mode = _folder_reading(model, f.data_dir)
    data = load_data(
        f.dataset,
        f.data_dir,
        image_size=image_size,
        color_mode=color_mode,
        test_split=f.test_split,
        cache="none",
    )
    info = data.info
    if tuple(info.image_shape) != tuple(model.image_shape):
        raise ValueError(f"The model takes {model.image_shape} images; {info.name} has {info.image_shape}.")
    if model.classes != info.classes:
        raise ValueError(f"The model has {model.classes} classes; {info.name} has {info.classes}.")
    class_names = model.class_names or info.class_names or None

    def take(split, index):  # uint8 arrays of some images of a split, files decoded only for these
        if isinstance(split, FileSplit):
            return decode_all(split.subset(index))
        if isinstance(split, TfdsSplit):  # read in order: the first images
            return to_arrays(split, len(index))
        return split[0][index], split[1][index]

    train_size = split_size(data.train)
    test_size = info.test_size
    rng = np.random.default_rng(0)
    calibration = take(
        data.train, np.sort(rng.choice(train_size, min(f.calibration_images, train_size), replace=False))
    )[0]
    calibration = calibration.astype(np.float32) / 255.0
    count = min(f.eval_images or test_size, test_size)
    x_eval, y_eval = take(data.test, np.arange(count))
    x_eval = x_eval.astype(np.float32) / 255.0

    os.makedirs(f.out, exist_ok=True)
    saved_model = export_saved_model(model, os.path.join(f.out, "saved_model"), scores_only=f.scores_only)
    if class_names:
        print(
            f"{write_labels(class_names, f.out)}: {len(class_names)} class names ({', '.join(class_names[:5])}"
            f"{', ...' if len(class_names) > 5 else ''})"
        )
    keras_fn = lambda x: np.asarray(model(x)["scores"])  # noqa: E731
    keras_scores = predict_batches(keras_fn, x_eval)
    rows = [
        {
            "file": "keras (float32)",
            "size_bytes": None,
            **compare(keras_scores, keras_scores, y_eval),
            "latency_ms": median_latency_ms(keras_fn, x_eval[0], f.latency_runs),
        }
    ]

    import tensorflow as tf

    loaded = tf.saved_model.load(saved_model).signatures["serving_default"]
    saved_fn = lambda x: loaded(images=tf.constant(x))["scores"].numpy()  # noqa: E731
    rows.append(
        {
            "file": "saved_model",
            "size_bytes": _folder_size(saved_model),
            **compare(predict_batches(saved_fn, x_eval), keras_scores, y_eval),
            "latency_ms": median_latency_ms(saved_fn, x_eval[0], f.latency_runs),
        }
    )
    # The SavedModel each file is converted from: (u_hat formulation, integer-only forms).
    implementation = dict(CAPSULE_IMPLEMENTATION, int8=f.int8_capsule_implementation)
    source_of = {v: (implementation.get(v, "einsum"), v == "int8" and f.int8_integer_only) for v in f.variants}
    sources = {("einsum", False): saved_model}
    scratch = tempfile.TemporaryDirectory(prefix="capsnet_export_")
    for implementation, integer_only in set(source_of.values()) - set(sources):
        sources[implementation, integer_only] = export_saved_model(
            float32_copy(trained, implementation),
            os.path.join(scratch.name, f"{implementation}_{int(integer_only)}"),
            integer_only=integer_only,
            scores_only=f.scores_only,
        )
    for variant in f.variants:
        flat = convert(
            sources[source_of[variant]],
            variant,
            calibration,
            io_type=f.int8_io if variant == "int8" else "float32",
            legacy_runtimes=f.legacy_runtimes,
            integer_only=source_of[variant][1],
        )
        path = os.path.join(f.out, f"capsnet_{variant}.tflite")
        with open(path, "wb") as fh:
            fh.write(flat)
        runner = TFLiteModel(path)
        try:
            scores = predict_batches(runner, x_eval)
        except RuntimeError as error:
            raise ExportError(f"{path} converts but does not run in LiteRT: {str(error).splitlines()[0]}") from None
        rows.append(
            {
                "file": os.path.basename(path),
                "size_bytes": len(flat),
                **compare(scores, keras_scores, y_eval),
                "latency_ms": median_latency_ms(runner, x_eval[0], f.latency_runs),
                "ops": sorted({f"{name}/v{version}" for name, version in op_list(flat)}),
                "op_counts": micro.operator_counts(flat),
                "macs": micro.multiply_accumulates(flat),
            }
        )
        print(
            f"{path}: {len(flat) / 1e6:.3f} MB, accuracy {100 * rows[-1]['accuracy']:.2f}%, "
            f"agreement {100 * rows[-1]['agreement']:.2f}%"
        )
        if variant == "int8":  # the estimate assumes int8 multiply-accumulates
            rows[-1]["mcu_estimate_ms"] = rows[-1]["macs"] / (f.mcu_macs_per_cycle * f.mcu_mhz * 1e3)
            if f.tflm:
                try:
                    rows[-1].update(
                        micro.verify(flat, x_eval[: f.tflm_images], scores, f.tflm_arena_limit, f.latency_runs)
                    )
                except micro.TFLMError as error:
                    raise micro.TFLMError(
                        f"{path} (written; it runs in LiteRT): {error} `tflm` set to False skips "
                        "the TFLite Micro check."
                    ) from None
                row = rows[-1]
                # LiteRT's reference kernels, which TFLM's match bit for bit with the squash in float,
                # go wrong on integer-only files (BENCHMARKS.md): reported, not judged.
                reference = (
                    "LiteRT's reference kernels disagree with both, as they do on integer-only files"
                    if source_of[variant][1]
                    else f"as LiteRT's reference kernels' on {100 * row['tflm_agreement_reference_kernels']:.2f}%, "
                    f"largest score difference {row['tflm_max_abs_score_diff_reference_kernels']:.3g}"
                )
                print(
                    f"  TFLite Micro: arena {row['tflm_arena_bytes']} bytes, {row['tflm_latency_ms']:.2f} ms a call, "
                    f"class as LiteRT's on {100 * row['tflm_agreement']:.2f}% of {row['tflm_images']} images "
                    f"({reference})"
                )
            if f.c_array:
                for written in micro.write_c_array(flat, f.out, "capsnet_int8", "capsnet_int8_tflite", class_names):
                    print(f"  {written}")
        rows[-1]["over_target"] = targets.over_limits(f.target, rows[-1])
        for line in rows[-1]["over_target"]:
            print(f"warning: {line}.")
    scratch.cleanup()
    write_report(
        rows,
        f.out,
        {
            "model": f.model,
            "target": f.target,
            "target_limits": targets.TARGETS[f.target]["limits"],
            "dataset": info.name,
            "class_names": class_names,
            # what predict.py reads beside the files: they take dark-on-light images as they are
            "invert_input": model.invert_input,
            "eval_images": count,
            "int8_io": f.int8_io,
            "int8_integer_only": f.int8_integer_only,
            "calibration_images": len(calibration),
            "scores_only": f.scores_only,
            "int8_capsule_implementation": f.int8_capsule_implementation,
            "mcu_mhz": f.mcu_mhz,
            "mcu_macs_per_cycle": f.mcu_macs_per_cycle,
        },
    )
    return rows


def _folder_reading(model, data_dir):
    """`(image_size, color_mode)` to read an image folder at as the model takes images;
    `(None, None)` for other data."""
    if not (data_dir and is_image_folder(data_dir)):
        return None, None
    return tuple(model.image_shape[:2]), "grayscale" if model.image_shape[-1] == 1 else "rgb"


def _folder_size(path):
    return sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(path) for n in names)
