"""What holds of the precision laws on a set of runs (torch-free).

- Fits: `ChinchillaLaw` (all five constants free) to the full-precision runs without PTQ;
  `PrecisionLaw("kumar2024")` (α = β tied, constants the runs identify set free, bootstrap
  CIs; lawcore.fitting) to every integer-format run; `heldout_check` (fit below the
  largest N, predict it).
- PTQ trend: δ = L(P_post) − L(no PTQ) of the same trained model, for 16-bit-trained runs;
  its standard error is the paired one over the shared evaluation windows. Per P_post a
  Spearman rank correlation of δ with D/N; pooled over the measurable rows (δ > 2·SE)
  least-squares fits of the law's log-linear form
      log δ = c_(P_post) + s·log(D/N)   and   log δ = c − P_post/γ_post + γ_D·log D − γ_N·log N
  with t-based 95 % intervals. Verdict on s: "yes" if its interval lies above 0.
- Effective parameters: each quantized-training run is paired with the full-precision run
  of the same N, D, seed; with the Chinchilla fit's A, α the loss gap gives
      N_eff = (N^(−α) + (L_q − L_16)/A)^(−1/α)    (D term and E cancel in the pair)
  compared with the law's N_eff/N = Π_x (1 − e^(−P_x/γ_x + n_x)) normalised to 16 bits,
  fitted and published. Verdict per part on a Spearman correlation of N_eff/N with P_x.
- Irreducible loss: fitted E (both fits, with CIs) against the known entropy rate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from precsim.lawcore import ChinchillaLaw, LawFitError, LawInputError, PrecisionLaw, heldout_check

HIGH = 16.0
BIT_COLUMNS = ("P_w", "P_a", "P_kv")
PARTS = {"P_w": "weights", "P_a": "activations", "P_kv": "KV cache"}
PAPER_CHINCHILLA = "chinchilla"   # Hoffmann et al. 2022 constants, next to our fit


@dataclass
class FitResult:
    """A fitted law or the reason it could not be fitted."""

    law: Any = None
    error: str | None = None
    rows: pd.DataFrame | None = None

    @property
    def n_runs(self) -> int:
        return 0 if self.rows is None else len(self.rows)

    @property
    def ok(self) -> bool:
        return self.law is not None and self.error is None


@dataclass
class Analysis:
    runs: pd.DataFrame
    source_note: str
    chinchilla: FitResult
    precision: FitResult
    heldout: dict | None
    heldout_error: str | None
    ptq: pd.DataFrame
    ptq_trend: dict
    neff: pd.DataFrame
    neff_verdicts: dict
    entropy: dict
    notes: list[str] = field(default_factory=list)


def _full_precision(frame: pd.DataFrame) -> pd.Series:
    return (frame[list(BIT_COLUMNS)] >= HIGH).all(axis=1)


def _is_float_format(frame: pd.DataFrame) -> pd.Series:
    cols = [c for c in ("w_format", "a_format", "kv_format") if c in frame.columns]
    if not cols:
        return pd.Series(False, index=frame.index)
    return frame[cols].astype(str).apply(lambda s: s.str.match(r"^e\d+m\d+$")).any(axis=1)


def _fit(law, rows: pd.DataFrame, row_name: str) -> FitResult:
    cols = ["N", "D", "P_w", "P_a", "P_kv", "P_post", "loss"]
    try:
        law.fit(rows[cols], row_name=row_name)
        return FitResult(law, None, rows)
    except (LawInputError, LawFitError) as exc:
        return FitResult(None, str(exc), rows)


def _pair_keys(frame: pd.DataFrame) -> list[str]:
    keys = ["N", "D"] + [c for c in ("seed", "data", "d_model", "n_layers") if c in frame.columns]
    return keys


def ptq_degradation(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per PTQ evaluation: δ = loss − loss of the same model without PTQ."""
    key = ["run_id"] if "run_id" in runs.columns else _pair_keys(runs) + list(BIT_COLUMNS)
    base = runs[runs["P_post"].isna()]
    post = runs[runs["P_post"].notna()]
    merged = post.merge(base[key + ["loss"] + (["loss_se"] if "loss_se" in runs.columns
                                               else [])],
                        on=key, suffixes=("", "_base"), how="inner")
    out = merged[[c for c in ("run_id", "N", "D", "P_w", "P_a", "P_kv", "P_post", "seed")
                  if c in merged.columns]].copy()
    out["D_over_N"] = merged["D"] / merged["N"]
    out["loss_base"] = merged["loss_base"]
    out["loss_ptq"] = merged["loss"]
    out["delta"] = merged["loss"] - merged["loss_base"]
    if "delta_se" in merged.columns:        # paired SE over the shared evaluation windows
        out["delta_se"] = merged["delta_se"]
    elif "loss_se" in merged.columns:       # unpaired bound
        out["delta_se"] = np.hypot(merged["loss_se"], merged["loss_se_base"])
    else:
        out["delta_se"] = np.nan
    return out.reset_index(drop=True)


def _ols(y: np.ndarray, X: np.ndarray, names: list[str]) -> dict[str, dict[str, float]]:
    """Least squares y = Xb with t-based 95 % intervals on b."""
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    dof = len(y) - X.shape[1]
    out = {}
    if dof <= 0:
        return {n: {"value": float(c), "ci": (math.nan, math.nan)} for n, c in zip(names, coef)}
    resid = y - X @ coef
    sigma2 = float(resid @ resid) / dof
    cov = sigma2 * np.linalg.pinv(X.T @ X)
    t = stats.t.ppf(0.975, dof)
    for i, n in enumerate(names):
        half = t * math.sqrt(max(cov[i, i], 0.0))
        out[n] = {"value": float(coef[i]), "ci": (float(coef[i] - half), float(coef[i] + half))}
    return out


def _verdict(lo: float, hi: float, yes: str, no: str) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive (too few measurable runs)"
    if lo > 0:
        return yes
    if hi < 0:
        return no
    return "inconclusive (95% interval includes 0)"


def ptq_trend(delta: pd.DataFrame) -> dict:
    """Does δ_PTQ grow with D/N? (16-bit-trained models; see module docstring)."""
    hp = delta[(delta[list(BIT_COLUMNS)] >= HIGH).all(axis=1)]
    per_bits = []
    for bits, grp in hp.groupby("P_post"):
        rho, p = (stats.spearmanr(grp["D_over_N"], grp["delta"]) if grp["D_over_N"].nunique() > 1
                  and len(grp) >= 3 else (math.nan, math.nan))
        per_bits.append({"P_post": float(bits), "n": int(len(grp)),
                         "median_delta": float(grp["delta"].median()),
                         "spearman_rho": float(rho), "spearman_p": float(p)})
    se = hp["delta_se"].fillna(0.0)
    measurable = hp[(hp["delta"] > 0) & (hp["delta"] > 2 * se)]
    result: dict[str, Any] = {"per_P_post": per_bits, "n_rows": int(len(hp)),
                              "n_measurable": int(len(measurable))}
    levels = sorted(measurable["P_post"].unique())
    if len(measurable) >= len(levels) + 3 and measurable["D_over_N"].nunique() >= 2:
        y = np.log(measurable["delta"].to_numpy())
        dummies = np.column_stack([(measurable["P_post"] == b).to_numpy(float) for b in levels])
        slope = _ols(y, np.column_stack([np.log(measurable["D_over_N"]), dummies]),
                     ["slope"] + [f"c_{b:g}" for b in levels])["slope"]
        result["slope_log_delta_vs_log_D_over_N"] = slope
        result["verdict"] = _verdict(*slope["ci"], "yes: PTQ degradation grows with D/N",
                                     "no: PTQ degradation shrinks with D/N here")
    else:
        result["verdict"] = "inconclusive (too few measurable runs)"
    if (len(measurable) >= 6 and measurable["N"].nunique() >= 2
            and measurable["D"].nunique() >= 2 and len(levels) >= 2):
        X = np.column_stack([np.ones(len(measurable)), -measurable["P_post"],
                             np.log(measurable["D"]), -np.log(measurable["N"])])
        fit = _ols(np.log(measurable["delta"].to_numpy()), X,
                   ["log_C_T", "inv_gamma_post", "gamma_D", "gamma_N"])
        result["log_linear_fit"] = fit
    return result


def effective_params(runs: pd.DataFrame, A: float, alpha: float) -> pd.DataFrame:
    """Measured N_eff/N of each quantized-training run against its full-precision twin."""
    no_ptq = runs[runs["P_post"].isna()]
    full = no_ptq[_full_precision(no_ptq)]
    quant = no_ptq[~_full_precision(no_ptq)]
    keys = _pair_keys(runs)
    merged = quant.merge(full[keys + ["loss"]], on=keys, suffixes=("", "_16"), how="inner")
    base = merged["N"].to_numpy(float) ** -alpha + (merged["loss"] - merged["loss_16"]) / A
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = np.where(base > 0, base ** (-1.0 / alpha), np.inf)
    cols = [c for c in ("run_id", "N", "D", "seed", "w_format", "a_format", "kv_format")
            if c in merged.columns]
    out = merged[cols + list(BIT_COLUMNS)].copy()
    out["loss"] = merged["loss"]
    out["loss_16"] = merged["loss_16"]
    out["N_eff_ratio"] = n_eff / merged["N"].to_numpy(float)
    out["float_format"] = _is_float_format(merged).to_numpy()
    return out.reset_index(drop=True)


def law_ratio(law, frame: pd.DataFrame) -> np.ndarray:
    """The law's N_eff/N at the rows' bits, divided by its value at 16/16/16 bits."""
    ref = float(law.training_factor(HIGH, HIGH, HIGH))
    vals = []
    for _, row in frame.iterrows():
        try:
            vals.append(float(law.training_factor(row["P_w"], row["P_a"], row["P_kv"])) / ref)
        except LawInputError:   # below the law's domain threshold for that part
            vals.append(math.nan)
    return np.array(vals)


def neff_verdicts(neff: pd.DataFrame) -> dict:
    """Per part, over integer runs quantizing only that part: Spearman(P_x, N_eff/N)."""
    out = {}
    ints = neff[~neff["float_format"]]
    for col, label in PARTS.items():
        others = [c for c in BIT_COLUMNS if c != col]
        rows = ints[(ints[others] >= HIGH).all(axis=1) & (ints[col] < HIGH)]
        ratio = rows["N_eff_ratio"]
        medians = {float(b): float(r.median()) for b, r in ratio.groupby(rows[col])}
        entry: dict[str, Any] = {"part": label, "n": int(len(rows)), "median_ratio_by_bits":
                                 medians}
        if rows[col].nunique() >= 2 and len(rows) >= 3:
            rho, p = stats.spearmanr(rows[col], ratio)
            entry.update(spearman_rho=float(rho), spearman_p=float(p))
            if rho > 0 and p < 0.05:
                entry["verdict"] = "yes: N_eff shrinks as training bits fall"
            elif rho < 0 and p < 0.05:
                entry["verdict"] = "no: N_eff grows as training bits fall"
            else:
                entry["verdict"] = "inconclusive (no significant rank correlation)"
        else:
            entry["verdict"] = "not tested (needs >= 2 widths quantizing only this part)"
        out[col] = entry
    return out


E_FLOOR = 1e-3   # a fitted E below this ran to the optimiser's bound (log E >= −10)


def entropy_check(runs: pd.DataFrame, chinchilla: FitResult, precision: FitResult) -> dict:
    known = runs["known_E"].dropna().unique() if "known_E" in runs.columns else []
    out: dict[str, Any] = {"known_E": float(known[0]) if len(known) == 1 else None}
    for label, fit in (("chinchilla", chinchilla), ("precision", precision)):
        if not fit.ok:
            continue
        e = fit.law.constants_["E"]
        lo, hi = fit.law.ci_.get("E", (math.nan, math.nan))
        entry = {"E_fit": e, "ci": (lo, hi), "at_lower_bound": bool(e < E_FLOOR)}
        if out["known_E"] is not None:
            h = out["known_E"]
            entry.update(abs_error=e - h, rel_error=e / h - 1.0,
                         known_within_ci=bool(lo <= h <= hi) if math.isfinite(lo) else None)
        out[label] = entry
    return out


def analyse(runs: pd.DataFrame, source_note: str = "", n_bootstrap: int = 50,
            label: str = "runs.csv") -> Analysis:
    """Fit and check everything on `runs` (index: CSV line numbers, used in messages)."""
    notes = []
    usable = runs[runs["diverged"] == 0] if "diverged" in runs.columns else runs
    if len(usable) < len(runs):
        notes.append(f"{len(runs) - len(usable)} row(s) of diverged runs excluded")
    row_name = f"{label} line"
    base = usable[_full_precision(usable) & usable["P_post"].isna()]
    chin = _fit(ChinchillaLaw(n_bootstrap=n_bootstrap), base, row_name)
    integer = usable[~_is_float_format(usable)]
    if len(integer) < len(usable):
        notes.append(f"{len(usable) - len(integer)} float-format row(s) kept out of the "
                     "PrecisionLaw fit (the paper's constants are integer-type fits); their "
                     "N_eff is reported separately")
    prec = _fit(PrecisionLaw("kumar2024", n_bootstrap=n_bootstrap), integer, row_name)
    heldout, heldout_error = None, None
    if integer["N"].nunique() >= 3:
        try:
            heldout = heldout_check(PrecisionLaw("kumar2024"),
                                    integer[["N", "D", "P_w", "P_a", "P_kv", "P_post", "loss"]],
                                    row_name=row_name)
        except (LawInputError, LawFitError) as exc:
            heldout_error = str(exc)
    else:
        heldout_error = "needs runs at >= 3 model sizes"
    delta = ptq_degradation(usable)
    trend = ptq_trend(delta)
    scale = chin.law if chin.ok else (prec.law if prec.ok else None)
    if scale is not None:
        c = scale.constants_
        neff = effective_params(usable, c["A"], c["alpha"])
        neff["law_fit_ratio"] = law_ratio(prec.law, neff) if prec.ok else np.nan
        neff["law_paper_ratio"] = law_ratio(PrecisionLaw("kumar2024"), neff)
        verdicts = neff_verdicts(neff)
    else:
        neff = pd.DataFrame()
        verdicts = {}
        notes.append("no N_eff analysis: neither law could be fitted")
    entropy = entropy_check(usable, chin, prec)
    if any(entropy.get(k, {}).get("at_lower_bound") for k in ("chinchilla", "precision")):
        notes.append("a fitted E ran to its lower bound (~0): these runs do not constrain the "
                     "irreducible loss (too few sizes or token counts, or losses still far "
                     "from convergence); read E and the scale constants as unidentified")
    return Analysis(runs=usable, source_note=source_note, chinchilla=chin, precision=prec,
                    heldout=heldout, heldout_error=heldout_error, ptq=delta, ptq_trend=trend,
                    neff=neff, neff_verdicts=verdicts, entropy=entropy, notes=notes)
