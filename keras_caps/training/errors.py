"""The error of a training run or search that cannot start or go on."""


class TrainingError(RuntimeError):
    """A run that cannot go on; the message says why."""
