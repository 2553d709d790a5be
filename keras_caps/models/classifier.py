"""Classify images with a trained CapsNet in any of its saved forms: .keras, SavedModel folder or .tflite."""

import os
import sys


def load_classifier(path):
    """`(fn, (H, W, C))`: fn maps float32 images `(N, H, W, C)` to scores `(N, classes)`."""
    import numpy as np

    from keras_caps.models.files import ModelFileError, TFLiteModel, load_capsnet

    if os.path.isdir(path):
        import tensorflow as tf

        try:
            signature = tf.saved_model.load(path).signatures["serving_default"]
        except (KeyError, OSError, ValueError) as error:
            raise ModelFileError(f"{path}: not a SavedModel with a serving_default signature ({error}).") from None
        spec = signature.structured_input_signature[1].get("images")
        if spec is None or "scores" not in signature.structured_outputs:
            raise ModelFileError(f"{path}: its serving_default signature does not take `images` and give `scores`.")
        return (lambda x: signature(images=tf.constant(x))["scores"].numpy()), tuple(spec.shape[1:])
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: no such file or folder.")
    if path.endswith(".tflite"):
        runner = TFLiteModel(path)
        return runner, runner.image_shape
    model = load_capsnet(path)
    return (lambda x: np.asarray(model.predict(x, verbose=0))), model.image_shape


def predict_files(model_path, files, out=None, err=None):
    """Classifies `files`, a line each on `out` (a readable file's name, class and
    score) or `err` (why it could not be read); `None`: `sys.stdout` and `sys.stderr`
    as they are at the call, not when this module was imported. Returns the number
    that could not be read."""
    import numpy as np

    from keras_caps.data.images import ImageFileError, load_image, to_model_input

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err

    classify, shape = load_classifier(model_path)
    failures = 0
    for name in files:
        try:
            image = to_model_input(load_image(name), shape)
        except ImageFileError as error:
            print(f"error: {error}", file=err)
            failures += 1
            continue
        scores = classify(image[None].astype(np.float32))[0]
        label = int(np.argmax(scores))
        print(f"{name} {label} {float(scores[label]):.4f}", file=out)
    return failures
