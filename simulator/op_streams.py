"""Norms and streaming ops (element-wise ops, their KV-cache appends) priced by one
element-wise call per request (simulator.op_eval's "stream" batches): a norm's bytes,
vector ops and 16-bit elements are `kernels.norm_terms`' (the arithmetic `norm_cost`
does), its kind's rate on its rows only (`elementwise_cost`'s `kernel_rows`); the
batches of scalar inputs share one call, each batch keeping its own rows and its place
in the pass sums (the same additions in the same order as separate calls).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from precsim.simulator.kernels import ZERO, elementwise_cost
from precsim.simulator.op_template import Inputs, call_inputs


def stream_call(group, columns, hw, quant, home, fused_dequant, nd) -> tuple:
    """Norms (of one kind: the profile's rate for it on their rows) and streaming ops:
    bytes, vector ops and 16-bit elements stacked, plus the KV-cache appends (zero for
    the ops without one: adding a zero cost is exact)."""
    read, write, vector_ops, half, kv, counts, norm_rows = columns
    kind = next((s.params["kind_norm"] for s in group if s.kind == "norm"), None)
    cost = elementwise_cost(hw, read, write, vector_ops, half_elements=half, kernel=kind,
                            kernel_rows=norm_rows)
    if _any_positive(kv):  # none read, no vector ops: one array of 0.0 x bytes for both
        zero = ZERO * kv
        return (cost, elementwise_cost(hw, zero, kv, zero, write_home=home,
                                       n_kernels=0.0)), counts
    return (cost,), counts


#: Elements up to which `_any_positive` reads a list (one numpy pass beyond).
LIST_ANY = 64
#: 0.0 < x (False for NaN), for `_any_positive`.
_POSITIVE = (0.0).__lt__


def _any_positive(values) -> bool:
    """(values > 0).any() (NaN is not): through a list for a small float64 array
    (cheaper than a comparison and a numpy reduction)."""
    if type(values) is np.ndarray and values.size <= LIST_ANY and values.dtype == np.float64:
        return any(map(_POSITIVE, values.tolist() if values.ndim == 1
                       else values.ravel().tolist()))
    return bool((values > ZERO).any())


def fuse_streams(steps: list, passes: Sequence, quant, start: int, stack) -> list:
    """`steps` (op_eval `_plan`'s, of one hardware and format) with its "stream" batches
    of scalar inputs (arrays keep each batch's own broadcast shape), the same passes,
    templated alike and of one norm kind (its rate: `elementwise_cost`'s `kernel_rows`)
    priced by ONE call at the first batch's place; each later batch a "=" step emitting
    its rows of that call (its ops: the index of the call's step, `steps` starting at
    `start`; `stack`: how a column of inputs is stacked). Every pass sum then adds the
    same rows in the same order as separate calls would."""
    groups: dict = {}
    for j, (_, kind, ops, nd, rows, fill, _) in enumerate(steps):
        if kind == "stream" and nd == 0:
            norm = next((s.params["kind_norm"] for s in (passes[pi].specs[i] for pi, i in ops)
                         if s.kind == "norm"), None)
            key = (tuple(pi for pi, _, _ in rows), fill is None)
            first = groups.setdefault(key, [norm, []])
            if norm is None or first[0] is None or norm == first[0]:
                first[0] = first[0] or norm
                first[1].append(j)
    out = list(steps)
    for members in (m for _, m in groups.values() if len(m) > 1):
        ops, emits, group = (), [], []
        for j in members:
            lead, _, more, nd, rows, fill, _ = steps[j]
            emits.append(tuple((pi, idx, slice(r.start + len(ops), r.stop + len(ops)))
                               for pi, idx, r in rows))
            ops += more
            group += fill[0] if fill else []
        fill = None if steps[members[0]][5] is None else (group, Inputs(
            call_inputs("stream", group, quant), [pi for pi, _ in ops],
            lambda column, nd=nd: stack(column, nd), nd))
        out[members[0]] = (lead, "stream", ops, nd, sum(emits, ()), fill, emits[0])
        for j, emit in zip(members[1:], emits[1:]):
            out[j] = (lead, "=", start + members[0], nd, (), None, emit)
    return out
