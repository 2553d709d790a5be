#!/usr/bin/env bash
# The whole suite: everything on the TensorFlow backend, then the backend-neutral
# core (layers, losses, model) again on the JAX backend. Extra arguments go to pytest:
# `bash tests/run.sh -m "not slow"` is the fast tier (no subprocess runs, exports or kills),
# `bash tests/run.sh -n 0` runs the tests one after another in one process.
# The tests are spread over the CPU's cores (pytest-xdist; at most 4 processes, each holds
# TensorFlow), a file's tests in one process so that its module fixtures are made once:
# most of a test is one core's Python (tracing, saving, starting programs).
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONWARNINGS="ignore::DeprecationWarning"
# Exported files must also run in tflite-runtime 2.14, which needs numpy<2: its own venv.
if [ ! -x .venv-tflite214/bin/python ]; then
  python -m venv .venv-tflite214 &&
    .venv-tflite214/bin/pip install -q --disable-pip-version-check "tflite-runtime==2.14.0" "numpy<2" ||
    { echo "warning: no tflite-runtime 2.14 venv (offline?); its test will be skipped" >&2; rm -rf .venv-tflite214; }
fi
parallel=(-n auto --maxprocesses 4 --dist loadfile)
KERAS_BACKEND=tensorflow python -m pytest -q -p no:cacheprovider "${parallel[@]}" tests "$@"
KERAS_BACKEND=jax python -m pytest -q -p no:cacheprovider "${parallel[@]}" tests/core "$@"
