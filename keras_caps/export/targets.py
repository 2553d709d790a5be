"""Export targets: the settings a kind of device needs, and its limits.

`any` writes every TFLite variant for phones, servers and accelerators; `micro`
writes the one integer-only int8 file a microcontroller runs in TFLite Micro,
without the decoder, with int8 input and output and its C array, and checks it
against the flash and RAM of a typical board (512 KB flash, 256 KB for the
tensor arena, in KiB). A setting given explicitly wins over its target's.
"""

import dataclasses

from keras_caps.export.tflite import VARIANTS
from keras_caps.models.capsnet import architecture_of

TARGETS = {
    "any": {
        "settings": {
            "variants": tuple(VARIANTS),
            "int8_io": "float32",
            "int8_capsule_implementation": "grouped_conv",
            "scores_only": False,
            "c_array": False,
        },
        "limits": {},
    },
    "micro": {
        "settings": {
            "variants": ("int8",),
            "int8_io": "int8",
            "int8_capsule_implementation": "einsum",  # the smallest file and arena
            "scores_only": True,
            "c_array": True,
        },
        "limits": {"size_bytes": 512 * 1024, "tflm_arena_bytes": 256 * 1024},
    },
}
CHOICES = ("auto", *TARGETS)
LIMIT_NAMES = {"size_bytes": "flash", "tflm_arena_bytes": "tensor arena"}


def choose_target(model):
    """`(name, why)`: the target `auto` takes for `model`: micro for a model of the
    micro architecture, any otherwise."""
    if architecture_of(model) == "micro":
        return "micro", "a micro-architecture model"
    return "any", "not a micro-architecture model"


def resolve(config, model):
    """`config` (an ExportConfig) with its target named and each unset setting the target's."""
    name = choose_target(model)[0] if config.target == "auto" else config.target
    settings = TARGETS[name]["settings"]
    unset = {k: v for k, v in settings.items() if getattr(config, k) is None}
    return dataclasses.replace(config, target=name, **unset)


def over_limits(target, row):
    """One line for each of a report row's figures over `target`'s limits (none: [])."""
    lines = []
    for key, limit in TARGETS[target]["limits"].items():
        if row.get(key) is not None and row[key] > limit:
            lines.append(
                f"{row['file']}: its {LIMIT_NAMES[key]} takes {row[key] / 1024:.1f} KiB, over the {target} "
                f"target's {limit // 1024} KiB"
            )
    return lines
