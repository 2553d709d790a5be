"""Polyak averaging: an exponential moving average (EMA) of the weights, scored every epoch.

Keras's optimizers keep the average themselves (`use_ema=True, ema_momentum=m`:
after each step `avg = m * avg + (1 - m) * w`). It is an optimizer variable, so
it is saved in every checkpoint and a resumed run continues it, and `fit` writes
it into the model when training ends. What Keras lacks is the average's score
along the way, and a best model that is the averaged one; this module adds both.
"""

import contextlib

import keras


def _optimizer(model):
    # Under mixed_float16, compile wraps the optimizer in a LossScaleOptimizer.
    optimizer = getattr(model, "optimizer", None)
    return getattr(optimizer, "inner_optimizer", optimizer)


def uses_average(model):
    """True if `model`'s optimizer keeps a moving average of its weights."""
    optimizer = _optimizer(model)
    return bool(getattr(optimizer, "use_ema", False)) and bool(getattr(optimizer, "built", False))


def average_momentum(model):
    """The momentum of the moving average `model`'s optimizer keeps; 0 when it keeps none."""
    optimizer = _optimizer(model)
    if not getattr(optimizer, "use_ema", False):
        return 0.0
    return float(getattr(optimizer, "peak_ema_momentum", optimizer.ema_momentum))  # a warm-up's end


def write_average(model):
    """Puts the optimizer's moving average into `model`'s trainable weights (as `fit` does at its end).

    Keras's `finalize_variable_values` makes each weight share its average's
    buffer; on JAX the next `evaluate` donates that buffer and deletes the
    average with it. Each weight gets a copy of its own here.
    """
    variables = model.trainable_variables
    model.optimizer.finalize_variable_values(variables)  # Keras's public "write the average in"
    for variable in variables:
        variable.assign(keras.ops.convert_to_numpy(variable).copy())


@contextlib.contextmanager
def averaged_weights(model):
    """Within the block, `model`'s trainable weights are its optimizer's moving
    average; afterwards they are what they were. A no-op for a model whose
    optimizer keeps no average (or has not taken a step yet).

    Example:
    >>> with averaged_weights(model):
    ...     model.save("averaged.keras")
    """
    if not uses_average(model):
        yield model
        return
    variables = model.trainable_variables
    trained = [keras.ops.convert_to_numpy(v) for v in variables]
    write_average(model)
    try:
        yield model
    finally:
        for variable, value in zip(variables, trained):
            variable.assign(value)


class AveragedValidation(keras.callbacks.Callback):
    """At each epoch's end, scores the averaged weights on `validation_data`.

    The averaged model is the one a run keeps (`fit` ends with it in the model),
    so its scores take the `val_` names that later callbacks read (the best
    model, the logs); those of the weights as trained move to `raw_val_`.
    Put it before the callbacks that read `val_` metrics.

    Args:
        validation_data: what `fit` validates on: a dataset, a `PyDataset`, or
            an `(x, y)` or `(x, y, sample_weight)` tuple.
    """

    def __init__(self, validation_data):
        super().__init__()
        self.validation_data = validation_data

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or not uses_average(self.model):
            return
        for key in [k for k in logs if k.startswith("val_")]:
            logs["raw_" + key] = logs.pop(key)
        data = self.validation_data
        data = tuple(data) if isinstance(data, tuple | list) else (data,)  # (x, y[, sample_weight]) or a dataset
        with averaged_weights(self.model):
            scores = self.model.evaluate(*data, verbose=0, return_dict=True)
        logs.update({f"val_{name}": value for name, value in scores.items()})
