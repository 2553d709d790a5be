"""Input pipelines: TFDS by default, local IDX files with `data_dir`.

Both sources end in the same tf.data pipeline: scale to [0, 1], shuffle,
random shift with zero padding (training only), batch, prefetch.
"""

import dataclasses

import numpy as np

from keras_caps.data.idx import DataError, load_mnist_idx

# TensorFlow is imported where used: `load_arrays` on IDX files needs numpy only,
# so a run on another backend can go without TensorFlow.
# Data sets the IDX reader serves: both ship as the same four MNIST-format files.
IDX_DATASETS = ("mnist", "fashion_mnist")


@dataclasses.dataclass
class DataInfo:
    """What the model needs to know about a data set."""

    name: str
    image_shape: tuple
    classes: int
    train_size: int
    test_size: int
    source: str


def shift_images(images, max_shift, seed=None):
    """Shifts each image of a batch by up to `max_shift` pixels per axis, filling with 0.

    Args:
        images: float tensor `(batch, height, width, channels)`.
        max_shift: largest shift in pixels (0 returns `images`).
        seed: None (random), an int (op seed of a stateful draw) or a shape-(2,)
            int tensor: a stateless draw, the same for the same seed wherever
            and in whatever order it runs.
    """
    import tensorflow as tf

    if max_shift <= 0:
        return images
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    padded = tf.pad(images, [[0, 0], [max_shift, max_shift], [max_shift, max_shift], [0, 0]])
    if tf.is_tensor(seed):
        offsets = tf.random.stateless_uniform((batch, 2), seed, 0, 2 * max_shift + 1, dtype=tf.int32)
    else:
        offsets = tf.random.uniform((batch, 2), 0, 2 * max_shift + 1, dtype=tf.int32, seed=seed)
    rows = offsets[:, 0:1] + tf.range(height)[None, :]  # (batch, height)
    cols = offsets[:, 1:2] + tf.range(width)[None, :]  # (batch, width)
    picked = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(picked, cols, axis=2, batch_dims=1)


def check_arrays(images, labels, classes, where):
    """Clear errors for arrays a model cannot train on (NaN, wrong rank, bad labels)."""
    if images.ndim != 4:
        raise DataError(f"{where}: images must be (count, height, width, channels), got {images.shape}.")
    if len(images) != len(labels):
        raise DataError(f"{where}: {len(images)} images but {len(labels)} labels.")
    if np.issubdtype(images.dtype, np.floating) and not np.isfinite(images).all():
        raise DataError(f"{where}: images contain NaN or Inf values.")
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise DataError(f"{where}: labels must lie in [0, {classes}), found {labels.min()}..{labels.max()}.")


def load_arrays(dataset="mnist", data_dir=None, tfds_data_dir=None):
    """Returns `((x_train, y_train), (x_test, y_test), info)` as numpy arrays.

    Images are uint8 `(n, height, width, channels)`, labels int64. With
    `data_dir`, reads the four MNIST-format IDX files there; otherwise loads
    `dataset` from TFDS (downloading it when online).
    """
    if data_dir:
        if dataset not in IDX_DATASETS:
            raise DataError(
                f"`data_dir` reads MNIST-format IDX files ({', '.join(IDX_DATASETS)}); "
                f"dataset {dataset!r} comes from TFDS: leave `data_dir` unset."
            )
        (x_train, y_train), (x_test, y_test) = load_mnist_idx(data_dir)
        x_train, x_test = x_train[..., None], x_test[..., None]
        source = f"idx:{data_dir}"
        classes = 10
    else:
        (x_train, y_train), (x_test, y_test), classes = _load_tfds(dataset, tfds_data_dir)
        source = "tfds"
    for images, labels, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        check_arrays(images, labels, classes, f"{dataset} {split}")
    info = DataInfo(
        name=dataset,
        image_shape=tuple(int(d) for d in x_train.shape[1:]),
        classes=classes,
        train_size=len(x_train),
        test_size=len(x_test),
        source=source,
    )
    return (x_train, y_train), (x_test, y_test), info


TFDS_HOST = "storage.googleapis.com"


def _is_prepared(builder):
    try:
        return bool(builder.is_prepared())
    except Exception:
        return False


def _can_resolve(host):
    # A name lookup only (no connection): offline machines fail it at once,
    # where TFDS's download would retry for minutes.
    import socket

    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


def _load_tfds(dataset, tfds_data_dir=None):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(dataset, data_dir=tfds_data_dir)
    except Exception:  # DatasetNotFoundError and friends
        raise DataError(
            f"Unknown dataset {dataset!r}: not a TFDS data set (for example mnist, fashion_mnist, cifar10)."
        ) from None
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise DataError(f"TFDS data set {dataset!r} is not an image classification set (needs 'image' and 'label').")
    classes = int(features["label"].num_classes)
    if not _is_prepared(builder) and not _can_resolve(TFDS_HOST):
        raise DataError(
            f"{dataset!r} is not in the TFDS cache and there is no network to download it "
            f"({TFDS_HOST} does not resolve). Download the four MNIST-format IDX files "
            "and pass their folder as `data_dir`."
        )
    try:
        builder.download_and_prepare()
        splits = [_to_arrays(builder.as_dataset(split=split, as_supervised=True)) for split in ("train", "test")]
    except Exception as error:
        raise DataError(
            f"Could not load {dataset!r} from TFDS ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). Without network access, "
            "download the four MNIST-format IDX files and pass their folder as `data_dir`."
        ) from None
    (x_train, y_train), (x_test, y_test) = splits
    if x_train.ndim == 3:
        x_train, x_test = x_train[..., None], x_test[..., None]
    return (x_train, y_train.astype(np.int64)), (x_test, y_test.astype(np.int64)), classes


def _to_arrays(ds, chunk=10000):
    images, labels = [], []
    for x, y in ds.batch(chunk).as_numpy_iterator():
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def make_dataset(
    images,
    labels,
    batch_size,
    training,
    shift_pixels=0,
    seed=None,
    repeat=False,
    first_epoch=0,
    steps_per_epoch=None,
):
    """A batched, prefetched `tf.data.Dataset` of `(float32 images in [0,1], int labels)`.

    uint8 images are held in memory as they are and divided by 255 per batch;
    float images must already lie in [0, 1]. Training data is shuffled each
    epoch and shifted by up to `shift_pixels` pixels.

    With a `seed`, a repeated training set is a pure function of the seed:
    pass p over the images is shuffled by (seed, p) and batched on its own (the
    last batch of a pass may be short), and global batch g is shifted by
    (seed, g). Every iterator over it, on every worker, yields the same
    batches, and one for a run resumed after `first_epoch` epochs of
    `steps_per_epoch` batches (default: one pass) starts at the batch an
    uninterrupted run would have reached, shifts included.
    """
    import tensorflow as tf

    AUTOTUNE = tf.data.AUTOTUNE
    divisor = 255.0 if np.issubdtype(np.asarray(images).dtype, np.integer) else 1.0
    seeded = training and repeat and seed is not None
    if seeded:
        # Not shuffle(reshuffle_each_iteration): its epochs draw seeds from a
        # generator shared by all iterators, so a prefetching iterator that
        # Keras discards (it peeks at one batch under tf.distribute) shifts
        # the order of the next one, depending on thread timing.
        count = len(images)
        per_pass = -(-count // batch_size)
        done = first_epoch * (steps_per_epoch or per_pass)  # batches an uninterrupted run has taken
        all_images, all_labels = tf.constant(images), tf.constant(labels)

        def one_pass(data_pass):
            order = tf.random.experimental.stateless_shuffle(
                tf.range(count, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), data_pass])
            )
            return tf.data.Dataset.from_tensor_slices(order).batch(batch_size).enumerate(data_pass * per_pass)

        ds = tf.data.Dataset.counter(done // per_pass).flat_map(one_pass).skip(done % per_pass)
        ds = ds.map(lambda number, index: (number, (tf.gather(all_images, index), tf.gather(all_labels, index))))
    else:
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
        if training:
            ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        ds = ds.batch(batch_size, drop_remainder=False).enumerate()
    shifting = training and shift_pixels > 0

    def scale(x, y):
        return tf.cast(x, tf.float32) / divisor, y

    def scale_and_shift(index, batch):
        x, y = scale(*batch)
        # Seeded runs draw each batch's shifts from (seed, batch number):
        # a stateful draw in a parallel map would depend on thread timing.
        batch_seed = None if seed is None else tf.stack([tf.constant(seed, tf.int64), index])
        return shift_images(x, shift_pixels, seed=batch_seed), y

    if shifting:
        ds = ds.map(scale_and_shift, num_parallel_calls=AUTOTUNE)
    else:
        ds = ds.map(lambda number, batch: scale(*batch), num_parallel_calls=AUTOTUNE)
    ds = ds.prefetch(AUTOTUNE)
    # In-memory data has no files to shard: workers of a multi-worker run take
    # alternate elements of the same (identically seeded) order.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)
