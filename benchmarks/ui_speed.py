"""How fast each `precsim ui` interaction answers on the default study (not a test).

Times what each callback does (the compute function the CLI also calls, plus building the
page's figures and tables), as the median of a few runs. Plans are cached by the page
(same controls, same answer); the "first time" rows clear that cache before every run.

    PYTHONPATH=$PWD python benchmarks/ui_speed.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import base64
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from precsim.codesign.ui import codesign_view, compute, laws_view, simulate_view  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _median_s(fn, repeat: int, before=None) -> float:
    times = []
    for _ in range(repeat):
        if before:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interactions() -> list[tuple[str, object, object]]:
    """(label, function, set-up run before each timing)."""
    info = compute.study_deployments()
    names = [d["name"] for d in info["deployments"]]
    focus = names[0]
    target = round(info["target_loss"] + 0.02, 4)
    upload = "data:;base64," + base64.b64encode(
        (ROOT / "hw_profiles" / "l4.yaml").read_bytes()).decode()
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    clear = compute.plan_view.cache_clear

    def sim():
        simulate_view._output(compute.simulate_view("h100-sxm", "llama-3-8b", "W4A16-g128",
                                                    8, 512, 128))

    def focused(whatif=compute.WhatIf()):
        codesign_view._focus(compute.plan_view(None, (), focus, target, None, None, whatif),
                             focus)

    def table():
        for name in names:
            compute.plan_view(None, (), name, target)

    def law():
        laws_view._figure(compute.law_view("kumar2024", "3e22"))

    def profiles():
        from precsim.simulator.profile_loader import load_profile
        compute.compare_profiles([load_profile("h100-sxm"), load_profile("l4")])

    def check():
        compute.check_uploaded_profile(upload, "l4.yaml", folder)

    return [
        ("Simulate: change batch (llama-3-8b W4A16-g128 on h100-sxm)", sim, None),
        (f"Co-design: target loss, focused {focus} (first time)", focused, clear),
        (f"Co-design: memory bandwidth 2x on {focus} (first time)",
         lambda: focused(compute.WhatIf(bandwidth_x=2.0)), clear),
        (f"Co-design: optimum per profile, {len(names)} deployments (first time)", table,
         clear),
        ("Co-design: any control, answer cached (seen before)", focused, None),
        ("Laws: change compute budget (kumar2024)", law, None),
        ("Profiles: compare h100-sxm and l4", profiles, None),
        ("Profiles: check an uploaded YAML", check, None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = [(label, _median_s(fn, args.repeat, before))
            for label, fn, before in interactions()]
    width = max(len(label) for label, _ in rows)
    print(f"{'interaction':<{width}}  median s ({args.repeat} runs, {os.cpu_count()} CPUs)")
    for label, seconds in rows:
        print(f"{label:<{width}}  {seconds:8.3f}")


if __name__ == "__main__":
    main()
