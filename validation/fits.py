"""The calibration fits: each sets the profile-document numbers that make the
simulator reproduce a table of measured times (validation/calibrate.py measures and
orchestrates; the method of each fit is in that module's docstring and here).

Every fit takes the profile document `doc` (a dict, edited in place), the measured rows
(pandas), `stamp` ("on <machine>, <when>", for provenance) and, where it can fail,
`notes` (a list the reason is appended to). Every solved value evaluates the simulator
itself at two trial values (the time is linear in the unknown there): no cost formula
is repeated here, and tests recover known parameters from simulator-generated times.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from precsim.simulator.hardware import as_hardware
from precsim.simulator.profiles import HardwareProfile, profile_from_mapping
from precsim.validation import microbench
from precsim.validation.formats import FORMATS
from precsim.validation.kernels import attention_case, matmul_case
from precsim.validation.simulate import simulate_kernel


#: a calibrated rate this many times below or above the template's is implausible
PLAUSIBLE_FACTOR = 10.0
#: the CPU flag of a matrix extension that runs GEMMs of the type far above the host
#: template's SIMD peak (Intel AMX tiles: Intel Architecture Instruction Set Extensions
#: Programming Reference, ch. 3): a measured peak above the window is then believed
MATRIX_EXTENSION_FLAG = {"bf16": "amx_bf16", "int8": "amx_int8"}


def implausible(measured: float, template: float, what: str) -> str | None:
    """A warning when `measured` lies outside [template / F, template x F], else None."""
    lo, hi = template / PLAUSIBLE_FACTOR, template * PLAUSIBLE_FACTOR
    if lo <= measured <= hi:
        return None
    return (f"WARNING: {what} measured {measured / 1e9:.4g} G/s is implausible (outside "
            f"{lo / 1e9:.4g}-{hi / 1e9:.4g} G/s, the template's {template / 1e9:.4g} G/s "
            f"/ x {PLAUSIBLE_FACTOR:g}): interference or a broken measurement; "
            "template value kept")


def template_kept(cited: dict, warning: str, stamp: str) -> dict:
    """The template's number with provenance saying why calibration did not replace it."""
    was = "; ".join(f"{k}: {cited[k]}" for k in ("source", "derived", "measured", "assumed")
                    if cited.get(k))
    return {"value": cited["value"],
            "assumed": f"template value kept: calibration {stamp}: {warning} (template: {was})"}


def fit_gemm_peaks(doc: dict, gemms: pd.DataFrame, template_profile: HardwareProfile,
                   device: str, stamp: str, notes: list[str],
                   flags: frozenset[str] = frozenset()) -> None:
    """compute.<dtype>.peak = the best GEMM rate; achievable_fraction = median / best
    over the calibration shapes (an implausible host peak keeps the template's, except a
    peak above the window on a CPU whose `flags` list the type's matrix extension)."""
    for dtype, rows in gemms.groupby("dtype", sort=False):
        ok = rows.dropna(subset=["ops_per_s"])
        if ok.empty:
            notes.append(f"{dtype} GEMM not measured ({rows['error'].iloc[0]}); "
                         "template peak kept")
            continue
        best, med = float(ok["ops_per_s"].max()), float(ok["ops_per_s"].median())
        shapes = ", ".join(f"{r.m}x{r.n}x{r.k} ({r.best_threads} thr)"
                           for r in ok.itertuples())
        unit = "GOP/s" if dtype.startswith("int") else "GFLOP/s"
        spec = doc["compute"].setdefault(dtype, dict(doc["compute"]["fp32"]))
        if dtype in template_profile.compute and device == "cpu" and (warning := implausible(
                best, template_profile.compute[dtype].peak_ops_per_s, f"{dtype} GEMM peak")):
            template = template_profile.compute[dtype].peak_ops_per_s
            if best > template and MATRIX_EXTENSION_FLAG.get(dtype) in flags:
                notes.append(f"{dtype} GEMM peak measured {best / 1e9:.4g} G/s, above the "
                             f"template's SIMD window ({template / 1e9:.4g} G/s x "
                             f"{PLAUSIBLE_FACTOR:g}): the CPU reports "
                             f"{MATRIX_EXTENSION_FLAG[dtype]} (a matrix extension the "
                             "template does not price), so the measurement is used")
            else:
                notes.append(warning)
                spec["peak"] = template_kept(spec["peak"], warning, stamp)
                continue
        kernel = "torch._int_mm" if dtype == "int8" else "torch.mm"
        spec["peak"] = {"value": f"{best / 1e9:.4g} {unit}",
                        "measured": f"best of {kernel} {dtype} GEMMs (m x n x k) {shapes}; "
                                    f"2mnk / fastest call (at the run's threads); {stamp}"}
        spec["achievable_fraction"] = {
            "value": round(min(1.0, med / best), 4),
            "measured": f"median / best rate over the same GEMMs ({med / 1e9:.4g} / "
                        f"{best / 1e9:.4g} {unit})"}


def fit_dequant(doc: dict, dequant: pd.DataFrame, stamp: str, notes: list[str]) -> None:
    """fallbacks.<type>.convert_ops_per_element for each DEQUANT_FORMATS type, from its
    one-token packed-weight matmuls (fit_convert_ops pooled over the shapes)."""
    for fmt, dtype in microbench.DEQUANT_FORMATS.items():
        rule = doc.get("fallbacks", {}).get(dtype)
        row = dequant[dequant["format"] == fmt]
        if rule is None or row.empty or row["s_per_weight"].isna().all():
            reason = row["error"].iloc[0] if not row.empty else "no fallback rule in template"
            notes.append(f"dequantisation of {dtype} ({fmt}) not measured ({reason}); "
                         "template value kept")
            continue
        row = row.dropna(subset=["best_s"])
        cases = [matmul_case(fmt, 1, int(r.n), int(r.k)) for r in row.itertuples()]
        ops, how = fit_convert_ops(doc, dtype, cases, list(row["best_s"]))
        each = ", ".join(f"{int(r.n)}x{int(r.k)} {r.s_per_weight * 1e12:.4g} ps per weight "
                         f"({int(r.best_threads)} thr)" for r in row.itertuples())
        rule["convert_ops_per_element"] = {
            "value": round(ops, 3),
            "measured": f"{fmt} ({FORMATS[fmt].kernel}) one-token matmuls (fastest call, "
                        f"weights streamed from main memory): {each}; {how}; {stamp}"}


def fit_dequant_overlap(doc: dict, matmuls: pd.DataFrame, stamp: str, notes: list[str]
                        ) -> None:
    """vector.dequant_overlap: least squares of the relative error of the simulator's
    times (`simulator.dequant.dequant_chain_cost`, linear in the overlap) of the
    CHAIN_FORMATS one-token matmuls against the measured ones, clipped to [0, 1]."""
    rows = matmuls[matmuls["purpose"] == "chain"].dropna(subset=["best_s"]) \
        if not matmuls.empty else matmuls
    if rows.empty or "vector" not in doc:
        notes.append("dequantise-then-matmul chains not measured; their passes keep the "
                     "roofline's overlap")
        return
    cases = [matmul_case(r.format, int(r.m), int(r.n), int(r.k)) for r in rows.itertuples()]

    def set_overlap(trial, x):
        trial["vector"]["dequant_overlap"] = {"value": x, "assumed": "calibration trial"}
    x = solve_relative(doc, set_overlap, cases, rows["best_s"], 0.0, 1.0)
    if x != x:
        notes.append("dequantise-then-matmul chains: no overlap to fit (their passes are "
                     "all math or all memory in the simulator); roofline overlap kept")
        return
    each = ", ".join(f"{c.name} {t * 1e6:.4g} us ({int(r.best_threads)} thr)"
                     for c, t, r in zip(cases, rows["best_s"], rows.itertuples()))
    doc["vector"]["dequant_overlap"] = {
        "value": round(min(1.0, max(0.0, x)), 4),
        "measured": f"least squares of the relative error of the simulator's times "
                    f"(simulator.dequant.dequant_chain_cost) of the plain-PyTorch "
                    f"dequantise-then-matmul chains {each} (packed weights streamed from "
                    f"main memory; unclipped {x:.3g}); {stamp}"}


def solve_linear(doc: dict, setter, case, measured_s: float, x1: float, x2: float,
           hot: bool = False) -> float:
    """x with simulate(case) = measured_s on `doc` (a case or a list of cases, summed)
    where setter(trial_doc, x) sets the unknown and the simulated time is linear in x
    between the trials x1, x2 (`hot`: simulate_kernel's)."""
    cases = case if isinstance(case, list) else [case]

    def simulated(x: float) -> float:
        trial = copy.deepcopy(doc)
        setter(trial, x)
        hw = as_hardware(profile_from_mapping(trial, "trial"))
        return sum(simulate_kernel(c, hw, hot) for c in cases)
    t1, t2 = simulated(x1), simulated(x2)
    if t2 == t1:
        return float("nan")
    return x1 + (measured_s - t1) * (x2 - x1) / (t2 - t1)


def solve_relative(doc: dict, setter, cases: list, measured_s, x1: float, x2: float
                   ) -> float:
    """x minimising the squared relative errors of the simulated times of `cases` against
    `measured_s` (each case weighs the same), where setter(trial_doc, x) sets the unknown
    and each simulated time is linear in x between the trials x1, x2; NaN without slope."""
    def simulated(x: float) -> np.ndarray:
        trial = copy.deepcopy(doc)
        setter(trial, x)
        hw = as_hardware(profile_from_mapping(trial, "trial"))
        return np.array([simulate_kernel(c, hw) for c in cases])
    t1, t2, m = simulated(x1), simulated(x2), np.asarray(measured_s, dtype=float)
    slope = (t2 - t1) / (x2 - x1) / m
    if not slope @ slope > 0:
        return float("nan")
    return float(slope @ ((m - t1) / m + slope * x1) / (slope @ slope))


def solve_relative_with_rows(doc: dict, setter, cases: list, measured_s, x1: float,
                             x2: float, y0: float = 50e-9) -> tuple[float, float]:
    """(x, y) minimising the squared relative errors of the simulated times of `cases`
    against `measured_s`, where setter(trial_doc, x, y) sets both unknowns and each time
    is linear in x (trials x1, x2) and in y >= 0 (a per-row time: trials 0, y0); y is
    dropped (0, x alone by `solve_relative`) where the fit makes it negative or below
    0.01 ns, or with fewer than two cases. (NaN, 0) without slope."""
    def simulated(x: float, y: float) -> np.ndarray:
        trial = copy.deepcopy(doc)
        setter(trial, x, y)
        hw = as_hardware(profile_from_mapping(trial, "trial"))
        return np.array([simulate_kernel(c, hw) for c in cases])
    m = np.asarray(measured_s, dtype=float)
    t0, tx, ty = simulated(x1, 0.0), simulated(x2, 0.0), simulated(x1, y0)
    bx, by = (tx - t0) / (x2 - x1) / m, (ty - t0) / y0 / m
    target = (m - t0) / m + bx * x1
    if len(cases) >= 2 and by @ by > 0:
        (x, y), *_ = np.linalg.lstsq(np.column_stack([bx, by]), target, rcond=None)
        if y >= 1e-11 and x > 0:
            return float(x), float(y)
    return solve_relative(doc, lambda trial, x: setter(trial, x, 0.0), cases, measured_s,
                          x1, x2), 0.0


def fit_stream_fractions(doc: dict, matmuls: pd.DataFrame, stamp: str) -> None:
    """compute.<dtype>.stream_fraction and .row_time: with x = 1 / fraction and y = time
    per weight row the simulated time of each one-token matmul on STREAM_SHAPES (weights
    streamed from main memory; the W8A8 kernel `torch._int_mm` for int8) is linear,
    t_i = a_i + b_i x + c_i y; (x, y) minimise the squared relative errors (y >= 0: a
    per-row cost is kept only where the shapes' different row lengths show one)."""
    _fit_fractions(doc, matmuls, stamp, "stream", "stream_fraction", with_rows=True)


def fit_gemm_stream_fractions(doc: dict, matmuls: pd.DataFrame, stamp: str) -> None:
    """compute.<dtype>.gemm_stream_fraction: as `fit_stream_fractions`, from the same
    shapes with GEMM_STREAM_ROWS activation rows (the library's GEMM path)."""
    _fit_fractions(doc, matmuls, stamp, "gemm_stream", "gemm_stream_fraction",
                   with_rows=False, at_rows=microbench.GEMM_STREAM_ROWS)


def fit_gemm_stream_wide(doc: dict, matmuls: pd.DataFrame, stamp: str) -> None:
    """compute.<dtype>.gemm_stream_wide: the same with GEMM_STREAM_WIDE_ROWS rows, where
    measured (the simulator interpolates in log(rows) between the two shares:
    mapping.gemm_stream_share)."""
    _fit_fractions(doc, matmuls, stamp, "gemm_stream_wide", "gemm_stream_wide",
                   with_rows=False, at_rows=microbench.GEMM_STREAM_WIDE_ROWS)


def _fit_fractions(doc: dict, matmuls: pd.DataFrame, stamp: str, purpose: str,
                   field: str, with_rows: bool, at_rows: int | None = None) -> None:
    """Least squares of the relative error over the `purpose` matmuls of each
    STREAM_FORMATS type for compute.<dtype>.<field> (and, `with_rows`, .row_time);
    `at_rows`: the row count the field records (`rows:`) with the share."""
    dram = profile_from_mapping(doc, "calibration").main_memory
    at = {"rows": at_rows} if at_rows else {}
    for dtype, fmt in microbench.STREAM_FORMATS.items():
        rows = matmuls[(matmuls["purpose"] == purpose) & (matmuls["format"] == fmt)]
        rows = rows.dropna(subset=["best_s"])
        if dtype not in doc["compute"] or rows.empty:
            continue
        if field == "gemm_stream_wide" and "rows" not in \
                doc["compute"][dtype].get("gemm_stream_fraction", {}):
            continue  # the few-row share was not measured: no second point to pair with
        cases = [matmul_case(fmt, int(r.m), int(r.n), int(r.k)) for r in rows.itertuples()]

        def hw_at(x: float, y: float, dtype=dtype):
            trial = copy.deepcopy(doc)
            spec = trial["compute"][dtype]
            spec[field] = {"value": min(1.0, 1.0 / x), "assumed": "trial", **at}
            if with_rows and y > 0:
                spec["row_time"] = {"value": f"{y * 1e9:.8g} ns", "assumed": "trial"}
            elif with_rows:
                spec.pop("row_time", None)
            return as_hardware(profile_from_mapping(trial, "trial"))
        x0, y0 = 2.0, 50e-9
        base, more_x, more_y = hw_at(x0, 0.0), hw_at(2 * x0, 0.0), hw_at(x0, y0)
        design, target = [], []
        for case, r in zip(cases, rows.itertuples()):
            t0, tx, ty = (simulate_kernel(case, hw) for hw in (base, more_x, more_y))
            b, c = (tx - t0) / x0, (ty - t0) / y0
            a, m = t0 - b * x0, float(r.best_s)
            design.append((b / m, c / m))
            target.append((m - a) / m)
        A, y_rel = np.array(design), np.array(target)
        (x, y), *_ = np.linalg.lstsq(A, y_rel, rcond=None)
        x, y = float(x), float(y)
        if not with_rows or y < 1e-11 or len(cases) < 2:  # under 0.01 ns per row: none
            y = 0.0
            x = float(A[:, 0] @ y_rel / (A[:, 0] @ A[:, 0]))
        if not x > 0:
            continue
        kernel = "torch._int_mm" if dtype == "int8" else "torch.nn.functional.linear"
        each = ", ".join(f"{c.name} {r.best_s * 1e6:.4g} us"
                         for c, r in zip(cases, rows.itertuples()))
        rows_text = ", with the per-row time" if with_rows else ""
        how = (f"fitted (least squares of the relative error{rows_text}) so that the "
               f"simulator's times of the {kernel} matmuls {each} (weights streamed from "
               f"{dram.name}) match; {stamp}")
        spec = doc["compute"][dtype]
        spec[field] = {"value": round(min(1.0, 1.0 / x), 4), "measured": how, **at}
        if with_rows and y > 0:
            spec["row_time"] = {"value": f"{y * 1e9:.4g} ns", "measured": how}
        elif with_rows:
            spec.pop("row_time", None)


def _row(matmuls: pd.DataFrame, purpose: str, fmt: str):
    hit = matmuls[(matmuls["purpose"] == purpose) & (matmuls["format"] == fmt)] \
        if not matmuls.empty else matmuls
    if hit.empty or hit["best_s"].isna().all():
        return None
    return hit.iloc[0]


def fit_overlap(doc: dict, matmuls: pd.DataFrame, stamp: str, notes: list[str]) -> None:
    row = _row(matmuls, "overlap", "bf16")
    if row is None:
        notes.append("matmul overlap not measured; template value kept")
        return
    case = matmul_case("bf16", int(row.m), int(row.n), int(row.k))

    def setter(trial, x):
        trial["overheads"]["matmul_overlap"] = {"value": x, "assumed": "calibration trial"}
    x = solve_linear(doc, setter, case, float(row.best_s), 0.0, 1.0)
    value = float(min(1.0, max(0.0, x))) if x == x else 1.0
    doc["overheads"]["matmul_overlap"] = {
        "value": round(value, 3),
        "measured": f"solved so that the simulator's bf16 gemm_cost of {case.name} (weights "
                    f"streamed from main memory) equals the measured "
                    f"{row.best_s * 1e6:.4g} us (unclipped {x:.3g}; 0 = streaming and math "
                    f"add up, 1 = fully overlapped); {stamp}"}


def fit_weight_only(doc: dict, matmuls: pd.DataFrame, stamp: str, notes: list[str]) -> None:
    """weight_only.<dtype>: stream fraction and per-row time from the one-token matmuls
    (`solve_relative_with_rows`: `_weight_int8pack_mm` on one core took 90-95 ps per
    weight at k = 4096 and 121-136 at k = 1024-2048, a per-row cost; one shape is not
    representative), then the peak from the many-row one (each solved through the
    simulator)."""
    for fmt, dtype in microbench.WEIGHT_ONLY_FORMATS.items():
        entry = doc.get("weight_only", {}).get(dtype)
        streams = matmuls[(matmuls["purpose"] == "stream") & (matmuls["format"] == fmt)
                          ].dropna(subset=["best_s"]) if not matmuls.empty else matmuls
        peak = _row(matmuls, "peak", fmt)
        if entry is None or streams.empty or peak is None:
            notes.append(f"weight-only {dtype} kernel ({fmt}) not measured or not in the "
                         "template; template values kept")
            continue
        kernel = FORMATS[fmt].kernel
        ones = [matmul_case(fmt, int(r.m), int(r.n), int(r.k)) for r in streams.itertuples()]

        def set_inverse_fraction(trial, x, row_s, dtype=dtype):
            trial["weight_only"][dtype]["stream_fraction"] = {
                "value": min(1.0, 1.0 / x), "assumed": "calibration trial"}
            trial["weight_only"][dtype].pop("row_time", None)
            if row_s > 0:
                trial["weight_only"][dtype]["row_time"] = {
                    "value": f"{row_s * 1e9:.8g} ns", "assumed": "calibration trial"}
        inv, row_s = solve_relative_with_rows(doc, set_inverse_fraction, ones,
                                              streams["best_s"], 1.5, 3.0)
        if inv == inv and inv > 0:
            each = ", ".join(f"{c.name} {t * 1e6:.4g} us" for c, t in zip(ones, streams["best_s"]))
            how = (f"least squares of the relative error of the simulator's times of the "
                   f"{kernel} one-token matmuls {each} (weights streamed from main memory), "
                   f"with the per-row time; {stamp}")
            entry["stream_fraction"] = {"value": round(min(1.0, 1.0 / inv), 4),
                                        "measured": how}
            entry.pop("row_time", None)
            if row_s > 0:
                entry["row_time"] = {"value": f"{row_s * 1e9:.4g} ns", "measured": how}
        many = matmul_case(fmt, int(peak.m), int(peak.n), int(peak.k))
        rate = profile_from_mapping(doc, "calibration").weight_only[dtype].peak.value

        def set_seconds_per_op(trial, x, dtype=dtype):
            trial["weight_only"][dtype]["peak"] = {"value": f"{1e-9 / x:.6g} GOP/s",
                                                   "assumed": "calibration trial"}
            trial["weight_only"][dtype]["achievable_fraction"] = {
                "value": 1.0, "assumed": "calibration trial"}
        spo = solve_linear(doc, set_seconds_per_op, many, float(peak.best_s), 0.5 / rate, 1.0 / rate)
        if spo == spo and spo > 0:
            unit = "GFLOP/s"
            entry["peak"] = {"value": f"{1e-9 / spo:.4g} {unit}",
                             "measured": f"solved so that the simulator's time of {many.name} "
                                         f"({kernel}, weights streamed from main memory) "
                                         f"equals the measured {peak.best_s * 1e6:.4g} us; "
                                         f"{stamp}"}
            entry["achievable_fraction"] = {"value": 1.0, "measured": "the peak above is "
                                            "the achieved rate"}
        else:
            notes.append(f"weight-only {dtype}: the {many.name} time could not be solved "
                         "for a peak; template value kept")


def fit_launches(doc: dict, launches: pd.DataFrame, stamp: str, notes: list[str]) -> None:
    """Per-call overhead of each matrix kernel (compute.<type>.launch,
    weight_only.<type>.launch) and of attention (attention.launch): solved so that the
    simulator's time of a tiny call (LAUNCH_SHAPE, LAUNCH_ATTENTION; its operands in the
    nearest cache level, as the call repeats on the same tensors) equals the measured
    one (its math and traffic take well under a microsecond)."""
    for row in launches.itertuples():
        if row.best_s != row.best_s:
            notes.append(f"per-call overhead of {row.case} not measured ({row.error})")
            continue
        if row.format == "attention":
            if "attention" not in doc:
                continue
            entry, case = doc["attention"], attention_case(*microbench.LAUNCH_ATTENTION)
        else:
            section, dtype = microbench.LAUNCH_FORMATS[row.format]
            entry = doc.get(section, {}).get(dtype)
            if entry is None:
                continue
            case = matmul_case(row.format, 1, *microbench.LAUNCH_SHAPE)

        def set_launch(trial, x, path=(row.format, )):
            target = (trial["attention"] if path[0] == "attention" else
                      trial[microbench.LAUNCH_FORMATS[path[0]][0]][
                          microbench.LAUNCH_FORMATS[path[0]][1]])
            target["launch"] = {"value": f"{x * 1e6:.8g} us", "assumed": "trial"}
        x = solve_linear(doc, set_launch, case, float(row.best_s), 1e-6, 2e-6, hot=True)
        if not (x == x and x > 0):
            notes.append(f"per-call overhead of {case.name} not solvable; default kept")
            continue
        entry["launch"] = {"value": f"{x * 1e6:.4g} us",
                           "measured": f"solved so that the simulator's time of the tiny "
                                       f"call {case.name} equals its fastest measured "
                                       f"{row.best_s * 1e6:.4g} us; {stamp}"}


def fit_convert_ops(doc: dict, dtype: str, cases: list, measured_s: list[float]
                    ) -> tuple[float, str]:
    """Conversion ops per element that make the simulator's times of `cases` match the
    measured ones (`solve_relative` at 1 and 2 ops, each shape weighing the same: a
    pooled total followed the largest shape alone, whose workspace spills the cache);
    no cost formula is repeated here."""
    def set_ops(trial, ops):
        trial["fallbacks"][dtype]["convert_ops_per_element"] = {
            "value": ops, "assumed": "calibration trial"}
    rule = doc["fallbacks"][dtype]
    ops = solve_relative(doc, set_ops, cases, measured_s, 1.0, 2.0)
    if ops != ops:
        rate = (profile_from_mapping(doc, "calibration")
                .achievable_ops_per_s(rule["convert_dtype"]))
        weights = sum(case.dims["n"] * case.dims["k"] for case in cases)
        ops = float(sum(measured_s)) / weights * rate
        return ops, (f"the simulator is memory-bound there, so ops = time per weight x "
                     f"achievable {rule['convert_dtype']} rate {rate / 1e9:.4g} G/s")
    if ops < 0.01:
        return 0.01, ("the measured times are below the simulator's without conversion: the "
                      "kernel hides it, so the smallest allowed value is written")
    measured = ", ".join(f"{t * 1e6:.4g}" for t in measured_s)
    return ops, (f"least squares of the relative error of the simulator's gemm_cost of "
                 f"these cases (as {rule['execute_as']}, converting on {rule['convert_dtype']})"
                 f" against the measured {measured} us")


#: The fields a CPU calibration sets. Any of them a fit could not solve (a broken or
#: implausible measurement, a busy machine) must not keep the template's citation
#: silently: `mark_unmeasured` rewrites its provenance to say the template was kept.
CALIBRATED_FIELDS = (
    "overheads.kernel_launch", "overheads.matmul_overlap",
    "compute.fp32.peak", "compute.bf16.peak", "compute.int8.peak",
    "compute.fp32.achievable_fraction",
    "compute.fp32.stream_fraction", "compute.bf16.stream_fraction",
    "compute.int8.stream_fraction",
    "fallbacks.ternary.convert_ops_per_element",
    "weight_only.int8.peak", "weight_only.int8.stream_fraction",
    "weight_only.int4.peak", "weight_only.int4.stream_fraction",
    "vector.rate", "attention.peak", "attention.convert_ops_per_element",
    "attention.stream_fraction", "memory[dram].bandwidth",
    "memory[dram].achievable_fraction")


def _cited_node(doc: dict, dotted: str) -> dict | None:
    node = doc
    for part in dotted.split("."):
        name, _, level = part.partition("[")
        node = node.get(name) if isinstance(node, dict) else None
        if level and isinstance(node, list):
            node = next((lv for lv in node if lv.get("name") == level.rstrip("]")), None)
    return node if isinstance(node, dict) and "value" in node else None


def mark_unmeasured(doc: dict, stamp: str, notes: list[str]) -> None:
    """Every CALIBRATED_FIELDS entry present in `doc` without `measured:` provenance (and
    not already marked) gets `template_kept` provenance, naming the run's notes."""
    for dotted in CALIBRATED_FIELDS:
        node = _cited_node(doc, dotted)
        if node is None or node.get("measured") or \
                "template value kept" in (node.get("assumed") or ""):
            continue
        warning = f"{dotted} was not measured or not solvable in this run (see its notes)"
        notes.append(f"{warning}; template value kept")
        replacement = template_kept(dict(node), warning, stamp)
        node.clear()
        node.update(replacement)
