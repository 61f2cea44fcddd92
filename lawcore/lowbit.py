"""Low-bit quantization-aware-training law: Kumar et al.'s unified law with a weight
factor refitted on ternary / binary QAT-from-scratch suites and allowed to depend on size.

    N_eff = N · (1 − exp(−s_w(N)·(P_w − τ_w)/γ_w)) · f_a(P_a) · f_kv(P_kv)
    s_w(N) = (N / N_REF)^σ_w,   N_REF = 1e9,   τ_w = n_w·γ_w
    L = A·N_eff^(−α) + B·D^(−β) + E (+ Kumar's δ_PTQ)

The effective-parameter reading follows Frantar et al. 2025 / QuEST (Panferov et al. 2025,
Eq. 5): a quantized model of N parameters is worth a 16-bit model of N_eff. σ_w > 0 lets
the gap close with size, as Spectra (Kaushal et al. 2024, arXiv 2407.12327) reports for
TriLM vs FloatLM. γ_w, n_w, σ_w are fitted by `benchmarks/fit_lowbit_law.py` with
lawcore's fitter on the Spectra suite in lawcore/data/lowbit_qat.csv; A, α, B, β, E, the
activation / KV factors and δ_PTQ are Kumar et al. 2024's (Table 2) — the QAT suites keep
activations at 16 bits and say nothing about them.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from precsim.lawcore.coords import Coord
from precsim.lawcore.inputs import HIGH_PRECISION_BITS, Inputs
from precsim.lawcore.precision import KUMAR2024, PrecisionLaw

N_REF = 1e9  # parameters at which s_w = 1

# benchmarks/fit_lowbit_law.py: lawcore's fit to the 21 Spectra FloatLM/TriLM/BiLM rows.
LOWBIT_QAT = {**KUMAR2024, "gamma_w": 2.10873, "n_w": 0.194079, "sigma_w": 0.0760864}


class LowBitLaw(PrecisionLaw):
    """PrecisionLaw whose weight factor depends on size: z_w = (N/1e9)^σ_w·(P_w − τ_w)/γ_w."""

    CONSTANTS = (*PrecisionLaw.CONSTANTS, "sigma_w")
    PRESETS = {"lowbit-qat": LOWBIT_QAT}
    PRESET_NOTES = {"lowbit-qat": "low-bit QAT law: weight factor fitted on Spectra "
                                  "TriLM/BiLM vs FloatLM (arXiv 2407.12327, 99M-3.9B, 300B "
                                  "tokens); rest Kumar et al. 2024 Table 2"}
    TIED_PRESETS = frozenset(PRESETS)
    DEFAULT_PRESET = "lowbit-qat"
    SIZE_DEPENDENT_FACTOR = True
    FINITE_ONLY = PrecisionLaw.FINITE_ONLY | {"sigma_w"}
    COORD_OF = {**PrecisionLaw.COORD_OF, "sigma_w": "sigma_w"}

    def _to_coords(self, c: Mapping[str, float]) -> dict[str, float]:
        return {**super()._to_coords(c), "sigma_w": c["sigma_w"]}

    def _from_coords(self, k: Mapping[str, float]) -> dict[str, float]:
        return {**super()._from_coords(k), "sigma_w": float(k["sigma_w"])}

    def _coord_specs(self, X: Inputs) -> dict[str, Coord]:
        return {**super()._coord_specs(X),
                "sigma_w": Coord("sigma_w", (-3.0, 3.0), (0.0, 0.5, 1.0), "train_w")}

    def _auto_free(self, X: Inputs) -> list[str]:
        """PrecisionLaw's, plus σ_w when γ_w is free and low-bit runs span >= 2 sizes."""
        free = super()._auto_free(X)
        low = X.P_w < HIGH_PRECISION_BITS
        if "gamma_w" in free and np.unique(X.N[low]).size >= 2:
            free.append("sigma_w")
        return free

    def _log_rate_scale(self, k: Mapping[str, Any], X: Inputs, part: str
                        ) -> tuple[Any, dict[str, Any]]:
        if part != "w":
            return 0.0, {}
        log_ratio = np.log(X.N / N_REF)
        return k["sigma_w"] * log_ratio, {"sigma_w": log_ratio}


DATA_FILE = Path(__file__).with_name("data") / "lowbit_qat.csv"
BOOTSTRAP_FILE = DATA_FILE.with_name("lowbit_qat_bootstrap.csv")  # written by the fit script
# model_family prefix -> weight bits (Spectra, arXiv 2407.12327, Table 9 rows in DATA_FILE)
SPECTRA_SUITES = {"Spectra FloatLM": 16.0, "Spectra TriLM": 1.58, "Spectra BiLM": 1.0}
SPECTRA_TOKENS = 300e9  # every Spectra model saw 300B SlimPajama tokens


def _count(text: str) -> float:
    return float(text[:-1]) * {"M": 1e6, "B": 1e9}[text[-1]]


def spectra_runs(path: Path | str = DATA_FILE) -> pd.DataFrame:
    """The Spectra QAT-from-scratch suite as lawcore runs: N, D, P_w, loss = ln(LAMBADA ppl).

    LAMBADA perplexity is the per-model measurement the paper tabulates (its validation
    losses exist only as a figure); log-perplexity is a cross-entropy in nats, so the
    Chinchilla part fitted to it is LAMBADA-specific while N_eff/N is size-equivalence
    and carries over. QuantLM rows are post-training quantized, not QAT, and are left out.
    """
    table = pd.read_csv(path)
    rows = []
    for _, r in table.iterrows():
        bits = next((b for p, b in SPECTRA_SUITES.items()
                     if str(r["model_family"]).startswith(p)), None)
        if bits is not None and r["metric"] == "ppl":
            rows.append({"N": _count(str(r["params_total"])), "D": SPECTRA_TOKENS,
                         "P_w": bits, "P_a": HIGH_PRECISION_BITS, "P_kv": HIGH_PRECISION_BITS,
                         "loss": float(np.log(float(r["value"]))),
                         "suite": str(r["model_family"]).split(" (")[0]})
    return pd.DataFrame(rows)


def fit_lowbit(runs: pd.DataFrame, n_bootstrap: int = 200, seed: int = 0) -> LowBitLaw:
    """Fit A, α, E (the metric's own scale) and γ_w, n_w, σ_w to QAT runs at one D.

    β, B stay at Kumar's values (one D: the data term is a constant absorbed by E).
    """
    law = LowBitLaw(tie_alpha_beta=False, n_bootstrap=n_bootstrap, seed=seed,
                    fit_constants=("A", "alpha", "E", "gamma_w", "n_w", "sigma_w"))
    return law.fit(runs)


def bootstrap_laws(count: int, path: Path | str = BOOTSTRAP_FILE) -> list[LowBitLaw]:
    """The first `count` bootstrap refits of the fit script as `lowbit-qat` laws (their
    γ_w, n_w, σ_w; the other constants the preset's)."""
    table = pd.read_csv(path)
    return [LowBitLaw(**{k: float(row[k]) for k in ("gamma_w", "n_w", "sigma_w")})
            for _, row in table.head(count).iterrows()]
