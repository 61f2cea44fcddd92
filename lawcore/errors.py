"""Errors raised on bad user input to the laws (exit code 2 at the CLI)."""


class LawInputError(ValueError):
    """Bad input to a law: names the column, row or argument and what was expected."""
