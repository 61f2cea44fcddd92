"""The attention calibration fits (validation/calibrate.py measures the cases,
`microbench.ATTENTION_CASES`): the rule's peak and output ops from two fp32 prefills,
its stream fraction from the fp32 decode, its conversion from the bf16 decode, and the
bf16 matrix tiles' peak and output ops from two bf16 prefills where the CPU has them
(`attention.tiles`, Intel AMX). As in `fits`, every value is solved through the
simulator itself at trial values.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from precsim.simulator.hardware import as_hardware
from precsim.simulator.profiles import profile_from_mapping
from precsim.validation import microbench
from precsim.validation.fits import MATRIX_EXTENSION_FLAG, solve_linear
from precsim.validation.kernels import attention_case
from precsim.validation.simulate import simulate_kernel


def fit_attention(doc: dict, attention: pd.DataFrame, stamp: str, notes: list[str],
                  flags: frozenset[str] = frozenset()) -> None:
    """attention.peak and .output_ops_per_element from the fp32 prefills
    (`fit_attention_prefill`), attention.stream_fraction from the fp32 decode, then
    attention.convert_ops_per_element from the bf16 decode (ATTENTION_CASES), each solved
    through the simulator; prefills in another type give `fit_attention_tiles`. Twice in
    turn: the prefills' K/V traffic depends on the stream fraction."""
    if doc.get("attention") is None:
        return
    for _ in range(2):
        prefills = attention[attention["phase"] == "prefill"]
        for dtype, rows in prefills.groupby("dtype", sort=False):
            if dtype == doc["attention"]["execute_as"]:
                fit_attention_prefill(doc, rows, stamp, notes)
            else:
                fit_attention_tiles(doc, rows, stamp, notes, flags)
        _fit_attention_decode(doc, attention[attention["phase"] != "prefill"], stamp, notes)


def _fit_attention_decode(doc: dict, decodes: pd.DataFrame, stamp: str, notes: list[str]
                          ) -> None:
    """attention.stream_fraction from the decode in the rule's type, then
    convert_ops_per_element from the one in the other type (fit_attention)."""
    rule = doc["attention"]
    for row in decodes.itertuples():
        case = _attention_cases(pd.DataFrame([row._asdict()]))[0]
        how = (f"solved so that the simulator's attention_cost of {case.name} (PyTorch "
               f"scaled_dot_product_attention) equals the measured {row.best_s * 1e6:.4g} us;"
               f" {stamp}")
        if row.dtype == rule["execute_as"]:
            def set_inverse(trial, x):
                trial["attention"]["stream_fraction"] = {"value": min(1.0, 1.0 / x),
                                                         "assumed": "calibration trial"}
            x = solve_linear(doc, set_inverse, case, float(row.best_s), 1.5, 3.0)
            if x == x and x > 0:
                rule["stream_fraction"] = {"value": round(min(1.0, 1.0 / x), 4),
                                           "measured": how}
            else:
                notes.append(f"attention stream fraction not solvable from {case.name}")
        else:
            def set_ops(trial, x):
                trial["attention"]["convert_ops_per_element"] = {
                    "value": x, "assumed": "calibration trial"}
            x = solve_linear(doc, set_ops, case, float(row.best_s), 1.0, 2.0)
            if x == x and x > 0:
                rule["convert_ops_per_element"] = {"value": round(x, 3), "measured": how}
            elif x == x:  # faster than without conversion: hidden, as fit_convert_ops
                rule["convert_ops_per_element"] = {
                    "value": 0.01, "measured": f"{how} (solution {x:.3g}: the kernel hides "
                                               "its conversion; the smallest allowed value)"}
            else:
                notes.append(f"attention conversion not solvable from {case.name}; "
                             "template value kept")


def _attention_cases(rows: pd.DataFrame) -> list:
    """The ATTENTION_CASES case of each row (by its `case` name where the table has one,
    else the first of its phase and type)."""
    cases = [attention_case(*c) for c in microbench.ATTENTION_CASES]
    named = "case" in rows

    def matches(c, r) -> bool:
        return c.name == r.case if named else (c.kind == f"attention_{r.phase}"
                                               and c.fmt == r.dtype)
    return [next(c for c in cases if matches(c, r)) for r in rows.itertuples()]


def _solve_prefill(doc: dict, rows: pd.DataFrame, setter, rate: float, ops: float
                   ) -> tuple[float, float, list]:
    """(seconds per flop x, output ops per element y, cases) making the simulator's
    times of the prefill `rows` match (least squares of the relative error;
    setter(trial, x, y) sets both): both unknowns from two or more shapes (y >= 0),
    x alone at y = `ops` from one."""
    rows = rows.dropna(subset=["best_s"])
    cases, m = _attention_cases(rows), rows["best_s"].to_numpy(dtype=float)

    def times(x: float, y: float) -> np.ndarray:
        trial = copy.deepcopy(doc)
        setter(trial, x, y)
        hw = as_hardware(profile_from_mapping(trial, "trial"))
        return np.array([simulate_kernel(c, hw) for c in cases])
    x0, y0 = 1.0 / rate, max(ops, 4.0)  # slow trials: compute-bound, linear in x and y
    t0 = times(x0, y0)
    bx, by = (times(2 * x0, y0) - t0) / x0 / m, (times(x0, 2 * y0) - t0) / y0 / m
    target = (m - t0) / m + bx * x0 + by * y0
    if len(cases) >= 2:
        (x, y), *_ = np.linalg.lstsq(np.column_stack([bx, by]), target, rcond=None)
        if y >= 0:
            return float(x), float(y), cases
        ops = 0.0
    x = float(bx @ (target - by * ops) / (bx @ bx)) if bx @ bx > 0 else float("nan")
    return x, ops, cases


def _prefill_how(cases, rows: pd.DataFrame, stamp: str, extra: str = "") -> str:
    each = ", ".join(f"{c.name} {t * 1e6:.4g} us" for c, t in zip(cases, rows["best_s"]))
    return (f"least squares of the relative error of the simulator's attention_cost of "
            f"{each} (PyTorch scaled_dot_product_attention{extra}) with the peak and the "
            f"output ops; {stamp}")


def _set_output_ops(entry: dict, y: float, how: str) -> None:
    if y > 0:
        entry["output_ops_per_element"] = {"value": round(y, 3), "measured": how}
    else:
        entry.pop("output_ops_per_element", None)


def fit_attention_prefill(doc: dict, rows: pd.DataFrame, stamp: str, notes: list[str]
                          ) -> None:
    """attention.peak and .output_ops_per_element from the rule type's prefills
    (`_solve_prefill`; the per-row work of the online softmax made the 256-token fp32
    prefill -11% off with the peak alone fitted at 384 tokens)."""
    rule = doc["attention"]
    rate = profile_from_mapping(doc, "calibration").achievable_ops_per_s(rule["execute_as"])

    def setter(trial, x, y):
        trial["attention"]["peak"] = {"value": f"{1e-9 / x:.6g} GFLOP/s", "assumed": "trial"}
        _set_output_ops(trial["attention"], y, "trial")
    ops = rule.get("output_ops_per_element", {}).get("value", 0.0)
    x, y, cases = _solve_prefill(doc, rows, setter, rate, ops)
    if not (x == x and x > 0):
        notes.append("attention peak not solvable from the prefills; kept")
        return
    how = _prefill_how(cases, rows, stamp)
    rule["peak"] = {"value": f"{1e-9 / x:.4g} GFLOP/s", "measured": how}
    if len(cases) >= 2:
        _set_output_ops(rule, y, how)


def fit_attention_tiles(doc: dict, rows: pd.DataFrame, stamp: str, notes: list[str],
                        flags: frozenset[str]) -> None:
    """attention.tiles.<dtype> (peak, output ops) from prefills of that type, as
    `fit_attention_prefill`, where the CPU `flags` list the type's matrix extension
    (MATRIX_EXTENSION_FLAG: PyTorch's CPU flash attention then packs the blocks for the
    tiles, 233 against 607 us for bf16 and fp32 at 1x8x256x256x64 on the AMX Xeon VM);
    without one the rule's path (conversions to `execute_as`) prices it, and the rows
    only check that."""
    rule, dtype = doc["attention"], str(rows["dtype"].iloc[0])
    tiles = rule.pop("tiles", None) or {}
    tiles.pop(dtype, None)  # the rule's path unless solved below
    if tiles:
        rule["tiles"] = tiles
    if MATRIX_EXTENSION_FLAG.get(dtype) not in flags or rows["best_s"].isna().all():
        return
    rate = profile_from_mapping(doc, "calibration").achievable_ops_per_s(rule["execute_as"])

    def setter(trial, x, y):
        entry = {"peak": {"value": f"{1e-9 / x:.6g} GFLOP/s", "assumed": "trial"}}
        _set_output_ops(entry, y, "trial")
        trial["attention"].setdefault("tiles", {})[dtype] = entry
    ops = rule.get("output_ops_per_element", {}).get("value", 0.0)
    x, y, cases = _solve_prefill(doc, rows, setter, rate, ops)
    if not (x == x and x > 0):
        notes.append(f"attention on {dtype} matrix tiles not solvable from the prefills "
                     "(the softmax alone takes longer); the rule's path kept")
        return
    how = _prefill_how(cases, rows, stamp,
                       f"; the CPU reports {MATRIX_EXTENSION_FLAG[dtype]}")
    entry = {"peak": {"value": f"{1e-9 / x:.4g} GFLOP/s", "measured": how}}
    if len(cases) >= 2:
        _set_output_ops(entry, y, how)
    rule.setdefault("tiles", {})[dtype] = entry
