"""Throughput of the cost model: configurations per second of a vectorised Llama-2-7B
decode sweep (batch x context x format, one numpy-broadcast call) and the wall time of
one full-model evaluation (a whole request, per-op table included).

    .venv/bin/python benchmarks/simulator_sweep.py [--repeats N] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from precsim.simulator.cost import decode_step_cost, simulate
from precsim.simulator.models import get_model, model_for_params
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.quant import as_quant


def _timed(fn, repeats: int) -> float:
    """Median wall time of `repeats` calls after one warm-up call."""
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def run(repeats: int) -> list[dict]:
    profile = load_profile("h100-sxm")
    model = get_model("llama-2-7b")
    formats = as_quant(["W16A16", "W8A8", "FP8", "W4A16-g128", "W4A16-g64-KV8"])
    batch = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512], dtype=float)
    context = np.geomspace(128, 32768, 4000)
    rows = []

    grid = (formats[:, None, None], batch[None, :, None], context[None, None, :])
    n = formats.size * batch.size * context.size
    t = _timed(lambda: decode_step_cost(profile, model, *grid), repeats)
    rows.append({"case": "llama-2-7b decode step: 5 formats x 10 batch x 4000 contexts",
                 "configs": n, "seconds": t, "configs_per_s": n / t})

    one = (as_quant("W4A16-g128"), batch[:, None], context[None, :])
    n = batch.size * context.size
    t = _timed(lambda: decode_step_cost(profile, model, *one), repeats)
    rows.append({"case": "llama-2-7b decode step: W4A16-g128, 10 batch x 4000 contexts",
                 "configs": n, "seconds": t, "configs_per_s": n / t})

    sizes = model_for_params(np.geomspace(1e8, 1e11, 2000)[:, None])
    n = 2000 * batch.size
    t = _timed(lambda: simulate(profile, sizes, "W4A16-g128", batch[None, :], 512, 256),
               repeats)
    rows.append({"case": "whole request (prompt 512, gen 256): 2000 model sizes x 10 batch",
                 "configs": n, "seconds": t, "configs_per_s": n / t})

    t = _timed(lambda: simulate(profile, model, "W4A16-g128", 1, 512, 256).ops, repeats)
    rows.append({"case": "one full-model evaluation: llama-2-7b W4A16-g128 request + op table",
                 "configs": 1, "seconds": t, "configs_per_s": 1 / t})
    t = _timed(lambda: decode_step_cost(profile, model, "W4A16-g128", 1, 1024), repeats)
    rows.append({"case": "one decode step (scalar inputs)", "configs": 1, "seconds": t,
                 "configs_per_s": 1 / t})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run(max(1, args.repeats))
    if args.json:
        print(json.dumps({"benchmark": "simulator_sweep", "rows": rows}, indent=2))
        return
    width = max(len(r["case"]) for r in rows)
    print(f"{'case':<{width}}  {'configs':>9}  {'seconds':>9}  {'configs/s':>11}")
    for r in rows:
        print(f"{r['case']:<{width}}  {r['configs']:>9,}  {r['seconds']:>9.4f}  "
              f"{r['configs_per_s']:>11,.0f}")


if __name__ == "__main__":
    main()
