"""Input pipelines: TFDS by default, local IDX files with `data_dir`.

Both sources end in the same tf.data pipeline: scale to [0, 1], shuffle,
random shift with zero padding, random flip and rotation (training only), batch,
prefetch.
"""

import dataclasses
import os
import socket

import numpy as np

from keras_caps.data.augment import augment_images, check_flip, check_rotation
from keras_caps.data.folders import FileSplit, decode_all, decode_image, is_image_folder, open_folder
from keras_caps.data.idx import DataError, load_mnist_idx
from keras_caps.models.image_range import mark_scaled

# TensorFlow is imported where used: `load_arrays` on IDX files needs numpy only,
# so a run on another backend can go without TensorFlow.
# Data sets the IDX reader serves: both ship as the same four MNIST-format files.
IDX_DATASETS = ("mnist", "fashion_mnist")


# Class names of the sets whose IDX files carry none.
IDX_CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}
CACHE_MODES = ("auto", "memory", "none")
# `cache="auto"` holds a folder's decoded images in memory up to this, or a quarter of the free memory.
CACHE_LIMIT_BYTES = 4 << 30


@dataclasses.dataclass
class DataInfo:
    """What the model needs to know about a data set."""

    name: str
    image_shape: tuple
    classes: int
    train_size: int
    test_size: int
    source: str
    class_names: list = dataclasses.field(default_factory=list)
    cached: bool = True


@dataclasses.dataclass
class DataSplits:
    """A data set's splits, each `(images, labels)` arrays or a `FileSplit` read as it goes.

    `val` is None unless the data brought its own (a folder's val/ or `val_split`).
    `test_files`: an image folder's test files, in the test split's order (None for other sources).
    """

    train: object
    val: object
    test: object
    info: DataInfo
    test_files: object = None


@dataclasses.dataclass
class TfdsSplit:
    """A TFDS split read from its files as training goes, in the files' order.

    Attributes:
        builder: the set's prepared `tfds` builder.
        split: a TFDS split name, slices allowed (`"train[:54000]"`).
        count: its number of images.
        image_shape: `(height, width, channels)`.
    """

    builder: object
    split: str
    count: int
    image_shape: tuple

    def __len__(self):
        return self.count

    def dataset(self):
        """`(uint8 image, int64 label)` elements, the same order every time."""
        import tensorflow as tf

        ds = self.builder.as_dataset(split=self.split, as_supervised=True, shuffle_files=False)
        return ds.map(lambda x, y: (tf.reshape(x, self.image_shape), tf.cast(y, tf.int64)))


# A streamed TFDS set is shuffled in a buffer of this many images (a folder's files are shuffled whole).
SHUFFLE_BUFFER = 10000


def split_size(split):
    """Number of images of a split, arrays or files."""
    return len(split) if isinstance(split, FileSplit | TfdsSplit) else len(split[0])


def to_arrays(split, count=None):
    """`(uint8 images, labels)` of a split's first `count` images (all: None), whatever it holds."""
    count = split_size(split) if count is None else min(count, split_size(split))
    if isinstance(split, FileSplit):
        return decode_all(split.subset(np.arange(count)))
    if isinstance(split, TfdsSplit):
        return _to_arrays(split.dataset().take(count))
    return split[0][:count], split[1][:count]


def split_labels(split):
    """The class ids of a split, `(n,)` int64, in its order (a TFDS split read from its files is read once for them)."""
    if isinstance(split, FileSplit):
        return np.asarray(split.labels, np.int64)
    if isinstance(split, TfdsSplit):
        labels = split.dataset().map(lambda x, y: y).batch(10000).as_numpy_iterator()
        return np.concatenate([np.zeros(0, np.int64), *labels]).astype(np.int64)
    return np.asarray(split[1], np.int64)


def first_images(split, count):
    """The first `count` images of a split as float32 in [0, 1] (for checks)."""
    return _as_float(to_arrays(split, count)[0])


def spread_images(split, count):
    """`count` images spread evenly over a split, float32 in [0, 1] (for figures: a folder's
    files come class by class, so its first images are all of one class)."""
    size = split_size(split)
    index = np.unique(np.linspace(0, size - 1, min(count, size)).round().astype(int))
    if isinstance(split, TfdsSplit):  # read in order: the first ones
        return first_images(split, count)
    if isinstance(split, FileSplit):
        return _as_float(decode_all(split.subset(index))[0])
    return _as_float(split[0][index])


def _as_float(images):
    return images.astype(np.float32) / (255.0 if np.issubdtype(images.dtype, np.integer) else 1.0)


def _free_memory_bytes():
    try:
        with open("/proc/meminfo") as fh:
            fields = dict(line.split(":", 1) for line in fh)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return CACHE_LIMIT_BYTES * 4


def load_data(
    dataset="mnist",
    data_dir=None,
    image_size=None,
    color_mode=None,
    val_split=0.0,
    test_split=None,
    seed=0,
    cache="auto",
    tfds_data_dir=None,
):
    """The splits of a run: IDX files or an image folder with `data_dir`, else a TFDS set.

    Args:
        dataset: TFDS name, or which IDX set `data_dir` holds (`mnist`,
            `fashion_mnist`: their class names).
        data_dir: the four MNIST-format IDX files, or an image folder
            (`keras_caps.data.folders.open_folder`).
        image_size, color_mode, test_split: an image folder's
            (`open_folder`); refused for IDX and TFDS sets.
        val_split: a folder's stratified validation share (IDX and TFDS sets
            are split by the trainer).
        seed: the folder's split seed (`open_folder`).
        cache: `"auto"` holds a folder's decoded images in memory when they
            fit (`CACHE_LIMIT_BYTES`, a quarter of the free memory), `"memory"`
            always, `"none"` reads the files as it trains.

    Returns:
        A `DataSplits`.
    """
    import keras

    if cache not in CACHE_MODES:
        raise DataError(f"`cache` must be one of {', '.join(CACHE_MODES)}, got {cache!r}.")
    if data_dir:
        if is_image_folder(data_dir):
            folder = open_folder(data_dir, image_size, color_mode, val_split, test_split, seed)
            for note in folder.notes:
                print(f"{data_dir}: {note}.")
            splits = [s for s in (folder.train, folder.val, folder.test) if s is not None]
            decoded_bytes = sum(len(s) for s in splits) * int(np.prod(folder.image_shape))
            fits = decoded_bytes <= min(CACHE_LIMIT_BYTES, _free_memory_bytes() // 4)
            # Other backends read numpy batches (`ArrayBatches`): they need the images in memory.
            cached = cache == "memory" or (cache == "auto" and fits) or keras.backend.backend() != "tensorflow"
            named = zip(("train", "val", "test"), (folder.train, folder.val, folder.test))
            counts = ", ".join(f"{len(s)} {n}" for n, s in named if s is not None)
            print(
                f"{data_dir}: {counts} images of {len(folder.class_names)} classes, shape {folder.image_shape}; "
                + (
                    f"decoded into memory ({decoded_bytes / 2**20:.0f} MiB; `cache` none reads the files as it trains)."
                    if cached
                    else f"read from the files as training goes ({decoded_bytes / 2**20:.0f} MiB decoded; "
                    f"`cache` {'memory holds them' if cache == 'none' else 'auto found too little free memory'})."
                )
            )
            train, val, test = (
                (decode_all(s) if cached and s is not None else s) for s in (folder.train, folder.val, folder.test)
            )
            info = DataInfo(
                name=os.path.basename(os.path.normpath(data_dir)),
                image_shape=tuple(folder.image_shape),
                classes=len(folder.class_names),
                train_size=len(folder.train),
                test_size=len(folder.test),
                source=f"folder:{data_dir}",
                class_names=list(folder.class_names),
                cached=cached,
            )
            return DataSplits(train, val, test, info, test_files=folder.test.paths)
    for name, value in (("image_size", image_size), ("color_mode", color_mode), ("test_split", test_split)):
        if value:
            where = "MNIST-format IDX files" if data_dir else f"the TFDS set {dataset!r}"
            raise DataError(f"`{name}` applies to image folders; `data_dir` is unset or holds {where}.")
    if not data_dir and cache != "memory" and keras.backend.backend() == "tensorflow":
        streamed = _tfds_streamed(dataset, tfds_data_dir, val_split, cache)
        if streamed is not None:
            return streamed
    train, test, info = load_arrays(dataset, data_dir, tfds_data_dir)
    return DataSplits(train, None, test, info)


def _tfds_streamed(dataset, tfds_data_dir, val_split, cache):
    """A TFDS set as `TfdsSplit`s when `cache` is none, or auto and its images would not fit; else None."""
    builder, names = _tfds_builder(dataset, tfds_data_dir)
    shape = tuple(int(d) for d in builder.info.features["image"].shape)
    if len(shape) != 3 or None in shape:
        return None  # images of several sizes: read into arrays, where the error says so

    def count(split):
        return int(builder.as_dataset(split=split, as_supervised=True).cardinality())

    counts = {split: count(split) for split in ("train", "test")}
    decoded = sum(counts.values()) * int(np.prod(shape))
    if cache == "auto" and decoded <= min(CACHE_LIMIT_BYTES, _free_memory_bytes() // 4):
        return None
    train, test = (TfdsSplit(builder, split, counts[split], shape) for split in ("train", "test"))
    val = None
    if val_split:  # the last share of the training split, read in order
        held = min(counts["train"] - 1, max(1, int(round(counts["train"] * val_split))))
        first = counts["train"] - held
        train = TfdsSplit(builder, f"train[:{first}]", first, shape)
        val = TfdsSplit(builder, f"train[{first}:]", held, shape)
    print(
        f"{dataset}: read from TFDS's files as training goes ({decoded / 2**20:.0f} MiB decoded; "
        f"shuffled in a buffer of {SHUFFLE_BUFFER} images; `cache` memory holds them)."
    )
    info = DataInfo(
        name=dataset,
        image_shape=shape,
        classes=len(names),
        train_size=len(train),
        test_size=len(test),
        source="tfds",
        class_names=names,
        cached=False,
    )
    return DataSplits(train, val, test, info)


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
        class_names = IDX_CLASS_NAMES[dataset]
    else:
        (x_train, y_train), (x_test, y_test), class_names = _load_tfds(dataset, tfds_data_dir)
        classes = len(class_names)
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
        class_names=list(class_names),
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
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


def _tfds_builder(dataset, tfds_data_dir=None):
    """`(builder, class_names)` of a prepared TFDS image classification set (downloaded when online)."""
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
    names = list(features["label"].names)
    if not _is_prepared(builder) and not _can_resolve(TFDS_HOST):
        raise DataError(
            f"{dataset!r} is not in the TFDS cache and there is no network to download it "
            f"({TFDS_HOST} does not resolve). {_offline_hint(dataset)}"
        )
    try:
        builder.download_and_prepare()
    except Exception as error:
        raise DataError(
            f"Could not load {dataset!r} from TFDS ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). {_offline_hint(dataset)}"
        ) from None
    return builder, names


def _load_tfds(dataset, tfds_data_dir=None):
    builder, names = _tfds_builder(dataset, tfds_data_dir)
    try:
        splits = [_to_arrays(builder.as_dataset(split=split, as_supervised=True)) for split in ("train", "test")]
    except Exception as error:
        raise DataError(
            f"Could not load {dataset!r} from TFDS ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). {_offline_hint(dataset)}"
        ) from None
    (x_train, y_train), (x_test, y_test) = splits
    if x_train.ndim == 3:
        x_train, x_test = x_train[..., None], x_test[..., None]
    return (x_train, y_train.astype(np.int64)), (x_test, y_test.astype(np.int64)), names


def _offline_hint(dataset):
    if dataset in IDX_DATASETS:
        return f"Without network access, pass a folder with {dataset}'s four IDX files as `data_dir`."
    return (
        "Without network access, copy a prepared TFDS folder here (its `data_dir`), or write the images "
        "into a folder with one sub-folder per class and pass that as `data_dir`."
    )


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
    flip="none",
    rotation=0,
    fill_value=0.0,
):
    """A batched, prefetched `tf.data.Dataset` of `(float32 images in [0,1], int labels)`.

    `images`: uint8 images held in memory as they are and divided by 255 per
    batch, float images already in [0, 1], or a `FileSplit`, whose files are
    decoded as batches are made, in parallel (its labels are its own: pass
    `labels=None`); memory then does not grow with the number of files. Training data is shuffled each
    epoch, shifted by up to `shift_pixels` pixels, flipped as `flip` says
    (a key of `keras_caps.data.augment.FLIPS`) and turned by up to `rotation`
    degrees either way, `fill_value` coming in at the edges (0: black).

    With a `seed`, a repeated training set is a pure function of the seed:
    pass p over the images is shuffled by (seed, p) and batched on its own (the
    last batch of a pass may be short), and global batch g is shifted, flipped and
    turned by (seed, g). Every iterator over it, on every worker, yields the same
    batches, and one for a run resumed after `first_epoch` epochs of
    `steps_per_epoch` batches (default: one pass) starts at the batch an
    uninterrupted run would have reached, shifts included.
    """
    import tensorflow as tf

    check_flip(flip)
    check_rotation(rotation)
    AUTOTUNE = tf.data.AUTOTUNE
    augment = (shift_pixels, flip, rotation, fill_value)
    if isinstance(images, TfdsSplit):
        return _stream_dataset(images, batch_size, training, augment, seed, repeat, first_epoch, steps_per_epoch)
    files = isinstance(images, FileSplit)
    if files:
        labels, divisor = images.labels, 255.0

        def decode(path, label):
            return decode_image(path, images.image_shape, images.resize), label

    else:
        divisor = 255.0 if np.issubdtype(np.asarray(images).dtype, np.integer) else 1.0
    count = len(labels)
    seeded = training and repeat and seed is not None
    if seeded:
        # Not shuffle(reshuffle_each_iteration): its epochs draw seeds from a
        # generator shared by all iterators, so a prefetching iterator that
        # Keras discards (it peeks at one batch under tf.distribute) shifts
        # the order of the next one, depending on thread timing.
        per_pass = -(-count // batch_size)
        done = first_epoch * (steps_per_epoch or per_pass)  # batches an uninterrupted run has taken
        first_pass, skip = done // per_pass, done % per_pass
        if files:
            all_paths, all_labels = tf.constant(images.paths), tf.constant(labels)
        else:
            all_images, all_labels = tf.constant(images), tf.constant(labels)

        def one_pass(data_pass):
            order = tf.random.experimental.stateless_shuffle(
                tf.range(count, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), data_pass])
            )
            if not files:
                return tf.data.Dataset.from_tensor_slices(order).batch(batch_size).enumerate(data_pass * per_pass)
            # Files: only the batches still to come are decoded (a resumed run skips the rest unread).
            start = tf.where(data_pass == first_pass, tf.constant(skip, tf.int64), 0)
            order = order[start * batch_size :]
            picked = (tf.gather(all_paths, order), tf.gather(all_labels, order))
            decoded = tf.data.Dataset.from_tensor_slices(picked).map(decode, num_parallel_calls=AUTOTUNE)
            return decoded.batch(batch_size).enumerate(data_pass * per_pass + start)

        ds = tf.data.Dataset.counter(first_pass).flat_map(one_pass)
        if not files:
            ds = ds.skip(skip)
            ds = ds.map(lambda number, index: (number, (tf.gather(all_images, index), tf.gather(all_labels, index))))
    else:
        ds = tf.data.Dataset.from_tensor_slices((images.paths, labels) if files else (images, labels))
        if training:
            ds = ds.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        if files:
            ds = ds.map(decode, num_parallel_calls=AUTOTUNE)
        ds = ds.batch(batch_size, drop_remainder=False).enumerate()
    return _scale_augment_prefetch(ds, divisor, training, augment, seed)


def _scale_augment_prefetch(ds, divisor, training, augment, seed):
    """`(batch number, (images, labels))` batches -> scaled, shifted, flipped and turned
    (training: `augment` is `(shift_pixels, flip, rotation, fill_value)`), prefetched, shardable."""
    import tensorflow as tf

    shift_pixels, flip, rotation, fill_value = augment

    def scale(x, y):
        return tf.cast(x, tf.float32) / divisor, y

    def scale_and_augment(index, batch):
        x, y = scale(*batch)
        # Seeded runs draw each batch's shifts, flips and turns from (seed, batch number):
        # a stateful draw in a parallel map would depend on thread timing.
        batch_seed = None if seed is None else tf.stack([tf.constant(seed, tf.int64), index])
        return augment_images(x, shift_pixels, flip, rotation, seed=batch_seed, fill_value=fill_value), y

    if training and (shift_pixels > 0 or flip != "none" or rotation > 0):
        ds = ds.map(scale_and_augment, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda number, batch: scale(*batch), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    # In-memory data has no files to shard: workers of a multi-worker run take
    # alternate elements of the same (identically seeded) order.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return mark_scaled(ds.with_options(options))


def _stream_dataset(split, batch_size, training, augment, seed, repeat, first_epoch, steps_per_epoch):
    """`make_dataset` of a `TfdsSplit`: pass p shuffled in a buffer seeded by (seed, p), so a
    seeded stream is the same in every run and after a resume, as the in-memory one is."""
    import tensorflow as tf

    base = split.dataset()
    per_pass = -(-split.count // batch_size)
    if training and repeat and seed is not None:
        done = first_epoch * (steps_per_epoch or per_pass)

        def one_pass(data_pass):
            pass_seed = tf.constant(seed, tf.int64) * 1_000_003 + data_pass
            shuffled = base.shuffle(SHUFFLE_BUFFER, seed=pass_seed, reshuffle_each_iteration=False)
            return shuffled.batch(batch_size).enumerate(data_pass * per_pass)

        ds = tf.data.Dataset.counter(done // per_pass).flat_map(one_pass).skip(done % per_pass)
    else:
        ds = base.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True) if training else base
        ds = (ds.repeat() if repeat else ds).batch(batch_size).enumerate()
    return _scale_augment_prefetch(ds, 255.0, training, augment, seed)
