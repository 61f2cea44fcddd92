"""The kernels of one or more passes priced along an ops axis: the ops of one kind that
share a kernel formula and its non-shape arguments (GEMMs of one format, norms and
element-wise ops: simulator.op_streams, embeddings) are stacked along a new leading axis
and priced by ONE call of their formula in simulator.kernels (every formula broadcasts)
and kept stacked: a pass's sums are taken on the stacked arrays (`EvaluatedPass`), one
KernelCost per op split off only when the per-op costs are asked for. Passes on the
same hardware and format (a request's prefill and decode) share the calls; each op keeps
its pass's weight home. Element for
element this is the per-op evaluation (`evaluate_op`, which prices what is not stacked:
attention, MobileLLM's repeated blocks); stacking only saves per-call overhead.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from precsim.simulator.hardware import Hardware
from precsim.simulator.kernels import (attention_cost, elementwise_cost, embedding_cost,
                                       gemm_cost, matrix_rate, norm_cost)
from precsim.simulator.models import TransformerConfig
from precsim.simulator.op_streams import fuse_streams, stream_call
from precsim.simulator.op_template import Inputs, call_inputs
from precsim.simulator.ops import OpSpec, add_axis, ndim, new_frozen, object_memo
from precsim.simulator.pass_sums import (BLOCK_KEYS, ROW_SUM_KEYS, SUM_GROUPS, SUM_KEYS,
                                         blocks_added, field_block, row_runs, run_sums)
from precsim.simulator.quant import group_format, quant_attr
from precsim.simulator.roofline import (EXTENSIVE_FIELDS, KernelCost, home_level,
                                        reduce_costs)

# The formulas without their input checks (sizes positive, attention's lengths ordered):
# an op's sizes come from a validated model and the lengths simulator.cost checked (the
# public formulas still check).
gemm_cost, norm_cost = gemm_cost.unchecked, norm_cost.unchecked
embedding_cost, attention_cost = embedding_cost.unchecked, attention_cost.unchecked


class _once:
    """A cached property without `functools.cached_property`'s lock (taken on every
    first access in Python 3.11): computed on first access and stored in the instance's
    `__dict__` (frozen dataclasses included), which later lookups read first."""

    def __init__(self, fn):
        self.fn, self.name, self.__doc__ = fn, fn.__name__, fn.__doc__

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)
        return value


@dataclass(frozen=True, eq=False)
class PassOps:
    """A pass to price: its ops on `hw` in format `quant`, the weights and KV cache at
    `state_home`, a repeated block's weights at `block_home` (simulator.cost)."""

    specs: Sequence[OpSpec]
    hw: Hardware
    quant: object
    model: TransformerConfig
    state_home: object
    block_home: object


def evaluate_passes(passes: Sequence[PassOps], fused_dequant: bool) -> list[tuple]:
    """One KernelCost per op of each pass (`price_passes`, split per op)."""
    return [e.costs for e in price_passes(passes, fused_dequant)]


def price_passes(passes: Sequence[PassOps], fused_dequant: bool) -> list[EvaluatedPass]:
    """Each pass's ops priced (times their counts), equal to `evaluate_op` of each:
    stackable ops priced per batch (`_batch_key`) and kept stacked, the others one by
    one. Passes sharing hardware and format share a batch's call where the op's inputs
    are scalars (arrays of different passes need not align: a decode pass has a trailing
    axis of steps); each pass keeps its rows of such a batch. How (`_plan`) is kept
    for passes built alike (`ops.OpList.signature`)."""
    calls, layout = _cached_plan(passes)
    values = None
    home = _one_home(passes)
    priced = []
    for lead, kind, stacked, ops, nd, rows, fill, run in calls:
        hw, quant = passes[lead].hw, passes[lead].quant
        if kind is None:  # one op priced alone
            (pi, i), = ops
            p = passes[pi]
            priced.append(_price_op(p.specs[i], hw, quant, p.model, p.state_home,
                                    p.block_home, fused_dequant))
            continue
        if fill is None:
            group = [passes[pi].specs[i] for pi, i in ops]
            columns = _columns(call_inputs(kind, group, quant), nd)
        else:  # the ops' templates (their constant fields) and their inputs' columns
            group, inputs = fill
            values = values or tuple([getattr(p.specs, "values", None) for p in passes])
            columns = inputs.columns(values)
        costs, counts = stacked(group, columns, hw, quant,
                                _home(passes, ops, rows, nd) if home is None else home,
                                fused_dequant, nd)
        priced.append(new_frozen(PricedCall, costs=costs, count=counts, nd=nd, n=len(ops),
                                 run=run))
    return [new_frozen(EvaluatedPass, n=len(p.specs),
                       parts=tuple([(idx, priced[c], r) for idx, c, r in pass_parts]),
                       singles=tuple([(i, priced[c]) for i, c in pass_singles]), reduced=None)
            for p, (pass_parts, pass_singles) in zip(passes, layout)]


#: `_plan` per signature of the passes (`ops.object_memo`).
_PLANS: dict = {}


def _cached_plan(passes: Sequence[PassOps]) -> tuple:
    """`_layout` of `_plan(passes)`, kept per the passes' signatures (their ops' kinds,
    groups and input dimensions), hardware and format objects, weight homes' and
    profiles' dimensions and which passes share hardware and format."""
    firsts: dict = {}
    extra, objects = (), []
    for pi, p in enumerate(passes):
        signature = getattr(p.specs, "signature", None)
        if signature is None:
            return _layout(_plan(passes), passes)
        extra += (signature, ndim(p.state_home), p.hw.profiles.ndim,
                  firsts.setdefault((id(p.hw), id(p.quant)), pi))  # 4 per pass
        objects += (p.model, p.quant, *p.specs.objects)
    return object_memo(_PLANS, tuple(objects), lambda: _layout(_plan(passes), passes), extra)


def _layout(steps: tuple, passes: Sequence[PassOps]) -> tuple:
    """`_plan`'s `steps` for `passes` as `price_passes` runs them: the formula calls (lead
    pass, kind, its stacked adapter (GEMMs: whether any is an expert GEMM, a property of
    the model the plan is kept for), ops, dimensions, rows, fill; one call per op priced
    alone, none for a "=" step) and per pass its parts (op indices, call number, rows)
    and single ops (op index, call number) in the order the steps emit them (the order
    the pass sums add them)."""
    calls, numbers = [], {}
    parts, singles = [[] for _ in passes], [[] for _ in passes]
    for j, (lead, kind, ops, nd, rows, fill, emit) in enumerate(steps):
        if kind is None:
            for pi, i in ops:
                singles[pi].append((i, len(calls)))
                calls.append((lead, None, None, ((pi, i),), nd, rows, fill))
            continue
        if kind == "=":  # more rows of the call of step `ops` (`op_streams.fuse_streams`)
            number = numbers[ops]
        else:
            number = numbers[j] = len(calls)
            stacked = _STACKED.get(kind) or partial(_gemms, any(
                passes[pi].specs[i].params.get("experts") for pi, i in ops))
            calls.append((lead, kind, stacked, ops, nd, rows, fill))
        for pi, idx, pass_rows in emit:
            parts[pi].append((idx, number, pass_rows))
    runs = row_runs(parts, [(len(c[3]), c[4]) for c in calls])  # each call's `run`
    calls = tuple([c + (runs.get(number),) for number, c in enumerate(calls)])
    return calls, tuple(zip(map(tuple, parts), map(tuple, singles)))


def _plan(passes: Sequence[PassOps]) -> tuple:
    """How `price_passes` prices `passes`: one step per formula call, (the first pass
    of the hardware and format it runs on, the formula's kind (None: ops priced one by
    one), its ops as (pass, op index), their inputs' dimensions, each pass's (op
    indices, rows of the call), and where every pass of the call has a template
    (`ops.OpList.template`): the ops' templates and the `op_template.Inputs` giving the
    call's input columns from the passes' request values, else None), and the (pass, op
    indices, rows) its pass sums take here: norms and element-wise ops share one call
    (`op_streams.fuse_streams`), each batch keeping its place in the sums (kind "=":
    rows of a call before))."""
    steps = []
    shared: dict = {}
    for pi, p in enumerate(passes):
        shared.setdefault((id(p.hw), id(p.quant)), []).append(pi)
    for members in shared.values():
        lead = members[0]
        hw, quant = passes[lead].hw, passes[lead].quant
        own: list = []
        batches: dict = {}  # key -> [(pass, op, dimensions of the op's stacked inputs)]
        for pi in members:
            p = passes[pi]
            home_nd = np.ndim(p.state_home)
            repeated = bool(np.any(np.asarray(p.model.block_repeat) != 1))
            for i, spec in enumerate(p.specs):
                key = _batch_key(spec, quant, repeated)
                if key is None:
                    batches["single", pi, i] = [(pi, i, 0)]
                    continue
                nd = max(home_nd, _max_ndim(spec.count, spec.kv_write_bytes,
                                            *spec.params.values()))
                batches.setdefault(key + (pi,) if nd else key, []).append((pi, i, nd))
                # arrays align with their own pass only
        for key, ops in batches.items():
            if key[0] == "single" or len(ops) == 1:
                own.append((lead, None, tuple((pi, i) for pi, i, _ in ops), 0, (), None, ()))
                continue
            kind = "stream" if key[0] in ("norm", "elementwise") else key[0]
            nd = max(hw.profiles.ndim, np.ndim(quant), *(d for _, _, d in ops))
            rows, start = [], 0
            for pi in dict.fromkeys(pi for pi, _, _ in ops):  # each pass's rows, in order
                idx = tuple(i for qi, i, _ in ops if qi == pi)
                rows.append((pi, idx, slice(start, start + len(idx))))
                start += len(idx)
            templates = [getattr(passes[pi].specs, "template", None) for pi, _, _ in ops]
            fill = None
            if all(templates):
                group = [t.specs[i] for t, (_, i, _) in zip(templates, ops)]
                fill = (group, Inputs(call_inputs(kind, group, quant),
                                      [pi for pi, _, _ in ops],
                                      lambda column, nd=nd: _stack(column, nd), nd))
            own.append((lead, kind, tuple((pi, i) for pi, i, _ in ops), nd, tuple(rows),
                        fill, tuple(rows)))
        steps += fuse_streams(own, passes, quant, len(steps), _stack)
    return tuple(steps)


@dataclass(frozen=True, eq=False)
class PricedCall:
    """What one formula call priced: the sum of `costs` (KernelCosts: a kernel and the
    work added to it, e.g. its KV-cache append) times `count` (None: counted already),
    for `n` ops stacked along a leading axis with `nd` input dimensions after it (`nd`
    None: one op, no ops axis). Shared by the passes whose ops it priced: its fields in
    one array (`block`: the counts applied there, one multiply, not one per field), its
    passes' row sums where they are runs of `run` rows (`pass_sums.row_runs`; else None)
    and its per-op KernelCosts, made on first use."""

    costs: tuple
    count: object
    nd: int | None
    n: int
    run: int | None = None

    @_once
    def cost(self) -> KernelCost:
        """The KernelCost of the call (the costs added, then scaled by the count)."""
        total = self.costs[0]
        for extra in self.costs[1:]:
            total = total + extra
        return total if self.count is None else total.scaled(self.count)

    def block(self, group: int = 0) -> np.ndarray:
        """The extensive fields of `SUM_GROUPS[group]` (group 0: then every level's bytes)
        of `cost`: (fields, n, *shape), or (fields, *shape) for one op (each element the
        same sum and product as `cost`'s). Kept for the next pass where the inputs are
        scalars (the passes share such calls; the block is small); an array input's
        block (one pass's) is made for its sums and let go."""
        kept = self.__dict__.get(BLOCK_KEYS[group])
        if kept is not None:
            return kept
        costs, count = self.costs, self.count
        levels = tuple(costs[0].bytes_moved) if group == 0 else ()
        extra = () if count is None or type(count) is int else count.shape \
            if type(count) is np.ndarray else np.shape(count)  # counts may vary by element
        out = field_block(costs, SUM_GROUPS[group], levels, self.nd, self.n, extra)
        if count is not None:  # `extra`: the block has the counts' shape
            out *= count
        if self.nd == 0:
            self.__dict__[BLOCK_KEYS[group]] = out
        return out

    @_once
    def ops(self) -> list:
        """One KernelCost per op (`_split`; one op: `cost`)."""
        return [self.cost] if self.nd is None else _split(self.cost, self.n, self.nd)


@dataclass(frozen=True, eq=False)
class EvaluatedPass:
    """A priced pass: `parts` (op indices, the PricedCall of their batch, the pass's
    rows of the batch) and `singles` (op index, its PricedCall); `reduced`: (the pass,
    weights, axis) this is the weighted sum of. Its sums are taken on the stacked
    arrays; the per-op costs are split off only when asked for (`costs`)."""

    n: int
    parts: tuple
    singles: tuple
    reduced: tuple | None = None

    @_once
    def costs(self) -> tuple:
        """One KernelCost per op, in op order (each as `evaluate_op`; reduced: as
        `reduce_costs` of the pass's ops)."""
        if self.reduced is not None:
            source, weights, axis = self.reduced
            return reduce_costs(source.costs, weights, axis)
        out = [None] * self.n
        for idx, call, rows in self.parts:
            for i, c in zip(idx, call.ops[rows]):
                out[i] = c
        for i, call in self.singles:
            out[i] = call.cost
        return tuple(out)

    def _stacked_sums(self, group: int) -> np.ndarray:
        """The extensive fields of `SUM_GROUPS[group]` (group 0: then every level's bytes)
        summed over the ops: (fields, *shape), kept. A stacked part is summed down its
        ops axis, the parts and single ops added in order (numpy's order: within ~1e-15
        relative of a sequential sum over the ops); a reduced pass weights the sums of
        its source over `axis` (the same sum of products, regrouped)."""
        kept = self.__dict__.get(SUM_KEYS[group])
        if kept is not None:
            return kept
        if self.reduced is not None:
            source, weights, axis = self.reduced
            sums = source._stacked_sums(group)  # the fields' axis clear of the weights' axes
            w_ndim = weights.ndim if type(weights) is np.ndarray else np.ndim(weights)
            if w_ndim >= sums.ndim:
                sums = sums.reshape(sums.shape[:1] + (1,) * (w_ndim - sums.ndim + 1)
                                    + sums.shape[1:])
            total = np.add.reduce(sums * weights, axis=axis if axis < 0 else axis + 1)
            self.__dict__[SUM_KEYS[group]] = total
            return total
        key = BLOCK_KEYS[group]
        total = None
        for _, call, rows in self.parts:
            if call.run is not None:  # every pass's row sums in one reduce, kept
                block = call.__dict__.get(ROW_SUM_KEYS[group])
                if block is None:
                    block = call.__dict__[ROW_SUM_KEYS[group]] = run_sums(call.block(group),
                                                                          call.run)
                block = block[:, rows.start // call.run]
            else:
                block = call.__dict__.get(key)  # a kept block read without the method call
                if block is None:
                    block = call.block(group)
                block = block[:, rows.start] if rows.stop - rows.start == 1 \
                    else np.add.reduce(block[:, rows], axis=1)  # one row: itself (one term)
            total = block if total is None else total + block if total.ndim == block.ndim \
                else blocks_added(total, block)
        for _, call in self.singles:
            block = call.block(group)
            total = block if total is None else total + block if total.ndim == block.ndim \
                else blocks_added(total, block)
        self.__dict__[SUM_KEYS[group]] = total
        return total

    @_once
    def sums(self) -> dict:
        """The sums a request's totals read (`SUM_GROUPS[0]`; "bytes_moved" a dict per
        level), summed on first read (`_stacked_sums`)."""
        rows = list(self._stacked_sums(0))
        out = dict(zip(SUM_GROUPS[0], rows))
        first = (self.parts[0][1] if self.parts else self.singles[0][1]).costs[0]
        out["bytes_moved"] = dict(zip(first.bytes_moved, rows[len(SUM_GROUPS[0]):]))
        return out

    @_once
    def other_sums(self) -> dict:
        """The other extensive fields' sums (`SUM_GROUPS[1]`), summed on first read."""
        return dict(zip(SUM_GROUPS[1], list(self._stacked_sums(1))))

    def reduce(self, weights, axis: int = -1) -> EvaluatedPass:
        """The weighted sum over `axis` of every op (per op: `reduce_costs`)."""
        new = object.__new__(EvaluatedPass)  # the dataclass __init__'s result
        new.__dict__.update(n=self.n, parts=self.parts, singles=self.singles,
                            reduced=(self, weights, axis))
        return new


def _max_ndim(*values) -> int:
    """The most dimensions of `values` (numbers and numpy scalars: 0)."""
    nd = 0
    for v in values:
        if isinstance(v, np.ndarray) and v.ndim > nd:
            nd = v.ndim
    return nd


def _batch_key(spec: OpSpec, quant, repeated: bool):
    """What ops priced by one stacked call share (None: priced alone; `repeated`: the
    model repeats blocks, its GEMMs read weights from two homes). GEMMs: per group
    format object (its id: hashing a frozen format hashes every field; the objects
    live in `quant` while the call runs)."""
    p = spec.params
    if spec.kind == "gemm":
        if repeated:
            return None
        fmt = spec.group if isinstance(quant, np.ndarray) else id(quant.for_group(spec.group))
        return ("gemm", fmt)
    if spec.kind == "norm":
        return ("norm", p["kind_norm"], bool(p.get("fused_residual", True)))
    if spec.kind in ("elementwise", "embedding"):
        return (spec.kind,)
    return None


def _one_home(passes: Sequence[PassOps]) -> int | None:
    """The passes' weight home where all of them have the same one, a Python int (every
    call's ops then share it: `_home`), else None."""
    first = passes[0].state_home
    if type(first) is int and all(type(p.state_home) is int and p.state_home == first
                                  for p in passes):
        return first
    return None


def _home(passes: Sequence[PassOps], ops: tuple, rows: tuple, nd: int):
    """The weight homes of a call's `ops` (their passes': one per pass of `rows`): one
    level when the passes agree, else one per op, stacked."""
    first = passes[rows[0][0]].state_home
    homes = [passes[pi].state_home for pi, _, _ in rows[1:]]
    if type(first) is int and all(type(h) is int and h == first for h in homes):
        return first  # the common case: one level, as Python ints
    if np.ndim(first) == 0 and all(np.ndim(h) == 0 and h == first for h in homes):
        return first
    return _stack([passes[pi].state_home for pi, _ in ops], nd)


def _stack(values, nd: int, dtype=float) -> np.ndarray:
    """`values` (one per op) along a new leading axis, each broadcast to their common
    shape padded to `nd` dimensions."""
    try:  # numbers, or arrays of one shape: one conversion
        out = np.array(values, dtype=dtype)
    except ValueError:
        out = None
    if out is not None:
        shape = out.shape[1:]
        return out.reshape((len(values),) + (1,) * (nd - len(shape)) + shape)
    shape = np.broadcast_shapes(*(np.shape(v) for v in values))
    out = np.empty((len(values),) + (1,) * (nd - len(shape)) + shape, dtype=dtype)
    for i, v in enumerate(values):
        out[i] = v
    return out


def _columns(rows: list, nd: int) -> list:
    """The columns of `rows` (one tuple of values per op), each as `_stack` gives it: one
    conversion of the whole table where the inputs are numbers (`nd` 0), else one
    `_stack` per column."""
    if nd == 0:
        try:
            return list(np.array(rows, dtype=float).T)
        except ValueError:
            pass
    return [_stack(column, nd) for column in zip(*rows)]


def _split(cost: KernelCost, n: int, nd: int) -> list:
    """The `n` ops of a stacked KernelCost (fields without the ops axis are shared; a
    label the same for every element is kept as one label)."""
    d = cost.__dict__
    shared = dict(d)
    stacked = {}
    for name in EXTENSIVE_FIELDS + ("exec_dtype", "exec_path"):
        v = d[name]
        if getattr(v, "ndim", 0) == nd + 1:
            if v.dtype == object and all(x == v.flat[0] for x in v.flat):
                shared[name] = v.flat[0]
            else:
                stacked[name] = v if v.shape[0] > 1 else np.broadcast_to(v, (n,) + v.shape[1:])
    levels = {k: (v if getattr(v, "ndim", 0) != nd + 1 else
                  v if v.shape[0] > 1 else np.broadcast_to(v, (n,) + v.shape[1:]))
              for k, v in cost.bytes_moved.items()}
    split = [k for k, v in levels.items() if getattr(v, "ndim", 0) == nd + 1]
    out = []
    for j in range(n):
        new = object.__new__(KernelCost)
        new.__dict__.update(shared)
        for name, v in stacked.items():
            new.__dict__[name] = v[j]
        moved = dict(levels)
        for k in split:
            moved[k] = levels[k][j]
        new.__dict__["bytes_moved"] = moved
        out.append(new)
    return out


def _gemms(experts: bool, group, columns, hw, quant, home, fused_dequant, nd) -> tuple:
    """GEMMs of one format (`experts`: some are expert GEMMs): m, n, k, output bits and
    streaming scale stacked; (costs, counts) as `PricedCall` takes them (so are the
    other stacked calls')."""
    first = group[0]
    m, n, k, out_bits, counts = columns
    scale = _stack([_expert_stream(hw, quant, s.group) if s.params.get("experts") else 1.0
                    for s in group], nd) if experts else 1.0  # x 1.0: exact
    cost = gemm_cost(hw, m, n, k, quant, group=first.group, weight_home=home,
                     out_bits=out_bits, fused_dequant=fused_dequant, stream_scale=scale)
    if experts:  # no tile work elsewhere: stored_n 0
        tiles = _expert_tiles(hw, quant, first.group, dict(m=m, n=n, k=k, stored_n=_stack(
            [s.params["stored_n"] if s.params.get("experts") else 0.0 for s in group], nd)))
        if tiles is not None:
            return (cost, tiles), counts
    return (cost,), counts


def _embeddings(group, columns, hw, quant, home, fused_dequant, nd) -> tuple:
    """Embedding gathers (one per pass): tokens and width stacked."""
    tokens, d_model, counts = columns
    cost = embedding_cost(hw, tokens, d_model, quant, weight_home=home)
    return (cost,), counts


#: The stacked calls' adapters but GEMMs' (`_layout` binds `_gemms` to whether any op is
#: an expert GEMM).
_STACKED = {"stream": stream_call, "embedding": _embeddings}


def evaluate_op(spec: OpSpec, hw: Hardware, quant, model: TransformerConfig, state_home,
                block_home, fused_dequant: bool) -> KernelCost:
    """One op's KernelCost (times its count): weights and the KV cache at `state_home`,
    a MobileLLM block's repeated runs reading its weights from `block_home`."""
    return _price_op(spec, hw, quant, model, state_home, block_home, fused_dequant).cost


def _price_op(spec: OpSpec, hw: Hardware, quant, model: TransformerConfig, state_home,
              block_home, fused_dequant: bool) -> PricedCall:
    """`evaluate_op` as a PricedCall of one op."""
    p = spec.params
    if spec.kind == "gemm":
        # grouped expert GEMM: the engine's streaming share for its weight type
        scale = _expert_stream(hw, quant, spec.group) if p.get("experts") else 1.0
        tiles = _expert_tiles(hw, quant, spec.group, p) if p.get("experts") else None

        def run(home) -> tuple:
            cost = gemm_cost(hw, p["m"], p["n"], p["k"], quant, group=spec.group,
                             weight_home=home, out_bits=p.get("out_bits"),
                             fused_dequant=fused_dequant, stream_scale=scale)
            return (cost,) if tiles is None else (cost, tiles)
        if spec.per_layer:
            stored = spec.count / model.block_repeat  # n_layers (a share of them for MoE)
            first = PricedCall(run(state_home), stored, None, 1)
            if model.block_repeat == 1:
                return first
            again = PricedCall(run(block_home), stored * (model.block_repeat - 1), None, 1)
            return PricedCall((first.cost, again.cost), None, None, 1)
        costs = run(state_home)
    elif spec.kind == "attention":
        costs = (_attention(p, hw, quant, state_home),)
    elif spec.kind == "norm":
        costs = (norm_cost(hw, p["rows"], p["width"], in_bits=p["in_bits"],
                           out_bits=p["out_bits"], kind=p["kind_norm"],
                           fused_residual=p.get("fused_residual", True),
                           quantize_out=p["quantize_out"]),)
    elif spec.kind == "embedding":
        costs = (embedding_cost(hw, p["tokens"], p["d_model"], quant,
                                weight_home=state_home),)
    else:
        costs = (elementwise_cost(hw, p["read_bytes"], p["write_bytes"], p["vector_ops"]),)
        if (np.asarray(spec.kv_write_bytes) > 0).any():
            costs += (elementwise_cost(hw, 0.0 * spec.kv_write_bytes, spec.kv_write_bytes,
                                       0.0 * spec.kv_write_bytes, write_home=state_home,
                                       n_kernels=0.0),)
    count = spec.count
    if spec.per_layer or (count != 1.0 if isinstance(count, (int, float)) else
                          (np.asarray(count) != 1.0).any()):
        # per layer, or an op the pass leaves out (count 0)
        return new_frozen(PricedCall, costs=costs, count=spec.count, nd=None, n=1)
    return new_frozen(PricedCall, costs=costs, count=None, nd=None, n=1)


def _expert_stream(hw: Hardware, quant, group: str):
    """The profile's `overheads.expert_stream` share for the experts' weight type (an
    engine property; 1 on bare hardware)."""
    w_dtype = quant_attr(group_format(quant, group), lambda q: q.weight_dtype)
    return np.vectorize(lambda prof, dt: prof.overheads.expert_stream_value(dt),
                        otypes=[float])(hw.profiles, w_dtype)


def _expert_tiles(hw: Hardware, quant, group: str, p: dict) -> KernelCost | None:
    """The engine's per-expert tile work (`overheads.expert_tile_rows` R for the experts'
    weight type; None where no profile sets it): every stored expert runs at least R rows
    per pass, so 2 k max(0, R n_stored - m n) matrix ops beyond the routed rows (m n: the
    routed rows times the touched experts' width; n_stored: all stored experts' width),
    taking their time at the execution type's matrix rate, in series with the GEMM (tile
    work the weight stream does not hide). The SMs are busy issuing during it, not
    streaming: it is priced as element-wise work of that duration (time x vector rate
    ops at the vector energy per op; no bytes)."""
    w_dtype = quant_attr(group_format(quant, group), lambda q: q.weight_dtype)
    rows = np.vectorize(lambda prof, dt: prof.overheads.expert_tile_rows_value(dt),
                        otypes=[float])(hw.profiles, w_dtype)
    if not np.any(rows > 0):
        return None
    ops = 2.0 * p["k"] * np.maximum(0.0, rows * p["stored_n"] - p["m"] * p["n"])
    busy_s = ops / matrix_rate(hw, quant, group=group)
    zero = 0.0 * busy_s
    return elementwise_cost(hw, zero, zero, busy_s * hw.vector_ops_per_s, n_kernels=0.0)


def _attention(p: dict, hw: Hardware, quant, state_home) -> KernelCost:
    """An attention part: cached K/V where the KV cache lives; a part of a pass with
    several places Q, the output and fresh K/V by the pass's totals; a ragged part is
    priced per sequence along the trailing axis and summed (weights `present`)."""
    homes = {}
    if "pass_q_bytes" in p:
        homes = {"q_home": home_level(hw, p["pass_q_bytes"], True),
                 "out_home": home_level(hw, p["pass_out_bytes"], True),
                 "fresh_kv_home": home_level(hw, p["pass_fresh_kv_bytes"], True)}
    ragged = p.get("ragged", False)
    if ragged:
        hw = hw.expand()
        quant = quant[..., None] if isinstance(quant, np.ndarray) else quant
        state_home = add_axis(state_home)
        homes = {k: add_axis(v) for k, v in homes.items()}
    cost = attention_cost(hw, p["batch"], p["q_len"], p["kv_len"], p["n_heads"],
                          p["n_kv_heads"], p["head_dim"], quant, window=p["window"],
                          cache_len=p["cache_len"], flash=p["flash"], kv_home=state_home,
                          out_bits=p["out_bits"], epilogue_ops=p["epilogue_ops"],
                          n_kernels=p.get("n_kernels"), **homes)
    return cost.reduce(p["present"]) if ragged else cost

