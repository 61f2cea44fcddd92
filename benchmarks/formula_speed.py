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
import importlib
from precsim.simulator import kernels
profile, model = precsim.load_profile(PROFILE), precsim.get_model(MODEL)
# the formulas the pricing modules call (op_eval; op_streams where the tree has it):
# kernels' public ones or (where they skip the input checks) their `unchecked`
# entries, labelled by the public name
callers = []
for module in ("op_eval", "op_streams"):
    try:
        callers.append(importlib.import_module("precsim.simulator." + module))
    except ImportError:
        pass
public = {}
for name, f in vars(kernels).items():
    if name.endswith("_cost") and callable(f):
        public[id(f)] = public[id(getattr(f, "unchecked", f))] = name
formulas = [(m, name, f) for m in callers for name, f in vars(m).items()
            if name.endswith("_cost") and id(f) in public]
calls = []
def recorder(f):
    def record(*args, **kwargs):
        calls.append((public[id(f)], f, args, kwargs))
        return f(*args, **kwargs)
    return record
for m, name, f in formulas:
    setattr(m, name, recorder(f))
try:
    precsim.simulate(profile, model, QUANT)
finally:
    for m, name, f in formulas:
        setattr(m, name, f)

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


def _keyed(rows: list) -> dict:
    """{(formula, its k-th call): row} in call order."""
    seen: dict = {}
    out = {}
    for row in rows:
        k = seen[row["formula"]] = seen.get(row["formula"], -1) + 1
        out[(row["formula"], k)] = row
    return out


def _us(row) -> str:
    return f"{row['cpu_s'] * 1e6:>7.1f} us" if row else f"{'-':>10}"


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
    # rows matched by formula and occurrence (the trees may make different calls: a
    # formula one tree calls and the other does not shows "-" on the other's side)
    mine, theirs = _keyed(ours["rows"]), _keyed(base["rows"]) if base else {}
    for key in list(mine) + [k for k in theirs if k not in mine]:
        row = mine.get(key) or theirs[key]
        line = f"{row['formula']:<18} {row['shape']:<10} " + _us(mine.get(key))
        other = theirs.get(key)
        if other and row is not other and other["shape"] != row["shape"]:
            line += f" {_us(other)} {other['shape']}"
        elif base:
            line += " " + _us(other)
        print(line)
    for label, key in (("formulas, summed", None), ("whole request", "request_cpu_s")):
        def total(d):
            return sum(r["cpu_s"] for r in d["rows"]) if key is None else d[key]
        line = f"{label:<29} {total(ours) * 1e6:>7.1f} us"
        print(line + (f" {total(base) * 1e6:>7.1f} us" if base else ""))


if __name__ == "__main__":
    main()
