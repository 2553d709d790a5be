"""The model a run trains or scores: new (its architecture and inversion chosen from the data),
fine-tuned or transferred from a saved model or preset, resumed from a checkpoint, or loaded to
be tested; each checked against the data before any training.

    model = build_or_resume(config, info, steps, done, checkpoint, train)
"""

import keras

from keras_caps.data.datasets import TfdsSplit, spread_images
from keras_caps.data.images import LIGHT_BACKGROUND, border_brightness
from keras_caps.models.capsnet import DECODER_INITS, CapsNet, architecture_of, choose_architecture
from keras_caps.models.files import ModelFileError, check_model_path, load_capsnet
from keras_caps.models.transfer import KEPT, NEW, with_new_head
from keras_caps.optimizers import EMAWarmupAdam
from keras_caps.training import schedules
from keras_caps.training.errors import TrainingError
from keras_caps.training.precision import policy_for_saved, with_policy


def load_model(path, what="weights", check_only=False):
    """The CapsNet in `path` (`check_only`: only that it names a file or preset), or TrainingError."""
    try:
        return check_model_path(path) if check_only else load_capsnet(path)
    except ModelFileError as error:
        raise TrainingError(f"`{what}` {error}") from None


def check_fits(model, info, what, transferable=False):
    """Raises TrainingError, before any training, if `model` does not take `info`'s
    images or has another number of classes (or other class names); `transferable`:
    the message says what `transfer` would do instead."""
    problems = []
    if tuple(model.image_shape) != tuple(info.image_shape):
        problems.append(f"takes {tuple(model.image_shape)} images, the data has {tuple(info.image_shape)}")
    if model.classes != info.classes:
        problems.append(f"has {model.classes} classes, the data {info.classes}")
    elif model.class_names and info.class_names and list(model.class_names) != list(info.class_names):
        problems.append(f"names its classes {_few(model.class_names)}, the data {_few(info.class_names)}")
    if problems:
        hint = f" `transfer` keeps {KEPT} and trains {NEW} for the data." if transferable else ""
        raise TrainingError(f"{what} does not fit {info.name}: it {'; it '.join(problems)}.{hint}")


def transfer(source, config, info, run_settings):
    """`source`'s stem under new class capsules and decoder for `info`'s classes and images."""
    what = f"`weights` {config.weights}"
    other = _other_architecture(config, source)
    if other:
        raise TrainingError(f"{what}: `transfer` keeps the model's stem; leave unset {other}.")
    try:
        # run_settings holds the data's class names: they name the new classes.
        model = with_new_head(
            source, classes=info.classes, input_shape=info.image_shape, **{**model_options(config), **run_settings}
        )
    except ValueError as error:
        raise TrainingError(f"{what}, transferred to {info.name}: {error}") from None
    print(
        f"Transfer from {config.weights}: {KEPT}, {NEW} for {info.classes} classes of "
        f"{'x'.join(map(str, info.image_shape))} images."
    )
    channels, wanted = source.image_shape[-1], info.image_shape[-1]
    if channels != wanted:
        print(
            f"Its first convolution, made for {channels}-channel images, adapted to {wanted} "
            f"({'each image read as the mean of its channels' if channels == 1 else 'its colour kernels summed'} "
            "to begin with)."
        )
    return model


def _other_architecture(config, source):
    """ "`architecture` NAME (the model's: ...)" where the run names another architecture than
    `source` has, else None."""
    own = architecture_of(source)
    if config.architecture in ("auto", own):
        return None
    return f"`architecture` {config.architecture} (the model's: {own or 'its own'})"


def _check_fine_tuning(config, source):
    """A fine-tuned model keeps its network: a setting that would change it is an error, not ignored."""
    given = [other] if (other := _other_architecture(config, source)) else []
    if config.capsule_bias and not source.digit_caps.use_bias:
        given.append("`capsule_bias` (the model has no capsule biases)")
    if config.decoder_init != "default":
        given.append(f"`decoder_init` {config.decoder_init} (its decoder is trained already)")
    if given:
        raise TrainingError(
            f"`weights` {config.weights}: a fine-tuned model keeps its network; leave unset {'; '.join(given)}."
        )


def _few(names):
    """The first four of `names`, for a message."""
    return ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")


def resolve_invert(config, train, info, sample=200):
    """`(invert, why)`: whether a run's model inverts its images (`CapsNet`'s `invert_input`).
    `"auto"`: for grey images of dark strokes on a light background (their edges' median
    brightness above `LIGHT_BACKGROUND` in `sample` images spread over the training set), which learnt worse
    than the same images inverted (BENCHMARKS.md, "Grey images on white"); not for colour
    images, nor a TFDS set read from its files (not worth a pass over them)."""
    if config.invert_input != "auto":
        return config.invert_input == "on", "as asked"
    if info.image_shape[-1] != 1:
        return False, "colour images"
    if isinstance(train, TfdsSplit):
        return False, "a TFDS set read from its files"
    brightness = border_brightness(spread_images(train, sample))
    return brightness > LIGHT_BACKGROUND, f"grey images, their edges' median brightness {brightness:.2f}"


def _check_kept_invert(config, model, what):
    """A model that keeps its own `invert_input` (resumed, tested): another asked is an error, not ignored."""
    if config.invert_input != "auto" and (config.invert_input == "on") != model.invert_input:
        raise TrainingError(
            f"{what} keeps its model's `invert_input` ({'on' if model.invert_input else 'off'}); "
            f"leave `invert_input` {config.invert_input} unset (auto)."
        )


def print_invert(config, invert, why):
    """The line a run or search prints when `invert_input` auto turned the inversion on."""
    if invert and config.invert_input == "auto":
        print(
            f"Inverting the images inside the model (`invert_input` auto: {why}, a light background): "
            "the network sees light strokes on dark; prediction and exported files take the images as they are."
        )


def model_options(config):
    """The CapsNet arguments a run's settings give beyond its architecture: the authors'
    levers (a run's model and every trial of a search take them)."""
    return {"capsule_bias": config.capsule_bias, "loss_form": config.loss_form, **DECODER_INITS[config.decoder_init]}


def resolve_architecture(config, info):
    """`(name, why)`: the named architecture of a run; `"auto"` chooses from the data's images
    (`keras_caps.models.capsnet.choose_architecture`)."""
    if config.architecture != "auto":
        return config.architecture, "as asked"
    return choose_architecture(info.image_shape, info.classes)


def _continue_in_policy(model, config, path):
    """A loaded model in the policy this run computes in: its own, unless `mixed_precision` asks
    for another or this machine would only emulate it (a bf16 run resumed on an AVX2-only CPU)."""
    policy = policy_for_saved(model.dtype_policy.name, config.mixed_precision)
    if policy != model.dtype_policy.name:
        why = "as asked" if config.mixed_precision != "auto" else "this machine would only emulate its policy"
        going_on = "scoring it" if config.testing else "continuing"
        print(f"{path} computes in {model.dtype_policy.name}; {going_on} in {policy} ({why}), same weights.")
    return with_policy(model, policy)


def schedule(config, steps):
    """The learning-rate schedule of a run of `steps` batches an epoch, or TrainingError."""
    try:
        return schedules.learning_rate_schedule(
            config.lr_schedule, config.lr, steps, config.epochs * steps, config.lr_decay, config.warmup_steps
        )
    except ValueError as error:
        raise TrainingError(str(error).replace("learning_rate_schedule: ", "")) from None


def build_or_resume(config, info, steps, done, checkpoint, train):
    """The model of the run: loaded for `testing`, resumed from `checkpoint`, or new (fine-tuned,
    transferred or fresh, inverting its images as `resolve_invert` says for `train`)."""
    if config.testing:
        model = _continue_in_policy(load_model(config.weights), config, config.weights)
        _check_kept_invert(config, model, f"`weights` {config.weights}: a tested model")
        if not model.compiled:  # a preset's model is saved without its optimizer
            model.compile()
        return model
    rate = schedule(config, steps)
    if done and checkpoint:
        if not config.resume:
            print(f"{config.save_dir} holds an interrupted run ({done} epochs done): resuming it.")
        model = _continue_in_policy(load_model(checkpoint, "save_dir"), config, checkpoint)
        _check_kept_invert(config, model, f"{config.save_dir}: a resumed run")
        # The checkpoint's optimizer carries the schedule it was saved with; the
        # config's replaces it (the same one for the same settings), so a resumed
        # run can change its rate or length, and checkpoints from before
        # schedules were saved get one.
        model.optimizer.learning_rate = rate
        return model
    if config.resume:
        print(f"resume: no checkpoint in {config.save_dir}; starting afresh.")
    invert, why = resolve_invert(config, train, info)
    print_invert(config, invert, why)
    run_settings = {
        "invert_input": invert,
        "routings": config.routings,
        "lam_recon": config.lam_recon,
        "loss_form": config.loss_form,
        "class_names": info.class_names or None,
    }
    if config.transfer:
        model = transfer(load_model(config.weights), config, info, run_settings)
    elif config.weights and not config.weights.endswith(".weights.h5"):
        # Fine-tuning a saved model or preset: its architecture, this run's loss and routing.
        source = load_model(config.weights)
        check_fits(source, info, f"`weights` {config.weights}", transferable=True)
        _check_fine_tuning(config, source)
        settings = {k: v for k, v in source.get_config().items() if k not in ("name", "dtype")}
        names = source.class_names or run_settings["class_names"]  # the data's, where the model has none
        model = CapsNet.from_config({**settings, **run_settings, "class_names": names})  # built by its constructor
        model.set_weights(source.get_weights())
        print(f"Fine-tuning {config.weights}: its architecture, this run's schedule.")
    else:
        architecture, why = resolve_architecture(config, info)
        if config.architecture == "auto":
            print(f"Architecture {architecture}, chosen by `architecture` auto: {why}.")
        model = CapsNet.from_architecture(
            architecture,
            input_shape=info.image_shape,
            classes=info.classes,
            **{**model_options(config), **run_settings},
        )
        if config.weights:
            model.load_weights(config.weights)
    momentum = config.ema_momentum
    ema = {"use_ema": True, "ema_momentum": momentum} if momentum else {}
    adam = EMAWarmupAdam if momentum and config.ema_warmup else keras.optimizers.Adam
    model.compile(optimizer=adam(rate, **ema))
    return model
