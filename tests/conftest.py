import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import pytest


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts with float32, a fixed seed and a clear session."""
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session(free_memory=False)  # with gc, 0.5 s a test: most of the fast tier


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    """A folder with four tiny MNIST-format IDX files (60 training, 20 test images)."""
    from tests.helpers import write_mnist

    folder = str(tmp_path_factory.mktemp("mnist"))
    write_mnist(folder, n_train=60, n_test=20)
    return folder
