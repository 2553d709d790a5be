"""Choosing a dtype policy for the machine at hand."""

from keras_caps.machine import cpu_has_bf16, has_gpu

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def resolve_policy(mode="auto"):
    """`auto` -> mixed_float16 on GPU, mixed_bfloat16 on bf16 CPUs, else float32."""
    if mode == "auto":
        if has_gpu():
            return "mixed_float16"
        return "mixed_bfloat16" if cpu_has_bf16() else "float32"
    if mode not in POLICIES:
        raise ValueError(f"Unknown precision {mode!r}: use auto or one of {', '.join(POLICIES)}.")
    return mode
