"""The roofline core and placement: a kernel's bytes per memory level, time and energy.

* Bytes per level: an operand lives at a "home" level (weights in main memory unless the
  model stays resident on chip; an activation at the nearest level that holds it,
  `home_level`) and crosses every level between home and the engine (`bytes_through`).
  Across the boundary below level j a GEMM is blocked output-stationary with a tm x tn
  tile whose fp32 accumulators fill the usable share (STAGING_FRACTION) of the staging
  level (level j-1; level 0 stages for itself, each staged byte being consumed once, as
  wgmma reads operands from shared memory: `staging_bytes`, `output_tile`): weights are
  re-read max(1, m/tm) times, activations max(1, n/tn) times. When the whole problem
  fits, traffic is compulsory (each operand once).
* Time (`roofline_cost`): t = max(t_math, t_mem) + (1 - overlap) min(t_math, t_mem)
  + t_convert + kernels * launch + n * row_time, with t_math = matrix ops /
  achievable(exec dtype) + vector ops / vector rate (the engines share the SMs' issue
  slots), t_mem = max_j bytes_j / (achievable_bw_j * stream_fraction) and t_convert =
  conversion ops / achievable(convert dtype). The optional profile fields default to the
  roofline: `overheads.matmul_overlap` 1 (memory transfers hidden under math; CPU BLAS
  adds them), `compute.<weight type>.stream_fraction` 1 (a CPU's one-token matmuls
  stream weights at a fraction of its STREAM bandwidth; `.gemm_stream_fraction` for
  more than one activation row, where MKL's sgemm packs the weight panel),
  `compute.<weight type>.launch` and `.row_time` (per-call overhead; a one-row GEMV's
  per-output-row reduction), `vector.rate` (element-wise work; default the vector
  dtype's GEMM rate); docs/validation.md says what measured each on the CPU host.
  Conversion is not hidden behind the memory stream: dequantising a tile sits between
  its arrival and its use. This is what weight-only kernels measure: on an A100-80GB
  gpt-fast decodes Llama-2-7B at 104.9 (bf16), 155.6 (int8) and 196.8 (int4 g32)
  tokens/s (pytorch-labs/gpt-fast README), well below the memory roof of the smaller
  weights; a roofline that hid conversion would predict ~200 and ~300.
* Energy (dynamic): ops * energy_per_op + sum_j bytes_j * energy_per_byte_j; the board's
  idle/active baseline, cap and throttling are added by simulator.power.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from precsim.simulator.errors import InputError
from precsim.simulator.hardware import (ONE, ZERO, Hardware, array_operands, as_hardware,
                                        on_floats)

#: Bytes per output-tile accumulator (fp32 / int32 accumulate).
ACC_BYTES = 4.0
#: KernelCost fields that add over kernels (summed, scaled, reduced).
EXTENSIVE_FIELDS = ("flops", "vector_ops", "convert_ops", "time_s", "energy_j",
                    "compute_time_s", "memory_time_s", "overhead_time_s", "n_kernels",
                    "convert_time_s")
#: Elements per value below which `reduce_costs` stacks a group of values in one copy.
SMALL_STACK = 4096


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

    def _with(self, kw: dict) -> KernelCost:
        """A copy with the fields in `kw` replaced (`dataclasses.replace` without its
        per-field checks: called per op and per call)."""
        new = object.__new__(KernelCost)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(kw)
        return new

    def scaled(self, factor) -> KernelCost:
        """Every extensive quantity multiplied by `factor` (e.g. number of layers)."""
        d = self.__dict__
        kw = {f: np.asarray(d[f]) * factor for f in EXTENSIVE_FIELDS}
        kw["bytes_moved"] = {k: np.asarray(v) * factor for k, v in self.bytes_moved.items()}
        return self._with(kw)

    def __add__(self, other: KernelCost) -> KernelCost:
        d, o = self.__dict__, other.__dict__
        kw = {f: np.asarray(d[f]) + np.asarray(o[f]) for f in EXTENSIVE_FIELDS}
        kw["bytes_moved"] = {k: np.asarray(v) + np.asarray(other.bytes_moved[k])
                             for k, v in self.bytes_moved.items()}
        return self._with(kw)

    def reduce(self, weights, axis: int = -1) -> KernelCost:
        """Weighted sum over `axis` (e.g. decode steps sampled along a trailing axis)."""
        return reduce_costs((self,), weights, axis)[0]

    @property
    def main_memory_bytes(self):
        return list(self.bytes_moved.values())[-1]


def add_all(values):
    """sum(np.asarray(v) for v in values): the same additions in the same order, without
    a 0-d array per numpy scalar (scalars add exactly as 0-d arrays do); Python numbers
    alone still give a numpy scalar."""
    values = tuple(values)
    total = 0
    for v in values:
        total = total + v
    if type(total) is float:  # Python floats (and ints) added as numpy adds them
        return np.float64(total)
    if type(total) in (int, bool):
        return sum(np.asarray(v) for v in values)
    return total


def reduce_costs(costs: Sequence[KernelCost], weights, axis: int = -1) -> tuple:
    """`KernelCost.reduce` of each of `costs`: every extensive field and level of every
    cost multiplied by `weights`, stacked by shape and reduced in one weighted sum per
    shape (one numpy call for a whole pass instead of one per field and op); each sum
    has the shape common to the pass (a broadcast view where the value had fewer
    axes); labels keep their first element along `axis`."""
    per = len(EXTENSIVE_FIELDS) + len(costs[0].bytes_moved)
    values = []
    for c in costs:
        d = c.__dict__
        values.extend(d[f] for f in EXTENSIVE_FIELDS)
        values.extend(c.bytes_moved.values())
    w_shape = np.shape(weights)
    by_shape: dict = {}  # values stacked by their own shape
    for i, v in enumerate(values):
        by_shape.setdefault(getattr(v, "shape", ()), []).append(i)
    at = axis if axis < 0 else axis + 1  # the stacked axis comes first
    summed = [None] * len(values)
    common = np.broadcast_shapes(w_shape, *by_shape)  # every value has it reduced
    common = common[:axis % len(common)] + common[axis % len(common) + 1:]
    for shape, rows in by_shape.items():
        full = np.broadcast_shapes(w_shape, shape)
        if math.prod(full) <= SMALL_STACK:  # one copy and one product for the group
            stacked = np.array([values[i] for i in rows], dtype=float)
            stacked = np.multiply(stacked.reshape((len(rows),) + (1,) * (len(full)
                                                                          - len(shape))
                                                  + shape), weights)
        else:  # each product written straight into the stack (no broadcast copy)
            stacked = np.empty((len(rows),) + full)
            for r, i in enumerate(rows):
                np.multiply(values[i], weights, out=stacked[r])
        reduced = np.add.reduce(stacked, axis=at)
        if reduced.shape[1:] != common:  # the common shape, as a read-only view
            pad = (1,) * (len(common) - reduced.ndim + 1)
            reduced = np.broadcast_to(reduced.reshape(reduced.shape[:1] + pad
                                                      + reduced.shape[1:]),
                                      (len(rows),) + common)
        for r, s in zip(rows, reduced):
            summed[r] = s
    out = []
    for i, c in enumerate(costs):
        row = summed[i * per:(i + 1) * per]
        kw = dict(zip(EXTENSIVE_FIELDS, row))
        kw["bytes_moved"] = dict(zip(c.bytes_moved, row[len(EXTENSIVE_FIELDS):]))
        for name in ("exec_dtype", "exec_path"):
            label = getattr(c, name)
            if isinstance(label, np.ndarray):
                label = np.asarray(np.take(np.broadcast_to(
                    label, np.broadcast(label, weights).shape), 0, axis=axis), dtype=object)
                kw[name] = label[()] if label.ndim == 0 else label
        out.append(c._with(kw))
    return tuple(out)


def roofline_cost(hw: Hardware, plan: dict, flops, vector_ops, convert_s, convert_j,
                  convert_ops, bytes_by_level: Sequence, n_kernels, fixed_s=0.0,
                  stream_bytes=None) -> KernelCost:
    """Time: max(t_math, t_memory) + (1 - overlap) min(t_math, t_memory) + t_convert +
    launches, where overlap is the profile's `matmul_overlap` for kernels with matrix
    ops (1 for element-wise ones) and t_memory uses each level's achievable bandwidth
    times the plan's `stream_fraction` (1 for streaming kernels); launches cost the
    plan's `launch_s` (the profile's kernel_launch for streaming kernels); `fixed_s` is
    further per-call time outside the roofline (a GEMV's per-row reductions).
    `flops=None`: a streaming kernel, no matrix ops and no conversion (those fields are
    zeros of the vector ops' shape; the terms they would add, all 0, are left out)."""
    streaming = flops is None
    if type(vector_ops) is np.ndarray:  # the profile's numbers as 0-d arrays (`as_operand`)
        bandwidths, energies, vector_rate, vector_energy = array_operands(hw)
    else:
        bandwidths, energies = hw.bandwidth_bytes_per_s, hw.energy_per_byte_j
        vector_rate, vector_energy = hw.vector_ops_per_s, hw.vector_energy_per_op_j
    if streaming:  # 0-d 0.0 x a float64 array: 0.0 x np.asarray(vector_ops, float)
        flops = convert_s = convert_j = convert_ops = ZERO * vector_ops \
            if on_floats(vector_ops) else 0.0 * np.asarray(vector_ops, dtype=float)
        t_math = vector_ops / vector_rate
    else:
        t_math = flops / plan["ops_per_s"] + vector_ops / vector_rate
    t_memory = ZERO  # np.maximum(0-d 0, x): np.maximum(0.0, x)'s values and types
    fraction = plan.get("stream_fraction", 1.0)
    if type(fraction) is not float:  # a Python float stays one: the same products
        fraction = np.asarray(fraction, dtype=float)
    if stream_bytes is None:  # every byte at the plan's share of each level's bandwidth
        if type(fraction) is float and fraction == 1.0:  # b / (bw * 1.0) is b / bw
            t_memory = _memory_time(hw, bytes_by_level, bandwidths)
        else:
            for b, bw in zip(bytes_by_level, hw.bandwidth_bytes_per_s):
                t_memory = np.maximum(t_memory, b / (bw * fraction))
    else:
        # the stream fraction f (measured from main memory) is the kernel's own cost per
        # streamed byte, in series with the memory: + stream_bytes (1 - f) / (f bw_main),
        # so b / (f bw_main) from main memory and ~bw_main f / (1 - f) from a near level
        # much faster than the kernel (a GEMV reading an L3-resident weight)
        t_memory = _memory_time(hw, bytes_by_level, bandwidths)
        if type(stream_bytes) is np.ndarray and type(fraction) is float and fraction == 1.0:
            # x (1 - 1.0) / (1.0 bw_main) as 0-d operands (kept: it carries NaN and inf)
            t_memory = t_memory + stream_bytes * ZERO / array_operands(hw)[0][-1]
        else:
            t_memory = t_memory + stream_bytes * (1.0 - fraction) \
                / (fraction * hw.bandwidth_bytes_per_s[-1])
    overhead = n_kernels * plan.get("launch_s", hw.launch_s) + fixed_s
    time_s = np.maximum(t_math, t_memory)
    if not (streaming or type(hw.matmul_overlap) is float and hw.matmul_overlap == 1.0):
        # kernels with matrix ops overlap memory by `matmul_overlap` (else fully: + 0)
        overlap = np.where(np.asarray(flops) > 0, hw.matmul_overlap, 1.0)
        time_s = time_s + (1.0 - overlap) * np.minimum(t_math, t_memory)
    moved = None  # sum_j b_j e_j, added level by level
    for b, e in zip(bytes_by_level, energies):
        moved = b * e if moved is None else moved + b * e
    if streaming:
        time_s = time_s + overhead
        t_compute = t_math
        energy = vector_ops * vector_energy + moved
    else:
        time_s = time_s + convert_s + overhead
        t_compute = t_math + convert_s
        energy = (flops * plan["energy_per_op_j"] + vector_ops * vector_energy
                  + convert_j + moved)
    cost = object.__new__(KernelCost)  # every field set: the dataclass __init__'s result
    cost.__dict__.update(
        flops=flops, vector_ops=vector_ops, convert_ops=convert_ops,
        bytes_moved=dict(zip(hw.level_names, bytes_by_level)), exec_dtype=plan["exec_dtype"],
        exec_path=plan.get("exec_path", "native"),
        time_s=time_s, energy_j=energy, compute_time_s=t_compute, memory_time_s=t_memory,
        overhead_time_s=overhead, n_kernels=n_kernels, convert_time_s=convert_s)
    return cost


def _memory_time(hw: Hardware, bytes_by_level: Sequence, bandwidths):
    """t_memory = max(0, b_0 / bw_0, b_1 / bw_1, ...) (0 as the 0-d `ZERO`: np.maximum(0.0,
    x)'s values and types), with consecutive levels given the same bytes object b
    (`levels.level_bytes` shares one sum between levels crossed by the same tensors)
    priced once, at the run's least bandwidth, for a single profile: the same maximum in
    fewer operations (b / min(bw) is the largest quotient of every b >= 0; a b < 0 or
    -0.0 gives quotients at or under the running maximum, which starts at 0; a NaN gives
    NaN at every level). One loop, no list of pairs."""
    t_memory = ZERO
    if not hw.is_single:
        for b, bw in zip(bytes_by_level, bandwidths):
            t_memory = np.maximum(t_memory, b / bw)
        return t_memory
    run = run_bw = slowest = None  # the current run's bytes, bandwidth operand and number
    for b, bw, raw in zip(bytes_by_level, bandwidths, hw.bandwidth_bytes_per_s):
        if b is run:
            if raw < slowest:
                run_bw, slowest = bw, raw
            continue
        if run_bw is not None:
            t_memory = np.maximum(t_memory, run / run_bw)
        run, run_bw, slowest = b, bw, raw
    return t_memory if run_bw is None else np.maximum(t_memory, run / run_bw)


# ---- placement helpers ---------------------------------------------------------------------

def home_level(hw: Hardware, nbytes, persistent_only: bool = False):
    """Nearest level that holds `nbytes` (main memory otherwise).

    A cache holds data within its usable share (STAGING_FRACTION: LRU eviction by the
    streams passing through); a software-managed SRAM holds its full capacity, as a
    compiler places tensors there. For tensors passed between kernels only levels that
    keep data between kernels count (caches; SRAM off GPUs): `persistent_only`.
    """
    rooms = hw.exec_cache.get(("rooms", persistent_only))  # set for one profile only
    if rooms is None and hw.is_single:  # its candidate levels and their room as floats
        rooms = hw.exec_cache[("rooms", persistent_only)] = _rooms(hw, persistent_only)
    if rooms is not None:
        nearest, bounds, levels, level_ints = rooms
        if type(nbytes) is float or (not nbytes.ndim if type(nbytes) is np.ndarray else
                                     isinstance(nbytes, (int, float)) or np.ndim(nbytes) == 0):
            for j, room in nearest:  # the nearest level that holds it
                if nbytes <= room:
                    return j
            return hw.main
        if bounds is not None:  # rooms growing with the level: the first that holds it
            at = bounds.searchsorted(nbytes)  # NaN sorts last: main memory
            one = _one_value(at)
            return levels[at] if one is None else level_ints[one]  # one home for all
        nbytes = np.asarray(nbytes)
        home = np.full(nbytes.shape, hw.main)
        for j, room in reversed(nearest):  # the nearest written last
            home = np.where(nbytes <= room, j, home)
        return int(home.flat[0]) if np.all(home == home.flat[0]) else home
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


def _rooms(hw: Hardware, persistent_only: bool) -> tuple:
    """One profile's candidate levels for `home_level`: ((level, room), ...) nearest
    first, and where the rooms grow with the level, the rooms with main memory's
    (infinite) last and the levels a `searchsorted` index into them means, as an array
    and as a tuple of ints (else None, None, None)."""
    rooms = tuple((j, hw.capacity_bytes[j] if hw.scratchpad[j] else hw.usable(j))
                  for j in range(hw.main) if hw.persistent[j] or not persistent_only)
    if any(a[1] > b[1] for a, b in zip(rooms, rooms[1:])):
        return rooms, None, None, None
    levels = [j for j, _ in rooms] + [hw.main, hw.main]  # NaN: past inf
    return rooms, np.array([room for _, room in rooms] + [np.inf]), np.array(levels), \
        tuple(levels)


#: Elements up to which `_one_value` compares a list (one numpy pass beyond).
LIST_COMPARE = 64


def _one_value(a):
    """The value (an int) every element of integer array `a` has, else None (also for an
    empty array): counted in a list for small arrays (cheaper than a numpy pass)."""
    size = a.size
    if size <= LIST_COMPARE:
        values = a.tolist() if a.ndim == 1 else a.ravel().tolist()
        return values[0] if values and values.count(values[0]) == size else None
    return None if np.count_nonzero(a - a.flat[0]) else int(a.flat[0])


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


def bytes_through(hw: Hardware, home, level: int, nbytes):
    """Bytes seen at `level` for data homed at `home` (crosses every nearer level)."""
    if not isinstance(home, np.ndarray) or home.ndim == 0:
        return nbytes if home >= level else 0.0
    return np.where(home >= level, nbytes, 0.0)


def staging_bytes(hw: Hardware, level: int):
    """Usable bytes of the level staging the boundary below `level` (level 0 for itself)."""
    return hw.usable(max(level - 1, 0))


def output_tile(m, n, s_a, s_w, capacity):
    """Output tile tm x tn whose accumulators fill `capacity`, minimising re-reads.

    Minimise s_w*k*n*m/tm + s_a*m*k*n/tn subject to tm*tn = T: tm = sqrt(T*s_w/s_a),
    clipped to the problem.
    """
    if all(isinstance(x, (int, float)) for x in (m, n, s_a, s_w, capacity)):  # scalars
        t = max(capacity / ACC_BYTES, 1.0)
        tm = min(max(math.sqrt(t * s_w / s_a), 1.0), m)
        tn = min(max(t / tm, 1.0), n)
        return min(max(t / tn, 1.0), m), tn
    return _clipped_tile(m, n, *_tile_target(s_a, s_w, capacity))


def _tile_target(s_a, s_w, capacity) -> tuple:
    """`output_tile`'s terms no problem size enters: the tile area T = max(capacity /
    ACC_BYTES, 1) and the unclipped tm = max(sqrt(T s_w / s_a), 1)."""
    t = np.maximum(capacity / ACC_BYTES, 1.0)
    return t, np.maximum(np.sqrt(t * s_w / s_a), 1.0)


def _clipped_tile(m, n, t, tm):
    """`output_tile` clipped to the problem (np.clip(x, 1, m) as its two ufuncs)."""
    tm = np.minimum(tm, m)
    tn = np.minimum(np.maximum(t / tm, ONE), n)
    tm = np.minimum(np.maximum(t / tn, ONE), m)
    return tm, tn


def staged_tiles(hw: Hardware, m, n, s_a, s_w, nd: int) -> tuple:
    """`output_tile` (tm, tn) at every staging level's `staging_bytes` at once, stacked
    along a leading axis (entry j - 1 for the boundary below level j >= 1, entry 0 also
    for level 0) in front of `nd` axes (at least the inputs' and the profiles'); the
    capacities' terms (`_tile_target`) are kept in `hw.exec_cache` for number operand
    bytes."""
    key = ("staged_tiles", nd, s_a, s_w) if type(s_a) is float and type(s_w) is float \
        and s_a == s_a and s_w == s_w else None  # NaN: not a usable key
    target = hw.exec_cache.get(key) if key is not None else None
    if target is None:
        rooms = np.array(np.broadcast_arrays(*(staging_bytes(hw, j)
                                               for j in range(1, max(hw.n_levels, 2)))))
        rooms = rooms.reshape(rooms.shape[:1] + (1,) * (nd - rooms.ndim + 1) + rooms.shape[1:])
        target = _tile_target(s_a, s_w, rooms)
        if key is not None:
            for a in target:
                a.flags.writeable = False  # shared by every call on this hardware
            hw.exec_cache[key] = target
    return _clipped_tile(m, n, *target)
