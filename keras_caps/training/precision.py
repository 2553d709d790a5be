"""Choosing a dtype policy for the machine at hand."""

import keras

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def has_gpu():
    """True if the active Keras backend sees a GPU."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def cpu_has_bf16():
    """True if this CPU multiplies bfloat16 natively (AVX512_BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_policy(mode="auto"):
    """`auto` -> mixed_float16 on GPU, mixed_bfloat16 on bf16 CPUs, else float32."""
    if mode == "auto":
        if has_gpu():
            return "mixed_float16"
        return "mixed_bfloat16" if cpu_has_bf16() else "float32"
    if mode not in POLICIES:
        raise ValueError(f"Unknown precision {mode!r}: use auto or one of {', '.join(POLICIES)}.")
    return mode
