"""The laws' errors: bad user input (exit code 2 at the CLI) and a fit that did not converge."""


class LawInputError(ValueError):
    """Bad input to a law: names the column, row or argument and what was expected."""


class LawFitError(RuntimeError):
    """The optimiser did not converge: the law has no fitted constants (`constants_` None)."""
