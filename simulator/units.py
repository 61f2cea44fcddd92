"""Strict parsing of quantities written as strings with units ("3.35 TB/s", "50 MiB").

Every quantity in a hardware profile is a string: a number, one space or none, and a unit
from the table below. Values are returned in SI base units (bytes, bytes/s, ops/s, J,
J/byte, W, s, Hz). A bare number, an unknown unit or a unit of the wrong dimension is an
error that lists what is accepted for that dimension.
"""
from __future__ import annotations

import math
import re

# Decimal (SI) and binary prefixes. Byte quantities accept both (KB = 1e3, KiB = 1024).
_SI = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}
_SMALL = {"": 1.0, "m": 1e-3, "u": 1e-6, "µ": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15}


def _table(prefixes: dict[str, float], bases: dict[str, float]) -> dict[str, float]:
    return {p + b: pv * bv for p, pv in prefixes.items() for b, bv in bases.items()}


#: dimension name -> {unit spelling: factor to the SI base unit of that dimension}
UNITS: dict[str, dict[str, float]] = {
    "bytes": {**_table(_SI, {"B": 1.0}), **_table(_BINARY, {"B": 1.0})},
    "bandwidth": {**_table(_SI, {"B/s": 1.0}), **_table(_BINARY, {"B/s": 1.0})},
    "compute_rate": _table(_SI, {"FLOP/s": 1.0, "OP/s": 1.0}),
    "energy": _table(_SMALL, {"J": 1.0}),
    # energy per byte moved; "pJ/bit" is converted with 8 bits per byte
    "energy_per_byte": {**_table(_SMALL, {"J/B": 1.0}), **_table(_SMALL, {"J/bit": 8.0})},
    "power": {**_table(_SMALL, {"W": 1.0}), "kW": 1e3},
    "time": _table(_SMALL, {"s": 1.0}),
    "frequency": _table(_SI, {"Hz": 1.0}),
}

_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\s\d].*?)?\s*$")


class UnitError(ValueError):
    """A quantity string that does not parse to the expected dimension."""


def accepted_units(dimension: str) -> list[str]:
    """Unit spellings accepted for `dimension`, sorted for messages."""
    return sorted(UNITS[dimension], key=lambda u: (len(u), u))


def parse_quantity(text: object, dimension: str) -> float:
    """Parse `text` ("3.35 TB/s") as a quantity of `dimension`, return SI float.

    Raises UnitError for a bare number, an unknown unit, a wrong dimension, or a
    non-finite value.
    """
    if dimension not in UNITS:
        raise KeyError(f"unknown dimension {dimension!r}")
    examples = ", ".join(accepted_units(dimension)[:8])
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise UnitError(f"expected a {dimension} quantity as a string with a unit "
                        f"(e.g. {examples}), got {type(text).__name__}")
    if isinstance(text, (int, float)):
        raise UnitError(f"bare number {text!r}: write it with a unit of {dimension} "
                        f"(e.g. {examples})")
    match = _QUANTITY.match(text)
    if not match:
        raise UnitError(f"cannot read {text!r} as a number followed by a unit of {dimension}")
    number, unit = match.group(1), match.group(2)
    if not unit:
        raise UnitError(f"bare number {text!r}: add a unit of {dimension} (e.g. {examples})")
    unit = unit.strip()
    factor = UNITS[dimension].get(unit)
    if factor is None:
        other = [dim for dim, table in UNITS.items() if unit in table]
        if other:
            raise UnitError(f"{text!r} is a {other[0]} quantity; expected {dimension} "
                            f"(units: {', '.join(accepted_units(dimension)[:12])})")
        raise UnitError(f"unknown unit {unit!r} in {text!r}; expected {dimension} "
                        f"(units: {', '.join(accepted_units(dimension)[:12])})")
    value = float(number) * factor
    if not math.isfinite(value):
        raise UnitError(f"{text!r} is not a finite quantity")
    return value


_DISPLAY = {
    "bytes": ("B", 1000.0, ["", "K", "M", "G", "T", "P"]),
    "bandwidth": ("B/s", 1000.0, ["", "K", "M", "G", "T", "P"]),
    "compute_rate": ("OP/s", 1000.0, ["", "K", "M", "G", "T", "P"]),
    "frequency": ("Hz", 1000.0, ["", "K", "M", "G", "T"]),
}


def format_quantity(value: float, dimension: str) -> str:
    """Human-readable string for an SI value, e.g. 3.35e12 bandwidth -> '3.35 TB/s'."""
    if dimension in _DISPLAY:
        unit, step, prefixes = _DISPLAY[dimension]
        magnitude = abs(value)
        index = 0
        while magnitude >= step and index < len(prefixes) - 1:
            magnitude /= step
            index += 1
        return f"{value / step**index:.4g} {prefixes[index]}{unit}"
    small_units = {"energy": "J", "energy_per_byte": "J/B", "power": "W", "time": "s"}
    unit = small_units[dimension]
    for prefix, factor in (("", 1.0), ("m", 1e-3), ("u", 1e-6), ("n", 1e-9), ("p", 1e-12)):
        if abs(value) >= factor or prefix == "p":
            return f"{value / factor:.4g} {prefix}{unit}"
    raise AssertionError("unreachable")
