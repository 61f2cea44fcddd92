"""Hardware profiles: a pydantic schema for the YAML files in hw_profiles/.

Every number in a profile is a *cited quantity*: a mapping with the quantity as a string
with a unit (`value: 3.35 TB/s`) and at least one of `source` (datasheet, paper),
`derived` (the arithmetic), `measured` (how and when) or `assumed` (and why). Parsed
values are SI floats exposed through properties named with their unit
(`bandwidth_bytes_per_s`, `peak_ops_per_s`, `energy_per_byte_j`, ...).

`profile_from_mapping` validates a document; simulator.profile_loader reads the files.
"""
from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (Field, PrivateAttr, StrictBool, StrictInt, ValidationError,
                      model_validator)

from precsim.simulator.dtypes import (DTYPE_BITS, DTYPES, FLOAT_DTYPES, DType,  # noqa: F401
                                      rate_unit)  # FLOAT_DTYPES, rate_unit re-exported
from precsim.simulator.cited import (  # noqa: F401 (re-exported)
    Bandwidth, Bytes, CitedBandwidth, CitedBytes, CitedComputeRate, CitedEnergy,
    CitedEnergyPerByte, CitedFrequency, CitedPower, CitedTime, ComputeRate, Count, Energy,
    EnergyPerByte, Fraction, Frequency, Power, Share, Time, _Cited, _Strict)
from precsim.simulator.errors import InputError
from precsim.simulator.profile_gemm import GemmSpec
from precsim.simulator.profile_docs import (check_units, set_path, union_compute,
                                           unit_document)
from precsim.simulator.schema_errors import format_validation_error

Engine = Literal["matrix", "vector"]


class RowsFraction(Fraction):
    """A share measured with `rows` activation rows (a few-row GEMM stream fraction)."""

    rows: Annotated[StrictInt, Field(ge=2)] | None = None


class ComputeSpec(_Strict):
    """Dense peak of one data type on one engine, its achievable share and energy/op."""

    engine: Engine
    peak: ComputeRate
    achievable_fraction: Fraction
    energy_per_op: Energy
    stream_fraction: Fraction | None = None
    gemm_stream_fraction: RowsFraction | None = None
    gemm_stream_wide: RowsFraction | None = None
    launch: Time | None = None
    row_time: Time | None = None

    @model_validator(mode="after")
    def _wide_has_rows(self):
        wide, few = self.gemm_stream_wide, self.gemm_stream_fraction
        if wide is not None and (few is None or few.rows is None or wide.rows is None
                                 or wide.rows <= few.rows):
            raise ValueError("gemm_stream_wide needs `rows` above the `rows` of "
                             "gemm_stream_fraction (the two row counts the shares were "
                             f"measured at), got {few.rows if few else None} and "
                             f"{wide.rows}")
        return self

    @property
    def row_time_s(self) -> float:
        """Time per weight row (output feature) per call of the one-row matrix kernels
        (GEMV) reading weights of this type, beyond streaming it: the horizontal
        reduction and store (`row_time`; 0 when absent)."""
        return self.row_time.value if self.row_time else 0.0

    @property
    def launch_s(self) -> float | None:
        """Per-call overhead of the matrix kernels reading weights of this type
        (`launch`; None: the profile's `overheads.kernel_launch`)."""
        return self.launch.value if self.launch else None

    @property
    def peak_ops_per_s(self) -> float:
        return self.peak.value

    @property
    def stream_fraction_value(self) -> float:
        """Share of each memory level's achievable bandwidth that matrix kernels reach
        when streaming weights of this type, whatever type their math runs in
        (`stream_fraction`; 1 when absent)."""
        return self.stream_fraction.value if self.stream_fraction else 1.0

    @property
    def gemm_stream_fraction_value(self) -> float:
        """The same share for matrix kernels with more than one row of activations,
        where the library takes another path (MKL's sgemm packs the weight panel that
        its sgemv streams as is): `gemm_stream_fraction`, else `stream_fraction`."""
        return (self.gemm_stream_fraction.value if self.gemm_stream_fraction
                else self.stream_fraction_value)

    @property
    def gemm_stream_points(self) -> tuple[float, float, float, float]:
        """(rows, share, wide rows, wide share) of the few-row GEMM stream fraction
        (simulator.mapping.gemm_stream_share interpolates between them); without
        `gemm_stream_wide` both points are `gemm_stream_fraction_value` (no row effect)."""
        few, wide = self.gemm_stream_fraction_value, self.gemm_stream_wide
        if wide is None:
            return 2.0, few, 2.0, few
        return float(self.gemm_stream_fraction.rows), few, float(wide.rows), wide.value

    @property
    def achievable_ops_per_s(self) -> float:
        return self.peak.value * self.achievable_fraction.value

    @property
    def energy_per_op_j(self) -> float:
        return self.energy_per_op.value


class FallbackRule(_Strict):
    """How a data type the chip cannot run natively is executed.

    Elements of the non-native type are converted to `execute_as` (a native type) at
    `convert_ops_per_element` vector operations each, run at the peak of `convert_dtype`;
    the math then runs natively in `execute_as`.
    """

    execute_as: DType
    convert_ops_per_element: Count
    convert_dtype: DType
    note: str | None = None


class WeightOnlyKernel(_Strict):
    """A dedicated kernel for weights of one (non-native or integer) type times
    floating-point activations, e.g. PyTorch's packed int4/int8 weight-only matmuls:
    it reads the packed weights, converts them in registers (hidden: no separate
    conversion time) and runs at `peak` x `achievable_fraction`, streaming operands at
    `stream_fraction` of each memory level's achievable bandwidth (1 when absent).
    Energy per op: `energy_per_op`, else the activation type's. `exclusive: true`: the
    engine always dispatches these weights to this kernel (PyTorch does); otherwise it
    is one more execution option and each kernel takes the fastest. `launch`: its
    per-call overhead (default `overheads.kernel_launch`). `row_time`: its time per
    weight row (output feature) of a one-row call beyond streaming it, as
    `ComputeSpec.row_time` (0 when absent)."""

    peak: ComputeRate
    achievable_fraction: Fraction
    stream_fraction: Fraction | None = None
    energy_per_op: Energy | None = None
    exclusive: StrictBool = False
    launch: Time | None = None
    row_time: Time | None = None
    note: str | None = None

    @property
    def achievable_ops_per_s(self) -> float:
        return self.peak.value * self.achievable_fraction.value

    @property
    def stream_fraction_value(self) -> float:
        return self.stream_fraction.value if self.stream_fraction else 1.0


#: element-wise kernels a profile's `vector.rate_by_kernel` / `widen_by_kernel` can name:
#: the activations (simulator.models.ACTIVATION_OPS), the norms (kernels.norm_cost
#: kinds), the binary ops
VectorKernel = Literal["silu", "gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "relu2",
                      "rmsnorm", "layernorm", "add", "mul"]


class AttentionTiles(_Strict):
    """Attention over Q/K/V of one type that runs on that type's matrix tiles instead of
    the rule's `execute_as` path (PyTorch's CPU flash attention packs bf16 blocks for
    Intel AMX: no widening of the operands), for prompts of at least `min_queries`
    query rows (a one-query decode keeps the rule's path), at `peak`, with its own
    `output_ops_per_element` (default: the rule's)."""

    peak: ComputeRate
    min_queries: Count | None = None
    output_ops_per_element: Count | None = None
    note: str | None = None


class AttentionRule(_Strict):
    """How this chip's attention kernel runs when it differs from its GEMMs (e.g.
    PyTorch's CPU flash attention): the math in `execute_as` at `peak` (default: that
    type's achievable GEMM rate), each Q/K/V element of another type converted at
    `convert_ops_per_element` vector ops (at the element-wise rate),
    `skips_masked: false` when causal blocks above the diagonal are computed anyway, and
    `shares_kv: false` when grouped-query heads each read (and convert) the shared K/V
    head on their own instead of once per group; `stream_fraction`: the share of each
    level's bandwidth it streams K/V at (1 when absent); `launch`: its per-call
    overhead. `output_ops_per_element`: vector ops per output element (query row x
    head_dim, per head) besides the per-score softmax: the online softmax's rescale,
    the final normalisation and the copy-out of each output row. `tiles`: per Q/K/V
    type, a path on that type's matrix tiles (`AttentionTiles`) that replaces the
    rule's for prompts."""

    execute_as: DType
    peak: ComputeRate | None = None
    convert_ops_per_element: Count | None = None
    skips_masked: StrictBool = True
    shares_kv: StrictBool = True
    stream_fraction: Fraction | None = None
    launch: Time | None = None
    output_ops_per_element: Count | None = None
    tiles: dict[DType, AttentionTiles] | None = None
    note: str | None = None


class VectorSpec(_Strict):
    """Element-wise (non-matrix) work: norms, activations, softmax, residual adds,
    stand-alone conversions. `rate`: achievable vector ops/s of such kernels when they
    are not memory-bound (a CPU's vector units run them far below its GEMM FMA rate);
    when the block is absent the vector data type's achievable GEMM rate is used.
    `widen_ops_per_element`: vector ops to widen a 16-bit float element into a wider
    vector type or narrow it back (default: simulator.hardware.DEFAULT_HALF_OPS);
    `rate_by_kernel` / `widen_by_kernel`: the rate and the widening cost of one
    element-wise kernel where they differ (PyTorch's kernels differ per op: fp32 silu
    ran 10-15% slower per simulated op than gelu and layer_norm on the AMX Xeon VM; in
    bf16 gelu widened for free, layer_norm at about one op per element).
    `dequant_overlap`: share of the shorter of a dequantisation pass's memory and math
    times hidden under the longer (simulator.dequant; absent: 1, the roofline's)."""

    rate: ComputeRate
    energy_per_op: Energy | None = None
    widen_ops_per_element: Count | None = None
    rate_by_kernel: dict[VectorKernel, ComputeRate] | None = None
    widen_by_kernel: dict[VectorKernel, Count] | None = None
    dequant_overlap: Share | None = None


class MemoryLevel(_Strict):
    """One level of the memory hierarchy (nearest first): capacity, bandwidth, energy.

    Optional: `latency` (a cited Time: first byte of a transfer from this level) and
    `persistent` (whether data stays resident here between kernels; when absent the cost
    model infers it from `kind`, see simulator.hardware).
    """

    name: str = Field(min_length=1)
    kind: Literal["sram", "cache", "dram"]
    capacity: Bytes
    bandwidth: Bandwidth
    achievable_fraction: Fraction
    access_energy: EnergyPerByte
    latency: Time | None = None
    persistent: StrictBool | None = None

    @property
    def capacity_bytes(self) -> float:
        return self.capacity.value

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.bandwidth.value

    @property
    def achievable_bandwidth_bytes_per_s(self) -> float:
        return self.bandwidth.value * self.achievable_fraction.value

    @property
    def energy_per_byte_j(self) -> float:
        return self.access_energy.value

    @property
    def latency_s(self) -> float | None:
        return self.latency.value if self.latency else None


class Overheads(_Strict):
    """`kernel_launch`: fixed time per kernel. `matmul_overlap`: share of the shorter
    of a matrix kernel's memory and math times hidden under the longer (1, the
    default, is the roofline's perfect overlap; a CPU BLAS that packs the weight panel
    before its FMA loop overlaps little). `expert_stream`: an engine property (set by a
    serving runtime, absent on bare hardware: 1) per expert weight type: the share of
    the GEMM weight-streaming rate its grouped expert GEMM kernel reaches (an MoE kernel
    slower than the dense GEMMs). `expert_tile_rows`: also an engine property (absent:
    0) per expert weight type: the rows of matrix work every stored expert runs per
    pass whatever the routing sends it (padded tiles of the grouped expert kernel)."""

    kernel_launch: Time
    matmul_overlap: Share | None = None
    runtime_memory: Share | None = None  # main memory the serving runtime keeps back
    expert_stream: dict[DType, Fraction] = Field(default_factory=dict)
    expert_tile_rows: dict[DType, Count] = Field(default_factory=dict)

    def expert_stream_value(self, dtype: str) -> float:
        item = self.expert_stream.get(dtype)
        return item.value if item else 1.0

    def expert_tile_rows_value(self, dtype: str) -> float:
        item = self.expert_tile_rows.get(dtype)
        return item.value if item else 0.0

    @property
    def matmul_overlap_value(self) -> float:
        return self.matmul_overlap.value if self.matmul_overlap else 1.0


class PowerSpec(_Strict):
    """Board power envelope (simulator.power uses it): `static` the idle floor drawn
    with no work; `active` the baseline while kernels run (clocks up, leakage), before
    the per-op / per-byte dynamic energy; `tdp` the cap (board limit) above which the
    clock throttles; mobile parts: `sustained`, the thermally sustainable cap for runs
    longer than `burst` (the peak envelope `tdp` holds for `burst` seconds)."""

    tdp: Power
    static: Power
    active: Power
    sustained: Power | None = None
    burst: Time | None = None

    @model_validator(mode="after")
    def _ordered(self):
        if not self.static.value <= self.active.value < self.tdp.value:
            raise ValueError(f"need static <= active < tdp, got static "
                             f"{self.static.value} W, active {self.active.value} W, tdp "
                             f"{self.tdp.value} W")
        if (self.sustained is None) != (self.burst is None):
            raise ValueError("sustained and burst go together (the sustained cap "
                             "applies to runs longer than burst)")
        if self.sustained is not None and not (
                self.active.value < self.sustained.value <= self.tdp.value):
            raise ValueError(f"need active < sustained <= tdp, got sustained "
                             f"{self.sustained.value} W")
        return self


class Interconnect(_Strict):
    """Links and topology; bandwidths per direction (a one-way copy moves at this rate).

    `device_to_device`: the intra-node device link (NVLink) per device;
    `device_link_latency`: the fixed time of one collective step on it;
    `devices_per_node`: devices joined by that link; `network`: the inter-node network
    (NIC bandwidth per device); `network_latency`: one step across nodes;
    `link_efficiency` / `network_efficiency`: achievable share of each link's
    bandwidth in collectives (bus bandwidth / link bandwidth); `compute_overlap`: share
    of communication time hidden under compute when both can run. The collective model
    that uses them is `simulator.collectives`.
    """

    device_to_device: Bandwidth | None = None
    host_link: Bandwidth | None = None
    device_link_latency: Time | None = None
    devices_per_node: Count | None = None
    network: Bandwidth | None = None
    network_latency: Time | None = None
    link_efficiency: Fraction | None = None
    network_efficiency: Fraction | None = None
    compute_overlap: Share | None = None

    @property
    def device_link_bytes_per_s(self) -> float | None:
        return self.device_to_device.value if self.device_to_device else None

    @property
    def host_link_bytes_per_s(self) -> float | None:
        return self.host_link.value if self.host_link else None


class TrainingSpec(_Strict):
    """Efficiencies of a training step beyond the roofline (simulator.training).

    `gemm_efficiency.<dtype>`: share of `compute.<dtype>`'s achievable rate that GEMMs
    on training shapes sustain over a whole step (clock under sustained power, wave
    tails, framework gaps between kernels); the bf16 value applies to matrix types not
    listed. `attention_rate`: the bf16 rate flash
    attention (forward and backward) sustains on training shapes. `memory_efficiency`:
    share of main memory's achievable bandwidth that the step's streaming kernels
    sustain, counting the extra passes of unfused framework kernels (casts, copies,
    layout changes) over the tensors the model counts."""

    gemm_efficiency: dict[DType, Fraction] = Field(default_factory=dict)
    attention_rate: ComputeRate | None = None
    memory_efficiency: Fraction | None = None


class ComputeUnit(_Strict):
    """A compute unit of a SoC (docs/soc.md): its own engines, kernels and overheads;
    `formats` its runtimes take, its share of the DRAM bandwidth (`dram_fraction`)."""

    description: str = ""
    compute: dict[DType, ComputeSpec] = Field(min_length=1)
    fallbacks: dict[DType, FallbackRule] = Field(default_factory=dict)
    weight_only: dict[DType, WeightOnlyKernel] = Field(default_factory=dict)
    vector: VectorSpec | None = None
    overheads: Overheads | None = None
    formats: list[Literal[tuple(DTYPE_BITS)]] | None = None  # type: ignore[valid-type]
    dram_fraction: Fraction | None = None


class DefaultUnit(_Strict):
    """A format family's default units (the first taking the format) and why."""

    units: list[str] = Field(min_length=1)
    reason: str = Field(min_length=1)


class HardwareProfile(_Strict):
    """A chip: identity, compute per data type, fallbacks, memory hierarchy, power.
    A SoC lists `compute_units` (and `default_unit` per format family) instead of a
    top-level `compute` (simulator.compute_units)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    kind: Literal["gpu", "mobile_soc", "accelerator", "cpu"]
    process_node: str = Field(min_length=1)
    hypothetical: StrictBool
    description: str = ""
    sources: list[str] = Field(min_length=1)
    clock: Frequency | None = None
    compute: dict[DType, ComputeSpec] = Field(min_length=1)
    fallbacks: dict[DType, FallbackRule] = Field(default_factory=dict)
    weight_only: dict[DType, WeightOnlyKernel] = Field(default_factory=dict)
    vector: VectorSpec | None = None
    attention: AttentionRule | None = None
    gemm: GemmSpec | None = None
    memory: list[MemoryLevel] = Field(min_length=1)
    overheads: Overheads
    power: PowerSpec
    interconnect: Interconnect | None = None
    training: TrainingSpec | None = None
    compute_units: dict[str, ComputeUnit] = Field(default_factory=dict)
    default_unit: dict[Literal["float", "weight_only", "integer", "integer_blocks"],
                       DefaultUnit] = Field(default_factory=dict)

    _raw: dict = PrivateAttr(default_factory=dict)
    _path: str | None = PrivateAttr(default=None)
    _views: dict = PrivateAttr(default_factory=dict)  # unit name -> unit profile
    _placement: dict = PrivateAttr(default_factory=dict)  # phase -> requested unit
    _unit: str | None = PrivateAttr(default=None)  # set on a unit's view of a SoC

    @model_validator(mode="before")
    @classmethod
    def _units_compute(cls, doc: Any) -> Any:
        """A SoC's top-level compute/fallbacks: the union of its units' (compute_units)."""
        if isinstance(doc, dict) and doc.get("compute_units"):
            return union_compute(doc)
        return doc

    @model_validator(mode="after")
    def _consistent(self):
        names = [level.name for level in self.memory]
        if len(set(names)) != len(names):
            raise ValueError(f"memory level names must be unique, got {names}")
        if self.memory[-1].kind != "dram":
            raise ValueError("the last memory level must be main memory (kind: dram)")
        for dtype, rule in self.fallbacks.items():
            if dtype in self.compute:
                raise ValueError(f"fallbacks.{dtype}: {dtype} is native (listed under "
                                 "compute); a fallback is only for non-native types")
            for field in ("execute_as", "convert_dtype"):
                target = getattr(rule, field)
                if target not in self.compute:
                    raise ValueError(f"fallbacks.{dtype}.{field}: {target} is not native "
                                     f"on this chip (native: {', '.join(self.compute)})")
        if self.compute_units:
            check_units(self)
        if self.attention is not None and self.attention.execute_as not in self.compute:
            raise ValueError(f"attention.execute_as: {self.attention.execute_as} is not "
                             f"native on this chip (native: {', '.join(self.compute)})")
        for dtype in (self.attention.tiles or {}) if self.attention is not None else ():
            if dtype not in self.compute:
                raise ValueError(f"attention.tiles.{dtype}: {dtype} is not native on this "
                                 f"chip (native: {', '.join(self.compute)})")
        return self

    # ---- convenience accessors (SI floats) ---------------------------------------------
    @property
    def main_memory(self) -> MemoryLevel:
        return self.memory[-1]

    @property
    def kernel_launch_s(self) -> float:
        return self.overheads.kernel_launch.value

    @property
    def static_power_w(self) -> float:
        return self.power.static.value

    @property
    def tdp_w(self) -> float:
        return self.power.tdp.value

    @property
    def path(self) -> str | None:
        return self._path

    def native(self, dtype: str) -> bool:
        return dtype in self.compute

    def uncovered_dtypes(self) -> list[str]:
        """Data types with neither an engine nor a fallback rule (a format asking for
        one cannot be executed on this profile). Shipped profiles have none;
        `precsim profiles check` warns about them."""
        return [d for d in DTYPES if d not in self.compute and d not in self.fallbacks]

    def achievable_ops_per_s(self, dtype: str) -> float:
        """Achievable dense ops/s of a native `dtype` (peak × achievable fraction)."""
        if dtype not in self.compute:
            raise InputError(f"profile {self.name}: {dtype} is not native "
                             f"(native: {', '.join(self.compute)})")
        return self.compute[dtype].achievable_ops_per_s

    def memory_level(self, name: str) -> MemoryLevel:
        for level in self.memory:
            if level.name == name:
                return level
        raise InputError(f"profile {self.name}: no memory level {name!r} "
                         f"(levels: {', '.join(lv.name for lv in self.memory)})")

    def for_unit(self, unit: str) -> HardwareProfile:
        """This SoC as one of its `compute_units` sees it (profile_docs.unit_document;
        simulator.compute_units), memoised per profile object."""
        view = self._views.get(unit)
        if view is None:
            view = profile_from_mapping(unit_document(self.raw(), unit, self.name),
                                        f"{self.path or self.name} (compute_units.{unit})")
            view._unit = unit
            self._views[unit] = view
        return view

    def raw(self) -> dict:
        """A deep copy of the YAML document this profile was read from."""
        return copy.deepcopy(self._raw)

    def with_overrides(self, overrides: Mapping[str, Any], name: str | None = None
                       ) -> HardwareProfile:
        """A new profile with fields of the YAML document replaced, re-validated.

        Keys are dotted paths into the document; a memory level is addressed by its
        name (``memory.hbm.bandwidth``), any list item by index. Values are written as
        in YAML (``"6.7 TB/s"``) or as a whole sub-mapping; ``None`` removes the key
        (e.g. ``fallbacks.int4`` when int4 becomes native). Setting a cited number
        (``memory.hbm.bandwidth`` or ``memory.hbm.bandwidth.value``) to a plain value
        replaces its provenance with ``assumed: what-if override (was ...)`` so that
        no overridden number keeps a citation it no longer matches; a number the
        profile lacks is added the same way with its ``.value`` path
        (``interconnect.host_link.value``). Example:
        ``p.with_overrides({"memory.hbm.bandwidth": "6.7 TB/s"}, name="h100-fast-hbm")``.
        """
        doc = self.raw()
        for dotted, value in overrides.items():
            set_path(doc, str(dotted), value, self.name)
        if name:
            doc["name"] = name
        return profile_from_mapping(doc, source=f"{self.name} with overrides")


# ---- validation ------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _all_field_names() -> frozenset[str]:
    names: set[str] = set()
    for model in (HardwareProfile, ComputeSpec, FallbackRule, MemoryLevel, Overheads,
                  PowerSpec, Interconnect, Fraction, Count, Bytes, WeightOnlyKernel,
                  VectorSpec, AttentionRule, TrainingSpec, ComputeUnit, DefaultUnit, GemmSpec):
        names.update(model.model_fields)
    return frozenset(names)


def profile_from_mapping(doc: dict, source: str) -> HardwareProfile:
    """Validate a YAML document (already a mapping) into a HardwareProfile."""
    try:
        profile = HardwareProfile.model_validate(doc)
    except ValidationError as exc:
        raise InputError(format_validation_error(exc, source, doc,
                                                 _all_field_names())) from None
    profile._raw = copy.deepcopy(doc)
    profile._path = source
    return profile
