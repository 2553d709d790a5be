"""A training run and its infrastructure: configuration, checkpoints, schedules,
distribution, precision policy, hyperparameter search and figures.

    from keras_caps.training import TrainConfig, run
    metrics = run(TrainConfig(data_dir="../shared/data/mnist", epochs=1, seed=0))
"""

from keras_caps.training.config import TrainConfig
from keras_caps.training.errors import TrainingError
from keras_caps.training.trainer import run, tune

__all__ = ["TrainConfig", "TrainingError", "run", "tune"]
