"""Reader for IDX files (the MNIST format), plain or gzipped, with numpy alone.

Everything here is backend-free so that the JAX backend (GPU machines without
TensorFlow) reads the same data as the tf.data pipeline.
"""

import gzip
import os
import zlib

import numpy as np

# Type byte of the IDX header -> numpy dtype (big-endian, as the format says).
_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CHUNK = 1 << 20
# Refuse declared sizes beyond this before reading: 60000 MNIST images are 47 MB.
MAX_BYTES = 4 << 30

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class DataError(ValueError):
    """A data file or data set that cannot be used; the message names it."""


def _open(path):
    with open(path, "rb") as f:
        head = f.read(2)
    if head == b"\x1f\x8b":
        return gzip.open(path, "rb")
    if path.endswith(".gz"):
        raise DataError(f"{path}: named .gz but is not gzip data (first bytes {head!r}).")
    return open(path, "rb")


def _read_exactly(stream, size, path):
    """Reads `size` bytes in chunks (never allocating a declared size up front)."""
    chunks, remaining = [], size
    while remaining > 0:
        chunk = stream.read(min(_CHUNK, remaining))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    if remaining:
        raise DataError(
            f"{path}: truncated: the header declares {size} bytes of data, the file holds {size - remaining}."
        )
    return b"".join(chunks)


def read_idx(path):
    """Reads one IDX file (raw or gzip) into a numpy array.

    Raises:
        DataError: naming the file, if it is missing, not IDX, truncated,
            longer than declared, or not valid gzip.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file.")
    try:
        with _open(path) as stream:
            header = stream.read(4)
            if len(header) < 4:
                raise DataError(f"{path}: too short for an IDX header ({len(header)} bytes).")
            if header[0] != 0 or header[1] != 0 or header[2] not in _DTYPES or header[3] == 0:
                raise DataError(
                    f"{path}: not an IDX file (magic bytes {header.hex()}; expected "
                    "00 00, a type code and a dimension count, e.g. 00000803 for images)."
                )
            dtype, ndim = _DTYPES[header[2]], header[3]
            dims_raw = stream.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DataError(f"{path}: truncated header ({ndim} dimensions declared).")
            shape = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
            size = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
            # Zero-sized dimensions do not make (2^32, 2^32, 0) a shape worth trusting.
            if np.prod([max(d, 1) for d in shape], dtype=np.float64) * dtype.itemsize > MAX_BYTES:
                raise DataError(f"{path}: declares shape {shape}, beyond the {MAX_BYTES} bytes this reader accepts.")
            data = _read_exactly(stream, size, path)
            if stream.read(1):
                raise DataError(f"{path}: more data than its header's shape {shape} declares.")
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot be read ({error}).") from error
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def find_mnist_files(data_dir):
    """Paths of the four MNIST IDX files in `data_dir` (`.gz` or raw; `-` or `.` before `idx`)."""
    if not os.path.isdir(data_dir):
        raise DataError(f"`data_dir` {data_dir}: no such directory.")
    names = os.listdir(data_dir)
    found = {}
    for key, stem in MNIST_FILES.items():
        prefix, suffix = stem.split("-idx")
        candidates = [prefix + sep + "idx" + suffix + ext for sep in ("-", ".") for ext in (".gz", "")]
        match = next((c for c in candidates if c in names), None)
        if match is None:
            raise DataError(
                f"`data_dir` {data_dir}: missing {stem}(.gz); it needs the four MNIST-format IDX "
                f"files: {', '.join(MNIST_FILES.values())} (each .gz or raw), or images in one "
                "sub-folder per class."
            )
        found[key] = os.path.join(data_dir, match)
    return found


def _check_pair(images, labels, images_path, labels_path):
    if images.ndim != 3:
        raise DataError(f"{images_path}: expected images of shape (count, rows, cols), got {images.shape}.")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected labels of shape (count,), got {labels.shape}.")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds {labels.shape[0]} labels."
        )


def load_mnist_idx(data_dir, image_size=(28, 28)):
    """Reads MNIST-format IDX files from `data_dir`.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: uint8 images `(n, rows, cols)`
        and int64 labels `(n,)`.
    """
    paths = find_mnist_files(data_dir)
    arrays = {key: read_idx(path) for key, path in paths.items()}
    out = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        images_path, labels_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        _check_pair(images, labels, images_path, labels_path)
        if image_size is not None and images.shape[1:] != tuple(image_size):
            raise DataError(
                f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, "
                f"expected {image_size[0]}x{image_size[1]}."
            )
        if images.dtype != np.uint8:
            raise DataError(f"{images_path}: expected unsigned bytes, got {images.dtype}.")
        out.append((images, labels.astype(np.int64)))
    train_shape, test_shape = out[0][0].shape[1:], out[1][0].shape[1:]
    if train_shape != test_shape:
        raise DataError(
            f"{paths['train_images']} has {train_shape} images but {paths['test_images']} has {test_shape}."
        )
    return tuple(out)


def write_idx(path, array):
    """Writes `array` as an IDX file (gzip if `path` ends in .gz). For tests and tools."""
    array = np.asarray(array)
    codes = {v.newbyteorder("="): k for k, v in _DTYPES.items()}
    code = codes[array.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + array.astype(_DTYPES[code]).tobytes()
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)
