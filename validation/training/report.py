"""The law-validation report: Markdown summary, PNG figures, CSV tables, a JSON summary.

`render(analysis)` returns {file name: bytes} without touching the disk; `write_report`
writes each file atomically (simulator.io.atomic_write_bytes) into the output folder.
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from precsim.lawcore import ChinchillaLaw, PrecisionLaw
from precsim.simulator.io import atomic_write_bytes, json_text
from precsim.validation.training.analysis import BIT_COLUMNS, HIGH, PAPER_CHINCHILLA, PARTS, Analysis

LIMITS = (
    "Scale: these models have ~10^4-10^6 non-embedding parameters and see ~10^5-10^7 tokens, "
    "two to four orders of magnitude below the paper's 30M-220M parameters and 1.5B-26B "
    "tokens. Absolute constants (A, B, E, C_T) depend on the data and tokenizer and are not "
    "comparable with the paper's; exponents and trends are what can be compared.",
    "Noise: one seed per configuration unless the grid says otherwise; the held-out loss has "
    "a standard error (column loss_se) of a few 1e-3 nats, the same order as small PTQ "
    "degradations at 6-8 bits, and seed-to-seed variation is larger. Bootstrap intervals "
    "(lawcore) resample runs and do not include that training noise.",
    "Method: post-training quantization is round-to-nearest per group (asymmetric min-max, "
    "group 32), not GPTQ; the paper reports that RTN and AWQ replicate its GPTQ trends. "
    "16-bit rows are trained in fp32 on the CPU (the paper's baseline is bf16). Training "
    "uses one fixed learning-rate recipe for every size, not a per-size tuned one.",
    "Data: the synthetic language is a sparse Markov chain (a mixture of skip-bigram "
    "tables), not natural language; its loss curves come from learning those tables. The "
    "stdlib source is byte-level Python code. Neither is the paper's Dolma text.",
)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}g}"
    return str(value)


def constants_table(analysis: Analysis) -> pd.DataFrame:
    """Fitted constants with bootstrap CIs next to the published ones."""
    rows = []
    for law_name, fit, paper in (
            ("ChinchillaLaw", analysis.chinchilla, ChinchillaLaw(PAPER_CHINCHILLA).params),
            ("PrecisionLaw", analysis.precision, PrecisionLaw("kumar2024").params)):
        if not fit.ok:
            continue
        free = set(fit.law.fitted_constants_)
        if fit.law.tie_alpha_beta and "alpha" in free:
            free.add("beta")
        for name, value in fit.law.constants_.items():
            tied = "alpha" if name == "beta" and fit.law.tie_alpha_beta else name
            lo, hi = fit.law.ci_.get(tied, (math.nan, math.nan))
            rows.append({"law": law_name, "constant": name, "fitted": name in free,
                         "value": value, "ci_low": lo, "ci_high": hi, "paper": paper[name]})
    return pd.DataFrame(rows, columns=["law", "constant", "fitted", "value", "ci_low",
                                       "ci_high", "paper"])


def _fig_loss_vs_tokens(analysis: Analysis) -> bytes:
    runs = analysis.runs
    base = runs[(runs[list(BIT_COLUMNS)] >= HIGH).all(axis=1) & runs["P_post"].isna()]
    fig = Figure(figsize=(6.6, 4.6))
    ax = fig.add_subplot()
    for n, grp in base.groupby("N"):
        line, = ax.plot(grp["D"], grp["loss"], "o", label=f"N = {n:,.0f}")
        if analysis.chinchilla.ok:
            d = np.geomspace(base["D"].min() / 1.5, base["D"].max() * 3, 100)
            ax.plot(d, analysis.chinchilla.law.predict(n, d), "-", color=line.get_color(),
                    lw=1)
    known = analysis.entropy.get("known_E")
    if known is not None:
        ax.axhline(known, color="black", ls="--", lw=1, label=f"entropy rate {known:.4f}")
    if analysis.chinchilla.ok:
        e = analysis.chinchilla.law.constants_["E"]
        ax.axhline(e, color="grey", ls=":", lw=1, label=f"fitted E {e:.4f}")
    ax.set_xscale("log")
    ax.set_xlabel("training tokens D")
    ax.set_ylabel("held-out loss (nats/token)")
    ax.set_title("full-precision runs and the fitted Chinchilla law")
    ax.legend(fontsize=8)
    return _png(fig)


def _fig_ptq(analysis: Analysis) -> bytes:
    delta = analysis.ptq
    hp = delta[(delta[list(BIT_COLUMNS)] >= HIGH).all(axis=1)]
    fig = Figure(figsize=(6.6, 4.6))
    ax = fig.add_subplot()
    floor = 1e-5
    for bits, grp in hp.groupby("P_post"):
        ax.plot(grp["D_over_N"], grp["delta"].clip(lower=floor), "o",
                label=f"PTQ to {bits:g} bits")
    slope = analysis.ptq_trend.get("slope_log_delta_vs_log_D_over_N")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("D / N (tokens per parameter)")
    ax.set_ylabel(f"PTQ degradation δ (nats; values <= 0 drawn at {floor:g})")
    title = "PTQ degradation of 16-bit-trained models"
    if slope:
        title += f"\npooled slope d log δ / d log(D/N) = {slope['value']:.3f}"
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _png(fig)


def _fig_neff(analysis: Analysis) -> bytes:
    neff = analysis.neff
    fig = Figure(figsize=(13, 4.2), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    grid = np.linspace(2, HIGH, 200)
    laws = [("paper", PrecisionLaw("kumar2024"), "black", "--")]
    if analysis.precision.ok:
        laws.append(("fitted", analysis.precision.law, "tab:red", "-"))
    for ax, (col, label) in zip(axes, PARTS.items()):
        if not neff.empty:
            others = [c for c in BIT_COLUMNS if c != col]
            rows = neff[(neff[others] >= HIGH).all(axis=1) & (neff[col] < HIGH)]
            for is_float, marker, name in ((False, "o", "integer"), (True, "s", "float")):
                sel = rows[rows["float_format"] == is_float]
                if len(sel):
                    ax.plot(sel[col], sel["N_eff_ratio"].clip(upper=2.0), marker, alpha=0.7,
                            label=f"measured ({name})")
        for name, law, color, ls in laws:
            if name == "fitted" and f"gamma_{col[2:]}" not in law.fitted_constants_:
                continue   # this part kept the published constants: same curve as the paper
            bits = {c: np.full_like(grid, HIGH) for c in BIT_COLUMNS}
            bits[col] = grid
            ref = float(law.training_factor(HIGH, HIGH, HIGH))
            with np.errstate(invalid="ignore"):
                ok = grid > law.constants[f"n_{col[2:]}"] * law.constants[f"gamma_{col[2:]}"]
                y = np.full_like(grid, np.nan)
                if ok.any():
                    y[ok] = np.asarray(law.training_factor(
                        bits["P_w"][ok], bits["P_a"][ok], bits["P_kv"][ok])) / ref
            ax.plot(grid, y, ls, color=color, label=f"law ({name})")
        ax.axhline(1.0, color="grey", lw=0.5)
        ax.set_xlabel(f"training bits of {label} (others 16)")
        ax.set_title(label)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("N_eff / N relative to 16-bit training")
    return _png(fig)


def _fig_pred_obs(analysis: Analysis) -> bytes:
    fig = Figure(figsize=(5.4, 5.2))
    ax = fig.add_subplot()
    law = analysis.precision.law
    if analysis.precision.ok:
        rows = analysis.precision.rows
        pred = np.asarray(law.predict(rows["N"], rows["D"], rows["P_w"], rows["P_a"],
                                      rows["P_kv"], rows["P_post"].fillna(np.inf)))
        ptq = rows["P_post"].notna()
        ax.plot(rows["loss"][~ptq], pred[~ptq.to_numpy()], "o", label="no PTQ", alpha=0.7)
        ax.plot(rows["loss"][ptq], pred[ptq.to_numpy()], ".", label="after PTQ", alpha=0.6)
        lo, hi = float(rows["loss"].min()), float(rows["loss"].max())
        ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
        ax.set_title(f"PrecisionLaw fit: RMSE {law.rmse_:.4f}, R² {law.r2_:.3f}")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "PrecisionLaw fit failed", ha="center", transform=ax.transAxes)
    ax.set_xlabel("observed loss")
    ax.set_ylabel("predicted loss")
    return _png(fig)


def summary(analysis: Analysis, extra: dict | None = None) -> dict:
    """The JSON summary (also written as summary.json)."""
    runs = analysis.runs
    n_train = runs["run_id"].nunique() if "run_id" in runs.columns else int(
        runs["P_post"].isna().sum())

    def fit_doc(fit) -> dict:
        if not fit.ok:
            return {"ok": False, "error": fit.error, "n_rows": fit.n_runs}
        law = fit.law
        return {"ok": True, "n_rows": fit.n_runs, "converged": law.converged_,
                "rmse": law.rmse_, "r2": law.r2_, "constants": law.constants_,
                "ci": {k: list(v) for k, v in law.ci_.items()},
                "fitted_constants": law.fitted_constants_, "paper": type(law)(
                    PAPER_CHINCHILLA if isinstance(law, ChinchillaLaw) else "kumar2024").params}
    heldout = None
    if analysis.heldout:
        heldout = {k: analysis.heldout[k] for k in ("heldout_N", "n_train", "n_heldout", "rmse",
                                                    "mean_abs_rel_error", "max_abs_rel_error")}
    doc = {
        "data": analysis.source_note,
        "training_runs": int(n_train), "rows": int(len(runs)),
        "wall_time_s": float(runs.drop_duplicates("run_id")["wall_time_s"].sum())
        if {"run_id", "wall_time_s"} <= set(runs.columns) else None,
        "N_range": [float(runs["N"].min()), float(runs["N"].max())],
        "D_range": [float(runs["D"].min()), float(runs["D"].max())],
        "fits": {"chinchilla": fit_doc(analysis.chinchilla),
                 "precision": fit_doc(analysis.precision)},
        "heldout": heldout, "heldout_error": analysis.heldout_error,
        "E": analysis.entropy,
        "verdicts": {
            "ptq_degradation_grows_with_D_over_N": analysis.ptq_trend.get("verdict"),
            **{f"n_eff_shrinks_with_fewer_bits_{v['part'].replace(' ', '_')}": v["verdict"]
               for v in analysis.neff_verdicts.values()}},
        "ptq_trend": analysis.ptq_trend,
        "n_eff": analysis.neff_verdicts,
        "notes": analysis.notes,
    }
    doc.update(extra or {})
    return doc


def _markdown(analysis: Analysis, doc: dict, constants: pd.DataFrame) -> str:
    lines = ["# Precision laws re-validated on runs made here", ""]
    lines += [f"- Data: {analysis.source_note or 'runs CSV'}",
              f"- Training runs: {doc['training_runs']} ({doc['rows']} rows with PTQ "
              f"evaluations); N {doc['N_range'][0]:,.0f}-{doc['N_range'][1]:,.0f} non-embedding "
              f"parameters; D {doc['D_range'][0]:,.0f}-{doc['D_range'][1]:,.0f} tokens"]
    if doc.get("sweep_wall_time_s") is not None:
        lines.append(f"- Sweep wall time (this invocation; finished runs are not redone): "
                     f"{doc['sweep_wall_time_s']:.0f} s")
    if doc.get("wall_time_s"):
        lines.append(f"- Training time summed over runs (each run's wall clock; runs train "
                     f"in parallel processes): {doc['wall_time_s']:.0f} s")
    for note in analysis.notes:
        lines.append(f"- Note: {note}")
    lines += ["", "## Answers", "", "| question | answer |", "|---|---|"]
    trend = analysis.ptq_trend
    slope = trend.get("slope_log_delta_vs_log_D_over_N")
    extra = (f" (slope of log δ on log(D/N): {slope['value']:.3f}, 95% CI "
             f"{slope['ci'][0]:.3f}..{slope['ci'][1]:.3f}; {trend['n_measurable']} measurable "
             "rows)") if slope else ""
    lines.append(f"| Does PTQ degradation grow with D/N? | {trend.get('verdict')}{extra} |")
    for col, v in analysis.neff_verdicts.items():
        detail = ", ".join(f"{b:g} bits: {_fmt(r, 3) if math.isfinite(r) else 'inf'}"
                           for b, r in v["median_ratio_by_bits"].items())
        rho = f"; Spearman ρ {v['spearman_rho']:.2f} (p {v['spearman_p']:.2g})" \
            if "spearman_rho" in v else ""
        lines.append(f"| Does N_eff shrink with fewer training bits ({v['part']})? | "
                     f"{v['verdict']} (median N_eff/N: {detail or '-'}{rho}) |")
    ent = analysis.entropy
    if ent.get("known_E") is not None:
        for label in ("chinchilla", "precision"):
            if label in ent:
                e = ent[label]
                lines.append(f"| Fitted E vs known entropy ({label} fit) | E_fit = "
                             f"{e['E_fit']:.4f} (95% CI {_fmt(e['ci'][0])}..{_fmt(e['ci'][1])}) "
                             f"vs H = {ent['known_E']:.4f}: error {e['abs_error']:+.4f} nats "
                             f"({100 * e['rel_error']:+.1f}%) |")
    for label, fit in (("ChinchillaLaw (full precision, no PTQ)", analysis.chinchilla),
                       ("PrecisionLaw (kumar2024 form)", analysis.precision)):
        if fit.ok:
            lines.append(f"| Fit quality: {label} | {fit.n_runs} rows, RMSE "
                         f"{fit.law.rmse_:.4f} nats, R² {fit.law.r2_:.3f} |")
        else:
            lines.append(f"| Fit quality: {label} | fit failed: {fit.error} |")
    if analysis.heldout:
        h = analysis.heldout
        lines.append(f"| Extrapolation to the largest N = {h['heldout_N']:,.0f} (fit on the "
                     f"smaller ones) | mean abs. relative error {100 * h['mean_abs_rel_error']:.2f}"
                     f"%, max {100 * h['max_abs_rel_error']:.2f}% over {h['n_heldout']} rows |")
    elif analysis.heldout_error:
        lines.append(f"| Extrapolation to the largest N | not checked: {analysis.heldout_error} |")
    lines += ["", "## Fitted constants next to the paper's", "",
              "Bootstrap 95% intervals (lawcore; runs resampled). Constants marked `fixed` were "
              "not identifiable from these runs and keep the published value.", "",
              "| law | constant | fitted | 95% CI | paper |", "|---|---|---|---|---|"]
    for _, r in constants.iterrows():
        value = _fmt(r["value"]) if r["fitted"] else f"fixed ({_fmt(r['value'])})"
        ci = f"{_fmt(r['ci_low'])}..{_fmt(r['ci_high'])}" if r["fitted"] else "-"
        lines.append(f"| {r['law']} | {r['constant']} | {value} | {ci} | {_fmt(r['paper'])} |")
    if "log_linear_fit" in trend:
        fit = trend["log_linear_fit"]
        gp = fit["inv_gamma_post"]
        lines += ["", "Direct log-linear fit of δ_PTQ on the measurable 16-bit-trained rows "
                  "(log δ = log C_T − P_post/γ_post + γ_D·log D − γ_N·log N; OLS, t intervals): "
                  f"γ_D = {fit['gamma_D']['value']:.3f} ({fit['gamma_D']['ci'][0]:.3f}.."
                  f"{fit['gamma_D']['ci'][1]:.3f}; paper 0.5068), γ_N = "
                  f"{fit['gamma_N']['value']:.3f} ({fit['gamma_N']['ci'][0]:.3f}.."
                  f"{fit['gamma_N']['ci'][1]:.3f}; paper 0.3439), 1/γ_post = {gp['value']:.3f} "
                  f"({gp['ci'][0]:.3f}..{gp['ci'][1]:.3f}; paper {1 / 0.5907:.3f})."]
    lines += ["", "## Figures", "",
              "- `loss_vs_tokens.png`: full-precision runs and the Chinchilla fit; dashed: "
              "known entropy rate.",
              "- `ptq_degradation.png`: δ_PTQ against D/N per post-training width.",
              "- `neff_vs_bits.png`: measured N_eff/N per quantized part against the law "
              "(fitted and published).",
              "- `predicted_vs_observed.png`: the PrecisionLaw fit on every row.", "",
              "Tables: `runs.csv` (every run), `constants.csv`, `ptq_degradation.csv`, "
              "`n_eff.csv`, `summary.json`.", "", "## Limits", ""]
    lines += [f"- {limit}" for limit in LIMITS]
    return "\n".join(lines) + "\n"


def render(analysis: Analysis, extra: dict | None = None) -> tuple[dict[str, bytes], dict]:
    """All report files as bytes, and the JSON summary."""
    constants = constants_table(analysis)
    doc = summary(analysis, extra)
    files = {
        "summary.md": _markdown(analysis, doc, constants).encode(),
        "summary.json": (json_text(doc) + "\n").encode(),
        "constants.csv": constants.to_csv(index=False).encode(),
        "ptq_degradation.csv": analysis.ptq.to_csv(index=False).encode(),
        "n_eff.csv": analysis.neff.to_csv(index=False).encode(),
        "loss_vs_tokens.png": _fig_loss_vs_tokens(analysis),
        "ptq_degradation.png": _fig_ptq(analysis),
        "neff_vs_bits.png": _fig_neff(analysis),
        "predicted_vs_observed.png": _fig_pred_obs(analysis),
    }
    return files, doc


def write_report(out_dir: str | os.PathLike, files: dict[str, bytes]) -> list[Path]:
    """Write each file atomically into `out_dir` (a failed run never leaves a half file)."""
    return [atomic_write_bytes(Path(out_dir) / name, data) for name, data in files.items()]
