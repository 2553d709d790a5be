"""What the tests share: the seed's formulas in numpy (golden values), gradients on
any backend, small models and data, and the command-line runners."""

import contextlib
import functools
import io
import os
import subprocess
import sys

import keras
import numpy as np


# ---------------------------------------------------------------- seed formulas
def np_squash(s, axis=-1):
    """The reference: scale = norm**2 / (1 + norm**2) / (norm + 1e-8)."""
    norm = np.linalg.norm(s, axis=axis, keepdims=True)
    return norm**2 / (1 + norm**2) / (norm + 1e-8) * s


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_predictions(W, u):
    """x_hat = squeeze(matmul(W, u[:, None, :, :, None])): (batch, out, in, out_dim)."""
    return np.squeeze(np.matmul(W[None], u[:, None, :, :, None]), -1)


def np_routing(W, u, routings, frozen_coupling=None, bias=None, leaky=False):
    """The reference's DenseCapsule.forward. With `frozen_coupling`, the last
    iteration uses those couplings (used to differentiate through it alone).
    `bias` (out, out_dim) and `leaky` as in the authors' `_update_routing`: the
    bias added to each weighted sum, and a softmax over the outputs and one
    more of logit 0, whose coupling is dropped."""
    x_hat = np_predictions(W, u)
    b = np.zeros(x_hat.shape[:3])
    for i in range(routings):
        if leaky:
            c = np_softmax(np.concatenate([np.zeros_like(b[:, :1]), b], axis=1), axis=1)[:, 1:]
        else:
            c = np_softmax(b, axis=1)
        if i == routings - 1 and frozen_coupling is not None:
            c = frozen_coupling
        s = np.sum(c[:, :, :, None] * x_hat, axis=-2, keepdims=True)
        outputs = np_squash(s if bias is None else s + bias[None, :, None, :])
        b = b + np.sum(outputs * x_hat, axis=-1)
    return np.squeeze(outputs, -2), c


def np_caps_loss(y_true, y_pred, x, x_recon, lam_recon):
    L = y_true * np.clip(0.9 - y_pred, 0, None) ** 2 + 0.5 * (1 - y_true) * np.clip(y_pred - 0.1, 0, None) ** 2
    return L.sum(axis=1).mean() + lam_recon * np.mean((x_recon - x) ** 2)


# ---------------------------------------------------------------- gradients
def grad(fn, x):
    """d fn(x) / dx for a scalar-valued `fn`, on whichever backend is active."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return keras.ops.convert_to_numpy(tape.gradient(y, x))
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(fn)(keras.ops.convert_to_tensor(x)))
    raise NotImplementedError(backend)


def grad_wrt_weights(layer, fn, *inputs):
    """Gradients of `fn(layer(*inputs))` w.r.t. each trainable weight, via stateless_call."""
    weights = [keras.ops.convert_to_tensor(v.value) for v in layer.trainable_variables]
    others = [v.value for v in layer.non_trainable_variables]

    def loss(ws):
        out, _ = layer.stateless_call(ws, others, *inputs)
        return fn(out)

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        weights = [tf.Variable(w) for w in weights]
        with tf.GradientTape() as tape:
            y = loss([w for w in weights])
        return [g.numpy() for g in tape.gradient(y, weights)]
    if backend == "jax":
        import jax

        return [np.asarray(g) for g in jax.grad(loss)(weights)]
    raise NotImplementedError(backend)


# ---------------------------------------------------------------- data and programs
# The versions of one image `(height, width, channels)` each flip may give: the axes reversed.
FLIP_VARIANTS = {
    "none": [()],
    "horizontal": [(), (1,)],
    "vertical": [(), (0,)],
    "horizontal_and_vertical": [(), (0,), (1,), (0, 1)],
}


def check_flips(images, out, flip, share_within=0.1):
    """Asserts each image of `out` is exactly one version of its image in `images` that `flip`
    allows (`FLIP_VARIANTS`; the images must have no symmetry), and that each version is a
    fair share of them (a flip of each axis with probability 1/2, the axes independent)."""
    counts = {axes: 0 for axes in FLIP_VARIANTS[flip]}
    for image, got in zip(images, out):
        matches = [axes for axes in counts if np.array_equal(np.flip(image, axes) if axes else image, got)]
        assert len(matches) == 1, f"not one version of its image under flip {flip!r}: {matches}"
        counts[matches[0]] += 1
    for count in counts.values():
        assert abs(count / len(images) - 1 / len(counts)) < share_within, (flip, counts)


# Images of one soft spot away from the centre: where it goes tells how far an image was turned.
SPOT_AT = (4.0, 17.0)  # row, column of the spot in a 21x21 image (centre (10, 10)): 9.2 pixels out


def spot_images(n, dtype="float32"):
    """`n` images 21x21x1 of a Gaussian spot (deviation 1 pixel) at `SPOT_AT`; uint8 dtypes
    scaled to 255."""
    rows, cols = np.meshgrid(np.arange(21.0), np.arange(21.0), indexing="ij")
    spot = np.exp(-((rows - SPOT_AT[0]) ** 2 + (cols - SPOT_AT[1]) ** 2) / 2)
    if np.dtype(dtype).kind in "ui":
        spot = np.round(spot * 255)
    return np.repeat(spot[None, :, :, None], n, 0).astype(dtype)


def turned_by(out):
    """The angle in degrees each `spot_images` image of `out` was turned by (as `numpy.rot90`
    turns, positive), from the centroid of its spot about the image's centre."""
    mass = np.asarray(out, np.float64)[..., 0]
    rows, cols = np.meshgrid(np.arange(21.0) - 10, np.arange(21.0) - 10, indexing="ij")
    where = (mass * rows).sum((1, 2)) / mass.sum((1, 2)), (mass * cols).sum((1, 2)) / mass.sum((1, 2))
    turn = np.degrees(np.arctan2(SPOT_AT[0] - 10, SPOT_AT[1] - 10) - np.arctan2(*where))
    return (turn + 180) % 360 - 180


def check_turns(out, degrees, within=0.5):
    """Asserts every image of `out` (`spot_images`, turned) was turned by at most `degrees`
    either way, and that the turns spread over that range, both ways."""
    turns = turned_by(out)
    assert np.abs(turns).max() <= degrees + within, turns
    assert turns.min() < -0.7 * degrees and turns.max() > 0.7 * degrees, turns


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_mnist(folder, n_train=30, n_test=10, size=28, gz=True, sep="-", seed=0):
    """Four MNIST-format IDX files of random pixels and labels; returns the arrays."""
    from keras_caps.data.idx import write_idx

    rng = np.random.default_rng(seed)
    ext = ".gz" if gz else ""
    os.makedirs(folder, exist_ok=True)
    arrays = {
        "train-images": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "train-labels": rng.integers(0, 10, n_train).astype(np.uint8),
        "t10k-images": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "t10k-labels": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    for stem, array in arrays.items():
        kind = "idx3" if array.ndim == 3 else "idx1"
        write_idx(os.path.join(folder, f"{stem}{sep}{kind}-ubyte{ext}"), array)
    return arrays


def photo_like(digit, rng):
    """A 28x28 uint8 MNIST digit -> an RGB PIL image that looks like a phone photo of ink on
    paper: enlarged 3-8x, off-centre on grey-tinted paper, sensor noise, a colour cast, blur."""
    from PIL import Image, ImageFilter

    scale = rng.uniform(3, 8)
    size = int(28 * scale)
    ink = Image.fromarray(255 - digit).resize((size, size), Image.BICUBIC)  # dark ink on white
    width, height = int(size * rng.uniform(1.1, 1.8)), int(size * rng.uniform(1.1, 1.8))
    paper = Image.new("L", (width, height), 255)
    paper.paste(ink, (int(rng.integers(0, width - size + 1)), int(rng.integers(0, height - size + 1))))
    gray = np.asarray(paper, np.float32)
    gray = gray * rng.uniform(0.7, 0.95) + rng.normal(0, 6, gray.shape)  # grey paper, sensor noise
    tint = rng.uniform(0.85, 1.0, 3)
    rgb = np.clip(gray[..., None] * tint, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))


def run_program(program, *args, timeout=300, quiet=True):
    """One of the command lines, run as a user runs it from the repository root:
    `program` is "train.py", "predict.py" or "export" (`python -m export`). With
    `quiet`, TF_CPP_MIN_LOG_LEVEL=3 as the programs set it themselves; without,
    the variable is left unset, as on a new user's machine."""
    command = [sys.executable, "-m", "export"] if program == "export" else [sys.executable, os.path.join(ROOT, program)]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(KERAS_BACKEND="tensorflow", **({"TF_CPP_MIN_LOG_LEVEL": "3"} if quiet else {}))
    return subprocess.run(
        command + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


# Each program's file, which program_module loads as a module (for run_cli and flag tests).
PROGRAM_FILES = {"train.py": "train.py", "predict.py": "predict.py", "export": os.path.join("export", "__main__.py")}


@functools.cache
def program_module(program):
    """The program's file as a module: its functions, and no flags defined (each program
    defines them in its __main__ block)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        f"cli_{program.split('.')[0]}", os.path.join(ROOT, PROGRAM_FILES[program])
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(program, *args):
    """`run_program` in this process: the same flags and the same `main`, without a
    new Python that imports TensorFlow again (12 s a call on the 2-core AVX2 CPU).

    The program's flags go on a fresh `flags.FlagValues` (its `define_flags`), its
    absl `main` is its `cli_main` on them, and a flag that does not parse ends as
    `app.run` ends it (status 1, a `FATAL Flags parsing error` line). Returns a
    `subprocess.CompletedProcess` with the captured stdout and stderr; an exception
    the program lets through is raised here, as a traceback would end the process.
    The process's own start (TensorFlow's start-up lines, `app.run`) is
    `run_program`'s to test.
    """
    from absl import app, flags

    module = program_module(program)
    values = flags.FlagValues()
    module.define_flags(values)
    argv = [program, *(str(a) for a in args)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            module.cli_main(values)(values(argv))
            code = 0
        except (flags.Error, app.UsageError) as error:
            print(f"FATAL Flags parsing error: {error}", file=sys.stderr)
            code = 1
        except SystemExit as end:  # sys.exit(None | status | message): as Python ends on each
            code = 0 if end.code is None else end.code
            if not isinstance(code, int):
                print(code, file=sys.stderr)
                code = 1
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def train(*args, timeout=300):
    return run_program("train.py", *args, timeout=timeout)


def train_here(*args):
    """`train` in this process (`run_cli`)."""
    return run_cli("train.py", *args)


def common(mnist_dir, save_dir, batch_size=10):
    """train.py's flags of a short, seeded float32 run on `mnist_dir` (IDX files or an image folder)."""
    return [
        "--data_dir",
        mnist_dir,
        "--save_dir",
        save_dir,
        "--batch_size",
        str(batch_size),
        "--steps_per_epoch",
        "2",
        "--seed",
        "1",
        "--verbose",
        "0",
        "--mixed_precision",
        "float32",
    ]


# ---------------------------------------------------------------- small models
SMALL = dict(
    conv_filters=16,
    conv_kernel_size=3,
    primary_channels=4,
    primary_dim=4,
    primary_kernel_size=3,
    digit_dim=8,
    decoder_units=(32, 64),
)


def toy_data(n=96, classes=3, size=12, seed=0):
    """Class k: a bright square in the k-th corner, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.uniform(0, 0.2, (n, size, size, 1)).astype("float32")
    corners = [(1, 1), (1, size - 6), (size - 6, 1), (size - 6, size - 6)]
    for i, label in enumerate(y):
        r, c = corners[label]
        x[i, r : r + 5, c : c + 5] = 1.0
    return x, y


def small_model(classes=3, routings=3, **kw):
    """A CapsNet for 12x12 images, small enough to train in a test."""
    from keras_caps import CapsNet

    return CapsNet(**{"input_shape": (12, 12, 1), "classes": classes, "routings": routings, **SMALL, **kw})


# ---------------------------------------------------------------- layer tests
def run_layer_test(
    layer_cls,
    init_kwargs,
    input_shape,
    expected_output_shape,
    tmp_path,
    output_dtype="float32",
    mixed_output_dtype=None,
):
    """The checks every keras_caps layer passes (in the keras-hub manner):

    built by a call, its `compute_output_shape`; a symbolic call on a
    `keras.Input`; `get_config`/`from_config` round trip with equal outputs;
    a `.keras` round trip inside a model with equal outputs; and a call under
    each mixed-precision policy, whose output dtype is `mixed_output_dtype`
    (None: the policy's compute dtype).
    Returns the layer built in the first step.
    """
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2,) + tuple(input_shape)).astype("float32")
    layer = layer_cls(**init_kwargs)
    out = keras.ops.convert_to_numpy(layer(x))
    assert out.shape == (2,) + tuple(expected_output_shape), out.shape
    assert tuple(layer.compute_output_shape((2,) + tuple(input_shape))) == out.shape
    assert keras.backend.standardize_dtype(out.dtype) == output_dtype

    symbolic = layer(keras.Input(tuple(input_shape)))
    assert tuple(symbolic.shape) == (None,) + tuple(expected_output_shape)

    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x)), out, rtol=1e-6, atol=1e-6)

    inputs = keras.Input(tuple(input_shape))
    model = keras.Model(inputs, layer_cls(**init_kwargs)(inputs))
    expected = keras.ops.convert_to_numpy(model(x))
    path = os.path.join(str(tmp_path), f"{layer_cls.__name__}.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored(x)), expected, rtol=1e-6, atol=1e-6)

    for policy in ("mixed_float16", "mixed_bfloat16"):
        mixed = layer_cls(**{**init_kwargs, "dtype": policy})
        result = mixed(x)
        wanted = mixed_output_dtype or mixed.compute_dtype
        assert keras.backend.standardize_dtype(result.dtype) == wanted, (policy, result.dtype)
        assert np.isfinite(keras.ops.convert_to_numpy(result)).all()
    return layer


def write_image_folder(folder, classes=("cat", "dog"), per_class=4, size=(8, 10), mode="RGB", ext="png", seed=0):
    """`folder/<class>/NN.<ext>` images of random pixels (PIL `mode`); returns
    `{path: uint8 array as written}` (lossy formats: as read back by Pillow)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    written = {}
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    for name in classes:
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (*size, channels), dtype=np.uint8)
            path = os.path.join(folder, name, f"{i:02d}.{ext}")
            Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode).save(path)
            with Image.open(path) as image:
                written[path] = np.asarray(image)
    return written


def write_scans(root, train=6, test=2):
    """`root/{train,test}/{bar,pole}/N.png`: grey 24x24 images of a dark bar on white, lying
    (bar) or standing (pole) at a random place, `train` and `test` of each: scans' colours."""
    from PIL import Image

    for split, count, seed in (("train", train, 0), ("test", test, 1)):
        rng = np.random.default_rng(seed)
        for name, vertical in (("bar", False), ("pole", True)):
            os.makedirs(os.path.join(root, split, name))
            for i in range(count):
                image = np.full((24, 24), 255, np.uint8)
                at = rng.integers(6, 18)
                if vertical:
                    image[4:20, at : at + 3] = rng.integers(0, 60)
                else:
                    image[at : at + 3, 4:20] = rng.integers(0, 60)
                Image.fromarray(image).save(os.path.join(root, split, name, f"{i}.png"))
