"""Errors raised on bad user input (exit code 2 at the CLI)."""


class InputError(ValueError):
    """Bad user input: the message names the file, the field and what was expected."""
