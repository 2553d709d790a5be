"""A SavedModel with one `serving_default` signature: images -> scores, class, reconstruction."""

import contextlib

import keras
import tensorflow as tf

from keras_caps.activations import integer_only_math
from keras_caps.models.capsnet import CapsNet


def float32_copy(model, capsule_implementation="einsum"):
    """The same network and weights under a float32 policy (a run may have saved bf16/f16),
    its digit capsules' `u_hat` computed by `capsule_implementation` (see `DenseCapsule`)."""
    config = dict(model.get_config(), dtype="float32", capsule_implementation=capsule_implementation)
    clone = CapsNet.from_config(config)
    clone.set_weights(model.get_weights())
    return clone


def serving_fn(model, scores_only=False):
    """A tf.function for float32 images `(N, H, W, C)` in [0, 1]; without the
    decoder and its `reconstruction` output when `scores_only`."""
    spec = tf.TensorSpec((None,) + tuple(model.image_shape), tf.float32, name="images")

    @tf.function(input_signature=[spec])
    def serve(images):
        if scores_only:
            scores = model(images)["scores"]
            return {"scores": scores, "class_id": tf.argmax(scores, axis=-1, output_type=tf.int32)}
        out = model.forward(images)
        return {
            "scores": out["scores"],
            "class_id": tf.argmax(out["scores"], axis=-1, output_type=tf.int32),
            "reconstruction": out["reconstruction"],
        }

    return serve


def export_saved_model(model, path, integer_only=False, scores_only=False):
    """Writes `model` (float32) as a SavedModel whose `serving_default` signature takes
    `images` and returns `scores`, `class_id` and `reconstruction` (not the last
    with `scores_only`: a device that needs the class, not the picture).

    `integer_only`: trace the squash and the capsule lengths in the forms that
    TFLite quantizes to int8 throughout (`keras_caps.activations.integer_only_math`);
    the source of an integer-only int8 file, not a SavedModel to serve.
    """
    with integer_only_math() if integer_only else contextlib.nullcontext():
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serving_default", serving_fn(model, scores_only))
        archive.write_out(path, verbose=False)
    return path
