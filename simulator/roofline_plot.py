"""Hierarchical roofline (Yang, Kurth & Williams, "Hierarchical Roofline Analysis",
arXiv 2009.05257): one memory roof per level, one compute roof per execution dtype, and
each op placed once per memory level at (ops / bytes at that level, achieved ops/s).

Achieved ops/s counts matrix, vector and conversion ops over the op's full time, launch
gaps included, so overhead-bound ops sit visibly below every roof.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from precsim.simulator.io import atomic_write_bytes
from precsim.simulator.hardware import vector_dtype
from precsim.simulator.profiles import HardwareProfile


def roofline_data(profile: HardwareProfile, ops: pd.DataFrame) -> dict:
    """Roofs (achievable) and op points as plain numbers (also the `--json` output)."""
    levels = [lv.name for lv in profile.memory]
    used = sorted({d for d in ops["exec_dtype"] if d in profile.compute}
                  | {vector_dtype(profile)})
    roofs = {
        "compute_ops_per_s": {d: profile.compute[d].achievable_ops_per_s for d in used},
        "memory_bytes_per_s": {lv.name: lv.achievable_bandwidth_bytes_per_s
                               for lv in profile.memory},
    }
    points = []
    for _, row in ops.iterrows():
        work = row["flops"] + row["vector_ops"] + row["convert_ops"]
        if work <= 0 or row["time_s"] <= 0:
            continue
        for level in levels:
            nbytes = row[f"bytes_{level}"]
            if nbytes > 0:
                points.append({"op": row["op"], "phase": row["phase"], "level": level,
                               "exec_dtype": row["exec_dtype"], "bound": row["bound"],
                               "ops_per_byte": work / nbytes,
                               "achieved_ops_per_s": work / row["time_s"],
                               "time_s": row["time_s"]})
    return {"profile": profile.name, "roofs": roofs, "points": points}


def plot_roofline(profile: HardwareProfile, ops: pd.DataFrame, out: str | os.PathLike,
                  title: str | None = None) -> Path:
    """Draw the hierarchical roofline of `ops` (a per-op DataFrame) to a PNG file."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    data = roofline_data(profile, ops)
    points = pd.DataFrame(data["points"])
    fig, ax = plt.subplots(figsize=(9, 6), dpi=120)
    peak = max(data["roofs"]["compute_ops_per_s"].values())
    ridges = [peak / bw for bw in data["roofs"]["memory_bytes_per_s"].values()]
    x_lo, x_hi = min(ridges) / 10, max(ridges) * 10
    if len(points):
        x_lo = min(x_lo, points["ops_per_byte"].min() / 3)
        x_hi = max(x_hi, points["ops_per_byte"].max() * 3)
    xs = np.geomspace(x_lo, x_hi, 200)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    level_color = {name: colors[i % len(colors)]
                   for i, name in enumerate(data["roofs"]["memory_bytes_per_s"])}
    for name, bw in data["roofs"]["memory_bytes_per_s"].items():
        ax.plot(xs, np.minimum(bw * xs, peak), color=level_color[name], lw=1.5,
                label=f"{name} {bw / 1e12:.3g} TB/s")
    for dtype, rate in data["roofs"]["compute_ops_per_s"].items():
        ax.axhline(rate, color="0.3", ls="--", lw=1)
        ax.text(x_hi, rate, f" {dtype} {rate / 1e12:.3g} T", va="center", fontsize=8)
    markers = {"prefill": "o", "decode": "s"}
    main = profile.main_memory.name
    for _, p in points.iterrows():
        ax.scatter(p["ops_per_byte"], p["achieved_ops_per_s"], s=28,
                   color=level_color[p["level"]], marker=markers.get(p["phase"], "o"),
                   edgecolors="k" if p["level"] == main else "none", zorder=3)
        if p["level"] == main:
            ax.annotate(f"{p['op']} ({p['phase'][0]})",
                        (p["ops_per_byte"], p["achieved_ops_per_s"]), fontsize=7,
                        xytext=(4, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (ops per byte at each memory level)")
    ax.set_ylabel("achieved ops/s (launch gaps included)")
    ax.set_title(title or f"{profile.name}: hierarchical roofline "
                          "(o prefill, s decode; outlined = main memory)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(True, which="both", alpha=0.2)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(out, buf.getvalue())
