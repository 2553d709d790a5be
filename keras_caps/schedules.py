"""Learning-rate schedules of train.py, as Keras callbacks."""

import math

import keras


def optimizer_step(model):
    """Optimizer steps taken so far (restored with the optimizer on resume)."""
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


class EpochDecay(keras.callbacks.LearningRateScheduler):
    """`lr * decay ** epoch` at the start of every epoch (the reference's ExponentialLR)."""

    def __init__(self, lr, decay, verbose=0):
        self.lr, self.decay = float(lr), float(decay)
        super().__init__(self._rate, verbose=verbose)

    def _rate(self, epoch):
        return self.lr * self.decay ** epoch


class LinearWarmUp(keras.callbacks.Callback):
    """Scales the learning rate by (step + 1) / `steps` over the first `steps`
    optimizer steps of a run, from whatever rate the epoch schedule set.

    Counted in optimizer iterations, so a resumed run (whose optimizer state
    holds its step count) does not warm up again. Put it after the epoch
    schedule in the callback list.
    """

    def __init__(self, steps):
        super().__init__()
        if steps < 0:
            raise ValueError(f"LinearWarmUp: steps must be >= 0, got {steps}.")
        self.steps = int(steps)
        self._target = None
        self._warm = self.steps == 0

    def on_epoch_begin(self, epoch, logs=None):
        self._target = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_batch_begin(self, batch, logs=None):
        if self._warm:
            return  # past the warm-up: no per-step reads of the optimizer
        step = optimizer_step(self.model)
        if step < self.steps:
            self.model.optimizer.learning_rate = self._target * (step + 1) / self.steps
        else:
            self.model.optimizer.learning_rate = self._target
            self._warm = True

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and "learning_rate" in logs:
            logs["learning_rate"] = self._target  # the epoch's rate, not a warm-up fraction


class WarmUpCosine(keras.callbacks.Callback):
    """Per step: linear warm-up to `peak` over `warmup_steps`, then cosine decay
    to 0 at `total_steps` (the run's last step). Counted in optimizer
    iterations, so a resumed run continues the curve where it stopped."""

    def __init__(self, peak, total_steps, warmup_steps=0):
        super().__init__()
        if total_steps < 1 or not 0 <= warmup_steps < total_steps:
            raise ValueError(f"WarmUpCosine: need 0 <= warmup_steps < total_steps, got {warmup_steps}, {total_steps}.")
        self.peak, self.total_steps, self.warmup_steps = float(peak), int(total_steps), int(warmup_steps)

    def rate(self, step):
        if step < self.warmup_steps:
            return self.peak * (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return 0.5 * self.peak * (1.0 + math.cos(math.pi * progress))

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = self.rate(optimizer_step(self.model))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
