"""Config fields that carry their own help: one source for a setting's library
meaning and its command-line flag (`keras_caps.cli.define_config_flags`)."""

import dataclasses


def setting(default, help, choices=None, parse=None):
    """A dataclass field with its help text, its choices (a command line's enum) and,
    for a field a command line gives as text, the function that parses that text."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "parse": parse})
