"""Calibration step: the host's GEMM structure (simulator.gemm_shape) from a few shapes.

fp32 GEMMs with ROWS activation rows (around multiples of the candidate register-block
heights) against an N x K weight that stays in cache are timed (fastest call); a
micro-kernel of tm rows runs ceil(m / tm) row blocks, so the time is c x ceil(m / tm)
with c the same for every m. The candidate tm (CANDIDATE_ROWS) whose c varies least
over the shapes (standard deviation of log(t / ceil(m / tm))) is written as the
profile's `gemm.tiles` rows, `measured:`; the 16 columns are two AVX2 8-lane registers
(assumed), `units` the threads the GEMMs run on and `k_step` 1 (a rank-1 update per
step). Seven shapes of ~25 MFLOP, 2 x 0.02 s each: about 1 s on a quiet machine.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from precsim.validation.bench import BenchSettings, time_callable
from precsim.validation.torchenv import load_torch

ROWS = (24, 25, 32, 33, 48, 49, 54)
N, K = 512, 512
CANDIDATE_ROWS = (4, 6, 8, 12, 16)


def fit_tile_rows(table: pd.DataFrame) -> tuple[int, float]:
    """(tm, spread): the candidate whose per-row-block time varies least (log std)."""
    m = table["m"].to_numpy(float)
    t = table["best_s"].to_numpy(float)
    ok = np.isfinite(t) & (t > 0)
    spreads = {tm: float(np.std(np.log(t[ok] / np.ceil(m[ok] / tm))))
               for tm in CANDIDATE_ROWS}
    best = min(spreads, key=spreads.get)
    return best, spreads[best]


def measure_rows(settings: BenchSettings) -> pd.DataFrame:
    """Fastest call of fp32 torch.mm at each of ROWS x N x K (short timer runs)."""
    torch = load_torch()
    torch.manual_seed(0)
    w = torch.randn(K, N)
    quick = BenchSettings(min_run_time_s=0.02, repeats=2, threads=settings.threads)
    rows = []
    for m in ROWS:
        a = torch.randn(m, K)
        t = time_callable(lambda a=a: torch.mm(a, w), quick)
        rows.append({"m": m, "n": N, "k": K, "best_s": t.best_s, "time_s": t.median_s})
    return pd.DataFrame(rows)


def gemm_block(settings: BenchSettings, threads: int, stamp: str) -> tuple[dict, pd.DataFrame]:
    """The profile's `gemm` block measured on this machine, and the timings."""
    table = measure_rows(settings)
    tm, spread = fit_tile_rows(table)
    how = (f"fp32 torch.mm of {', '.join(map(str, ROWS))} rows x {N} x {K}, fastest "
           f"call each; {tm} rows fit ceil(m / rows) best (log spread {spread:.3f}) among "
           f"{', '.join(map(str, CANDIDATE_ROWS))}, {stamp}")
    block = {"units": {"value": threads, "measured": f"torch.get_num_threads(), {stamp}"},
             "tiles": {"value": f"{tm}x16", "measured": how + "; 16 columns assumed (two "
                       "AVX2 8-lane fp32 registers)"},
             "k_step": {"value": 1, "assumed": "a CPU micro-kernel steps K one rank-1 "
                        "update at a time"}}
    return block, table
