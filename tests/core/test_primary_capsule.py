import keras
import numpy as np
import pytest

from keras_caps import PrimaryCapsule
from tests.helpers import np_squash, run_layer_test


@pytest.mark.parametrize(
    "input_shape,channels,dim,expected_caps",
    [((20, 20, 256), 32, 8, 1152), ((24, 24, 16), 4, 8, 4 * 8 * 8), ((11, 13, 3), 2, 4, 2 * 2 * 3)],
)
def test_num_capsules_derived_from_input(input_shape, channels, dim, expected_caps):
    layer = PrimaryCapsule(num_channels=channels, dim_capsule=dim)
    out = layer(np.random.rand(2, *input_shape).astype("float32"))
    assert tuple(out.shape) == (2, expected_caps, dim)
    assert layer.compute_output_shape((None,) + input_shape) == (None, expected_caps, dim)
    assert (np.linalg.norm(keras.ops.convert_to_numpy(out), axis=-1) < 1).all()


def test_matches_numpy_conv_reshape_squash():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 11, 11, 3))
    layer = PrimaryCapsule(num_channels=2, dim_capsule=4, kernel_size=3, strides=2)
    layer.build(x.shape)
    kernel = rng.normal(size=(3, 3, 3, 8)) * 0.2
    bias = rng.normal(size=(8,)) * 0.1
    layer.set_weights([kernel.astype("float32"), bias.astype("float32")])
    conv = np.zeros((2, 5, 5, 8))
    for i in range(5):
        for j in range(5):
            patch = x[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3, :]
            conv[:, i, j] = np.einsum("bhwc,hwco->bo", patch, kernel) + bias
    expected = np_squash(conv.reshape(2, -1, 4))  # channels-last: 4 channels of one pixel
    out = keras.ops.convert_to_numpy(layer(x.astype("float32")))
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_layer_contract(tmp_path):
    # 9x9 input, 5x5 kernel, stride 1: 5x5 positions x 4 channels = 100 capsules of 6D.
    layer = run_layer_test(
        PrimaryCapsule,
        dict(num_channels=4, dim_capsule=6, kernel_size=5, strides=1, name="pc"),
        input_shape=(9, 9, 3),
        expected_output_shape=(100, 6),
        tmp_path=tmp_path,
    )
    assert layer.get_config()["kernel_size"] == 5


def test_bad_arguments():
    with pytest.raises(ValueError, match="dim_capsule"):
        PrimaryCapsule(dim_capsule=0)
    with pytest.raises(ValueError, match="batch, height, width, channels"):
        PrimaryCapsule()(np.zeros((2, 28, 28), "float32"))
