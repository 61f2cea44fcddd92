"""What every law shares: constants and presets, predict, fitted state, parameters, JSON.

A law is a sum of positive terms, each written as a log-term t_k so that
L = Σ_k exp(t_k) = exp(logsumexp_k t_k) — the log-sum-exp parametrisation that the
Epoch AI replication (Besiroglu et al. 2024, arXiv 2404.10102) uses for fitting.
Terms: params_term A·N^(−α) (or A·N_eff^(−α)), data_term B·D^(−β), irreducible E and,
for laws with post-training quantization, ptq_degradation δ_PTQ.

Constants live in the constructor (scikit-learn style); `fit(runs)` sets the fitted
attributes with a trailing underscore and from then on `predict` uses `constants_`.
"""
from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from precsim.lawcore.coords import (BASE_CONSTANTS, BASE_COORDS, Coord, Locate, as_output,
                                    first_bad, locate_index)
from precsim.lawcore.domain import PRESET_DOMAINS, Domain, validity
from precsim.lawcore.errors import LawFitError, LawInputError
from precsim.lawcore.inputs import HIGH_PRECISION_BITS, Inputs, make_inputs, positive_finite

JSON_FORMAT = "precsim.lawcore.law/1"
TERM_NAMES = ("params_term", "data_term", "irreducible", "ptq_degradation")

_CLASS_DEFAULT = object()  # marker: "use the class's default preset"
_FIT_ATTRIBUTES = ("constants_", "ci_", "ci_level_", "rmse_", "r2_", "converged_",
                   "n_runs_", "fitted_constants_", "objective_", "n_bootstrap_ok_",
                   "fit_message_")


def base_terms(k: Mapping[str, Any], log_n: np.ndarray, log_d: np.ndarray, grad: bool,
               dlog_n: Mapping[str, np.ndarray] | None = None
               ) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """Log-terms of A·N^(−α), B·D^(−β), E (Hoffmann et al. 2022, Eq. 2) and their gradients.

    `log_n` may be log N_eff; `dlog_n` gives its derivatives by the other coordinates.
    """
    t_params = k["log_A"] - k["alpha"] * log_n
    t_data = k["log_B"] - k["beta"] * log_d
    t_irr = k["log_E"] + np.zeros_like(log_d)
    if not grad:
        return [t_params, t_data, t_irr], []
    g_params: dict[str, Any] = {"log_A": 1.0, "alpha": -log_n}
    for name, d in (dlog_n or {}).items():
        g_params[name] = -k["alpha"] * d
    return [t_params, t_data, t_irr], [g_params, {"log_B": 1.0, "beta": -log_d},
                                       {"log_E": 1.0}]


class Law:
    """Base class. Subclasses set the class attributes and the coordinate/term methods."""

    CONSTANTS: ClassVar[tuple[str, ...]] = BASE_CONSTANTS
    PRESETS: ClassVar[dict[str, dict[str, float]]] = {}
    PRESET_NOTES: ClassVar[dict[str, str]] = {}
    TIED_PRESETS: ClassVar[frozenset[str]] = frozenset()
    DEFAULT_PRESET: ClassVar[str | None] = None
    FINITE_ONLY: ClassVar[frozenset[str]] = frozenset()  # any finite value; others > 0
    COORD_OF: ClassVar[dict[str, str]] = BASE_COORDS
    COUPLED: ClassVar[tuple[tuple[str, ...], ...]] = ()
    # Fit conditioning: scale coordinate -> (exponent coordinate, sign, "N"|"D"|"P_post");
    # the optimiser varies log A − α·mean(log N) instead of log A, etc.
    CENTRING: ClassVar[dict[str, tuple[tuple[str, float, str], ...]]] = {
        "log_A": (("alpha", 1.0, "N"),), "log_B": (("beta", 1.0, "D"),)}
    models_training_precision: ClassVar[bool] = False
    SIZE_DEPENDENT_FACTOR: ClassVar[bool] = False  # N_eff/N depends on N (lawcore.lowbit)
    NEFF_FORM: ClassVar[bool] = True  # precision acts through N_eff (False: lawcore.sun)
    models_ptq: ClassVar[bool] = False
    PTQ_DATA_EXPONENT: ClassVar[str] = ""  # constant name of D's exponent in δ_PTQ

    def __init__(self, preset: Any = _CLASS_DEFAULT, *, tie_alpha_beta: bool | None = None,
                 fit_constants: str | Sequence[str] = "auto", huber_delta: float = 1e-3,
                 n_bootstrap: int = 50, ci_level: float = 0.95, seed: int = 0,
                 max_iter: int = 2000, **constants: float) -> None:
        preset = self.DEFAULT_PRESET if preset is _CLASS_DEFAULT else preset
        if preset is not None and preset not in self.PRESETS:
            raise LawInputError(f"unknown preset {preset!r} for {type(self).__name__}; "
                                f"known: {', '.join(self.PRESETS)}")
        unknown = sorted(set(constants) - set(self.CONSTANTS))
        if unknown:
            raise LawInputError(f"unknown constant(s) {', '.join(unknown)} for "
                                f"{type(self).__name__}; known: {', '.join(self.CONSTANTS)}")
        tie = (preset in self.TIED_PRESETS) if tie_alpha_beta is None else bool(tie_alpha_beta)
        values = dict(self.PRESETS.get(preset, {}))
        values.update(constants)
        if tie:
            if "beta" in constants and "alpha" in constants and \
                    constants["beta"] != constants["alpha"]:
                raise LawInputError(f"alpha and beta are tied (tie_alpha_beta=True) but "
                                    f"alpha={constants['alpha']} and beta={constants['beta']}")
            values["beta"] = constants.get("alpha", constants.get("beta", values.get("alpha")))
            values["alpha"] = values["beta"]
        missing = [c for c in self.CONSTANTS if c not in values]
        if missing:
            raise LawInputError(f"{type(self).__name__}: constant(s) {', '.join(missing)} not "
                                "given and no preset supplies them")
        self.preset = preset
        self.tie_alpha_beta = tie
        self.params = self._checked_constants(values, "constant")
        self.fit_constants = fit_constants if isinstance(fit_constants, str) \
            else tuple(fit_constants)
        if isinstance(self.fit_constants, str) and self.fit_constants != "auto":
            raise LawInputError(f"fit_constants must be 'auto' or a list of constant names; "
                                f"got {fit_constants!r}")
        self.huber_delta = float(huber_delta)
        self.n_bootstrap = int(n_bootstrap)
        self.ci_level = float(ci_level)
        self.seed = int(seed)
        self.max_iter = int(max_iter)
        if not self.huber_delta > 0:
            raise LawInputError(f"huber_delta must be > 0; got {huber_delta}")
        if self.n_bootstrap < 0:
            raise LawInputError(f"n_bootstrap must be >= 0; got {n_bootstrap}")
        if self.seed < 0:
            raise LawInputError(f"seed must be a whole number >= 0; got {seed}")
        if not 0 < self.ci_level < 1:
            raise LawInputError(f"ci_level must be in (0, 1); got {ci_level}")
        if self.max_iter < 1:
            raise LawInputError(f"max_iter must be >= 1; got {max_iter}")

    # ----- constants ---------------------------------------------------------------------
    def _checked_constants(self, values: Mapping[str, Any], what: str) -> dict[str, float]:
        out = {}
        for name in self.CONSTANTS:
            try:
                value = float(values[name])
            except (TypeError, ValueError):
                raise LawInputError(f"{type(self).__name__}: {what} {name} must be a number; "
                                    f"got {values[name]!r}") from None
            ok = math.isfinite(value) and (name in self.FINITE_ONLY or value > 0
                                           or (name in ("alpha", "beta") and value >= 0))
            if not ok:
                need = "finite" if name in self.FINITE_ONLY else "positive and finite"
                raise LawInputError(f"{type(self).__name__}: {what} {name} must be {need}; "
                                    f"got {value}")
            out[name] = value
        return out

    @property
    def name(self) -> str:
        """Preset name (the registry name for the built-in constants); '<preset> (modified)'
        if constructor constants differ from the preset's; 'custom' without a preset."""
        if self.preset is None:
            return "custom"
        preset = self.PRESETS[self.preset]
        same = all(self.params[c] == preset[c] for c in self.CONSTANTS
                   if not (c == "beta" and self.tie_alpha_beta))
        return self.preset if same else f"{self.preset} (modified)"

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "constants_")

    @property
    def constants(self) -> dict[str, float]:
        """The constants `predict` uses: fitted `constants_` if fitted, else the constructor's."""
        if not self.is_fitted:
            return dict(self.params)
        if self.constants_ is None:
            raise LawFitError(f"{type(self).__name__}: the last fit did not converge "
                              f"({self.fit_message_}); it has no fitted constants")
        return dict(self.constants_)

    # ----- subclass hooks ----------------------------------------------------------------
    def _to_coords(self, c: Mapping[str, float]) -> dict[str, float]:
        raise NotImplementedError

    def _from_coords(self, k: Mapping[str, float]) -> dict[str, float]:
        raise NotImplementedError

    def _coord_specs(self, X: Inputs) -> dict[str, Coord]:
        raise NotImplementedError

    def _auto_free(self, X: Inputs) -> list[str]:
        raise NotImplementedError

    def _check_domain(self, X: Inputs, c: Mapping[str, float], locate: Locate,
                      skip: Sequence[str] = ()) -> None:
        """Raise LawInputError for inputs outside the law (skip: constants being fitted)."""
        raise NotImplementedError

    def _log_terms(self, k: Mapping[str, Any], X: Inputs, grad: bool
                   ) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
        """Log-terms t_k (the law is Σ exp t_k) and, if `grad`, d t_k / d coordinate."""
        raise NotImplementedError

    # ----- evaluation --------------------------------------------------------------------
    def _evaluate(self, X: Inputs) -> list[np.ndarray]:
        """The terms exp(t_k), each on the axes of the inputs it depends on (X from
        `make_inputs(..., broadcast=False)`: a precision term is computed per bits, a
        data term per D) — broadcast to the full shape only when summed (`_loss`)."""
        c = self.constants
        self._check_domain(X, c, locate_index(X))
        terms, _ = self._log_terms(self._to_coords(c), X, grad=False)
        return [np.exp(t) for t in terms]

    @staticmethod
    def _loss(X: Inputs, parts: list[np.ndarray]) -> np.ndarray:
        """Σ_k terms, added in order (as a sum over the stacked terms), on `X.shape`."""
        return X.full(functools.reduce(np.add, parts))

    def components(self, N: Any, D: Any, P_w: Any = HIGH_PRECISION_BITS,
                   P_a: Any = HIGH_PRECISION_BITS, P_kv: Any = HIGH_PRECISION_BITS,
                   P_post: Any = None) -> dict[str, Any]:
        """The law's terms (params_term, data_term, irreducible, ptq_degradation) and loss."""
        X = make_inputs(N, D, P_w, P_a, P_kv, P_post, broadcast=False)
        parts = self._evaluate(X)
        out = {name: as_output(X.full(value)) for name, value in zip(TERM_NAMES, parts)}
        out.setdefault("ptq_degradation", as_output(np.zeros(X.shape)))
        out["loss"] = as_output(self._loss(X, parts))
        return out

    def predict(self, N: Any, D: Any, P_w: Any = HIGH_PRECISION_BITS,
                P_a: Any = HIGH_PRECISION_BITS, P_kv: Any = HIGH_PRECISION_BITS,
                P_post: Any = None) -> Any:
        """Loss (nats/token) for N parameters, D tokens, training bits and post-training bits.

        Arrays broadcast; P_post None or inf = no post-training quantization.
        """
        X = make_inputs(N, D, P_w, P_a, P_kv, P_post, broadcast=False)
        return as_output(self._loss(X, self._evaluate(X)))

    def ptq_degradation(self, N: Any, D: Any, P_post: Any, P_w: Any = HIGH_PRECISION_BITS,
                        P_a: Any = HIGH_PRECISION_BITS, P_kv: Any = HIGH_PRECISION_BITS) -> Any:
        """δ_PTQ: loss added by post-training quantization to P_post bits."""
        return self.components(N, D, P_w, P_a, P_kv, P_post)["ptq_degradation"]

    def _log_training_factor(self, k: Mapping[str, Any], X: Inputs, grad: bool
                             ) -> tuple[Any, dict[str, np.ndarray]]:
        """log(N_eff/N) and its gradient; 0 for laws without quantized training."""
        return 0.0, {}

    def training_factor(self, P_w: Any, P_a: Any, P_kv: Any, N: Any = None) -> Any:
        """N_eff / N for the training bits (1 for laws that do not model quantized training).

        N is needed only by laws whose factor depends on size (SIZE_DEPENDENT_FACTOR).
        """
        if not self.NEFF_FORM:
            raise LawInputError(f"law {self.name!r} ({type(self).__name__}) adds a loss term "
                                "for precision instead of an effective parameter count: "
                                "N_eff/N (and the compute-optimal search built on it) does "
                                "not apply")
        if N is None and self.SIZE_DEPENDENT_FACTOR:
            raise LawInputError(f"law {self.name!r}: N_eff/N depends on the model size N "
                                "here; pass N (compute-optimal search at a size-free "
                                "factor does not apply to this law)")
        X = make_inputs(1.0 if N is None else N, 1.0, P_w, P_a, P_kv, broadcast=False)
        c = self.constants
        self._check_domain(X, c, locate_index(X))
        log_factor, _ = self._log_training_factor(self._to_coords(c), X, grad=False)
        return as_output(np.exp(log_factor) * np.ones(X.shape))

    def n_eff(self, N: Any, P_w: Any = HIGH_PRECISION_BITS, P_a: Any = HIGH_PRECISION_BITS,
              P_kv: Any = HIGH_PRECISION_BITS) -> Any:
        """Effective parameter count N·(N_eff/N) for the training bits."""
        n = positive_finite("N", N, " of parameters")
        return as_output(n * np.asarray(self.training_factor(P_w, P_a, P_kv, N=n)))

    def critical_data_size(self, N: Any, P_post: Any, P_w: Any = HIGH_PRECISION_BITS,
                           P_a: Any = HIGH_PRECISION_BITS, P_kv: Any = HIGH_PRECISION_BITS
                           ) -> Any:
        """Tokens D_crit past which more data raises the post-quantization loss.

        With δ_PTQ = K·D^γ_D (K: the PTQ term at D = 1), d/dD [B·D^(−β) + K·D^γ_D] = 0 gives
        D_crit = (β·B / (γ_D·K))^(1/(γ_D + β)). For Kumar et al. 2024 this is Appendix E.1,
        Eq. 13, D_crit = (β·B·N^γ_N·e^(P_post/γ_post) / (γ_D·C_T))^(1/(γ_D+β)), exactly so
        for P_w = P_a = P_kv = inf (N_eff = N); finite training bits use N_eff and the
        robustness factors. inf where δ_PTQ = 0 (no minimum).
        """
        if not self.models_ptq:
            raise LawInputError(f"law {self.name!r} ({type(self).__name__}) has no "
                                "post-training-quantization term, hence no critical data size")
        X = make_inputs(N, 1.0, P_w, P_a, P_kv, P_post, broadcast=False)
        bad = ~np.isfinite(X.P_post)
        if bad.any():
            raise LawInputError(f"P_post must be a finite number of bits for a critical data "
                                f"size; got {first_bad(X.P_post, bad):g}{locate_index(X)(bad)}")
        c = self.constants
        self._check_domain(X, c, locate_index(X))
        terms, _ = self._log_terms(self._to_coords(c), X, grad=False)
        exponent = c[self.PTQ_DATA_EXPONENT]
        with np.errstate(over="ignore"):
            log_d = (math.log(c["beta"] * c["B"] / exponent) - terms[3]) / (exponent + c["beta"])
            return as_output(X.full(np.exp(log_d)))

    # ----- validity domain -----------------------------------------------------------------
    @property
    def domain(self) -> Domain | None:
        """Fitted domain of the preset; None for custom, modified or refitted constants."""
        if self.is_fitted or self.name != self.preset:
            return None
        return PRESET_DOMAINS.get(self.preset)

    def check_domain(self, N: Any, D: Any, P_w: Any = HIGH_PRECISION_BITS,
                     P_a: Any = HIGH_PRECISION_BITS, P_kv: Any = HIGH_PRECISION_BITS,
                     P_post: Any = None) -> list[str]:
        """Flags (sentences) for inputs outside the preset's domain; [] inside (vectorised)."""
        return self.validity(N, D, P_w, P_a, P_kv, P_post)["flags"]

    def validity(self, N: Any, D: Any, P_w: Any = HIGH_PRECISION_BITS,
                 P_a: Any = HIGH_PRECISION_BITS, P_kv: Any = HIGH_PRECISION_BITS,
                 P_post: Any = None) -> dict[str, Any]:
        """JSON-ready {inside, flags, domain} for these inputs (lawcore.domain.validity)."""
        return validity(self.domain, N, D, P_w, P_a, P_kv, P_post, law=self.name)

    def min_training_bits(self) -> float:
        """Infimum of the tied training precision P_w = P_a = P_kv inside the law's domain."""
        return HIGH_PRECISION_BITS

    # ----- estimator API -----------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """Constructor arguments (constants spelled out): `type(law)(**law.get_params())`."""
        return {"preset": self.preset, "tie_alpha_beta": self.tie_alpha_beta,
                "fit_constants": self.fit_constants if isinstance(self.fit_constants, str)
                else list(self.fit_constants),
                "huber_delta": self.huber_delta, "n_bootstrap": self.n_bootstrap,
                "ci_level": self.ci_level, "seed": self.seed, "max_iter": self.max_iter,
                **self.params}

    def clone(self, **overrides: Any) -> Law:
        """An unfitted copy with the same parameters (overrides replace some of them)."""
        return type(self)(**{**self.get_params(), **overrides})

    def fit(self, runs: pd.DataFrame, row_name: str = "row") -> Law:
        """Fit the constants to measured runs (lawcore.fitting.fit_law) and store the
        result as the fitted attributes; returns self. LawFitError if it did not converge."""
        from precsim.lawcore.fitting import fit_law  # lazy: it loads scipy (~1 s)
        result = fit_law(self, runs, row_name=row_name)
        for attr in _FIT_ATTRIBUTES:
            setattr(self, attr, getattr(result, attr.rstrip("_")))
        self.bootstrap_samples_ = result.bootstrap_samples  # not in the JSON (large)
        if not result.converged:
            raise LawFitError(f"{type(self).__name__} fit to {result.n_runs} runs: "
                              f"{result.fit_message}")
        return self

    def fit_summary(self) -> dict[str, Any]:
        """Fitted attributes as a JSON-ready dict (no trailing underscores)."""
        if not self.is_fitted:
            return {}
        return _json_safe({a.rstrip("_"): getattr(self, a) for a in _FIT_ATTRIBUTES})

    def to_json(self, indent: int | None = 2) -> str:
        doc = {"format": JSON_FORMAT, "law": type(self).__name__, "name": self.name,
               "params": self.get_params(),
               "fit": self.fit_summary() if self.is_fitted else None}
        return json.dumps(doc, indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Law:
        """Rebuild a law (with its fitted state) from `to_json` output: a `cls` or one
        of its subclasses (lawcore.registry.law_from_json takes any registered law)."""
        doc = read_law_json(text)
        family = {c.__name__: c for c in _subclasses(cls)}
        if doc.get("law") not in family:
            raise LawInputError(f"JSON describes a {doc.get('law')}, not a {cls.__name__}")
        return family[doc["law"]]._from_doc(doc)

    @classmethod
    def _from_doc(cls, doc: Mapping[str, Any]) -> Law:
        params = doc.get("params")
        if not isinstance(params, dict):
            raise LawInputError("law JSON: 'params' must be an object")
        try:
            law = cls(**params)
        except TypeError as exc:
            raise LawInputError(f"law JSON: bad params: {exc}") from None
        fit = doc.get("fit")
        if fit is not None:
            if not isinstance(fit, dict):
                raise LawInputError("law JSON: 'fit' must be an object or null")
            law._restore_fit(fit)
        return law

    def _restore_fit(self, fit: Mapping[str, Any]) -> None:
        missing = [a.rstrip("_") for a in _FIT_ATTRIBUTES if a.rstrip("_") not in fit]
        if missing:
            raise LawInputError(f"law JSON 'fit' lacks {', '.join(missing)}")
        for attr in _FIT_ATTRIBUTES:
            setattr(self, attr, fit[attr.rstrip("_")])
        if self.constants_ is not None:
            self.constants_ = self._checked_constants(self.constants_, "fitted constant")
        self.ci_ = {k: tuple(_float(x) for x in v) for k, v in (self.ci_ or {}).items()}
        self.rmse_, self.r2_, self.objective_ = (_float(self.rmse_), _float(self.r2_),
                                                 _float(self.objective_))
        self.fitted_constants_ = list(self.fitted_constants_)

    def __repr__(self) -> str:
        fitted = ", fitted" if self.is_fitted else ""
        return f"{type(self).__name__}(preset={self.preset!r}{fitted})"


def read_law_json(text: str) -> dict[str, Any]:
    """The document of `Law.to_json` output, its format checked (LawInputError if not)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LawInputError(f"law JSON is malformed: {exc}") from None
    except RecursionError:
        raise LawInputError("law JSON is nested too deeply") from None
    except ValueError as exc:  # an integer literal over Python's digit limit
        raise LawInputError(f"law JSON has an invalid value: {str(exc)[:80]}") from None
    if not isinstance(doc, dict) or doc.get("format") != JSON_FORMAT:
        raise LawInputError(f"not a PrecSim law JSON: expected \"format\": \"{JSON_FORMAT}\"")
    return doc


def _subclasses(cls: type) -> list[type]:
    """`cls` and every subclass of it, depth first."""
    return [cls] + [s for sub in cls.__subclasses__() for s in _subclasses(sub)]


def _json_safe(value: Any) -> Any:
    """Non-finite floats become None (strict JSON); tuples become lists."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _float(value: Any) -> float:
    """JSON null back to NaN."""
    return float("nan") if value is None else float(value)


def check_high_precision(law: Law, X: Inputs, locate: Locate, ptq: bool) -> None:
    """Scope check for laws without quantized training (and, if not `ptq`, without PTQ)."""
    for name in ("P_w", "P_a", "P_kv"):
        bad = getattr(X, name) < HIGH_PRECISION_BITS
        if bad.any():
            value = first_bad(getattr(X, name), bad)
            raise LawInputError(
                f"{name} = {float(value):g} bits{locate(bad)}: law {law.name!r} "
                f"({type(law).__name__}) does not model quantized training (needs "
                f">= {HIGH_PRECISION_BITS:g} bits); use law 'kumar2024'")
    if not ptq:
        bad = np.isfinite(X.P_post)
        if bad.any():
            raise LawInputError(
                f"P_post given{locate(bad)}: law {law.name!r} ({type(law).__name__}) has no "
                "post-training-quantization term; use law 'kumar2024' or 'ouyang2024'")
