"""CPU time of each kernel-formula call a scalar `precsim.simulate` request makes (issue
19: the formulas' share of the scalar call). One request is run with the formulas (the
`*_cost` functions of simulator.kernels) that simulator.op_eval calls recorded; each
recorded call is then repeated alone and its least CPU time over `--repeats` rounds of
`--calls` calls printed, with their sum and the whole request's time. `--baseline DIR`
measures another checkout the same way, in its own process, to compare on this machine.

    python benchmarks/formula_speed.py [--profile P] [--model M] [--quant Q]
                                       [--baseline DIR] [--calls N] [--repeats N]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Runs in a fresh interpreter with PYTHONPATH = the tree measured; prints one JSON line.
_PROBE = r"""
import json, sys, time
import numpy as np
import precsim
from precsim.simulator import kernels, op_eval
profile, model = precsim.load_profile(PROFILE), precsim.get_model(MODEL)
formulas = {name: f for name, f in vars(op_eval).items()
            if name.endswith("_cost") and getattr(kernels, name, None) is f}
calls = []
def recorder(name, f):
    def record(*args, **kwargs):
        calls.append((name, f, args, kwargs))
        return f(*args, **kwargs)
    return record
for name, f in formulas.items():
    setattr(op_eval, name, recorder(name, f))
try:
    precsim.simulate(profile, model, QUANT)
finally:
    for name, f in formulas.items():
        setattr(op_eval, name, f)

def least(fn, n):
    best = float("inf")
    for _ in range(REPEATS):
        start = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - start) / n)
    return best
def shape(args, kwargs):  # the largest array input's shape
    arrays = [a for a in list(args) + list(kwargs.values()) if isinstance(a, np.ndarray)
              and a.dtype != object]
    return str(max((a.shape for a in arrays), key=len, default=()))
rows = [{"formula": name, "shape": shape(args, kwargs),
         "cpu_s": least(lambda: f(*args, **kwargs), CALLS)}
        for name, f, args, kwargs in calls]
for _ in range(CALLS // 10):
    precsim.simulate(profile, model, QUANT)
request = least(lambda: precsim.simulate(profile, model, QUANT), max(1, CALLS // 5))
print(json.dumps({"rows": rows, "request_cpu_s": request}))
"""


def measure(tree: Path, args) -> dict:
    code = (f"PROFILE, MODEL, QUANT = {args.profile!r}, {args.model!r}, {args.quant!r}\n"
            f"CALLS, REPEATS = {args.calls}, {args.repeats}\n" + _PROBE)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree,
                          timeout=600, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="a100-sxm-80gb")
    parser.add_argument("--model", default="llama-2-7b")
    parser.add_argument("--quant", default="W16A16")
    parser.add_argument("--baseline", metavar="DIR", help="another checkout to measure")
    parser.add_argument("--calls", type=int, default=1000, help="calls per timing round")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (least is kept)")
    args = parser.parse_args()
    ours = measure(ROOT, args)
    base = measure(Path(args.baseline).resolve(), args) if args.baseline else None
    print(f"{args.profile} / {args.model} / {args.quant}: CPU time per call (least of "
          f"{args.repeats} rounds of {args.calls}); load average {os.getloadavg()[0]:.2f}")
    head = f"{'formula call':<18} {'inputs':<10} {'this tree':>10}"
    print(head + (f" {'baseline':>10}" if base else ""))
    rows = zip(ours["rows"], base["rows"] if base else [None] * len(ours["rows"]))
    for row, other in rows:
        line = f"{row['formula']:<18} {row['shape']:<10} {row['cpu_s'] * 1e6:>7.1f} us"
        if other is not None and other["formula"] == row["formula"]:
            line += f" {other['cpu_s'] * 1e6:>7.1f} us"
        print(line)
    for label, key in (("formulas, summed", None), ("whole request", "request_cpu_s")):
        def total(d):
            return sum(r["cpu_s"] for r in d["rows"]) if key is None else d[key]
        line = f"{label:<29} {total(ours) * 1e6:>7.1f} us"
        print(line + (f" {total(base) * 1e6:>7.1f} us" if base else ""))


if __name__ == "__main__":
    main()
