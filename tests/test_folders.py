"""Image folders with one sub-folder per class (keras_caps.data.folders, datasets.load_data)."""

import os

import numpy as np
import pytest
from PIL import Image

from keras_caps.data import datasets as data
from keras_caps.data import folders
from keras_caps.data.idx import DataError
from tests.helpers import write_image_folder


def _split_folder(root, **kw):
    train = write_image_folder(os.path.join(root, "train"), **kw)
    test = write_image_folder(os.path.join(root, "test"), seed=1, **kw)
    return train, test


def test_train_test_folders_decode_every_format_to_the_pixels_written(tmp_path):
    written = {}
    for i, ext in enumerate(("png", "bmp", "gif")):  # lossless: exact pixels
        written.update(write_image_folder(str(tmp_path / "train"), ("b_cls", "a_cls"), 2, ext=ext, seed=i))
    write_image_folder(str(tmp_path / "train"), ("b_cls", "a_cls"), 1, ext="jpg", seed=9)
    write_image_folder(str(tmp_path / "test"), ("b_cls", "a_cls"), 2)
    opened = folders.open_folder(str(tmp_path))
    assert opened.class_names == ["a_cls", "b_cls"]  # sorted, as Keras orders them
    assert opened.image_shape == (8, 10, 3) and len(opened.train) == 14 and len(opened.test) == 4
    images, labels = folders.decode_all(opened.train)
    for path, image, label in zip(opened.train.paths, images, labels):
        assert opened.class_names[label] == os.path.basename(os.path.dirname(path))
        if path in written and not path.endswith(".gif"):
            np.testing.assert_array_equal(image, written[path])
        elif path.endswith(".gif"):  # a palette: Pillow's and TensorFlow's decoders agree
            np.testing.assert_array_equal(image, np.asarray(Image.open(path).convert("RGB")))


def test_one_tree_is_split_stratified_and_alike_for_every_run_seed(tmp_path):
    write_image_folder(str(tmp_path), ("a", "b", "c"), per_class=10)
    first = folders.open_folder(str(tmp_path), test_split=0.2, val_split=0.25)
    again = folders.open_folder(str(tmp_path), test_split=0.2, val_split=0.25)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(first, split).paths, getattr(again, split).paths)
    assert np.bincount(first.test.labels).tolist() == [2, 2, 2]
    assert np.bincount(first.val.labels).tolist() == [2, 2, 2]  # a quarter of the 8 left per class
    assert np.bincount(first.train.labels).tolist() == [6, 6, 6]
    every = np.concatenate([first.train.paths, first.val.paths, first.test.paths])
    assert len(set(every)) == 30
    default = folders.open_folder(str(tmp_path))
    assert len(default.test) == 6 and default.val is None  # test_split 0.2 by default
    assert any("holding out" in note for note in default.notes)


def test_grey_files_give_one_channel_and_a_mix_becomes_rgb_and_says_so(tmp_path):
    grey = write_image_folder(str(tmp_path / "g"), mode="L")
    assert folders.open_folder(str(tmp_path / "g")).image_shape == (8, 10, 1)
    write_image_folder(str(tmp_path / "mix"), ("a",), mode="L")
    write_image_folder(str(tmp_path / "mix"), ("b",), mode="RGBA")
    mixed = folders.open_folder(str(tmp_path / "mix"))
    assert mixed.image_shape == (8, 10, 3)
    assert any("4 of 8 images" in note and "converted to RGB" in note for note in mixed.notes)
    images, _ = folders.decode_all(mixed.train)
    path = mixed.train.paths[mixed.train.labels == 0][0]
    expected = np.asarray(Image.open(path))
    np.testing.assert_array_equal(images[list(mixed.train.paths).index(path)], np.stack([expected] * 3, -1))
    # color_mode grayscale: RGB by luminance (TensorFlow's weights 0.2989, 0.587, 0.114)
    as_grey = folders.open_folder(str(tmp_path / "mix"), color_mode="grayscale")
    assert as_grey.image_shape == (8, 10, 1)
    images, _ = folders.decode_all(as_grey.train)
    path = as_grey.train.paths[as_grey.train.labels == 1][0]
    rgb = np.asarray(Image.open(path))[..., :3].astype(np.float64)
    luma = rgb @ np.array([0.2989, 0.587, 0.114])
    got = images[list(as_grey.train.paths).index(path)][..., 0]
    assert np.abs(got - luma).max() <= 1.0
    assert len(grey) == 8


def test_mixed_sizes_need_image_size_and_are_resized_to_it(tmp_path):
    write_image_folder(str(tmp_path), ("a",), 2, size=(8, 10))
    write_image_folder(str(tmp_path), ("b",), 2, size=(12, 6))
    with pytest.raises(DataError, match=r"2 sizes.*8x10.*12x6.*`image_size`"):
        folders.open_folder(str(tmp_path))
    opened = folders.open_folder(str(tmp_path), image_size=(16, 16), test_split=0.5)
    assert opened.image_shape == (16, 16, 3) and opened.train.resize
    images, _ = folders.decode_all(opened.train)
    assert images.shape == (2, 16, 16, 3) and images.dtype == np.uint8


@pytest.mark.parametrize(
    "layout,message",
    [
        ("no_classes", "no class sub-folders"),
        ("one_class", "only one class sub-folder"),
        ("empty_class", "class 'b' has no images"),
        ("mismatch", r"only in train/: \['b'\], only in test/: \['c'\]"),
        ("truncated", r"b/01\.png: not a readable image \(Invalid PNG data"),
        ("not_an_image", r"a/00\.jpg: not a readable image \(Unknown image file format"),
        ("test_without_train", "no train/ folder"),
        ("bad_image_size", "`image_size` must be"),
        ("bad_color_mode", "`color_mode` must be one of grayscale, rgb"),
        ("val_twice", "has a val/ folder"),
    ],
)
def test_unusable_folders_are_clear_errors(tmp_path, layout, message):
    root, kw = tmp_path, {}
    if layout == "no_classes":
        (root / "loose.png").write_bytes(b"")
        os.makedirs(root / ".hidden")
    elif layout == "one_class":
        write_image_folder(str(root), ("a",))
    elif layout == "empty_class":
        write_image_folder(str(root), ("a",))
        os.makedirs(root / "b")
        (root / "b" / "notes.txt").write_text("no images here")
    elif layout == "mismatch":
        write_image_folder(str(root / "train"), ("a", "b"))
        write_image_folder(str(root / "test"), ("a", "c"))
    elif layout == "truncated":
        write_image_folder(str(root), ("a", "b"), size=(32, 32))
        data_ = (root / "b" / "01.png").read_bytes()
        (root / "b" / "01.png").write_bytes(data_[: len(data_) // 2])
    elif layout == "not_an_image":
        write_image_folder(str(root), ("a", "b"))
        (root / "a" / "00.jpg").write_text("a text file named like a JPEG")
    elif layout == "test_without_train":
        write_image_folder(str(root / "test"), ("a", "b"))
    elif layout in ("bad_image_size", "bad_color_mode"):
        write_image_folder(str(root), ("a", "b"))
        kw = {"image_size": (0, 4)} if layout == "bad_image_size" else {"color_mode": "cmyk"}
    elif layout == "val_twice":
        _split_folder(str(root))
        write_image_folder(str(root / "val"), ("cat", "dog"))
        kw = {"val_split": 0.1}
    with pytest.raises(DataError, match=message) as error:
        folders.open_folder(str(root), **kw)
    if layout in ("truncated", "not_an_image"):
        assert str(root) in str(error.value)  # the whole path of the file


def test_files_that_are_not_images_are_skipped_and_counted(tmp_path):
    write_image_folder(str(tmp_path), ("a", "b"))
    (tmp_path / "a" / "README.md").write_text("about a")
    (tmp_path / "a" / ".DS_Store").write_bytes(b"\0")
    opened = folders.open_folder(str(tmp_path))
    assert len(opened.train) + len(opened.test) == 8
    assert any("skipped 1 files that are not images" in note and "README.md" in note for note in opened.notes)


def test_load_data_caches_a_small_folder_and_streams_with_cache_none(tmp_path, capsys):
    _split_folder(str(tmp_path))
    cached = data.load_data(data_dir=str(tmp_path))
    assert "decoded into memory" in capsys.readouterr().out
    assert isinstance(cached.train, tuple) and cached.train[0].shape == (8, 8, 10, 3)
    assert cached.info.class_names == ["cat", "dog"] and cached.info.classes == 2
    assert cached.info.image_shape == (8, 10, 3) and cached.info.source.startswith("folder:")
    streamed = data.load_data(data_dir=str(tmp_path), cache="none")
    assert "read from the files as training goes" in capsys.readouterr().out
    assert isinstance(streamed.train, folders.FileSplit) and not streamed.info.cached
    np.testing.assert_array_equal(data.first_images(streamed.test, 3), data.first_images(cached.test, 3))
    with pytest.raises(DataError, match="`cache` must be one of auto, memory, none"):
        data.load_data(data_dir=str(tmp_path), cache="disk")


def test_folder_flags_are_refused_for_idx_and_tfds_sets(mnist_dir):
    with pytest.raises(DataError, match="`image_size` applies to image folders.*IDX"):
        data.load_data(data_dir=mnist_dir, image_size=(32, 32))
    with pytest.raises(DataError, match="`color_mode` applies to image folders.*TFDS set 'cifar10'"):
        data.load_data("cifar10", color_mode="rgb")


def _all(dataset, n):
    it = iter(dataset)
    return [tuple(t.numpy() for t in next(it)) for _ in range(n)]


def test_the_stream_from_files_is_the_cached_stream_resumed_or_not(tmp_path):
    """Same seed, same batches and shifts whether the images come from memory or from
    their files; a stream resumed after 2 epochs of 3 batches is the uninterrupted one."""
    write_image_folder(str(tmp_path), ("a", "b", "c"), per_class=4, size=(6, 6))
    opened = folders.open_folder(str(tmp_path), test_split=0.25)
    images, labels = folders.decode_all(opened.train)
    args = dict(training=True, shift_pixels=1, seed=3, repeat=True, steps_per_epoch=3)
    from_memory = _all(data.make_dataset(images, labels, 4, **args), 9)
    from_files = _all(data.make_dataset(opened.train, None, 4, **args), 9)
    for (x1, y1), (x2, y2) in zip(from_memory, from_files):
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(x1, x2)
    resumed = _all(data.make_dataset(opened.train, None, 4, first_epoch=2, **args), 3)
    for (x1, y1), (x2, y2) in zip(from_files[6:], resumed):
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(x1, x2)
    evaluation = _all(data.make_dataset(opened.test, None, 2, training=False), 2)
    np.testing.assert_array_equal(np.concatenate([y for _, y in evaluation]), opened.test.labels)


def test_tfds_offline_message_speaks_of_the_set_asked_for(monkeypatch):
    monkeypatch.setattr(data, "_is_prepared", lambda builder: False)
    monkeypatch.setattr(data, "_can_resolve", lambda host: False)
    with pytest.raises(DataError) as error:
        data.load_arrays("cifar10")
    assert "MNIST" not in str(error.value) and "one sub-folder per class" in str(error.value)
    with pytest.raises(DataError, match="fashion_mnist's four IDX files"):
        data.load_arrays("fashion_mnist")


def test_tfds_sets_that_are_not_image_classification_are_refused():
    with pytest.raises(DataError, match="not an image classification set"):
        data.load_arrays("glue")


def test_tfds_class_names_come_from_the_set(monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(data, "_can_resolve", lambda host: True)
    with tfds.testing.mock_data(num_examples=4):
        _, _, info = data.load_arrays("cifar10")
        names = tfds.builder("cifar10").info.features["label"].names
    assert info.class_names == names and len(names) == 10 and info.image_shape == (32, 32, 3)


def test_a_tfds_set_streams_from_its_files_seeded_and_resumable(monkeypatch, capsys):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(data, "_can_resolve", lambda host: True)
    with tfds.testing.mock_data(num_examples=10):
        streamed = data.load_data("cifar10", cache="none", val_split=0.2)
        assert "read from TFDS's files as training goes" in capsys.readouterr().out
        assert isinstance(streamed.train, data.TfdsSplit) and not streamed.info.cached
        assert (len(streamed.train), len(streamed.val), streamed.info.image_shape) == (8, 2, (32, 32, 3))
        whole = data.load_data("cifar10", cache="none").train
        in_order = data.to_arrays(whole)
        args = dict(training=True, shift_pixels=1, seed=4, repeat=True, steps_per_epoch=2)
        first = _all(data.make_dataset(whole, None, 4, **args), 9)
        again = _all(data.make_dataset(whole, None, 4, **args), 9)
        resumed = _all(data.make_dataset(whole, None, 4, first_epoch=2, **args), 5)
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    for (x1, y1), (x2, y2) in zip(first[4:], resumed):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    # each pass (3 batches of 4, 4, 2) holds every image once, in another order than the files'
    one_pass = np.concatenate([y for _, y in first[:3]])
    assert sorted(one_pass) == sorted(in_order[1]) and [len(y) for _, y in first[:3]] == [4, 4, 2]
    assert first[0][0].dtype == np.float32 and first[0][0].max() <= 1.0


def test_a_tfds_set_that_fits_is_read_into_memory(monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(data, "_can_resolve", lambda host: True)
    with tfds.testing.mock_data(num_examples=6):
        cached = data.load_data("mnist")
    assert isinstance(cached.train, tuple) and cached.train[0].shape == (6, 28, 28, 1) and cached.info.cached
