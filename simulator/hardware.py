"""Hardware profiles packed as broadcastable numeric arrays, and the execution plan type.

`as_hardware` turns a profile, a profile name or an (object) array of them into one
`Hardware`: per memory level (aligned from main memory backwards) capacity, achievable
bandwidth, energy per byte, residency; per profile launch overhead and the
element-wise (vector) rate and energy. `ExecPlan` is one way a (weight dtype, activation
dtype) pair runs on one profile (simulator.mapping chooses them).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from precsim.simulator.errors import InputError
from precsim.simulator.profile_loader import cached_profile
from precsim.simulator.profiles import HardwareProfile
from precsim.simulator.quant import DTYPE_BITS

#: Share of a level's capacity a kernel can use for its tile or a tensor for residency
#: (the rest: double buffering, other live data). Assumption, no vendor figure.
STAGING_FRACTION = 0.5
#: Vector ops to widen a 16-bit float to fp32 (one shift or convert): the default of a
#: profile's `vector.widen_ops_per_element` and the bf16/fp16 -> fp32 step of
#: simulator.mapping.WIDEN.
DEFAULT_HALF_OPS = 1.0


def kernel_vector_terms(hw: Hardware, kernel: str):
    """Per profile, (vector-op scale, widen ops per 16-bit element) of the element-wise
    `kernel`: vector.rate / its `vector.rate_by_kernel` (1 where absent: its ops run at
    the common rate) and its `vector.widen_by_kernel` (else the profile's widen_ops);
    None where no profile names the kernel."""
    key = ("vector_kernel", kernel)
    if key not in hw.exec_cache:
        flat = hw.profiles.reshape(-1) if hw.profiles.ndim else [hw.profiles[()]]
        own = [((p.vector.rate_by_kernel or {}).get(kernel),
                (p.vector.widen_by_kernel or {}).get(kernel)) if p.vector else (None, None)
               for p in flat]
        if all(r is None and w is None for r, w in own):
            hw.exec_cache[key] = None
        else:
            shape = np.shape(hw.profiles)
            rate = np.broadcast_to(hw.vector_ops_per_s, shape).reshape(-1)
            widen = np.broadcast_to(hw.widen_ops, shape).reshape(-1)
            scale = np.array([1.0 if r is None else v / r.value
                              for (r, _), v in zip(own, rate)])
            per = np.array([d if w is None else w.value for (_, w), d in zip(own, widen)])
            hw.exec_cache[key] = tuple(a.reshape(shape) if shape else float(a[0])
                                       for a in (scale, per))
    return hw.exec_cache[key]


def as_operand(x):
    """`x` as an operand of array arithmetic: a Python or numpy float as a read-only 0-d
    float64 array, an array as it is. numpy 2 converts a scalar operand of a ufunc to a
    temporary array on every call (~130 ns on the 2-core VM, `benchmarks/formula_speed.py`);
    a 0-d array skips that. With an array operand the result is the same array (the same
    float64 operation); with a scalar operand a 0-d array gives a numpy scalar where
    Python floats give a Python float, so use it only against arrays."""
    if type(x) is np.ndarray:
        return x
    out = np.array(x, dtype=float)
    out.flags.writeable = False
    return out


#: 0.0, 1.0, 2.0 and 8.0 as operands against arrays (`as_operand`), shared by the formulas.
ZERO, ONE, TWO, EIGHT = map(as_operand, (0.0, 1.0, 2.0, 8.0))
#: The number types the formulas compute with as they are (Python or numpy doubles).
NUMBER_TYPES = (int, float, np.float64)
_F64 = np.dtype(np.float64)


def on_floats(x) -> bool:
    """Whether `x` is a float64 array (any ndim): a 0-d float64 operand against it gives
    the doubles and type a Python number gives (`as_operand`)."""
    return type(x) is np.ndarray and x.dtype is _F64


def array_operands(hw: Hardware) -> tuple:
    """`hw`'s numbers the roofline applies to arrays, as `as_operand`s (kept per Hardware):
    (bandwidth per level, energy per byte per level, vector rate, vector energy per op)."""
    kept = hw.exec_cache.get("array_operands")
    if kept is None:
        kept = hw.exec_cache["array_operands"] = (
            tuple(map(as_operand, hw.bandwidth_bytes_per_s)),
            tuple(map(as_operand, hw.energy_per_byte_j)),
            as_operand(hw.vector_ops_per_s), as_operand(hw.vector_energy_per_op_j))
    return kept


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
    #: the same for matrix kernels with more than one activation row, measured with
    #: `gemm_stream_rows` rows; `gemm_stream_wide` at `gemm_stream_wide_rows` (equal
    #: rows: no row effect; mapping.gemm_stream_share)
    gemm_stream_fraction: float = 1.0
    gemm_stream_rows: float = 2.0
    gemm_stream_wide: float = 1.0
    gemm_stream_wide_rows: float = 2.0
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
    #: memo of simulator.mapping.exec_options per (id(profile), w dtype, a dtype), filled
    #: by simulator.mapping.plan_options, of the power envelope ("power",
    #: simulator.power.power_params) and of each level's room (roofline.home_level):
    #: a Hardware derived with other numbers needs a fresh one (as `expand` does)
    exec_cache: dict = field(default_factory=dict, repr=False)

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
        """Bytes of `level` a kernel's tile or a resident tensor may use:
        STAGING_FRACTION x capacity."""
        return STAGING_FRACTION * self.capacity_bytes[level]

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
                       exec_cache={})


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


def vector_rate_energy(p: HardwareProfile) -> tuple[float, float]:
    """Element-wise (ops/s, J/op): the profile's `vector` block where given, else the
    vector data type's GEMM entry."""
    spec = p.compute[vector_dtype(p)]
    rate = p.vector.rate.value if p.vector else spec.achievable_ops_per_s
    energy = (p.vector.energy_per_op.value if p.vector and p.vector.energy_per_op
              else spec.energy_per_op_j)
    return rate, energy


#: id(profile) -> its packed Hardware, for the last PACKED_MAX profiles packed: a profile
#: is packed once (and its exec_cache filled once). The entry holds the profile (in
#: `profiles`), so its id is not recycled while cached. Profiles are frozen: an edit
#: (`with_overrides`, a what-if variant) is a new object with its own entry.
_PACKED: dict[int, Hardware] = {}
PACKED_MAX = 64


def _packed_single(profile: HardwareProfile) -> Hardware:
    """`as_hardware` of one loaded profile, memoised per profile object (`_PACKED`)."""
    hit = _PACKED.get(id(profile))
    if hit is not None and hit.profiles[()] is profile:
        return hit
    arr = np.empty((), dtype=object)
    arr[()] = profile
    packed = _pack(arr)
    while len(_PACKED) >= PACKED_MAX:  # the oldest entry goes first
        _PACKED.pop(next(iter(_PACKED)), None)
    _PACKED[id(profile)] = packed
    return packed


def as_hardware(profile) -> Hardware:
    """Pack a profile, a profile name, or a sequence / object array of them."""
    if isinstance(profile, Hardware):
        return profile
    if isinstance(profile, (HardwareProfile, str)):
        return _packed_single(cached_profile(profile))
    src = np.asarray(profile, dtype=object) if not isinstance(profile, np.ndarray) \
        else profile
    if src.size == 0:
        raise InputError("no hardware profile given")
    arr = np.empty(src.shape, dtype=object)
    for idx in np.ndindex(src.shape):
        arr[idx] = cached_profile(src[idx])
    return _pack(arr)


def _pack(arr: np.ndarray) -> Hardware:
    """The Hardware of an object array of loaded profiles."""
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
        return vector_rate_energy(p)[0 if what == "rate" else 1]

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
