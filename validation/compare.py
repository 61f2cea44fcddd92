"""Measured against simulated: per-kernel error, per-format statistics, scatter plot.

Error of one kernel: pct_error = 100 * (simulated - measured) / measured (positive:
the simulator is slower than reality). Per group: median and 90th percentile of
|pct_error|, beside the median run-to-run spread of the measurements (100 * (max -
min) / median of the repeat medians) and the median noise (`noise_pct`: 100 * IQR /
median of a case's drift-corrected repeat timings, validation.rounds), so model error
can be read against noise.
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd

TARGET_MEDIAN_ABS_PCT = 10.0


def add_errors(table: pd.DataFrame) -> pd.DataFrame:
    """Add pct_error and abs_pct_error to rows with both measured_s and simulated_s."""
    out = table.copy()
    ok = out["measured_s"].gt(0) & out["simulated_s"].gt(0)
    out["pct_error"] = np.where(ok, 100.0 * (out["simulated_s"] - out["measured_s"])
                                / out["measured_s"].where(ok, 1.0), np.nan)
    out["abs_pct_error"] = out["pct_error"].abs()
    out["spread_pct"] = 100.0 * out["spread"]
    return out


def error_stats(table: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    """Per group: kernel count, median / p90 |error| (%), median spread (%), target met."""
    rows = table.dropna(subset=["abs_pct_error"])
    if rows.empty:
        return pd.DataFrame(columns=[*([by] if isinstance(by, str) else by), "kernels",
                                     "median_abs_pct_error", "p90_abs_pct_error",
                                     "median_spread_pct", "median_noise_pct",
                                     "within_target"])
    grouped = rows.groupby(by, sort=False)
    stats = pd.DataFrame({
        "kernels": grouped.size(),
        "median_abs_pct_error": grouped["abs_pct_error"].median(),
        "p90_abs_pct_error": grouped["abs_pct_error"].quantile(0.9),
        "median_spread_pct": grouped["spread_pct"].median(),
        "median_noise_pct": grouped["noise_pct"].median(),
    }).reset_index()
    stats["within_target"] = stats["median_abs_pct_error"] <= TARGET_MEDIAN_ABS_PCT
    return stats


def overall(table: pd.DataFrame) -> dict:
    rows = table.dropna(subset=["abs_pct_error"])
    if rows.empty:
        return {"kernels": 0, "median_abs_pct_error": None, "p90_abs_pct_error": None,
                "median_spread_pct": None, "noise_pct": None}
    return {"kernels": int(len(rows)),
            "median_abs_pct_error": float(rows["abs_pct_error"].median()),
            "p90_abs_pct_error": float(rows["abs_pct_error"].quantile(0.9)),
            "median_spread_pct": float(rows["spread_pct"].median()),
            "noise_pct": float(rows["noise_pct"].median())}


def scatter_png(table: pd.DataFrame, title: str) -> bytes:
    """Log-log simulated vs measured time, one colour per format, the y = x line and
    +-10% band; error bars show the run-to-run spread of each measurement."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = table.dropna(subset=["abs_pct_error"])
    fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=110)
    markers = {"transformer_decode": "*", "transformer_prefill": "P"}
    if rows.empty:
        ax.text(0.5, 0.5, "no kernel was measured", ha="center", va="center",
                transform=ax.transAxes)
    else:
        lo = float(min(rows["measured_s"].min(), rows["simulated_s"].min())) / 1.5
        hi = float(max(rows["measured_s"].max(), rows["simulated_s"].max())) * 1.5
        line = np.array([lo, hi])
        ax.plot(line, line, color="black", lw=1, label="y = x")
        ax.fill_between(line, line / 1.1, line * 1.1, color="grey", alpha=0.2,
                        label="±10%")
        cmap = plt.get_cmap("tab10")
        for i, (fmt, grp) in enumerate(rows.groupby("format", sort=False)):
            colour = cmap(i % 10)
            for kind_is_model, sub in grp.groupby(grp["kind"].isin(markers.keys())):
                marker = "*" if kind_is_model else "o"
                ax.errorbar(sub["measured_s"], sub["simulated_s"],
                            xerr=sub["measured_s"] * sub["spread"] / 2, fmt=marker,
                            color=colour, ms=11 if kind_is_model else 5, alpha=0.85,
                            elinewidth=0.8,
                            label=fmt if not kind_is_model else f"{fmt} (transformer)")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured time (s)")
    ax.set_ylabel("simulated time (s)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if not rows.empty:
        ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
