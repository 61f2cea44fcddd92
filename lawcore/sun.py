"""Sun et al. 2025, "Scaling Laws for Floating-Point Quantization Training" (arXiv 2501.02423,
ICML 2025), unified law Eq. (18) = Eq. (26), constants of its Table 2:

    L = n/N^α + d/D^β + ε + (D^β/N^α) · log2(B_blk) / (γ·(E_x + 0.5)^δ·(M_x + 0.5)^ν)

E_x, M_x: exponent and mantissa bits of the training format, P = E_x + M_x + 1. Only P
reaches lawcore, so the layout is the paper's optimum for P bits, Eq. (19):
E_x + 0.5 = δ·P/(δ+ν), M_x + 0.5 = ν·P/(δ+ν) (FP4 → E2M1, FP8 → E4M3, BF16 → E8M7).
In the paper the quantized GEMM inputs are the weights (forward and backward) and the
backward activations; P here is P_w. The Chinchilla part was fitted on BF16, so the
quantization term is 0 at P_w >= 16 (the baseline). B_blk = 128 (the block size of the
paper's compute-optimal analysis, Eqs. 22-25). No post-training quantization.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from precsim.lawcore.base import Law, base_terms
from precsim.lawcore.coords import (BASE_CONSTANTS, BASE_COORD_SPECS, BASE_COORDS, Coord,
                                    Locate, base_constants, base_coords, first_bad)
from precsim.lawcore.errors import LawInputError
from precsim.lawcore.inputs import HIGH_PRECISION_BITS, Inputs

# Table 2 (n, α, d, β, ε as A, alpha, B, beta, E); log2_block = log2(128).
SUN2025 = {"A": 69.2343, "alpha": 0.2368, "B": 68973.0621, "beta": 0.5162, "E": 1.9061,
           "gamma_q": 11334.5197, "delta": 3.1926, "nu": 2.9543, "log2_block": 7.0}


class FloatQuantLaw(Law):
    """Sun et al. 2025 floating-point quantized-training law (weights at P_w bits)."""

    CONSTANTS = (*BASE_CONSTANTS, "gamma_q", "delta", "nu", "log2_block")
    PRESETS = {"sun2025": SUN2025}
    PRESET_NOTES = {"sun2025": "Sun et al. 2025 (arXiv 2501.02423) Table 2 floating-point "
                               "training law; optimal E/M layout (Eq. 19), block 128"}
    DEFAULT_PRESET = "sun2025"
    COORD_OF = {**BASE_COORDS, "gamma_q": "log_gamma_q", "delta": "delta", "nu": "nu",
                "log2_block": "log_log2_block"}
    models_training_precision = True
    NEFF_FORM = False

    def _to_coords(self, c: Mapping[str, float]) -> dict[str, float]:
        return {**base_coords(c), "log_gamma_q": math.log(c["gamma_q"]), "delta": c["delta"],
                "nu": c["nu"], "log_log2_block": math.log(c["log2_block"])}

    def _from_coords(self, k: Mapping[str, float]) -> dict[str, float]:
        return {**base_constants(k), "gamma_q": math.exp(k["log_gamma_q"]),
                "delta": float(k["delta"]), "nu": float(k["nu"]),
                "log2_block": math.exp(k["log_log2_block"])}

    def _coord_specs(self, X: Inputs) -> dict[str, Coord]:
        return {**BASE_COORD_SPECS,
                "log_gamma_q": Coord("log_gamma_q", (-10.0, 30.0), (5.0, 10.0), "quant"),
                "delta": Coord("delta", (0.0, 10.0), (1.0, 3.0), "quant"),
                "nu": Coord("nu", (0.0, 10.0), (1.0, 3.0), "quant"),
                "log_log2_block": Coord("log_log2_block", (-5.0, 5.0), (math.log(7.0),),
                                        "quant")}

    def _auto_free(self, X: Inputs) -> list[str]:
        """Chinchilla part; γ_q, δ, ν if P_w takes >= 3 values below 16 (B_blk: fixed)."""
        free = list(BASE_CONSTANTS)
        low = X.P_w < HIGH_PRECISION_BITS
        if np.unique(X.P_w[low]).size >= 3:
            free += ["gamma_q", "delta", "nu"]
        return free

    def _check_domain(self, X: Inputs, c: Mapping[str, float], locate: Locate,
                      skip: Sequence[str] = ()) -> None:
        bad = X.P_w < 2.0
        if bad.any():
            raise LawInputError(f"P_w = {first_bad(X.P_w, bad):g} bits{locate(bad)}: a "
                                f"floating-point format needs >= 2 bits (sign + exponent) "
                                f"for law {self.name!r}")
        bad = np.isfinite(X.P_post)
        if bad.any():
            raise LawInputError(f"P_post given{locate(bad)}: law {self.name!r} has no "
                                "post-training-quantization term; use 'kumar2024' or "
                                "'ouyang2024'")

    def _log_terms(self, k: Mapping[str, Any], X: Inputs, grad: bool
                   ) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
        log_n, log_d = np.log(X.N), np.log(X.D)
        terms, grads = base_terms(k, log_n, log_d, grad)
        low = X.P_w < HIGH_PRECISION_BITS
        delta, nu = k["delta"], k["nu"]
        log_p = np.log(np.where(low, X.P_w, 1.0))
        log_e = np.log(delta / (delta + nu)) + log_p   # log(E_x + 0.5)
        log_m = np.log(nu / (delta + nu)) + log_p      # log(M_x + 0.5)
        t = (k["log_log2_block"] - k["log_gamma_q"] - delta * log_e - nu * log_m
             + k["beta"] * log_d - k["alpha"] * log_n)
        terms.append(np.where(low, t, -np.inf))
        if grad:
            # −δ·log(E_x+0.5) − ν·log(M_x+0.5): the δ/(δ+ν) shares' own derivatives cancel
            d_delta, d_nu = -log_e, -log_m
            grads.append({name: np.where(low, d, 0.0) for name, d in (
                ("log_log2_block", 1.0), ("log_gamma_q", -1.0), ("delta", d_delta),
                ("nu", d_nu), ("beta", log_d), ("alpha", -log_n))})
        return terms, grads
