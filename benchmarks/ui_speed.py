"""How fast each `precsim ui` interaction answers on the default study (not a test).

Times what each callback does (the compute function the CLI also calls, plus building the
page's figures and tables), as the median of a few runs. The page keeps plans (same
controls, same answer) and their parts (`compute.plan_view`): "nothing cached" rows
forget all of them before every run; "changed" rows ask a value not asked before on every
run, the other controls as the page showed them (their parts kept). Wall and CPU time
(CPU: what a busy shared machine inflates least) and the load average at the end.

    PYTHONPATH=$PWD python benchmarks/ui_speed.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import base64
import itertools
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from precsim.codesign.ui import codesign_view, compute, laws_view, simulate_view  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _median_s(fn, repeat: int, before=None) -> tuple[float, float]:
    """Median wall and CPU seconds of `fn` (`before` runs untimed ahead of each run)."""
    wall, cpu = [], []
    for _ in range(repeat):
        if before:
            before()
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    return statistics.median(wall), statistics.median(cpu)


def interactions() -> list[tuple[str, object, object]]:
    """(label, function, set-up run before each timing)."""
    info = compute.study_deployments()
    names = [d["name"] for d in info["deployments"]]
    focus = names[0]
    target = round(info["target_loss"] + 0.02, 4)
    upload = "data:;base64," + base64.b64encode(
        (ROOT / "hw_profiles" / "l4.yaml").read_bytes()).decode()
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    fresh = itertools.count(1)     # a control value not asked before, per run
    now = {"target": target}

    def sim():
        simulate_view._output(compute.simulate_view("h100-sxm", "llama-3-8b", "W4A16-g128",
                                                    8, 512, 128))

    def focused(whatif=compute.WhatIf(), at=None):
        codesign_view._focus(compute.plan_view(None, (), focus, at or target, None, None,
                                               whatif), focus)

    def new_target():
        focused(at=round(target + 1e-4 * next(fresh), 6))

    def new_bandwidth():
        focused(compute.WhatIf(bandwidth_x=2.0 + 0.25 * next(fresh)))

    def table(at=None):
        for name in names:       # the arguments of the page's callbacks (one cache key)
            compute.plan_view(None, (), name, at or now["target"], None, None,
                              compute.WhatIf())

    def focus_new_target():        # the page shows the focused plan before the table
        now["target"] = round(target - 1e-4 * next(fresh), 6)
        focused(at=now["target"])

    def law():
        laws_view._figure(compute.law_view("kumar2024", "3e22"))

    def profiles():
        from precsim.simulator.profile_loader import load_profile
        compute.compare_profiles([load_profile("h100-sxm"), load_profile("l4")])

    def check():
        compute.check_uploaded_profile(upload, "l4.yaml", folder)

    return [
        ("Simulate: change batch (llama-3-8b W4A16-g128 on h100-sxm)", sim, None),
        (f"Co-design: focused {focus}, nothing cached", focused, compute.clear_caches),
        (f"Co-design: target loss changed, focused {focus}", new_target, None),
        (f"Co-design: memory bandwidth changed on {focus}", new_bandwidth, focused),
        (f"Co-design: optimum per profile, {len(names)} deployments, nothing cached", table,
         compute.clear_caches),
        (f"Co-design: optimum per profile after a target change", table, focus_new_target),
        ("Co-design: any control, answer cached (seen before)", focused, None),
        ("Laws: change compute budget (kumar2024)", law, None),
        ("Profiles: compare h100-sxm and l4", profiles, None),
        ("Profiles: check an uploaded YAML", check, None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = [(label, *_median_s(fn, args.repeat, before))
            for label, fn, before in interactions()]
    width = max(len(label) for label, *_ in rows)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"{'interaction':<{width}}  wall s   CPU s  (median of {args.repeat} runs, "
          f"{os.cpu_count()} CPUs, load {load} at the end)")
    for label, wall, cpu in rows:
        print(f"{label:<{width}}  {wall:6.3f}  {cpu:6.3f}")


if __name__ == "__main__":
    main()
