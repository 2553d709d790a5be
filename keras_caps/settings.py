"""Config fields that carry their own help: one source for a setting's library
meaning and its command-line flag (`keras_caps.cli.define_config_flags`)."""

import dataclasses


def setting(default, help, choices=None, parse=None):
    """A dataclass field with its help text, its choices (a command line's enum) and,
    for a field a command line gives as text, the function that parses that text."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "parse": parse})


def check_choices(config):
    """A ValueError naming the first field of dataclass `config` whose value is not one
    of its `setting`'s choices (None passes where the field's default is None)."""
    for field in dataclasses.fields(config):
        choices, value = field.metadata.get("choices"), getattr(config, field.name)
        if choices and value not in choices and not (value is None and field.default is None):
            raise ValueError(
                f"{type(config).__name__}: `{field.name}` must be one of {', '.join(map(str, choices))}, got {value!r}."
            )
