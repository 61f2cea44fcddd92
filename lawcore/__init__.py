"""Precision-aware scaling laws: loss from N, D, training bits and post-training bits.

Laws (registry names for `--law NAME` in `lawcore.LAWS`):
- `PrecisionLaw` — Kumar et al. 2024 unified law ("kumar2024", "kumar2024-fp");
- `OuyangPTQLaw` — Ouyang et al. 2024 PTQ degradation ("ouyang2024");
- `ChinchillaLaw` — Hoffmann et al. 2022 / Epoch AI 2024 ("chinchilla", "epoch2024").
Fitting (`law.fit(runs)`), `heldout_check`, and compute-optimal precision
(`compute_optimal`, `optimal_precision_fixed_n`). Imports neither simulator nor codesign.
scipy (fitting) is imported only when a fit runs: `heldout_check` is loaded on first use,
and `Law.fit` imports `lawcore.fitting` itself.
"""
from precsim.lawcore.base import Law
from precsim.lawcore.chinchilla import ChinchillaLaw
from precsim.lawcore.errors import LawFitError, LawInputError
from precsim.lawcore.inputs import HIGH_PRECISION_BITS
from precsim.lawcore.optimal import (PrecisionOptimum, compute_optimal, optimal_precision_fixed_n,
                             training_compute_flops)
from precsim.lawcore.ouyang import OuyangPTQLaw
from precsim.lawcore.precision import PrecisionLaw
from precsim.lawcore.registry import DEFAULT_LAW, LAWS, get_law, law_from_json

__all__ = [
    "ChinchillaLaw", "DEFAULT_LAW", "HIGH_PRECISION_BITS", "LAWS", "Law", "LawFitError",
    "LawInputError", "OuyangPTQLaw", "PrecisionLaw", "PrecisionOptimum", "compute_optimal",
    "get_law", "heldout_check", "law_from_json", "optimal_precision_fixed_n",
    "training_compute_flops",
]


def __getattr__(name: str):
    """`heldout_check` from lawcore.fitting on first use (it imports scipy, ~1 s)."""
    if name == "heldout_check":
        from precsim.lawcore.fitting import heldout_check
        return heldout_check
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"heldout_check"})
