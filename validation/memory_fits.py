"""The memory-level calibration fit: per-level bandwidth from stream microbenchmarks, the
last cache level's usable capacity where a VM holds less than the OS reports, and the
rule that a nearer level is never slower (validation/calibrate.py measures; the other
fits are in validation/fits.py).
"""
from __future__ import annotations

import pandas as pd

from precsim.simulator.profiles import HardwareProfile, profile_from_mapping
from precsim.simulator.units import format_quantity
from precsim.validation.fits import implausible, template_kept


def net_bandwidth(rows: pd.DataFrame, overhead_s: float) -> float:
    """Total bytes / total (best time - overhead) over the rows (harmonic mean of rates)."""
    net = (rows["best_s"] - overhead_s).clip(lower=0.2 * rows["best_s"])
    return float(rows["bytes_moved"].sum() / net.sum())


def enforce_level_order(doc: dict, notes: list[str]) -> None:
    """Raise any memory level whose achievable bandwidth is below a farther level's to
    that level's rate (a nearer level is never slower), saying so in its `measured:`."""
    profile = profile_from_mapping(doc, source="calibrated host profile")
    rates = [lv.achievable_bandwidth_bytes_per_s for lv in profile.memory]
    floor = rates[-1]
    for i in range(len(rates) - 2, -1, -1):
        level = doc["memory"][i]
        if rates[i] < floor:
            far = doc["memory"][i + 1]["name"]
            frac = profile.memory[i].achievable_bandwidth_bytes_per_s \
                / profile.memory[i].bandwidth_bytes_per_s
            old = dict(level["bandwidth"])
            how = old.get("measured") or old.get("assumed") or old.get("derived") or ""
            level["bandwidth"] = {
                "value": f"{floor / frac / 1e9:.4g} GB/s",
                "measured": f"raised from {old['value']} to the achievable rate of the "
                            f"farther level ({floor / 1e9:.4g} GB/s, {far}), since a nearer "
                            f"level is never slower; the raw value came from: {how}"}
            notes.append(f"memory level {level['name']}: measured achievable "
                         f"{rates[i] / 1e9:.4g} GB/s is below the farther level's "
                         f"{floor / 1e9:.4g} GB/s; raised to it (interference suspected)")
        floor = max(floor, rates[i])


def fit_memory_levels(doc: dict, plans: list, streams: pd.DataFrame,
                      template_profile: HardwareProfile, overhead_s: float,
                      device: str, stamp: str, notes: list[str]) -> None:
    """memory: one level per plan (calibrate.MemoryPlan); capacity from the OS, bandwidth
    = net_bandwidth of the streams inside the level (all ops pooled); an implausible
    rate on the host keeps the template's; then enforce_level_order."""
    template_rates = {lv.name: lv.achievable_bandwidth_bytes_per_s
                      for lv in template_profile.memory}
    template_levels = {lv["name"]: lv for lv in doc["memory"]}
    new_levels = []
    main_rows = streams[streams["level"] == plans[-1].name]
    for plan in plans:
        level = dict(template_levels.get(plan.name) or
                     (template_levels["l3"] if plan.kind == "cache" else doc["memory"][-1]))
        level["name"], level["kind"] = plan.name, plan.kind
        if plan.capacity_how:
            level["capacity"] = {"value": f"{plan.capacity_bytes / 1024:.0f} KiB",
                                 "measured": f"{plan.capacity_how}, {stamp}"}
        rows = streams[streams["level"] == plan.name]
        if plan.kind == "cache" and device == "cpu" and not rows.empty:
            rows = _held_by_cache(rows, main_rows, overhead_s, plan, level, stamp, notes)
        if rows.empty:
            notes.append(f"memory level {plan.name}: no stream size fell inside it; "
                         "template bandwidth kept")
        elif (warning := implausible(
                bw := net_bandwidth(rows, overhead_s),
                template_rates.get(plan.name, template_rates[doc["memory"][-1]["name"]]),
                f"memory level {plan.name} bandwidth")) and device == "cpu":
            notes.append(warning)
            level["bandwidth"] = template_kept(level["bandwidth"], warning, stamp)
        else:
            per_op = ", ".join(
                f"{op} {format_quantity(net_bandwidth(rows[rows['op'] == op], overhead_s), 'bandwidth')}"
                for op in dict.fromkeys(rows["op"]))
            sizes_txt = ", ".join(format_quantity(s, "bytes")
                                  for s in sorted(set(rows["buffer_bytes"])))
            level["bandwidth"] = {
                "value": f"{bw / 1e9:.4g} GB/s",
                "measured": f"fp32 streams ({'/'.join(dict.fromkeys(rows['op']))}) over "
                            f"buffers of {sizes_txt} on {plan.threads} (timed at the "
                            "run's thread count, as the held-out cases); "
                            f"bytes moved / (fastest call - fastest per-call overhead "
                            f"{overhead_s * 1e6:.3g} us), all ops pooled ({per_op}); {stamp}"}
            level["achievable_fraction"] = {
                "value": 1.0, "measured": "the bandwidth above is the achieved stream rate"}
        new_levels.append(level)
    if device != "cuda":  # cache levels the OS did not report keep the template's values
        planned = {p.name for p in plans}
        kept = [lv for lv in doc["memory"][:-1] if lv["name"] not in planned]
        new_levels = kept + new_levels if len(plans) == 1 else new_levels[:-1] + kept \
            + new_levels[-1:]
    doc["memory"] = new_levels
    enforce_level_order(doc, notes)


#: a cache level's stream size running less than this factor above main memory's rate is
#: not held: a VM shares its host's LLC with other tenants (480 MiB reported on the 2-core
#: VM; 60 MiB streams at 57 GB/s, 240 MiB at the main-memory 23 GB/s)
CACHE_RATE_MARGIN = 1.25


def _held_by_cache(rows: pd.DataFrame, main_rows: pd.DataFrame, overhead_s: float, plan,
                   level: dict, stamp: str, notes: list[str]) -> pd.DataFrame:
    """The stream points of a cache level below its first buffer size that ran within
    CACHE_RATE_MARGIN x main memory's rate (ops pooled); `level`'s capacity then becomes
    twice the largest held buffer (hardware.STAGING_FRACTION: half a cache), saying so."""
    by_size = dict(tuple(rows.groupby("buffer_bytes")))
    rate = {size: net_bandwidth(r, overhead_s) for size, r in by_size.items()}
    main = {size: main_rows[main_rows["op"].isin(r["op"])] for size, r in by_size.items()}
    main = {size: net_bandwidth(m, overhead_s) if not m.empty else float("inf")
            for size, m in main.items()}
    first = min((s for s in by_size if rate[s] <= CACHE_RATE_MARGIN * main[s]), default=None)
    kept = rows[rows["buffer_bytes"] < first] if first is not None else rows
    if first is None or kept.empty:
        return rows  # no fall-off inside the level, or none held: every point as measured
    largest = float(kept["buffer_bytes"].max())
    capacity = min(2.0 * largest, plan.capacity_bytes)
    spilled = ", ".join(f"{format_quantity(s, 'bytes')} at {format_quantity(rate[s], 'bandwidth')}"
                        f" (main memory {format_quantity(main[s], 'bandwidth')})"
                        for s in sorted(by_size) if s >= first)
    reported, held = (format_quantity(b, "bytes") for b in (plan.capacity_bytes, largest))
    level["capacity"] = {
        "value": f"{capacity / 1024:.0f} KiB",
        "measured": f"{plan.capacity_how or 'template'} reports {reported}, but streams over "
                    f"{spilled} ran at the main-memory rate (within {CACHE_RATE_MARGIN:g}x): "
                    f"twice the largest buffer that streamed at the cache's rate ({held}; the "
                    f"simulator keeps data in half of a cache); {stamp}"}
    notes.append(f"memory level {plan.name}: the OS reports {reported}, streams show the "
                 f"cache rate only up to {held}: capacity set to "
                 f"{format_quantity(capacity, 'bytes')}")
    return kept
