"""Ouyang et al. 2024 (arXiv 2411.17691) post-training-quantization degradation.

    ΔqLoss(N, D, P_post) = k · D^β_D / (N^α_N · P_post^γ_P)
    L = A·N^(−α) + B·D^(−β) + E + ΔqLoss

Preset "ouyang2024": k = 0.017, β_D = 0.5251, α_N = 0.2261, γ_P = 5.4967 from a
secondary summary — NOT confirmed in the primary text (reference/laws.md). The paper
fits the degradation only; the Chinchilla part here is Hoffmann et al. 2022
(approach 3, unrounded), this project's assumption. Models trained in high precision
only: training bits below 16 are outside this law.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from precsim.lawcore.base import Law, base_terms, check_high_precision
from precsim.lawcore.chinchilla import CHINCHILLA_PRESETS
from precsim.lawcore.coords import (BASE_CONSTANTS, BASE_COORD_SPECS, BASE_COORDS, Coord, Locate,
                                    base_constants, base_coords)
from precsim.lawcore.inputs import Inputs

OUYANG2024 = {**CHINCHILLA_PRESETS["chinchilla"],
              "k": 0.017, "alpha_N": 0.2261, "beta_D": 0.5251, "gamma_P": 5.4967}


class OuyangPTQLaw(Law):
    """Chinchilla base + Ouyang et al. 2024 degradation k·D^β_D/(N^α_N·P_post^γ_P)."""

    CONSTANTS = (*BASE_CONSTANTS, "k", "alpha_N", "beta_D", "gamma_P")
    PRESETS = {"ouyang2024": OUYANG2024}
    PRESET_NOTES = {"ouyang2024": "Ouyang et al. 2024 (arXiv 2411.17691) degradation constants "
                                  "from a summary, not confirmed in the primary text; "
                                  "Chinchilla base of Hoffmann et al. 2022"}
    DEFAULT_PRESET = "ouyang2024"
    COORD_OF = {**BASE_COORDS, "k": "log_k", "alpha_N": "alpha_N", "beta_D": "beta_D",
                "gamma_P": "gamma_P"}
    CENTRING = {**Law.CENTRING, "log_k": (("beta_D", -1.0, "D"), ("alpha_N", 1.0, "N"))}
    PTQ_DATA_EXPONENT = "beta_D"
    models_ptq = True

    def _to_coords(self, c: Mapping[str, float]) -> dict[str, float]:
        return {**base_coords(c), "log_k": math.log(c["k"]), "alpha_N": c["alpha_N"],
                "beta_D": c["beta_D"], "gamma_P": c["gamma_P"]}

    def _from_coords(self, k: Mapping[str, float]) -> dict[str, float]:
        return {**base_constants(k), "k": math.exp(k["log_k"]), "alpha_N": float(k["alpha_N"]),
                "beta_D": float(k["beta_D"]), "gamma_P": float(k["gamma_P"])}

    def _coord_specs(self, X: Inputs) -> dict[str, Coord]:
        return {**BASE_COORD_SPECS,
                "log_k": Coord("log_k", (-30.0, 10.0), (math.log(0.01), math.log(0.1)), "ptq"),
                "alpha_N": Coord("alpha_N", (0.0, 3.0), (0.25, 0.5), "ptq"),
                "beta_D": Coord("beta_D", (0.0, 3.0), (0.25, 0.5, 1.0), "ptq"),
                "gamma_P": Coord("gamma_P", (0.0, 20.0), (2.0, 5.0, 8.0), "ptq")}

    def _auto_free(self, X: Inputs) -> list[str]:
        """Chinchilla part always; k if any run is post-training quantized; α_N / β_D / γ_P
        if N / D / P_post vary among those runs."""
        free = [c for c in BASE_CONSTANTS if not (c == "beta" and self.tie_alpha_beta)]
        ptq = np.isfinite(X.P_post)
        if ptq.any():
            free.append("k")
            for name, values in (("alpha_N", X.N), ("beta_D", X.D), ("gamma_P", X.P_post)):
                if np.unique(values[ptq]).size >= 2:
                    free.append(name)
        return free

    def _check_domain(self, X: Inputs, c: Mapping[str, float], locate: Locate,
                      skip: Sequence[str] = ()) -> None:
        check_high_precision(self, X, locate, ptq=True)

    def _log_terms(self, k: Mapping[str, Any], X: Inputs, grad: bool
                   ) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
        log_n = np.log(X.N)
        log_d = np.log(X.D)
        terms, grads = base_terms(k, log_n, log_d, grad)
        ptq = np.isfinite(X.P_post)
        log_p = np.log(np.where(ptq, X.P_post, 1.0))
        t_ptq = k["log_k"] + k["beta_D"] * log_d - k["alpha_N"] * log_n - k["gamma_P"] * log_p
        terms.append(np.where(ptq, t_ptq, -np.inf))
        if grad:
            grads.append({name: np.where(ptq, d, 0.0) for name, d in (
                ("log_k", 1.0), ("beta_D", log_d), ("alpha_N", -log_n), ("gamma_P", -log_p))})
        return terms, grads
