"""Checked law inputs: model size N, tokens D, training bits P_w/P_a/P_kv, post-training bits.

Every law evaluates on an `Inputs` record of broadcast float arrays. Bits may be `inf`
(that part is not quantized); `P_post = inf` means no post-training quantization.
`runs_to_inputs` turns a table of training runs (the `fit` input) into `Inputs` plus
the observed losses, naming the column and row of anything unusable.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from precsim.lawcore.errors import LawInputError

HIGH_PRECISION_BITS = 16.0  # parts at >= 16 bits count as trained "in high precision"
BIT_NAMES = ("P_w", "P_a", "P_kv")
PARTS = ("w", "a", "kv")  # weights, activations, KV cache: suffixes of the per-part constants
RUN_COLUMNS = ("N", "D", "P_w", "P_a", "P_kv", "P_post", "loss")


@dataclass(frozen=True)
class Inputs:
    """Float arrays on which the law terms are evaluated: all of one shape, or (from
    `make_inputs(..., broadcast=False)`) each on its own axes, broadcasting together to
    `shape`, so that a term is computed on the axes it depends on."""

    N: np.ndarray
    D: np.ndarray
    P_w: np.ndarray
    P_a: np.ndarray
    P_kv: np.ndarray
    P_post: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return np.broadcast_shapes(*(getattr(self, f).shape for f in _FIELDS))

    def full(self, value: object) -> np.ndarray:
        """`value` (a term, broadcasting to `shape`) as an array of `shape`."""
        return np.array(np.broadcast_to(value, self.shape), dtype=float)

    def bits(self, part: str) -> np.ndarray:
        """Training bits of part 'w', 'a' or 'kv'."""
        return getattr(self, f"P_{part}")

    def subset(self, mask: np.ndarray) -> Inputs:
        return Inputs(*(getattr(self, f)[mask] for f in _FIELDS))


_FIELDS = ("N", "D", "P_w", "P_a", "P_kv", "P_post")


def _where(values: np.ndarray, bad: np.ndarray) -> str:
    """' (at index i)' for the first bad element of an array input; '' for a scalar."""
    if values.ndim == 0:
        return ""
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    return f" (at index {index[0] if len(index) == 1 else index})"


def _array(name: str, value: object) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise LawInputError(f"{name} must be a number or an array of numbers; "
                            f"got {value!r}") from None
    return arr


def positive_finite(name: str, value: object, what: str = "") -> np.ndarray:
    """`value` as a float array whose elements are all finite and > 0."""
    arr = _array(name, value)
    bad = ~(np.isfinite(arr) & (arr > 0))
    if bad.any():
        first = arr[tuple(np.argwhere(bad)[0])] if arr.ndim else arr
        raise LawInputError(f"{name} must be a positive finite number{what}; got "
                            f"{first:g}{_where(arr, bad)}")
    return arr


def bits(name: str, value: object) -> np.ndarray:
    """Bit widths: > 0, `inf` allowed (not quantized), NaN refused."""
    arr = _array(name, value)
    bad = np.isnan(arr) | (arr <= 0)
    if bad.any():
        first = arr[tuple(np.argwhere(bad)[0])] if arr.ndim else arr
        raise LawInputError(f"{name} must be a positive number of bits (inf = not quantized); "
                            f"got {first:g}{_where(arr, bad)}")
    return arr


def make_inputs(N: object, D: object, P_w: object = HIGH_PRECISION_BITS,
                P_a: object = HIGH_PRECISION_BITS, P_kv: object = HIGH_PRECISION_BITS,
                P_post: object = None, broadcast: bool = True) -> Inputs:
    """Check and broadcast the arguments of `Law.predict`. P_post=None means no PTQ.

    `broadcast=False` checks that they broadcast together but keeps each on its own axes.
    """
    arrays = [positive_finite("N", N, " of parameters"),
              positive_finite("D", D, " of training tokens"),
              bits("P_w", P_w), bits("P_a", P_a), bits("P_kv", P_kv),
              np.asarray(np.inf) if P_post is None else bits("P_post", P_post)]
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        shapes = ", ".join(f"{n}{a.shape}" for n, a in zip(
            ("N", "D", *BIT_NAMES, "P_post"), arrays))
        raise LawInputError(f"array arguments do not broadcast together: {shapes}") from None
    if broadcast:
        arrays = [np.broadcast_to(a, shape) for a in arrays]
    return Inputs(*(np.array(a, dtype=float) for a in arrays))


def _cell(value: object) -> str:
    """A table cell for an error message: numbers as 1e+09 / -3 / nan, text quoted."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return f"{float(value):g}"
    return repr(value)


def runs_to_inputs(runs: pd.DataFrame, row_name: str = "row"
                   ) -> tuple[Inputs, np.ndarray, np.ndarray]:
    """Check a runs table; return (Inputs, observed loss, row labels).

    Columns: N, D, loss required; P_w, P_a, P_kv optional (default 16 bits, inf allowed);
    P_post optional (empty / NaN = not post-training quantized). Errors name the column
    and the row (`row_name` + the DataFrame index label, e.g. the CSV line number).
    """
    if not isinstance(runs, pd.DataFrame):
        raise LawInputError(f"runs must be a pandas DataFrame; got {type(runs).__name__}")
    missing = [c for c in ("N", "D", "loss") if c not in runs.columns]
    if missing:
        raise LawInputError(f"runs: missing column(s) {', '.join(missing)}; need N, D, loss "
                            f"(optional P_w, P_a, P_kv, P_post); got {list(runs.columns)}")
    if len(runs) == 0:
        raise LawInputError("runs: the table has no rows")
    labels = runs.index.to_numpy()
    values: dict[str, np.ndarray] = {}
    for column in RUN_COLUMNS:
        if column not in runs.columns:
            fill = np.inf if column == "P_post" else HIGH_PRECISION_BITS
            values[column] = np.full(len(runs), fill)
            continue
        raw = runs[column]
        num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        unparsed = np.isnan(num) & raw.notna().to_numpy()
        if column == "P_post":
            unparsed &= ~raw.astype(str).str.strip().str.lower().isin(["", "none", "nan"]
                                                                      ).to_numpy()
        if unparsed.any():
            i = int(np.argmax(unparsed))
            raise LawInputError(f"{row_name} {labels[i]}: column {column!r} is "
                                f"{_cell(raw.iloc[i])}; expected a number")
        if column == "P_post":
            num = np.where(np.isnan(num), np.inf, num)
        if column in ("N", "D", "loss"):
            bad = ~(np.isfinite(num) & (num > 0))
            expect = {"N": "a positive finite parameter count",
                      "D": "a positive finite token count",
                      "loss": "a positive finite loss"}[column]
        else:
            bad = np.isnan(num) | (num <= 0)
            expect = "a positive number of bits" + (" (empty = no PTQ)" if column == "P_post"
                                                    else " (inf = not quantized)")
        if bad.any():
            i = int(np.argmax(bad))
            raise LawInputError(f"{row_name} {labels[i]}: column {column!r} is "
                                f"{_cell(raw.iloc[i])}; expected {expect}")
        values[column] = num
    inputs = Inputs(*(values[c] for c in ("N", "D", "P_w", "P_a", "P_kv", "P_post")))
    return inputs, values["loss"], labels
