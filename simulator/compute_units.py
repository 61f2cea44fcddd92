"""Compute units of a SoC (CPU cluster, GPU, NPU) and the unit a simulation runs on.

A profile's `compute_units:` names units, each with its own `compute`, `fallbacks`,
`weight_only`, `vector`, `overheads`, the `formats` its runtimes take and the share of
the SoC's DRAM bandwidth it reaches (`dram_fraction`). Shared by all units: main memory
(capacity, bandwidth, energy per byte) and the power envelope (`power:` static floor,
active baseline, peak and sustained caps): a unit's dynamic energy is its own energy
per op, the static and baseline power are the SoC's (simulator.power, unchanged).

`p.for_unit(name)` is the SoC as one unit sees it: an ordinary profile with the
unit's compute and the shared memory; every cost function runs on such views
(`phase_profiles`, called by simulator.cost for each phase), never on the SoC itself.
The SoC's top-level `compute`/`fallbacks` are synthesised as the union of its units'
(the first unit listing a type wins) for readers that take no format (`profiles list`).

Selection (`select_unit`): the requested unit, else the runtime's preferred unit where
the SoC has it and it takes the format, else the first unit of `default_unit[family]`
that takes it (`format_family`). Prefill and decode may run on different units
(`place_units`): prefill writes the KV cache to the shared DRAM and decode reads it in
place, so the handoff is zero-copy and costs nothing; a request's time and energy are
the prefill unit's prefill plus the decode unit's decode steps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from precsim.simulator.dtypes import FLOAT_DTYPES
from precsim.simulator.errors import InputError
from precsim.simulator.hardware import Hardware
from precsim.simulator.profile_loader import cached_profile
from precsim.simulator.profiles import HardwareProfile
from precsim.simulator.quant import GROUPS, QuantFormat, as_quant

def format_family(quant: QuantFormat) -> str:
    """float (float weights and activations), weight_only (integer / ternary weights,
    float activations), integer_blocks (integer activations in scaled blocks, llama.cpp's
    q8 activations: Q4_0, Q8_0) or integer (other integer activations: W8A8, BitNet);
    from the format of the mlp group (most of the weights)."""
    q = quant.for_group("mlp")
    if q.act_dtype in FLOAT_DTYPES:
        return "float" if q.weight_dtype in FLOAT_DTYPES else "weight_only"
    return "integer_blocks" if q.act_group_size else "integer"


def format_dtypes(quant: QuantFormat) -> list[str]:
    """Weight and activation data types of every layer group."""
    out: dict[str, None] = {}
    for group in GROUPS:
        q = quant.for_group(group)
        out |= dict.fromkeys((q.weight_dtype, q.act_dtype))
    return list(out)


def _unknown(p: HardwareProfile, unit: str, flag: str) -> InputError:
    return InputError(f"{flag} {unit}: profile {p.name} has no unit {unit!r} "
                      f"(compute_units: {', '.join(p.compute_units)})")


def _refused(p: HardwareProfile, unit: str, quant: QuantFormat) -> list[str]:
    """Data types of `quant` the unit's runtimes do not take (its `formats`)."""
    formats = p.compute_units[unit].formats
    return [] if formats is None else [d for d in format_dtypes(quant) if d not in formats]


def _cannot_run(p: HardwareProfile, unit: str, quant: QuantFormat, flag: str) -> InputError:
    return InputError(f"{flag} {unit}: unit {unit} of {p.name} cannot run {quant.name} "
                      f"(needs {', '.join(_refused(p, unit, quant))}); it runs "
                      f"{', '.join(p.compute_units[unit].formats)}")


@dataclass(frozen=True)
class UnitChoice:
    """The unit a format runs on and why."""

    unit: str
    reason: str

    def describe(self) -> str:
        return f"{self.unit} ({self.reason})"


def select_unit(profile: HardwareProfile, fmt, requested: str | None = None,
                runtime_preference: str | None = None, flag: str = "--unit"
                ) -> UnitChoice | None:
    """The unit `fmt` runs on: `requested` (an unknown unit or one whose `formats` do not
    take the format: InputError), else `runtime_preference` where the SoC has that unit
    and it takes the format, else the first of `default_unit[format_family]` that takes
    it. None for a profile without compute_units (a request for a unit is an error)."""
    quant = as_quant(fmt)
    p = profile
    if not p.compute_units:
        if requested is not None:
            raise InputError(f"{flag} {requested}: profile {p.name} has no compute_units "
                             "(units are listed by SoC profiles, e.g. snapdragon-8-gen3)")
        return None
    if requested is not None:
        if requested not in p.compute_units:
            raise _unknown(p, requested, flag)
        if _refused(p, requested, quant):
            raise _cannot_run(p, requested, quant, flag)
        return UnitChoice(requested, "requested")
    note = ""
    if runtime_preference is not None:
        if runtime_preference in p.compute_units and not _refused(p, runtime_preference,
                                                                 quant):
            return UnitChoice(runtime_preference, "the runtime's preferred unit")
        note = (f"; the runtime prefers {runtime_preference}, which "
                + ("cannot run it" if runtime_preference in p.compute_units
                   else "this SoC does not have"))
    family = format_family(quant)
    rule = p.default_unit[family]
    for unit in rule.units:
        if not _refused(p, unit, quant):
            return UnitChoice(unit, f"default for {quant.name}: {rule.reason}{note}")
    raise InputError(f"--quant {quant.name}: no unit of {p.name} runs it; "
                     + "; ".join(f"{u} runs {', '.join(p.compute_units[u].formats)}"
                                 for u in rule.units))


def place_units(profile: HardwareProfile, unit: str | None = None,
                prefill_unit: str | None = None, decode_unit: str | None = None,
                runtime_preference: str | None = None) -> HardwareProfile:
    """The profile with the units requested for prefill and decode (`unit` both; each
    None: the default for the format), read by every cost function through
    `phase_profiles`. Unchanged when nothing is requested."""
    pre = unit if prefill_unit is None else prefill_unit
    dec = unit if decode_unit is None else decode_unit
    if pre is None and dec is None and runtime_preference is None:
        return profile  # as given (a name too)
    old = profile._placement
    flags = (("--unit" if prefill_unit is None else "--prefill-unit", pre),
             ("--unit" if decode_unit is None else "--decode-unit", dec))
    if old:  # placed before: what is not asked again stays
        flags = tuple(f if name is not None else (old["flags"][ph], old[ph])
                      for f, name, ph in zip(flags, (pre, dec), ("prefill", "decode")))
        runtime_preference = runtime_preference or old["runtime"]
    for flag, name in flags:
        if name is not None and not profile.compute_units:
            raise InputError(f"{flag} {name}: profile {profile.name} has no compute_units "
                             "(units are listed by SoC profiles, e.g. snapdragon-8-gen3)")
        if name is not None and name not in profile.compute_units:
            raise _unknown(profile, name, flag)
    placed = profile.model_copy()  # shares the memo of unit views
    placed._placement = {"prefill": flags[0][1], "decode": flags[1][1],
                         "runtime": runtime_preference,
                         "flags": {"prefill": flags[0][0], "decode": flags[1][0]}}
    return placed


def with_unit_views(profile: HardwareProfile, views: dict) -> HardwareProfile:
    """The (placed) SoC with some units' views replaced, e.g. by a runtime's version of
    them (simulator.runtime.apply_runtime); the others as before."""
    out = profile.model_copy()
    out._views = {**profile._views, **views}
    return out


def phase_choice(profile: HardwareProfile, quant: QuantFormat, phase: str
                 ) -> UnitChoice | None:
    """The unit of `phase` (prefill; decode, and the mixed passes of chunked prefill,
    run on the decode unit) for `quant` on `profile` (None without compute_units)."""
    key = "prefill" if phase == "prefill" else "decode"
    placement = profile._placement
    return select_unit(profile, quant, placement.get(key), placement.get("runtime"),
                       flag=placement.get("flags", {}).get(key, "--unit"))


def phase_profiles(profile, quant, phase: str):
    """`profile` (a name, profile, packed Hardware or array of them) with every SoC
    replaced by the view of its unit for `phase` and each format of `quant` (broadcast
    against it); returned as given when no profile lists compute_units."""
    if isinstance(profile, Hardware):  # whether any has units: kept with the packing
        units = profile.exec_cache.get("compute_units")
        if units is None:
            units = profile.exec_cache["compute_units"] = any(
                p.compute_units for p in profile.profiles.reshape(-1))
        if not units:
            return profile
        profile = profile.profiles
    if isinstance(profile, (str, HardwareProfile)):
        single = cached_profile(profile)
        if not single.compute_units:
            return profile
        if isinstance(quant, QuantFormat):
            return single.for_unit(phase_choice(single, quant, phase).unit)
        profiles = np.empty((), dtype=object)
        profiles[()] = single
    else:
        src = np.asarray(profile, dtype=object)
        profiles = np.empty(src.shape, dtype=object)
        for idx in np.ndindex(src.shape):
            profiles[idx] = cached_profile(src[idx])
        if not any(p.compute_units for p in profiles.reshape(-1)):
            return profile
    quants = np.empty((), dtype=object)
    if isinstance(quant, QuantFormat):
        quants[()] = quant
    else:
        quants = np.asarray(quant, dtype=object)
    shape = np.broadcast_shapes(profiles.shape, quants.shape)
    ps, qs = np.broadcast_to(profiles, shape), np.broadcast_to(quants, shape)
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(shape):
        p = ps[idx]
        out[idx] = p.for_unit(phase_choice(p, qs[idx], phase).unit) \
            if p.compute_units else p
    return out


def unit_record(profile: HardwareProfile, quant: QuantFormat) -> dict | None:
    """{"prefill": {"unit", "reason"}, "decode": {...}} for --json (None: no units)."""
    choices = {ph: phase_choice(profile, quant, ph) for ph in ("prefill", "decode")}
    if choices["prefill"] is None:
        return None
    return {ph: {"unit": c.unit, "reason": c.reason} for ph, c in choices.items()}


def unit_line(profile: HardwareProfile, quant: QuantFormat) -> str:
    """'on cpu (default for W4A16: ...)' or 'prefill on npu (requested), decode on
    cpu (...); KV cache handed over in shared DRAM (zero copy)'; '' without units."""
    pre, dec = (phase_choice(profile, quant, ph) for ph in ("prefill", "decode"))
    if pre is None:
        return ""
    if pre == dec:
        return f"on {pre.describe()}"
    return (f"prefill on {pre.describe()}, decode on {dec.describe()}; KV cache handed "
            "over in shared DRAM (zero copy)")
