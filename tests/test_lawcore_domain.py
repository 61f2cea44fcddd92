"""Validity domains, the low-bit QAT law, Sun et al.'s FP law and Kumar's b variant."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from precsim.codesign.cli import main
from precsim.lawcore import LAWS, LawInputError, compute_optimal, get_law
from precsim.lawcore.domain import PRESET_DOMAINS
from precsim.lawcore.lowbit import LowBitLaw, spectra_runs


# ----- domains ----------------------------------------------------------------------------------
def test_every_preset_has_a_domain():
    for name in LAWS:
        assert get_law(name).domain is PRESET_DOMAINS[name]


def test_inside_kumar_domain_has_no_flags():
    law = get_law("kumar2024")
    assert law.check_domain(1e8, 1e10, 8, 8, 8) == []
    assert law.check_domain(1e8, 1e10, 16, 16, 16, 4) == []
    assert law.validity(1e8, 1e10)["inside"] is True


def test_outside_flags_name_quantity_value_and_range():
    law = get_law("kumar2024")
    flags = law.check_domain(7e10, 1.4e13, 1.58, 8, 8)
    assert len(flags) == 3  # N, D, P_w (D/N = 200 is inside 6.8-867)
    assert flags[0].startswith("N = 7e+10 parameters is outside law 'kumar2024' "
                               "(fitted domain 3e+07 to 1.7e+09 parameters)")
    assert any(f.startswith("P_w = 1.58 bits") and "3 to 16 bits" in f for f in flags)
    assert all(f.endswith("an extrapolation") for f in flags)


def test_flags_are_vectorised_and_count_elements():
    law = get_law("kumar2024")
    N = np.array([1e8, 1e9, 7e10])
    masks = law.domain.outside(N, 2e10, np.array([1.58, 8, 8]))
    assert masks["N"].tolist() == [False, False, True]
    assert masks["w_bits"].tolist() == [True, False, False]
    assert law.domain.outside_any(N, 2e10, np.array([1.58, 8, 8])).tolist() == [True, False,
                                                                                True]
    flags = law.check_domain(N, 2e10, np.array([1.58, 8, 8]))
    assert any("(1 of 3 values)" in f for f in flags)


def test_high_precision_and_no_ptq_are_inside_but_ptq_without_evidence_is_not():
    law = get_law("chinchilla")
    assert law.check_domain(1e9, 2e10, np.inf, 16, np.inf) == []
    sun = get_law("sun2025")
    assert any("no post-training quantization was fitted" in f
               for f in sun.domain.flags(1e8, 2e10, P_post=4))
    assert any(f.startswith("P_a = 8 bits") for f in sun.check_domain(1e8, 2e10, 8, 8, 16))


def test_modified_or_fitted_law_has_no_domain_and_says_so():
    law = get_law("kumar2024", A=5000.0)
    assert law.domain is None
    record = law.validity(1e8, 1e10)
    assert record["inside"] is False and "no stated validity domain" in record["flags"][0]


# ----- presets ----------------------------------------------------------------------------------
def test_sun_preset_is_table_2_and_hand_computed():
    law = get_law("sun2025")
    table2 = {"A": 69.2343, "alpha": 0.2368, "B": 68973.0621, "beta": 0.5162, "E": 1.9061,
              "gamma_q": 11334.5197, "delta": 3.1926, "nu": 2.9543}
    assert {k: law.constants[k] for k in table2} == table2
    N, D, P = 1e9, 2e10, 4.0
    e_half = 3.1926 * P / (3.1926 + 2.9543)   # E + 0.5 at the Eq. 19 layout
    m_half = 2.9543 * P / (3.1926 + 2.9543)
    base = 69.2343 / N ** 0.2368 + 68973.0621 / D ** 0.5162 + 1.9061
    quant = D ** 0.5162 / N ** 0.2368 * 7.0 / (11334.5197 * e_half ** 3.1926 * m_half ** 2.9543)
    assert law.predict(N, D, P) == pytest.approx(base + quant, rel=1e-12)
    assert law.predict(N, D, 16) == pytest.approx(base, rel=1e-12)
    with pytest.raises(LawInputError, match="adds a loss term"):
        compute_optimal(1e21, law)


def test_kumar_b_variant_reads_b_as_the_ptq_offset():
    plain, with_b = get_law("kumar2024"), get_law("kumar2024-b")
    assert with_b.constants["C_T"] == pytest.approx(0.0598 * math.exp(1.1277), rel=1e-12)
    d_plain = plain.ptq_degradation(1e8, 1e10, 4)
    d_b = with_b.ptq_degradation(1e8, 1e10, 4)
    assert d_b / d_plain == pytest.approx(math.exp(1.1277), rel=1e-12)
    assert with_b.predict(1e8, 1e10) == plain.predict(1e8, 1e10)  # no PTQ: identical


def test_ouyang_preset_is_the_published_constants():
    c = get_law("ouyang2024").constants
    assert (c["k"], c["beta_D"], c["alpha_N"], c["gamma_P"]) == (0.017, 0.5251, 0.2261, 5.4967)


# ----- low-bit law ------------------------------------------------------------------------------
def test_lowbit_factor_depends_on_size_and_needs_n():
    law = get_law("lowbit-qat")
    c = law.constants
    N = 4e9
    z = (N / 1e9) ** c["sigma_w"] * (1.58 / c["gamma_w"] - c["n_w"])
    kumar_a = 1 - math.exp(-16 / c["gamma_a"] + c["n_a"])
    kumar_kv = 1 - math.exp(-16 / c["gamma_kv"] + c["n_kv"])
    assert law.n_eff(N, 1.58, 16, 16) == pytest.approx(
        N * (1 - math.exp(-z)) * kumar_a * kumar_kv, rel=1e-12)
    with pytest.raises(LawInputError, match="depends on the model size"):
        law.training_factor(1.58, 16, 16)


def test_spectra_runs_are_the_qat_rows():
    runs = spectra_runs()
    assert len(runs) == 21 and set(runs.P_w) == {16.0, 1.58, 1.0}
    # Spectra Table 9: TriLM 3.9B LAMBADA perplexity 6.3
    row = runs[(runs.N == 3.9e9) & (runs.P_w == 1.58)]
    assert row.loss.item() == pytest.approx(math.log(6.3))


def _synthetic_runs(truth):
    N = np.repeat(np.geomspace(1e8, 4e9, 6), 4)
    P = np.tile([16.0, 4.0, 1.58, 1.0], 6)
    loss = np.asarray(truth.predict(N, 3e11, P, 16, 16))
    return pd.DataFrame({"N": N, "D": 3e11, "P_w": P, "P_a": 16.0, "P_kv": 16.0, "loss": loss})


@pytest.mark.slow
def test_lowbit_fit_recovers_synthetic_constants_and_bootstrap_is_seeded():
    truth = LowBitLaw(tie_alpha_beta=False, A=300.0, alpha=0.3, E=1.5, gamma_w=1.8, n_w=0.1,
                      sigma_w=0.15)
    runs = _synthetic_runs(truth)
    fits = [LowBitLaw(tie_alpha_beta=False, n_bootstrap=3, seed=7,
                      fit_constants=("A", "alpha", "E", "gamma_w", "n_w", "sigma_w")).fit(runs)
            for _ in range(2)]
    for name in ("alpha", "E", "gamma_w", "n_w", "sigma_w"):
        assert fits[0].constants_[name] == pytest.approx(truth.params[name], rel=1e-3, abs=1e-4)
    assert fits[0].ci_ == fits[1].ci_
    assert np.array_equal(fits[0].bootstrap_samples_, fits[1].bootstrap_samples_)


# ----- CLI --------------------------------------------------------------------------------------
def test_cli_predict_reports_validity_and_warns(capsys):
    code = main(["law", "predict", "--N", "70B", "--D", "1.4T", "--weight-bits", "1.58",
                 "--json"])
    out, err = capsys.readouterr()
    assert code == 0
    doc = json.loads(out)
    assert doc["validity"]["inside"] is False and len(doc["validity"]["flags"]) == 3
    assert "precsim: warning: P_w = 1.58 bits is outside law 'kumar2024'" in err


def test_cli_predict_inside_is_silent(capsys):
    code = main(["law", "predict", "--N", "100M", "--D", "10B", "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and err == "" and json.loads(out)["validity"]["inside"] is True
