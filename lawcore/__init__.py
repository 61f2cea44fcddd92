"""Precision-aware scaling laws: loss from N, D, training bits and post-training bits.

Laws (registry names for `--law NAME` in `lawcore.LAWS`):
- `PrecisionLaw` — Kumar et al. 2024 unified law ("kumar2024", "kumar2024-fp");
- `OuyangPTQLaw` — Ouyang et al. 2024 PTQ degradation ("ouyang2024");
- `ChinchillaLaw` — Hoffmann et al. 2022 / Epoch AI 2024 ("chinchilla", "epoch2024").
Fitting (`law.fit(runs)`), `heldout_check`, and compute-optimal precision
(`compute_optimal`, `optimal_precision_fixed_n`). Imports neither simulator nor codesign.
"""
from lawcore.base import Law
from lawcore.chinchilla import ChinchillaLaw
from lawcore.errors import LawInputError
from lawcore.fitting import LawFitError, heldout_check
from lawcore.inputs import HIGH_PRECISION_BITS
from lawcore.optimal import (PrecisionOptimum, compute_optimal, optimal_precision_fixed_n,
                             training_compute_flops)
from lawcore.ouyang import OuyangPTQLaw
from lawcore.precision import PrecisionLaw
from lawcore.registry import DEFAULT_LAW, LAWS, get_law, law_from_json

__all__ = [
    "ChinchillaLaw", "DEFAULT_LAW", "HIGH_PRECISION_BITS", "LAWS", "Law", "LawFitError",
    "LawInputError", "OuyangPTQLaw", "PrecisionLaw", "PrecisionOptimum", "compute_optimal",
    "get_law", "heldout_check", "law_from_json", "optimal_precision_fixed_n",
    "training_compute_flops",
]
