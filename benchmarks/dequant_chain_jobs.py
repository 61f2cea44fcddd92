"""Time the dequantise-chain calibration jobs standalone (issue 19, branch deq4).

The one-token w8a16-deq / w4a16-deq chains on STREAM_SHAPES (`microbench.CHAIN_FORMATS`,
purpose "chain") that `vector.dequant_overlap` is fitted on, timed as calibration times
them (validation.kernels.build_case with the cold rotation, bench.time_at_threads at
the given thread count, calibration's repeats) and written as calibration_matmuls.csv
rows, so a saved `validate` run without them can be re-fitted with them:

    python benchmarks/dequant_chain_jobs.py --threads 1 --out chain_thr1.csv
    python -m precsim.validation.refit DIR --extra chain_thr1.csv

About 15 s of machine time on one thread, 8 s on two (the 2-vCPU Xeon VM); state the
load (`cat /proc/loadavg`) with the numbers: they are one sample of the machine.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

import pandas as pd

from precsim.simulator.io import atomic_write_text
from precsim.validation import microbench
from precsim.validation.bench import QUICK, time_at_threads
from precsim.validation.calibrate import RATE_REPEATS
from precsim.validation.kernels import build_case, matmul_case, rotation_bytes
from precsim.validation.torchenv import cpu_caches, load_torch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True, help="CSV to write (calibration matmul rows)")
    args = ap.parse_args(argv)
    torch = load_torch()
    torch.set_num_threads(args.threads)
    settings = replace(QUICK, repeats=max(QUICK.repeats, RATE_REPEATS), threads=args.threads)
    caches = cpu_caches()
    cold = rotation_bytes(caches[-1].total_bytes if caches else None)
    rows = []
    for fmt in microbench.CHAIN_FORMATS:
        for n, k in microbench.STREAM_SHAPES:
            case = matmul_case(fmt, 1, n, k)
            timing, threads = time_at_threads(build_case(case, "cpu", cold_bytes=cold),
                                              settings, "cpu")
            rows.append({"case": case.name, "purpose": "chain", "format": fmt, "m": 1,
                         "n": n, "k": k, "time_s": timing.median_s, "best_s": timing.best_s,
                         "best_threads": threads, "spread": timing.spread,
                         "iqr_rel": timing.iqr_rel, "noise_pct": 100 * timing.iqr_rel,
                         "rounds": 1, "error": ""})
            print(f"{case.name}: {timing.best_s * 1e6:.0f} us fastest "
                  f"({timing.best_s * 1e12 / (n * k):.0f} ps per weight), {threads} thr",
                  flush=True)
    atomic_write_text(args.out, pd.DataFrame(rows).to_csv(index=False))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
