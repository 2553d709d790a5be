"""Running .tflite files in LiteRT (ai-edge-litert): float32 images in, float32 scores out."""

import numpy as np

from keras_caps.models.files import ModelFileError


def litert_interpreter(path_or_bytes, reference_kernels=False):
    """An allocated LiteRT interpreter for a .tflite path or flatbuffer, with a clear error.

    `reference_kernels`: TFLite's reference kernels instead of the optimized ones
    (the arithmetic TFLite Micro's kernels share, bit for bit).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_REF if reference_kernels else OpResolverType.AUTO
    try:
        if isinstance(path_or_bytes, (bytes, bytearray)):
            interpreter = Interpreter(model_content=bytes(path_or_bytes), experimental_op_resolver_type=resolver)
        else:
            interpreter = Interpreter(model_path=str(path_or_bytes), experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise ModelFileError(
            f"{path_or_bytes if isinstance(path_or_bytes, str) else 'model'}: not a runnable TFLite model ({error})."
        ) from None
    return interpreter


def quantize_input(values, details):
    """Float values for a LiteRT input (`get_input_details()` entry): rounded to its
    integer type with its scale and zero point, or float32 as they are."""
    dtype = details["dtype"]
    if dtype == np.float32:
        return values.astype(np.float32)
    scale, zero = details["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale + zero), info.min, info.max).astype(dtype)


class TFLiteModel:
    """Float32 images in, float32 scores out, whatever the file's input/output types."""

    def __init__(self, path_or_bytes, reference_kernels=False):
        self.interpreter = litert_interpreter(path_or_bytes, reference_kernels)
        self.input = self.interpreter.get_input_details()[0]
        outputs = self.interpreter.get_output_details()
        # Signature outputs are named <signature>_<key>:<i> or <key>; else find the scores by shape.
        self.scores = next((o for o in outputs if "scores" in o["name"]), None)
        if self.scores is None:
            self.scores = next(o for o in outputs if len(o["shape"]) == 2 and o["dtype"] != np.int32)
        self.batch = None

    def _dequantize(self, values):
        if self.scores["dtype"] == np.float32:
            return values
        scale, zero = self.scores["quantization"]
        return (values.astype(np.float32) - zero) * scale

    @property
    def image_shape(self):
        return tuple(int(d) for d in self.input["shape"][1:])

    def __call__(self, images):
        """Float32 scores `(N, classes)` for images `(N, H, W, C)` in [0, 1].

        Images of another shape, or that are not numbers, raise ValueError;
        NaN pixels give NaN scores in float files and arbitrary ones in
        int8-input files (quantizing NaN has no meaning): check inputs first.
        """
        array = np.asarray(images)
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"TFLite model: images must be numbers, got dtype {array.dtype}.")
        if array.ndim != 4 or tuple(array.shape[1:]) != self.image_shape or len(array) == 0:
            raise ValueError(
                f"TFLite model: images must be (N, {', '.join(map(str, self.image_shape))}) "
                f"with N >= 1, got {array.shape}."
            )
        images = array.astype(np.float32)
        if self.batch != len(images):
            self.interpreter.resize_tensor_input(self.input["index"], (len(images),) + tuple(images.shape[1:]))
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.scores = next(o for o in self.interpreter.get_output_details() if o["index"] == self.scores["index"])
            self.batch = len(images)
        self.interpreter.set_tensor(self.input["index"], quantize_input(images, self.input))
        self.interpreter.invoke()
        return self._dequantize(self.interpreter.get_tensor(self.scores["index"]))
