"""Profile variants for what-ifs: the `--vary` grammar (VARY_HELP) and re-validated profiles.

`parse_vary` turns one `--vary FIELD=VALUES` argument into `Variation`s;
`profile_variants` takes the Cartesian product of several into re-validated profiles
(every varied number written back with `derived:` provenance). `codesign.whatif` plans
once per variant; `codesign.study` checks a study's what-ifs with `parse_vary`.
"""
from __future__ import annotations

import difflib
import itertools
import math
import re
from dataclasses import dataclass
from typing import Any

from precsim.simulator.errors import InputError
from precsim.simulator.profiles import DTYPES, HardwareProfile
from precsim.simulator.quant import DTYPE_BITS as QUANT_DTYPE_BITS
from precsim.simulator.quant import FLOAT_DTYPES
from precsim.simulator.runtime import emulated_engine
from precsim.simulator.units import UnitError, parse_quantity

AS_IS = "as-is"
#: most profile variants one what-if evaluates (each is a full co-design plan, ~1 s)
MAX_VARIANTS = 256
VARY_HELP = """\
--vary grammar:

    FIELD=VALUE[,VALUE...]

FIELD is a dotted path into the profile YAML (memory levels by name), naming a cited
quantity, with or without the trailing `.value`: `memory.hbm.bandwidth`,
`memory.smem.capacity`, `memory.hbm.access_energy`, `compute.bf16.peak`,
`power.static`, `overheads.kernel_launch`. Each VALUE is

    as-is        the profile's own value (the reference)
    Kx           K times the profile's value (`0.5x`, `2x`, `150%`: a ratio of
                 simulator.units, K > 0)
    Q UNIT       an absolute quantity in a unit of the field (`6.7 TB/s`, `64 MiB`),
                 or a plain number for fractions and counts

FIELD may also be `compute.DTYPE` (a data type of the profile schema, e.g. `int4`,
`fp4_e2m1`, `ternary`) with the VALUES

    as-is            the profile's own support (native, fallback or none)
    native           a native engine for DTYPE, which must not be native already (its
                     fallback rule, if any, is dropped),
                     derived from the narrowest wider native type R of the same family
                     (int: int8 > bf16...; fp: fp8 > bf16 > fp32): peak = R's peak x
                     bits(R)/bits(DTYPE), same engine and achievable fraction, energy per
                     op = R's x bits(DTYPE)/bits(R)
    native:Kx        the derived native engine with K times its peak
    native:Q UNIT    a native engine with peak Q (`native:4000 TOP/s`)
    emulated         the native engine removed: DTYPE, which must be native, runs through
                     a fallback rule on the narrowest wider native type R of the same
                     family (converted to R at 1 vector op per element, an assumption
                     stated in the profile), as a chip without that engine would

Several `--vary` arguments combine as a Cartesian product. Every varied number is
written back with `derived:` provenance saying it is a what-if.
"""
_NUMBER_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


def _width(dtype: str) -> float:
    return float(QUANT_DTYPE_BITS[dtype])


def _family(dtype: str) -> str:
    return "fp" if dtype in FLOAT_DTYPES else "int"


@dataclass(frozen=True)
class Variation:
    """One value of one varied field: its label and the profile overrides it applies."""

    field: str
    value: str
    overrides: tuple[tuple[str, Any], ...]

    @property
    def label(self) -> str:
        return f"{self.field}={self.value}"


def _ratio(field: str, text: str) -> float | None:
    """The factor of a ratio VALUE (`2x`, `150%`, units.parse_quantity "ratio"); None for
    any other VALUE."""
    if not text.strip().endswith(("x", "%")):
        return None
    try:
        factor = parse_quantity(text, "ratio")
    except UnitError as exc:
        raise InputError(f"--vary {field}: {exc}") from None
    if not factor > 0:
        raise InputError(f"--vary {field}: ratio {text.strip()!r}; expected K > 0 (`2x`)")
    return factor


def _scale_quantity(text: Any, factor: float) -> Any:
    """'3.35 TB/s' x 2 -> '6.7 TB/s'; plain numbers are multiplied."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return text * factor
    match = _NUMBER_UNIT.match(str(text))
    if not match:
        raise InputError(f"cannot scale {text!r}: not a number with a unit")
    number, unit = match.groups()
    return f"{float(number) * factor:.6g} {unit}".strip()


def _node(doc: dict, parts: list[str]) -> Any:
    node: Any = doc
    for part in parts:
        if isinstance(node, list):
            node = next((item for item in node
                         if isinstance(item, dict) and item.get("name") == part), None)
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            node = None
        if node is None:
            return None
    return node


def _cited_fields(doc: Any, prefix: str = "") -> list[str]:
    """Every dotted path of a cited quantity (a mapping with `value`) in a profile."""
    if isinstance(doc, dict) and "value" in doc:
        return [prefix]
    out: list[str] = []
    if isinstance(doc, dict):
        for key, val in doc.items():
            out += _cited_fields(val, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(doc, list):
        for item in doc:
            if isinstance(item, dict) and "name" in item:
                out += _cited_fields(item, f"{prefix}.{item['name']}")
    return out


def editable_fields(profile: HardwareProfile) -> list[dict]:
    """Every `--vary` field of `profile`: each cited quantity (field, its value with unit,
    its provenance kind) and each `compute.DTYPE` with the profile's support for it."""
    doc = {k: v for k, v in profile.raw().items() if k != "sources"}
    rows = []
    for field in _cited_fields(doc):
        node = _node(doc, field.split("."))
        kind = next((k for k in ("source", "derived", "measured", "assumed") if k in node),
                    "")
        rows.append({"field": field, "value": str(node["value"]), "provenance": kind})
    units = doc.get("compute_units") or {}
    engines = ([(f"compute_units.{name}.compute", unit) for name, unit in units.items()]
               if units else [("compute", doc)])        # a SoC: per compute unit
    for prefix, spec in engines:
        native, fallbacks = spec.get("compute", {}) or {}, spec.get("fallbacks", {}) or {}
        for dtype in DTYPES:
            support = ("native" if dtype in native else
                       f"fallback (runs as {fallbacks[dtype].get('execute_as', '?')})"
                       if dtype in fallbacks else "none")
            rows.append({"field": f"{prefix}.{dtype}", "value": support,
                         "provenance": "support"})
    return rows


def _derived_native(profile: HardwareProfile, dtype: str) -> dict:
    """A native engine for `dtype` scaled from the narrowest wider native type."""
    bits, family = _width(dtype), _family(dtype)
    wider = [d for d in profile.compute if _width(d) > bits]
    if not wider:
        raise InputError(f"compute.{dtype}=native: profile {profile.name} has no native "
                         f"type wider than {dtype} to derive it from; give a peak "
                         "(native:4000 TOP/s)")
    ref = min(wider, key=lambda d: (_family(d) != family, _width(d)))
    ratio = _width(ref) / bits
    raw = profile.raw()["compute"][ref]
    note = f"what-if: {ratio:g} x the {ref} engine (throughput scales with operand width)"
    spec = {"engine": raw["engine"],
            "peak": {"value": _scale_quantity(raw["peak"]["value"], ratio), "derived": note},
            "achievable_fraction": {"value": raw["achievable_fraction"]["value"],
                                    "derived": f"what-if: as {ref}"},
            "energy_per_op": {"value": _scale_quantity(raw["energy_per_op"]["value"],
                                                       1 / ratio), "derived": note}}
    return spec


def _emulated_variation(profile: HardwareProfile, field: str, dtype: str) -> Variation:
    """`compute.DTYPE=emulated`: the native engine dropped for a fallback rule on the
    narrowest wider native type of the same family (VARY_HELP,
    simulator.runtime.emulated_engine)."""
    overrides = emulated_engine(profile, dtype, f"what-if: {dtype} engine removed; elements "
                                "converted to {ref} at one vector op each",
                                f"--vary {field}=emulated")
    return Variation(field, "emulated", tuple(overrides.items()))


def _native_variation(profile: HardwareProfile, field: str, dtype: str,
                      value: str) -> Variation:
    head, _, arg = value.partition(":")
    if head == "emulated" and not arg:
        return _emulated_variation(profile, field, dtype)
    if head != "native":
        raise InputError(f"--vary {field}: value {value!r}; expected as-is, native, "
                         "native:Kx, native:<peak with unit> or emulated")
    if profile.native(dtype):
        raise InputError(f"--vary {field}={value}: {dtype} is already native on "
                         f"{profile.name}; vary compute.{dtype}.peak instead")
    spec = _derived_native(profile, dtype)
    if arg:
        scale = _ratio(field, arg)
        if scale is not None:
            spec["peak"]["value"] = _scale_quantity(spec["peak"]["value"], scale)
        else:
            spec["peak"] = {"value": arg.strip(), "assumed": f"what-if: {field}={value}"}
    # per-type keys: several types made native in one variant combine
    return Variation(field, value, ((f"compute.{dtype}", spec), (f"fallbacks.{dtype}", None)))


def _quantity_variation(profile: HardwareProfile, field: str, value: str) -> Variation:
    doc = profile.raw()
    node = _node(doc, field.split("."))
    if not isinstance(node, dict) or "value" not in node:
        known = _cited_fields({k: v for k, v in doc.items() if k != "sources"})
        close = difflib.get_close_matches(field, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InputError(f"--vary {field}: profile {profile.name} has no cited quantity "
                         f"{field!r}{hint} (e.g. {', '.join(known[:6])}, ...)")
    scale = _ratio(field, value)
    if scale is not None:
        new = _scale_quantity(node["value"], scale)
        note = f"what-if: {value} the profile's {node['value']}"
    else:
        new = float(value) if _is_number(value) else value.strip()
        note = f"what-if: set to {value.strip()} (profile: {node['value']})"
    return Variation(field, value.strip(), ((field, {"value": new, "derived": note}),))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _dtype(field: str, name: str) -> str:
    if name not in DTYPES:
        raise InputError(f"--vary {field}: unknown data type {name!r} "
                         f"(profile data types: {', '.join(DTYPES)})")
    return name


def parse_vary(spec: str, profile: HardwareProfile) -> list[Variation]:
    """Parse one `FIELD=V1,V2` argument into variations (grammar: VARY_HELP)."""
    field, sep, values = spec.partition("=")
    field = field.strip().removesuffix(".value")
    items = [v.strip() for v in values.split(",")]
    if not sep or not field or not all(items):
        raise InputError(f"--vary {spec!r}: expected FIELD=VALUE[,VALUE...], "
                         "e.g. memory.hbm.bandwidth=0.5x,1x,2x or compute.int4=native")
    repeated = sorted({v for v in items if items.count(v) > 1})
    if repeated:
        raise InputError(f"--vary {spec!r}: value {repeated[0]!r} is given twice; give each "
                         "value once")
    parts = field.split(".")
    out = []
    for value in items:
        if value == AS_IS:
            out.append(Variation(field, AS_IS, ()))
        elif parts[0] == "compute" and profile.compute_units:
            raise InputError(f"--vary {field}: profile {profile.name} lists compute_units; "
                             f"vary compute_units.<unit>.{field} (units: "
                             f"{', '.join(profile.compute_units)})")
        elif parts[0] == "compute" and len(parts) == 2:
            out.append(_native_variation(profile, field, _dtype(field, parts[1]), value))
        elif parts[0] == "compute_units" and len(parts) == 4 and parts[2] == "compute":
            unit = profile.for_unit(parts[1])  # a SoC unit: its own compute and fallbacks
            v = _native_variation(unit, field, _dtype(field, parts[3]), value)
            out.append(Variation(field, v.value, tuple(
                (f"compute_units.{parts[1]}.{key}", val) for key, val in v.overrides)))
        else:
            out.append(_quantity_variation(profile, field, value))
    return out


def profile_variants(profile: HardwareProfile, specs: list[str]
                     ) -> list[tuple[str, HardwareProfile]]:
    """The Cartesian product of all `--vary` specs: (label, re-validated profile).

    The unmodified profile always comes first, labelled `as-is`; a combination equal to
    it (all values as-is) is not repeated.
    """
    fields = [spec.partition("=")[0].strip().removesuffix(".value") for spec in specs]
    twice = sorted({f for f in fields if fields.count(f) > 1})
    if twice:
        raise InputError(f"--vary: field {twice[0]!r} is varied twice "
                         f"({' and '.join(s for s, f in zip(specs, fields) if f == twice[0])}); "
                         "list all its values in one --vary")
    axes = [parse_vary(spec, profile) for spec in specs]
    if math.prod(len(axis) for axis in axes) > MAX_VARIANTS:
        raise InputError(f"--vary: {' x '.join(str(len(a)) for a in axes)} = "
                         f"{math.prod(len(a) for a in axes):,} variants; at most "
                         f"{MAX_VARIANTS} (each is a full co-design plan): vary fewer fields "
                         "or values")
    out = [(AS_IS, profile)]
    for combo in itertools.product(*axes):
        changed = [v for v in combo if v.overrides]
        if not changed:
            continue
        label = " ".join(v.label for v in changed)
        overrides: dict[str, Any] = {}
        # engines removed first: a type made native in the same variant then drops the
        # fallback rule that followed a removed engine (runtime.emulated_engine)
        for variation in sorted(changed, key=lambda v: v.value != "emulated"):
            overrides.update(dict(variation.overrides))
        try:
            variant = profile.with_overrides(overrides)
        except InputError as exc:
            raise InputError(f"--vary {label}: the varied profile is invalid: {exc}") from None
        out.append((label, variant))
    return out
