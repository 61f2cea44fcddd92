"""Kumar et al. 2024, "Scaling Laws for Precision" (arXiv 2411.04330): the unified law.

    N_eff = N · Π_{x∈{w,a,kv}} (1 − exp(−P_x/γ_x + n_x))                 (quantized training)
    L     = A·N_eff^(−α) + B·D^(−β) + E + δ_PTQ                           (unified law)
    δ_PTQ = C_T · exp(−P_post/γ_post) · D^γ_D / N_eff^γ_N
                · Π_{x trained in low precision} [1 − exp(−C_x·(P_x − P_post))]   (PTQ; unified)

Offsets n_x: the paper computes each exponential e^(−P/γ_x) with an offset,
e^(−P/γ_x + n_x) (reference/laws.md); 1 − e^(−P/γ_x + n_x) ≤ 0 for P ≤ n_x·γ_x, which is
outside the law's domain (the paper's runs at P_a ≤ 3 or P_kv ≤ 3 diverged).

Conventions of this implementation (the paper leaves them implicit):
- "trained in low precision" means P_x < 16 bits; parts at >= 16 bits (or inf) give a
  robustness factor of 1, so a 16-bit-trained model gets exactly the PTQ form of
  reference/laws.md (with N_eff in place of N).
- Post-training quantization to at least the training precision (P_post >= P_x for a
  low-precision part) loses nothing: the factor max(0, ·) gives δ_PTQ = 0.
- C_w = C_a = C_kv = 1 in the presets: the C_x are not in Table 2; the paper's simplified
  Eq. 10 sets C_w = 1, and C_a, C_kv = 1 are this project's assumption (fit them).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from precsim.lawcore.base import Law, base_terms
from precsim.lawcore.coords import (BASE_CONSTANTS, BASE_COORD_SPECS, BASE_COORDS, Coord, Locate,
                                    base_constants, base_coords, first_bad)
from precsim.lawcore.errors import LawInputError
from precsim.lawcore.inputs import HIGH_PRECISION_BITS, PARTS, Inputs

PTQ_CONSTANTS = ("C_T", "gamma_D", "gamma_N", "gamma_post")
TRAIN_CONSTANTS = tuple(f"{p}_{x}" for x in PARTS for p in ("gamma", "n"))
ROBUST_CONSTANTS = tuple(f"C_{x}" for x in PARTS)
PART_LABEL = {"w": "weights", "a": "activations", "kv": "KV cache"}

KUMAR2024 = {
    # Kumar et al. 2024, Appendix K, Table 2 (integer-type fits); alpha = beta tied.
    "A": 4.299e3, "alpha": 0.4965, "B": 1.806e4, "beta": 0.4965, "E": 2.7648,
    "C_T": 0.0598, "gamma_D": 0.5068, "gamma_N": 0.3439, "gamma_post": 0.5907,
    "gamma_w": 2.6745, "n_w": 0.3037, "gamma_a": 2.2102, "n_a": 1.4072,
    "gamma_kv": 0.9578, "n_kv": 2.4185,
    # Not in Table 2: C_w = 1 as in the paper's simplified Eq. 10; C_a = C_kv = 1 assumed.
    "C_w": 1.0, "C_a": 1.0, "C_kv": 1.0,
}
# Appendix N, floating-point weight training: γ_w = 2.8111 with bias 0.1240 (read as n_w).
KUMAR2024_FP = {**KUMAR2024, "gamma_w": 2.8111, "n_w": 0.1240}
# Table 2 ends "γ = 0.5907, b = 1.1277". Reading "b": the offset of δ_PTQ's exponential, as
# n_x is of the training factors: C_T·e^(−P_post/γ_post + b) = (C_T·e^b)·e^(−P_post/γ_post);
# "kumar2024" keeps the other reading (b not part of δ_PTQ). docs/laws.md quotes the table.
KUMAR2024_B_OFFSET = 1.1277
KUMAR2024_B = {**KUMAR2024, "C_T": KUMAR2024["C_T"] * math.exp(KUMAR2024_B_OFFSET)}


class PrecisionLaw(Law):
    """Unified precision-aware law of Kumar et al. 2024 (training bits + post-training bits).

    Constants: A, alpha, B, beta, E (Chinchilla part), C_T, gamma_D, gamma_N, gamma_post
    (PTQ degradation), gamma_x, n_x for x in w, a, kv (N_eff), C_x (robustness).
    """

    CONSTANTS = (*BASE_CONSTANTS, *PTQ_CONSTANTS, *TRAIN_CONSTANTS, *ROBUST_CONSTANTS)
    PRESETS = {"kumar2024": KUMAR2024, "kumar2024-fp": KUMAR2024_FP, "kumar2024-b": KUMAR2024_B}
    PRESET_NOTES = {
        "kumar2024": "Kumar et al. 2024 (arXiv 2411.04330) App. K Table 2, integer types; "
                     "C_x = 1 assumed (not published)",
        "kumar2024-fp": "kumar2024 with floating-point weight constants of App. N "
                        "(gamma_w = 2.8111, n_w = 0.1240)",
        "kumar2024-b": "kumar2024 reading Table 2's b = 1.1277 as the offset of the PTQ "
                       "exponential: C_T = 0.0598·e^1.1277",
    }
    TIED_PRESETS = frozenset(PRESETS)
    DEFAULT_PRESET = "kumar2024"
    FINITE_ONLY = frozenset(f"n_{x}" for x in PARTS)
    COORD_OF = {**BASE_COORDS, "C_T": "log_C_T", "gamma_D": "gamma_D", "gamma_N": "gamma_N",
                "gamma_post": "rate_post",
                **{f"gamma_{x}": f"log_gamma_{x}" for x in PARTS},
                **{f"n_{x}": f"tau_{x}" for x in PARTS},
                **{f"C_{x}": f"log_C_{x}" for x in PARTS}}
    COUPLED = tuple((f"gamma_{x}", f"n_{x}") for x in PARTS)
    CENTRING = {**Law.CENTRING, "log_C_T": (("gamma_D", -1.0, "D"), ("gamma_N", 1.0, "N"),
                                            ("rate_post", 1.0, "P_post"))}
    PTQ_DATA_EXPONENT = "gamma_D"
    models_training_precision = True
    models_ptq = True

    # ----- coordinates: log scales, 1/γ_post, and τ_x = n_x·γ_x (the domain threshold) ------
    def _to_coords(self, c: Mapping[str, float]) -> dict[str, float]:
        k = base_coords(c)
        k.update(log_C_T=math.log(c["C_T"]), gamma_D=c["gamma_D"], gamma_N=c["gamma_N"],
                 rate_post=1.0 / c["gamma_post"])
        for x in PARTS:
            k[f"log_gamma_{x}"] = math.log(c[f"gamma_{x}"])
            k[f"tau_{x}"] = c[f"n_{x}"] * c[f"gamma_{x}"]
            k[f"log_C_{x}"] = math.log(c[f"C_{x}"])
        return k

    def _from_coords(self, k: Mapping[str, float]) -> dict[str, float]:
        c = base_constants(k)
        c.update(C_T=math.exp(k["log_C_T"]), gamma_D=float(k["gamma_D"]),
                 gamma_N=float(k["gamma_N"]), gamma_post=1.0 / k["rate_post"])
        for x in PARTS:
            gamma = math.exp(k[f"log_gamma_{x}"])
            c[f"gamma_{x}"] = gamma
            c[f"n_{x}"] = k[f"tau_{x}"] / gamma
            c[f"C_{x}"] = math.exp(k[f"log_C_{x}"])
        return c

    def _coord_specs(self, X: Inputs) -> dict[str, Coord]:
        specs = dict(BASE_COORD_SPECS)
        specs.update(
            log_C_T=Coord("log_C_T", (-30.0, 10.0), (math.log(0.01), math.log(0.1), 0.0),
                          "ptq"),
            gamma_D=Coord("gamma_D", (0.0, 3.0), (0.25, 0.5, 1.0), "ptq"),
            gamma_N=Coord("gamma_N", (0.0, 3.0), (0.25, 0.5), "ptq"),
            rate_post=Coord("rate_post", (1e-3, 50.0), (0.5, 1.0, 2.0), "ptq"))
        for x in PARTS:
            P = X.bits(x)
            p_min = float(P[np.isfinite(P)].min()) if np.isfinite(P).any() else 32.0
            specs[f"log_gamma_{x}"] = Coord(f"log_gamma_{x}", (math.log(0.05), math.log(50.0)),
                                            (0.0, math.log(3.0)), f"train_{x}")
            # τ_x < min P_x keeps every run inside the domain: 1 − e^(−(P − τ)/γ) > 0.
            specs[f"tau_{x}"] = Coord(f"tau_{x}", (-20.0, p_min - 1e-3),
                                      (0.0, 0.5 * p_min), f"train_{x}")
            specs[f"log_C_{x}"] = Coord(f"log_C_{x}", (math.log(1e-3), math.log(1e3)),
                                        (math.log(0.3), 0.0, math.log(3.0)), f"robust_{x}")
        return specs

    def _auto_free(self, X: Inputs) -> list[str]:
        """Constants the runs can identify; the others stay at their constructor values.

        Chinchilla part always (β tied to α if so configured); C_T if any run is
        post-training quantized, γ_D / γ_N / γ_post if D / N / P_post vary among those
        runs; γ_x, n_x if P_x takes >= 3 distinct values; C_x if PTQ runs trained part x
        in low precision with >= 2 distinct gaps P_x − P_post > 0.
        """
        free = [c for c in BASE_CONSTANTS if not (c == "beta" and self.tie_alpha_beta)]
        ptq = np.isfinite(X.P_post)
        if ptq.any():
            free.append("C_T")
            for name, values in (("gamma_D", X.D), ("gamma_N", X.N), ("gamma_post", X.P_post)):
                if np.unique(values[ptq]).size >= 2:
                    free.append(name)
        for x in PARTS:
            P = X.bits(x)
            if np.unique(P[np.isfinite(P)]).size >= 3:
                free += [f"gamma_{x}", f"n_{x}"]
            gap = (P - X.P_post)[ptq & (P < HIGH_PRECISION_BITS) & (P > X.P_post)]
            if np.unique(gap).size >= 2:
                free.append(f"C_{x}")
        return free

    # ----- domain --------------------------------------------------------------------------
    def _check_domain(self, X: Inputs, c: Mapping[str, float], locate: Locate,
                      skip: Sequence[str] = ()) -> None:
        for x in PARTS:
            if f"gamma_{x}" in skip:
                continue
            threshold = c[f"n_{x}"] * c[f"gamma_{x}"]
            P = X.bits(x)
            bad = P <= threshold
            if bad.any():
                raise LawInputError(
                    f"P_{x} = {first_bad(P, bad):g} bits{locate(bad)} is outside the domain of "
                    f"law {self.name!r}: 1 − exp(−P_{x}/γ_{x} + n_{x}) ≤ 0 for P_{x} ≤ "
                    f"n_{x}·γ_{x} = {threshold:.4g} bits ({PART_LABEL[x]}); the paper's runs "
                    "with P_a ≤ 3 or P_kv ≤ 3 diverged and were not fitted")

    def min_training_bits(self) -> float:
        c = self.constants
        return max(c[f"n_{x}"] * c[f"gamma_{x}"] for x in PARTS)

    # ----- terms ---------------------------------------------------------------------------
    def _log_rate_scale(self, k: Mapping[str, Any], X: Inputs, part: str
                        ) -> tuple[Any, dict[str, Any]]:
        """log s_x, the size dependence of z_x = s_x·(P_x − τ_x)/γ_x, and its gradient.

        0 here (Kumar et al.'s factors do not depend on N); see lawcore.lowbit.
        """
        return 0.0, {}

    def _log_training_factor(self, k: Mapping[str, Any], X: Inputs, grad: bool
                             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """log(N_eff/N) = Σ_x log(1 − exp(−z_x)), z_x = s_x·(P_x − τ_x)/γ_x (n_x = τ_x/γ_x)."""
        total: Any = 0.0
        grads: dict[str, np.ndarray] = {}
        for x in PARTS:
            P = X.bits(x)
            finite = np.isfinite(P)
            gamma = np.exp(k[f"log_gamma_{x}"])
            log_s, dlog_s = self._log_rate_scale(k, X, x)
            scale = np.exp(log_s)
            z = np.where(finite, P - k[f"tau_{x}"], np.inf) * scale / gamma  # > 0 in domain
            total = total + np.log(-np.expm1(-z))
            if grad:
                zf = np.where(finite, z, 1.0)
                w = np.where(finite, np.exp(-zf) / -np.expm1(-zf), 0.0)  # d log(1−e^−z)/dz
                grads[f"log_gamma_{x}"] = -w * zf
                grads[f"tau_{x}"] = -w * scale / gamma
                for name, d in dlog_s.items():
                    grads[name] = w * zf * d
        return total, grads

    def _log_terms(self, k: Mapping[str, Any], X: Inputs, grad: bool
                   ) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
        log_n = np.log(X.N)
        log_d = np.log(X.D)
        log_factor, dlog_factor = self._log_training_factor(k, X, grad)
        log_neff = log_n + log_factor
        terms, grads = base_terms(k, log_neff, log_d, grad, dlog_factor)

        # δ_PTQ in log form: log C_T − P_post/γ_post + γ_D·log D − γ_N·log N_eff + Σ log ρ_x
        ptq = np.isfinite(X.P_post)
        p_post = np.where(ptq, X.P_post, 0.0)
        active = ptq.copy()
        log_rho = 0.0
        dlog_rho: dict[str, np.ndarray] = {}
        for x in PARTS:
            P = X.bits(x)
            low = ptq & (P < HIGH_PRECISION_BITS)
            gap = np.where(low, P - p_post, 1.0)
            active = active & ~(low & (gap <= 0))  # PTQ to >= training bits: δ = 0
            y = np.exp(k[f"log_C_{x}"]) * np.where(gap > 0, gap, 1.0)
            log_rho = log_rho + np.where(low, np.log(-np.expm1(-y)), 0.0)
            if grad:
                dlog_rho[f"log_C_{x}"] = np.where(low, y * np.exp(-y) / -np.expm1(-y), 0.0)
        t_ptq = (k["log_C_T"] - k["rate_post"] * p_post + k["gamma_D"] * log_d
                 - k["gamma_N"] * log_neff + log_rho)
        terms.append(np.where(active, t_ptq, -np.inf))
        if grad:
            g = {"log_C_T": 1.0, "rate_post": -p_post, "gamma_D": log_d,
                 "gamma_N": -log_neff, **dlog_rho}
            for name, d in dlog_factor.items():
                g[name] = -k["gamma_N"] * d
            grads.append({name: np.where(active, d, 0.0) for name, d in g.items()})
        return terms, grads
