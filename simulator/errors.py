"""Errors raised on bad user input (exit code 2 at the CLI)."""


class InputError(ValueError):
    """Bad user input: the message names the file, the field and what was expected."""


class Infeasible(InputError):
    """A well-formed request with no answer on this hardware (the model does not fit):
    exit code 3 at the CLI, `"feasible": false` with this message as the reason.
    A subclass of InputError so library callers that reject such requests keep working."""
