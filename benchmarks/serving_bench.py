"""Serving DES speed: simulate 10,000 requests, print wall time and events/s.

    .venv/bin/python benchmarks/serving_bench.py [--requests N] [--json]

Wall time is split into building the cost tables (vectorised cost-model calls) and the
simpy simulation itself; cpu_s is the process CPU time of both (robust to a busy
machine). Events are the simpy events the two processes wait on (arrival timeouts,
iteration timeouts, idle wake-ups). One core, no parallelism.
Target: the whole 10,000-request run in under 10 s.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import pandas as pd

from precsim.simulator.des.serving import SchedulerConfig, build_tables, serve
from precsim.simulator.des.workload import poisson_workload

SCENARIOS = (
    # profile, model, quant, qps, max batch, chunked prefill tokens
    ("h100-sxm", "llama-3-8b", "W4A16-g128", 20.0, 64, None),
    ("h100-sxm", "llama-3-8b", "W4A16-g128", 20.0, 64, 512),
    ("h100-sxm", "llama-3-8b", "FP8", 40.0, 128, None),
    ("l4", "llama-3.2-1b", "W4A16-g128", 10.0, 32, 256),
)


def run(n_requests: int, seed: int) -> pd.DataFrame:
    rows = []
    for profile, model, quant, qps, max_batch, chunk in SCENARIOS:
        workload = poisson_workload(qps, n_requests, seed, prompt_tokens="128:1024",
                                    output_tokens="16:256")
        config = SchedulerConfig(kv_capacity_tokens=0, max_batch=max_batch,
                                 chunked_prefill_tokens=chunk)
        start, cpu0 = time.perf_counter(), time.process_time()
        tables = build_tables(profile, model, quant, workload, config)
        built = time.perf_counter()
        result = serve(profile, model, quant, workload, max_batch=max_batch,
                       chunked_prefill_tokens=chunk, tables=tables)
        done, cpu1 = time.perf_counter(), time.process_time()
        s = result.summary
        rows.append({
            "profile": profile, "model": model, "quant": quant, "qps": qps,
            "max_batch": max_batch, "chunked_prefill": chunk or 0, "requests": n_requests,
            "tables_s": built - start, "simulate_s": done - built, "wall_s": done - start,
            "cpu_s": cpu1 - cpu0,
            "events": result.events, "events_per_s": result.events / (done - built),
            "iterations": s["iterations"], "ttft_p99_s": s["ttft_p99_s"],
            "tpot_p99_s": s["tpot_p99_s"],
            "throughput_tokens_per_s": s["throughput_tokens_per_s"]})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    frame = run(args.requests, args.seed)
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "max_wall_s": float(frame["wall_s"].max()), "target_wall_s": 10.0}
    if args.json:
        print(json.dumps({"meta": meta, "runs": frame.to_dict(orient="records")}, indent=2))
        return
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"slowest run {meta['max_wall_s']:.2f} s for {args.requests} requests "
          f"(target < {meta['target_wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
