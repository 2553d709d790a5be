"""The benchmark's FLOP count agrees with TensorFlow's own count of the forward graph."""

import os
import sys

import pytest
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

from throughput import capsnet_flops  # noqa: E402

from keras_caps import CapsNet  # noqa: E402


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

    from predict_photos import photo_like

    from keras_caps.images import to_model_input

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
