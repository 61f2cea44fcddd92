"""Time branch amx4's new calibration jobs standalone and add them to saved runs (issue 19).

The quick plan gained bf16 / fp32 attention prefills of 128 and 384 tokens (the tiles'
and the rule's peak and output ops), bf16 gelu / add / mul at 768x1024 (each kernel's
widening) and moved the overlap job to a 256-row bf16 matmul. A saved `validate` run
lacks them; this script times them as calibration does (validation.kernels.build_case,
the cold rotation for matmuls and attention, bench.time_at_threads at --threads, 5
repeats) together with one job of each kind the saved run has (its fp32 384-token
prefill, bf16 768x1024 layer_norm and bf16 64x4096x1024 matmul), and writes a copy of
each saved run with the new rows, each = the run's own anchor x (new / anchor) measured
here, so a different machine state between the run and this sample cancels:

    python benchmarks/attention_vector_jobs.py --threads 1 --out /tmp/new DIR [DIR ...]
    python -m precsim.validation.refit /tmp/new/<name of DIR>

About 20 s of machine time; state the load (`cat /proc/loadavg`, printed) with the
numbers: they are one sample of a shared machine.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

from precsim.validation import microbench
from precsim.validation.bench import QUICK, time_at_threads
from precsim.validation.kernels import (attention_case, build_case, matmul_case,
                                        rotation_bytes, rows_cols_case)
from precsim.validation.torchenv import cpu_caches, load_torch

#: (table, anchor case, new cases) per kind; tables as `validate` writes them
ATTENTION = [attention_case(*c) for c in microbench.ATTENTION_CASES if c[0] == "prefill"]
GROUPS = (
    ("matmuls", "attention_prefill/fp32/1x8x384x384x64",
     [c for c in ATTENTION if c.name != "attention_prefill/fp32/1x8x384x384x64"]),
    ("vector", "norm-layer_norm/bf16/768x1024",
     [rows_cols_case("elementwise", op, "bf16", 768, 1024) for op in ("gelu", "add", "mul")]),
    ("matmuls", "gemm/bf16/64x4096x1024", [matmul_case("bf16", *microbench.OVERLAP_SHAPE)]),
)


def _case(name: str):
    every = ATTENTION + [c for _, _, cases in GROUPS for c in cases] + [
        rows_cols_case("norm", "layer_norm", "bf16", 768, 1024),
        matmul_case("bf16", 64, 4096, 1024)]
    return next(c for c in every if c.name == name)


def time_cases(threads: int) -> dict[str, float]:
    """{case name: fastest call (s)} of every anchor and new case at `threads`."""
    torch = load_torch()
    torch.set_num_threads(threads)
    settings = replace(QUICK, repeats=5, threads=threads)
    caches = cpu_caches()
    cold = rotation_bytes(caches[-1].total_bytes if caches else None)
    names = [n for _, anchor, cases in GROUPS for n in (anchor, *(c.name for c in cases))]
    out = {}
    for name in dict.fromkeys(names):
        case = _case(name)
        fn = build_case(case, "cpu", cold_bytes=None if case.kind in ("norm", "elementwise")
                        else cold)
        with torch.inference_mode():
            out[name] = time_at_threads(fn, settings, "cpu")[0].best_s
        print(f"{name}: {out[name] * 1e6:.1f} us at {threads} thread(s)", flush=True)
    return out


def with_rows(run: Path, dest: Path, timed: dict[str, float]) -> None:
    """Copy `run` to `dest` with the new rows (anchor-scaled); the overlap row replaced."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(run, dest)
    for table, anchor_name, cases in GROUPS:
        path = dest / f"calibration_{table}.csv"
        t = pd.read_csv(path)
        t = t[~t["case"].isin([c.name for c in cases])]
        if any(c.kind == "gemm" for c in cases):
            t = t[t["purpose"] != "overlap"]
        anchor = t[t["case"] == anchor_name].iloc[0]
        rows = []
        for case in cases:
            row = anchor.copy()
            row["case"] = case.name
            row["time_s"] = row["best_s"] = anchor["best_s"] * timed[case.name] / timed[
                anchor_name]
            if case.kind.startswith("attention"):
                row["dtype"] = case.fmt
            elif case.kind == "gemm":
                row["purpose"], (row["m"], row["n"], row["k"]) = "overlap", \
                    microbench.OVERLAP_SHAPE
            else:
                row["op"], row["kind"] = case.op, case.kind
            rows.append(row.to_frame().T)
        pd.concat([t, *rows], ignore_index=True).to_csv(path, index=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="folders written by `precsim validate --out`")
    ap.add_argument("--threads", type=int, default=1, help="the runs' thread count")
    ap.add_argument("--out", required=True, help="folder for the copies")
    args = ap.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    timed = time_cases(args.threads)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    for run in map(Path, args.runs):
        with_rows(run, Path(args.out) / run.name, timed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
