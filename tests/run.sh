#!/usr/bin/env bash
# The whole suite: everything on the TensorFlow backend, then the backend-neutral
# core (layers, losses, model) again on the JAX backend.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONWARNINGS="ignore::DeprecationWarning"
KERAS_BACKEND=tensorflow python -m pytest -q -p no:cacheprovider tests "$@"
KERAS_BACKEND=jax python -m pytest -q -p no:cacheprovider tests/core "$@"
