"""Calibrate the `host` hardware profile from PyTorch microbenchmarks.

The shipped `hw_profiles/host.yaml` is the template: its structure, energies and power
(not measurable from PyTorch) are kept; every number measured here replaces the
template's and carries `measured:` provenance saying how, when and on what machine:

- cache capacities: from the OS (sysfs); main memory capacity: physical pages;
- per-level bandwidth: stream ops (read / copy / add) on buffers sized inside each
  level; bandwidth = bytes moved / (fastest call time - fastest per-call overhead),
  aggregated over the ops as total bytes / total net time (their harmonic mean), and the
  achievable fraction is 1 because the value already is the achieved rate;
- per-dtype peak: the best large GEMM (ops/s); achievable fraction = median / best over
  the calibration shapes;
- per-dtype `stream_fraction`: one-token matmuls (linear; `torch._int_mm` for int8) on
  layer-like weights (microbench.STREAM_SHAPES) streamed from main memory: the share of
  main memory's stream bandwidth that makes the simulator's total time match;
- per-dtype `gemm_stream_fraction`: the same shapes with GEMM_STREAM_ROWS activation
  rows (the library's GEMM path: MKL's sgemm packs the weight panel), fitted the same way;
  `gemm_stream_wide` with GEMM_STREAM_WIDE_ROWS rows, after the overlap below;
- `overheads.matmul_overlap`: a bf16 matmul with 256 rows (OVERLAP_SHAPE, weights
  streamed from main memory) timed, the overlap solved so the simulator matches it
  (solved twice in turn with the GEMM-path fractions, as each case depends on both);
- `weight_only` kernels (PyTorch's int8 / int4 packed-weight matmuls): stream fraction
  and per-row time (`row_time`, kept where the shapes' row lengths show one) fitted on
  four one-token matmuls, peak from a 128-row one;
- `vector.rate`: element-wise kernels (activations, layer norm; fp32 and bf16, in
  cache) timed and one rate fitted (least relative squares) to the simulator's op
  counts for them (bf16 widening at the template's ops per element);
- interference from other processes only slows calls down, so rates come from the
  fastest call, every job at the run's thread count (bench.time_at_threads: the held-out
  cases of `validate` too, so fits and predictions share one thread rule);
  a measurement outside [template / PLAUSIBLE_FACTOR, template x PLAUSIBLE_FACTOR] is
  rejected with a note and the template value kept (provenance says so); a nearer memory
  level is never slower than a farther one (raised to it, with a note);
- per-call overhead (`overheads.kernel_launch`): median time of one-element ops;
- dequantisation (`fallbacks.<type>.convert_ops_per_element`): one-token matmuls with
  packed weights (ternary run-time unpack) on STREAM_SHAPES are timed, and the ops per
  element are solved so that the simulator's own total gemm_cost of them matches;
- `vector.dequant_overlap`: the plain-PyTorch dequantise-then-matmul chains
  (CHAIN_FORMATS) one-token on STREAM_SHAPES, the overlap of their passes' memory and
  math fitted (least squares of the relative error) to them.
Every microbenchmark is a `rounds.Job`: they are timed in interleaved rounds, each
starting with a drift reference, and the fits see drift-corrected times
(`validation.rounds`; `validate` interleaves them with its held-out cases).
Every solved value evaluates the simulator itself at two trial values (the time is
linear in the unknown there) — no cost formula is repeated here.
"""
from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import yaml

from precsim.simulator.io import atomic_write_text, load_yaml_mapping
from precsim.simulator.hardware import as_hardware
from precsim.simulator.profile_loader import builtin_profile_dir
from precsim.simulator.profiles import HardwareProfile, profile_from_mapping
from precsim.validation import attention_fits, fits, memory_fits, microbench, vector_fits
from precsim.validation.bench import BenchSettings
from precsim.validation.kernels import (attention_case, case_job, matmul_case,
                                        reference_stream_bytes, rotation_bytes,
                                        rows_cols_case)
from precsim.validation.rounds import (CALIBRATION, Job, RoundsResult, reference_kernels,
                                       run_rounds, time_job)
from precsim.validation.simulate import case_bounds
from precsim.validation.torchenv import (busy_note, cpu_caches, cpu_flags, load_torch,
                                        machine_description)

TEMPLATE_NAME = "host.yaml"


def template_path() -> Path:
    """The shipped host template (package data, or the checkout's hw_profiles/)."""
    return builtin_profile_dir() / TEMPLATE_NAME


@dataclass(frozen=True)
class MemoryPlan:
    """A memory level to calibrate: its name in the profile, kind and capacity."""

    name: str
    kind: str
    capacity_bytes: float
    capacity_how: str
    threads: str  # how many threads the in-level streams run on, for the provenance


def host_levels(template: dict, threads: int) -> list[MemoryPlan]:
    caches = cpu_caches()
    names = [lv["name"] for lv in template["memory"] if lv["kind"] != "dram"]
    plans = []
    for name, cache in zip(names, caches):
        shared = cache.instances == 1
        total = cache.total_bytes
        # PyTorch runs element-wise ops under 32768 elements (128 KiB fp32) on one
        # thread, so an L1-sized stream measures one core's L1.
        single = total / max(cache.instances, 1) < 128 * 1024 and not shared
        plans.append(MemoryPlan(
            name, "cache", total,
            f"sysfs: L{cache.level} {cache.size_bytes // 1024} KiB x {cache.instances} "
            "instance(s)", "1 thread (PyTorch's below 32768 elements)" if single
            else f"{threads} threads"))
    try:
        dram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        how = "os.sysconf: physical pages x page size"
    except (ValueError, OSError):
        dram = template["memory"][-1]["capacity"]["value"]
        how = ""
    plans.append(MemoryPlan(template["memory"][-1]["name"], "dram", dram, how,
                            f"{threads} threads"))
    return plans


def _cuda_levels(torch) -> list[MemoryPlan]:
    props = torch.cuda.get_device_properties(0)
    l2 = getattr(props, "L2_cache_size", 0) or 40 * 2**20
    return [MemoryPlan("l2", "cache", l2, "torch.cuda.get_device_properties: L2_cache_size",
                       "all SMs"),
            MemoryPlan("dram", "dram", props.total_memory,
                       "torch.cuda.get_device_properties: total_memory", "all SMs")]


@dataclass
class Calibration:
    """What calibration measured (tables) and the profile document derived from it."""

    profile_doc: dict
    streams: pd.DataFrame
    gemms: pd.DataFrame
    tiny_ops: pd.DataFrame
    dequant: pd.DataFrame
    vector: pd.DataFrame
    matmuls: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)

    @property
    def profile(self) -> HardwareProfile:
        return profile_from_mapping(self.profile_doc, source="calibrated host profile")

    def summary(self) -> dict:
        p = self.profile
        return {
            "profile": p.name,
            "bandwidth_bytes_per_s": {lv.name: lv.achievable_bandwidth_bytes_per_s
                                      for lv in p.memory},
            "achievable_ops_per_s": {dt: spec.achievable_ops_per_s
                                     for dt, spec in p.compute.items()},
            "peak_ops_per_s": {dt: spec.peak_ops_per_s for dt, spec in p.compute.items()},
            "kernel_launch_s": p.kernel_launch_s,
            "convert_ops_per_element": {dt: r.convert_ops_per_element.value
                                        for dt, r in p.fallbacks.items()},
            "vector_ops_per_s_simulated": float(as_hardware(p).vector_ops_per_s),
            "vector_ops_per_s_measured": (float(self.vector["vector_ops_per_s"].median())
                                          if not self.vector.empty else None),
            "stream_fraction": {dt: spec.stream_fraction_value
                                for dt, spec in p.compute.items()},
            "gemm_stream_fraction": {dt: spec.gemm_stream_fraction_value
                                     for dt, spec in p.compute.items()},
            "gemm_stream_wide": {dt: [spec.gemm_stream_wide.rows, spec.gemm_stream_wide.value]
                                 for dt, spec in p.compute.items() if spec.gemm_stream_wide},
            "matmul_overlap": p.overheads.matmul_overlap_value,
            "weight_only": {dt: {"achievable_ops_per_s": k.achievable_ops_per_s,
                                 "stream_fraction": k.stream_fraction_value}
                            for dt, k in p.weight_only.items()},
            "notes": list(self.notes),
        }


def _level_of(size: float, plans: list[MemoryPlan]) -> str:
    for plan in plans:
        if size <= plan.capacity_bytes:
            return plan.name
    return plans[-1].name


#: repeats (at least) of the GEMM-peak and matmul weight-streaming microbenchmarks
RATE_REPEATS = 5


#: calibration on its own (`precsim calibrate`) runs in this many rounds per pass
CALIBRATION_SLICES = 4


@dataclass
class CalibrationPlan:
    """What calibration will time (`jobs`, in groups) and what it needs to fit them."""

    device: str
    settings: BenchSettings
    quick: bool
    doc: dict
    plans: list[MemoryPlan]
    stamp: str
    notes: list[str]
    groups: dict[str, list[Job]]

    @property
    def jobs(self) -> list[Job]:
        return [job for group in self.groups.values() for job in group]


def plan_calibration(device: str, settings: BenchSettings, quick: bool = True,
                     template: str | os.PathLike | None = None, name: str = "host",
                     now: _dt.datetime | None = None) -> CalibrationPlan:
    """The calibration microbenchmarks as jobs (timed by `rounds.run_rounds`)."""
    torch = load_torch()
    when = (now or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    doc = load_yaml_mapping(template or template_path(), what="host profile template")
    doc["name"] = name
    machine = machine_description(device)
    threads = torch.get_num_threads()
    stamp = f"on {machine}, {when}"
    notes: list[str] = [n for n in (busy_note(),) if n]

    plans = _cuda_levels(torch) if device == "cuda" else host_levels(doc, threads)
    caches = [p.capacity_bytes for p in plans if p.kind != "dram"]
    if device == "cpu" and len(caches) != len(doc["memory"]) - 1:
        notes.append(f"the OS reports {len(caches)} cache levels, the template has "
                     f"{len(doc['memory']) - 1}; levels without a cache keep template values")
    sizes = microbench.stream_sizes(caches, per_level=2 if quick else 3)
    if device == "cuda":
        sizes = [s for s in sizes if s >= caches[0] / 8]
    # one pass over an L1-sized buffer is shorter than the per-call overhead: that
    # level is measured by repeated reads instead (microbench docstring)
    first = [s for s in sizes if s <= caches[0]] if device == "cpu" and caches else []
    # rates come from the fastest call: more repeats give more chances of a clean one
    rate_settings = replace(settings, repeats=max(settings.repeats, RATE_REPEATS))
    gemm_shapes = microbench.GEMM_SHAPES_QUICK if quick else microbench.GEMM_SHAPES_FULL
    n_wo, k_wo = microbench.weight_only_shape(quick)
    cold = rotation_bytes(caches[-1] if caches else None)  # as the held-out cases
    template_profile = profile_from_mapping(doc, source="host profile template")

    def cases(group: str, specs: list, settings_: BenchSettings, cold_: float | None
              ) -> list[Job]:
        bounds = case_bounds([c for c, _ in specs], template_profile)
        return [case_job(c, CALIBRATION, bounds[c.name], device, settings_, cold_,
                         key=f"{group}/{c.name}", meta=meta) for c, meta in specs]

    launch_specs = [(matmul_case(fmt, 1, *microbench.LAUNCH_SHAPE), {"format": fmt})
                    for fmt in microbench.LAUNCH_FORMATS] + [
        (attention_case(*microbench.LAUNCH_ATTENTION), {"format": "attention"})]
    groups = {
        "tiny": microbench.tiny_op_jobs(device, settings),
        "streams": microbench.stream_jobs(device, [s for s in sizes if s not in first],
                                          settings)
        + microbench.repeated_read_jobs(device, first, settings),
        "gemms": microbench.gemm_peak_jobs(device, gemm_shapes, rate_settings),
        "vector": cases("vector", [(rows_cols_case(kind, op, dtype, r, c),
                                    {"kind": kind, "op": op, "dtype": dtype, "rows": r,
                                     "cols": c})
                                   for kind, op, dtype, r, c in VECTOR_CASES],
                        settings, None),
        "matmuls": cases("matmul", [(matmul_case(fmt, m, n, k),
                                     {"purpose": purpose, "format": fmt, "m": m, "n": n,
                                      "k": k})
                                    for purpose, fmt, (m, n, k) in _matmul_specs(n_wo, k_wo)],
                         rate_settings, cold),
        "launches": cases("launch", launch_specs, rate_settings, None),
        "attention": cases("attention", [(attention_case(*c), {"phase": c[0], "dtype": c[1]})
                                         for c in microbench.ATTENTION_CASES],
                           rate_settings, cold),
    }
    return CalibrationPlan(device, settings, quick, doc, plans, stamp, notes, groups)


def run_calibration(device: str, settings: BenchSettings, quick: bool = True,
                    template: str | os.PathLike | None = None, name: str = "host",
                    now: _dt.datetime | None = None,
                    on_progress: Callable[[str, int, int], None] | None = None
                    ) -> Calibration:
    """Measure this machine (CALIBRATION_SLICES rounds per pass, ROUNDS passes, a drift
    reference per round) and return the calibrated profile document and tables."""
    plan = plan_calibration(device, settings, quick, template, name, now)
    caches = [p.capacity_bytes for p in plan.plans if p.kind != "dram"]
    results = run_rounds(plan.jobs, reference_kernels(device, reference_stream_bytes(
                             caches[-1] if caches else None)),
                         lambda job: time_job(job, device), passes=ROUNDS,
                         slices=CALIBRATION_SLICES, on_progress=on_progress)
    return finish_calibration(plan, results)


def finish_calibration(plan: CalibrationPlan, results: RoundsResult) -> Calibration:
    """Fit the profile to the drift-corrected timings of the plan's jobs."""
    return fit_tables(plan.doc, calibration_tables(plan, results), plan.plans, plan.stamp,
                      plan.notes, plan.device, plan.settings.repeats)


def calibration_tables(plan: CalibrationPlan, results: RoundsResult) -> dict[str, pd.DataFrame]:
    """The measured tables the fits use (`TABLES`), one row per timed job."""
    g = plan.groups
    return {"tiny_ops": microbench.job_table(g["tiny"], results),
            "streams": microbench.stream_table(g["streams"], results),
            "gemms": microbench.gemm_peak_table(g["gemms"], results),
            "vector": microbench.job_table(g["vector"], results),
            "matmuls": microbench.job_table(g["matmuls"], results),
            "launches": microbench.job_table(g["launches"], results),
            "attention": microbench.job_table(g["attention"], results)}


#: the measured tables calibration fits (`calibration_tables`); `validate` writes
#: them as calibration_<name>.csv (matmuls, launches and attention together, as
#: calibration_matmuls.csv) and `validation.refit` reads them back
TABLES = ("tiny_ops", "streams", "gemms", "vector", "matmuls", "launches", "attention")


def fit_tables(doc: dict, tables: dict[str, pd.DataFrame], plans: list[MemoryPlan],
               stamp: str, notes: list[str], device: str, repeats: int,
               flags: frozenset[str] | None = None) -> Calibration:
    """Fit the profile document `doc` (the template, edited in place) to the measured
    `tables` (`TABLES`); `flags`: the CPU's (default: this machine's, on a CPU)."""
    tiny = tables["tiny_ops"]
    launch_s = float(tiny["time_s"].median())
    overhead_s = float(tiny["best_s"].min())  # subtracted from the fastest calls
    streams = tables["streams"].copy()
    streams["level"] = [_level_of(s, plans) for s in streams["buffer_bytes"]]
    gemms, vector = tables["gemms"], tables["vector"].copy()
    matmuls, launches, attention = (tables["matmuls"], tables["launches"],
                                    tables["attention"])
    dequant = pd.DataFrame([
        {"format": row["format"], "n": row["n"], "k": row["k"], "time_s": row["time_s"],
         "best_s": row["best_s"], "best_threads": row["best_threads"],
         "spread": row["spread"], "s_per_weight": row["best_s"] / (row["n"] * row["k"]),
         "error": row.get("error", "")}
        for _, row in matmuls[matmuls["purpose"] == "dequant"].iterrows()])
    if flags is None:
        flags = cpu_flags() if device == "cpu" else frozenset()

    # ---- assemble the profile document --------------------------------------------
    if device == "cuda":
        doc["kind"] = "gpu"
    doc["description"] = (f"Calibrated with `precsim calibrate` {stamp}. Every "
                          "microbenchmark (and every held-out case of `validate`) was timed "
                          "at that thread count (in CPU time when it is one). Measured "
                          "numbers say how; energy and power keep the template's "
                          "assumptions.")
    doc["overheads"]["kernel_launch"] = {
        "value": f"{launch_s * 1e6:.4g} us",
        "measured": f"median over {len(tiny)} one-element ops ({', '.join(tiny['op'])}) "
                    f"of torch.utils.benchmark medians, {repeats} repeats, {stamp}"}

    template_profile = profile_from_mapping(doc, source="host profile template")
    memory_fits.fit_memory_levels(doc, plans, streams, template_profile, overhead_s, device,
                                  stamp, notes)
    fits.fit_gemm_peaks(doc, gemms, template_profile, device, stamp, notes, flags)

    # per-call overheads first (every other case includes one); the weight-only kernels'
    # stream fraction and peak are solved twice in turn, as each case depends on both
    fits.fit_launches(doc, launches, stamp, notes)
    fits.fit_stream_fractions(doc, matmuls, stamp)
    for _ in range(2):  # the few-row GEMMs and the overlap case depend on both
        fits.fit_gemm_stream_fractions(doc, matmuls, stamp)
        fits.fit_overlap(doc, matmuls, stamp, notes)
    # the 64-row share after the overlap, on it: the two explain the same 64-row times,
    # and fitted in turn they trade against each other from run to run (docs/validation.md)
    fits.fit_gemm_stream_wide(doc, matmuls, stamp)
    for _ in range(2):
        fits.fit_weight_only(doc, matmuls, stamp, notes)
    vector_fits.fit_vector_rate(doc, vector, stamp, notes)
    attention_fits.fit_attention(doc, attention, stamp, notes, flags)
    fits.fit_dequant(doc, dequant, stamp, notes)
    # on the fitted vector rate, memory levels and bf16 stream fractions: the chains'
    # passes and matmul are priced with them
    fits.fit_dequant_overlap(doc, matmuls, stamp, notes)
    # No host `gemm` block (issue 21's shape model): the fitted peaks and achievable
    # fraction already average the shapes; adding tile/wave efficiency on top counted them
    # twice (held-out GEMMs 12.8% -> 40.5% median on the 2-core VM, docs/prefill.md)
    if device == "cpu":
        fits.mark_unmeasured(doc, stamp, notes)

    profile_from_mapping(doc, source="calibrated host profile")  # validate before use
    notes[:] = list(dict.fromkeys(notes))
    return Calibration(doc, streams, gemms, tiny,
                       dequant, vector,
                       pd.concat([matmuls, attention, launches], ignore_index=True),
                       notes)


#: element-wise kernels (in cache, not among the held-out shapes) the vector rate (fp32)
#: and each kernel's widening (bf16, `vector.widen_by_kernel`) are fitted to:
#: (kind, op, dtype, rows, cols)
VECTOR_CASES = (("elementwise", "silu", "fp32", 768, 1024),
                ("elementwise", "gelu", "fp32", 768, 1024),
                ("norm", "layer_norm", "fp32", 768, 1024),
                ("elementwise", "silu", "bf16", 768, 1024),
                ("norm", "layer_norm", "bf16", 768, 1024),
                ("elementwise", "gelu", "bf16", 768, 1024),
                ("elementwise", "add", "bf16", 768, 1024),
                ("elementwise", "mul", "bf16", 768, 1024))


#: passes over the calibration jobs (validation.rounds): a burst of interference from
#: other tenants then slows one round of a case, not its every measurement
ROUNDS = 2


def _matmul_specs(n: int, k: int) -> list[tuple[str, str, tuple[int, int, int]]]:
    """(purpose, format, (m, n, k)) of the matmuls the stream fractions, the overlap, the
    weight-only kernels and the run-time unpack (DEQUANT_FORMATS) are solved from
    (weights rotating over main-memory-sized copies, as the held-out cases)."""
    specs = [(purpose, fmt, (m, nn, kk)) for fmt in microbench.STREAM_FORMATS.values()
             for nn, kk in microbench.STREAM_SHAPES
             for purpose, m in (("stream", 1), ("gemm_stream", microbench.GEMM_STREAM_ROWS),
                                ("gemm_stream_wide", microbench.GEMM_STREAM_WIDE_ROWS))]
    specs += [("overlap", "bf16", microbench.OVERLAP_SHAPE)]
    for fmt in microbench.WEIGHT_ONLY_FORMATS:
        specs += [("stream", fmt, (1, nn, kk)) for nn, kk in ((n, k), *microbench.STREAM_SHAPES)]
        specs += [("peak", fmt, (microbench.WEIGHT_ONLY_PEAK_ROWS, n, k))]
    specs += [("dequant", fmt, (1, nn, kk)) for fmt in microbench.DEQUANT_FORMATS
              for nn, kk in microbench.STREAM_SHAPES]
    specs += [("chain", fmt, (1, nn, kk)) for fmt in microbench.CHAIN_FORMATS
              for nn, kk in microbench.STREAM_SHAPES]
    return specs


def dump_profile(doc: dict) -> str:
    header = ("# Calibrated host profile written by `precsim calibrate`; every `measured:`\n"
              "# field says how and when. Load with simulator.profiles.load_profile_file.\n")
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


def write_profile(doc: dict, path: str | os.PathLike) -> Path:
    """Validate and write the profile atomically; returns the path."""
    profile_from_mapping(doc, source=str(path))
    return atomic_write_text(path, dump_profile(doc))
