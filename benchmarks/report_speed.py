"""Speed of `precsim report` on the built-in study (issue 19): wall and CPU time of the
command as the README documents it (a subprocess, interpreter start included), and where
the time goes: imports (`python -X importtime`) and each stage of the report, timed in
one fresh process by wrapping the functions `codesign/report.py` calls (plans, the law
ensemble, the answers per law, what-ifs, the lifetime sweep, figures, rooflines, the
energy split, the runtime comparison, writing the folder).

`--baseline DIR` measures another checkout (e.g. /work/main) the same way in the same run,
so before and after compare on the same machine under the same load. CPU time (user +
system) is what a busy shared machine inflates least; the load average is printed.

    python benchmarks/report_speed.py [--runs N] [--baseline DIR] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The stages: (module, attribute) as `codesign/report.py` (or its `Document`) calls
#: them; each is wrapped in the probe process and its inclusive wall / CPU time summed.
STAGES = (("precsim.codesign.study", "resolve_study", "resolve the study"),
          ("precsim.codesign.report", "hardware_costs", "hardware half of each plan"),
          ("precsim.codesign.report", "plan", "plan per deployment"),
          ("precsim.codesign.report", "robustness", "law ensemble (robustness)"),
          ("precsim.codesign.report", "answers_by_law", "answer under each law"),
          ("precsim.codesign.report", "run_whatif", "what-ifs"),
          ("precsim.codesign.report", "lifetime_sweep", "lifetime sweep"),
          ("precsim.codesign.report", "roofline_png", "roofline figures"),
          ("precsim.codesign.report", "energy_split_table", "energy split"),
          ("precsim.codesign.report", "runtime_comparison", "runtime comparison"),
          ("precsim.codesign.document", "Document.figure", "other figures (render + PNG)"),
          ("precsim.codesign.report", "atomic_directory", "writing the folder"))

#: Runs in a fresh interpreter with PYTHONPATH = the tree measured; prints one JSON line.
_PROBE = r"""
import functools, importlib, json, sys, time
w0, c0 = time.perf_counter(), time.process_time()
import precsim.codesign.cli  # noqa: F401  (what `precsim` imports before any command)
import precsim.codesign.report, precsim.codesign.study, precsim.codesign.document
out = {"import": [time.perf_counter() - w0, time.process_time() - c0]}
spent = {}

def wrap(owner, name, label):
    fn = getattr(owner, name)
    spent.setdefault(label, [0.0, 0.0, 0])
    if name == "atomic_directory":        # a context manager: time its body + swap
        import contextlib
        @contextlib.contextmanager
        def timed(*a, **k):
            w, c = time.perf_counter(), time.process_time()
            with fn(*a, **k) as value:
                yield value
            s = spent[label]
            s[0] += time.perf_counter() - w; s[1] += time.process_time() - c; s[2] += 1
        setattr(owner, name, timed)
        return
    @functools.wraps(fn)
    def timed(*a, **k):
        w, c = time.perf_counter(), time.process_time()
        try:
            return fn(*a, **k)
        finally:
            s = spent[label]
            s[0] += time.perf_counter() - w; s[1] += time.process_time() - c; s[2] += 1
    setattr(owner, name, timed)

for module, path, label in STAGES:
    owner = importlib.import_module(module)
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    if hasattr(owner, name):
        wrap(owner, name, label)
import contextlib, io
from precsim.codesign.cli import main
w, c = time.perf_counter(), time.process_time()
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = main(["report", "--out", OUT, "--json"])
assert code == 0, code
out["command"] = [time.perf_counter() - w, time.process_time() - c]
out["stages"] = {k: v for k, v in spent.items() if v[2]}
print(json.dumps(out))
"""


def _run(tree: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`python ARGS` with PYTHONPATH = the tree measured (its precsim, not main's)."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tree)}, cwd=cwd, timeout=600,
                          check=False)


def _cli(tree: Path, runs: int) -> tuple[float, float]:
    """Median wall and CPU time (the child's user + system, from this process's
    children rusage) of `precsim report --out DIR`, interpreter start included."""
    walls, cpus = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            done = _run(tree, ["-m", "precsim.codesign.cli", "report", "--out",
                               str(Path(tmp) / "report")], Path(tmp))
            walls.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode:
            raise SystemExit(f"precsim report failed in {tree}:\n{done.stderr[-3000:]}")
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def _stages(tree: Path) -> dict:
    stages = "STAGES = " + repr(STAGES) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        code = f"OUT = {str(Path(tmp) / 'report')!r}\n" + stages + _PROBE
        done = _run(tree, ["-c", code], Path(tmp))
    if done.returncode:
        raise SystemExit(f"the stage probe failed in {tree}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _imports(tree: Path) -> float:
    """Seconds of import of the report command (self times summed, -X importtime)."""
    code = "import precsim.codesign.cli, precsim.codesign.report"
    done = _run(tree, ["-X", "importtime", "-c", code], tree)
    return sum(float(line.split("|")[0].split(":")[1]) * 1e-6
               for line in done.stderr.splitlines()
               if line.startswith("import time:") and "self [us]" not in line)


def measure(tree: Path, runs: int) -> dict:
    wall, cpu = _cli(tree, runs)
    return {"cli_wall_s": wall, "cli_cpu_s": cpu, "imports_s": _imports(tree),
            **_stages(tree)}


def _print(result: dict) -> None:
    ours, base = result["ours"], result.get("baseline")
    print(f"precsim report (built-in study); {os.cpu_count()} CPUs, load average "
          f"{result['load_average']} before, {result['load_average_after']} after")

    def cell(d: dict | None, wall: float | None, cpu: float | None) -> str:
        return "-" if d is None or wall is None else f"{wall:6.2f} / {cpu:6.2f}"
    cols = [("this tree", ours)] + ([("baseline", base)] if base else [])
    print(f"{'seconds (wall / CPU)':<44}" + "".join(f"{n:>18}" for n, _ in cols))
    print(f"{'precsim report, subprocess (median)':<44}" + "".join(
        f"{cell(d, d['cli_wall_s'], d['cli_cpu_s']):>18}" for _, d in cols))
    print(f"{'imports (-X importtime, self times)':<44}" + "".join(
        f"{d['imports_s']:>9.2f}{'':>9}" for _, d in cols))
    print(f"{'one in-process run: import':<44}" + "".join(
        f"{cell(d, *d['import']):>18}" for _, d in cols))
    print(f"{'one in-process run: the command':<44}" + "".join(
        f"{cell(d, *d['command']):>18}" for _, d in cols))
    labels = list(dict.fromkeys(label for d in (ours, base) if d for label in d["stages"]))
    for label in labels:
        row = f"  {label:<42}"
        for _, d in cols:
            s = d["stages"].get(label)
            row += f"{cell(d, *(s[:2] if s else (None, None))):>18}"
        print(row + (f"  ({ours['stages'][label][2]} calls)" if label in ours["stages"]
                     else ""))
    print("stages are inclusive and nested where one calls another (the lifetime sweep "
          "and the what-ifs plan; figures\ninclude their rendering); the rest of the "
          "command is tables, Markdown and HTML.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="CLI subprocess runs (median)")
    parser.add_argument("--baseline", metavar="DIR",
                        help="another checkout to measure the same way (e.g. /work/main)")
    parser.add_argument("--json", action="store_true", help="print JSON, not the table")
    args = parser.parse_args()
    trees = {"ours": ROOT} | ({"baseline": Path(args.baseline).resolve()}
                              if args.baseline else {})
    result = {"benchmark": "report_speed", "cpus": os.cpu_count(),
              "load_average": [round(v, 2) for v in os.getloadavg()]}
    result |= {key: measure(tree, max(1, args.runs)) for key, tree in trees.items()}
    result["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)


if __name__ == "__main__":
    main()
