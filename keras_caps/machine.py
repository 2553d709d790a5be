"""Facts about the machine at hand: CPU model and vector units, GPU, peak memory."""

import os
import platform
import sys

import keras


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


def _cpuinfo():
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def cpu_has_bf16():
    """True if this CPU multiplies bfloat16 natively (AVX512_BF16 or AMX)."""
    flags = _cpuinfo()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def describe_machine():
    """What a run's figures depend on: the CPU's model, cores and vector units, and a GPU."""
    info = _cpuinfo()

    def field(name):  # the first core's `name : value` line
        return next(
            (v.strip() for k, _, v in (line.partition(":") for line in info.splitlines()) if k.strip() == name), None
        )

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    family, model = field("cpu family"), field("model")
    return {
        "cpu": field("model name") or platform.processor() or platform.machine(),
        # One name, two speeds: "AMD EPYC"s with AVX-512 here trained a bf16 epoch in 196 s and in 466 s.
        "cpu_family_model": f"{family}/{model}" if family and model else None,
        "cores": cores,
        "avx512": "avx512f" in info,
        "bf16": cpu_has_bf16(),
        "gpu": has_gpu(),
    }


def machine_label(machine=None):
    """A machine in words, as a run's history gives each epoch's and BENCHMARKS names a run's:
    "AMD EPYC (family/model 25/17, 2 cores, AVX-512, bf16)". `machine`: `describe_machine()`'s
    dict (by default this machine's; a key missing from an old record is left out)."""
    m = describe_machine() if machine is None else machine
    units = "".join(part for part, on in ((", AVX-512", m.get("avx512")), (", bf16", m.get("bf16"))) if on)
    # Recorded as absent (not merely unknown): an AVX2-only CPU, whose float32 steps are several times slower.
    units += ", no AVX-512" if m.get("avx512") is False else ""
    units += ", GPU" if m.get("gpu") else ""
    kind = f"family/model {m['cpu_family_model']}, " if m.get("cpu_family_model") else ""
    return f"{m.get('cpu', '?')} ({kind}{m.get('cores', '?')} cores{units})"


def peak_rss_mib():
    """This process's peak resident memory in MiB (None where the OS does not say)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)
