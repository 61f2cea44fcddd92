"""Hierarchical roofline (Yang, Kurth & Williams, "Hierarchical Roofline Analysis",
arXiv 2009.05257): one memory roof per level, one compute roof per execution dtype, and
each op placed once per memory level at (ops / bytes at that level, achieved ops/s).

Achieved ops/s counts matrix, vector and conversion ops over the op's full time, launch
gaps included, so overhead-bound ops sit visibly below every roof.

The figure is drawn to be read: compute ceilings labelled at their right end with unit
and thousands separators ("int8 1,403 TOP/s"), moved apart vertically where two would
touch; op labels placed greedily (the longest-running op first) where they overlap no
other text, else left out and counted in a note; a legend in words.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from precsim.simulator.dtypes import FLOAT_DTYPES
from precsim.simulator.hardware import vector_dtype
from precsim.simulator.io import atomic_write_bytes
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


#: candidate offsets (points) of an op label from its marker, tried in order
_LABEL_OFFSETS = ((4, 2, "left"), (4, -9, "left"), (-4, 2, "right"), (-4, -9, "right"),
                  (4, 10, "left"), (-4, 10, "right"), (4, -17, "left"), (-4, -17, "right"))
_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1.0, ""))   # "1,403 TOP/s", not P


def rate_text(ops_per_s: float, dtype: str) -> str:
    """'int8 1,403 TOP/s', 'bf16 794 TFLOP/s', 'fp16 4.26 TFLOP/s' (3+ significant digits)."""
    scale, prefix = next((f, p) for f, p in _PREFIXES if ops_per_s >= f or f == 1.0)
    value = ops_per_s / scale
    number = f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
    unit = "FLOP/s" if dtype in FLOAT_DTYPES else "OP/s"
    return f"{dtype} {number} {prefix}{unit}"


def _bandwidth_text(name: str, bytes_per_s: float) -> str:
    scale, prefix = next((f, p) for f, p in _PREFIXES if bytes_per_s >= f or f == 1.0)
    return f"memory ceiling {name} {bytes_per_s / scale:,.3g} {prefix}B/s (and its points)"


def _spread(values: list[float], gap: float) -> list[float]:
    """Positions as close to `values` as possible, in the same order, `gap` apart."""
    order = np.argsort(values)
    out = np.asarray(values, float)[order]
    for k in range(1, len(out)):
        out[k] = max(out[k], out[k - 1] + gap)
    shift = max(0.0, out[-1] - max(values)) / 2 if len(out) else 0.0
    out = out - shift
    for k in range(1, len(out)):          # the shift must not undo the spacing
        out[k] = max(out[k], out[k - 1] + gap)
    result = np.empty_like(out)
    result[order] = out
    return list(result)


def roofline_figure(profile: HardwareProfile, ops: pd.DataFrame, title: str | None = None):
    """The hierarchical roofline of `ops` (a per-op DataFrame) as a matplotlib Figure."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.lines import Line2D

    data = roofline_data(profile, ops)
    points = pd.DataFrame(data["points"])
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=120)
    compute = data["roofs"]["compute_ops_per_s"]
    memory = data["roofs"]["memory_bytes_per_s"]
    peak = max(compute.values())
    ridges = [peak / bw for bw in memory.values()]
    x_lo, x_hi = min(ridges) / 10, max(ridges) * 10
    y_lo = min(min(compute.values()), min(memory.values()) * x_lo) / 2
    if len(points):
        x_lo = min(x_lo, points["ops_per_byte"].min() / 3)
        x_hi = max(x_hi, points["ops_per_byte"].max() * 3)
        y_lo = min(y_lo, points["achieved_ops_per_s"].min() / 2)
    xs = np.geomspace(x_lo, x_hi, 200)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    level_color = {name: colors[i % len(colors)] for i, name in enumerate(memory)}
    handles = []
    for name, bw in memory.items():
        handles += ax.plot(xs, np.minimum(bw * xs, peak), color=level_color[name], lw=1.5,
                           label=_bandwidth_text(name, bw))
    for rate in compute.values():
        ax.axhline(rate, color="0.3", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, peak * 3)
    handles += [Line2D([], [], color="0.3", ls="--", lw=1,
                       label="compute ceiling (labelled at the right: dtype, peak)"),
                Line2D([], [], ls="", marker="o", color="0.5", label="op in prefill"),
                Line2D([], [], ls="", marker="s", color="0.5", label="op in decode"),
                Line2D([], [], ls="", marker="o", color="w", markeredgecolor="k",
                       label=f"outlined: at {profile.main_memory.name} (labelled)")]
    legend = ax.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.95)
    ax.set_xlabel("arithmetic intensity (ops per byte at each memory level)")
    ax.set_ylabel("achieved ops/s (launch gaps included)")
    ax.set_title(title or f"{profile.name}: hierarchical roofline")
    ax.grid(True, which="both", alpha=0.2)
    fig.tight_layout(rect=(0, 0, 0.84, 1))   # fixes the transforms used below (no draw)
    # compute-ceiling labels at the right edge, at least one text height apart
    to_px = ax.transData.transform
    ys_px = [to_px((x_hi, rate))[1] for rate in compute.values()]
    placed_px = _spread(ys_px, gap=8 * fig.dpi / 72 * 1.3)   # a line of 8-pt text
    inverse = ax.transAxes.inverted()
    texts = []
    for (dtype, rate), y_px in zip(compute.items(), placed_px):
        y_axes = inverse.transform((0, y_px))[1]
        texts.append(ax.text(1.01, y_axes, rate_text(rate, dtype), transform=ax.transAxes,
                             va="center", ha="left", fontsize=8, clip_on=False))
    markers = {"prefill": "o", "decode": "s"}
    main = profile.main_memory.name
    for _, p in points.iterrows():
        ax.scatter(p["ops_per_byte"], p["achieved_ops_per_s"], s=28,
                   color=level_color[p["level"]], marker=markers.get(p["phase"], "o"),
                   edgecolors="k" if p["level"] == main else "none", zorder=3)
    renderer = fig.canvas.get_renderer()
    taken = [t.get_window_extent(renderer) for t in texts]
    taken += [legend.get_window_extent(renderer), ax.title.get_window_extent(renderer)]
    frame = ax.get_window_extent(renderer)
    omitted = 0
    labelled = points[points["level"] == main].sort_values("time_s", ascending=False) \
        if len(points) else points
    for _, p in labelled.iterrows():
        xy = (p["ops_per_byte"], p["achieved_ops_per_s"])
        for dx, dy, ha in _LABEL_OFFSETS:
            text = ax.annotate(f"{p['op']} ({p['phase']})", xy, fontsize=7, ha=ha,
                               xytext=(dx, dy), textcoords="offset points")
            box = text.get_window_extent(renderer)
            inside = (box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0
                      and box.y1 <= frame.y1)
            if inside and not any(box.overlaps(other) for other in taken):
                taken.append(box)
                break
            text.remove()
        else:
            omitted += 1
    if omitted:
        note = (f"{omitted} op label{'s' if omitted > 1 else ''} left out where "
                "overlapping (every point: --json)")
        ax.text(0.01, 0.99, note, transform=ax.transAxes, fontsize=7, va="top", ha="left",
                color="0.35")
    return fig


def plot_roofline(profile: HardwareProfile, ops: pd.DataFrame, out: str | os.PathLike,
                  title: str | None = None) -> Path:
    """Draw the hierarchical roofline of `ops` (a per-op DataFrame) to a PNG file."""
    from matplotlib import pyplot as plt

    fig = roofline_figure(profile, ops, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(out, buf.getvalue())
