"""Input checks of the kernel formulas (simulator.kernels): sizes positive and finite,
and the formulas' entries that skip them for callers that validated upstream."""
from __future__ import annotations

import functools
import inspect
import math

import numpy as np

from precsim.simulator.errors import InputError


def check_positive(**values):
    """InputError unless every named value is positive and finite."""
    for name, value in values.items():
        if isinstance(value, (int, float)) and 0.0 < value < math.inf:
            continue  # the common scalar case, without numpy
        arr = np.asarray(value, dtype=float)
        if arr.size and not (arr.min() > 0.0 and arr.max() < math.inf):  # NaN fails too
            raise InputError(f"{name} must be positive and finite, got {value!r}")


def checked(check, *names):
    """The formula with `check(**its arguments `names` given)` in front (e.g.
    `check_positive`); the formula without the check, for callers whose inputs were
    validated upstream (simulator.op_eval, behind simulator.cost's length checks), as its
    `unchecked` attribute."""
    def wrap(fn):
        at = {name: i for i, name in enumerate(inspect.signature(fn).parameters)
              if name in names}

        @functools.wraps(fn)
        def run(*args, **kwargs):
            check(**{name: args[i] if i < len(args) else kwargs[name]
                     for name, i in at.items() if i < len(args) or name in kwargs})
            return fn(*args, **kwargs)
        run.unchecked = fn
        return run
    return wrap
