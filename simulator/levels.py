"""Bytes per memory level of a kernel's tensors, added up (simulator.kernels' streaming
kernels, embeddings and attention)."""
from __future__ import annotations

from collections.abc import Sequence
from operator import is_

import numpy as np

from precsim.simulator.hardware import Hardware, as_operand

#: Homes of up to this many elements are read as a list (`_nearest_home`).
LIST_HOMES = 64


def level_bytes(hw: Hardware, tensors: Sequence) -> list:
    """Per level of `hw`, the bytes of every (home, bytes) tensor that crosses it (every
    level up to its home), added in the order given; a tuple of bytes gives a tensor's
    bytes at each level (e.g. K/V re-read per level).

    The same sums as adding every tensor's bytes at every level (0.0 where it does not
    cross it): a tensor that does not cross a level is left out (x + 0.0 is x for the
    non-negative bytes), and a level crossed by the same tensors as the level before
    shares its sum. A tensor whose homes differ element-wise has, at each level,
    where(home >= level, bytes, 0.0) (`_crossing`)."""
    n = hw.n_levels
    items = []  # (the last level crossed, bytes): homes differing element-wise masked
    per_level = False  # any bytes given per level (else the terms only drop out)
    for home, nbytes in tensors:
        if isinstance(home, np.ndarray) and home.ndim:
            nbytes = _crossing(hw, home, nbytes if type(nbytes) is tuple else (nbytes,) * n)
            home = n
        per_level = per_level or type(nbytes) is tuple
        items.append((home, nbytes))
    levels: list = []
    last = None
    for j in range(n):
        terms = []  # a loop: cheaper than a comprehension per level
        for home, b in items:
            if home >= j:
                terms.append(b[j] if type(b) is tuple else b)
        if last is not None and len(terms) == len(last) and (
                not per_level or all(map(is_, terms, last))):  # the same terms again
            levels.append(levels[-1])
            continue
        last = terms
        if not terms:
            levels.append(0.0)
            continue
        total = terms[0]
        for b in terms[1:]:
            total = total + b
        if len(terms) < len(items) and (type(total) is int or type(total) is np.ndarray
                                        and not total.ndim):
            total = total + 0.0  # a float as 0.0 + ints, a numpy one as 0.0 + a 0-d array
        levels.append(total)
    return levels


def _crossing(hw: Hardware, home: np.ndarray, nbytes: tuple) -> tuple:
    """Per level j, np.where(home >= j, nbytes[j], 0.0): `nbytes[j]` itself (the same
    doubles) where every element crosses j (j up to the nearest home) and it is a float64
    array of the homes' shape; the comparison and the 0.0 as 0-d operands (a scalar
    operand costs numpy 2 a temporary array)."""
    nearest = _nearest_home(home)
    operands = hw.exec_cache.get("level_operands")  # the levels and 0.0 as 0-d arrays
    if operands is None:
        operands = hw.exec_cache["level_operands"] = (
            tuple(_read_only(np.array(j)) for j in range(hw.n_levels)),
            as_operand(0.0))
    levels, zero = operands
    return tuple([b if j <= nearest and type(b) is np.ndarray and b.dtype == np.float64
                  and b.shape == home.shape else np.where(home >= levels[j], b, zero)
                  for j, b in enumerate(nbytes)])


def _nearest_home(home: np.ndarray) -> int:
    """The nearest (smallest) level of `home` (a list's min for small arrays, cheaper than
    a numpy reduction)."""
    if home.size <= LIST_HOMES:  # none: no level shared by all
        return min(home.tolist() if home.ndim == 1 else home.ravel().tolist(), default=-1)
    return int(home.min())


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a
