"""lawcore fitting: planted constants recovered, gradients, bootstrap, held-out check, errors."""
import itertools
import json

import numpy as np
import pandas as pd
import pytest

from precsim.lawcore import (ChinchillaLaw, LawFitError, LawInputError, OuyangPTQLaw, PrecisionLaw,
                     heldout_check, law_from_json)
from precsim.lawcore.fitting import Objective, free_constants
from precsim.lawcore.inputs import runs_to_inputs

PLANTED = dict(A=3000.0, alpha=0.45, B=25000.0, E=2.5, C_T=0.08, gamma_D=0.45, gamma_N=0.30,
               gamma_post=0.7, gamma_w=2.3, n_w=0.5, gamma_a=2.5, n_a=1.2, gamma_kv=1.1,
               n_kv=2.0, C_w=0.8, C_a=1.3, C_kv=1.5)


def noisy(law, runs, noise, seed):
    """Loss of `law` with multiplicative log-normal noise."""
    post = runs["P_post"].fillna(np.inf) if "P_post" in runs else None
    bits = {c: runs[c] for c in ("P_w", "P_a", "P_kv") if c in runs}
    loss = law.predict(runs["N"], runs["D"], P_post=post, **bits)
    out = runs.copy()
    out["loss"] = loss * np.exp(np.random.default_rng(seed).normal(0.0, noise, len(runs)))
    return out


def chinchilla_runs(law, noise=1e-3, seed=0, post_bits=()):
    grid = itertools.product(np.geomspace(1e7, 1e10, 6), np.geomspace(1e9, 1e12, 6),
                             (np.nan, *post_bits))
    return noisy(law, pd.DataFrame(list(grid), columns=["N", "D", "P_post"]), noise, seed)


def precision_runs(law, noise, seed=1):
    """The design of Kumar et al. (N 30M–220M, D 1.5B–26B): PTQ sweeps, per-part quantized
    training sweeps, and quantized training followed by PTQ."""
    rows = []
    for N, D in itertools.product((30e6, 60e6, 110e6, 220e6), (1.5e9, 3e9, 6e9, 13e9, 26e9)):
        rows.append((N, D, 16, 16, 16, np.nan))
        rows += [(N, D, 16, 16, 16, p) for p in (3, 4, 5, 6)]
        for part, sweep in ((0, (3, 4, 5, 6, 8)), (1, (4, 5, 6, 8)), (2, (3, 4, 5, 6, 8))):
            for bits, post in [(b, np.nan) for b in sweep] + [(4, 3), (5, 4), (6, 4), (6, 5),
                                                              (8, 5)]:
                train = [16, 16, 16]
                train[part] = bits
                rows.append((N, D, *train, post))
    runs = pd.DataFrame(rows, columns=["N", "D", "P_w", "P_a", "P_kv", "P_post"])
    return noisy(law, runs, noise, seed)


# ----- planted constants ----------------------------------------------------------------------
def test_chinchilla_planted_constants_recovered_with_bootstrap_ci():
    truth = ChinchillaLaw(preset="epoch2024")
    law = ChinchillaLaw(n_bootstrap=20, seed=1)  # starts from the Hoffmann constants
    law.fit(chinchilla_runs(truth).drop(columns="P_post"))
    assert law.converged_ and law.n_runs_ == 36 and law.n_bootstrap_ok_ == 20
    assert law.fitted_constants_ == ["A", "alpha", "B", "beta", "E"]
    for name, value in truth.params.items():
        assert law.constants_[name] == pytest.approx(value, rel=0.05), name
        low, high = law.ci_[name]
        assert low <= law.constants_[name] <= high
    assert law.ci_level_ == 0.95
    assert law.rmse_ < 0.01 and law.r2_ > 0.999
    # predict now uses the fitted constants
    assert law.predict(1e9, 1e11) == pytest.approx(truth.predict(1e9, 1e11), rel=2e-3)


def test_bootstrap_is_seeded():
    runs = chinchilla_runs(ChinchillaLaw(preset="epoch2024"))
    a = ChinchillaLaw(n_bootstrap=3, seed=4).fit(runs).ci_
    b = ChinchillaLaw(n_bootstrap=3, seed=4).fit(runs).ci_
    c = ChinchillaLaw(n_bootstrap=3, seed=5).fit(runs).ci_
    assert a == b and a != c


def test_precision_law_planted_constants_recovered():
    truth = PrecisionLaw(**PLANTED)
    runs = precision_runs(truth, noise=1e-4)
    law = PrecisionLaw(n_bootstrap=0).fit(runs)  # starts from the kumar2024 constants
    assert law.converged_
    assert set(law.fitted_constants_) == set(PrecisionLaw.CONSTANTS) - {"beta"}  # tied
    for name in law.fitted_constants_:
        assert law.constants_[name] == pytest.approx(PLANTED[name], rel=0.05), name
    assert law.constants_["beta"] == law.constants_["alpha"]
    assert law.r2_ > 0.9999


def test_ouyang_planted_constants_recovered():
    truth = OuyangPTQLaw()
    start = dict(A=300.0, alpha=0.3, B=1000.0, beta=0.3, E=2.0, k=0.03, alpha_N=0.3,
                 beta_D=0.4, gamma_P=4.0)
    law = OuyangPTQLaw(n_bootstrap=0, **start).fit(chinchilla_runs(truth, post_bits=(3, 4, 6)))
    for name, value in truth.params.items():
        assert law.constants_[name] == pytest.approx(value, rel=0.06), name


def test_auto_free_constants_follow_the_runs():
    law = PrecisionLaw()
    X, _, _ = runs_to_inputs(chinchilla_runs(ChinchillaLaw(preset="kumar2024")))
    assert free_constants(law, X) == ["A", "alpha", "B", "E"]
    ptq = chinchilla_runs(ChinchillaLaw(preset="kumar2024")).assign(P_post=4.0)
    X, _, _ = runs_to_inputs(ptq)
    assert free_constants(law, X) == ["A", "alpha", "B", "E", "C_T", "gamma_D", "gamma_N"]
    fixed = PrecisionLaw(fit_constants=["E", "gamma_w", "n_w"])
    assert free_constants(fixed, X) == ["E", "gamma_w", "n_w"]


def test_fit_with_fixed_constants_keeps_them():
    runs = chinchilla_runs(ChinchillaLaw(preset="epoch2024"))
    law = ChinchillaLaw(preset="epoch2024", fit_constants=["E"], n_bootstrap=0).fit(runs)
    assert law.fitted_constants_ == ["E"]
    assert law.constants_["A"] == 482.01 and list(law.ci_) == ["E"]
    assert law.constants_["E"] == pytest.approx(1.8172, rel=1e-2)


# ----- gradients ---------------------------------------------------------------------------------
@pytest.mark.parametrize("law, runs", [
    (PrecisionLaw(), lambda: precision_runs(PrecisionLaw(**PLANTED), noise=1e-2)),
    (OuyangPTQLaw(), lambda: chinchilla_runs(OuyangPTQLaw(), 1e-2, post_bits=(3, 5))),
    (ChinchillaLaw(preset="kumar2024"), lambda: chinchilla_runs(ChinchillaLaw(), 1e-2)),
])
def test_analytic_gradient_matches_finite_differences(law, runs):
    data = runs()
    X, loss, _ = runs_to_inputs(data)
    free = [law.COORD_OF[c] for c in free_constants(law, X)]
    obj = Objective(law, X, loss, free)
    theta = np.array([obj.k0[c] for c in free])
    theta = theta + 0.01 * np.random.default_rng(0).standard_normal(len(theta))
    assert_gradient(obj.value_and_grad, theta)
    obj.set_scale(theta)
    x = obj.to_x(theta)
    assert np.allclose(obj.to_theta(x), theta)
    assert_gradient(obj.x_value_and_grad, x)


def assert_gradient(value_and_grad, point, step=1e-6):
    """Analytic gradient vs central differences (the Huber objective is only C¹, and its
    curvature is large, so forward differences would not do)."""
    _, grad = value_and_grad(point)
    numeric = np.array([(value_and_grad(point + step * e)[0]
                         - value_and_grad(point - step * e)[0]) / (2 * step)
                        for e in np.eye(len(point))])
    assert np.allclose(grad, numeric, rtol=1e-4, atol=1e-6 * np.abs(grad).max())


# ----- held-out check, JSON, non-convergence --------------------------------------------------
def test_heldout_check_predicts_the_largest_model():
    runs = chinchilla_runs(ChinchillaLaw(preset="epoch2024"))
    result = heldout_check(ChinchillaLaw(), runs)
    assert result["heldout_N"] == pytest.approx(1e10)
    assert result["n_train"] == 30 and result["n_heldout"] == 6
    assert result["mean_abs_rel_error"] < 5e-3 and result["max_abs_rel_error"] < 1e-2
    assert list(result["table"].columns) == ["N", "D", "P_w", "P_a", "P_kv", "P_post", "loss",
                                             "predicted", "rel_error"]
    assert result["law"].n_bootstrap == 0 and result["law"].is_fitted


def test_heldout_needs_two_sizes():
    runs = chinchilla_runs(ChinchillaLaw()).assign(N=1e9)
    with pytest.raises(LawInputError, match="every run has N = 1e"):
        heldout_check(ChinchillaLaw(), runs)


def test_fitted_law_json_round_trip():
    law = ChinchillaLaw(n_bootstrap=4).fit(chinchilla_runs(ChinchillaLaw(preset="epoch2024")))
    back = law_from_json(law.to_json())
    for attr in ("constants_", "ci_", "rmse_", "r2_", "converged_", "n_runs_",
                 "fitted_constants_", "n_bootstrap_ok_", "ci_level_"):
        assert getattr(back, attr) == getattr(law, attr), attr
    assert back.predict(3e9, 1e11) == law.predict(3e9, 1e11)
    assert json.loads(law.to_json())["fit"]["converged"] is True


def test_non_convergence_leaves_no_constants():
    law = ChinchillaLaw(max_iter=1, n_bootstrap=0)
    with pytest.raises(LawFitError, match="did not converge after 1 iterations"):
        law.fit(chinchilla_runs(ChinchillaLaw(preset="epoch2024")))
    assert law.converged_ is False and law.constants_ is None
    with pytest.raises(LawFitError, match="the last fit did not converge"):
        law.predict(1e9, 1e10)
    back = law_from_json(law.to_json())
    assert back.converged_ is False and back.constants_ is None and np.isnan(back.rmse_)


# ----- bad runs ---------------------------------------------------------------------------------
def good_runs():
    return chinchilla_runs(ChinchillaLaw()).drop(columns="P_post")


def edit(column, row, value):
    runs = good_runs()
    runs[column] = runs[column].astype(object)
    runs.loc[row, column] = value
    return runs


@pytest.mark.parametrize("runs, message", [
    (lambda: [1, 2], "runs must be a pandas DataFrame; got list"),
    (lambda: good_runs().drop(columns="loss"), "runs: missing column(s) loss; need N, D, loss"),
    (lambda: good_runs().iloc[:0], "runs: the table has no rows"),
    (lambda: edit("N", 3, "abc"), "row 3: column 'N' is 'abc'; expected a number"),
    (lambda: edit("N", 4, -5.0), "row 4: column 'N' is -5; expected a positive finite "
                                 "parameter count"),
    (lambda: edit("D", 0, 0.0), "row 0: column 'D' is 0; expected a positive finite token"),
    (lambda: edit("loss", 7, np.nan), "row 7: column 'loss' is nan; expected a positive finite "
                                      "loss"),
    (lambda: edit("loss", 8, -1.0), "row 8: column 'loss' is -1; expected a positive"),
    (lambda: good_runs().assign(P_post=-3.0), "row 0: column 'P_post' is -3; expected a "
                                              "positive number of bits (empty = no PTQ)"),
    (lambda: good_runs().assign(P_w=0.0), "column 'P_w' is 0; expected a positive number"),
    (lambda: good_runs().iloc[[0, 7, 14]], "runs: 3 run(s) but 5 free constants (A, alpha, "
                                           "B, beta, E); need at least as many runs"),
    (lambda: good_runs().assign(N=1e9), "runs: column 'N' has the single value 1e+09; fitting "
                                        "A and alpha needs at least two distinct model sizes"),
    (lambda: good_runs().assign(D=1e10), "column 'D' has the single value 1e+10; fitting B and "
                                         "beta needs"),
    (lambda: good_runs().assign(P_w=8.0), "P_w = 8 bits (row 0): law 'chinchilla' "
                                          "(ChinchillaLaw) does not model quantized training"),
])
def test_bad_runs(runs, message):
    with pytest.raises(LawInputError) as err:
        ChinchillaLaw(n_bootstrap=0).fit(runs())
    assert message in str(err.value)


def test_empty_p_post_cells_mean_no_ptq():
    runs = good_runs().assign(P_post="")
    law = ChinchillaLaw(n_bootstrap=0).fit(runs)
    assert law.converged_


def test_domain_error_names_the_row_when_constants_are_fixed():
    runs = precision_runs(PrecisionLaw(), noise=0.0).head(30).copy()
    runs.loc[5, "P_a"] = 3.0
    with pytest.raises(LawInputError) as err:
        PrecisionLaw(fit_constants=["A", "E"], n_bootstrap=0).fit(runs, row_name="line")
    assert "P_a = 3 bits (line 5) is outside the domain of law 'kumar2024'" in str(err.value)


@pytest.mark.parametrize("fit_constants, message", [
    (["A", "foo"], "fit_constants: unknown constant(s) foo for PrecisionLaw"),
    (["gamma_w"], "fit_constants: gamma_w and n_w are fitted together; list both or neither"),
    ([], "fit_constants: nothing to fit"),
])
def test_fit_constants_errors(fit_constants, message):
    with pytest.raises(LawInputError) as err:
        PrecisionLaw(fit_constants=fit_constants).fit(good_runs())
    assert message in str(err.value)


def test_json_is_strict_without_bootstrap_intervals():
    law = ChinchillaLaw(n_bootstrap=0).fit(good_runs())
    assert all(np.isnan(v).all() for v in law.ci_.values())
    doc = json.loads(law.to_json(), parse_constant=lambda name: pytest.fail(name))
    assert doc["fit"]["ci"]["A"] == [None, None]
    assert np.isnan(law_from_json(law.to_json()).ci_["A"][0])
