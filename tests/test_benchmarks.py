"""What the benchmarks rest on: the FLOP count (against TensorFlow's own count of the
forward graph), the photo-like digits and the TFLite profile's graph cuts."""

import pytest
import tensorflow as tf

from keras_caps import CapsNet
from keras_caps.models.flops import capsnet_flops


def test_forward_flops_match_tensorflow_profiler():
    from tensorflow.python.profiler import model_analyzer, option_builder

    model = CapsNet()
    fn = tf.function(lambda x: model.forward(x)["scores"])
    graph = fn.get_concrete_function(tf.zeros((1, 28, 28, 1))).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    counted = model_analyzer.profile(graph, options=options).total_float_ops
    ours = capsnet_flops()
    # TF counts convolutions and dense layers, not the einsums or elementwise routing ops.
    assert counted == pytest.approx(ours["forward"], rel=0.02)
    assert counted < ours["forward"]
    assert ours["train"] == pytest.approx(3 * ours["forward"], rel=0.05)


def test_photo_like_digits_come_back_as_mnist_digits():
    """benchmarks/predict_photos.py's photos (ink on paper, enlarged, off-centre, noisy,
    blurred, tinted RGB) are turned back by the predict loader into images close to the
    MNIST digit they came from."""
    import numpy as np

    from benchmarks.predict_photos import photo_like
    from keras_caps.data.images import to_model_input

    rng = np.random.default_rng(0)
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255  # a "1"
    digit[6:9, 9:12] = 255
    for _ in range(5):
        photo = photo_like(digit, rng)
        assert photo.mode == "RGB" and min(photo.size) > 28
        assert np.asarray(photo).mean() > 128  # light paper
        x = to_model_input(photo, (28, 28, 1))[..., 0]
        correlation = np.corrcoef(x.ravel(), digit.ravel() / 255.0)[0, 1]
        assert correlation > 0.6, correlation


def test_tflite_profile_cuts_the_graph_after_each_operator():
    import keras
    import numpy as np

    from benchmarks.tflite_profile import operators, prefix, profile
    from keras_caps.models.files import litert_interpreter

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), batch_size=1)
    hidden = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(3)(keras.layers.Flatten()(hidden))
    model = keras.Model(inputs, outputs)
    flat = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    names = [name for name, _ in operators(flat)]
    assert names[0] == "CONV_2D" and names[-1] == "FULLY_CONNECTED"
    x = np.random.default_rng(0).uniform(size=(1, 8, 8, 1)).astype("float32")

    def run(content):
        interpreter = litert_interpreter(content)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    # The first operator alone gives the convolution's output; all of them, the model's.
    conv = keras.Model(inputs, hidden)
    np.testing.assert_allclose(run(prefix(flat, 1)), conv(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run(prefix(flat, len(names))), model(x), rtol=1e-5, atol=1e-5)
    rows = profile(flat, repeats=3)
    assert [row["op"] for row in rows] == names and rows[-1]["cumulative_ms"] > 0
    assert sum(row["op_ms"] for row in rows) == pytest.approx(rows[-1]["cumulative_ms"], abs=1e-3)
