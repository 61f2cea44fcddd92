"""Planner throughput: candidates (training format, serving format, N, D) costed per second.

Runs `codesign.planner.plan` on the built-in study (training on h100-sxm, serving on
each deployment) with N x D grids of growing size and prints a table (or `--json`).
A candidate is one (training format, serving format, N, D) whose loss and cost are
evaluated: the N x D grid plus the bisection points refining the smallest D.

    .venv/bin/python benchmarks/plan_bench.py [--repeat 3] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from precsim.codesign.planner import plan  # noqa: E402
from precsim.codesign.study import (Grid, load_study, problem_from_study,  # noqa: E402
                                    resolve_study)

SIZES = ((41, 21), (161, 81), (321, 161))   # (N points, D points)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per size (best kept)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    study, source = load_study()
    rows = []
    for n_points, d_points in SIZES:
        search = study.search.model_copy(update={
            "N": Grid(min=study.search.N.min, max=study.search.N.max, points=n_points),
            "D": Grid(min=study.search.D.min, max=study.search.D.max, points=d_points)})
        resolved = resolve_study(study.model_copy(update={"search": search}), source)
        for index, deployment in enumerate(study.deployments):
            problem = problem_from_study(resolved, index)
            best = float("inf")
            for _ in range(args.repeat):
                start = time.perf_counter()
                result = plan(problem)
                best = min(best, time.perf_counter() - start)
            rows.append({"deploy_profile": deployment.profile, "N_points": n_points,
                         "D_points": d_points, "candidates": result.candidates,
                         "seconds": best, "candidates_per_s": result.candidates / best,
                         "optimum": f"{result.optimum.train_format}/"
                                    f"{result.optimum.serve_format}"
                         if result.optimum else "-"})
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(),
               "machine": platform.machine(), "processor": platform.processor() or "?"}
    if args.json:
        print(json.dumps({"machine": machine, "runs": rows}, indent=2))
        return 0
    print(f"plan throughput, best of {args.repeat} ({machine})")
    print(f"{'deploy profile':<18} {'N x D':>9} {'candidates':>11} {'seconds':>8} "
          f"{'candidates/s':>13}  optimum")
    for r in rows:
        print(f"{r['deploy_profile']:<18} {r['N_points']:>4}x{r['D_points']:<4} "
              f"{r['candidates']:>11,} {r['seconds']:>8.3f} {r['candidates_per_s']:>13,.0f}"
              f"  {r['optimum']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
