"""Text outputs of calibration and validation: the console table and summary.md."""
from __future__ import annotations

import pandas as pd

from precsim.simulator.profiles import rate_unit
from precsim.simulator.units import format_quantity
from precsim.validation.compare import TARGET_MEDIAN_ABS_PCT
from precsim.validation.microbench import DEQUANT_FORMATS


def _rate(value: float, unit: str) -> str:
    """'215 GFLOP/s' or '1.99 TOP/s' (format_quantity writes OP/s for both)."""
    return format_quantity(value, "compute_rate").replace("OP/s", unit)


def calibration_text(cal) -> str:
    """Console summary of a Calibration: bandwidth per level, rates per dtype, overhead."""
    s = cal.summary()
    lines = [f"calibrated profile {s['profile']}:"]
    for level, bw in s["bandwidth_bytes_per_s"].items():
        lines.append(f"  bandwidth {level:5s} {format_quantity(bw, 'bandwidth')}")
    for dtype, rate in s["achievable_ops_per_s"].items():
        peak = s["peak_ops_per_s"][dtype]
        unit = rate_unit(dtype)
        lines.append(f"  {dtype:5s} achievable {_rate(rate, unit)} (best {_rate(peak, unit)})")
    lines.append(f"  per-call overhead {s['kernel_launch_s'] * 1e6:.3g} us")
    for dtype in DEQUANT_FORMATS.values():
        ops = s["convert_ops_per_element"].get(dtype)
        if ops is not None:
            lines.append(f"  fallback {dtype}: {ops:.3g} convert ops per element")
    if s.get("vector_ops_per_s_measured"):
        lines.append(f"  element-wise vector rate {_rate(s['vector_ops_per_s_simulated'], 'OP/s')}"
                     f" (fitted; the calibration kernels alone would give a median of "
                     f"{_rate(s['vector_ops_per_s_measured'], 'OP/s')})")
    lines += [f"  note: {n}" for n in s["notes"]]
    return "\n".join(lines)


def _md_table(df: pd.DataFrame, floatfmt: str = ".1f") -> str:
    if df.empty:
        return "_(none)_"
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, float):
                cells.append("" if v != v else format(v, floatfmt))
            else:
                cells.append(str(v))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def noise_text(noise: dict) -> str:
    """One line on the run's drift reference: rounds, drift, rejected rounds."""
    if not noise.get("rounds"):
        return "no measurement round ran"
    by_ref = ", ".join(f"{k} {v:.0f}%" for k, v in noise["drift_by_reference"].items())
    return (f"{noise['rounds']} interleaved rounds; reference drift {noise['drift_pct']:.0f}% "
            f"(max / min - 1: {by_ref}); {noise['rounds_rejected']} round(s) rejected "
            f"(reference beyond ±{noise['threshold_pct']:.0f}% of its median) and "
            f"re-measured, {noise['rounds_drifting']} kept drifting (corrected)")


def summary_markdown(*, title: str, machine: str, profile_note: str, overall: dict,
                     noise: dict,
                     by_format: pd.DataFrame, by_kind: pd.DataFrame,
                     models: pd.DataFrame, worst: pd.DataFrame, skips: list,
                     findings: list[str], calibration: str | None,
                     warnings: list[str] = ()) -> str:
    """summary.md: headline numbers, per-format and per-kind tables, worst kernels,
    the transformer passes, what was skipped, and where the model misses and why."""
    med = overall.get("median_abs_pct_error")
    head = (f"**{overall['kernels']} held-out kernels; median |error| "
            f"{med:.1f}%, p90 {overall['p90_abs_pct_error']:.1f}%; median run-to-run "
            f"spread {overall['median_spread_pct']:.1f}%, median noise "
            f"{overall['noise_pct']:.1f}%** (target: median ≤ "
            f"{TARGET_MEDIAN_ABS_PCT:.0f}% per format)\n\n{noise_text(noise)}"
            ) if med is not None else "**No kernel was measured** (see Skipped)."
    parts = [f"# {title}", "", f"Machine: {machine}", "", f"Profile: {profile_note}", ""]
    parts += [f"> **Warning:** {w}\n" for w in warnings]
    parts += [head, "", "error = (simulated - measured) / measured; positive means the "
             "simulator predicts a slower kernel than PyTorch ran. measured = the fastest "
             "call, at the run's thread count as calibration (other processes only slow "
             "calls down), drift-corrected by its round's reference kernel and the median over "
             "its rounds; median_s keeps the median call. Spread = (max - min) / median of "
             "the repeat medians, or the rounds' disagreement if larger; noise = IQR / "
             "median of the repeat timings (an error within the noise is not a model "
             "miss).", "",
             "## Per format", "", _md_table(by_format), "",
             "## Per kernel kind", "", _md_table(by_kind), "",
             "## Whole small transformer", "", _md_table(models, ".3g"), "",
             "## Largest errors", "", _md_table(worst, ".3g"), ""]
    parts += ["## Where the model misses, and why", ""]
    parts += [f"- {f}" for f in findings] or ["- every format is within the target"]
    parts += ["", "## Skipped", ""]
    parts += [f"- {s}" for s in skips] or ["- nothing"]
    if calibration:
        parts += ["", "## Calibration", "", "```", calibration, "```"]
    parts += ["", "Files: kernels.csv (every kernel: shape, measured, simulated, error, "
              "spread), by_format.csv, by_kind.csv, scatter.png (log-log simulated vs "
              "measured, y = x), profile.yaml (the profile simulated with)."]
    return "\n".join(parts) + "\n"
