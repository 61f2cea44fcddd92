"""Sweep throughput: configurations/s in one process, on the local pool, on a Dask cluster.

    python benchmarks/sweep_bench.py [--study examples/sweep.yaml] [--workers 2] [--json]

Rows: `serial` evaluates every chunk in this process (no executor: the per-core rate);
`local pool` is `LocalExecutor(workers)`; `dask LocalCluster` is `DaskExecutor(
local_workers=workers)` (processes, one thread each). `cold` includes starting the
executor (worker processes, imports); `warm` is a second sweep on the same executor.
No output file is written (checkpointing is the same for both executors).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

from precsim.codesign.sweep import (DaskExecutor, LocalExecutor, evaluate_chunk,
                                    load_sweep_study, plan_chunks, run_sweep)

ROOT = Path(__file__).resolve().parent.parent


def _timed_sweeps(study, make_executor) -> tuple[float, float, pd.DataFrame]:
    """(cold s: executor start + first sweep, warm s: second sweep, frame)."""
    start = time.perf_counter()
    with make_executor() as executor:
        frame = run_sweep(study, executor, progress=False).frame
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        again = run_sweep(study, executor, progress=False).frame
        warm_s = time.perf_counter() - start
    pd.testing.assert_frame_equal(frame, again, check_exact=True)
    return cold_s, warm_s, frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default=str(ROOT / "examples" / "sweep.yaml"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    study = load_sweep_study(args.study)
    if args.chunk_size:
        study = study.model_copy(update={"chunk_size": args.chunk_size})
    n = study.n_configs
    chunks = plan_chunks(study)

    start = time.perf_counter()
    serial = pd.concat([evaluate_chunk(c) for c in chunks], ignore_index=True)
    serial_s = time.perf_counter() - start

    rows = [{"executor": "serial (this process)", "workers": 1, "cold_s": serial_s,
             "warm_s": serial_s}]
    frames = {}
    for label, factory in (("local pool", lambda: LocalExecutor(args.workers)),
                           ("dask LocalCluster", lambda: DaskExecutor(
                               local_workers=args.workers))):
        cold_s, warm_s, frames[label] = _timed_sweeps(study, factory)
        rows.append({"executor": label, "workers": args.workers, "cold_s": cold_s,
                     "warm_s": warm_s})
    pd.testing.assert_frame_equal(frames["local pool"], frames["dask LocalCluster"],
                                  check_exact=True)
    pd.testing.assert_frame_equal(frames["local pool"], serial, check_exact=True)
    for row in rows:
        row["cold_configs_per_s"] = n / row["cold_s"]
        row["warm_configs_per_s"] = n / row["warm_s"]
    info = {"study": args.study, "configs": n, "chunks": len(chunks),
            "configs_per_chunk": study.configs_per_chunk, "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0], "python": sys.version.split()[0]}
    if args.json:
        print(json.dumps({**info, "results": rows}, indent=2))
        return
    print(", ".join(f"{k}={v if not isinstance(v, float) else round(v, 2)}"
                    for k, v in info.items()))
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))


if __name__ == "__main__":
    main()
