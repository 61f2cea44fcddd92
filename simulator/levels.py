"""Bytes per memory level of a kernel's tensors, added up (simulator.kernels' streaming
kernels, embeddings and attention)."""
from __future__ import annotations

from collections.abc import Sequence
from operator import is_

import numpy as np

from precsim.simulator.hardware import Hardware
from precsim.simulator.roofline import bytes_through


def level_bytes(hw: Hardware, tensors: Sequence) -> list:
    """Per level of `hw`, the bytes of every (home, bytes) tensor that crosses it
    (`bytes_through`: every level up to its home), added in the order given; a tuple of
    bytes gives a tensor's bytes at each level (e.g. K/V re-read per level).

    The same sums as adding every tensor's bytes at every level (0.0 where it does not
    cross it): a tensor that does not cross a level is left out (x + 0.0 is x for the
    non-negative bytes), and a level crossed by the same tensors as the level before
    shares its sum."""
    n = hw.n_levels
    items = []  # (the last level crossed, bytes): homes differing element-wise masked
    for home, nbytes in tensors:
        if isinstance(home, np.ndarray) and home.ndim:
            if type(nbytes) is tuple:
                nbytes = tuple([bytes_through(hw, home, j, nbytes[j]) for j in range(n)])
            else:  # bytes_through at every level at once: the rows of one mask
                axis = hw.exec_cache.get(("levels_axis", home.ndim))  # the levels 0..n-1
                if axis is None:
                    axis = np.arange(n).reshape((n,) + (1,) * home.ndim)
                    axis.flags.writeable = False
                    hw.exec_cache[("levels_axis", home.ndim)] = axis
                nbytes = tuple(np.where(home >= axis, nbytes, 0.0))
            home = n
        items.append((home, nbytes))
    levels: list = []
    last: list = []
    for j in range(n):
        terms = [b[j] if type(b) is tuple else b for home, b in items if home >= j]
        if levels and len(terms) == len(last) and all(map(is_, terms, last)):
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
