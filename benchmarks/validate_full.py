"""Full validation run: calibrate, measure the full held-out plan, print JSON.

Calibrates the host profile, measures the full plan (more shapes, longer timings,
batched decode and prefill of the small transformer in every format) and prints the
per-format error table as JSON.

    .venv/bin/python benchmarks/validate_full.py [--out DIR] [--device cpu|cuda|auto]
                                                 [--threads N]

Takes about 18 minutes on 2 cores. Outputs as `precsim validate` (kernels.csv,
by_format.csv, scatter.png, summary.md, ...) in DIR (default: validation-full/).
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="validation-full")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    from precsim.validation.run import run_validation
    start = time.perf_counter()
    result = run_validation(out=args.out, quick=False, device=args.device,
                            threads=args.threads,
                            on_progress=lambda stage, done, total: print(
                                f"{done}/{total} {stage}", file=sys.stderr, flush=True))
    result.pop("summary_text")
    result["wall_s"] = round(time.perf_counter() - start, 1)
    json.dump(result, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
