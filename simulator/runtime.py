"""Runtime profiles: what a software stack does on top of the silicon (runtimes/*.yaml).

A runtime states, apart from the hardware profile, which kernels it has for which
element types (`kernels:`), how many kernels a transformer block runs and whether
attention is one fused kernel (`fusion:`), how kernels are launched (`launch:` CUDA
graphs or per-kernel host launches), multipliers on the hardware's achievable fractions
(`efficiency:`), the share of device memory it keeps back (`memory_reserve`, vLLM's
1 - gpu_memory_utilization), the device kinds it runs on (`applies_to`) and the
compute unit it prefers on a SoC (`preferred_unit`: one unit, or a mapping
`{default: gpu, <hardware profile name>: cpu}` read by `unit_preference`). Every number
is a cited quantity of simulator.profiles and every kernel statement cites its source.

`apply_runtime(runtime, profile, quant)` gives the `RuntimeExecution`: the hardware
profile as this runtime runs it (a new validated profile, same name, each changed
number's provenance naming the runtime) and the request switches `fused_dequant`
(False: weights are dequantised by a separate kernel before the GEMM) and `flash`.
The `reference` runtime states nothing: the profile and today's numbers unchanged.
Runtimes are found by name in the shipped runtimes/ folder or read from a YAML path
(`load_runtime`).
"""
from __future__ import annotations

import difflib
import functools
import os
import stat
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, StrictBool, ValidationError, model_validator

from precsim.simulator.compute_units import phase_choice, place_units, with_unit_views
from precsim.simulator.dtypes import DTYPE_BITS, FLOAT_DTYPES
from precsim.simulator.errors import InputError
from precsim.simulator.io import (MAX_YAML_BYTES, is_file_reference, load_yaml_mapping,
                                  read_text_bounded)
from precsim.simulator.profiles import (Count, Fraction, HardwareProfile, Share, Time,
                                        _Cited, _Strict)
from precsim.simulator.ops import new_frozen, object_memo
from precsim.simulator.quant import GROUPS, as_quant
from precsim.simulator.schema_errors import format_validation_error
from precsim.simulator.units import parse_quantity

#: The runtime that reproduces PrecSim without a runtime layer (the default).
REFERENCE = "reference"
#: Kernels of one dense block in PrecSim's op graph (simulator/ops.py): a runtime's
#: `fusion.kernels_per_layer` scales the launch cost of each of them by N / 9.
BLOCK_KERNELS = 9.0

DeviceKind = Literal["gpu", "cpu", "npu"]
#: A hardware profile name (shipped or a user's) or `default`, keying a per-profile unit.
ProfileKey = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")]
#: Device kinds a hardware profile's `kind` offers (a SoC has all three units).
PROFILE_DEVICES = {"gpu": ("gpu",), "cpu": ("cpu",), "accelerator": ("npu",),
                   "mobile_soc": ("cpu", "gpu", "npu")}

#: Element types a runtime states kernels for: every type a format can use.
KernelDType = Literal[tuple(DTYPE_BITS)]  # type: ignore[valid-type]
KernelMode = Literal["native", "fused", "dequantise_then_gemm", "kernel_else_dequantise",
                     "emulated", "unsupported"]


class KernelSupport(_Cited):
    """What the runtime does with one element type, and its source.

    native / fused: as the hardware profile runs it (native engines; non-native weights
    dequantised in the GEMM's inner loop: the profile's `weight_only` kernel or its
    in-register fallback). dequantise_then_gemm: weights of this type are converted to
    the execution type by a separate kernel (read packed, write wide) before the GEMM
    reads them wide; the profile's weight-only kernel is not used.
    kernel_else_dequantise: the profile's weight-only kernel where it has one, else
    dequantise_then_gemm. emulated: the chip's native engine for this type is not used
    (a fallback on the narrowest wider native type). unsupported: a format using this
    type is refused (exit 2). `stream_efficiency` (fused / native kernels): the share of
    the hardware's streaming rate this runtime's kernel reaches on weights of this type,
    a multiplier on the stream fraction of the kernel that reads them (a non-native type
    without a weight-only kernel in the profile gets one: its fallback's execution type
    at that type's rates, conversion hidden in the kernel)."""

    kernel: KernelMode
    stream_efficiency: Fraction | None = None

    @model_validator(mode="after")
    def _efficiency_needs_a_kernel(self):
        if self.stream_efficiency is not None and self.kernel not in ("native", "fused"):
            raise ValueError(f"stream_efficiency is for native or fused kernels, not "
                             f"{self.kernel}")
        return self


class Fusion(_Strict):
    """`kernels_per_layer`: kernels one block launches (PrecSim's graph runs
    BLOCK_KERNELS; the launch cost is scaled by N / BLOCK_KERNELS, the element-wise
    traffic is unchanged); `attention: unfused` runs QK^T, softmax and PV as three
    kernels with the scores in memory (`--no-flash`)."""

    kernels_per_layer: Count | None = None
    attention: Literal["fused", "unfused"] | None = None


class Launch(_Strict):
    """`graphs`: kernels are replayed from a captured graph (CUDA graphs) rather than
    launched one by one from the host; `per_kernel`: the cost each kernel adds (graph
    replay per node, or the host gap per launch), replacing the profile's
    `overheads.kernel_launch` and its per-type `launch` figures. A runtime with graphs
    must state it."""

    graphs: StrictBool
    per_kernel: Time | None = None

    @model_validator(mode="after")
    def _graph_cost(self):
        if self.graphs and self.per_kernel is None:
            raise ValueError("graphs: true needs per_kernel (the replay cost per kernel)")
        return self


class Efficiency(_Strict):
    """Multipliers on the hardware's achievable fractions: `gemm` on every
    `compute.*.achievable_fraction` and `weight_only.*.achievable_fraction`,
    `memory_bandwidth` on main memory's `achievable_fraction`. A product above 1 is
    refused (the hardware figure is the ceiling). `expert_stream`, per expert weight
    type: the share of the GEMM weight-streaming rate the runtime's grouped expert GEMM
    (MoE) kernel reaches (the profile's `overheads.expert_stream`); `expert_tile_rows`,
    per expert weight type: rows of matrix work every stored expert runs per pass,
    routed to or not (the profile's `overheads.expert_tile_rows`)."""

    gemm: Count | None = None
    memory_bandwidth: Count | None = None
    expert_stream: dict[KernelDType, Fraction] | None = None
    expert_tile_rows: dict[KernelDType, Count] | None = None


class RuntimeProfile(_Strict):
    """A software stack: identity, sources, device kinds and what it changes."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    description: str = Field(min_length=1)
    sources: list[str] = Field(default_factory=list)
    applies_to: list[DeviceKind] = Field(min_length=1)
    preferred_unit: DeviceKind | dict[ProfileKey, DeviceKind] | None = None
    trains: StrictBool = False  # runs training steps (`precsim train --runtime`)
    kernels: dict[KernelDType, KernelSupport] = Field(default_factory=dict)
    fusion: Fusion | None = None
    launch: Launch | None = None
    efficiency: Efficiency | None = None
    memory_reserve: Share | None = None
    notes: list[str] = Field(default_factory=list)

    _path: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _cited(self):
        stated = (self.kernels or self.fusion or self.launch or self.efficiency
                  or self.memory_reserve)
        if stated and not self.sources:
            raise ValueError("sources: a runtime that states anything lists its sources")
        return self

    @property
    def path(self) -> str | None:
        return self._path

    def unit_preference(self, profile_name: str) -> str | None:
        """The unit this runtime prefers on hardware profile `profile_name`: the single
        `preferred_unit`, or the mapping's entry for that name, else its `default`."""
        pref = self.preferred_unit
        if isinstance(pref, dict):
            return pref.get(profile_name, pref.get("default"))
        return pref

    @property
    def is_reference(self) -> bool:
        """States nothing: every profile runs as it is (today's numbers)."""
        return not (self.kernels or self.fusion or self.launch or self.efficiency
                    or self.memory_reserve)


# ---- loading -------------------------------------------------------------------------------

_MODELS = (RuntimeProfile, KernelSupport, Fusion, Launch, Efficiency, Count, Share, Time,
           Fraction)


def runtime_from_mapping(doc: dict, source: str) -> RuntimeProfile:
    """Validate a YAML document into a RuntimeProfile; errors name `source` and field."""
    try:
        runtime = RuntimeProfile.model_validate(doc)
    except ValidationError as exc:
        names = frozenset(n for m in _MODELS for n in m.model_fields)
        raise InputError(format_validation_error(exc, source, doc, names)) from None
    runtime._path = source
    return runtime


@functools.cache
def builtin_runtime_dir() -> Path:
    """The shipped runtimes folder (package data, or the source checkout's root; looked up
    once per process)."""
    packaged = resources.files("precsim.simulator").joinpath("runtimes")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "runtimes"


#: resolved file path -> (its stat stamp, its bytes, the runtime read from them)
_READ: dict = {}


def _stamp(path: str):
    """(mtime_ns, size, inode) of a regular file, else None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def load_runtime_file(path: str | os.PathLike) -> RuntimeProfile:
    """Read and validate one runtime YAML (memoised while the file's stat stamp, else its
    bytes, are the same; errors name the file and field)."""
    key = os.path.abspath(path)
    hit = _READ.get(key)
    stamp = _stamp(key)
    if hit is not None and stamp is not None and hit[0] == stamp:
        return hit[2]  # unchanged since read: no re-read (the scalar simulate path)
    try:  # bounded, regular files only: a FIFO or device is refused, never read
        data = read_text_bounded(key, "runtime profile", MAX_YAML_BYTES)
    except InputError:
        data = None  # load_yaml_mapping below says why
    if hit is not None and data is not None and hit[1] == data:
        _READ[key] = (stamp, data, hit[2])
        return hit[2]
    runtime = runtime_from_mapping(load_yaml_mapping(path, what="runtime profile"), str(path))
    if data is not None:
        _READ[key] = (stamp, data, runtime)
    return runtime


def list_runtimes() -> list[RuntimeProfile]:
    """The shipped runtimes, `reference` first."""
    found = [load_runtime_file(p) for p in sorted(builtin_runtime_dir().glob("*.yaml"))]
    return sorted(found, key=lambda r: (r.name != REFERENCE, r.name))


#: shipped runtime name -> the runtime read from runtimes/NAME.yaml (package data, fixed
#: while the process runs; a user's YAML path is re-checked by its stat stamp instead)
_SHIPPED: dict = {}


def load_runtime(name_or_path: str | os.PathLike | RuntimeProfile | None = None
                 ) -> RuntimeProfile:
    """A runtime by name (runtimes/), by YAML path, or as given; None: `reference`."""
    if isinstance(name_or_path, RuntimeProfile):
        return name_or_path
    text = REFERENCE if name_or_path is None else str(name_or_path)
    found = _SHIPPED.get(text)  # only names that are no file reference are kept
    if found is not None:
        return found  # package data: read once per process (no stat per scalar call)
    if is_file_reference(text):
        return load_runtime_file(os.path.expanduser(text))
    shipped = builtin_runtime_dir() / f"{text}.yaml"
    if shipped.is_file():
        found = load_runtime_file(shipped)
        if found.name == text:
            _SHIPPED[text] = found
            return found
    known = {r.name: r for r in list_runtimes()}
    if text in known:
        return known[text]
    close = difflib.get_close_matches(text, list(known), n=2, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise InputError(f"--runtime: unknown runtime {text!r}{hint} (known: "
                     f"{', '.join(known)}; or a path to a runtime YAML)")


# ---- applying a runtime to a profile ------------------------------------------------------

@dataclass(frozen=True)
class RuntimeExecution:
    """A hardware profile as a runtime runs it, and the request switches it sets."""

    runtime: RuntimeProfile
    profile: HardwareProfile
    fused_dequant: bool = True
    flash: bool = True
    approximations: tuple[str, ...] = ()


def emulated_engine(profile: HardwareProfile, dtype: str, why: str, where: str) -> dict:
    """Overrides (HardwareProfile.with_overrides; keys per type, so several combine) that
    drop `dtype`'s native engine for a fallback on the narrowest wider native type of the
    same family (the elements converted at one vector op each; `why` the stated
    assumption, "{ref}" in it replaced by that type); other types' fallback rules that
    executed on or converted through `dtype` follow it to that type. `where` prefixes
    errors."""
    if not profile.native(dtype):
        raise InputError(f"{where}: {dtype} is not native on {profile.name} "
                         f"(native: {', '.join(profile.compute)})")
    bits, family = DTYPE_BITS[dtype], dtype in FLOAT_DTYPES
    wider = [d for d in profile.compute if DTYPE_BITS[d] > bits]
    if not wider:
        raise InputError(f"{where}: profile {profile.name} has no native type wider than "
                         f"{dtype} to emulate it on")
    ref = min(wider, key=lambda d: ((d in FLOAT_DTYPES) != family, DTYPE_BITS[d]))
    rule = {"execute_as": ref, "convert_dtype": ref,
            "convert_ops_per_element": {"value": 1.0,
                                        "assumed": why.replace("{ref}", ref)}}
    follow = {f"fallbacks.{other}.{key}": ref for other, r in profile.fallbacks.items()
              for key in ("execute_as", "convert_dtype") if getattr(r, key) == dtype}
    return {f"compute.{dtype}": None, f"fallbacks.{dtype}": rule, **follow}


def _format_dtypes(quant) -> dict[str, set[str]]:
    """{dtype: roles} of a format (weights, activations, KV cache over its groups)."""
    out: dict[str, set[str]] = {}
    for group in GROUPS:
        fmt = quant.for_group(group)
        for role, dtype in (("weights", fmt.weight_dtype), ("activations", fmt.act_dtype),
                            ("KV cache", fmt.kv_dtype)):
            out.setdefault(dtype, set()).add(role)
    return out


def _scaled(cited: dict, factor: float, what: str) -> dict:
    """A cited plain-number or quantity mapping times `factor`, provenance kept."""
    value = cited["value"]
    if isinstance(value, str):
        new = f"{parse_quantity(value, 'time') * factor * 1e6:.12g} us"
    else:
        new = round(float(value) * factor, 12)
    old = "; ".join(f"{k}: {cited[k]}" for k in ("source", "derived", "measured",
                                                   "assumed") if cited.get(k))
    return {"value": new, "derived": f"{value} x {what} ({old})"}


def _launch_overrides(rt: RuntimeProfile, doc: dict) -> dict:
    per = rt.launch.per_kernel if rt.launch else None
    kpl = rt.fusion.kernels_per_layer if rt.fusion else None
    if per is None and kpl is None:
        return {}
    scale = kpl.value / BLOCK_KERNELS if kpl else 1.0
    why = (f"runtime {rt.name} fusion.kernels_per_layer {kpl.value:g} / {BLOCK_KERNELS:g} "
           f"kernels of PrecSim's block ({kpl.provenance})" if kpl else "")

    def launch(cited: dict) -> dict:
        if per is not None:
            base = {"value": f"{per.value * 1e6:.12g} us",
                    "derived": f"runtime {rt.name} launch.per_kernel ({per.provenance})"}
            return _scaled(base, scale, why) if kpl else base
        return _scaled(cited, scale, why)

    out = {"overheads.kernel_launch": launch(doc["overheads"]["kernel_launch"])}
    for block in ("compute", "weight_only"):
        for dtype, spec in doc.get(block, {}).items():
            if "launch" in spec:
                out[f"{block}.{dtype}.launch"] = launch(spec["launch"])
    if "launch" in (doc.get("attention") or {}):
        out["attention.launch"] = launch(doc["attention"]["launch"])
    return out


def _efficiency_overrides(rt: RuntimeProfile, profile: HardwareProfile, doc: dict) -> dict:
    eff, out = rt.efficiency, {}
    if eff is None:
        return out
    targets = []
    if eff.gemm is not None:
        targets += [(f"{block}.{dtype}.achievable_fraction", spec["achievable_fraction"],
                     eff.gemm, "efficiency.gemm")
                    for block in ("compute", "weight_only")
                    for dtype, spec in doc.get(block, {}).items()]
    if eff.memory_bandwidth is not None:
        main = doc["memory"][-1]
        targets.append((f"memory.{main['name']}.achievable_fraction",
                        main["achievable_fraction"], eff.memory_bandwidth,
                        "efficiency.memory_bandwidth"))
    for path, cited, mult, field in targets:
        if float(cited["value"]) * mult.value > 1.0:
            raise InputError(f"runtime {rt.name}: {field} {mult.value:g} takes {path} of "
                             f"{profile.name} ({cited['value']}) above 1")
        out[path] = _scaled(cited, mult.value,
                            f"runtime {rt.name} {field} {mult.value:g} ({mult.provenance})")
    for field in ("expert_stream", "expert_tile_rows"):
        if getattr(eff, field):
            out[f"overheads.{field}"] = {
                dtype: {"value": item.value, "derived": f"runtime {rt.name} "
                        f"efficiency.{field} ({item.provenance})"}
                for dtype, item in getattr(eff, field).items()}
    return out


def _stream_overrides(rt: RuntimeProfile, profile: HardwareProfile, dtype: str,
                      support: KernelSupport) -> dict:
    """`kernels.DTYPE.stream_efficiency` applied to the kernel reading DTYPE weights."""
    eff = support.stream_efficiency
    doc = profile.raw()
    why = (f"runtime {rt.name} kernels.{dtype}.stream_efficiency {eff.value:g} "
           f"({eff.provenance})")

    def scaled(fraction: float, rows: int | None = None) -> dict:
        return {"value": round(fraction * eff.value, 12),
                "derived": f"{fraction:g} x {why}"} | ({"rows": rows} if rows else {})
    if dtype in profile.weight_only:
        return {f"weight_only.{dtype}.stream_fraction":
                scaled(profile.weight_only[dtype].stream_fraction_value)}
    if profile.native(dtype):
        spec, wide = profile.compute[dtype], profile.compute[dtype].gemm_stream_wide
        few_rows = spec.gemm_stream_fraction.rows if spec.gemm_stream_fraction else None
        return {f"compute.{dtype}.stream_fraction": scaled(spec.stream_fraction_value),
                f"compute.{dtype}.gemm_stream_fraction":
                    scaled(spec.gemm_stream_fraction_value, few_rows)} | (
            {f"compute.{dtype}.gemm_stream_wide": scaled(wide.value, wide.rows)}
            if wide else {})
    rule = profile.fallbacks.get(dtype)
    if rule is None:
        raise InputError(f"runtime {rt.name}: kernels.{dtype}.stream_efficiency: profile "
                         f"{profile.name} has neither a {dtype} engine, a weight-only "
                         f"kernel nor a fallback rule to apply it to")
    spec, raw = profile.compute[rule.execute_as], doc["compute"][rule.execute_as]
    return {f"weight_only.{dtype}": {
        "peak": raw["peak"], "achievable_fraction": raw["achievable_fraction"],
        "stream_fraction": scaled(spec.stream_fraction_value), "exclusive": True,
        "note": f"runtime {rt.name}'s {dtype} kernel: {rule.execute_as} math, {dtype} "
                "weights converted in registers (hidden)"}}


def _kernel_effects(rt: RuntimeProfile, profile: HardwareProfile, quant
                    ) -> tuple[dict, bool, list[str]]:
    """(overrides, fused_dequant, approximations) of the runtime's `kernels` for `quant`
    (None: the profile-level effects only)."""
    used = _format_dtypes(quant) if quant is not None else {}
    overrides: dict = {}
    separate, fused_listed = set(), set()
    for dtype, support in rt.kernels.items():
        mode, roles = support.kernel, used.get(dtype, set())
        if mode == "unsupported" and roles:
            raise InputError(f"runtime {rt.name} cannot run {dtype} "
                             f"({', '.join(sorted(roles))} of {quant.name}) on "
                             f"{profile.name}: {support.provenance}")
        if mode == "emulated" and profile.native(dtype):
            overrides.update(emulated_engine(
                profile, dtype, f"runtime {rt.name}: no {dtype} kernel ({support.provenance}); "
                "elements converted to {ref} at one vector op each", f"runtime {rt.name}"))
        if mode == "dequantise_then_gemm" and dtype in profile.weight_only:
            overrides[f"weight_only.{dtype}"] = None
        if support.stream_efficiency is not None:
            overrides.update(_stream_overrides(rt, profile, dtype, support))
        needs_pass = mode == "dequantise_then_gemm" or (
            mode == "kernel_else_dequantise" and dtype not in profile.weight_only)
        if "weights" in roles:  # gemm_cost splits only the weights it converts
            (separate if needs_pass else fused_listed).add(dtype)
    notes = []
    if separate and fused_listed:
        notes.append(f"runtime {rt.name}: dequantise-then-GEMM ({', '.join(sorted(separate))}) "
                     f"applied to every converted weight type of {quant.name}, "
                     f"{', '.join(sorted(fused_listed))} included")
    return overrides, not separate, notes


#: `_checked` per (runtime, profile) object pair (`ops.object_memo`: both frozen; an
#: error is raised again on every call, never kept).
_CHECKED: dict = {}


def _checked(rt: RuntimeProfile, profile: HardwareProfile) -> RuntimeExecution | None:
    """Check that `rt` runs on `profile`'s kind of device (InputError); the execution of a
    runtime that states nothing (the dataclass's defaults: `profile` as it is), else None."""
    offered = PROFILE_DEVICES.get(profile.kind, ())
    if not set(rt.applies_to) & set(offered):
        raise InputError(f"runtime {rt.name} runs on {', '.join(rt.applies_to)}; profile "
                         f"{profile.name} is a {profile.kind} ({', '.join(offered)})")
    if rt.is_reference:
        return new_frozen(RuntimeExecution, runtime=rt, profile=profile, fused_dequant=True,
                          flash=True, approximations=())
    return None


def apply_runtime(runtime, profile: HardwareProfile, quant=None) -> RuntimeExecution:
    """`profile` as `runtime` runs it (module docstring); `quant` (a format or its name)
    decides the format-dependent parts: refused types (InputError) and
    dequantise-then-GEMM (`fused_dequant=False`)."""
    rt = load_runtime(runtime)
    quant = as_quant(quant) if quant is not None else None
    if profile.compute_units:
        return _on_units(rt, profile, quant)
    reference = object_memo(_CHECKED, (rt, profile), lambda: _checked(rt, profile))
    if reference is not None:
        return reference
    doc = profile.raw()
    overrides, fused, notes = _kernel_effects(rt, profile, quant)
    overrides.update(_launch_overrides(rt, doc))
    overrides.update(_efficiency_overrides(rt, profile, doc))
    if rt.memory_reserve is not None:
        overrides["overheads.runtime_memory"] = {
            "value": rt.memory_reserve.value,
            "derived": f"runtime {rt.name} memory_reserve ({rt.memory_reserve.provenance})"}
    preference = rt.unit_preference(profile.name)
    if profile.kind == "mobile_soc" and preference and profile._unit is None:
        notes.append(f"runtime {rt.name} prefers the SoC's {preference}; profile "
                     f"{profile.name} is priced as the unit its compute entries describe")
    if rt.fusion and rt.fusion.kernels_per_layer:
        notes.append(f"runtime {rt.name}: {rt.fusion.kernels_per_layer.value:g} kernels per "
                     f"layer charged as launch cost only (PrecSim's block runs "
                     f"{BLOCK_KERNELS:g}; element-wise traffic unchanged)")
    if rt.efficiency is None and not any(k.stream_efficiency for k in rt.kernels.values()):
        notes.append(f"runtime {rt.name} states no measured efficiencies: the hardware "
                     f"profile's achievable fractions are used (not calibrated against "
                     f"{rt.name}; docs/runtimes.md)")
    new = profile.with_overrides(overrides, name=profile.name) if overrides else profile
    if overrides:
        new._path = f"{profile.name} under runtime {rt.name}"
    flash = not (rt.fusion and rt.fusion.attention == "unfused")
    return RuntimeExecution(rt, new, fused_dequant=fused, flash=flash,
                            approximations=tuple(notes))


def _on_units(rt: RuntimeProfile, profile: HardwareProfile, quant) -> RuntimeExecution:
    """A SoC (simulator.compute_units): its preferred unit placed, the runtime applied to
    the unit view of each phase (with `quant`'s kernel effects; to the other units
    without them); a unit the runtime does not run on (`applies_to`) is an error."""
    placed = place_units(profile, runtime_preference=rt.unit_preference(profile.name))
    used = {} if quant is None else {phase_choice(placed, quant, ph).unit: ph
                                     for ph in ("prefill", "decode")}
    for unit, phase in used.items():
        if not rt.is_reference and unit not in rt.applies_to:
            raise InputError(f"runtime {rt.name} runs on {', '.join(rt.applies_to)}, not on "
                             f"the {unit} of {profile.name} ({phase} of {quant.name})")
    runs = {u: apply_runtime(rt, placed.for_unit(u), quant if u in used else None)
            for u in placed.compute_units if u in used or u in rt.applies_to}
    first = [runs[u] for u in used] or list(runs.values())
    return RuntimeExecution(
        rt, with_unit_views(placed, {u: r.profile for u, r in runs.items()}),
        fused_dequant=all(r.fused_dequant for r in first),
        flash=all(r.flash for r in first),
        approximations=tuple(dict.fromkeys(n for r in first for n in r.approximations)))


def runtime_summary(rt: RuntimeProfile) -> dict:
    """The JSON description of a runtime (`precsim runtimes show`)."""
    return {"name": rt.name, "description": rt.description, "applies_to": rt.applies_to,
            "preferred_unit": rt.preferred_unit, "path": rt.path,
            **rt.model_dump(mode="json", exclude={"name", "description", "applies_to",
                                                  "preferred_unit"}, exclude_none=True)}
