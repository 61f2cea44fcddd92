"""Helpers on hardware-profile documents, before and around validation
(simulator.profiles): dotted-path overrides (`HardwareProfile.with_overrides`) and a
SoC's compute units (`compute_units:`): the synthesised top-level compute and the
units' consistency checks (selection and unit views: simulator.compute_units)."""
from __future__ import annotations

from typing import Any

from precsim.simulator.errors import InputError

FAMILIES = ("float", "weight_only", "integer", "integer_blocks")
#: Keys a SoC gives per unit, never at the top level.
UNIT_KEYS = ("compute", "fallbacks", "weight_only", "vector", "attention")


def union_compute(doc: dict) -> dict:
    """The document with top-level `compute`/`fallbacks` = the union of its units'
    (first unit listing a type wins; a fallback only for types no unit runs natively)."""
    taken = [k for k in UNIT_KEYS if k in doc]
    if taken:
        raise ValueError(f"`{taken[0]}` belongs to a unit when a profile lists "
                         f"compute_units: set compute_units.<unit>.{taken[0]} (the top-level "
                         "compute is the units' union)")
    units = doc["compute_units"]
    if not isinstance(units, dict) or not all(isinstance(u, dict) for u in units.values()):
        return doc  # the schema reports it
    compute: dict = {}
    for unit in units.values():
        for dtype, spec in (unit.get("compute") or {}).items():
            compute.setdefault(dtype, spec)
    fallbacks: dict = {}
    for unit in units.values():
        for dtype, rule in (unit.get("fallbacks") or {}).items():
            if dtype not in compute:
                fallbacks.setdefault(dtype, rule)
    return {**doc, "compute": compute, "fallbacks": fallbacks}


def check_units(p) -> None:
    """A SoC's units (a validated HardwareProfile `p`) are self-consistent and every
    format family has a default unit."""
    missing = [f for f in FAMILIES if f not in p.default_unit]
    if missing:
        raise ValueError(f"default_unit: needs every format family ({', '.join(FAMILIES)}); "
                         f"missing {', '.join(missing)}")
    for family, rule in p.default_unit.items():
        unknown = [u for u in rule.units if u not in p.compute_units]
        if unknown:
            raise ValueError(f"default_unit.{family}: unknown unit {unknown[0]!r} "
                             f"(units: {', '.join(p.compute_units)})")
    for name, unit in p.compute_units.items():
        for dtype, rule in unit.fallbacks.items():
            for target in (rule.execute_as, rule.convert_dtype):
                if target not in unit.compute:
                    raise ValueError(f"compute_units.{name}.fallbacks.{dtype}: {target} is "
                                     f"not native on unit {name} (native: "
                                     f"{', '.join(unit.compute)})")


def unit_document(doc: dict, unit: str, name: str) -> dict:
    """The profile document of a SoC as `unit` sees it: the unit's compute, fallbacks,
    kernels and overheads, the SoC's memory (main memory at the unit's `dram_fraction`
    where given) and power."""
    units = doc.get("compute_units") or {}
    if unit not in units:
        raise InputError(f"profile {name}: no unit {unit!r} (compute_units: "
                         f"{', '.join(units) or 'none'})")
    spec = units[unit]
    out = {k: v for k, v in doc.items() if k not in ("compute_units", "default_unit")}
    out.update({k: spec[k] for k in (*UNIT_KEYS, "overheads") if k in spec})
    if "dram_fraction" in spec:
        out["memory"][-1]["achievable_fraction"] = spec["dram_fraction"]
    return out


_PROVENANCE = ("source", "derived", "measured", "assumed")


def set_path(doc: dict, dotted: str, value: Any, profile_name: str) -> None:
    """Set (None: remove) the dotted path of a profile document in place; a cited number
    given a plain value becomes a what-if assumption (`HardwareProfile.with_overrides`)."""
    parts = dotted.split(".")
    node: Any = doc
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[:i]) or "top level"
        if isinstance(node, list):
            index = next((k for k, item in enumerate(node)
                          if isinstance(item, dict) and item.get("name") == part), None)
            if index is None and part.isdigit() and int(part) < len(node):
                index = int(part)
            if index is None:
                raise InputError(f"profile {profile_name}: override {dotted}: no item "
                                 f"{part!r} in {where}")
            key: Any = index
        elif isinstance(node, dict):
            if not last and node.get(part) is None:
                node[part] = {}
            key = part
        else:
            raise InputError(f"profile {profile_name}: override {dotted}: {where} is not "
                             "a mapping or list")
        if not last:
            node = node[key]
            continue
        current = node[key] if isinstance(node, list) or key in node else None
        if value is None:
            if isinstance(node, list):
                raise InputError(f"profile {profile_name}: override {dotted}: cannot "
                                 "remove a list item")
            node.pop(key, None)
        elif isinstance(current, dict) and "value" in current and not isinstance(value, dict):
            _override_cited(current, value)  # "memory.hbm.bandwidth": "6.7 TB/s"
        elif key == "value" and isinstance(node, dict) and not isinstance(value, dict):
            _override_cited(node, value)  # "memory.hbm.bandwidth.value": "6.7 TB/s"
        else:
            node[key] = value


def _override_cited(cited: dict, value: Any) -> None:
    """Set a cited quantity's value and mark it as a what-if assumption."""
    was = f"was {cited['value']}" if "value" in cited else "not in the profile"
    old = "; ".join(f"{k}: {cited[k]}" for k in _PROVENANCE if cited.get(k))
    for key in _PROVENANCE:
        cited.pop(key, None)
    cited["value"] = value
    cited["assumed"] = f"what-if override ({was}" + (f"; {old})" if old else ")")
