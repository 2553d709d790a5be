"""`keras_caps.export.ExportConfig`: the exporter's settings, checked before any work (fast tier)."""

import pytest

from keras_caps.cli import flag_names
from keras_caps.export import ExportConfig


@pytest.mark.parametrize(
    "field, value, message",
    [
        (
            "variants",
            ("float32", "int4"),
            "`variants`: choose from float32, float16, dynamic_int8, int8; got float32, int4",
        ),
        ("variants", (), "`variants`: choose from .*; got none"),
        ("int8_io", "int16", "`int8_io` must be one of float32, int8, uint8"),
        ("int8_capsule_implementation", "matmul", "`int8_capsule_implementation` must be one of grouped_conv, einsum"),
        ("calibration_images", 0, "`calibration_images` must be >= 1, got 0"),
        ("eval_images", 0, "`eval_images` must be >= 1"),
        ("latency_runs", 2.5, "`latency_runs` must be an integer, got 2.5"),
        ("tflm_images", 0, "`tflm_images` must be >= 1"),
        ("tflm_arena_limit", 0, "`tflm_arena_limit` must be >= 1 byte"),
        ("mcu_mhz", 0.0, "`mcu_mhz` must be > 0"),
        ("mcu_macs_per_cycle", -1.0, "`mcu_macs_per_cycle` must be > 0"),
    ],
)
def test_bad_settings_name_their_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        ExportConfig(model="m.keras", **{field: value})


def test_defaults_are_valid_and_messages_become_flags():
    config = ExportConfig(model="m.keras")
    assert config.variants == ("float32", "float16", "dynamic_int8", "int8") and config.eval_images is None
    with pytest.raises(ValueError) as error:
        ExportConfig(model="m.keras", tflm_images=0)
    assert flag_names(str(error.value), {"tflm_images"}) == "ExportConfig: --tflm_images must be >= 1, got 0."
