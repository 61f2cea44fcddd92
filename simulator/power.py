"""Board power and energy: the one power model (simulate, serve, size, train, plan).

Per device, from the profile's `power:` section (profiles.PowerSpec) and the dynamic
energy the kernel model counts (ops x energy/op per data type + bytes x energy/byte per
memory level, `roofline._finish`):

* busy power   P = active + D / (n t)          (D: dynamic energy of all n devices, t:
                                                 busy time, `active`: baseline while
                                                 kernels run: clocks up, leakage)
* cap          C = tdp, or `sustained` when the unthrottled busy time exceeds `burst`
                 (mobile parts: peak vs sustained envelope)
* throttling   when P > C the clock drops to a fraction s of nominal such that the
               power above the idle floor scales as s^3 (dynamic power ~ f V^2 with
               V ~ f in the DVFS range; assumption):
               s = ((C - static) / (P - static))^(1/3), busy time t / s (every phase
               slows with the clock: an upper bound for memory-bound steps),
               energy n [static t / s + (P - static) t s^2] = n C t / s.
               s = 1 (no change) whenever P <= C.
* idle floor   `static` x (wall time - busy time) per device when a wall time is given.

Every device's power counts (`devices`); host CPU, DRAM DIMMs, fans and PUE are out of
scope unless a profile's `power:` section says it includes them.

API (vectorised: every argument may be a numpy array; results broadcast):

    power_and_energy(profile_or_hw, busy_time_s, dynamic_energy_j, devices=1,
                     wall_time_s=None, run_time_s=None)
        -> PowerEnergy(time_s, energy_j, average_power_w, split, clock_fraction,
                       throttled)

`dynamic_energy_j` is a number/array or a dict {component: array} (e.g. "compute",
"memory_hbm"); `split` holds "idle" (static floor), "active" (baseline uplift while
busy) and each dynamic component after throttling; their sum is `energy_j`.
`dynamic_split(hw, cost)` turns a KernelCost (simulator.roofline) into that dict
(compute + one entry per memory level).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from precsim.simulator.errors import InputError
from precsim.simulator.ops import new_frozen
from precsim.simulator.roofline import add_all

#: Components of `PowerEnergy.split` that do not scale with work (the static share).
STATIC_KEYS = ("idle", "active")
#: Numbers `power_and_energy` computes with as Python floats (the same IEEE doubles).
_NUMBERS = (float, int, np.float64)
#: The same as a set: whether a sequence holds numbers only is one `issuperset(map(type,
#: values))` (half the time of `all(...)` over a generator).
_NUMBER_TYPES = frozenset(_NUMBERS)


@dataclass(frozen=True)
class PowerParams:
    """Per-profile power envelope as arrays (W, s): idle floor, active baseline, peak cap,
    sustained cap and how long the peak holds (inf: no sustained envelope)."""

    static_w: object
    active_w: object
    cap_w: object
    sustained_w: object
    burst_s: object

    @property
    def envelope(self) -> tuple:
        """(static_w, active_w, cap_w, sustained_w, burst_s)."""
        return self.static_w, self.active_w, self.cap_w, self.sustained_w, self.burst_s

    @cached_property
    def _numbers(self) -> tuple | None:
        """The envelope as Python floats where every entry is a number, else None (what
        `power_and_energy` computes with on numbers)."""
        values = self.envelope
        return tuple(map(float, values)) if all(type(v) in _NUMBERS for v in values) \
            else None


def power_params(profile_or_hw) -> PowerParams:
    """The power envelope of a HardwareProfile, an object array of them or a packed
    `hardware.Hardware` (its `profiles`; memoised in its `exec_cache`)."""
    memo = getattr(profile_or_hw, "exec_cache", None)
    if memo is not None:
        if "power" not in memo:
            memo["power"] = power_params(profile_or_hw.profiles)
        return memo["power"]
    profiles = np.asarray(profile_or_hw, dtype=object)

    def field(get):
        out = np.vectorize(get, otypes=[float])(profiles)
        return out[()] if out.ndim == 0 else out

    def opt(name, missing):
        return field(lambda p: getattr(p.power, name).value
                     if getattr(p.power, name) is not None else missing)

    return PowerParams(static_w=field(lambda p: p.power.static.value),
                       active_w=field(lambda p: p.power.active.value),
                       cap_w=field(lambda p: p.power.tdp.value),
                       sustained_w=opt("sustained", np.nan), burst_s=opt("burst", np.inf))


@dataclass(frozen=True)
class PowerEnergy:
    """Result of `power_and_energy`: time after throttling (s), energy (J, all devices),
    average power (W, all devices) over max(wall, busy) time, energy split (J), the
    clock fraction s in (0, 1] and whether the cap bound."""

    time_s: object
    energy_j: object
    average_power_w: object
    split: dict
    clock_fraction: object
    throttled: object

    @property
    def static_j(self):
        """Energy that does not scale with work: idle floor + active baseline."""
        return add_all(map(self.split.__getitem__, STATIC_KEYS))

    @property
    def dynamic_j(self):
        return np.asarray(self.energy_j) - self.static_j


def _num(x):
    """`x` as numpy: arrays and numpy scalars as they are (their arithmetic is a 0-d
    array's), anything else through np.asarray."""
    return x if isinstance(x, (np.ndarray, np.generic)) else np.asarray(x)


def _scalar(x):
    if type(x) is np.float64 or type(x) is float:
        return x  # a number (np.asarray(x, dtype=float)[()] is an np.float64's value)
    arr = np.asarray(x, dtype=float)
    return arr[()] if arr.ndim == 0 else arr


def where(cond, a, b):
    """np.where; for a Python bool (numbers) the chosen value as it is."""
    return (a if cond else b) if type(cond) is bool else np.where(cond, a, b)


def _any(test) -> bool:
    return test if type(test) is bool else test.any()


def power_and_energy(profile_or_hw, busy_time_s, dynamic_energy_j, devices=1,
                     wall_time_s=None, run_time_s=None) -> PowerEnergy:
    """Throttled busy time, energy, average power and split (module docstring).
    `run_time_s`: length of the run that picks the envelope (peak `tdp` up to `burst`,
    then `sustained`); default the busy time itself (one call = one run). Where every
    input and the envelope are numbers the arithmetic runs on Python floats (the same
    operations in the same order: the same doubles as numpy's), else on arrays."""
    params = profile_or_hw if isinstance(profile_or_hw, PowerParams) \
        else power_params(profile_or_hw)
    parts = dynamic_energy_j if isinstance(dynamic_energy_j, dict) \
        else {"dynamic": dynamic_energy_j}
    numbers = params._numbers is not None and type(busy_time_s) in _NUMBERS \
        and type(devices) in _NUMBERS and (run_time_s is None or type(run_time_s) in _NUMBERS) \
        and _NUMBER_TYPES.issuperset(map(type, parts.values()))
    return _power(params, busy_time_s, parts, devices, wall_time_s, run_time_s, numbers)


#: The context `_power` computes numbers in (no numpy warnings to silence; reusable).
_QUIET_NUMBERS = nullcontext()


def _power(params: PowerParams, busy_time_s, parts: dict, devices, wall_time_s, run_time_s,
           numbers: bool) -> PowerEnergy:
    """`power_and_energy` of a PowerParams and a dict of dynamic parts; `numbers`: every
    input and the envelope are numbers (its callers know; the arithmetic on Python
    floats), else arrays."""
    as_float = float if numbers else _floats
    static_w, active_w, cap_w, sustained_w, burst_s = params._numbers if numbers else map(
        as_float, params.envelope)
    t, n = as_float(busy_time_s), as_float(devices)
    if _any(t < 0) or _any(n < 1):
        raise InputError(f"power model: busy time must be >= 0 s and devices >= 1, got "
                         f"{busy_time_s!r} s on {devices!r} devices")
    parts = {k: as_float(v) for k, v in parts.items()}
    dyn = sum(parts.values())
    if _any(dyn < 0):
        raise InputError("power model: dynamic energy must be >= 0 J")
    # numbers: no numpy warnings to silence (no division below divides by zero)
    with _QUIET_NUMBERS if numbers else np.errstate(divide="ignore", invalid="ignore"):
        busy_w = where(t > 0, active_w + dyn / (n * where(t > 0, t, 1.0)), static_w)
        run = t if run_time_s is None else as_float(run_time_s)
        cap = where(run > burst_s, sustained_w, cap_w)
        over = busy_w > cap  # then busy_w > cap > static_w (profiles.PowerSpec)
        s = 1.0 if over is False else \
            where(over, np.cbrt((cap - static_w) / where(over, busy_w - static_w, 1.0)), 1.0)
        time_s = t / s
        s2 = s * s
        split = {"idle": n * static_w * time_s,
                 "active": n * (active_w - static_w) * t * s2}
        for k, v in parts.items():
            split[k] = v * s2
        wall = time_s if wall_time_s is None else np.maximum(wall_time_s, time_s)
        split["idle"] = split["idle"] + n * static_w * (wall - time_s)
        energy = sum(split.values())
        average = where(wall > 0, energy / where(wall > 0, wall, 1.0), n * static_w)
    if numbers:  # every result a float or a numpy double already (`_scalar` keeps them)
        return new_frozen(PowerEnergy, time_s=time_s, energy_j=energy,
                          average_power_w=average, split=split, clock_fraction=s,
                          throttled=np.True_ if s < 1.0 else np.False_)  # np.bool_
    return PowerEnergy(time_s=_scalar(time_s), energy_j=_scalar(energy),
                       average_power_w=_scalar(average),
                       split={k: _scalar(v) for k, v in split.items()},
                       clock_fraction=_scalar(s), throttled=np.asarray(s < 1.0)[()])


def _floats(v):
    return np.asarray(v, dtype=float)


def power_per_phase(hws, busy_times, dynamics) -> tuple:
    """`power_and_energy(hw, t, dynamic)` of each phase (one run each), as one call along
    a leading phase axis where the phases share an envelope (one PowerParams, or equal
    scalar ones) and their busy times one shape that is not a number's (element for
    element the same arithmetic), else one call per phase (numbers: on Python floats).
    `dynamics`: dicts with the same keys."""
    params = [power_params(hw) for hw in hws]
    first = params[0]
    if _NUMBER_TYPES.issuperset(map(type, busy_times)) and all(
            _NUMBER_TYPES.issuperset(map(type, d.values())) for d in dynamics):  # numbers
        return tuple(_power(p, t, d, 1, None, None, p._numbers is not None)
                     for p, t, d in zip(params, busy_times, dynamics))
    if len({np.shape(t) for t in busy_times}) > 1 or not all(
            p is first or (all(np.ndim(v) == 0 for v in p.envelope) and p == first)
            for p in params):
        return tuple(power_and_energy(p, t, d) for p, t, d in zip(params, busy_times, dynamics))
    pe = power_and_energy(first, _phases(busy_times),
                          {k: _phases([d[k] for d in dynamics]) for k in dynamics[0]})
    return tuple(PowerEnergy(time_s=pe.time_s[i], energy_j=pe.energy_j[i],
                             average_power_w=pe.average_power_w[i],
                             split={k: v[i] for k, v in pe.split.items()},
                             clock_fraction=pe.clock_fraction[i], throttled=pe.throttled[i])
                 for i in range(len(busy_times)))


def _phases(values) -> np.ndarray:
    """`values` (one per phase) along a new leading axis, broadcast to one shape."""
    try:
        return np.array(values, dtype=float)  # one shape (the common case)
    except ValueError:
        return np.stack(np.broadcast_arrays(*values)).astype(float, copy=False)


def dynamic_split(hw, cost) -> dict:
    """Dynamic energy of a KernelCost by component: "memory_<level>" = bytes moved at
    the level x its energy per byte; "compute" = the rest (matrix, vector and
    conversion ops x their energy per op)."""
    moved = cost.bytes_moved
    memory = {key: _num(moved[name]) * e for key, name, e in memory_keys(hw)}
    compute = _num(cost.energy_j) - add_all(memory.values())
    return {"compute": _clip_negative(compute), **memory}


def memory_keys(hw) -> tuple:
    """(("memory_<level>", level, energy per byte), ...) of `hw`'s levels, nearest first:
    the memory components of `dynamic_split` (kept per packed hardware)."""
    energies = hw.energy_per_byte_j
    kept = hw.exec_cache.get("memory_keys")
    if kept is None or kept[0] is not energies:
        kept = hw.exec_cache["memory_keys"] = (energies, tuple(
            (f"memory_{name}", name, e) for name, e in zip(hw.level_names, energies)))
    return kept[1]


_ZERO = np.float64(0.0)


def _clip_negative(x):
    """np.maximum(x, 0.0); a numpy double picked by comparison (the same value and type,
    NaN kept, -0.0 to 0.0 as np.maximum gives it: ~80 against ~450 ns for the ufunc)."""
    if type(x) is np.float64:
        return x if x > 0.0 or x != x else _ZERO
    return np.maximum(x, 0.0)
