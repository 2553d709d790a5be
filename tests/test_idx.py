import gzip
import os

import numpy as np
import pytest

from keras_caps.data.idx import DataError, find_mnist_files, load_mnist_idx, read_idx, write_idx
from tests.helpers import write_mnist


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize("dtype", ["uint8", "int32", "float32"])
def test_round_trip(tmp_path, name, dtype):
    array = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype)
    if dtype == "uint8":
        array = np.abs(array).astype(dtype)
    path = os.path.join(tmp_path, name)
    write_idx(path, array)
    out = read_idx(path)
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)


def _bad(tmp_path, name, payload, compress=False):
    path = os.path.join(tmp_path, name)
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(payload)
    return path


HEADER = bytes([0, 0, 8, 3]) + np.array([2, 28, 28], ">u4").tobytes()


@pytest.mark.parametrize(
    "name,payload,compress,message",
    [
        ("empty", b"", False, "too short"),
        ("magic", b"\x12\x34\x08\x03" + b"\0" * 20, False, "not an IDX file"),
        ("dims", bytes([0, 0, 8, 3]) + b"\0\0", False, "truncated header"),
        ("short", HEADER + b"\0" * 100, False, "truncated"),
        ("short.gz", HEADER + b"\0" * 100, True, "truncated"),
        ("long", HEADER + b"\0" * (2 * 784 + 1), False, "more data"),
        ("huge", bytes([0, 0, 8, 3]) + np.array([2**31, 2**31, 2**31], ">u4").tobytes(), False, "beyond the"),
        ("fake.gz", HEADER + b"\0" * (2 * 784), False, "not gzip"),
        ("broken.gz", b"\x1f\x8b\x08\x00garbage-not-deflate", False, "cannot be read"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path, name, payload, compress, message):
    path = _bad(tmp_path, name, payload, compress)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert path in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_idx(os.path.join(tmp_path, "nope"))


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("sep", ["-", "."])
def test_load_mnist_idx(tmp_path, gz, sep):
    arrays = write_mnist(str(tmp_path), gz=gz, sep=sep)
    (x, y), (xt, yt) = load_mnist_idx(str(tmp_path))
    np.testing.assert_array_equal(x, arrays["train-images"])
    np.testing.assert_array_equal(yt, arrays["t10k-labels"])
    assert y.dtype == np.int64


def test_mnist_folder_errors(tmp_path):
    folder = str(tmp_path)
    with pytest.raises(DataError, match="no such directory"):
        find_mnist_files(os.path.join(folder, "absent"))
    write_mnist(folder)
    os.remove(os.path.join(folder, "t10k-labels-idx1-ubyte.gz"))
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        load_mnist_idx(folder)
    write_idx(os.path.join(folder, "t10k-labels-idx1-ubyte.gz"), np.zeros(7, np.uint8))
    with pytest.raises(DataError, match="holds 10 images but .* holds 7 labels"):
        load_mnist_idx(folder)


def test_wrong_image_size(tmp_path):
    write_mnist(str(tmp_path), size=20)
    with pytest.raises(DataError, match="images are 20x20, expected 28x28"):
        load_mnist_idx(str(tmp_path))
