"""Execution mapping: which engine and format path runs a kernel.

The math runs natively in one type Y that both operands reach: as themselves, through the
profile's fallback rule (`execute_as` at `convert_ops_per_element` vector ops on
`convert_dtype`, then default widening from `execute_as` if Y is wider), or, for a type
without a rule, by default widening in registers (WIDEN: the cheapest chain of
elementary conversions into a type that holds the value exactly, on the fastest
floating-point vector engine: `default_convert_dtype`). A profile's `weight_only`
kernels (dedicated packed-weight kernels) and ternary/binary engines (WEIGHT_ENGINES)
add candidates. Every such Y is a candidate (`exec_options`, dominated ones dropped) and
each kernel takes the one with the least time for its shape (`cheapest`): a
compute-bound GEMM may prefer a faster engine, a memory-bound one the cheapest
conversion. Where the default chain from a type to its rule's target is no dearer than
the rule (true of every shipped rule), declaring that type native never raises a
kernel's time: every path of the old profile stays available at no higher cost
(tests/test_cost_properties.py). Attention runs at the profile's `attention` rule where
it has one (`attention_rule`), else as a GEMM of its operand types.
"""
from __future__ import annotations

import functools
import heapq
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from precsim.simulator.errors import InputError
from precsim.simulator.hardware import (DEFAULT_HALF_OPS, ExecPlan, Hardware, vector_dtype,
                                        vector_rate_energy)
from precsim.simulator.profiles import HardwareProfile
from precsim.simulator.quant import DTYPE_BITS, FLOAT_DTYPES
from precsim.simulator.roofline import EXTENSIVE_FIELDS, KernelCost

#: Vector ops of the elementary in-register conversions used when the profile gives no
#: rule (a longer conversion is the cheapest chain of them; WIDEN): sub-byte to float
#: (shift, mask, convert, scale) 4, the h100-sxm int4 rule; byte to float (convert,
#: scale) 2; sub-byte integer to a wider integer (shift, mask/sign-extend) 2, the l4,
#: snapdragon-8-gen3 and ternary-accel int4 rules; ternary/binary codes to integers
#: (shift, mask, offset) 3, the GPU profiles' ternary rules; a 16-bit float to fp32, or
#: fp8_e5m2 (the upper byte of an fp16) to fp16, one shift or convert (DEFAULT_HALF_OPS,
#: simulator.hardware). Each is at most the shipped rules' figure for the same conversion.
DEFAULT_CONVERT_OPS_SUBBYTE = 4.0
DEFAULT_CONVERT_OPS = 2.0
DEFAULT_UNPACK_OPS = 2.0
DEFAULT_CODE_OPS = 3.0

_TO_FLOAT = (("fp16", DEFAULT_CONVERT_OPS_SUBBYTE), ("bf16", DEFAULT_CONVERT_OPS_SUBBYTE),
             ("fp32", DEFAULT_CONVERT_OPS_SUBBYTE))
#: Elementary conversions into types that hold every value exactly: (dtype, vector ops
#: per element). bf16 <-> fp16 are substituted at load time; 2 x an e2m1 value is an
#: integer in [-12, 12], exact in int8 with the 1/2 folded into the scale (unpack +
#: 16-entry look-up).
WIDEN: dict[str, tuple[tuple[str, float], ...]] = {
    "bf16": (("fp16", 0.0), ("fp32", DEFAULT_HALF_OPS)),
    "fp16": (("bf16", 0.0), ("fp32", DEFAULT_HALF_OPS)),
    "tf32": (("fp32", 0.0),),
    "fp32": (),
    "fp8_e4m3": (("fp16", DEFAULT_CONVERT_OPS), ("bf16", DEFAULT_CONVERT_OPS),
                 ("fp32", DEFAULT_CONVERT_OPS)),
    "fp8_e5m2": (("fp16", DEFAULT_HALF_OPS), ("bf16", DEFAULT_CONVERT_OPS),
                 ("fp32", DEFAULT_CONVERT_OPS)),
    "fp4_e2m1": (("fp8_e4m3", DEFAULT_CONVERT_OPS_SUBBYTE), ("int8", DEFAULT_UNPACK_OPS))
    + _TO_FLOAT,
    "int8": (("fp16", DEFAULT_CONVERT_OPS), ("bf16", DEFAULT_CONVERT_OPS),
             ("fp32", DEFAULT_CONVERT_OPS)),
    **{f"int{b}": (("int8", DEFAULT_UNPACK_OPS),) + _TO_FLOAT for b in (4, 5, 6, 7)},
    **{f"int{b}": (("int4", DEFAULT_UNPACK_OPS), ("int8", DEFAULT_UNPACK_OPS)) + _TO_FLOAT
       for b in (2, 3)},
    **{d: (("int4", DEFAULT_CODE_OPS), ("int8", DEFAULT_CODE_OPS)) + _TO_FLOAT
       for d in ("ternary", "binary")},
}

#: Engines named after their weight type that multiply integer activations directly
#: (BitNet-style ternary/binary arrays: int8 activation x {-1, 0, +1} = add/skip/subtract).
WEIGHT_ENGINES = {"ternary": ("int8", "int4"), "binary": ("int8", "int4")}


def default_convert_dtype(profile: HardwareProfile) -> str:
    """The compute entry running default (rule-less) conversions: the fastest
    floating-point vector entry (lower energy per op on ties), as the profiles' own
    rules convert on packed fp16 where it is faster; else `vector_dtype`."""
    vec = [d for d, s in profile.compute.items()
           if s.engine == "vector" and d in FLOAT_DTYPES]
    if not vec:
        return vector_dtype(profile)
    return max(vec, key=lambda d: (profile.compute[d].achievable_ops_per_s,
                                   -profile.compute[d].energy_per_op_j))


@functools.lru_cache(maxsize=None)
def _default_chains(dtype: str) -> dict[str, tuple[float, int]]:
    """Cheapest chain of WIDEN conversions from `dtype` to every type it reaches:
    {target: (vector ops per element, conversions in the chain)} (Dijkstra)."""
    best: dict[str, tuple[float, int]] = {}
    heap = [(0.0, 0, dtype)]
    while heap:
        ops, steps, node = heapq.heappop(heap)
        if node in best:
            continue
        best[node] = (ops, steps)
        for target, cost in WIDEN.get(node, ()):
            if target not in best:
                heapq.heappush(heap, (ops + cost, steps + 1, target))
    del best[dtype]
    return best


@dataclass(frozen=True)
class _Convert:
    """Converting one element into a native type: ops, seconds, joules, conversions in
    the chain, and whether the profile's fallback rule was used."""

    ops: float
    s: float
    j: float
    steps: int
    rule: bool


def _reachable(profile: HardwareProfile, dtype: str) -> dict[str, _Convert]:
    """Native types an element of `dtype` can be computed in, at the cheapest cost.

    A native type as itself; a type with a fallback rule through the rule to its
    `execute_as`, then by default chains to wider types (the rule replaces the
    defaults for that type); any other type by default chains.
    """
    spec = profile.compute[default_convert_dtype(profile)]
    rate, energy = spec.achievable_ops_per_s, spec.energy_per_op_j

    def chain(ops: float, steps: int, base: _Convert) -> _Convert:
        return _Convert(base.ops + ops, base.s + ops / rate, base.j + ops * energy,
                        base.steps + steps, base.rule)

    rule = profile.fallbacks.get(dtype)
    if rule is not None:
        ops = rule.convert_ops_per_element.value
        cd = profile.compute[rule.convert_dtype]
        start = rule.execute_as
        base = _Convert(ops, ops / cd.achievable_ops_per_s, ops * cd.energy_per_op_j, 1, True)
    else:
        start, base = dtype, _Convert(0.0, 0.0, 0.0, 0, False)
    out = {start: base} if profile.native(start) else {}
    for target, (ops, steps) in _default_chains(start).items():
        if profile.native(target):
            out[target] = chain(ops, steps, base)
    return out


def _check_reachable(profile: HardwareProfile, w_dtype: str, a_dtype: str,
                     w_reach: dict, a_reach: dict, has_weight_only: bool) -> None:
    """InputError naming the first operand type no native type can hold (weights read by
    a `weight_only` kernel need none)."""
    for dtype, reach in ((w_dtype, w_reach), (a_dtype, a_reach)):
        if not reach and not (has_weight_only and dtype == w_dtype):
            raise InputError(f"profile {profile.name} cannot run {dtype}: not native "
                             f"(native: {', '.join(profile.compute)}), no fallback rule "
                             "and no wider native type")


def _activation_reach(a_reach: dict[str, _Convert], y: str) -> _Convert | None:
    """How activations reach native type `y`; a ternary/binary engine (WEIGHT_ENGINES)
    also takes integer activations as they are (the cheapest such type)."""
    ac = a_reach.get(y)
    if ac is None and y in WEIGHT_ENGINES:
        taken = [a_reach[t] for t in WEIGHT_ENGINES[y] if t in a_reach]
        ac = min(taken, key=lambda c: (c.s, c.steps), default=None)
    return ac


def _path(profile: HardwareProfile, w_dtype: str, a_dtype: str, wc: _Convert,
          ac: _Convert) -> str:
    """fallback (a rule is used), native (both operands as they are), mixed (two
    different native types, one converted) or widen (default widening)."""
    if wc.rule or ac.rule:
        return "fallback"
    if wc.steps == ac.steps == 0:
        return "native"
    if w_dtype != a_dtype and profile.native(w_dtype) and profile.native(a_dtype):
        return "mixed"
    return "widen"


def _native_candidates(profile: HardwareProfile, w_dtype: str, a_dtype: str,
                       w_reach: dict, a_reach: dict) -> list[tuple[ExecPlan, int]]:
    """(plan, conversions in both chains) for every native type both operands reach.

    Streaming efficiency and per-call overhead belong to the weights' type where it is
    native (the kernel reading them), whatever the math runs in; else to the execution
    type."""
    weight_spec = profile.compute.get(w_dtype)
    candidates = []
    for y, spec in profile.compute.items():
        wc, ac = w_reach.get(y), _activation_reach(a_reach, y)
        if wc is None or ac is None:
            continue
        reader = weight_spec or spec
        rows, few, wide_rows, wide = reader.gemm_stream_points
        plan = ExecPlan(exec_dtype=y, path=_path(profile, w_dtype, a_dtype, wc, ac),
                        ops_per_s=spec.achievable_ops_per_s,
                        energy_per_op_j=spec.energy_per_op_j, w_convert_ops=wc.ops,
                        w_convert_s=wc.s, w_convert_j=wc.j, a_convert_ops=ac.ops,
                        a_convert_s=ac.s, a_convert_j=ac.j,
                        stream_fraction=reader.stream_fraction_value,
                        gemm_stream_fraction=few, gemm_stream_rows=rows,
                        gemm_stream_wide=wide, gemm_stream_wide_rows=wide_rows,
                        launch_s=reader.launch_s or profile.kernel_launch_s,
                        row_s=reader.row_time_s)
        candidates.append((plan, wc.steps + ac.steps))
    return candidates


def _weight_only_plan(profile: HardwareProfile, a_dtype: str, kernel) -> ExecPlan:
    """The profile's dedicated `weight_only` kernel: it takes the activations as they are
    and hides the weight conversion in its inner loop (energy per op: the kernel's, else
    the activation type's, else the vector type's)."""
    energy = (kernel.energy_per_op.value if kernel.energy_per_op else
              profile.compute[a_dtype].energy_per_op_j if profile.native(a_dtype) else
              profile.compute[vector_dtype(profile)].energy_per_op_j)
    return ExecPlan(exec_dtype=a_dtype, path="weight_only",
                    ops_per_s=kernel.achievable_ops_per_s, energy_per_op_j=energy,
                    w_convert_ops=0.0, w_convert_s=0.0, w_convert_j=0.0, a_convert_ops=0.0,
                    a_convert_s=0.0, a_convert_j=0.0,
                    stream_fraction=kernel.stream_fraction_value,
                    gemm_stream_fraction=kernel.stream_fraction_value,
                    gemm_stream_wide=kernel.stream_fraction_value,
                    launch_s=kernel.launch.value if kernel.launch
                    else profile.kernel_launch_s,
                    row_s=kernel.row_time.value if kernel.row_time else 0.0)


def _undominated(candidates: list[tuple[ExecPlan, int]]) -> tuple[ExecPlan, ...]:
    """Candidates ordered by least conversion time per element pair, then fastest math,
    narrowest type, least energy, fewest conversions; a candidate no faster in math,
    conversion of either operand and execution width than one kept before it is
    dropped (a kernel's time never falls by choosing it)."""
    def speed(p: ExecPlan) -> tuple:
        return (1.0 / p.ops_per_s, p.w_convert_s, p.a_convert_s, DTYPE_BITS[p.exec_dtype],
                1.0 / p.stream_fraction, 1.0 / p.gemm_stream_fraction,
                1.0 / p.gemm_stream_wide)

    ordered = sorted(candidates, key=lambda c: (c[0].w_convert_s + c[0].a_convert_s,
                                                1.0 / c[0].ops_per_s,
                                                DTYPE_BITS[c[0].exec_dtype],
                                                c[0].energy_per_op_j + c[0].w_convert_j
                                                + c[0].a_convert_j, c[1]))
    kept: list[ExecPlan] = []
    for plan, _ in ordered:
        if not any(all(a <= b for a, b in zip(speed(k), speed(plan))) for k in kept):
            kept.append(plan)
    return tuple(kept)


def exec_options(profile: HardwareProfile, w_dtype: str, a_dtype: str
                 ) -> tuple[ExecPlan, ...]:
    """Every way the pair can run, preferred first, none dominated by another.

    A candidate is a native type Y both operands reach (`_reachable`,
    `_native_candidates`), plus the profile's `weight_only` kernel for the weight type
    with floating-point activations (the only option where it is `exclusive`). Order and
    dominance: `_undominated`. path: native, fallback, mixed, widen (`_path`) or
    weight_only.
    """
    w_reach, a_reach = _reachable(profile, w_dtype), _reachable(profile, a_dtype)
    weight_only = profile.weight_only.get(w_dtype) if a_dtype in FLOAT_DTYPES else None
    _check_reachable(profile, w_dtype, a_dtype, w_reach, a_reach, weight_only is not None)
    candidates = _native_candidates(profile, w_dtype, a_dtype, w_reach, a_reach)
    if weight_only is not None:
        plan = _weight_only_plan(profile, a_dtype, weight_only)
        if weight_only.exclusive:
            return (plan,)
        candidates.append((plan, 0))
    if not candidates:
        raise InputError(f"profile {profile.name} cannot run {w_dtype} weights with "
                         f"{a_dtype} activations: no native type holds both (native: "
                         f"{', '.join(profile.compute)})")
    return _undominated(candidates)


def resolve_exec(profile: HardwareProfile, w_dtype: str, a_dtype: str) -> ExecPlan:
    """The preferred way the pair runs (`exec_options`' first: least conversion time);
    kernels choose among all the options by their own time."""
    return exec_options(profile, w_dtype, a_dtype)[0]


#: Numeric ExecPlan fields of a plan dict (`plan_options`; with exec_dtype, exec_path).
_PLAN_FIELDS = ("ops_per_s", "energy_per_op_j", "w_convert_ops", "w_convert_s",
               "w_convert_j", "a_convert_ops", "a_convert_s", "a_convert_j",
               "stream_fraction", "gemm_stream_fraction", "gemm_stream_rows",
               "gemm_stream_wide", "gemm_stream_wide_rows", "launch_s", "row_s")


def gemm_stream_share(plan: dict, m):
    """Stream fraction of a matrix kernel with m > 1 activation rows: f0 =
    `gemm_stream_fraction` measured with r0 rows, f1 = `gemm_stream_wide` with r1 > r0
    rows, f0 + (f1 - f0) clip(ln(m / r0) / ln(r1 / r0), 0, 1): linear in log(rows)
    between the two calibrated row counts, flat outside them; f0 where r1 = r0 (no
    `gemm_stream_wide` in the profile)."""
    r0, r1, f0 = plan["gemm_stream_rows"], plan["gemm_stream_wide_rows"], \
        plan["gemm_stream_fraction"]
    if r1 == r0 if isinstance(r0, float) else np.all(np.asarray(r1) == r0):
        return f0
    span = np.where(np.asarray(r1) > r0, np.log(np.maximum(r1, r0) / r0), 1.0)
    t = np.clip(np.log(np.maximum(np.asarray(m, dtype=float), 1.0) / r0) / span, 0.0, 1.0)
    return f0 + np.where(np.asarray(r1) > r0, t, 0.0) * (plan["gemm_stream_wide"] - f0)


def _plan_dict(plan: ExecPlan) -> dict:
    out = {f: getattr(plan, f) for f in _PLAN_FIELDS}
    out["exec_dtype"], out["exec_path"] = plan.exec_dtype, plan.path
    return out


def _options(hw: Hardware, profile: HardwareProfile, w_dtype: str, a_dtype: str
             ) -> tuple[ExecPlan, ...]:
    """`exec_options(profile, w_dtype, a_dtype)`, memoised in `hw.exec_cache`."""
    key = (id(profile), w_dtype, a_dtype)
    if key not in hw.exec_cache:
        hw.exec_cache[key] = exec_options(profile, w_dtype, a_dtype)
    return hw.exec_cache[key]


def plan_options(hw: Hardware, w_dtype, a_dtype) -> list[dict]:
    """The ExecPlan options as dicts of arrays over broadcast(profiles, w_dtype,
    a_dtype): option i of every element (an element with fewer options repeats its
    first, which changes no minimum)."""
    if hw.is_single and isinstance(w_dtype, str) and isinstance(a_dtype, str):
        key = ("plan_dicts", w_dtype, a_dtype)  # memoised; each call gets its own dicts
        if key not in hw.exec_cache:
            hw.exec_cache[key] = [_plan_dict(p) for p in _options(hw, hw.profiles[()],
                                                                  w_dtype, a_dtype)]
        return [dict(d) for d in hw.exec_cache[key]]
    profiles, wd, ad = np.broadcast_arrays(hw.profiles, np.asarray(w_dtype, dtype=object),
                                           np.asarray(a_dtype, dtype=object))
    per = {idx: _options(hw, profiles[idx], wd[idx], ad[idx])
           for idx in np.ndindex(profiles.shape)}
    out = []
    for i in range(max(len(v) for v in per.values())):
        d = {f: np.empty(profiles.shape) for f in _PLAN_FIELDS}
        d["exec_dtype"] = np.empty(profiles.shape, dtype=object)
        d["exec_path"] = np.empty(profiles.shape, dtype=object)
        for idx, opts in per.items():
            for key, value in _plan_dict(opts[i] if i < len(opts) else opts[0]).items():
                d[key][idx] = value
        out.append(d)
    return out


def _least(times: Sequence, *fields: Sequence) -> list:
    """For each list in `fields` (one value per option), the value of the option with the
    least time element-wise (the first on ties)."""
    if len(times) == 1:
        return [f[0] for f in fields]
    t = np.stack(np.broadcast_arrays(*[np.asarray(x, dtype=float) for x in times]))
    best = np.argmin(t, axis=0)
    if np.all(best == best.flat[0]):
        i = int(best.flat[0])
        return [f[i] for f in fields]

    def pick(values):
        labels = any(np.asarray(v).dtype.kind in "OUS" for v in values)
        arrs = np.broadcast_arrays(best, *[np.asarray(v, dtype=object if labels else None)
                                          for v in values])
        return np.take_along_axis(np.stack(arrs[1:]), arrs[0][None], axis=0)[0]
    return [pick(f) for f in fields]


def cheapest(costs: Sequence[KernelCost]) -> KernelCost:
    """Element-wise the option with the least time (`_least`)."""
    if len(costs) == 1:
        return costs[0]
    names = EXTENSIVE_FIELDS + ("exec_dtype", "exec_path")
    levels = list(costs[0].bytes_moved)
    picked = _least([c.time_s for c in costs],
                    *[[getattr(c, n) for c in costs] for n in names],
                    *[[c.bytes_moved[k] for c in costs] for k in levels])
    kw = dict(zip(names, picked))
    kw["bytes_moved"] = dict(zip(levels, picked[len(names):]))
    return replace(costs[0], **kw)


# ---- attention ---------------------------------------------------------------------------

def pick_plan(cond, if_true: dict, if_false: dict) -> dict:
    """Execution-plan fields chosen element-wise (`cond` scalar or array)."""
    if np.all(cond):
        return if_true
    if not np.any(cond):
        return if_false
    out = {}
    for key in set(if_true) | set(if_false):
        a, b = if_true[key], if_false[key]
        if key in ("exec_dtype", "exec_path"):
            a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
        out[key] = np.where(cond, a, b)
    return out


def attention_tiles(p: HardwareProfile, kv_dtype: str, sdt: str, q_len: float):
    """The profile's `attention.tiles` entry that runs this attention (K/V and stream of
    its type, at least its `min_queries` query rows, default 2), else None."""
    tiles = (p.attention.tiles or {}).get(sdt) if p.attention is not None else None
    if tiles is None or kv_dtype != sdt:
        return None
    return tiles if q_len >= (tiles.min_queries.value if tiles.min_queries else 2.0) else None


def _attention_rule_fields(p: HardwareProfile, kv_dtype: str, sdt: str,
                           q_len: float = 1.0) -> tuple[dict, tuple]:
    """Plan fields and (exec dtype, has rule, skips masked, shares K/V) of one profile's
    attention rule for one KV type, stream type and query length (`attention_rule`)."""
    rule = p.attention
    fields = {"ops_per_s": 1.0, "stream_fraction": 1.0, "launch_s": p.kernel_launch_s,
              "output_ops": 0.0}
    if rule is None:
        return fields, ("none", False, True, True)
    if rule.launch:
        fields["launch_s"] = rule.launch.value
    if rule.stream_fraction:
        fields["stream_fraction"] = rule.stream_fraction.value
    tiles = attention_tiles(p, kv_dtype, sdt, q_len)
    execute_as = rule.execute_as if tiles is None else sdt
    spec = p.compute[execute_as]
    peak = rule.peak if tiles is None else tiles.peak
    fields["ops_per_s"] = peak.value if peak else spec.achievable_ops_per_s
    per_out = rule.output_ops_per_element if tiles is None or not tiles.output_ops_per_element \
        else tiles.output_ops_per_element
    fields["output_ops"] = per_out.value if per_out else 0.0
    fields["energy_per_op_j"] = spec.energy_per_op_j
    ops = rule.convert_ops_per_element.value if rule.convert_ops_per_element else 0.0
    rate, energy = vector_rate_energy(p)
    for operand, dtype in (("w", kv_dtype), ("a", sdt)):
        n = 0.0 if dtype == execute_as else ops
        fields.update({f"{operand}_convert_ops": n, f"{operand}_convert_s": n / rate,
                       f"{operand}_convert_j": n * energy})
    return fields, (execute_as, True, rule.skips_masked, rule.shares_kv)


def attention_rule(hw: Hardware, kv_dtype, sdt, q_len=1.0):
    """(has_rule, skips_masked, shares_kv, plan) from the profiles' `attention` rules,
    element-wise over broadcast(profiles, KV dtype, stream dtype, q_len); None when no
    profile has one.
    The plan runs at the rule's rate; the cached K/V (plan's weight operand) and the
    fresh Q/K/V (activation operand) convert at the rule's ops per element where their
    type is not `execute_as`, at the element-wise rate; where the rule's `tiles` cover
    the type and the prompt (`attention_tiles`), in that type at the tiles' peak. The
    plan's "output_ops": the rule's (or tiles') vector ops per output element."""
    flat = hw.profiles.reshape(-1) if hw.profiles.ndim else [hw.profiles[()]]
    if all(p.attention is None for p in flat):
        return None
    profiles, kd, ad, ql = np.broadcast_arrays(hw.profiles, np.asarray(kv_dtype, dtype=object),
                                               np.asarray(sdt, dtype=object),
                                               np.asarray(q_len, dtype=float))
    shape = profiles.shape
    out = {f: np.zeros(shape) for f in (*_PLAN_FIELDS, "output_ops")}
    has, skips = np.zeros(shape, dtype=bool), np.ones(shape, dtype=bool)
    shares = np.ones(shape, dtype=bool)
    exec_dtype = np.empty(shape, dtype=object)
    memo: dict = {}  # one evaluation per distinct (profile, KV type, stream type)
    for idx in np.ndindex(shape):
        p, key = profiles[idx], (id(profiles[idx]), kd[idx], ad[idx], ql[idx])
        if key not in memo:
            memo[key] = _attention_rule_fields(p, kd[idx], ad[idx], ql[idx])
        fields, flags = memo[key]
        for name, value in fields.items():
            out[name][idx] = value
        exec_dtype[idx], has[idx], skips[idx], shares[idx] = flags
    if not shape:
        out = {k: float(v) for k, v in out.items()}
        exec_dtype, has, skips, shares = exec_dtype[()], bool(has), bool(skips), bool(shares)
    out["exec_dtype"], out["exec_path"] = exec_dtype, "attention_rule"
    return has, skips, shares, out
