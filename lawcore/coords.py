"""The leaf of lawcore: fit coordinates, the Chinchilla constants' coordinates, and the
error-location helpers (which argument index or run row is bad). It imports nothing
from lawcore but `inputs` (itself a leaf), so base, fitting and the laws all build on it
and the imports form no cycle.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from precsim.lawcore.inputs import Inputs

BASE_CONSTANTS = ("A", "alpha", "B", "beta", "E")
BASE_COORDS = {"A": "log_A", "alpha": "alpha", "B": "log_B", "beta": "beta", "E": "log_E"}

# Initial-value grid of the Epoch AI replication: α, β ∈ {0, 0.5, …, 2}; e ∈ {−1, 0, 1};
# a, b ∈ {0, 5, …, 25} (a = log A, b = log B, e = log E).
_EXPONENT_GRID = (0.0, 0.5, 1.0, 1.5, 2.0)
_LOG_SCALE_GRID = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
_LOG_E_GRID = (-1.0, 0.0, 1.0)

#: error-location text for a boolean mask of bad elements, e.g. " (row 7)"
Locate = Callable[[np.ndarray], str]


@dataclass(frozen=True)
class Coord:
    """One fit coordinate: box bounds for L-BFGS-B and the values of its start grid.

    `group` "base" coordinates form the full start grid; the other groups are searched
    one group at a time from the best base starts (see lawcore.fitting).
    """

    name: str
    bounds: tuple[float, float]
    grid: tuple[float, ...]
    group: str = "base"


BASE_COORD_SPECS = {
    "log_A": Coord("log_A", (-10.0, 60.0), _LOG_SCALE_GRID),
    "alpha": Coord("alpha", (0.0, 5.0), _EXPONENT_GRID),
    "log_B": Coord("log_B", (-10.0, 60.0), _LOG_SCALE_GRID),
    "beta": Coord("beta", (0.0, 5.0), _EXPONENT_GRID),
    "log_E": Coord("log_E", (-10.0, 5.0), _LOG_E_GRID),
}


def base_coords(c: Mapping[str, float]) -> dict[str, float]:
    """Fit coordinates of the Chinchilla constants: log A, α, log B, β, log E."""
    return {"log_A": math.log(c["A"]), "alpha": c["alpha"], "log_B": math.log(c["B"]),
            "beta": c["beta"], "log_E": math.log(c["E"])}


def base_constants(k: Mapping[str, float]) -> dict[str, float]:
    return {"A": math.exp(k["log_A"]), "alpha": float(k["alpha"]),
            "B": math.exp(k["log_B"]), "beta": float(k["beta"]), "E": math.exp(k["log_E"])}


def as_output(value: np.ndarray) -> Any:
    """0-d arrays come back as numpy float scalars, others as arrays."""
    value = np.asarray(value, dtype=float)
    return value[()] if value.ndim == 0 else value


def locate_index(X: Inputs) -> Locate:
    """Error-location text for `predict` arguments: ' (at index i)' for arrays (the
    first bad element of the broadcast arguments; `mask` broadcasts to `X.shape`)."""
    shape = X.shape

    def locate(mask: np.ndarray) -> str:
        if not shape:
            return ""
        index = tuple(int(i) for i in np.argwhere(np.broadcast_to(mask, shape))[0])
        return f" (at index {index[0] if len(index) == 1 else index})"
    return locate


def first_bad(values: np.ndarray, mask: np.ndarray) -> float:
    """The first element of `values` where `mask` is true (0-d arrays included)."""
    return float(values[tuple(np.argwhere(mask)[0])])


def locate_rows(labels: np.ndarray, row_name: str) -> Locate:
    """Error-location text for runs: ' (row 7)' naming the first offending row."""
    def locate(mask: np.ndarray) -> str:
        return f" ({row_name} {labels[int(np.argmax(mask))]})"
    return locate
