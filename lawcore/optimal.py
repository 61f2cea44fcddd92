"""Compute-optimal training precision under the cost model of Kumar et al. 2024.

Cost model (arXiv 2411.04330; reference/laws.md): training compute
C = (6/16)·N·D·P — bit-operations, reducing to the usual 6·N·D at P = 16 — with
P the training precision of weights, activations and KV cache tied together.
Loss without post-training quantization, L = A·(N·g(P))^(−α) + B·D^(−β) + E with
g(P) = N_eff/N (quantized-training form).

- `compute_optimal`: jointly optimal N, D, P for a budget. For fixed P, D = 16C/(6NP)
  and minimising over N gives N*(P) = (α·A·g^(−α) / (β·B·(6P/(16C))^β))^(1/(α+β)).
  The precision is then found numerically. Algebra shows L − E ∝ (P/g(P))^(αβ/(α+β)), so
  the optimal precision does not depend on the budget; with the kumar2024 offsets it is
  7.0 bits (the paper's "7–8 bits").
- `optimal_precision_fixed_n`: N fixed (a model family), compute equal to training D tokens
  at `reference_bits`: at P bits the budget buys D·reference_bits/P tokens. The optimal P
  grows with D (roughly as log(D/N), as the paper reports).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from precsim.lawcore.base import Law, as_output
from precsim.lawcore.errors import LawInputError
from precsim.lawcore.inputs import bits, positive_finite
from precsim.lawcore.registry import get_law

COST_BITS_DIVISOR = 16.0   # C = (6/16)·N·D·P
FLOPS_PER_PARAM_TOKEN = 6.0
DEFAULT_MAX_BITS = 32.0
_GRID_POINTS = 600
_GOLDEN_ITERATIONS = 70
_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class PrecisionOptimum:
    """An optimum: compute (FLOPs), N, D (tokens trained), training precision (bits), loss.

    `at_bound` marks precisions stuck at the search's upper bound `max_bits`;
    `D_reference` is the tokens at reference precision for `optimal_precision_fixed_n`.
    """

    compute_flops: Any
    N: Any
    D: Any
    precision: Any
    loss: Any
    at_bound: Any
    D_reference: Any = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: (v.tolist() if isinstance(v, np.ndarray) else
                   v.item() if isinstance(v, np.generic) else v)
               for k, v in asdict(self).items()}
        if self.D_reference is None:
            del out["D_reference"]
        return out


def training_compute_flops(N: Any, D: Any, precision: Any) -> Any:
    """C = (6/16)·N·D·P (Kumar et al. 2024 cost model; 6·N·D at 16 bits)."""
    return as_output(FLOPS_PER_PARAM_TOKEN / COST_BITS_DIVISOR * positive_finite("N", N)
                     * positive_finite("D", D) * bits("precision", precision))


def _flags(values: np.ndarray) -> Any:
    return bool(values) if np.ndim(values) == 0 else np.asarray(values, dtype=bool)


def _default(law: Law | None) -> Law:
    return get_law() if law is None else law


def _search_bounds(law: Law, max_bits: float) -> tuple[float, float]:
    if not law.models_training_precision:
        raise LawInputError(f"law {law.name!r} ({type(law).__name__}) does not model training "
                            "precision; give a fixed precision or use law 'kumar2024'")
    lo = law.min_training_bits()
    lo = max(lo, 0.0) + 1e-6 * max(1.0, abs(lo))
    if not (math.isfinite(max_bits) and max_bits > lo):
        raise LawInputError(f"max_bits must be a finite number above the law's lowest "
                            f"training precision {lo:.4g}; got {max_bits}")
    return lo, float(max_bits)


def _argmin_bits(f: Callable[[np.ndarray], np.ndarray], lo: float, hi: float,
                 shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised minimiser of f(P) over P in (lo, hi] for every element of `shape`.

    f takes P of shape shape + (m,) and returns the same shape. Grid search, then golden
    section inside the bracket around the best grid point. Returns (P*, at upper bound).
    """
    grid = np.linspace(lo, hi, _GRID_POINTS)
    values = f(np.broadcast_to(grid, (*shape, _GRID_POINTS)))
    i = np.argmin(values, axis=-1)
    a = grid[np.maximum(i - 1, 0)]
    b = grid[np.minimum(i + 1, _GRID_POINTS - 1)]
    for _ in range(_GOLDEN_ITERATIONS):
        c = b - _INV_PHI * (b - a)
        d = a + _INV_PHI * (b - a)
        pair = f(np.stack([c, d], axis=-1))
        left = pair[..., 0] < pair[..., 1]
        a, b = np.where(left, a, c), np.where(left, d, b)
    return (a + b) / 2.0, i == _GRID_POINTS - 1


def _optimal_n(law: Law, precision: np.ndarray, compute_flops: np.ndarray) -> np.ndarray:
    """N*(P) = (α·A·g^(−α) / (β·B·(6P/(16C))^β))^(1/(α+β)) for budget C at P bits."""
    c = law.constants
    alpha, beta = c["alpha"], c["beta"]
    if alpha <= 0 or beta <= 0:
        raise LawInputError("compute-optimal allocation needs alpha > 0 and beta > 0; got "
                            f"alpha={alpha}, beta={beta}")
    log_g = np.log(np.asarray(law.training_factor(precision, precision, precision)))
    cost = FLOPS_PER_PARAM_TOKEN * precision / (COST_BITS_DIVISOR * compute_flops)
    log_n = (math.log(alpha * c["A"]) - alpha * log_g - math.log(beta * c["B"])
             - beta * np.log(cost)) / (alpha + beta)
    return np.exp(log_n)


def compute_optimal(compute_flops: Any, law: Law | None = None, precision: Any = None,
                    max_bits: float = DEFAULT_MAX_BITS) -> PrecisionOptimum:
    """Loss-minimising N, D and training precision for budget(s) C = (6/16)·N·D·P.

    `precision` fixes P (then only N, D are optimised); None optimises it over
    (law.min_training_bits(), max_bits]. Vectorised over `compute_flops`. Default law:
    kumar2024. No post-training quantization.
    """
    law = _default(law)
    budget = positive_finite("compute_flops", compute_flops, " of training FLOPs")
    if precision is None:
        lo, hi = _search_bounds(law, max_bits)
        irreducible = law.constants["E"]  # minimise L − E: same argmin, better resolved

        def loss_at(P: np.ndarray) -> np.ndarray:
            C = budget[..., None]
            n = _optimal_n(law, P, C)
            d = COST_BITS_DIVISOR * C / (FLOPS_PER_PARAM_TOKEN * n * P)
            return np.asarray(law.predict(n, d, P, P, P)) - irreducible

        p_opt, at_bound = _argmin_bits(loss_at, lo, hi, budget.shape)
    else:
        p_opt = np.broadcast_to(bits("precision", precision), budget.shape).astype(float)
        at_bound = np.zeros(budget.shape, dtype=bool)
    n = _optimal_n(law, p_opt, budget)
    d = COST_BITS_DIVISOR * budget / (FLOPS_PER_PARAM_TOKEN * n * p_opt)
    loss = law.predict(n, d, p_opt, p_opt, p_opt)
    return PrecisionOptimum(compute_flops=as_output(budget), N=as_output(n), D=as_output(d),
                            precision=as_output(p_opt), loss=as_output(loss),
                            at_bound=_flags(at_bound))


def optimal_precision_fixed_n(N: Any, D: Any, law: Law | None = None,
                              reference_bits: float = COST_BITS_DIVISOR,
                              max_bits: float = DEFAULT_MAX_BITS) -> PrecisionOptimum:
    """Loss-minimising training precision for a fixed model size N.

    The budget is that of training D tokens at `reference_bits`, C = (6/16)·N·D·reference_bits;
    at P bits it trains D·reference_bits/P tokens. Returns that token count as D (and the
    given D as D_reference). Vectorised (N and D broadcast). Default law: kumar2024.
    """
    law = _default(law)
    n = positive_finite("N", N, " of parameters")
    d_ref = positive_finite("D", D, " of training tokens")
    ref = float(bits("reference_bits", reference_bits))
    n, d_ref = np.broadcast_arrays(n, d_ref)
    lo, hi = _search_bounds(law, max_bits)

    irreducible = law.constants["E"]  # minimise L − E: same argmin, better resolved

    def loss_at(P: np.ndarray) -> np.ndarray:
        return np.asarray(law.predict(n[..., None], d_ref[..., None] * ref / P, P, P, P)
                          ) - irreducible

    p_opt, at_bound = _argmin_bits(loss_at, lo, hi, n.shape)
    d = d_ref * ref / p_opt
    return PrecisionOptimum(
        compute_flops=as_output(FLOPS_PER_PARAM_TOKEN / COST_BITS_DIVISOR * n * d_ref * ref),
        N=as_output(n), D=as_output(d), precision=as_output(p_opt),
        loss=as_output(law.predict(n, d, p_opt, p_opt, p_opt)),
        at_bound=_flags(at_bound),
        D_reference=as_output(d_ref))
