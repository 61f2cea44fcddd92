"""A priced pass's sums (simulator.op_eval.EvaluatedPass): its KernelCosts' extensive fields
stacked in one array per formula call (`field_block`), in two groups each summed on its
first read (`EvaluatedPass.sums`, `.other_sums`): what a request's totals read (time,
energy, launch overhead, kernels and every level's bytes) and the rest (ops, conversion
and the time components), so a request sums only the first.
"""
from __future__ import annotations

import numpy as np

from precsim.simulator.roofline import KernelCost

#: The extensive fields in the groups a pass sums together: group 0 (with every level's
#: bytes) what a request's totals read, group 1 the rest.
SUM_GROUPS = (("time_s", "energy_j", "overhead_time_s", "n_kernels"),
              ("flops", "vector_ops", "convert_ops", "compute_time_s", "memory_time_s",
               "convert_time_s"))
#: The `__dict__` keys a formula call's block (`PricedCall.block`) and a pass's sums
#: (`EvaluatedPass._stacked_sums`) of each group are kept under.
BLOCK_KEYS = ("_block_group0", "_block_group1")
SUM_KEYS = ("_sums_group0", "_sums_group1")
#: The `__dict__` keys a shared call's row sums per pass (`PricedCall.row_sums`) are kept under.
ROW_SUM_KEYS = ("_row_sums_group0", "_row_sums_group1")


def field_block(costs: tuple, names: tuple, levels: tuple, nd, n: int,
                extra=()) -> np.ndarray:
    """The fields `names`, then the bytes at `levels`, of the sum of `costs` (KernelCosts
    added field by field, in order: each element the sum adding their blocks gives) in
    one float array (values, *shape) broadcast to their common shape (and `extra`); with
    `nd` (a stacked part's input dimensions) the shape starts with the `n` ops."""
    values = _values(costs[0], names, levels)
    for more in costs[1:]:
        values = [a + b for a, b in zip(values, _values(more, names, levels))]
    if nd == 0 and (not extra or extra == (n,)):
        shape = (n,)  # scalar inputs: every field is one number per op, or one for all
    else:
        shapes = {v.shape for v in values if type(v) is np.ndarray and v.ndim}
        lead = () if nd is None else (n,) + (1,) * nd
        shape = shapes.pop() if len(shapes) == 1 else ()
        if shapes or (extra and extra != shape) \
                or (lead and (len(shape) != len(lead) or shape[0] != n)):
            shape = np.broadcast_shapes(shape, *shapes, lead, extra)
    if not shape:
        return np.array(values, dtype=float)  # numbers: one conversion
    out = np.empty((len(values),) + shape)
    for i, v in enumerate(values):
        out[i] = v
    return out


def _values(cost: KernelCost, names: tuple, levels: tuple) -> list:
    """The fields `names`, then the bytes at `levels`, of `cost`."""
    return [*map(cost.__dict__.__getitem__, names), *map(cost.bytes_moved.__getitem__, levels)]


def blocks_added(total: np.ndarray, block: np.ndarray) -> np.ndarray:
    """total + block of different dimensions (a pass's sums and a part's: (fields, *shape)):
    the fewer padded after the fields' axis."""
    if total.ndim < block.ndim:
        return _padded(total, block.ndim) + block
    return total + _padded(block, total.ndim)


def _padded(b: np.ndarray, dims: int) -> np.ndarray:
    """`b` with `dims` dimensions: ones inserted after the fields' axis."""
    return b.reshape(b.shape[:1] + (1,) * (dims - b.ndim) + b.shape[1:])


def row_runs(parts: list, calls: list) -> dict:
    """Per call number (`calls`: its ops' count and input dimensions) whose passes' rows
    (`parts`: per pass (op indices, call number, rows)) tile its ops axis in runs of one
    length from 2 to 7, inputs scalars (`nd` 0): that length (`run_sums` then sums every
    pass's rows of the call in one reduce)."""
    rows: dict = {}
    for pass_parts in parts:
        for _, number, pass_rows in pass_parts:
            rows.setdefault(number, []).append(pass_rows)
    runs = {}
    for number, cut in rows.items():
        (n, nd), size = calls[number], cut[0].stop - cut[0].start
        if nd == 0 and 1 < size < 8 and n % size == 0 \
                and sorted(r.start for r in cut) == list(range(0, n, size)) \
                and all(r.stop - r.start == size for r in cut):
            runs[number] = size
    return runs


def run_sums(block: np.ndarray, size: int) -> np.ndarray:
    """A block (fields, n) summed over its ops' runs of `size`: (fields, n // size), run
    j = `np.add.reduce(block[:, j*size:(j+1)*size], axis=1)` exactly (a contiguous last
    axis shorter than 8: numpy's same sequential sum)."""
    return np.add.reduce(block.reshape(block.shape[0], -1, size), axis=2)
