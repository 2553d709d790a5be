"""tf.distribute strategies for training on more than one device or machine.

    strategy = make_strategy("mirrored")       # all local GPUs
    with strategy.scope():
        model = CapsNet(); model.compile(optimizer="adam")
    model.fit(dataset)                          # global batch, split across replicas

Batch sizes are global: a batch of 100 on 4 replicas gives each 25 images,
and one optimizer step sees all 100, so the learning rate needs no scaling.
"""

import contextlib
import json
import os

import keras

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


class StrategyError(ValueError):
    """A strategy that cannot be made here; the message says why."""


def _cluster_spec():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise StrategyError(
            "Strategy multi_worker needs TF_CONFIG, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}.'
        )
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        task = config["task"]
        task_type, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise StrategyError(f"TF_CONFIG is not a valid cluster description ({error!r}): {raw}") from None
    cluster = config["cluster"]
    if task_type not in cluster or not 0 <= index < len(cluster[task_type]):
        raise StrategyError(f"TF_CONFIG: task {task_type}:{index} is not in the cluster {cluster}.")
    if not workers:
        raise StrategyError("TF_CONFIG: the cluster lists no workers.")
    return config


def make_strategy(name="default", devices=None):
    """The `tf.distribute.Strategy` called `name` (one of `STRATEGIES`).

    Args:
        name: `default` (one device), `mirrored` (all local GPUs, or `devices`),
            `multi_worker` (MultiWorkerMirroredStrategy; the cluster comes from
            the `TF_CONFIG` environment variable) or `tpu`.
        devices: for `mirrored`, the devices to use (default: all GPUs, else
            the CPU).

    Create it before any other TensorFlow work: multi-worker collectives are
    configured when the strategy is made.
    """
    if keras.backend.backend() != "tensorflow":
        if name != "default":
            raise StrategyError(
                f"Strategy {name!r} is tf.distribute's: it needs the TensorFlow backend "
                f"(Keras runs on {keras.backend.backend()!r})."
            )
        return SingleDevice()
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        _cluster_spec()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            raise StrategyError(f"Strategy 'tpu': no TPU found here ({str(error).splitlines()[0]}).") from None
        return tf.distribute.TPUStrategy(resolver)
    raise StrategyError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")


class SingleDevice:
    """The default strategy's interface on backends without tf.distribute."""

    num_replicas_in_sync = 1
    cluster_resolver = None

    def scope(self):
        return contextlib.nullcontext()


def is_chief(strategy):
    """True for the one process that writes checkpoints and logs.

    That is the `chief` task if the cluster has one, else worker 0; every
    single-process strategy is its own chief.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if task_type is None:
        return True
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_dir(save_dir, strategy):
    """Where this process writes: `save_dir` on the chief; a scratch folder
    inside it on other workers, which must still save (saving can involve
    collective reads) but whose files nobody keeps."""
    if is_chief(strategy):
        return save_dir
    resolver = strategy.cluster_resolver
    return os.path.join(save_dir, f".{resolver.task_type}-{resolver.task_id}")
