"""Run by test_distribute.py as one of two workers (TF_CONFIG): fits a plain Keras
model under MultiWorkerMirroredStrategy, the failure of keras-team/keras#20585
that CapsNet works around. Prints `ok` or the error's first line."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
data = tf.data.Dataset.from_tensor_slices((np.ones((8, 4), "float32"), np.ones((8, 2), "float32"))).batch(4)
try:
    model.fit(data, epochs=1, verbose=0)
    print("ok")
except Exception as error:  # the failure this documents, whatever its type
    print(f"error: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
