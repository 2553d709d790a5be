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
        ("target", "phone", "`target` must be one of auto, any, micro"),
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
    assert config.target == "auto" and config.variants is None and config.eval_images is None
    with pytest.raises(ValueError) as error:
        ExportConfig(model="m.keras", tflm_images=0)
    assert flag_names(str(error.value), {"tflm_images"}) == "ExportConfig: --tflm_images must be >= 1, got 0."


def test_targets_fill_only_the_settings_left_unset():
    from keras_caps import CapsNet
    from keras_caps.export import targets

    micro = CapsNet.from_architecture("micro", input_shape=(28, 28, 1), classes=10)
    paper = CapsNet.from_architecture("paper", input_shape=(28, 28, 1), classes=10)
    resolved = targets.resolve(ExportConfig(model="m.keras", int8_io="uint8"), micro)
    assert resolved.target == "micro" and resolved.variants == ("int8",) and resolved.int8_io == "uint8"
    assert resolved.scores_only is True and resolved.c_array is True
    assert resolved.int8_capsule_implementation == "einsum"
    resolved = targets.resolve(ExportConfig(model="m.keras"), paper)
    assert resolved.target == "any" and resolved.variants == ("float32", "float16", "dynamic_int8", "int8")
    assert resolved.int8_io == "float32" and resolved.scores_only is False and resolved.c_array is False
    assert targets.resolve(ExportConfig(model="m.keras", target="micro"), paper).variants == ("int8",)


def test_over_limits_names_each_figure_over_its_target():
    from keras_caps.export.targets import over_limits

    row = {"file": "capsnet_int8.tflite", "size_bytes": 857_000, "tflm_arena_bytes": 100_000}
    expected = "capsnet_int8.tflite: its flash takes 836.9 KiB, over the micro target's 512 KiB"
    assert over_limits("micro", row) == [expected]
    assert over_limits("any", row) == []


def test_architecture_of_names_the_built_network():
    from keras_caps import CapsNet
    from keras_caps.models.capsnet import architecture_of

    for name in ("paper", "paper_norm", "micro"):
        assert architecture_of(CapsNet.from_architecture(name, input_shape=(28, 28, 1), classes=10)) == name
    assert architecture_of(CapsNet(input_shape=(28, 28, 1), classes=10, conv_filters=16)) is None


def test_export_flags_are_the_config_fields():
    import dataclasses

    from absl import flags

    from tests.helpers import program_module

    values = flags.FlagValues()
    program_module("export").define_flags(values)
    for field in dataclasses.fields(ExportConfig):
        assert values[field.name].default == (
            list(field.default) if isinstance(field.default, tuple) else field.default
        )
        assert field.metadata["help"] in values[field.name].help, field.name
    with pytest.raises(ValueError, match="`model` .* is required"):
        ExportConfig()
