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
