"""Fitting a law to training runs, following Hoffmann et al. 2022 (approach 3) and the
Epoch AI replication (Besiroglu et al. 2024, arXiv 2404.10102):

- objective: Huber loss (δ = 1e-3) of the log residuals log L_pred − log L_obs, with the
  law in log-sum-exp form L = exp(logsumexp_k t_k) (t_k: the law's log-terms), divided by
  δ and the number of runs so that L-BFGS-B's tolerances are on a unit scale;
- analytic gradient: d log L / dθ = Σ_k softmax_k(t) · d t_k / dθ;
- scipy.optimize L-BFGS-B from a grid of initial values: the Epoch grid over the Chinchilla
  coordinates (α, β ∈ {0, 0.5, …, 2}; log E ∈ {−1, 0, 1}; log A, log B ∈ {0, 5, …, 25}),
  evaluated vectorised; from its best points each further group of coordinates (PTQ,
  per-part training, robustness) is grid-searched in turn; L-BFGS-B screens those starts
  and the constructor's constants with a loose tolerance, then polishes the best one to
  convergence (see Objective for the centring and diagonal scaling it runs on);
- bootstrap confidence intervals: runs resampled with replacement (seeded), refitted from
  the optimum, percentile intervals;
- RMSE and R² of the loss, and `heldout_check` (fit on the smaller N, predict the largest).
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from precsim.lawcore.coords import Coord, locate_rows
from precsim.lawcore.errors import LawInputError
from precsim.lawcore.inputs import Inputs, runs_to_inputs

if TYPE_CHECKING:  # annotations only: base imports this module (Law.fit), not the reverse
    from precsim.lawcore.base import Law

GRID_TOP_STARTS = 4          # best base-grid points refined and handed to L-BFGS-B
GRID_CHUNK_ELEMENTS = 4_000_000  # terms × grid points × runs evaluated per chunk
GRADIENT_TOLERANCE = 1e-5    # projected-gradient norm accepted after a line-search stop
FTOL = 1e-13                 # L-BFGS-B relative-reduction tolerance of the final fit
SCREEN_FTOL = 1e-9           # looser tolerance while screening the start points
SCREEN_MAX_ITER = 300
POLISH_RUNS = 3              # L-BFGS-B runs from the best screened point until converged


class Objective:
    """Huber loss of log residuals over the free coordinates θ of a law, with its gradient.

    L-BFGS-B runs on x = S·(θ centred): scale coordinates are centred on the data
    (log A − α·mean(log N), …, from law.CENTRING) and every variable is divided by the
    root-mean-square sensitivity of log L to it at the start point (diagonal Gauss-Newton
    scaling). Both keep box bounds box bounds and cut the condition number ~1000-fold.
    """

    def __init__(self, law: Law, X: Inputs, loss: np.ndarray, free: Sequence[str]) -> None:
        self.law = law
        self.X = X
        self.log_loss = np.log(loss)
        self.free = list(free)
        self.index = {name: i for i, name in enumerate(self.free)}
        self.k0 = law._to_coords(law.params)
        self.delta = law.huber_delta
        self.tie = law.tie_alpha_beta
        ptq = np.isfinite(X.P_post)
        means = {"N": float(np.mean(np.log(X.N))), "D": float(np.mean(np.log(X.D))),
                 "P_post": float(np.mean(X.P_post[ptq])) if ptq.any() else 0.0}
        # (scale index, exponent index or None, exponent's fixed value, shift per unit)
        self.shifts = []
        for scale, rules in law.CENTRING.items():
            if scale in self.index:
                for exp, sign, var in rules:
                    exp = "alpha" if (self.tie and exp == "beta") else exp
                    self.shifts.append((self.index[scale], self.index.get(exp), self.k0[exp],
                                        sign * means[var]))
        self.scale = np.ones(len(self.free))

    # ----- θ: the law's coordinates --------------------------------------------------------
    def coords(self, theta: np.ndarray) -> dict[str, Any]:
        """All coordinates: fixed ones at the constructor values, free ones from theta.

        theta may be a matrix (grid points × free coordinates): values become columns.
        """
        k: dict[str, Any] = dict(self.k0)
        theta = np.asarray(theta, dtype=float)
        for name, i in self.index.items():
            k[name] = theta[..., i] if theta.ndim == 1 else theta[:, i:i + 1]
        if self.tie:
            k["beta"] = k["alpha"]
        return k

    def constants(self, theta: np.ndarray) -> dict[str, float]:
        """Constants at θ; those not fitted keep their constructor values exactly."""
        fitted = self.law._from_coords({n: float(v) for n, v in self.coords(theta).items()})
        moved = {c for c, coord in self.law.COORD_OF.items() if coord in self.index}
        if self.tie:
            moved.add("beta")
        return {c: fitted[c] if c in moved else v for c, v in self.law.params.items()}

    def log_prediction(self, theta: np.ndarray) -> np.ndarray:
        terms, _ = self.law._log_terms(self.coords(theta), self.X, grad=False)
        return _logsumexp(np.array(np.broadcast_arrays(*terms)))

    def _huber(self, residual: np.ndarray) -> np.ndarray:
        a = np.abs(residual)
        return np.where(a <= self.delta, 0.5 * residual ** 2, self.delta * (a - 0.5 * self.delta))

    def grid_values(self, thetas: np.ndarray) -> np.ndarray:
        """Objective at each row of `thetas` (vectorised, in chunks; inf where undefined)."""
        n = self.X.N.size
        chunk = max(1, GRID_CHUNK_ELEMENTS // (4 * n))
        out = np.empty(len(thetas))
        with np.errstate(all="ignore"):
            for start in range(0, len(thetas), chunk):
                block = thetas[start:start + chunk]
                log_pred = self.log_prediction(block)
                value = self._huber(log_pred - self.log_loss).mean(axis=-1) / self.delta
                out[start:start + chunk] = np.where(np.isfinite(value), value, np.inf)
        return out

    def residual_and_jacobian(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """r = log L_pred − log L_obs per run and J = d log L_pred / dθ (runs × free coords),
        with d log L / dθ = Σ_k softmax_k(t) · d t_k / dθ."""
        terms, grads = self.law._log_terms(self.coords(theta), self.X, grad=True)
        T = np.array(np.broadcast_arrays(*terms))
        with np.errstate(all="ignore"):
            m = T.max(axis=0)
            e = np.exp(T - m)
            s = e.sum(axis=0)
            residual = m + np.log(s) - self.log_loss
        J = np.zeros((residual.size, len(self.free)))
        for share, term_grads in zip(e / s, grads):
            for name, d in term_grads.items():
                i = self.index.get("alpha" if (self.tie and name == "beta") else name)
                if i is not None:
                    J[:, i] += share * d
        return residual, J

    def value_and_grad(self, theta: np.ndarray, weights: np.ndarray | None = None
                       ) -> tuple[float, np.ndarray]:
        """Weighted mean Huber loss / δ and its analytic gradient by θ."""
        residual, J = self.residual_and_jacobian(theta)
        w = np.ones_like(residual) if weights is None else weights
        norm = 1.0 / (w.sum() * self.delta)
        with np.errstate(all="ignore"):
            value = float(np.sum(w * self._huber(residual)) * norm)
        if not np.isfinite(value):
            return np.inf, np.zeros(len(self.free))
        # einsum, not J.T @ v: a BLAS gemv here goes multi-threaded and stalls on busy CPUs
        return value, np.einsum("ni,n->i", J, np.clip(residual, -self.delta, self.delta) * w * norm)

    # ----- x: the optimiser's variables ----------------------------------------------------
    def _centring_jacobian(self, J: np.ndarray) -> np.ndarray:
        """d/dφ from d/dθ (θ_scale = φ_scale + c·φ_exponent): columns of exponents gain c·scale."""
        out = J.copy()
        for scale, i, _, c in self.shifts:
            if i is not None:
                out[..., i] += c * J[..., scale]
        return out

    def set_scale(self, theta: np.ndarray) -> None:
        """Diagonal Gauss-Newton scaling: RMS over runs of d log L / dφ_i (floored)."""
        _, J = self.residual_and_jacobian(theta)
        rms = np.sqrt(np.mean(self._centring_jacobian(J) ** 2, axis=0))
        self.scale = np.where(np.isfinite(rms), np.maximum(rms, 2e-2), 1.0)

    def to_x(self, theta: np.ndarray) -> np.ndarray:
        phi = np.array(theta, dtype=float)
        for scale, i, fixed, c in self.shifts:
            phi[scale] -= c * (theta[i] if i is not None else fixed)
        return phi * self.scale

    def to_theta(self, x: np.ndarray) -> np.ndarray:
        phi = np.asarray(x, dtype=float) / self.scale
        theta = phi.copy()
        for scale, i, fixed, c in self.shifts:
            theta[scale] += c * (phi[i] if i is not None else fixed)
        return theta

    def x_bounds(self, bounds: Sequence[tuple[float, float]]) -> list[tuple[float | None, ...]]:
        """Box bounds on x; centred scale coordinates are unbounded."""
        shifted = {scale for scale, *_ in self.shifts}
        return [(None, None) if i in shifted else (lo * s, hi * s)
                for i, ((lo, hi), s) in enumerate(zip(bounds, self.scale))]

    def x_value_and_grad(self, x: np.ndarray, weights: np.ndarray | None = None
                         ) -> tuple[float, np.ndarray]:
        value, grad = self.value_and_grad(self.to_theta(x), weights)
        return value, self._centring_jacobian(grad) / self.scale


def _logsumexp(T: np.ndarray) -> np.ndarray:
    m = T.max(axis=0)
    return m + np.log(np.exp(T - m).sum(axis=0))


def free_constants(law: Law, X: Inputs) -> list[str]:
    """Names of the constants to fit, in the law's order (β follows α when tied)."""
    if law.fit_constants == "auto":
        names = set(law._auto_free(X))
    else:
        names = set(law.fit_constants)
        unknown = sorted(names - set(law.CONSTANTS))
        if unknown:
            raise LawInputError(f"fit_constants: unknown constant(s) {', '.join(unknown)} for "
                                f"{type(law).__name__}; known: {', '.join(law.CONSTANTS)}")
        for group in law.COUPLED:
            if 0 < len(names & set(group)) < len(group):
                raise LawInputError(f"fit_constants: {' and '.join(group)} are fitted together; "
                                    f"list both or neither")
    if law.tie_alpha_beta and "beta" in names:
        names = (names - {"beta"}) | {"alpha"}
    if not names:
        raise LawInputError("fit_constants: nothing to fit")
    return [c for c in law.CONSTANTS if c in names]


def _check_identifiable(X: Inputs, free: Sequence[str], beta_tied: bool) -> None:
    checks = (("N", X.N, ("A", "alpha"), "model sizes"),
              ("D", X.D, ("B",) + (() if beta_tied else ("beta",)), "token counts"))
    for column, values, names, what in checks:
        needed = [n for n in names if n in free]
        if needed and np.unique(values).size < 2:
            raise LawInputError(f"runs: column {column!r} has the single value "
                                f"{values.flat[0]:g}; fitting {' and '.join(needed)} needs at "
                                f"least two distinct {what}")


def _product(coords: Sequence[Coord]) -> np.ndarray:
    return np.array(list(itertools.product(*(c.grid for c in coords))), dtype=float)


def _starts(obj: Objective, specs: dict[str, Coord], theta0: np.ndarray) -> list[np.ndarray]:
    """Start points: Epoch grid on the base coordinates, then each other group in turn."""
    free_specs = [specs[n] for n in obj.free]
    base = [i for i, c in enumerate(free_specs) if c.group == "base"]
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(free_specs):
        if c.group != "base":
            groups.setdefault(c.group, []).append(i)
    starts = [theta0]
    if base:
        values = _product([free_specs[i] for i in base])
        grid = np.repeat(theta0[None, :], len(values), axis=0)
        grid[:, base] = values
        scores = obj.grid_values(grid)
        order = [i for i in np.argsort(scores, kind="stable") if np.isfinite(scores[i])]
        candidates = [grid[i] for i in order[:GRID_TOP_STARTS]]
    else:
        candidates = [theta0.copy()]
    for theta in candidates:
        theta = theta.copy()
        for idx in groups.values():
            values = _product([free_specs[i] for i in idx])
            trial = np.repeat(theta[None, :], len(values) + 1, axis=0)
            trial[1:, idx] = values  # row 0 keeps the current values
            scores = obj.grid_values(trial)
            theta = trial[int(np.argmin(scores))]
        starts.append(theta)
    unique: list[np.ndarray] = []
    for s in starts:
        if not any(np.allclose(s, u) for u in unique):
            unique.append(s)
    return unique


def _minimise(obj: Objective, theta: np.ndarray, bounds: list[tuple[float, float]],
              max_iter: int, ftol: float = FTOL, weights: np.ndarray | None = None) -> Any:
    """L-BFGS-B from θ (in the optimiser's variables x); adds result.theta, .converged."""
    obj.set_scale(theta)
    x_bounds = obj.x_bounds(bounds)
    result = minimize(obj.x_value_and_grad, obj.to_x(theta), args=(weights,), jac=True,
                      method="L-BFGS-B", bounds=x_bounds,
                      options={"maxiter": max_iter, "maxfun": 4 * max_iter,
                               "ftol": ftol, "gtol": 1e-9})
    result.theta = obj.to_theta(result.x)
    result.converged = _converged(obj, result, x_bounds, weights)
    return result


def _converged(obj: Objective, result: Any, bounds: list[tuple[float | None, ...]],
               weights: np.ndarray | None) -> bool:
    """L-BFGS-B success, or a line-search stop at a point whose projected gradient is ~0."""
    if not np.isfinite(result.fun):
        return False
    if result.success:
        return True
    if result.status != 2:  # 1 = iteration/evaluation limit
        return False
    _, grad = obj.x_value_and_grad(result.x, weights)
    lo = np.array([-np.inf if b[0] is None else b[0] for b in bounds])
    hi = np.array([np.inf if b[1] is None else b[1] for b in bounds])
    projected = np.clip(result.x - grad, lo, hi) - result.x
    return bool(np.max(np.abs(projected)) <= GRADIENT_TOLERANCE)


@dataclass(frozen=True)
class FitResult:
    """What a fit found; `Law.fit` stores each field as the attribute `<field>_`.
    A fit that did not converge has `converged` False and `constants` None."""

    constants: dict[str, float] | None
    ci: dict[str, tuple[float, float]]
    ci_level: float
    rmse: float
    r2: float
    converged: bool
    n_runs: int
    fitted_constants: list[str]
    objective: float
    n_bootstrap_ok: int
    fit_message: str
    bootstrap_samples: np.ndarray | None = None  # converged refits x fitted_constants


def fit_law(law: Law, runs: pd.DataFrame, row_name: str = "row") -> FitResult:
    """Fit `law`'s free constants to `runs` (the law is not changed). Raises
    LawInputError for unusable runs; a fit that does not converge comes back with
    `converged` False (Law.fit raises LawFitError for it)."""
    X, loss, labels = runs_to_inputs(runs, row_name)
    free = free_constants(law, X)
    law._check_domain(X, law.params, locate_rows(labels, row_name), skip=free)
    _check_identifiable(X, free, law.tie_alpha_beta)
    coords = [law.COORD_OF[c] for c in free if not (c == "beta" and law.tie_alpha_beta)]
    if len(loss) < len(coords):
        raise LawInputError(f"runs: {len(loss)} run(s) but {len(coords)} free constants "
                            f"({', '.join(free)}); need at least as many runs as constants")
    obj = Objective(law, X, loss, coords)
    specs = law._coord_specs(X)
    bounds = [specs[c].bounds for c in coords]
    lo, hi = np.array(bounds).T
    theta0 = np.clip([obj.k0[c] for c in coords], lo, hi)

    # Screen every start with a loose tolerance, then polish the best one to convergence
    # (restarting with fresh scaling if it stalls).
    results = [_minimise(obj, s, bounds, min(law.max_iter, SCREEN_MAX_ITER), SCREEN_FTOL)
               for s in _starts(obj, specs, theta0)]
    best = min(results, key=lambda r: r.fun if np.isfinite(r.fun) else np.inf)
    for _ in range(POLISH_RUNS):
        if not np.isfinite(best.fun):
            break
        best = _minimise(obj, best.theta, bounds, law.max_iter)
        if best.converged:
            break
    if not best.converged:
        return FitResult(None, {}, law.ci_level, float("nan"), float("nan"), False,
                         int(len(loss)), free, float(best.fun), 0,
                         f"L-BFGS-B did not converge after {best.nit} iterations "
                         f"({best.message}); objective {best.fun:.4g}")

    constants = obj.constants(best.theta)
    prediction = np.exp(obj.log_prediction(best.theta))
    ss_res = float(np.sum((prediction - loss) ** 2))
    ss_tot = float(np.sum((loss - loss.mean()) ** 2))

    rng = np.random.default_rng(law.seed)
    samples = []
    for _ in range(law.n_bootstrap):
        weights = np.bincount(rng.integers(0, len(loss), len(loss)),
                              minlength=len(loss)).astype(float)
        result = _minimise(obj, best.theta, bounds, law.max_iter, weights=weights)
        if result.converged:
            fitted = obj.constants(result.theta)
            samples.append([fitted[c] for c in free])
    tail = 50.0 * (1.0 - law.ci_level)
    if samples:
        lower, upper = np.percentile(np.array(samples), [tail, 100.0 - tail], axis=0)
    else:
        lower = upper = np.full(len(free), np.nan)

    return FitResult(
        constants, {c: (float(a), float(b)) for c, a, b in zip(free, lower, upper)},
        law.ci_level, float(np.sqrt(ss_res / len(loss))),
        1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"), True, int(len(loss)), free,
        float(best.fun), len(samples),
        f"converged (best of {len(results)} start(s)); {len(samples)}/"
        f"{law.n_bootstrap} bootstrap refits converged",
        np.array(samples).reshape(-1, len(free)))


def heldout_check(law: Law, runs: pd.DataFrame, row_name: str = "row") -> dict[str, Any]:
    """Fit a copy of `law` (no bootstrap) on the runs with N below the largest N and predict
    the runs at the largest N. Returns heldout_N, n_train, n_heldout, rmse,
    mean_abs_rel_error, max_abs_rel_error, the fitted copy ('law') and a per-run 'table'."""
    X, loss, _ = runs_to_inputs(runs, row_name)
    heldout_n = float(X.N.max())
    test = X.N == heldout_n
    if test.all():
        raise LawInputError(f"heldout_check: every run has N = {heldout_n:g}; need runs at "
                            "two or more model sizes")
    fitted = law.clone(n_bootstrap=0).fit(runs.loc[~test], row_name=row_name)
    T = X.subset(test)
    predicted = np.asarray(fitted.predict(T.N, T.D, T.P_w, T.P_a, T.P_kv, T.P_post))
    rel = predicted / loss[test] - 1.0
    table = pd.DataFrame({"N": T.N, "D": T.D, "P_w": T.P_w, "P_a": T.P_a, "P_kv": T.P_kv,
                          "P_post": T.P_post, "loss": loss[test], "predicted": predicted,
                          "rel_error": rel}, index=runs.index[test])
    return {"heldout_N": heldout_n, "n_train": int((~test).sum()), "n_heldout": int(test.sum()),
            "rmse": float(np.sqrt(np.mean((predicted - loss[test]) ** 2))),
            "mean_abs_rel_error": float(np.mean(np.abs(rel))),
            "max_abs_rel_error": float(np.max(np.abs(rel))), "law": fitted, "table": table}
