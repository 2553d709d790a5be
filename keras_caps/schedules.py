"""Learning-rate schedules of train.py, as Keras callbacks."""

import keras


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

    def on_epoch_begin(self, epoch, logs=None):
        self._target = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_batch_begin(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if step < self.steps:
            self.model.optimizer.learning_rate = self._target * (step + 1) / self.steps
        elif step == self.steps:
            self.model.optimizer.learning_rate = self._target

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and "learning_rate" in logs:
            logs["learning_rate"] = self._target  # the epoch's rate, not a warm-up fraction
