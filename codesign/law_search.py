"""The law half of a plan: the smallest D reaching the target loss per (format bits, N).

Hardware-free: it depends on the law, the target, the training and serving formats'
law bits (P_w, P_a, P_kv, P_post; `codesign.problem`) and the N x D search grids, never on
a profile, so the plans of one study that differ only in hardware (deployments, the law
ensemble's shared hardware, the lifetime sweep, what-if variants) can share it
(`LawSolver`). `codesign.planner` joins it with the hardware half.
"""
from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass

import numpy as np

from precsim.codesign.problem import (PlanProblem, law_gamma_post, post_training_bits,
                                      serving_act_kv_bits)

_LOSS_BLOCK = 1 << 18               # loss evaluations per lawcore call (bounds memory)


def _loss(law, N, D, bits: np.ndarray) -> np.ndarray:
    """Loss for combos `bits` (C, 4: P_w, P_a, P_kv, P_post) broadcast against N and D.

    N and D carry the trailing axes; the combo axis leads. Evaluated in blocks of combos
    so that one lawcore call never holds more than _LOSS_BLOCK values.
    """
    N, D = np.asarray(N, float), np.asarray(D, float)
    tail = np.broadcast_shapes(N.shape[1:] if N.ndim else (), D.shape[1:] if D.ndim else ())
    per = max(1, int(np.prod(tail)) if tail else 1)
    step = max(1, _LOSS_BLOCK // per)
    out = []
    for start in range(0, len(bits), step):
        b = bits[start:start + step]
        expand = (slice(None),) + (None,) * len(tail)
        n = N[start:start + step] if N.ndim and N.shape[0] == len(bits) else N
        d = D[start:start + step] if D.ndim and D.shape[0] == len(bits) else D
        out.append(np.asarray(law.predict(n, d, b[:, 0][expand], b[:, 1][expand],
                                          b[:, 2][expand], b[:, 3][expand]), float))
    return np.concatenate(out, axis=0) if out else np.empty((0, *tail))


@dataclass(frozen=True)
class DSolution:
    """Smallest D reaching the target per (combo, N); the grid losses for the frontier."""

    D_min: np.ndarray          # (C, n), nan where unreachable
    loss_at: np.ndarray        # (C, n)
    at_edge: np.ndarray        # (C, n) D_min is the grid's lowest D
    grid_loss: np.ndarray      # (C, n, m)


def smallest_D(law, target: float, bits: np.ndarray, N: np.ndarray, D_grid: np.ndarray,
               steps: int) -> DSolution:
    """First crossing of loss <= target along log D, refined by `steps` bisections.

    With the grid and step count fixed, the result is the smallest point of a fixed
    dyadic refinement of the grid where the loss is under the target, so it never grows
    when the target is raised.
    """
    grid = _loss(law, N[None, :, None], D_grid[None, None, :], bits)
    ok = grid <= target
    reach = ok.any(axis=2)
    j = np.argmax(ok, axis=2)
    log_d = np.log(D_grid)
    hi = log_d[j]
    lo = log_d[np.maximum(j - 1, 0)]
    at_edge = reach & (j == 0)
    need = reach & (j > 0)
    n_full = np.broadcast_to(N[None, :], hi.shape)
    idx = np.nonzero(need)
    if idx[0].size:
        lo_v, hi_v = lo[idx], hi[idx]
        sub_bits, n_v = bits[idx[0]], n_full[idx]
        for _ in range(steps):
            mid = 0.5 * (lo_v + hi_v)
            good = _loss(law, n_v, np.exp(mid), sub_bits) <= target
            hi_v = np.where(good, mid, hi_v)
            lo_v = np.where(good, lo_v, mid)
        hi = hi.copy()
        hi[idx] = hi_v
    D_min = np.where(reach, np.exp(hi), np.nan)
    loss_at = np.full(D_min.shape, np.nan)
    if reach.any():
        r = np.nonzero(reach)
        loss_at[r] = _loss(law, n_full[r], D_min[r], bits[r[0]])
    return DSolution(D_min, loss_at, at_edge, grid)


def combos(problem: PlanProblem) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The (training, serving) format pairs of a plan (indices) and the bits the law sees
    for each: (P_w, P_a, P_kv, P_post)."""
    pairs, bits = [], []
    gamma = law_gamma_post(problem.law)
    for ti, t in enumerate(problem.train_formats):
        for si, s in enumerate(problem.serve_axis):
            pairs.append((ti, si))
            p_post = post_training_bits(s, gamma, problem.model_options)
            bits.append((t.weight_bits, *serving_act_kv_bits(t, s), p_post))
    return pairs, np.array(bits, dtype=float)


@dataclass(frozen=True)
class LawSolution:
    """The hardware-free half of a plan: the (training, serving) format pairs, their law
    bits (P_w, P_a, P_kv, P_post) and the smallest D per distinct bits (`sol`, rows
    `uniq`; pair c reads row `inverse[c]`)."""

    pairs: list
    bits: np.ndarray
    uniq: np.ndarray
    inverse: np.ndarray
    sol: DSolution


def solve_law(problem: PlanProblem) -> LawSolution:
    """The law half of `plan`: combos that share (P_w, P_a, P_kv, P_post) share their loss
    and are solved once; the tied precisions without PTQ (the paper's setting) are always
    solved."""
    pairs, bits = combos(problem)
    tied = np.array([(t.weight_bits,) * 3 + (np.inf,) for t in problem.train_formats
                     if t.tied]).reshape(-1, 4)
    uniq, inverse = np.unique(np.vstack([bits, tied]), axis=0, return_inverse=True)
    sol = smallest_D(problem.law, problem.target_loss, uniq,
                     np.asarray(problem.N_grid, float), np.asarray(problem.D_grid, float),
                     problem.bisection_steps)
    return LawSolution(pairs, bits, uniq, inverse.reshape(-1)[:len(bits)], sol)


class LawSolver:
    """`solve_law` for the many plans of one report: a question asked again (a law of
    the same class and constants, the same target, format bits, grids and steps: the
    deployments of a study share them, the lifetime sweep and the what-ifs re-ask their
    deployment's) is answered from the first solution. It lives as long as the caller
    keeps it (one report); nothing is kept between commands. `store`: where the solutions
    are kept (default a dict; the explorer passes a bounded one)."""

    def __init__(self, store: MutableMapping | None = None) -> None:
        self._solved: MutableMapping[tuple, LawSolution] = {} if store is None else store

    def __call__(self, problem: PlanProblem) -> LawSolution:
        law = problem.law
        key = (type(law), tuple(sorted(law.constants.items())), problem.target_loss,
               problem.bisection_steps, len(problem.serve_axis), combos(problem)[1].tobytes(),
               np.asarray(problem.N_grid, float).tobytes(),
               np.asarray(problem.D_grid, float).tobytes(),
               tuple(t.tied for t in problem.train_formats))
        if key not in self._solved:
            self._solved[key] = solve_law(problem)
        return self._solved[key]
