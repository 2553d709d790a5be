"""Learning-rate schedules of a training run, as Keras `LearningRateSchedule`s.

They are computed in the graph from the optimizer's step count and saved with
the optimizer, so a resumed run continues its curve with nothing extra.
"""

import keras

SCHEDULES = ("exponential", "cosine", "authors")
# The authors' code (Sarasra/models, research/capsules): Adam's rate x0.96 every 2,000 steps, in stairs.
AUTHORS_DECAY_STEPS, AUTHORS_DECAY = 2000, 0.96
# A warm-up takes at most a tenth of a short run (a one-epoch run, a search's trial): the rest decays.
SHORT_RUN_SHARE = 10


def capped_warmup(warmup_steps, total_steps):
    """`warmup_steps`, cut to a tenth of a run of `total_steps` optimizer steps."""
    return min(warmup_steps, total_steps // SHORT_RUN_SHARE)


@keras.saving.register_keras_serializable(package="keras_caps")
class LinearWarmUp(keras.optimizers.schedules.LearningRateSchedule):
    """`after(step) * (step + 1) / warmup_steps` for the first `warmup_steps` steps, then `after(step)`.

    Keras's `CosineDecay` has a warm-up of its own; this one puts one in front
    of any other schedule (here the reference's per-epoch `ExponentialDecay`).

    Args:
        after: the schedule to warm up into (a `LearningRateSchedule`).
        warmup_steps: optimizer steps of the linear ramp (>= 1).

    Example:
    >>> decay = keras.optimizers.schedules.ExponentialDecay(1e-3, 600, 0.9, staircase=True)
    >>> optimizer = keras.optimizers.Adam(LinearWarmUp(decay, warmup_steps=100))
    """

    def __init__(self, after, warmup_steps):
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise ValueError(f"LinearWarmUp: `warmup_steps` must be an integer >= 1, got {warmup_steps!r}.")
        if isinstance(after, dict):
            after = keras.optimizers.schedules.deserialize(after)
        self.after = after
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        ramp = keras.ops.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
        return self.after(step) * ramp

    def get_config(self):
        return {"after": keras.optimizers.schedules.serialize(self.after), "warmup_steps": self.warmup_steps}


def learning_rate_schedule(kind, learning_rate, steps_per_epoch, total_steps, decay=0.9, warmup_steps=0):
    """The learning rate of a run as a Keras schedule.

    Args:
        kind: `"exponential"`, the reference's `learning_rate * decay**epoch`
            (an `ExponentialDecay` with `staircase=True`, one stair per epoch),
            or `"cosine"`, a cosine per step from `learning_rate` to 0 at
            `total_steps` (`CosineDecay`).
        learning_rate: the peak rate (> 0).
        steps_per_epoch: optimizer steps per epoch (>= 1).
        total_steps: optimizer steps of the whole run (>= 1).
        decay: the per-epoch factor of `"exponential"`, in (0, 1].
        warmup_steps: a linear ramp over the first steps (0: none). With
            `"cosine"` it is `CosineDecay`'s own warm-up, from
            `learning_rate / warmup_steps` at step 0 to `learning_rate` at
            step `warmup_steps`, and must leave steps for the decay.

    Raises:
        ValueError: naming the argument that is out of range.
    """
    if kind not in SCHEDULES:
        raise ValueError(f"learning_rate_schedule: `kind` must be one of {', '.join(SCHEDULES)}, got {kind!r}.")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate_schedule: `learning_rate` must be > 0, got {learning_rate!r}.")
    if steps_per_epoch < 1 or total_steps < 1:
        raise ValueError(
            f"learning_rate_schedule: `steps_per_epoch` and `total_steps` must be >= 1, "
            f"got {steps_per_epoch!r} and {total_steps!r}."
        )
    if warmup_steps < 0:
        raise ValueError(f"learning_rate_schedule: `warmup_steps` must be >= 0, got {warmup_steps!r}.")
    schedules = keras.optimizers.schedules
    if kind == "cosine":
        if warmup_steps >= total_steps:
            raise ValueError(
                f"learning_rate_schedule: `warmup_steps` ({warmup_steps}) leaves no steps of the "
                f"{total_steps} in the run for the cosine decay."
            )
        if not warmup_steps:
            return schedules.CosineDecay(learning_rate, decay_steps=total_steps, alpha=0.0)
        return schedules.CosineDecay(
            learning_rate / warmup_steps,
            decay_steps=total_steps - warmup_steps,
            alpha=0.0,
            warmup_target=learning_rate,
            warmup_steps=warmup_steps,
        )
    if kind == "authors":
        schedule = schedules.ExponentialDecay(learning_rate, AUTHORS_DECAY_STEPS, AUTHORS_DECAY, staircase=True)
        return LinearWarmUp(schedule, warmup_steps) if warmup_steps else schedule
    if not 0 < decay <= 1:
        raise ValueError(f"learning_rate_schedule: `decay` must lie in (0, 1], got {decay!r}.")
    schedule = schedules.ExponentialDecay(learning_rate, steps_per_epoch, decay, staircase=True)
    return LinearWarmUp(schedule, warmup_steps) if warmup_steps else schedule


def rate_at(optimizer, step):
    """The rate `optimizer` uses at optimizer step `step` (a float)."""
    # Under mixed_float16 Keras wraps the optimizer in a LossScaleOptimizer,
    # whose own `_learning_rate` is a placeholder 0: the schedule is the inner one's.
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    rate = optimizer._learning_rate  # the schedule itself, not its value at the current step
    if callable(rate):
        rate = rate(step)
    return float(keras.ops.convert_to_numpy(rate))


class LogLearningRate(keras.callbacks.Callback):
    """Puts the rate of each epoch's last step into the epoch's logs (log.csv, history.json)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) - 1
            logs["learning_rate"] = rate_at(self.model.optimizer, max(step, 0))
