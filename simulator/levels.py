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

    The same sums as adding every tensor at every level: a tensor that does not cross a
    level (its 0.0) is left out (x + 0.0 is x for the non-negative bytes), and a level
    crossed by the same tensors as the level before shares its sum."""
    n = hw.n_levels
    # per tensor its bytes at each level it crosses, None elsewhere
    per = []
    for home, nbytes in tensors:
        by_level = nbytes if type(nbytes) is tuple else (nbytes,) * n
        if isinstance(home, np.ndarray) and home.ndim:  # homes differ element-wise
            per.append([bytes_through(hw, home, j, b) for j, b in enumerate(by_level)])
        else:
            per.append([b if home >= j and not (type(b) is float and b == 0.0) else None
                        for j, b in enumerate(by_level)])
    levels: list = []
    last = None
    for j in range(n):
        terms = [p[j] for p in per if p[j] is not None]
        if last is not None and len(terms) == len(last) and all(map(is_, terms, last)):
            levels.append(levels[-1])
            continue
        last = terms
        if not terms:
            levels.append(0.0)
            continue
        total = terms[0]
        for b in terms[1:]:
            total = total + b
        if type(total) is int and len(terms) < len(tensors):
            total = float(total)  # as 0.0 + ints
        levels.append(total)
    return levels
