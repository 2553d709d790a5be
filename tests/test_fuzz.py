"""Hostile input, property-based (hypothesis): the IDX reader and the predict
CLI's image loader end every input in a result that is right or in one clear
exception of ours naming the file: never another exception, a hang or a
silently wrong array.

    HYPOTHESIS_PROFILE=long FUZZ_REPORT=fuzz.json python -m pytest tests/test_fuzz.py

runs the long fuzz (see RELIABILITY.md); the normal suite runs the `ci` profile.
"""

import collections
import gzip
import io
import json
import os
import struct
import tempfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from keras_caps.data.idx import MAX_BYTES, DataError, read_idx
from keras_caps.data.images import ImageFileError, load_image, to_model_input

settings.register_profile(
    "ci", max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("long", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# What each reader was given and how it ended, for RELIABILITY.md.
TRIED = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    if os.environ.get("FUZZ_REPORT"):
        with open(os.environ["FUZZ_REPORT"], "w") as f:
            json.dump(dict(sorted(TRIED.items())), f, indent=2)


def _write(data, suffix):
    handle, path = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(handle, "wb") as f:
        f.write(data)
    return path


# ------------------------------------------------------------------- IDX
_CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _expected_idx(data):
    """An independent reading of `data` (the file's bytes): the array it holds,
    or None where the file is not a whole, well-formed IDX file."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return None
    if len(data) < 4 or data[0] or data[1] or data[2] not in _CODES or data[3] == 0:
        return None
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        return None
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_CODES[data[2]])
    size = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    bound = np.prod([max(d, 1) for d in shape], dtype=np.float64) * dtype.itemsize  # zeros do not hide a huge shape
    if bound > MAX_BYTES or len(data) != 4 + 4 * ndim + size:
        return None
    return np.frombuffer(data[4 + 4 * ndim :], dtype).reshape(shape)


def _check_idx(data, suffix, kind):
    path = _write(data, suffix)
    try:
        expected = _expected_idx(data)
        if suffix == ".gz" and data[:2] != b"\x1f\x8b":
            expected = None  # named .gz but not gzip: refused
        try:
            got = read_idx(path)
        except DataError as error:
            assert path in str(error), str(error)
            assert expected is None, f"refused a valid file: {error}"
            TRIED[f"idx/{kind}/refused"] += 1
            return
        assert expected is not None, f"accepted a bad file as {got.shape} {got.dtype}"
        assert got.shape == expected.shape and got.dtype == expected.dtype.newbyteorder("=")
        np.testing.assert_array_equal(got, expected)
        TRIED[f"idx/{kind}/read"] += 1
    finally:
        os.remove(path)


def _idx_bytes(array, code):
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(_CODES[code]).tobytes()


valid_idx = st.builds(
    lambda code, shape, seed: _idx_bytes(np.random.default_rng(seed).integers(-100, 100, shape), code),
    st.sampled_from(sorted(_CODES)),
    st.lists(st.integers(0, 6), min_size=1, max_size=4).map(tuple),
    st.integers(0, 2**32 - 1),
)


@given(st.binary(max_size=600), st.sampled_from(["", ".gz"]))
def test_idx_random_bytes(data, suffix):
    _check_idx(data, suffix, "random_bytes")


@given(valid_idx, st.booleans())
def test_idx_valid_files_read_back(data, gz):
    _check_idx(gzip.compress(data) if gz else data, ".gz" if gz else "", "valid")


@given(valid_idx, st.data())
def test_idx_truncated_or_extended(data, draw):
    cut = draw.draw(st.integers(0, len(data) + 8))
    mutated = data[:cut] if cut <= len(data) else data + bytes(cut - len(data))
    gz = draw.draw(st.booleans())
    _check_idx(gzip.compress(mutated) if gz else mutated, ".gz" if gz else "", "truncated_or_extended")


@given(valid_idx, st.data())
def test_idx_flipped_bytes(data, draw):
    data = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        data[draw.draw(st.integers(0, len(data) - 1))] = draw.draw(st.integers(0, 255))
    _check_idx(bytes(data), "", "flipped_bytes")


@given(
    st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=6), st.sampled_from(sorted(_CODES)), st.binary(max_size=64)
)
def test_idx_huge_declared_dimensions(dims, code, payload):
    """Headers that declare up to 2^32-1 per dimension: refused before any
    allocation (the test would run out of memory or time otherwise)."""
    header = bytes([0, 0, code, len(dims)]) + np.asarray(dims, ">u4").tobytes()
    _check_idx(header + payload, "", "huge_dimensions")


@given(st.binary(min_size=1, max_size=300))
def test_idx_gzip_that_is_not_gzip(data):
    """Gzip magic followed by garbage, or a real gzip stream cut short."""
    whole = gzip.compress(_idx_bytes(np.arange(50) % 7, 0x08))
    for candidate in (b"\x1f\x8b" + data, whole[: max(2, len(data) % len(whole))]):
        _check_idx(candidate, ".gz", "bad_gzip")


def test_idx_zero_length_file():
    _check_idx(b"", "", "zero_length")
    _check_idx(b"", ".gz", "zero_length")


# ------------------------------------------------------------------- images
def _check_image(data, suffix, kind):
    path = _write(data, suffix)
    try:
        try:
            image = load_image(path)
        except ImageFileError as error:
            assert path in str(error), str(error)
            TRIED[f"image/{kind}/refused"] += 1
            return
        for shape in ((28, 28, 1), (32, 32, 3)):
            x = to_model_input(image, shape)
            assert x.shape == shape and x.dtype == np.float32
            assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
        TRIED[f"image/{kind}/read"] += 1
    finally:
        os.remove(path)


MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "F", "I;16"]
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif", "WEBP": ".webp"}


def _encode(mode, fmt, width, height, seed):
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)
    out = io.BytesIO()
    try:
        image.save(out, fmt)
    except (OSError, ValueError, KeyError):
        image.convert("RGB").save(out, fmt)  # a mode the format cannot store
    return out.getvalue()


images = st.builds(
    _encode,
    st.sampled_from(MODES),
    st.sampled_from(sorted(FORMATS)),
    st.integers(1, 40),
    st.integers(1, 40),
    st.integers(0, 2**32 - 1),
)


@given(st.binary(max_size=400), st.sampled_from([".png", ".jpg", ""]))
def test_images_random_bytes(data, suffix):
    _check_image(data, suffix, "random_bytes")


@given(images)
def test_images_valid_in_any_mode_and_size(data):
    _check_image(data, ".img", "valid")


@given(images, st.data())
def test_images_truncated_or_corrupted(data, draw):
    data = bytearray(data[: draw.draw(st.integers(0, len(data)))])
    if data and draw.draw(st.booleans()):
        for _ in range(draw.draw(st.integers(1, 8))):
            data[draw.draw(st.integers(0, len(data) - 1))] = draw.draw(st.integers(0, 255))
    _check_image(bytes(data), ".img", "truncated_or_corrupted")


@given(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1))
def test_images_huge_declared_dimensions(width, height):
    """A PNG header declaring any size, with one tiny data chunk: refused or
    read as declared, never decoded into gigabytes."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )
    _check_image(png, ".png", "huge_dimensions")


def test_images_zero_length_file():
    _check_image(b"", ".png", "zero_length")
