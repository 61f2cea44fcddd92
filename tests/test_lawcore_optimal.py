"""Compute-optimal training precision under C = (6/16)·N·D·P (Kumar et al. 2024)."""
import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from precsim.lawcore import (ChinchillaLaw, LawInputError, PrecisionLaw, compute_optimal, get_law,
                     optimal_precision_fixed_n, training_compute_flops)


def test_cost_model():
    assert training_compute_flops(1e9, 2e10, 16) == pytest.approx(6 * 1e9 * 2e10)
    assert training_compute_flops(1e9, 2e10, 8) == pytest.approx(3 * 1e9 * 2e10)


def test_compute_optimal_precision_is_seven_bits_and_flat():
    budgets = np.geomspace(1e18, 1e26, 9)
    opt = compute_optimal(budgets)
    assert np.all((opt.precision > 7.0) & (opt.precision < 8.0))  # paper: "7–8 bits"
    assert np.ptp(opt.precision) < 1e-4                            # flat across budgets
    assert not np.any(opt.at_bound)
    # L − E ∝ (P/g(P))^(αβ/(α+β)): the optimum minimises P/g(P), g = N_eff/N.
    law = PrecisionLaw()
    exact = minimize_scalar(lambda p: math.log(p) - math.log(law.training_factor(p, p, p)),
                            bounds=(3.2, 16), method="bounded", options={"xatol": 1e-10}).x
    assert exact == pytest.approx(7.0021, abs=1e-4)
    assert opt.precision == pytest.approx(exact, abs=1e-4)
    assert training_compute_flops(opt.N, opt.D, opt.precision) == pytest.approx(budgets)
    assert np.all(np.diff(opt.N) > 0) and np.all(np.diff(opt.D) > 0)
    assert np.all(np.diff(opt.loss) < 0)


def test_without_offsets_the_optimum_drops_to_about_3_5_bits():
    law = PrecisionLaw(n_w=0.0, n_a=0.0, n_kv=0.0)  # reference/laws.md: "near 3.5 bits"
    assert compute_optimal(1e21, law).precision == pytest.approx(3.47, abs=0.02)


def test_compute_optimal_matches_brute_force():
    law = PrecisionLaw()
    C = 1e21
    P = np.linspace(3.3, 16, 424)[:, None]
    N = np.geomspace(1e8, 1e11, 1501)[None, :]
    loss = law.predict(N, 16 * C / (6 * N * P), P, P, P)
    i, j = np.unravel_index(np.argmin(loss), loss.shape)
    opt = compute_optimal(C, law)
    assert opt.loss <= loss[i, j] + 1e-12
    assert opt.loss == pytest.approx(loss[i, j], rel=1e-6)
    assert opt.precision == pytest.approx(P[i, 0], abs=0.02)
    assert opt.N == pytest.approx(N[0, j], rel=0.01)


def test_seven_bits_beats_sixteen_and_four():
    opt = compute_optimal(1e22)
    for bits in (4.0, 16.0):
        fixed = compute_optimal(1e22, precision=bits)
        assert fixed.precision == bits and fixed.loss > opt.loss
        assert training_compute_flops(fixed.N, fixed.D, bits) == pytest.approx(1e22)


def test_fixed_precision_chinchilla_is_the_classic_allocation():
    law = ChinchillaLaw()
    c = law.params
    C = 1e23
    opt = compute_optimal(C, law, precision=16)
    a, b = c["alpha"], c["beta"]
    G = (a * c["A"] / (b * c["B"])) ** (1 / (a + b))
    assert opt.N == pytest.approx(G * (C / 6) ** (b / (a + b)), rel=1e-10)
    assert opt.D == pytest.approx(C / (6 * opt.N), rel=1e-10)


def test_fixed_n_optimal_precision_rises_with_data():
    D = np.geomspace(1e9, 1e13, 9)
    opt = optimal_precision_fixed_n(1e9, D)
    assert np.all(np.diff(opt.precision) > 0)
    steps = np.diff(opt.precision)  # per half-decade: tends to a constant (~ log(D/N))
    assert steps[-1] / steps[-4] < 1.05
    assert opt.D_reference == pytest.approx(D)
    assert opt.D == pytest.approx(D * 16 / opt.precision)
    assert opt.compute_flops == pytest.approx(6 * 1e9 * D)
    # each is a true minimum over precision at that budget
    law = get_law("kumar2024")
    for k in (0, 4, 8):
        p = opt.precision[k]
        around = law.predict(1e9, D[k] * 16 / np.array([p - 0.2, p + 0.2]),
                             *(np.array([p - 0.2, p + 0.2]),) * 3)
        assert np.all(around > opt.loss[k])


def test_fixed_n_broadcasts_and_reports_the_bound():
    opt = optimal_precision_fixed_n(np.array([[1e8], [1e9]]), np.array([1e10, 1e11]))
    assert opt.precision.shape == (2, 2)
    capped = optimal_precision_fixed_n(1e8, 1e16, max_bits=12)
    assert capped.at_bound is True and capped.precision == pytest.approx(12, abs=1e-3)
    d = compute_optimal(1e21).to_dict()
    assert set(d) == {"compute_flops", "N", "D", "precision", "loss", "at_bound"}


@pytest.mark.parametrize("call, message", [
    (lambda: compute_optimal(-1), "compute_flops must be a positive finite number of training "
                                  "FLOPs; got -1"),
    (lambda: compute_optimal(1e21, ChinchillaLaw()), "law 'chinchilla' (ChinchillaLaw) does not "
                                                     "model training precision"),
    (lambda: compute_optimal(1e21, max_bits=3.0), "max_bits must be a finite number above the "
                                                  "law's lowest training precision 3.11"),
    (lambda: compute_optimal(1e21, precision=3.0), "P_a = 3 bits is outside the domain"),
    (lambda: compute_optimal(1e21, ChinchillaLaw(), precision=8), "does not model quantized "
                                                                  "training"),
    (lambda: optimal_precision_fixed_n(0, 1e10), "N must be a positive finite number"),
    (lambda: optimal_precision_fixed_n(1e9, 1e10, reference_bits=0), "reference_bits must be "
                                                                      "a positive number of bits"),
])
def test_errors(call, message):
    with pytest.raises(LawInputError) as err:
        call()
    assert message in str(err.value)
