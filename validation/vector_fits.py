"""The element-wise calibration fits (validation/calibrate.py measures the cases,
`calibrate.VECTOR_CASES`): `vector.rate` from the fp32 kernels together, each kernel's
own rate (`vector.rate_by_kernel`) from its fp32 case, then the widening ops per 16-bit
element of each kernel (`vector.widen_by_kernel`) from its bf16 case.
PyTorch's bf16 kernels differ per op in what widening costs: on the AMX Xeon VM bf16
gelu ran as fast as fp32 gelu per element, bf16 add and mul at the fp32 ones' bytes per
second, silu about half and layer_norm about one op per element above fp32 (one widen
value for all put held-out bf16 gelu at +30%, mul +14%, add +10%). As in `fits`, every
value is solved through the simulator itself at trial values.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from precsim.simulator.hardware import as_hardware
from precsim.simulator.profiles import profile_from_mapping
from precsim.validation.fits import solve_relative
from precsim.validation.kernels import rows_cols_case
from precsim.validation.simulate import kernel_cost


#: the simulator's name (`vector.widen_by_kernel`) of each element-wise calibration op
WIDEN_KERNEL = {"layer_norm": "layernorm", "rms_norm": "rmsnorm"}


def fit_vector_rate(doc: dict, vector: pd.DataFrame, stamp: str, notes: list[str]) -> None:
    """vector.rate: with u = 1 / rate the simulated time of each fp32 VECTOR_CASE is
    linear, t_i = a_i + b_i u, while compute-bound (a, b from two trial rates); u
    minimises the sum of squared relative errors. Then `fit_widen_by_kernel` on the
    16-bit cases (all cases in the rate when none is fp32)."""
    if vector.empty:
        notes.append("element-wise kernels not measured; template vector rate kept")
        return
    wide = vector["dtype"] == "fp32"
    rate_rows = (vector[wide] if wide.any() else vector).copy()
    _fit_rate(doc, rate_rows, stamp, notes)
    if "vector_ops_per_s" in rate_rows:
        vector.loc[rate_rows.index, "vector_ops_per_s"] = rate_rows["vector_ops_per_s"]
    if wide.any():
        fit_rate_by_kernel(doc, vector[wide], stamp)
        fit_widen_by_kernel(doc, vector[~wide], stamp)


def _kernel_cases(rows: pd.DataFrame) -> list:
    return [rows_cols_case(r.kind, r.op, r.dtype, int(r.rows), int(r.cols))
            for r in rows.itertuples()]


def _each(doc: dict, cases: list, measured) -> str:
    hw = as_hardware(profile_from_mapping(doc, "fitted"))
    return ", ".join(f"{c.name} {t * 1e6:.4g} us (simulated "
                     f"{float(kernel_cost(c, hw).time_s) * 1e6:.4g} us)"
                     for c, t in zip(cases, measured))


def fit_rate_by_kernel(doc: dict, vector: pd.DataFrame, stamp: str) -> None:
    """vector.rate_by_kernel.<kernel>: with u = 1 / rate the kernel's own fp32 cases
    solved as `_fit_rate` (least squares of the relative error; the simulator's op count
    for it kept), where the simulator calls them compute-bound."""
    for op, rows in vector.dropna(subset=["best_s"]).groupby("op", sort=False):
        kernel = WIDEN_KERNEL.get(op, op)
        cases = _kernel_cases(rows)

        def set_inverse(trial, u, kernel=kernel):
            trial["vector"].setdefault("rate_by_kernel", {})[kernel] = {
                "value": f"{1e-9 / u:.8g} GOP/s", "assumed": "calibration trial"}
        # trials at 2 and 1 G ops/s: every case compute-bound, the time linear in u
        u = solve_relative(doc, set_inverse, cases, list(rows["best_s"]), 1 / 2e9, 1 / 1e9)
        if not (u == u and u > 0):
            continue
        trial = copy.deepcopy(doc)
        set_inverse(trial, u)
        hw = as_hardware(profile_from_mapping(trial, "trial"))
        if any(float(kernel_cost(c, hw).bound != "compute") for c in cases):
            continue  # memory-bound there: the kernel's own rate is not measured
        set_inverse(doc, u)
        doc["vector"]["rate_by_kernel"][kernel] = {
            "value": f"{1e-9 / u:.4g} GOP/s",
            "measured": f"least squares of the relative error of the simulator's times of "
                        f"{_each(doc, cases, rows['best_s'])} against the fastest measured "
                        f"calls (its op count: precsim.simulator.models.ACTIVATION_OPS, "
                        f"kernels.norm_cost); {stamp}"}


def fit_widen_by_kernel(doc: dict, vector: pd.DataFrame, stamp: str) -> None:
    """vector.widen_by_kernel.<kernel>: the widening ops per 16-bit element that make the
    simulator's time of the kernel's 16-bit calibration case(s) match (least squares of
    the relative error, on the fitted rate); where the measured calls are no slower
    than the simulator's without widening, the kernel hides it: the smallest allowed
    value (0.01), said so."""
    for op, rows in vector.dropna(subset=["best_s"]).groupby("op", sort=False):
        kernel = WIDEN_KERNEL.get(op, op)
        cases = _kernel_cases(rows)

        def set_widen(trial, x, kernel=kernel):
            trial["vector"].setdefault("widen_by_kernel", {})[kernel] = {
                "value": x, "assumed": "calibration trial"}

        def hw_at(x: float):
            trial = copy.deepcopy(doc)
            set_widen(trial, x)
            return as_hardware(profile_from_mapping(trial, "trial"))
        least = hw_at(0.01)  # a Count is positive: 0.01, the smallest allowed value
        if all(float(kernel_cost(c, least).time_s) >= t
               for c, t in zip(cases, rows["best_s"])):
            x = 0.0  # as fast as without widening (or faster): hidden
        else:  # trials at 8 and 16 ops: every case compute-bound, the time linear in them
            x = solve_relative(doc, set_widen, cases, list(rows["best_s"]), 8.0, 16.0)
        if x != x:
            continue
        value = max(0.01, x)
        set_widen(doc, value)
        hidden = "" if x > 0.01 else (" (measured no slower than the simulator without "
                                      "widening: the kernel hides its widening; the "
                                      "smallest allowed value)")
        doc["vector"].setdefault("widen_by_kernel", {})[kernel] = {
            "value": round(value, 3),
            "measured": f"least squares of the relative error of the simulator's times of "
                        f"{_each(doc, cases, rows['best_s'])} against the fastest "
                        f"measured calls, on the fitted rates{hidden}; {stamp}"}


def _fit_rate(doc: dict, vector: pd.DataFrame, stamp: str, notes: list[str]) -> None:
    """vector.rate from `vector`'s rows (fit_vector_rate); each row's own rate in
    `vector["vector_ops_per_s"]`."""

    def hw_at(u: float):
        trial = copy.deepcopy(doc)
        trial.setdefault("vector", {})["rate"] = {"value": f"{1e-9 / u:.8g} GOP/s",
                                                  "assumed": "trial"}
        return as_hardware(profile_from_mapping(trial, "trial"))
    u0 = 1 / 1e9  # slow trials (1 and 0.5 G ops/s): every case compute-bound
    slow, slower = hw_at(u0), hw_at(2 * u0)
    b_rel, y_rel = [], []
    for row in vector.itertuples():
        case = rows_cols_case(row.kind, row.op, row.dtype, int(row.rows), int(row.cols))
        t0, t1 = float(kernel_cost(case, slow).time_s), float(kernel_cost(case, slower).time_s)
        b = (t1 - t0) / u0
        m = float(row.best_s)
        b_rel.append(b / m)
        y_rel.append((m - (t0 - b * u0)) / m)
    b_arr, y_arr = np.array(b_rel), np.array(y_rel)
    u = float(b_arr @ y_arr / (b_arr @ b_arr)) if b_arr @ b_arr > 0 else 0.0
    if u <= 0:
        notes.append("element-wise kernels are not compute-bound in the simulator; "
                     "template vector rate kept")
        return
    # each case's own rate (the one that alone would match it), to show the spread
    vector["vector_ops_per_s"] = [b / y if y > 0 else float("nan")
                                  for b, y in zip(b_rel, y_rel)]
    cases = ", ".join(f"{r.op} {r.dtype} {r.rows}x{r.cols}" for r in vector.itertuples())
    doc["vector"]["rate"] = {
        "value": f"{1e-9 / u:.4g} GOP/s",
        "measured": f"fitted (least squares of the relative error) so that the simulator's "
                    f"times of the element-wise kernels {cases} (their vector op counts: "
                    f"precsim.simulator.models.ACTIVATION_OPS, kernels.norm_cost, kernels.widen_ops) "
                    f"match the fastest measured calls; {stamp}"}
