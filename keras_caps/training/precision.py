"""Choosing a dtype policy for the machine at hand, and moving a saved model onto it."""

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


def runs_natively(policy):
    """True if this machine computes in `policy` at full speed: 16-bit policies without the
    hardware for them are emulated (bf16 on an AVX2-only CPU: ~9x slower than float32)."""
    if policy == "mixed_float16":
        return has_gpu()
    if policy == "mixed_bfloat16":
        return has_gpu() or cpu_has_bf16()
    return True


def policy_for_saved(saved, mode="auto"):
    """The policy a saved model continues in here: the one asked for, else (`auto`) its own,
    unless this machine would only emulate that; then `auto`'s pick."""
    if mode != "auto":
        return resolve_policy(mode)
    return saved if runs_natively(saved) else resolve_policy("auto")


def with_policy(model, policy):
    """`model` itself if it computes in `policy`, else a copy that does: the same weights and,
    where `model` is compiled, an optimizer with its settings and state (steps, moments, the
    weights' average). A mixed policy keeps its variables in float32, so nothing is rounded."""
    if model.dtype_policy.name == policy:
        return model
    copy = type(model).from_config({**model.get_config(), "dtype": policy})
    copy.set_weights(model.get_weights())
    if getattr(model, "optimizer", None) is None:  # never compiled, or loaded with compile=False
        return copy
    # mixed_float16's compile wraps the optimizer in a LossScaleOptimizer: its state is the inner one's.
    source = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    optimizer = type(source).from_config(source.get_config())
    copy.compile(optimizer=optimizer)
    copy.optimizer.build(copy.trainable_variables)
    if len(optimizer.variables) != len(source.variables):
        raise ValueError(
            f"The {policy} copy's optimizer has {len(optimizer.variables)} variables, "
            f"the model's {len(source.variables)}: its state cannot be carried over."
        )
    for new, old in zip(optimizer.variables, source.variables):
        new.assign(old)
    return copy
