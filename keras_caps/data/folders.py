"""Image folders with one sub-folder per class, the layout Keras's
`image_dataset_from_directory` reads:

    DIR/train/<class>/*.png   DIR/test/<class>/*.jpg   (DIR/val/<class>/ optional)
    DIR/<class>/*.png                                    (one tree, split here)

Class names are the sub-folder names in sorted order, as Keras orders them.
Every file is decoded once by TensorFlow's own decoder (`tf.io.decode_image`)
when the folder is opened: that finds its size and channels, and names a file
that cannot be decoded before any training starts. The training input then
decodes the files again as it goes (`FileSplit`), or holds them decoded in
memory where they fit (`keras_caps.data.datasets.load_data`).
"""

import dataclasses
import os
import re

import numpy as np

from keras_caps.data.idx import DataError

# What Keras's `image_dataset_from_directory` reads; other files are skipped and counted.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SPLIT_FOLDERS = ("train", "val", "test")
COLOR_MODES = ("grayscale", "rgb")
# One tree without a test/ folder holds this share out as its test set, unless told otherwise.
DEFAULT_TEST_SPLIT = 0.2


@dataclasses.dataclass
class FileSplit:
    """Image files and their class ids, decoded on the fly to `image_shape`.

    Attributes:
        paths: file paths, `(n,)` str.
        labels: class ids, `(n,)` int64.
        image_shape: `(height, width, channels)` every image is decoded to.
        resize: whether some image has another size (then all pass through a resize).
    """

    paths: np.ndarray
    labels: np.ndarray
    image_shape: tuple
    resize: bool = False

    def __len__(self):
        return len(self.paths)

    def subset(self, index):
        return dataclasses.replace(self, paths=self.paths[index], labels=self.labels[index])


def is_image_folder(data_dir):
    """True when `data_dir` holds sub-folders (classes, or train/test splits) rather than IDX files."""
    if not os.path.isdir(data_dir):
        return False
    return any(
        os.path.isdir(os.path.join(data_dir, name)) and not name.startswith(".") for name in os.listdir(data_dir)
    )


def _class_folders(folder):
    return sorted(
        name for name in os.listdir(folder) if os.path.isdir(os.path.join(folder, name)) and not name.startswith(".")
    )


def _scan(folder):
    """`(paths, labels, class_names, skipped)` of one tree of class sub-folders."""
    classes = _class_folders(folder)
    if not classes:
        raise DataError(f"{folder}: no class sub-folders; put each class's images in a folder of its own.")
    if len(classes) < 2:
        raise DataError(f"{folder}: only one class sub-folder ({classes[0]}); a classifier needs at least 2.")
    paths, labels, skipped = [], [], []
    for label, name in enumerate(classes):
        images, others = image_files(os.path.join(folder, name))
        if not images:
            raise DataError(
                f"{os.path.join(folder, name)}: class {name!r} has no images ({', '.join(IMAGE_EXTENSIONS)})."
            )
        paths += images
        labels += [label] * len(images)
        skipped += others
    return np.array(paths), np.array(labels, np.int64), classes, skipped


def image_files(folder):
    """`(images, others)`: the paths of the files under `folder` (its sub-folders too, in sorted
    order) whose extension is one of IMAGE_EXTENSIONS, and of the other files; hidden files
    (`.DS_Store`) are in neither."""
    images, others = [], []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs.sort()
        for file in sorted(files):
            if not file.startswith("."):
                (images if file.lower().endswith(IMAGE_EXTENSIONS) else others).append(os.path.join(root, file))
    return images, others


def probe_shapes(paths):
    """`(n, 3)` int array of each file's decoded (height, width, channels).

    Decodes every file with `tf.io.decode_image`, in parallel; a file it
    cannot decode raises DataError naming that file.
    """
    import tensorflow as tf

    def shape_of(path):
        return tf.shape(tf.io.decode_image(tf.io.read_file(path), expand_animations=False))

    ds = tf.data.Dataset.from_tensor_slices(paths).map(shape_of, num_parallel_calls=tf.data.AUTOTUNE)
    try:
        return np.concatenate([b.numpy() for b in ds.batch(4096)]).reshape(-1, 3)
    except tf.errors.OpError:
        pass
    for path in paths:  # find the file, one at a time
        try:
            shape_of(tf.constant(path))
        except tf.errors.OpError as error:
            raise DataError(f"{path}: not a readable image ({_op_message(error)}).") from None
    raise DataError(f"Could not decode the images under {os.path.commonpath(list(paths))}.")


@dataclasses.dataclass
class FolderSplits:
    """What `open_folder` found: the splits (`val` None when there is no val/ folder),
    class names, the shape images are decoded to, and notes to print."""

    train: FileSplit
    val: FileSplit | None
    test: FileSplit
    class_names: list
    image_shape: tuple
    notes: list


def stratified_split(labels, fraction, seed, what):
    """`(keep, held_out)` index arrays: `fraction` of each class held out, the same for the same seed."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            raise DataError(f"{what}: class {label} has {len(members)} image; it needs 2 to be split.")
        members = rng.permutation(members)
        n = min(len(members) - 1, max(1, int(round(len(members) * fraction))))
        held.append(members[:n])
        keep.append(members[n:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def open_folder(data_dir, image_size=None, color_mode=None, val_split=0.0, test_split=None, seed=0):
    """Opens an image folder for training and testing.

    Args:
        data_dir: a folder with `train/` and `test/` (and optionally `val/`)
            trees of class sub-folders, or one tree of class sub-folders.
        image_size: `(height, width)` every image is resized to; None keeps
            the images' own size, which must then be the same for all.
        color_mode: `"grayscale"` or `"rgb"`; None follows the files (RGB
            when any image has colour, the grey ones converted).
        val_split: share of the training images held out (stratified) for
            validation when there is no `val/` folder; 0: none.
        test_split: share of a single tree held out (stratified) as its test
            set; None: 0.2. Not allowed beside a `test/` folder.
        seed: the splits' seed. The same by default whatever a run's own seed,
            so that runs of several seeds, and the exporter, test on the same images.

    Returns:
        A `FolderSplits`.

    Raises:
        DataError: a layout, class or file that cannot be used; the message
            names the folder or file.
    """
    if color_mode is not None and color_mode not in COLOR_MODES:
        raise DataError(f"`color_mode` must be one of {', '.join(COLOR_MODES)}, got {color_mode!r}.")
    if image_size is not None:
        image_size = tuple(image_size)
        if len(image_size) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in image_size
        ):
            raise DataError(f"`image_size` must be (height, width), two positive integers; got {image_size!r}.")
    notes = []
    present = [name for name in SPLIT_FOLDERS if os.path.isdir(os.path.join(data_dir, name))]
    if "train" in present:
        found = {name: _scan(os.path.join(data_dir, name)) for name in present}
        classes = found["train"][2]
        for name in present[1:]:
            if found[name][2] != classes:
                only_train = sorted(set(classes) - set(found[name][2]))
                only_here = sorted(set(found[name][2]) - set(classes))
                raise DataError(
                    f"{data_dir}: train/ and {name}/ must hold the same class folders; "
                    f"only in train/: {only_train or 'none'}, only in {name}/: {only_here or 'none'}."
                )
        if "test" in present and test_split:
            raise DataError(f"{data_dir} has a test/ folder; `test_split` applies to a single tree only.")
        if "test" not in present:
            notes.append(
                f"no test/ folder in {data_dir}: holding out a stratified {test_split or DEFAULT_TEST_SPLIT:g}"
            )
    elif present:
        raise DataError(f"{data_dir} has {'/, '.join(present)}/ but no train/ folder beside it.")
    else:
        found = {"train": _scan(data_dir)}
        classes = found["train"][2]
        notes.append(
            f"one tree of class folders: holding out a stratified {test_split or DEFAULT_TEST_SPLIT:g} "
            "as the test set (`test_split`)"
        )
    skipped = [path for value in found.values() for path in value[3]]
    if skipped:
        notes.append(
            f"skipped {len(skipped)} files that are not images "
            f"({', '.join(skipped[:3])}{', ...' if len(skipped) > 3 else ''})"
        )
    paths = {name: value[0] for name, value in found.items()}
    labels = {name: value[1] for name, value in found.items()}
    all_paths = np.concatenate(list(paths.values()))
    shapes = probe_shapes(all_paths)
    channels = _channels(shapes, color_mode, data_dir, notes)
    sizes = {tuple(s) for s in shapes[:, :2].tolist()}
    if image_size is None:
        if len(sizes) > 1:
            first = all_paths[0]
            other = all_paths[np.flatnonzero((shapes[:, :2] != shapes[0, :2]).any(1))[0]]
            raise DataError(
                f"{data_dir}: images of {len(sizes)} sizes, e.g. {first} is {shapes[0, 0]}x{shapes[0, 1]} and "
                f"{other} is {'x'.join(map(str, shapes[all_paths == other][0][:2]))}: pass `image_size` "
                "(height, width) to resize them all."
            )
        image_size = sizes.pop()
    image_shape = (*image_size, channels)
    resize = sizes != {image_size}

    def split_of(name):
        return FileSplit(paths[name], labels[name], image_shape, resize)

    train = split_of("train")
    test = split_of("test") if "test" in found else None
    if test is None:
        keep, held = stratified_split(train.labels, test_split or DEFAULT_TEST_SPLIT, seed, data_dir)
        train, test = train.subset(keep), train.subset(held)
    val = split_of("val") if "val" in found else None
    if val is not None and val_split:
        raise DataError(f"{data_dir} has a val/ folder; `val_split` would hold out a second validation set.")
    if val is None and val_split:
        keep, held = stratified_split(train.labels, val_split, seed + 1, data_dir)
        train, val = train.subset(keep), train.subset(held)
    return FolderSplits(train, val, test, classes, image_shape, notes)


def _channels(shapes, color_mode, data_dir, notes):
    if color_mode is not None:
        return 1 if color_mode == "grayscale" else 3
    gray = np.isin(shapes[:, 2], (1, 2))  # grey, grey + alpha
    if gray.all():
        return 1
    if gray.any():
        notes.append(
            f"{int(gray.sum())} of {len(gray)} images in {data_dir} are greyscale among colour ones: "
            "converted to RGB (`color_mode` grayscale makes them all grey)"
        )
    return 3


def _with_channels(image, channels):
    """uint8 `(h, w, 1..4)` -> `channels` (1 or 3): grey from RGB by luminance, RGB from grey by copying, alpha dropped.

    `decode_image(channels=...)` cannot convert every format (BMP and GIF refuse 1).
    """
    import tensorflow as tf

    has_colour = tf.shape(image)[-1] >= 3
    if channels == 1:
        return tf.cond(has_colour, lambda: tf.image.rgb_to_grayscale(image[..., :3]), lambda: image[..., :1])
    return tf.cond(has_colour, lambda: image[..., :3], lambda: tf.tile(image[..., :1], [1, 1, 3]))


def decode_image(path, image_shape, resize):
    """One file as uint8 `image_shape`: TensorFlow's decoder, its channels converted, resized if `resize`."""
    import tensorflow as tf

    height, width, channels = image_shape
    image = _with_channels(tf.io.decode_image(tf.io.read_file(path), expand_animations=False), channels)
    if resize:
        image = tf.image.resize(image, (height, width), antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    return tf.ensure_shape(image, image_shape)


def _op_message(error):
    """TensorFlow's error text without its function-node prefix and op suffix."""
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", error.message).splitlines()[0]
    return re.sub(r"\s*\[Op:\w+\].*$", "", text).strip()


def decode_all(split, batch_size=256):
    """`(images, labels)`: every file of a `FileSplit` decoded, uint8 `(n, H, W, C)`."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(split.paths)
    ds = ds.map(lambda p: decode_image(p, split.image_shape, split.resize), num_parallel_calls=tf.data.AUTOTUNE)
    images = np.empty((len(split),) + tuple(split.image_shape), np.uint8)
    start = 0
    for batch in ds.batch(batch_size).prefetch(2):
        images[start : start + len(batch)] = batch.numpy()
        start += len(batch)
    return images, split.labels
