"""Chinchilla law L(N, D) = A·N^(−α) + B·D^(−β) + E (Hoffmann et al. 2022, Eq. 2).

Presets (reference/laws.md):
- "chinchilla": Hoffmann et al. 2022, approach 3, unrounded: E = 1.6934, A = 406.40,
  B = 410.72, α = 0.33917, β = 0.28491.
- "epoch2024": Epoch AI replication (Besiroglu et al. 2024, arXiv 2404.10102):
  E = 1.8172, A = 482.01, B = 2085.43, α = 0.3478, β = 0.3658.
- "kumar2024": the Chinchilla part of Kumar et al. 2024 (arXiv 2411.04330, App. K,
  Table 2): A = 4.299e3, α = β = 0.4965 (tied), B = 1.806e4, E = 2.7648.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from precsim.lawcore.base import Law, base_terms, check_high_precision
from precsim.lawcore.coords import BASE_COORD_SPECS, Coord, Locate, base_constants, base_coords
from precsim.lawcore.inputs import Inputs

CHINCHILLA_PRESETS: dict[str, dict[str, float]] = {
    "chinchilla": {"A": 406.40, "alpha": 0.33917, "B": 410.72, "beta": 0.28491, "E": 1.6934},
    "epoch2024": {"A": 482.01, "alpha": 0.3478, "B": 2085.43, "beta": 0.3658, "E": 1.8172},
    "kumar2024": {"A": 4.299e3, "alpha": 0.4965, "B": 1.806e4, "beta": 0.4965, "E": 2.7648},
}


class ChinchillaLaw(Law):
    """L(N, D) = A·N^(−α) + B·D^(−β) + E (Hoffmann et al. 2022, Eq. 2); no precision terms.

    `predict` accepts the precision arguments of the other laws but refuses training
    below 16 bits and post-training quantization (outside this law's scope).
    """

    PRESETS = CHINCHILLA_PRESETS
    PRESET_NOTES = {
        "chinchilla": "Hoffmann et al. 2022 (approach 3, unrounded constants)",
        "epoch2024": "Besiroglu et al. 2024, Epoch AI replication (arXiv 2404.10102)",
        "kumar2024": "Kumar et al. 2024 (arXiv 2411.04330) App. K Table 2, alpha = beta tied",
    }
    TIED_PRESETS = frozenset({"kumar2024"})
    DEFAULT_PRESET = "chinchilla"

    def _to_coords(self, c: Mapping[str, float]) -> dict[str, float]:
        return base_coords(c)

    def _from_coords(self, k: Mapping[str, float]) -> dict[str, float]:
        return base_constants(k)

    def _coord_specs(self, X: Inputs) -> dict[str, Coord]:
        return dict(BASE_COORD_SPECS)

    def _auto_free(self, X: Inputs) -> list[str]:
        return list(self.CONSTANTS)

    def _check_domain(self, X: Inputs, c: Mapping[str, float], locate: Locate,
                      skip: Sequence[str] = ()) -> None:
        check_high_precision(self, X, locate, ptq=False)

    def _log_terms(self, k: Mapping[str, Any], X: Inputs, grad: bool
                   ) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
        return base_terms(k, np.log(X.N), np.log(X.D), grad)
