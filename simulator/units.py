"""Strict parsing of quantities written as strings with units ("3.35 TB/s", "50 MiB").

Every quantity in a hardware profile is a string: a number, one space or none, and a unit
from the table below. Values are returned in SI base units (bytes, bytes/s, ops/s, J,
J/byte, W, s, Hz; prices in $ per device-hour and $ per kWh, rates per second). A bare
number, an unknown unit or a unit of the wrong dimension is an error that lists what is accepted for that dimension (and the closest spelling).
Byte quantities take SI prefixes (KB = kB = 1e3 B) and binary ones (KiB = 1024 B);
"pJ/bit" is converted to J/B with 8 bits per byte.
Command-line flags and study YAML fields use `parse_flag_quantity`, which also takes a
bare number in the dimension's base unit (BASE_UNITS).
"""
from __future__ import annotations

import difflib
import math
import re
from decimal import Decimal, InvalidOperation

# Prefix factors are exact decimals so that "2.039 TB/s" is exactly the float 2.039e12.
# Decimal (SI) and binary prefixes. Byte quantities accept both (KB = 1e3, KiB = 1024).
_SI = {p: Decimal(f"1e{e}") for p, e in
       (("", 0), ("k", 3), ("K", 3), ("M", 6), ("G", 9), ("T", 12), ("P", 15))}
_BINARY = {"Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30),
           "Ti": Decimal(2**40)}
# micro: "u", MICRO SIGN U+00B5 and GREEK SMALL LETTER MU U+03BC
_SMALL = {p: Decimal(f"1e{e}") for p, e in
          (("", 0), ("m", -3), ("u", -6), ("\u00b5", -6), ("\u03bc", -6), ("n", -9),
           ("p", -12), ("f", -15))}
_ONE, _BITS_PER_BYTE = Decimal(1), Decimal(8)


def _table(prefixes: dict[str, Decimal], bases: dict[str, Decimal]) -> dict[str, Decimal]:
    return {p + b: pv * bv for p, pv in prefixes.items() for b, bv in bases.items()}


_EXACT: dict[str, dict[str, Decimal]] = {
    "bytes": {**_table(_SI, {"B": _ONE}), **_table(_BINARY, {"B": _ONE})},
    "bandwidth": {**_table(_SI, {"B/s": _ONE}), **_table(_BINARY, {"B/s": _ONE})},
    "compute_rate": _table(_SI, {"FLOP/s": _ONE, "OP/s": _ONE}),
    "energy": _table(_SMALL, {"J": _ONE}),
    # energy per byte moved; "pJ/bit" is converted with 8 bits per byte
    "energy_per_byte": {**_table(_SMALL, {"J/B": _ONE}),
                        **_table(_SMALL, {"J/bit": _BITS_PER_BYTE})},
    "power": {**_table(_SMALL, {"W": _ONE}), "kW": Decimal(1000)},
    "time": _table(_SMALL, {"s": _ONE}),
    "frequency": _table(_SI, {"Hz": _ONE}),
    # prices and rates: base units are those the cost model uses ($ per device-hour,
    # $ per kWh, per second), not SI ones
    "price_per_hour": {"$/h": _ONE, "$/hour": _ONE, "$/min": Decimal(60),
                       "$/s": Decimal(3600), "$/day": _ONE / Decimal(24)},
    "energy_price": {"$/kWh": _ONE, "$/MWh": Decimal("1e-3"), "$/Wh": Decimal(1000)},
    "rate": {f"{what}/{per}": _ONE / seconds for what in ("", "req")
             for per, seconds in (("s", _ONE), ("min", Decimal(60)), ("h", Decimal(3600)))},
    "ratio": {"x": _ONE, "%": Decimal("0.01")},
    "count": {"": _ONE, "k": Decimal(10**3), "K": Decimal(10**3), "M": Decimal(10**6),
              "B": Decimal(10**9), "G": Decimal(10**9), "T": Decimal(10**12)},
}
#: dimension name -> {unit spelling: factor to the SI base unit of that dimension}
UNITS: dict[str, dict[str, float]] = {
    dim: {unit: float(factor) for unit, factor in table.items()}
    for dim, table in _EXACT.items()}

# Applied to the stripped text: a number, optional spaces, then a unit with no leading
# digit. Linear-time (no nested or adjacent ambiguous quantifiers).
_QUANTITY = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(\D.*)?")
_MAX_SHOWN = 40  # characters of the offending text repeated in a message


class UnitError(ValueError):
    """A quantity string that does not parse to the expected dimension."""


def accepted_units(dimension: str) -> list[str]:
    """Unit spellings accepted for `dimension`, sorted for messages."""
    return sorted(UNITS[dimension], key=lambda u: (len(u), u))


def _shown(text: str) -> str:
    """repr of `text`, cut so that a message stays one short line."""
    return repr(text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "...")


def _examples(dimension: str) -> str:
    common = {"bytes": "B, KiB, MB, GB", "bandwidth": "GB/s, TB/s",
              "compute_rate": "TFLOP/s, TOP/s", "energy": "pJ, fJ",
              "energy_per_byte": "pJ/B, pJ/bit", "power": "W, mW",
              "time": "s, ms, us, ns", "frequency": "MHz, GHz",
              "price_per_hour": "$/h, $/min", "energy_price": "$/kWh, $/MWh",
              "rate": "/s, /min, req/s", "ratio": "x, %", "count": "k, M, B, T"}
    return common[dimension]


def parse_quantity(text: object, dimension: str) -> float:
    """Parse `text` ("3.35 TB/s") as a quantity of `dimension`, return SI float.

    Raises UnitError for a bare number, an unknown unit, a wrong dimension, or a
    non-finite value. Signs are accepted here; positivity is the schema's business.
    """
    if dimension not in UNITS:
        raise KeyError(f"unknown dimension {dimension!r}")
    examples = _examples(dimension)
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise UnitError(f"expected a {dimension} quantity as a string with a unit "
                        f"(e.g. {examples}), got {type(text).__name__}")
    if isinstance(text, (int, float)):
        raise UnitError(f"bare number {text!r}: write it with a unit of {dimension} "
                        f"(e.g. {examples})")
    match = _QUANTITY.fullmatch(text.strip())
    if not match:
        raise UnitError(f"cannot read {_shown(text)} as a number followed by a unit "
                        f"of {dimension} (e.g. {examples})")
    number, unit = match.group(1), match.group(2)
    if not unit:
        raise UnitError(f"bare number {_shown(text)}: add a unit of {dimension} "
                        f"(e.g. {examples})")
    factor = _EXACT[dimension].get(unit)
    if factor is None:
        other = [dim for dim, table in UNITS.items() if unit in table]
        if other:
            raise UnitError(f"{_shown(text)} is a {other[0]} quantity; expected "
                            f"{dimension} (e.g. {examples})")
        close = difflib.get_close_matches(unit, list(UNITS[dimension]), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UnitError(f"unknown unit {_shown(unit)} in {_shown(text)}; {hint}expected "
                        f"{dimension} (e.g. {examples})")
    try:
        value = float(Decimal(number) * factor)  # correctly rounded
    except InvalidOperation:  # exponent beyond Decimal's range
        value = math.inf
    if not math.isfinite(value):
        raise UnitError(f"{_shown(text)} is not a finite {dimension} quantity")
    return value


#: physical range of a hardware quantity per dimension (SI units), far wider than any real
#: device, so a typo of exponent or unit ("1e-300 TB/s") is refused instead of printing
#: 1e298 s: bytes 1 B..10 PB, bandwidth 1 kB/s..100 PB/s, compute 1 MOP/s..10 EOP/s,
#: energy per op 1 aJ..1 J, per byte 1 aJ/B..1 mJ/B, power 1 uW..10 MW, time 1 fs..1 h,
#: frequency 1 kHz..100 GHz
PHYSICAL_RANGE = {"bytes": (1.0, 1e16), "bandwidth": (1e3, 1e17),
                  "compute_rate": (1e6, 1e19), "energy": (1e-18, 1.0),
                  "energy_per_byte": (1e-18, 1e-3), "power": (1e-6, 1e7),
                  "time": (1e-15, 3600.0), "frequency": (1e3, 1e11)}


def check_physical(value: float, dimension: str, text: object = None) -> float:
    """`value` if inside PHYSICAL_RANGE[dimension] (any value for other dimensions),
    else UnitError quoting `text` and the range."""
    low, high = PHYSICAL_RANGE.get(dimension, (-math.inf, math.inf))
    if not low <= value <= high:
        raise UnitError(f"{_shown(str(value if text is None else text))} is outside the "
                        f"physical range of a {dimension} quantity "
                        f"({format_quantity(low, dimension)} to "
                        f"{format_quantity(high, dimension)})")
    return value


#: the base unit a bare number means on the command line, per dimension
BASE_UNITS = {"time": "s", "bytes": "B", "bandwidth": "B/s", "compute_rate": "OP/s",
              "energy": "J", "energy_per_byte": "J/B", "power": "W", "frequency": "Hz",
              "price_per_hour": "$/h", "energy_price": "$/kWh", "rate": "/s", "ratio": "x",
              "count": "1"}


def parse_flag_quantity(text: str | float, dimension: str) -> float:
    """A flag or study-field quantity: a number with a unit of `dimension` ("500 ms",
    "2.5 $/h", "20/s") parsed by parse_quantity, or a bare number (string or YAML
    number) in the dimension's base unit (BASE_UNITS: seconds for times). UnitError
    otherwise."""
    if isinstance(text, bool):
        raise UnitError(f"expected a {dimension} quantity, got {text!r}")
    try:
        value = float(str(text).strip())
    except ValueError:
        return parse_quantity(text, dimension)
    if not math.isfinite(value):
        raise UnitError(f"{_shown(str(text))} is not a finite {dimension} quantity")
    return value


def flag_help(dimension: str, example: str, bare: str, what: str = "") -> str:
    """The help text of a quantity flag: what it is, then an example with a unit and
    the bare-number form, e.g. "TIME, e.g. 500 ms or 0.5 (s)"."""
    lead = f"{what}; " if what else ""
    return f"{lead}{dimension.upper()}, e.g. {example} or {bare} ({BASE_UNITS[dimension]})"


_DISPLAY = {
    "bytes": ("B", ["", "K", "M", "G", "T", "P"]),
    "bandwidth": ("B/s", ["", "K", "M", "G", "T", "P"]),
    "compute_rate": ("OP/s", ["", "K", "M", "G", "T", "P"]),
    "frequency": ("Hz", ["", "K", "M", "G", "T"]),
}
_SMALL_DISPLAY = {"energy": "J", "energy_per_byte": "J/B", "power": "W", "time": "s"}
_FLAT_DISPLAY = {"price_per_hour": "$/h", "energy_price": "$/kWh", "rate": "/s", "ratio": "x"}
_SMALL_PREFIXES = (("", 1.0), ("m", 1e-3), ("u", 1e-6), ("n", 1e-9), ("p", 1e-12),
                   ("f", 1e-15))


def format_quantity(value: float, dimension: str, unit: str | None = None) -> str:
    """Human-readable string for an SI value, e.g. 3.35e12 bandwidth -> '3.35 TB/s'.

    Four significant digits; the result parses back with `parse_quantity`. `unit`
    replaces the base unit of a compute rate ("FLOP/s" for floating-point types). A count
    has no unit to show (KeyError).
    """
    if dimension in _DISPLAY:
        base, prefixes = _DISPLAY[dimension]
        if unit is not None:
            if dimension != "compute_rate" or unit not in ("OP/s", "FLOP/s"):
                raise ValueError(f"unit {unit!r} is not a base unit of {dimension}")
            base = unit
        index = 0
        while index < len(prefixes) - 1 and float(f"{abs(value) / 1000.0**index:.4g}") >= 1000:
            index += 1
        return f"{value / 1000.0**index:.4g} {prefixes[index]}{base}"
    if dimension in _FLAT_DISPLAY:
        return f"{value:.4g} {_FLAT_DISPLAY[dimension]}"
    base = _SMALL_DISPLAY[dimension]
    for prefix, factor in _SMALL_PREFIXES:
        if float(f"{abs(value) / factor:.4g}") >= 1 or prefix == _SMALL_PREFIXES[-1][0]:
            return f"{value / factor:.4g} {prefix}{base}"
    raise AssertionError("unreachable")
