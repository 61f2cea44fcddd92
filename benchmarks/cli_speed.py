"""Speed of the public API and the CLI (issue 19): median time of a scalar
`precsim.simulate` call (first call in a fresh process, then with the profile and model
cached: the same configuration repeated, and distinct configurations), of the vectorised
path per configuration (`precsim.simulate` on broadcast arrays and `simulate_grid`), the
wall time of `precsim simulate` (a subprocess, --json and the text table) and the import
time of the CLI by top-level package (`python -X importtime`).

Peers are not installed here: their figures are the ones quoted in the issue, labelled
"quoted, not measured here". `--baseline DIR` measures another checkout (e.g. main) in
the same run with the same code, so the ratios compare like with like on this machine.

    python benchmarks/cli_speed.py [--repeats N] [--cli-runs N] [--baseline DIR] [--json]
                                   [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from precsim.simulator.io import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
PROFILE, MODEL, QUANT = "a100-sxm-80gb", "llama-2-7b", "W16A16"

#: Per-configuration API time and CLI wall time quoted in issue 19 (not measured here).
QUOTED = {
    "LLM-Viewer API per configuration": 0.16e-3,
    "llm-analysis API per configuration": 0.39e-3,
    "llm-analysis CLI wall": 0.9,
    "PrecSim API per call (issue, before)": 9e-3,
}
#: The issue's targets (seconds).
TARGETS = {"api_cached_s": 0.5e-3, "cli_wall_s": 0.8,
           "vector_per_config_s": QUOTED["LLM-Viewer API per configuration"] / 10}

#: Runs in a fresh interpreter with PYTHONPATH = the tree measured; prints one JSON line.
#: Every time is measured twice: wall (perf_counter) and this process's CPU time
#: (process_time), which a busy shared machine inflates far less.
_API_PROBE = r"""
import itertools, json, statistics, sys, time
import numpy as np
import precsim
w0, c0 = time.perf_counter(), time.process_time()
precsim.simulate(PROFILE, MODEL, QUANT)
out = {"first_call_s": time.perf_counter() - w0, "first_call_cpu_s": time.process_time() - c0}

def median_per_call(key, calls, per=1):
    walls, cpus = [], []
    for _ in range(REPEATS):
        w, c = time.perf_counter(), time.process_time()
        for call in calls:
            call()
        walls.append((time.perf_counter() - w) / len(calls) / per)
        cpus.append((time.process_time() - c) / len(calls) / per)
    out[key + "_s"], out[key + "_cpu_s"] = statistics.median(walls), statistics.median(cpus)

profile, model = precsim.load_profile(PROFILE), precsim.get_model(MODEL)
median_per_call("cached_same", [lambda: precsim.simulate(profile, model, QUANT)] * 10)
median_per_call("cached_names", [lambda: precsim.simulate(PROFILE, MODEL, QUANT)] * 10)
configs = list(itertools.product([1, 4, 16, 64], [128, 512, 2048], [32, 128, 512]))
median_per_call("cached_distinct", [
    (lambda b=b, p=p, g=g: precsim.simulate(profile, model, QUANT, batch=b, prompt=p,
                                            gen=g)) for b, p, g in configs])
out["distinct_configs"] = len(configs)
batch = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512], dtype=float)
prompt = np.array([64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768], dtype=float)
gen = np.array([1, 8, 32, 64, 128, 256, 512, 1024, 2048, 4096], dtype=float)
grid = (batch[:, None, None], prompt[None, :, None], gen[None, None, :])
n = out["vector_configs"] = batch.size * prompt.size * gen.size
median_per_call("vector_per_config", [
    lambda: precsim.simulate(profile, model, QUANT, batch=grid[0], prompt=grid[1],
                             gen=grid[2])], per=n)
if hasattr(precsim, "simulate_grid"):
    median_per_call("grid_per_config", [
        lambda: precsim.simulate_grid(profile, model, QUANT, batch=batch, prompt=prompt,
                                      gen=gen)], per=n)
print(json.dumps(out))
"""


def _env(tree: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(tree)}


def _api(tree: Path, repeats: int) -> dict:
    code = (f"PROFILE, MODEL, QUANT = {PROFILE!r}, {MODEL!r}, {QUANT!r}\n"
            f"REPEATS = {repeats}\n" + _API_PROBE)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(tree), cwd=tree, timeout=600, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cli_args(json_out: bool) -> list[str]:
    return [sys.executable, "-m", "precsim.codesign.cli", "simulate", "--profile", PROFILE,
            "--model", MODEL, "--quant", QUANT] + (["--json"] if json_out else [])


def _cli_wall(tree: Path, runs: int, json_out: bool) -> tuple[float, float]:
    """Median wall time and CPU time (user + system) of `precsim simulate` in a
    subprocess, interpreter start included, measured by a small timer process."""
    timer = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True); "
             "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
             "print(time.perf_counter() - t, u.ru_utime + u.ru_stime)")
    walls, cpus = [], []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", timer, *_cli_args(json_out)],
                              capture_output=True, text=True, env=_env(tree), cwd=tree,
                              timeout=600, check=True)
        wall, cpu = map(float, done.stdout.split())
        walls.append(wall)
        cpus.append(cpu)
    return statistics.median(walls), statistics.median(cpus)


def _import_breakdown(tree: Path, top: int) -> list[dict]:
    """Seconds of import by top-level package (self times summed), largest first."""
    done = subprocess.run([sys.executable, "-X", "importtime", *_cli_args(True)[1:]],
                          capture_output=True, text=True, env=_env(tree), cwd=tree,
                          timeout=600, check=True)
    per: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (part.strip() for part in line[len("import time:"):].split("|"))
        package = name.split(".")[0]
        per[package] = per.get(package, 0.0) + float(self_us) * 1e-6
    rows = sorted(per.items(), key=lambda kv: -kv[1])
    total = sum(per.values())
    return [{"package": k, "seconds": v} for k, v in rows[:top]] + [
        {"package": "(all imports)", "seconds": total}]


def measure(tree: Path, repeats: int, cli_runs: int, top: int) -> dict:
    out = _api(tree, repeats)
    out["cli_json_wall_s"], out["cli_json_wall_cpu_s"] = _cli_wall(tree, cli_runs, True)
    out["cli_text_wall_s"], out["cli_text_wall_cpu_s"] = _cli_wall(tree, cli_runs, False)
    out["imports"] = _import_breakdown(tree, top)
    return out


def _cpu(key: str) -> str:
    """The CPU-time twin of a wall-time key (`x_s` -> `x_cpu_s`)."""
    return key[:-len("_s")] + "_cpu_s"


def _ms(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.2f} s"


_ROWS = (("first_call_s", "API: first simulate call in a fresh process (after import)"),
         ("cached_same_s", "API: simulate, loaded profile + model, same config repeated"),
         ("cached_names_s", "API: simulate by names (cached), same config repeated"),
         ("cached_distinct_s", "API: simulate, loaded profile + model, 36 distinct configs"),
         ("vector_per_config_s", "vectorised simulate, per config (1000-config grid)"),
         ("grid_per_config_s", "simulate_grid (DataFrame), per config (1000-config grid)"),
         ("cli_json_wall_s", "CLI: precsim simulate --json, wall"),
         ("cli_text_wall_s", "CLI: precsim simulate (text table), wall"))


def _print(result: dict) -> None:
    ours, base = result["ours"], result.get("baseline")
    print(f"{PROFILE} / {MODEL} / {QUANT}; {os.cpu_count()} CPUs, load average "
          f"{result['load_average']} (wall / CPU time, medians)")
    head = f"{'measurement':<62} {'this tree':>21}"
    print(head + (f" {'baseline':>21} {'speed-up':>13}" if base else ""))

    def pair(d: dict, key: str) -> str:
        return f"{_ms(d[key])} / {_ms(d[_cpu(key)])}"
    for key, label in _ROWS:
        if key not in ours:
            continue
        line = f"{label:<62} {pair(ours, key):>21}"
        if base and key in base:
            cpu = _cpu(key)
            line += (f" {pair(base, key):>21} {base[key] / ours[key]:>5.1f}x /"
                     f"{base[cpu] / ours[cpu]:>5.1f}x")
        print(line)
    print("\nquoted in the issue, NOT measured here:")
    for name, value in QUOTED.items():
        print(f"  {name:<45} {_ms(value):>11}")
    peer = QUOTED["LLM-Viewer API per configuration"]
    for clock, tail in (("wall", "_s"), ("CPU", "_cpu_s")):
        print(f"{clock}: vectorised per config {_ms(ours['vector_per_config' + tail])} = "
              f"{peer / ours['vector_per_config' + tail]:.1f}x faster than LLM-Viewer's "
              f"quoted call (target >= 10x); cached scalar call "
              f"{_ms(ours['cached_distinct' + tail])} (target "
              f"{_ms(TARGETS['api_cached_s'])}); CLI --json {_ms(ours['cli_json_wall' + tail])}"
              f", text {_ms(ours['cli_text_wall' + tail])} (target "
              f"{_ms(TARGETS['cli_wall_s'])})")
    print("\nimports of `precsim simulate --json` by top-level package (this tree):")
    for row in ours["imports"]:
        print(f"  {row['package']:<20} {_ms(row['seconds']):>11}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="API timing repeats")
    parser.add_argument("--cli-runs", type=int, default=7, help="CLI subprocess runs")
    parser.add_argument("--top", type=int, default=8, help="import rows to show")
    parser.add_argument("--baseline", metavar="DIR",
                        help="another checkout to measure the same way (e.g. /work/main)")
    parser.add_argument("--json", action="store_true", help="print JSON, not the table")
    parser.add_argument("--out", metavar="FILE.json", help="also write the JSON there")
    args = parser.parse_args()
    result = {"benchmark": "cli_speed", "profile": PROFILE, "model": MODEL, "quant": QUANT,
              "cpus": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()],
              "quoted_not_measured_here": QUOTED, "targets": TARGETS,
              "ours": measure(ROOT, max(1, args.repeats), max(1, args.cli_runs), args.top)}
    if args.baseline:
        result["baseline"] = measure(Path(args.baseline).resolve(), max(1, args.repeats),
                                     max(1, args.cli_runs), args.top)
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)


if __name__ == "__main__":
    main()
