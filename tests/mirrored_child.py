"""Run as a script by test_distribute.py: trains a small CapsNet for a few
steps on one device and on two logical CPU devices (MirroredStrategy) and
prints both loss curves as JSON. Logical devices must be set up before
TensorFlow starts, hence a process of its own."""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_caps import CapsNet  # noqa: E402
from keras_caps.data.datasets import make_dataset  # noqa: E402
from keras_caps.training.distribution import make_strategy  # noqa: E402


def curve(devices):
    keras.utils.set_random_seed(0)
    strategy = make_strategy("mirrored", devices=devices)
    with strategy.scope():
        model = CapsNet(conv_filters=16, primary_channels=4, decoder_units=(32, 64))
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, 64)
    losses = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: losses.append(float(logs["loss"])))
    model.fit(
        make_dataset(x, y, 16, training=True, shift_pixels=2, seed=0),
        epochs=2,
        verbose=0,
        callbacks=[record],
        shuffle=False,
    )
    return {
        "replicas": strategy.num_replicas_in_sync,
        "losses": losses,
        "weights": float(sum(np.abs(w).sum() for w in model.get_weights())),
    }


print(json.dumps({"one": curve(["/cpu:0"]), "two": curve(["/cpu:0", "/cpu:1"])}))
