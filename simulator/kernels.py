"""Kernel-level cost: operations, bytes per memory level, execution dtype, time, energy.

Every function is vectorised: shapes, batch sizes and lengths may be numpy arrays, the
format may be an object array of QuantFormats and the profile an object array of
HardwareProfiles; results broadcast (numpy rules).

Model (one kernel):
* Execution dtype: a native dtype runs as itself; a non-native one follows the profile's
  fallback rule (`execute_as`, `convert_ops_per_element` vector ops on `convert_dtype`),
  else widens to the nearest native type that holds it exactly (WIDEN). When weights and
  activations run as different types, the math runs in the wider and the narrower
  operand is converted in registers (DEFAULT_CONVERT_OPS vector ops per element).
* Bytes per level: an operand lives at a "home" level (weights in main memory unless the
  model stays resident on chip; an activation at the nearest level that holds it) and
  crosses every level between home and the engine. Across the boundary below level j
  a GEMM is blocked output-stationary with a tm x tn tile whose fp32 accumulators fill
  the usable share (STAGING_FRACTION) of the staging level (level j-1; level 0 stages for
  itself, each staged byte being consumed once, as wgmma reads operands from shared
  memory): weights are re-read max(1, m/tm) times, activations max(1, n/tn) times. When
  the whole problem fits, traffic is compulsory (each operand once).
* Time: t = max(t_math, max_j bytes_j / achievable_bw_j) + t_convert
  + kernels * kernel_launch_s, with t_math = matrix ops / achievable(exec dtype) + vector
  ops / achievable(vector dtype) (the engines share the SMs' issue slots; memory
  transfers overlap with math) and t_convert = conversion ops / achievable(convert
  dtype). Conversion is not hidden behind the memory stream: dequantising a tile sits
  between its arrival and its use. This is what weight-only kernels measure: on an
  A100-80GB gpt-fast decodes Llama-2-7B at 104.9 (bf16), 155.6 (int8) and 196.8 (int4
  g32) tokens/s (pytorch-labs/gpt-fast README), well below the memory roof of the
  smaller weights; a roofline that hid conversion would predict ~200 and ~300.
* Energy: ops * energy_per_op + sum_j bytes_j * energy_per_byte_j + static power * t.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from simulator.errors import InputError
from simulator.profiles import PROFILE_PATH_ENV, HardwareProfile, load_profile
from simulator.quant import DTYPE_BITS, QuantFormat, parse_quant

#: Share of a level's capacity a kernel can use for its tile or a tensor for residency
#: (the rest: double buffering, other live data). Assumption, no vendor figure.
STAGING_FRACTION = 0.5
#: Bytes per output-tile accumulator (fp32 / int32 accumulate).
ACC_BYTES = 4.0
#: Vector ops to convert one element between native types in registers, when the
#: profile gives no rule: sub-byte (shift, mask, convert, scale) 4; byte or wider
#: (convert, scale) 2. Same order as the h100-sxm int4 fallback rule (4 ops).
DEFAULT_CONVERT_OPS_SUBBYTE = 4.0
DEFAULT_CONVERT_OPS = 2.0
#: Vector ops per element: quantise an activation (abs-max, scale, round+convert).
QUANTIZE_OPS = 3.0
#: Vector ops per attention score: scale, running max, exp, running sum, rescale.
SOFTMAX_OPS = 5.0

#: Native types that exactly hold a non-native one, nearest first; (dtype, ops) where ops
#: None means the default conversion cost. bf16 <-> fp16 are substituted at load time.
WIDEN: dict[str, tuple[tuple[str, float | None], ...]] = {
    "bf16": (("fp16", 0.0), ("fp32", None)),
    "fp16": (("bf16", 0.0), ("fp32", None)),
    "tf32": (("fp32", 0.0),),
    "fp32": (),
    "fp8_e4m3": (("fp16", None), ("bf16", None), ("fp32", None)),
    "fp8_e5m2": (("fp16", None), ("bf16", None), ("fp32", None)),
    "fp4_e2m1": (("fp8_e4m3", None), ("fp16", None), ("bf16", None), ("fp32", None)),
    "int8": (("fp16", None), ("bf16", None), ("fp32", None)),
    **{f"int{b}": (("int8", None), ("fp16", None), ("bf16", None), ("fp32", None))
       for b in (4, 5, 6, 7)},
    **{d: (("int4", None), ("int8", None), ("fp16", None), ("bf16", None), ("fp32", None))
       for d in ("int2", "int3", "ternary", "binary")},
}


#: Engines named after their weight type that multiply integer activations directly
#: (BitNet-style ternary/binary arrays: int8 activation x {-1, 0, +1} = add/skip/subtract).
WEIGHT_ENGINES = {"ternary": ("int8", "int4"), "binary": ("int8", "int4")}


def _default_convert_ops(dtype: str) -> float:
    return DEFAULT_CONVERT_OPS_SUBBYTE if DTYPE_BITS[dtype] < 8 else DEFAULT_CONVERT_OPS


# ---- hardware, packed as arrays ------------------------------------------------------------

@dataclass(frozen=True)
class ExecPlan:
    """How one (weight dtype, activation dtype) pair runs on one profile."""

    exec_dtype: str
    path: str  # native | fallback | widen | mixed
    ops_per_s: float
    energy_per_op_j: float
    w_convert_ops: float
    w_convert_s: float  # seconds per converted weight element
    w_convert_j: float
    a_convert_ops: float
    a_convert_s: float
    a_convert_j: float


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
    static_power_w: object
    vector_ops_per_s: object
    vector_energy_per_op_j: object
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

    def plan(self, profile: HardwareProfile, w_dtype: str, a_dtype: str) -> ExecPlan:
        key = (id(profile), w_dtype, a_dtype)
        if key not in self._plans:
            self._plans[key] = resolve_exec(profile, w_dtype, a_dtype)
        return self._plans[key]

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
                       launch_s=ex(self.launch_s), static_power_w=ex(self.static_power_w),
                       vector_ops_per_s=ex(self.vector_ops_per_s),
                       vector_energy_per_op_j=ex(self.vector_energy_per_op_j), _plans={})


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
        spec = p.compute[vector_dtype(p)]
        return spec.achievable_ops_per_s if what == "rate" else spec.energy_per_op_j

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
        static_power_w=per_profile(lambda p: p.static_power_w),
        vector_ops_per_s=per_profile(lambda p: vec(p, "rate")),
        vector_energy_per_op_j=per_profile(lambda p: vec(p, "e")))


# ---- execution dtype -------------------------------------------------------------------

def _resolve_operand(profile: HardwareProfile, dtype: str) -> tuple[str, float, str, str]:
    """(runs as, conversion ops per element, dtype running the conversion, path)."""
    if profile.native(dtype):
        return dtype, 0.0, vector_dtype(profile), "native"
    rule = profile.fallbacks.get(dtype)
    if rule is not None:
        return rule.execute_as, rule.convert_ops_per_element.value, rule.convert_dtype, \
            "fallback"
    for target, ops in WIDEN.get(dtype, ()):
        if profile.native(target):
            return target, _default_convert_ops(dtype) if ops is None else ops, \
                vector_dtype(profile), "widen"
    raise InputError(f"profile {profile.name} cannot run {dtype}: not native (native: "
                     f"{', '.join(profile.compute)}), no fallback rule and no wider "
                     "native type")


def resolve_exec(profile: HardwareProfile, w_dtype: str, a_dtype: str) -> ExecPlan:
    """The dtype the math really runs in, and the conversion cost of each operand."""
    w_run, w_ops, w_cd, w_path = _resolve_operand(profile, w_dtype)
    a_run, a_ops, a_cd, a_path = _resolve_operand(profile, a_dtype)
    if w_run in WEIGHT_ENGINES and a_run in WEIGHT_ENGINES[w_run]:
        a_run = w_run  # a ternary/binary engine takes integer activations as they are
    path = w_path if w_path != "native" else a_path
    exec_dtype = w_run
    if w_run != a_run:
        path = "mixed" if path == "native" else path
        if DTYPE_BITS[w_run] > DTYPE_BITS[a_run]:
            a_ops += _default_convert_ops(a_run)
        else:
            exec_dtype = a_run
            w_ops += _default_convert_ops(w_run)
    spec = profile.compute[exec_dtype]
    w_spec, a_spec = profile.compute[w_cd], profile.compute[a_cd]
    return ExecPlan(
        exec_dtype=exec_dtype, path=path, ops_per_s=spec.achievable_ops_per_s,
        energy_per_op_j=spec.energy_per_op_j, w_convert_ops=w_ops,
        w_convert_s=w_ops / w_spec.achievable_ops_per_s,
        w_convert_j=w_ops * w_spec.energy_per_op_j, a_convert_ops=a_ops,
        a_convert_s=a_ops / a_spec.achievable_ops_per_s,
        a_convert_j=a_ops * a_spec.energy_per_op_j)


_PLAN_FIELDS = ("ops_per_s", "energy_per_op_j", "w_convert_ops", "w_convert_s",
                "w_convert_j", "a_convert_ops", "a_convert_s", "a_convert_j")


def _plans(hw: Hardware, w_dtype, a_dtype) -> dict:
    """ExecPlan fields as arrays over broadcast(profiles, w_dtype, a_dtype)."""
    if hw.is_single and isinstance(w_dtype, str) and isinstance(a_dtype, str):
        plan = hw.plan(hw.profiles[()], w_dtype, a_dtype)
        out = {f: getattr(plan, f) for f in _PLAN_FIELDS}
        out["exec_dtype"], out["exec_path"] = plan.exec_dtype, plan.path
        return out
    profiles, wd, ad = np.broadcast_arrays(hw.profiles, np.asarray(w_dtype, dtype=object),
                                           np.asarray(a_dtype, dtype=object))
    out = {f: np.empty(profiles.shape) for f in _PLAN_FIELDS}
    out["exec_dtype"] = np.empty(profiles.shape, dtype=object)
    out["exec_path"] = np.empty(profiles.shape, dtype=object)
    for idx in np.ndindex(profiles.shape):
        plan = hw.plan(profiles[idx], wd[idx], ad[idx])
        for f in _PLAN_FIELDS:
            out[f][idx] = getattr(plan, f)
        out["exec_dtype"][idx], out["exec_path"][idx] = plan.exec_dtype, plan.path
    return out


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
    `bytes_moved[level]` read + written at that level. `exec_path` says how the dtype
    was reached: native, fallback (the profile's rule), widen (nearest wider native
    type) or mixed (operands of different native types). `bound` is compute, memory or overhead (launch gaps dominate).
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
            bytes_by_level: Sequence, n_kernels) -> KernelCost:
    t_math = flops / plan["ops_per_s"] + vector_ops / hw.vector_ops_per_s
    t_memory = 0.0
    for b, bw in zip(bytes_by_level, hw.bandwidth_bytes_per_s):
        t_memory = np.maximum(t_memory, b / bw)
    overhead = n_kernels * hw.launch_s
    time_s = np.maximum(t_math, t_memory) + convert_s + overhead
    t_compute = t_math + convert_s
    energy = (flops * plan["energy_per_op_j"] + vector_ops * hw.vector_energy_per_op_j
              + convert_j + sum(b * e for b, e in zip(bytes_by_level, hw.energy_per_byte_j))
              + hw.static_power_w * time_s)
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
    dequantise weights to the execution type in a separate kernel first.
    """
    _check_positive(m=m, n=n, k=k)
    hw = as_hardware(profile)
    fmt = group_format(quant, group)
    w_dtype = quant_attr(fmt, lambda q: q.weight_dtype)
    a_dtype = quant_attr(fmt, lambda q: q.act_dtype)
    plan = _plans(hw, w_dtype, a_dtype)
    s_w = quant_attr(fmt, lambda q: q.effective_weight_bits) / 8.0
    s_a = quant_attr(fmt, lambda q: q.effective_act_bits) / 8.0
    s_o = (stream_bits(fmt) if out_bits is None else out_bits) / 8.0
    channel = n * quant_attr(fmt, lambda q: q.channel_scale_bits) / 8.0
    if not fused_dequant:
        needs = np.asarray(plan["w_convert_ops"]) > 0
        exec_bits = dtype_bits(plan["exec_dtype"])
        pre = dequant_cost(hw, k * n, fmt, group=group, home=weight_home)
        pre = pre.scaled(needs)
        s_w = np.where(needs, exec_bits / 8.0, s_w)
        channel = np.where(needs, 0.0, channel)
        plan = dict(plan, w_convert_ops=np.where(needs, 0.0, plan["w_convert_ops"]),
                    w_convert_s=np.where(needs, 0.0, plan["w_convert_s"]),
                    w_convert_j=np.where(needs, 0.0, plan["w_convert_j"]))
    w_home = hw.main if weight_home is None else weight_home
    a_home = home_level(hw, m * k * s_a, True) if act_home is None else act_home
    o_home = home_level(hw, m * n * s_o, True) if out_home is None else out_home
    levels = []
    for j in range(hw.n_levels):
        tm, tn = _tile(m, n, s_a, s_w, _staging(hw, j))
        w_t = (k * n * s_w + channel) * np.maximum(1.0, m / tm)
        a_t = m * k * s_a * np.maximum(1.0, n / tn)
        levels.append(_through(hw, w_home, j, w_t) + _through(hw, a_home, j, a_t)
                      + _through(hw, o_home, j, m * n * s_o))
    tm0, tn0 = _tile(m, n, s_a, s_w, _staging(hw, 0))
    w_conv_elems = k * n * np.maximum(1.0, m / tm0)
    a_conv_elems = m * k * np.maximum(1.0, n / tn0)
    conv_ops = w_conv_elems * plan["w_convert_ops"] + a_conv_elems * plan["a_convert_ops"]
    conv_s = w_conv_elems * plan["w_convert_s"] + a_conv_elems * plan["a_convert_s"]
    conv_j = w_conv_elems * plan["w_convert_j"] + a_conv_elems * plan["a_convert_j"]
    cost = _finish(hw, plan, 2.0 * m * n * k, 0.0 * m * n, conv_s, conv_j, conv_ops, levels,
                   1.0)
    return cost if fused_dequant else pre + cost


def dequant_cost(profile, n_elements, quant, *, group: str = "mlp", home=None) -> KernelCost:
    """A stand-alone dequantisation kernel: read packed weights (+ scales), write them in
    the execution type, at the profile's conversion cost per element."""
    _check_positive(n_elements=n_elements)
    hw = as_hardware(profile)
    fmt = group_format(quant, group)
    plan = _plans(hw, quant_attr(fmt, lambda q: q.weight_dtype),
                  quant_attr(fmt, lambda q: q.act_dtype))
    exec_bits = dtype_bits(plan["exec_dtype"])
    read = n_elements * quant_attr(fmt, lambda q: q.effective_weight_bits) / 8.0
    write = n_elements * exec_bits / 8.0
    r_home = hw.main if home is None else home
    w_home = home_level(hw, write, True)
    levels = [_through(hw, r_home, j, read) + _through(hw, w_home, j, write)
              for j in range(hw.n_levels)]
    ops = n_elements * plan["w_convert_ops"]
    return _finish(hw, dict(plan, ops_per_s=1.0, energy_per_op_j=0.0), 0.0 * read, 0.0 * read,
                   n_elements * plan["w_convert_s"], n_elements * plan["w_convert_j"], ops,
                   levels, 1.0)


def elementwise_cost(profile, read_bytes, write_bytes, vector_ops, *, read_home=None,
                     write_home=None, n_kernels: float = 1.0, exec_dtype: str = "vector"
                     ) -> KernelCost:
    """A streaming kernel (norm, activation, residual add, RoPE, softmax, sampling):
    no re-use, every byte crosses each level between its home and the engine."""
    hw = as_hardware(profile)
    r_home = home_level(hw, read_bytes, True) if read_home is None else read_home
    w_home = home_level(hw, write_bytes, True) if write_home is None else write_home
    levels = [_through(hw, r_home, j, read_bytes) + _through(hw, w_home, j, write_bytes)
              for j in range(hw.n_levels)]
    plan = {"ops_per_s": 1.0, "energy_per_op_j": 0.0, "exec_dtype": exec_dtype}
    zero = 0.0 * np.asarray(vector_ops, dtype=float)
    return _finish(hw, plan, zero, vector_ops, zero, zero, zero, levels, n_kernels)


def norm_cost(profile, rows, width, *, in_bits=16.0, out_bits=16.0, kind: str = "rmsnorm",
              fused_residual: bool = True, quantize_out: bool = False, **homes) -> KernelCost:
    """RMSNorm / LayerNorm over `rows` x `width`, optionally fused with the residual add
    (reads residual + update, writes the new residual and the normalised output).
    Vector ops per element: rmsnorm 4 (square, accumulate, scale, weight), layernorm 7,
    +1 for the residual add, +QUANTIZE_OPS when the output is quantised."""
    _check_positive(rows=rows, width=width)
    elems = rows * width
    ops = (4.0 if kind == "rmsnorm" else 7.0) + (1.0 if fused_residual else 0.0) \
        + np.where(quantize_out, QUANTIZE_OPS, 0.0)
    reads = elems * in_bits / 8.0 * (2 if fused_residual else 1)
    writes = elems * out_bits / 8.0 + (elems * in_bits / 8.0 if fused_residual else 0.0)
    return elementwise_cost(profile, reads, writes, elems * ops, **homes)


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
    sdt = stream_dtype(fmt)
    plan = _plans(hw, quant_attr(fmt, lambda q: q.weight_dtype), sdt)
    elems = tokens * d_model
    read = elems * quant_attr(fmt, lambda q: q.effective_weight_bits) / 8.0
    write = elems * (stream_bits(fmt) if out_bits is None else out_bits) / 8.0
    r_home = hw.main if weight_home is None else weight_home
    w_home = home_level(hw, write, True)
    levels = [_through(hw, r_home, j, read) + _through(hw, w_home, j, write)
              for j in range(hw.n_levels)]
    conv = elems * plan["w_convert_ops"]
    return _finish(hw, dict(plan, exec_dtype="gather"), 0.0 * elems, 0.0 * elems,
                   elems * plan["w_convert_s"], elems * plan["w_convert_j"], conv, levels, 1.0)


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
    plan_c = _plans(hw, quant_attr(fmt, lambda q: q.kv_dtype), sdt)
    plan_f = _plans(hw, sdt, sdt)
    plan = _pick_plan(np.asarray(cache_len) > 0, plan_c, plan_f)
    group = n_heads / n_kv_heads
    pairs = _causal_pairs(q_len, kv_len, window) if (causal and flash) else q_len * kv_len
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

    # (home, bytes, bytes per element, plan) of the cached and the fresh K/V that exist
    parts = [part for part, length in (((c_home, c_bytes, s_c, plan_c), cache_len),
                                       ((f_home, f_bytes, s_q, plan_f), fresh_len))
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

    def conv(field):
        return sum(nbytes / size * reads0 * p[field] for _, nbytes, size, p in parts)

    if n_kernels is None:
        n_kernels = 1.0 if flash else 3.0
    return _finish(hw, plan, flops, vec, conv("w_convert_s"), conv("w_convert_j"),
                   conv("w_convert_ops"), levels, n_kernels)


def matmul_time_s(profile, flops, weight_dtype: str, act_dtype: str | None = None, *,
                  reuse: float | None = None):
    """Time to execute `flops` of large GEMMs in a format (training planner helper).

    Runs at the achievable peak of the execution dtype (native or the fallback's
    `execute_as`); converting operands costs conversion ops on each element once per
    `reuse` multiply-adds (default: the output-tile side that fits the nearest level,
    i.e. conversions per FLOP = ops / (2 * tile)). Memory traffic is not counted: large
    training GEMMs are compute-bound.
    """
    _check_positive(flops=flops)
    hw = as_hardware(profile)
    plan = _plans(hw, weight_dtype, act_dtype or weight_dtype)
    if reuse is None:
        reuse = np.sqrt(np.maximum(hw.usable(0) / ACC_BYTES, 1.0))
    elems = flops / (2.0 * reuse)
    return flops / plan["ops_per_s"] + elems * (plan["w_convert_s"] + plan["a_convert_s"])
