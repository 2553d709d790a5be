"""CapsNet's way around keras-team/keras#20585 under MultiWorkerMirroredStrategy.

Keras 3's TensorFlow trainer reduces a step's outputs and one data batch across
workers in ways that fail when there is more than one worker (scalars reduced
along an axis; a batch all-reduced just to learn its shapes). The model keeps
its outputs and its first batch in shapes that work; nothing changes off
multi-worker runs. Why a private override is still needed is in
`CapsNet._maybe_symbolic_build`.
"""

import keras


def local_values(structure):
    """`structure` with each `tf.distribute.DistributedValues` replaced by this
    process's first local value; anything else is returned as it is."""
    if keras.backend.backend() != "tensorflow":
        return structure
    import tensorflow as tf

    def local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return tf.distribute.get_strategy().experimental_local_results(value)[0]
        return value

    return keras.tree.map_structure(local, structure)


def _workers(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or getattr(resolver, "task_type", None) is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return sum(len(spec.get(job, ())) for job in ("chief", "worker"))


def step_outputs(results):
    """Step results (scalars) in a shape Keras can reduce across workers.

    Keras 3 averages a step's outputs over workers with
    `reduce("MEAN", value, axis=0)`, which fails on scalars
    (keras-team/keras#20585); a leading axis of one keeps the values and
    the mean comes out a scalar again. Unchanged off multi-worker runs.
    """
    if keras.backend.backend() != "tensorflow":
        return results
    import tensorflow as tf

    if _workers(tf.distribute.get_strategy()) < 2:
        return results
    return {name: tf.reshape(value, (1,)) if value.shape.rank == 0 else value for name, value in results.items()}
