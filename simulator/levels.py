"""Bytes per memory level of a kernel's tensors, added up (simulator.kernels' streaming
kernels, embeddings and attention)."""
from __future__ import annotations

from collections.abc import Sequence

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
    levels: list = []
    last_key = None
    for j in range(hw.n_levels):
        terms = []
        for home, nbytes in tensors:
            if type(nbytes) is tuple:
                nbytes = nbytes[j]
            if isinstance(home, np.ndarray) and home.ndim:  # homes differ element-wise
                terms.append(bytes_through(hw, home, j, nbytes))
            elif home >= j and not (type(nbytes) is float and nbytes == 0.0):
                terms.append(nbytes)  # it crosses every level up to its home
        key = tuple(map(id, terms))
        if key == last_key:
            levels.append(levels[-1])
            continue
        last_key = key
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
