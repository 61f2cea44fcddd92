"""Kernel-level cost: operations, bytes per memory level, execution dtype, time, energy.

Every function is vectorised: shapes, batch sizes and lengths may be numpy arrays, the
format may be an object array of QuantFormats and the profile an object array of
HardwareProfiles; results broadcast (numpy rules).

Model (one kernel):
* Execution dtype: the math runs natively in one type Y that both operands reach: as
  themselves, through the profile's fallback rule (`execute_as` at
  `convert_ops_per_element` vector ops on `convert_dtype`, then default widening from
  `execute_as` if Y is wider), or, for a type without a rule, by default widening in
  registers (WIDEN: the cheapest chain of elementary conversions into a type that holds
  the value exactly, on the fastest floating-point vector engine:
  `default_convert_dtype`).
  Every such Y is a candidate (`exec_options`, dominated ones dropped) and each kernel
  takes the one with the least time for its shape (`_cheapest`): a compute-bound GEMM
  may prefer a faster engine, a memory-bound one the cheapest conversion. Where the
  default chain from a type to its rule's target is no dearer than the rule (true of
  every shipped rule), declaring that type native never raises a kernel's time: every
  path of the old profile stays available at no higher cost
  (tests/test_cost_properties.py).
* Bytes per level: an operand lives at a "home" level (weights in main memory unless the
  model stays resident on chip; an activation at the nearest level that holds it) and
  crosses every level between home and the engine. Across the boundary below level j
  a GEMM is blocked output-stationary with a tm x tn tile whose fp32 accumulators fill
  the usable share (STAGING_FRACTION) of the staging level (level j-1; level 0 stages for
  itself, each staged byte being consumed once, as wgmma reads operands from shared
  memory): weights are re-read max(1, m/tm) times, activations max(1, n/tn) times. When
  the whole problem fits, traffic is compulsory (each operand once).
* Time: t = max(t_math, t_mem) + (1 - overlap) min(t_math, t_mem) + t_convert
  + kernels * launch + n * row_time, with t_math = matrix ops / achievable(exec dtype)
  + vector ops / vector rate (the engines share the SMs' issue slots), t_mem =
  max_j bytes_j / (achievable_bw_j * stream_fraction) and t_convert = conversion ops /
  achievable(convert dtype). The optional profile fields default to the roofline:
  `overheads.matmul_overlap` 1 (memory transfers hidden under math; CPU BLAS adds them),
  `compute.<weight type>.stream_fraction` 1 (a CPU's one-token matmuls stream weights at
  a fraction of its STREAM bandwidth; `.gemm_stream_fraction` for more than one
  activation row, where MKL's sgemm packs the weight panel),
  `compute.<weight type>.launch` and `.row_time` (per-call overhead; a one-row GEMV's
  per-output-row reduction), `vector.rate` (element-wise work; default the vector
  dtype's GEMM rate), `weight_only` (dedicated packed-weight kernels) and `attention`
  (how the attention kernel runs when it differs from the GEMMs); docs/validation.md
  says what measured each on the CPU host. Conversion is not hidden behind the memory
  stream: dequantising a tile sits between its arrival and its use. This is what weight-only kernels measure: on an
  A100-80GB gpt-fast decodes Llama-2-7B at 104.9 (bf16), 155.6 (int8) and 196.8 (int4
  g32) tokens/s (pytorch-labs/gpt-fast README), well below the memory roof of the
  smaller weights; a roofline that hid conversion would predict ~200 and ~300.
* Energy (dynamic): ops * energy_per_op + sum_j bytes_j * energy_per_byte_j; the board's
  idle/active baseline, cap and throttling are added by simulator.power.
"""
from __future__ import annotations

import functools
import heapq
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from precsim.simulator.errors import InputError
from precsim.simulator.profiles import PROFILE_PATH_ENV, HardwareProfile, load_profile
from precsim.simulator.quant import DTYPE_BITS, FLOAT_DTYPES, QuantFormat, parse_quant

#: Share of a level's capacity a kernel can use for its tile or a tensor for residency
#: (the rest: double buffering, other live data). Assumption, no vendor figure.
STAGING_FRACTION = 0.5
#: Bytes per output-tile accumulator (fp32 / int32 accumulate).
ACC_BYTES = 4.0
#: Vector ops of the elementary in-register conversions used when the profile gives no
#: rule (a longer conversion is the cheapest chain of them; WIDEN): sub-byte to float
#: (shift, mask, convert, scale) 4, the h100-sxm int4 rule; byte to float (convert,
#: scale) 2; sub-byte integer to a wider integer (shift, mask/sign-extend) 2, the l4,
#: snapdragon-8-gen3 and ternary-accel int4 rules; ternary/binary codes to integers
#: (shift, mask, offset) 3, the GPU profiles' ternary rules; a 16-bit float to fp32, or
#: fp8_e5m2 (the upper byte of an fp16) to fp16, one shift or convert. Each is at most the
#: shipped rules' figure for the same conversion.
DEFAULT_CONVERT_OPS_SUBBYTE = 4.0
DEFAULT_CONVERT_OPS = 2.0
DEFAULT_UNPACK_OPS = 2.0
DEFAULT_CODE_OPS = 3.0
DEFAULT_HALF_OPS = 1.0
#: Vector ops per element: quantise an activation (abs-max, scale, round+convert).
QUANTIZE_OPS = 3.0
#: Vector ops per attention score: scale, running max, exp, running sum, rescale.
SOFTMAX_OPS = 5.0

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


# ---- hardware, packed as arrays ------------------------------------------------------------

@dataclass(frozen=True)
class ExecPlan:
    """One way a (weight dtype, activation dtype) pair runs on one profile: the native
    type the math runs in and the conversion cost of each operand element."""

    exec_dtype: str
    path: str  # native | fallback | widen | mixed | weight_only
    ops_per_s: float
    energy_per_op_j: float
    w_convert_ops: float
    w_convert_s: float  # seconds per converted weight element
    w_convert_j: float
    a_convert_ops: float
    a_convert_s: float
    a_convert_j: float
    #: share of each level's achievable bandwidth the kernel streams operands at
    stream_fraction: float = 1.0
    #: the same for matrix kernels with more than one activation row
    gemm_stream_fraction: float = 1.0
    #: per-call overhead of the kernel (the type's `launch`, else the profile's)
    launch_s: float = 0.0
    #: time per weight row (output feature) per one-row call (the type's `row_time`)
    row_s: float = 0.0


@dataclass(frozen=True, eq=False)
class Hardware:
    """One profile or an array of profiles as broadcastable numeric arrays.

    Levels are aligned from main memory backwards; profiles with fewer levels get
    virtual near levels (capacity of their nearest level, no time, no energy).
    """

    profiles: np.ndarray
    level_names: tuple[str, ...]
    capacity_bytes: tuple
    bandwidth_bytes_per_s: tuple  # achievable (peak x fraction)
    energy_per_byte_j: tuple
    persistent: tuple  # data stays there between kernels
    scratchpad: tuple  # software-managed SRAM (tensors placed, not cached)
    launch_s: object
    vector_ops_per_s: object
    vector_energy_per_op_j: object
    matmul_overlap: object = 1.0
    vector_bits: object = 32.0
    widen_ops: object = 1.0
    _plans: dict = field(default_factory=dict, repr=False)

    @property
    def n_levels(self) -> int:
        return len(self.level_names)

    @property
    def main(self) -> int:
        return self.n_levels - 1

    @property
    def main_capacity_bytes(self):
        return self.capacity_bytes[-1]

    @property
    def is_single(self) -> bool:
        return self.profiles.ndim == 0

    def usable(self, level: int):
        return STAGING_FRACTION * self.capacity_bytes[level]

    def options(self, profile: HardwareProfile, w_dtype: str, a_dtype: str
                ) -> tuple[ExecPlan, ...]:
        """`exec_options(profile, w_dtype, a_dtype)`, memoised."""
        key = (id(profile), w_dtype, a_dtype)
        if key not in self._plans:
            self._plans[key] = exec_options(profile, w_dtype, a_dtype)
        return self._plans[key]

    def plan(self, profile: HardwareProfile, w_dtype: str, a_dtype: str) -> ExecPlan:
        """The preferred execution plan (`resolve_exec`)."""
        return self.options(profile, w_dtype, a_dtype)[0]

    def expand(self) -> Hardware:
        """The same hardware with a trailing length-1 axis on every array."""
        if self.is_single:
            return self
        def ex(a):
            return np.asarray(a)[..., None]
        return replace(self, profiles=self.profiles[..., None],
                       capacity_bytes=tuple(map(ex, self.capacity_bytes)),
                       bandwidth_bytes_per_s=tuple(map(ex, self.bandwidth_bytes_per_s)),
                       energy_per_byte_j=tuple(map(ex, self.energy_per_byte_j)),
                       persistent=tuple(map(ex, self.persistent)),
                       scratchpad=tuple(map(ex, self.scratchpad)),
                       launch_s=ex(self.launch_s),
                       vector_ops_per_s=ex(self.vector_ops_per_s),
                       vector_energy_per_op_j=ex(self.vector_energy_per_op_j),
                       matmul_overlap=ex(self.matmul_overlap),
                       vector_bits=ex(self.vector_bits), widen_ops=ex(self.widen_ops),
                       _plans={})


def vector_dtype(profile: HardwareProfile) -> str:
    """The compute entry that runs element-wise work (norms, softmax, conversions)."""
    for dtype in ("fp32", "fp16", "bf16"):
        spec = profile.compute.get(dtype)
        if spec is not None and spec.engine == "vector":
            return dtype
    for dtype, spec in profile.compute.items():
        if spec.engine == "vector":
            return dtype
    for dtype in ("fp32", "fp16", "bf16"):
        if dtype in profile.compute:
            return dtype
    return next(iter(profile.compute))


def _persistent(profile: HardwareProfile, level) -> bool:
    """The level's `persistent` field when the profile gives it; otherwise caches keep
    data between kernels, GPU shared memory (sram) is per-kernel scratch, and an
    accelerator's or SoC's SRAM is compiler-managed storage that persists."""
    if level.persistent is not None:
        return level.persistent
    kind = level.kind
    return kind in ("cache", "dram") or (kind == "sram" and profile.kind != "gpu")


def _vector_rate_energy(p: HardwareProfile) -> tuple[float, float]:
    """Element-wise (ops/s, J/op): the profile's `vector` block where given, else the
    vector data type's GEMM entry."""
    spec = p.compute[vector_dtype(p)]
    rate = p.vector.rate.value if p.vector else spec.achievable_ops_per_s
    energy = (p.vector.energy_per_op.value if p.vector and p.vector.energy_per_op
              else spec.energy_per_op_j)
    return rate, energy


_LOADED: dict = {}


def _load(profile) -> HardwareProfile:
    """load_profile, memoised for names while the profile's file is unchanged."""
    if not isinstance(profile, str):
        return load_profile(profile)
    key = (profile, os.environ.get(PROFILE_PATH_ENV, ""))
    hit = _LOADED.get(key)
    if hit is not None:
        loaded, path, stamp = hit
        try:
            if path and os.stat(path).st_mtime_ns == stamp:
                return loaded
        except OSError:
            pass
    loaded = load_profile(profile)
    path = loaded.path if loaded.path and os.path.isfile(loaded.path) else None
    _LOADED[key] = (loaded, path, os.stat(path).st_mtime_ns if path else None)
    return loaded


def as_hardware(profile) -> Hardware:
    """Pack a profile, a profile name, or a sequence / object array of them."""
    if isinstance(profile, Hardware):
        return profile
    if isinstance(profile, (HardwareProfile, str)):
        arr = np.empty((), dtype=object)
        arr[()] = _load(profile)
    else:
        src = np.asarray(profile, dtype=object) if not isinstance(profile, np.ndarray) \
            else profile
        if src.size == 0:
            raise InputError("no hardware profile given")
        arr = np.empty(src.shape, dtype=object)
        for idx in np.ndindex(src.shape):
            arr[idx] = _load(src[idx])
    flat = list(arr.reshape(-1))
    depth = max(len(p.memory) for p in flat)
    first = flat[0]
    same_names = all([lv.name for lv in p.memory] == [lv.name for lv in first.memory]
                     for p in flat)
    if same_names:
        names = tuple(lv.name for lv in first.memory)
    else:
        names = tuple(f"level{i}" for i in range(depth - 1)) + ("main",)

    def per_profile(fn):
        vals = np.array([fn(p) for p in flat], dtype=float).reshape(arr.shape)
        return vals if arr.ndim else float(vals)

    def level_attr(p: HardwareProfile, i: int, attr: str):
        pad = depth - len(p.memory)
        if i >= pad:
            lv = p.memory[i - pad]
            return {"cap": lv.capacity_bytes, "bw": lv.achievable_bandwidth_bytes_per_s,
                    "e": lv.energy_per_byte_j, "persist": _persistent(p, lv),
                    "scratch": lv.kind == "sram"}[attr]
        lv = p.memory[0]
        return {"cap": lv.capacity_bytes, "bw": np.inf, "e": 0.0, "persist": False,
                "scratch": False}[attr]

    def vec(p: HardwareProfile, what: str) -> float:
        return _vector_rate_energy(p)[0 if what == "rate" else 1]

    return Hardware(
        profiles=arr, level_names=names,
        capacity_bytes=tuple(per_profile(lambda p, i=i: level_attr(p, i, "cap"))
                             for i in range(depth)),
        bandwidth_bytes_per_s=tuple(per_profile(lambda p, i=i: level_attr(p, i, "bw"))
                                    for i in range(depth)),
        energy_per_byte_j=tuple(per_profile(lambda p, i=i: level_attr(p, i, "e"))
                                for i in range(depth)),
        persistent=tuple(per_profile(lambda p, i=i: level_attr(p, i, "persist")) > 0
                         for i in range(depth)),
        scratchpad=tuple(per_profile(lambda p, i=i: level_attr(p, i, "scratch")) > 0
                         for i in range(depth)),
        launch_s=per_profile(lambda p: p.kernel_launch_s),
        vector_ops_per_s=per_profile(lambda p: vec(p, "rate")),
        vector_energy_per_op_j=per_profile(lambda p: vec(p, "e")),
        matmul_overlap=per_profile(lambda p: p.overheads.matmul_overlap_value),
        vector_bits=per_profile(lambda p: DTYPE_BITS[vector_dtype(p)]),
        widen_ops=per_profile(lambda p: p.vector.widen_ops_per_element.value
                              if p.vector and p.vector.widen_ops_per_element
                              else DEFAULT_HALF_OPS))


# ---- execution dtype -------------------------------------------------------------------

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


def exec_options(profile: HardwareProfile, w_dtype: str, a_dtype: str
                 ) -> tuple[ExecPlan, ...]:
    """Every way the pair can run, preferred first, none dominated by another.

    A candidate is a native type Y both operands reach (`_reachable`); a ternary/binary
    engine (WEIGHT_ENGINES) also takes integer activations as they are. Candidates no
    faster in math, conversion of either operand and execution width than another are
    dropped (a kernel's time never falls by choosing them). Order: least conversion
    time per element pair, then fastest math, narrowest type, least energy, fewest
    conversions. path: native (both operands as they are), fallback (a rule is used),
    mixed (two different native types, one converted), widen (default widening).
    """
    w_reach, a_reach = _reachable(profile, w_dtype), _reachable(profile, a_dtype)
    weight_only = profile.weight_only.get(w_dtype) if a_dtype in FLOAT_DTYPES else None
    for dtype, reach in ((w_dtype, w_reach), (a_dtype, a_reach)):
        if not reach and not (weight_only is not None and dtype == w_dtype):
            raise InputError(f"profile {profile.name} cannot run {dtype}: not native "
                             f"(native: {', '.join(profile.compute)}), no fallback rule "
                             "and no wider native type")
    # streaming efficiency and per-call overhead belong to the weights' type where it is
    # native (the kernel reading them), whatever the math runs in; else to the
    # execution type
    weight_spec = profile.compute.get(w_dtype)
    candidates = []
    for y, spec in profile.compute.items():
        stream_fraction = (weight_spec or spec).stream_fraction_value
        gemm_stream_fraction = (weight_spec or spec).gemm_stream_fraction_value
        wc = w_reach.get(y)
        ac = a_reach.get(y)
        if wc is not None and ac is None and y in WEIGHT_ENGINES:
            taken = [a_reach[t] for t in WEIGHT_ENGINES[y] if t in a_reach]
            ac = min(taken, key=lambda c: (c.s, c.steps), default=None)
        if wc is None or ac is None:
            continue
        if wc.rule or ac.rule:
            path = "fallback"
        elif wc.steps == ac.steps == 0:
            path = "native"
        elif w_dtype != a_dtype and profile.native(w_dtype) and profile.native(a_dtype):
            path = "mixed"
        else:
            path = "widen"
        plan = ExecPlan(exec_dtype=y, path=path, ops_per_s=spec.achievable_ops_per_s,
                        energy_per_op_j=spec.energy_per_op_j, w_convert_ops=wc.ops,
                        w_convert_s=wc.s, w_convert_j=wc.j, a_convert_ops=ac.ops,
                        a_convert_s=ac.s, a_convert_j=ac.j,
                        stream_fraction=stream_fraction,
                        gemm_stream_fraction=gemm_stream_fraction,
                        launch_s=(weight_spec or spec).launch_s or profile.kernel_launch_s,
                        row_s=(weight_spec or spec).row_time_s)
        candidates.append((plan, wc.steps + ac.steps))
    if weight_only is not None:
        # the dedicated kernel takes the activations as they are and hides the weight
        # conversion in its inner loop (profile `weight_only`)
        energy = (weight_only.energy_per_op.value if weight_only.energy_per_op else
                  profile.compute[a_dtype].energy_per_op_j if profile.native(a_dtype) else
                  profile.compute[vector_dtype(profile)].energy_per_op_j)
        candidates.append((ExecPlan(
            exec_dtype=a_dtype, path="weight_only",
            ops_per_s=weight_only.achievable_ops_per_s, energy_per_op_j=energy,
            w_convert_ops=0.0, w_convert_s=0.0, w_convert_j=0.0, a_convert_ops=0.0,
            a_convert_s=0.0, a_convert_j=0.0,
            stream_fraction=weight_only.stream_fraction_value,
            gemm_stream_fraction=weight_only.stream_fraction_value,
            launch_s=weight_only.launch.value if weight_only.launch
            else profile.kernel_launch_s), 0))
        if weight_only.exclusive:
            return (candidates[-1][0],)
    if not candidates:
        raise InputError(f"profile {profile.name} cannot run {w_dtype} weights with "
                         f"{a_dtype} activations: no native type holds both (native: "
                         f"{', '.join(profile.compute)})")

    def speed(p: ExecPlan) -> tuple:
        return (1.0 / p.ops_per_s, p.w_convert_s, p.a_convert_s, DTYPE_BITS[p.exec_dtype],
                1.0 / p.stream_fraction, 1.0 / p.gemm_stream_fraction)

    candidates.sort(key=lambda c: (c[0].w_convert_s + c[0].a_convert_s,
                                   1.0 / c[0].ops_per_s, DTYPE_BITS[c[0].exec_dtype],
                                   c[0].energy_per_op_j + c[0].w_convert_j
                                   + c[0].a_convert_j, c[1]))
    kept: list[ExecPlan] = []
    for plan, _ in candidates:
        if not any(all(a <= b for a, b in zip(speed(k), speed(plan))) for k in kept):
            kept.append(plan)
    return tuple(kept)


def resolve_exec(profile: HardwareProfile, w_dtype: str, a_dtype: str) -> ExecPlan:
    """The preferred way the pair runs (`exec_options`' first: least conversion time);
    kernels choose among all the options by their own time."""
    return exec_options(profile, w_dtype, a_dtype)[0]


_PLAN_FIELDS = ("ops_per_s", "energy_per_op_j", "w_convert_ops", "w_convert_s",
                "w_convert_j", "a_convert_ops", "a_convert_s", "a_convert_j",
                "stream_fraction", "gemm_stream_fraction", "launch_s", "row_s")


def _plan_dict(plan: ExecPlan) -> dict:
    out = {f: getattr(plan, f) for f in _PLAN_FIELDS}
    out["exec_dtype"], out["exec_path"] = plan.exec_dtype, plan.path
    return out


def _plan_options(hw: Hardware, w_dtype, a_dtype) -> list[dict]:
    """The ExecPlan options as dicts of arrays over broadcast(profiles, w_dtype,
    a_dtype): option i of every element (an element with fewer options repeats its
    first, which changes no minimum)."""
    if hw.is_single and isinstance(w_dtype, str) and isinstance(a_dtype, str):
        return [_plan_dict(p) for p in hw.options(hw.profiles[()], w_dtype, a_dtype)]
    profiles, wd, ad = np.broadcast_arrays(hw.profiles, np.asarray(w_dtype, dtype=object),
                                           np.asarray(a_dtype, dtype=object))
    per = {idx: hw.options(profiles[idx], wd[idx], ad[idx])
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


def _cheapest(costs: Sequence[KernelCost]) -> KernelCost:
    """Element-wise the option with the least time (`_least`)."""
    if len(costs) == 1:
        return costs[0]
    names = _EXTENSIVE + ("exec_dtype", "exec_path")
    levels = list(costs[0].bytes_moved)
    picked = _least([c.time_s for c in costs],
                    *[[getattr(c, n) for c in costs] for n in names],
                    *[[c.bytes_moved[k] for c in costs] for k in levels])
    kw = dict(zip(names, picked))
    kw["bytes_moved"] = dict(zip(levels, picked[len(names):]))
    return replace(costs[0], **kw)


# ---- formats as arrays ---------------------------------------------------------------------

def as_quant(quant):
    """A QuantFormat, or an object array of them, from specs / formats / sequences."""
    if isinstance(quant, (QuantFormat, str)):
        return parse_quant(quant)
    if isinstance(quant, tuple) and len(quant) == 2 and all(isinstance(q, str) for q in quant) \
            and all(q in DTYPE_BITS for q in quant):
        return QuantFormat.from_dtypes(*quant)
    src = np.asarray(quant, dtype=object) if not isinstance(quant, np.ndarray) else quant
    out = np.empty(src.shape, dtype=object)
    for idx in np.ndindex(src.shape):
        out[idx] = parse_quant(src[idx])
    return out if out.ndim else out[()]


def quant_attr(quant, fn):
    """fn(format) over a QuantFormat or an object array of them (float or object)."""
    if isinstance(quant, QuantFormat):
        return fn(quant)
    vals = [fn(q) for q in quant.reshape(-1)]
    if isinstance(vals[0], (int, float, np.number)) and not isinstance(vals[0], bool):
        return np.array(vals, dtype=float).reshape(quant.shape)
    out = np.empty(quant.shape, dtype=object)
    for idx, val in zip(np.ndindex(quant.shape), vals):
        out[idx] = val
    return out


def group_format(quant, group: str):
    """The format(s) layer group `group` uses (per-group overrides applied)."""
    return quant_attr(as_quant(quant), lambda q: q.for_group(group))


def dtype_bits(dtype):
    """Bits per element of a dtype name or an object array of names."""
    if isinstance(dtype, str):
        return float(DTYPE_BITS[dtype])
    return np.vectorize(lambda d: float(DTYPE_BITS[d]), otypes=[float])(dtype)


def stream_bits(quant):
    """Bits of the unquantised activation stream: 32 for fp32 formats, else 16."""
    return quant_attr(quant, lambda q: 32.0 if q.act_bits >= 32 else 16.0)


def stream_dtype(quant):
    return quant_attr(quant, lambda q: "fp32" if q.act_bits >= 32 else
                      ("fp16" if q.act_dtype == "fp16" else "bf16"))


# ---- the result type -----------------------------------------------------------------------

_EXTENSIVE = ("flops", "vector_ops", "convert_ops", "time_s", "energy_j", "compute_time_s",
              "memory_time_s", "overhead_time_s", "n_kernels", "convert_time_s")


@dataclass(frozen=True, eq=False)
class KernelCost:
    """Cost of one kernel (or a sum of kernels): arrays broadcast over the inputs.

    `flops` are matrix-engine operations in `exec_dtype`; `vector_ops` element-wise work;
    `convert_ops` dequantisation / type conversion and `convert_time_s` the time they
    take (the t_convert term of `time_s`, also inside `compute_time_s`);
    `bytes_moved[level]` read + written at that level. `exec_dtype` / `exec_path`: the
    execution option the kernel chose (`exec_options`): native, fallback (the
    profile's rule), widen (default widening into a wider native type) or mixed
    (operands of two different native types). `bound` is compute, memory or overhead
    (launch gaps dominate).
    """

    flops: object
    vector_ops: object
    convert_ops: object
    bytes_moved: dict
    exec_dtype: object
    exec_path: object
    time_s: object
    energy_j: object
    compute_time_s: object
    memory_time_s: object
    overhead_time_s: object
    n_kernels: object
    convert_time_s: object = 0.0

    @property
    def bound(self):
        roof = np.asarray(self.time_s) - np.asarray(self.overhead_time_s)
        out = np.where(np.asarray(self.overhead_time_s) > roof, "overhead",
                       np.where(np.asarray(self.compute_time_s)
                                >= np.asarray(self.memory_time_s), "compute", "memory"))
        return out[()] if out.ndim == 0 else out

    def scaled(self, factor) -> KernelCost:
        """Every extensive quantity multiplied by `factor` (e.g. number of layers)."""
        kw = {f: np.asarray(getattr(self, f)) * factor for f in _EXTENSIVE}
        kw["bytes_moved"] = {k: np.asarray(v) * factor for k, v in self.bytes_moved.items()}
        return replace(self, **kw)

    def __add__(self, other: KernelCost) -> KernelCost:
        kw = {f: np.asarray(getattr(self, f)) + np.asarray(getattr(other, f))
              for f in _EXTENSIVE}
        kw["bytes_moved"] = {k: np.asarray(v) + np.asarray(other.bytes_moved[k])
                             for k, v in self.bytes_moved.items()}
        return replace(self, **kw)

    def reduce(self, weights, axis: int = -1) -> KernelCost:
        """Weighted sum over `axis` (e.g. decode steps sampled along a trailing axis)."""
        def red(v):
            return np.sum(np.asarray(v) * weights, axis=axis)
        kw = {f: red(getattr(self, f)) for f in _EXTENSIVE}
        kw["bytes_moved"] = {k: red(v) for k, v in self.bytes_moved.items()}
        for name in ("exec_dtype", "exec_path"):
            label = getattr(self, name)
            if isinstance(label, np.ndarray):
                label = np.asarray(np.take(np.broadcast_to(
                    label, np.broadcast(label, weights).shape), 0, axis=axis), dtype=object)
                kw[name] = label[()] if label.ndim == 0 else label
        return replace(self, **kw)

    @property
    def main_memory_bytes(self):
        return list(self.bytes_moved.values())[-1]


def _finish(hw: Hardware, plan: dict, flops, vector_ops, convert_s, convert_j, convert_ops,
            bytes_by_level: Sequence, n_kernels, fixed_s=0.0, stream_bytes=None
            ) -> KernelCost:
    """Time: max(t_math, t_memory) + (1 - overlap) min(t_math, t_memory) + t_convert +
    launches, where overlap is the profile's `matmul_overlap` for kernels with matrix
    ops (1 for element-wise ones) and t_memory uses each level's achievable bandwidth
    times the plan's `stream_fraction` (1 for streaming kernels); launches cost the
    plan's `launch_s` (the profile's kernel_launch for streaming kernels); `fixed_s` is
    further per-call time outside the roofline (a GEMV's per-row reductions)."""
    t_math = flops / plan["ops_per_s"] + vector_ops / hw.vector_ops_per_s
    t_memory = 0.0
    fraction = np.asarray(plan.get("stream_fraction", 1.0), dtype=float)
    if stream_bytes is None:  # every byte at the plan's share of each level's bandwidth
        for b, bw in zip(bytes_by_level, hw.bandwidth_bytes_per_s):
            t_memory = np.maximum(t_memory, b / (bw * fraction))
    else:
        # the stream fraction f (measured from main memory) is the kernel's own cost per
        # streamed byte, in series with the memory: + stream_bytes (1 - f) / (f bw_main),
        # so b / (f bw_main) from main memory and ~bw_main f / (1 - f) from a near level
        # much faster than the kernel (a GEMV reading an L3-resident weight)
        for b, bw in zip(bytes_by_level, hw.bandwidth_bytes_per_s):
            t_memory = np.maximum(t_memory, b / bw)
        t_memory = t_memory + stream_bytes * (1.0 - fraction) \
            / (fraction * hw.bandwidth_bytes_per_s[-1])
    overhead = n_kernels * plan.get("launch_s", hw.launch_s) + fixed_s
    overlap = np.where(np.asarray(flops) > 0, hw.matmul_overlap, 1.0)
    time_s = np.maximum(t_math, t_memory) + (1.0 - overlap) * np.minimum(t_math, t_memory) \
        + convert_s + overhead
    t_compute = t_math + convert_s
    energy = (flops * plan["energy_per_op_j"] + vector_ops * hw.vector_energy_per_op_j
              + convert_j + sum(b * e for b, e in zip(bytes_by_level, hw.energy_per_byte_j)))
    return KernelCost(
        flops=flops, vector_ops=vector_ops, convert_ops=convert_ops,
        bytes_moved=dict(zip(hw.level_names, bytes_by_level)), exec_dtype=plan["exec_dtype"],
        exec_path=plan.get("exec_path", "native"),
        time_s=time_s, energy_j=energy, compute_time_s=t_compute, memory_time_s=t_memory,
        overhead_time_s=overhead, n_kernels=n_kernels, convert_time_s=convert_s)


# ---- placement helpers ---------------------------------------------------------------------

def home_level(hw: Hardware, nbytes, persistent_only: bool = False):
    """Nearest level that holds `nbytes` (main memory otherwise).

    A cache holds data within its usable share (STAGING_FRACTION: LRU eviction by the
    streams passing through); a software-managed SRAM holds its full capacity, as a
    compiler places tensors there. For tensors passed between kernels only levels that
    keep data between kernels count (caches; SRAM off GPUs): `persistent_only`.
    """
    home = np.full(np.broadcast(nbytes, hw.capacity_bytes[0]).shape, hw.main)
    for j in range(hw.main - 1, -1, -1):
        room = np.where(hw.scratchpad[j], hw.capacity_bytes[j], hw.usable(j))
        fits = np.asarray(nbytes) <= room
        if persistent_only:
            fits = fits & np.asarray(hw.persistent[j])
        home = np.where(fits, j, home)
    if home.ndim == 0 or np.all(home == home.flat[0]):
        return int(home.flat[0])  # one level for the whole sweep: keep it scalar
    return home


def chain_hit_share(profile, footprint_bytes, tensor_bytes):
    """Share of the tensors a chain of kernels passes between its kernels that is still
    cached when the next kernel reads it, and the level it is read from.

    The level is the nearest persistent one holding the largest tensor (`home_level`,
    main memory: share 1). A chain cycling through `footprint_bytes` of distinct data
    per call (packed inputs, every temporary, the output) keeps them all while the
    footprint F fits the level's usable share C; an LRU cache on a cyclic access pattern
    keeps none once F exceeds it, and real replacement policies degrade over a range:
    share = clip(2 - F / C, 0, 1), full at F <= C, none from F >= 2C (an assumption,
    checked against PyTorch dequantise-then-matmul chains in docs/validation.md).
    """
    hw = as_hardware(profile)
    home = home_level(hw, tensor_bytes, True)
    if np.ndim(home) != 0:
        raise InputError("chain_hit_share: one hardware profile at a time")
    if home == hw.main:
        return home, 1.0
    share = np.clip(2.0 - np.asarray(footprint_bytes, float) / hw.usable(home), 0.0, 1.0)
    return home, share


def _through(hw: Hardware, home, level: int, nbytes):
    """Bytes seen at `level` for data homed at `home` (crosses every nearer level)."""
    if np.ndim(home) == 0:
        return nbytes if home >= level else 0.0
    return np.where(home >= level, nbytes, 0.0)


def _staging(hw: Hardware, level: int):
    return hw.usable(max(level - 1, 0))


def _tile(m, n, s_a, s_w, capacity):
    """Output tile tm x tn whose accumulators fill `capacity`, minimising re-reads.

    Minimise s_w*k*n*m/tm + s_a*m*k*n/tn subject to tm*tn = T: tm = sqrt(T*s_w/s_a),
    clipped to the problem.
    """
    t = np.maximum(capacity / ACC_BYTES, 1.0)
    tm = np.clip(np.sqrt(t * s_w / s_a), 1.0, m)
    tn = np.clip(t / tm, 1.0, n)
    tm = np.clip(t / tn, 1.0, m)
    return tm, tn


def _check_positive(**values):
    for name, value in values.items():
        arr = np.asarray(value, dtype=float)
        if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
            raise InputError(f"{name} must be positive and finite, got {value!r}")


# ---- kernels -------------------------------------------------------------------------------

def gemm_cost(profile, m, n, k, quant="W16A16", *, group: str = "mlp", weight_home=None,
              act_home=None, out_home=None, out_bits=None,
              fused_dequant: bool = True) -> KernelCost:
    """C[m,n] = A[m,k] @ W[k,n]: GEMM (prefill) or GEMV-like (decode, small m).

    Weight bytes = k*n*effective_weight_bits/8 (+ per-channel scales) when read once;
    activations at the format's effective activation bits; output at `out_bits` (the
    activation stream, 16 bits, by default). `fused_dequant=False` models engines that
    dequantise weights to the execution type in a separate kernel first. Priced for
    every execution option of the pair; the fastest is taken element-wise.
    """
    _check_positive(m=m, n=n, k=k)
    hw = as_hardware(profile)
    fmt = group_format(quant, group)
    w_dtype = quant_attr(fmt, lambda q: q.weight_dtype)
    a_dtype = quant_attr(fmt, lambda q: q.act_dtype)
    s_w = quant_attr(fmt, lambda q: q.effective_weight_bits) / 8.0
    s_a = quant_attr(fmt, lambda q: q.effective_act_bits) / 8.0
    s_o = (stream_bits(fmt) if out_bits is None else out_bits) / 8.0
    channel = n * quant_attr(fmt, lambda q: q.channel_scale_bits) / 8.0
    w_home = hw.main if weight_home is None else weight_home
    a_home = home_level(hw, m * k * s_a, True) if act_home is None else act_home
    o_home = home_level(hw, m * n * s_o, True) if out_home is None else out_home

    def traffic(s_w, channel):
        levels = []
        for j in range(hw.n_levels):
            tm, tn = _tile(m, n, s_a, s_w, _staging(hw, j))
            w_t = (k * n * s_w + channel) * np.maximum(1.0, m / tm)
            a_t = m * k * s_a * np.maximum(1.0, n / tn)
            levels.append(_through(hw, w_home, j, w_t) + _through(hw, a_home, j, a_t)
                          + _through(hw, o_home, j, m * n * s_o))
        tm0, tn0 = _tile(m, n, s_a, s_w, _staging(hw, 0))
        return levels, k * n * np.maximum(1.0, m / tm0), m * k * np.maximum(1.0, n / tn0)

    def priced(plan, levels, w_elems, a_elems, s_weight=s_w):
        # more than one activation row: the library's GEMM path streams at its own share
        plan = dict(plan, stream_fraction=np.where(np.asarray(m) > 1,
                                                   plan["gemm_stream_fraction"],
                                                   plan["stream_fraction"]))
        conv_ops = w_elems * plan["w_convert_ops"] + a_elems * plan["a_convert_ops"]
        conv_s = w_elems * plan["w_convert_s"] + a_elems * plan["a_convert_s"]
        conv_j = w_elems * plan["w_convert_j"] + a_elems * plan["a_convert_j"]
        return _finish(hw, plan, 2.0 * m * n * k, 0.0 * m * n, conv_s, conv_j, conv_ops,
                       levels, 1.0,
                       fixed_s=np.where(np.asarray(m) > 1, 0.0, n * plan["row_s"]),
                       stream_bytes=k * n * s_weight + channel)

    options = _plan_options(hw, w_dtype, a_dtype)
    if fused_dequant:
        fused = traffic(s_w, channel)
        return _cheapest([priced(plan, *fused) for plan in options])
    costs = []
    for plan in options:
        needs = np.asarray(plan["w_convert_ops"]) > 0
        pre = _dequant(hw, k * n, fmt, plan, weight_home).scaled(needs)
        plan = dict(plan, w_convert_ops=np.where(needs, 0.0, plan["w_convert_ops"]),
                    w_convert_s=np.where(needs, 0.0, plan["w_convert_s"]),
                    w_convert_j=np.where(needs, 0.0, plan["w_convert_j"]))
        s_exec = np.where(needs, dtype_bits(plan["exec_dtype"]) / 8.0, s_w)
        split = traffic(s_exec, np.where(needs, 0.0, channel))
        costs.append(pre + priced(plan, *split, s_weight=s_exec))
    return _cheapest(costs)


def dequant_cost(profile, n_elements, quant, *, group: str = "mlp", home=None) -> KernelCost:
    """A stand-alone dequantisation kernel: read packed weights (+ scales), write them in
    the execution type, at the profile's conversion cost per element (the fastest
    execution option)."""
    _check_positive(n_elements=n_elements)
    hw = as_hardware(profile)
    fmt = group_format(quant, group)
    options = _plan_options(hw, quant_attr(fmt, lambda q: q.weight_dtype),
                            quant_attr(fmt, lambda q: q.act_dtype))
    return _cheapest([_dequant(hw, n_elements, fmt, plan, home) for plan in options])


def _dequant(hw: Hardware, n_elements, fmt, plan: dict, home) -> KernelCost:
    """`dequant_cost` in one execution plan."""
    exec_bits = dtype_bits(plan["exec_dtype"])
    read = n_elements * quant_attr(fmt, lambda q: q.effective_weight_bits) / 8.0
    write = n_elements * exec_bits / 8.0
    r_home = hw.main if home is None else home
    w_home = home_level(hw, write, True)
    levels = [_through(hw, r_home, j, read) + _through(hw, w_home, j, write)
              for j in range(hw.n_levels)]
    ops = n_elements * plan["w_convert_ops"]
    return _finish(hw, dict(plan, ops_per_s=1.0, energy_per_op_j=0.0, stream_fraction=1.0,
                            launch_s=hw.launch_s),
                   0.0 * read, 0.0 * read,
                   n_elements * plan["w_convert_s"], n_elements * plan["w_convert_j"], ops,
                   levels, 1.0)


def elementwise_cost(profile, read_bytes, write_bytes, vector_ops, *, read_home=None,
                     write_home=None, n_kernels: float = 1.0, exec_dtype: str = "vector",
                     half_elements=0.0) -> KernelCost:
    """A streaming kernel (norm, activation, residual add, RoPE, softmax, sampling):
    no re-use, every byte crosses each level between its home and the engine.
    `half_elements`: elements read or written in a 16-bit float type; a vector unit
    computing in a wider type widens / narrows each at DEFAULT_HALF_OPS vector ops
    (`widen_ops`), as PyTorch's CPU kernels compute bf16 in fp32."""
    hw = as_hardware(profile)
    vector_ops = vector_ops + widen_ops(hw, half_elements)
    r_home = home_level(hw, read_bytes, True) if read_home is None else read_home
    w_home = home_level(hw, write_bytes, True) if write_home is None else write_home
    levels = [_through(hw, r_home, j, read_bytes) + _through(hw, w_home, j, write_bytes)
              for j in range(hw.n_levels)]
    plan = {"ops_per_s": 1.0, "energy_per_op_j": 0.0, "exec_dtype": exec_dtype}
    zero = 0.0 * np.asarray(vector_ops, dtype=float)
    return _finish(hw, plan, zero, vector_ops, zero, zero, zero, levels, n_kernels)


def widen_ops(profile, half_elements):
    """Vector ops to move `half_elements` 16-bit float elements into or out of the vector
    unit's type: the profile's `vector.widen_ops_per_element` (default DEFAULT_HALF_OPS)
    each where that type is wider than 16 bits, else 0."""
    hw = as_hardware(profile)
    return np.where(np.asarray(hw.vector_bits) > 16, hw.widen_ops, 0.0) \
        * np.asarray(half_elements, dtype=float)


def norm_cost(profile, rows, width, *, in_bits=16.0, out_bits=16.0, kind: str = "rmsnorm",
              fused_residual: bool = True, quantize_out: bool = False, **homes) -> KernelCost:
    """RMSNorm / LayerNorm over `rows` x `width`, optionally fused with the residual add
    (reads residual + update, writes the new residual and the normalised output).
    Vector ops per element: rmsnorm 4 (square, accumulate, scale, weight), layernorm 5
    (sum and sum of squares in one pass, then subtract, scale, affine), +1 for the
    residual add, +QUANTIZE_OPS when the output is quantised; 16-bit inputs / outputs
    are widened / narrowed on a wider vector unit (`widen_ops`)."""
    _check_positive(rows=rows, width=width)
    elems = rows * width
    ops = (4.0 if kind == "rmsnorm" else 5.0) + (1.0 if fused_residual else 0.0) \
        + np.where(quantize_out, QUANTIZE_OPS, 0.0)
    n_in = 2 if fused_residual else 1
    reads = elems * in_bits / 8.0 * n_in
    writes = elems * out_bits / 8.0 + (elems * in_bits / 8.0 if fused_residual else 0.0)
    half = elems * (np.where(np.asarray(in_bits) <= 16, n_in + (1 if fused_residual else 0),
                             0) + np.where(np.asarray(out_bits) == 16, 1, 0))
    return elementwise_cost(profile, reads, writes, elems * ops, half_elements=half,
                            **homes)


def softmax_cost(profile, rows, width, *, bits=16.0, **homes) -> KernelCost:
    """Row softmax (max, subtract, exp, sum, divide: SOFTMAX_OPS per element)."""
    _check_positive(rows=rows, width=width)
    elems = rows * width
    return elementwise_cost(profile, elems * bits / 8.0, elems * bits / 8.0,
                            elems * SOFTMAX_OPS, **homes)


def embedding_cost(profile, tokens, d_model, quant="W16A16", *, group: str = "embedding",
                   weight_home=None, out_bits=None) -> KernelCost:
    """Gather `tokens` rows of d_model from the (possibly quantised) table and write them
    to the activation stream; quantised rows are converted on the way."""
    _check_positive(tokens=tokens, d_model=d_model)
    hw = as_hardware(profile)
    fmt = group_format(quant, group)
    elems = tokens * d_model
    read = elems * quant_attr(fmt, lambda q: q.effective_weight_bits) / 8.0
    write = elems * (stream_bits(fmt) if out_bits is None else out_bits) / 8.0
    r_home = hw.main if weight_home is None else weight_home
    w_home = home_level(hw, write, True)
    levels = [_through(hw, r_home, j, read) + _through(hw, w_home, j, write)
              for j in range(hw.n_levels)]
    return _cheapest([
        _finish(hw, dict(plan, exec_dtype="gather", stream_fraction=1.0,
                         launch_s=hw.launch_s), 0.0 * elems,
                0.0 * elems,
                elems * plan["w_convert_s"], elems * plan["w_convert_j"],
                elems * plan["w_convert_ops"], levels, 1.0)
        for plan in _plan_options(hw, quant_attr(fmt, lambda q: q.weight_dtype),
                                  stream_dtype(fmt))])


def _causal_pairs(q_len, kv_len, window=None):
    """(query, key) pairs a causal mask keeps when q_len new tokens follow kv_len - q_len
    cached ones: S(kv) - S(kv - q) with S(n) = sum_{p<n} min(p + 1, window), i.e.
    n(n+1)/2 without a window (or n <= window), else w(w+1)/2 + (n - w) w."""
    def prefix(n):
        if window is None:
            return n * (n + 1) / 2.0
        w = window
        return np.where(n <= w, n * (n + 1) / 2.0, w * (w + 1) / 2.0 + (n - w) * w)
    return prefix(kv_len) - prefix(kv_len - q_len)


def _pick_plan(cond, if_true: dict, if_false: dict) -> dict:
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


def _attention_rule_fields(p: HardwareProfile, kv_dtype: str, sdt: str
                           ) -> tuple[dict, tuple]:
    """Plan fields and (exec dtype, has rule, skips masked, shares K/V) of one profile's
    attention rule for one KV type and stream type (`_attention_rule`)."""
    rule = p.attention
    fields = {"ops_per_s": 1.0, "stream_fraction": 1.0, "launch_s": p.kernel_launch_s}
    if rule is None:
        return fields, ("none", False, True, True)
    if rule.launch:
        fields["launch_s"] = rule.launch.value
    if rule.stream_fraction:
        fields["stream_fraction"] = rule.stream_fraction.value
    spec = p.compute[rule.execute_as]
    fields["ops_per_s"] = rule.peak.value if rule.peak else spec.achievable_ops_per_s
    fields["energy_per_op_j"] = spec.energy_per_op_j
    ops = rule.convert_ops_per_element.value if rule.convert_ops_per_element else 0.0
    rate, energy = _vector_rate_energy(p)
    for operand, dtype in (("w", kv_dtype), ("a", sdt)):
        n = 0.0 if dtype == rule.execute_as else ops
        fields.update({f"{operand}_convert_ops": n, f"{operand}_convert_s": n / rate,
                       f"{operand}_convert_j": n * energy})
    return fields, (rule.execute_as, True, rule.skips_masked, rule.shares_kv)


def _attention_rule(hw: Hardware, kv_dtype, sdt):
    """(has_rule, skips_masked, shares_kv, plan) from the profiles' `attention` rules,
    element-wise over broadcast(profiles, KV dtype, stream dtype); None when no profile
    has one.
    The plan runs at the rule's rate; the cached K/V (plan's weight operand) and the
    fresh Q/K/V (activation operand) convert at the rule's ops per element where their
    type is not `execute_as`, at the element-wise rate."""
    flat = hw.profiles.reshape(-1) if hw.profiles.ndim else [hw.profiles[()]]
    if all(p.attention is None for p in flat):
        return None
    profiles, kd, ad = np.broadcast_arrays(hw.profiles, np.asarray(kv_dtype, dtype=object),
                                           np.asarray(sdt, dtype=object))
    shape = profiles.shape
    out = {f: np.zeros(shape) for f in _PLAN_FIELDS}
    has, skips = np.zeros(shape, dtype=bool), np.ones(shape, dtype=bool)
    shares = np.ones(shape, dtype=bool)
    exec_dtype = np.empty(shape, dtype=object)
    memo: dict = {}  # one evaluation per distinct (profile, KV type, stream type)
    for idx in np.ndindex(shape):
        p, key = profiles[idx], (id(profiles[idx]), kd[idx], ad[idx])
        if key not in memo:
            memo[key] = _attention_rule_fields(p, kd[idx], ad[idx])
        fields, flags = memo[key]
        for name, value in fields.items():
            out[name][idx] = value
        exec_dtype[idx], has[idx], skips[idx], shares[idx] = flags
    if not shape:
        out = {k: float(v) for k, v in out.items()}
        exec_dtype, has, skips, shares = exec_dtype[()], bool(has), bool(skips), bool(shares)
    out["exec_dtype"], out["exec_path"] = exec_dtype, "attention_rule"
    return has, skips, shares, out


def attention_cost(profile, batch, q_len, kv_len, n_heads, n_kv_heads, head_dim,
                   quant="W16A16", *, kv_from_cache: bool | None = None, flash: bool = True,
                   causal: bool = True, window=None, kv_home=None, q_home=None,
                   out_bits=None, epilogue_ops=0.0, cache_len=None, fresh_kv_home=None,
                   out_home=None, n_kernels=None) -> KernelCost:
    """Scaled dot-product attention for `batch` sequences, q_len queries over kv_len keys
    (the q_len new positions are the last of the kv_len).

    Of the kv_len keys, `cache_len` are read from the KV cache at the format's effective
    KV bits (converted when the KV type is not native; home `kv_home`, default main
    memory) and the other kv_len - cache_len are fresh in the activation stream (home
    `fresh_kv_home`, default the nearest persistent level holding them). Default
    `cache_len`: kv_len with `kv_from_cache` (decode: q_len = 1, the new token's K/V
    already appended), else 0 (prefill: q_len = kv_len). A prefill chunk of q new tokens
    after p cached ones is q_len = q, kv_len = p + q, cache_len = p (the p cached keys
    at KV bits, the q fresh ones at stream bits, as SGLang's extend attention reads
    them). The kernel runs in the KV cache's execution plan when it reads the cache.
    flash=True: one tiled kernel; scores never leave the chip; masked blocks skipped;
    K/V re-read once per query tile that does not fit the staging level (grouped-query
    heads share one K/V read). flash=False: QK^T, softmax and PV as three kernels with
    the full q_len x kv_len score matrix written and read twice. `epilogue_ops` are
    extra vector ops on the output (e.g. quantising it for the next GEMM). A sliding
    `window` limits each query to the last `window` keys and the cache read to them.
    `n_kernels` overrides the launches (1 flash, 3 unfused), e.g. 0 for a part of a
    kernel that is launched with another; `q_home` / `out_home` place Q and the output.
    """
    _check_positive(batch=batch, q_len=q_len, kv_len=kv_len, n_heads=n_heads,
                    n_kv_heads=n_kv_heads, head_dim=head_dim)
    if np.any(np.asarray(kv_len) < np.asarray(q_len)):
        raise InputError("attention: kv_len must be at least q_len")
    if cache_len is None:
        if kv_from_cache is None:
            kv_from_cache = bool(np.all(np.asarray(q_len) == 1))
        cache_len = kv_len if kv_from_cache else 0.0
        if not kv_from_cache and fresh_kv_home is None:
            fresh_kv_home = kv_home  # kv_home placed the (fresh) K/V before cache_len
    elif np.any((np.asarray(cache_len) < 0) | (np.asarray(cache_len) > np.asarray(kv_len))):
        raise InputError("attention: cache_len must be between 0 and kv_len")
    hw = as_hardware(profile)
    fmt = as_quant(quant)
    sb = stream_bits(fmt)
    s_q = sb / 8.0
    s_o = (sb if out_bits is None else out_bits) / 8.0
    s_c = quant_attr(fmt, lambda q: q.effective_kv_bits) / 8.0
    sdt = stream_dtype(fmt)
    cached = np.asarray(cache_len) > 0
    options_c = _plan_options(hw, quant_attr(fmt, lambda q: q.kv_dtype), sdt) \
        if np.any(cached) else None
    options_f = _plan_options(hw, sdt, sdt) if not np.all(cached) else None
    if options_c is None or options_f is None:
        options = options_c or options_f
    else:
        options = [_pick_plan(cached, options_c[min(i, len(options_c) - 1)],
                              options_f[min(i, len(options_f) - 1)])
                   for i in range(max(len(options_c), len(options_f)))]
    rule = _attention_rule(hw, quant_attr(fmt, lambda q: q.kv_dtype), sdt)
    if rule is not None:
        has_rule, skips, shares, rule_plan = rule
        options = [_pick_plan(has_rule, rule_plan, o) for o in options]
        n_kv_heads = np.where(shares, n_kv_heads, n_heads)  # each head reads its own
    else:
        skips = True
    group = n_heads / n_kv_heads
    pairs = _causal_pairs(q_len, kv_len, window) if (causal and flash) else q_len * kv_len
    pairs = np.where(skips, pairs, q_len * kv_len)
    frac = pairs / (q_len * kv_len)
    fresh_len = kv_len - cache_len
    if window is not None:
        cache_len = np.minimum(cache_len, window)  # the rolling cache holds `window` positions
    flops = 4.0 * batch * n_heads * head_dim * pairs
    vec = SOFTMAX_OPS * batch * n_heads * pairs + epilogue_ops
    q_bytes = batch * q_len * n_heads * head_dim * s_q
    o_bytes = batch * q_len * n_heads * head_dim * s_o
    c_bytes = 2.0 * batch * n_kv_heads * cache_len * head_dim * s_c
    f_bytes = 2.0 * batch * n_kv_heads * fresh_len * head_dim * s_q
    c_home = hw.main if kv_home is None else kv_home
    f_home = home_level(hw, f_bytes, True) if fresh_kv_home is None else fresh_kv_home
    if q_home is None:
        q_home = home_level(hw, q_bytes, True)
    o_home = home_level(hw, o_bytes, True) if out_home is None else out_home
    rows = q_len * group  # query rows sharing one K/V head

    def kv_reads(level):
        tq = _staging(hw, level) / (head_dim * (s_q + ACC_BYTES))
        return np.maximum(1.0, rows / np.maximum(tq, 1.0) * frac)

    # (home, bytes, bytes per element, operand) of the cached and the fresh K/V that
    # exist: the cache converts as the plan's weight operand (KV dtype), fresh K/V as its
    # activation operand (the stream dtype)
    parts = [part for part, length in (((c_home, c_bytes, s_c, "w"), cache_len),
                                       ((f_home, f_bytes, s_q, "a"), fresh_len))
             if np.any(np.asarray(length) > 0)]
    levels = []
    for j in range(hw.n_levels):
        reads = kv_reads(j) if flash else 1.0
        b = _through(hw, q_home, j, q_bytes) + _through(hw, o_home, j, o_bytes)
        for home, nbytes, _, _ in parts:
            b = b + _through(hw, home, j, nbytes * reads)
        if not flash:
            score = batch * n_heads * q_len * (cache_len + fresh_len) * sb / 8.0
            b = b + _through(hw, home_level(hw, score, True), j, 4.0 * score)
        levels.append(b)
    reads0 = kv_reads(0) if flash else 1.0

    def conv(plan, field):
        return sum(nbytes / size * reads0 * plan[f"{operand}_convert_{field}"]
                   for _, nbytes, size, operand in parts)

    if n_kernels is None:
        n_kernels = 1.0 if flash else 3.0
    return _cheapest([_finish(hw, plan, flops, vec, conv(plan, "s"), conv(plan, "j"),
                              conv(plan, "ops"), levels, n_kernels) for plan in options])


@dataclass(frozen=True, eq=False)
class MatmulCost:
    """Time and energy of large-GEMM FLOPs in a format, and how they run."""

    time_s: object
    energy_j: object
    exec_dtype: object
    exec_path: object


def matmul_cost(profile, flops, weight_dtype: str, act_dtype: str | None = None, *,
                reuse: float | None = None) -> MatmulCost:
    """Time and energy to execute `flops` of large GEMMs in a format (training planner).

    The limit of `gemm_cost` for m = n = k -> infinity, per FLOP: operands homed in main
    memory cross every level, re-read once per output tile of the level staging them
    (weights s_w / (2 tm), activations s_a / (2 tn) bytes per FLOP at the element
    types' widths; outputs and launches vanish); each operand element is converted once
    per `reuse` multiply-adds (default: the output-tile side that fits the nearest
    level, i.e. conversions per FLOP = ops / (2 * tile)). Then, as in every kernel,
    t = max(flops / achievable(exec dtype), max_j bytes_j / bw_j) + t_convert and
    E = flops x energy/op + conversions + sum_j bytes_j x energy/byte_j (dynamic; the
    board baseline: simulator.power), for each execution option (`exec_options`); the
    fastest is taken.
    """
    _check_positive(flops=flops)
    hw = as_hardware(profile)
    act_dtype = act_dtype or weight_dtype
    s_w, s_a = dtype_bits(weight_dtype) / 8.0, dtype_bits(act_dtype) / 8.0
    levels = []
    for j in range(hw.n_levels):
        tm, tn = _tile(np.inf, np.inf, s_a, s_w, _staging(hw, j))
        levels.append(flops * (s_w / (2.0 * tm) + s_a / (2.0 * tn)))
    if reuse is None:
        reuse = np.sqrt(np.maximum(hw.usable(0) / ACC_BYTES, 1.0))
    elems = flops / (2.0 * reuse)
    costs = [_finish(hw, p, flops, 0.0 * flops, elems * (p["w_convert_s"] + p["a_convert_s"]),
                     elems * (p["w_convert_j"] + p["a_convert_j"]),
                     elems * (p["w_convert_ops"] + p["a_convert_ops"]), levels, 0.0)
             for p in _plan_options(hw, weight_dtype, act_dtype)]
    best = _cheapest(costs)
    return MatmulCost(best.time_s, best.energy_j, best.exec_dtype, best.exec_path)


def matmul_time_s(profile, flops, weight_dtype: str, act_dtype: str | None = None, *,
                  reuse: float | None = None):
    """Time to execute `flops` of large GEMMs in a format: `matmul_cost(...).time_s`."""
    return matmul_cost(profile, flops, weight_dtype, act_dtype, reuse=reuse).time_s
