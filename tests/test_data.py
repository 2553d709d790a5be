import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_caps.data import datasets as data
from keras_caps.data.idx import DataError
from tests.helpers import check_flips, check_turns, spot_images, write_mnist


def test_make_dataset_flips_training_batches_only():
    images = np.random.default_rng(2).integers(0, 256, (200, 5, 4, 3), dtype=np.uint8)
    labels = np.arange(200)
    ((x, y),) = list(data.make_dataset(images, labels, 200, training=True, flip="horizontal", seed=1))
    check_flips(images[y.numpy()] / np.float32(255), x.numpy(), "horizontal")
    ((x, y),) = list(data.make_dataset(images, labels, 200, training=False, flip="horizontal"))
    np.testing.assert_array_equal(x.numpy(), images / np.float32(255))
    with pytest.raises(ValueError, match="`flip` must be one of"):
        data.make_dataset(images, labels, 10, training=True, flip="left")


def test_make_dataset_turns_training_batches_only():
    images = spot_images(200, "uint8")
    ds = data.make_dataset(images, np.arange(200), 200, training=True, rotation=25, seed=1)
    assert ds.element_spec[0].shape.as_list() == [None, 21, 21, 1]  # static, as a model needs
    ((x, _),) = list(ds)
    check_turns(x.numpy(), 25)
    ((x, _),) = list(data.make_dataset(images, np.arange(200), 200, training=False, rotation=25))
    np.testing.assert_array_equal(x.numpy(), images / np.float32(255))
    with pytest.raises(ValueError, match="`rotation` must be"):
        data.make_dataset(images, np.arange(200), 10, training=True, rotation=200)


def test_make_dataset_scales_batches_and_shuffles():
    images = np.arange(10 * 4 * 4).reshape(10, 4, 4, 1).astype(np.uint8)
    labels = np.arange(10)
    test = list(data.make_dataset(images, labels, 4, training=False))
    assert [len(b[1]) for b in test] == [4, 4, 2]
    x, y = test[0]
    assert x.dtype == tf.float32 and float(tf.reduce_max(x)) <= 1.0
    np.testing.assert_allclose(x.numpy(), images[:4] / 255.0, rtol=1e-6)
    train = data.make_dataset(images, labels, 10, training=True, seed=3)
    orders = [next(iter(train))[1].numpy().tolist() for _ in range(2)]
    assert sorted(orders[0]) == list(range(10)) and orders[0] != list(range(10))


def _batches(dataset, n):
    it = iter(dataset)
    return [tuple(t.numpy() for t in next(it)) for _ in range(n)]


def test_seeded_repeated_training_set_is_the_same_from_every_iterator():
    """A half-read, prefetching iterator (as Keras discards under tf.distribute)
    must not change what the next iterator yields: each epoch is a permutation
    of its own, and shifts are drawn from (seed, batch number)."""
    images = np.random.default_rng(0).integers(0, 256, (12, 6, 6, 1), dtype=np.uint8)
    labels = np.arange(12)
    args = dict(training=True, shift_pixels=1, flip="horizontal_and_vertical", rotation=15, seed=5, repeat=True)
    ds = data.make_dataset(images, labels, 4, **args)
    first = _batches(ds, 9)  # three epochs
    peek = iter(ds)
    next(peek)  # a discarded iterator that has started prefetching
    again = _batches(ds, 9)
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(x1, x2)
    epochs = [np.concatenate([y for _, y in first[3 * e : 3 * e + 3]]) for e in range(3)]
    assert all(sorted(e) == list(range(12)) for e in epochs)  # each epoch sees every image once
    assert len({tuple(e) for e in epochs}) == 3  # in a new order each epoch
    assert any(not np.array_equal(x, images[y] / 255.0) for x, y in first)  # shifted
    # A resumed run continues the sequence of epochs, shifts, flips and turns included, instead of repeating epoch 0.
    later = data.make_dataset(images, labels, 4, first_epoch=1, **args)
    for (x1, y1), (x2, y2) in zip(first[3:], _batches(later, 6)):
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(x1, x2)
    other_seed = data.make_dataset(images, labels, 4, training=True, seed=6, repeat=True)
    assert not np.array_equal(np.concatenate([y for _, y in _batches(other_seed, 3)]), epochs[0])


def test_a_resumed_stream_is_the_uninterrupted_one_for_any_epoch_length():
    """Passes of 10 images in batches of 4 (4, 4, 2), epochs of 3 batches (not a pass):
    after 2 epochs a resumed stream yields batch 6 onwards of the uninterrupted one."""
    images = np.random.default_rng(1).integers(0, 256, (10, 6, 6, 1), dtype=np.uint8)
    labels = np.arange(10)
    args = dict(training=True, shift_pixels=1, flip="vertical", seed=2, repeat=True, steps_per_epoch=3)
    whole = _batches(data.make_dataset(images, labels, 4, **args), 12)
    assert [len(y) for _, y in whole[:6]] == [4, 4, 2, 4, 4, 2]  # each pass batched on its own
    assert sorted(np.concatenate([y for _, y in whole[:3]])) == list(range(10))
    resumed = _batches(data.make_dataset(images, labels, 4, first_epoch=2, **args), 6)
    for (x1, y1), (x2, y2) in zip(whole[6:], resumed):
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(x1, x2)


def test_load_arrays_from_idx(tmp_path):
    write_mnist(str(tmp_path), n_train=12, n_test=5)
    (x, y), (xt, yt), info = data.load_arrays("mnist", str(tmp_path))
    assert x.shape == (12, 28, 28, 1) and xt.shape == (5, 28, 28, 1)
    assert (info.image_shape, info.classes, info.train_size) == ((28, 28, 1), 10, 12)
    with pytest.raises(DataError, match="comes from TFDS"):
        data.load_arrays("cifar10", str(tmp_path))


@pytest.mark.parametrize(
    "name,shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3)), ("svhn_cropped", (32, 32, 3))]
)
def test_load_arrays_from_tfds_mock(name, shape, monkeypatch):
    # TFDS's mock stands in for the download of an online machine.
    monkeypatch.setattr(data, "_can_resolve", lambda host: True)
    with tfds.testing.mock_data(num_examples=9):
        (x, y), (xt, yt), info = data.load_arrays(name)
    assert x.shape == (9,) + shape and x.dtype == np.uint8
    assert info.source == "tfds" and info.classes == 10
    assert y.min() >= 0 and y.max() < 10


def test_unknown_dataset():
    with pytest.raises(DataError, match="Unknown dataset 'no_such_set'"):
        data.load_arrays("no_such_set")


def test_offline_without_data_dir_names_data_dir(monkeypatch):
    monkeypatch.setattr(data, "_is_prepared", lambda builder: False)
    monkeypatch.setattr(data, "_can_resolve", lambda host: False)
    with pytest.raises(DataError, match="`data_dir`"):
        data.load_arrays("mnist")


def test_check_arrays_rejects_nan_and_bad_labels():
    x = np.zeros((3, 4, 4, 1), np.float32)
    data.check_arrays(x, np.array([0, 1, 2]), 3, "ok")
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        data.check_arrays(x, np.array([0, 1, 2]), 3, "set")
    with pytest.raises(DataError, match=r"labels must lie in \[0, 3\)"):
        data.check_arrays(np.zeros((3, 4, 4, 1)), np.array([0, 1, 5]), 3, "set")
    with pytest.raises(DataError, match="3 images but 2 labels"):
        data.check_arrays(np.zeros((3, 4, 4, 1)), np.array([0, 1]), 3, "set")


def test_capsnet_fits_a_tf_data_dataset_with_callbacks():
    import keras

    from tests.helpers import small_model, toy_data

    x, y = toy_data(64)
    ds = data.make_dataset((x * 255).astype(np.uint8), y, 16, training=True, shift_pixels=1, seed=0)
    model = small_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    seen = []
    callback = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(dict(logs)))
    model.fit(
        ds, epochs=3, verbose=0, validation_data=data.make_dataset(x, y, 16, training=False), callbacks=[callback]
    )
    assert len(seen) == 3
    assert {"loss", "accuracy", "margin_loss", "reconstruction_loss", "val_accuracy"} <= set(seen[-1])
    assert seen[-1]["loss"] < seen[0]["loss"]


def test_datasets_made_here_are_marked_scaled_and_not_looked_at_again():
    """CapsNet.fit looks at a dataset's first batch for its range (which could cost a shuffle
    buffer of decoded files), but not at one make_dataset scaled itself; a map of it is a new
    dataset, looked at again."""
    from keras_caps.models.image_range import first_images

    images = np.random.default_rng(0).integers(0, 256, (20, 6, 6, 1), dtype=np.uint8)
    ds = data.make_dataset(images, np.arange(20) % 2, 10, training=True, seed=0, repeat=True, shift_pixels=1)
    assert first_images(ds) is None
    mapped = first_images(ds.map(lambda x, y: (x * 255, y)))
    assert mapped.shape == (10, 6, 6, 1) and float(np.max(mapped)) > 200
