"""lawcore laws: exact formula values, PTQ behaviour, D_crit, domain errors, JSON, registry."""
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from precsim import lawcore
from precsim.lawcore import (LAWS, ChinchillaLaw, LawInputError, OuyangPTQLaw, PrecisionLaw, get_law,
                     law_from_json)

KUMAR = PrecisionLaw.PRESETS["kumar2024"]


def factor(P, gamma, n):
    """1 − exp(−P/γ + n): one part of N_eff/N (Kumar et al., with offsets)."""
    return 1.0 - math.exp(-P / gamma + n)


# ----- exact values -----------------------------------------------------------------------
def test_chinchilla_hand_value():
    # Chinchilla itself: 70B parameters, 1.4T tokens, approach-3 unrounded constants.
    expected = 406.40 * 7e10 ** -0.33917 + 410.72 * 1.4e12 ** -0.28491 + 1.6934
    assert ChinchillaLaw().predict(70e9, 1.4e12) == pytest.approx(expected, rel=1e-13)
    assert expected == pytest.approx(1.9208661785995562, rel=1e-13)


def test_epoch_and_kumar_chinchilla_presets():
    law = ChinchillaLaw(preset="epoch2024")
    assert law.predict(1e9, 2e10) == pytest.approx(
        482.01 * 1e9 ** -0.3478 + 2085.43 * 2e10 ** -0.3658 + 1.8172, rel=1e-13)
    tied = ChinchillaLaw(preset="kumar2024", alpha=0.4)
    assert tied.tie_alpha_beta and tied.params["beta"] == 0.4


def test_precision_law_hand_value_unified():
    # N = 1e8, D = 1e10, trained at 8/8/8 bits, post-training quantized to 4 bits.
    fw, fa, fkv = factor(8, 2.6745, 0.3037), factor(8, 2.2102, 1.4072), factor(8, 0.9578, 2.4185)
    n_eff = 1e8 * fw * fa * fkv
    robust = (1.0 - math.exp(-1.0 * (8 - 4))) ** 3  # C_w = C_a = C_kv = 1
    delta = 0.0598 * math.exp(-4 / 0.5907) * 1e10 ** 0.5068 / n_eff ** 0.3439 * robust
    loss = 4299 * n_eff ** -0.4965 + 18060 * 1e10 ** -0.4965 + 2.7648 + delta
    law = PrecisionLaw()
    assert law.n_eff(1e8, 8, 8, 8) == pytest.approx(n_eff, rel=1e-13)
    assert law.ptq_degradation(1e8, 1e10, 4, 8, 8, 8) == pytest.approx(delta, rel=1e-12)
    assert law.predict(1e8, 1e10, 8, 8, 8, 4) == pytest.approx(loss, rel=1e-13)
    assert loss == pytest.approx(3.4785533495770458, rel=1e-13)
    parts = law.components(1e8, 1e10, 8, 8, 8, 4)
    assert parts["irreducible"] == pytest.approx(2.7648)
    assert parts["params_term"] + parts["data_term"] + parts["irreducible"] + \
        parts["ptq_degradation"] == pytest.approx(parts["loss"], rel=1e-14)


def test_high_precision_training_gives_plain_ptq_law():
    """16-bit parts are not 'trained in low precision': robustness factor 1 (plain PTQ form)."""
    law = PrecisionLaw()
    n_eff = law.n_eff(1e9)
    expected = 0.0598 * math.exp(-3 / 0.5907) * 5e10 ** 0.5068 / n_eff ** 0.3439
    assert law.ptq_degradation(1e9, 5e10, 3) == pytest.approx(expected, rel=1e-12)
    # inf bits = not quantized at all: N_eff = N exactly.
    assert law.n_eff(1e9, np.inf, np.inf, np.inf) == 1e9
    assert law.predict(1e9, 5e10, np.inf, np.inf, np.inf) == pytest.approx(
        ChinchillaLaw(preset="kumar2024").predict(1e9, 5e10), rel=1e-13)


def test_no_ptq_equals_none_and_inf():
    law = PrecisionLaw()
    assert law.predict(1e8, 1e10) == law.predict(1e8, 1e10, P_post=np.inf)
    assert law.ptq_degradation(1e8, 1e10, np.inf) == 0.0


def test_ptq_at_or_above_training_bits_is_free():
    law = PrecisionLaw()
    assert law.ptq_degradation(1e8, 1e10, 6, P_w=6) == 0.0
    assert law.ptq_degradation(1e8, 1e10, 8, P_w=6) == 0.0
    assert law.ptq_degradation(1e8, 1e10, 5, P_w=6) > 0.0


def test_fp_preset_uses_appendix_n_weight_constants():
    law = get_law("kumar2024-fp")
    assert law.n_eff(1e8, 6, np.inf, np.inf) == pytest.approx(1e8 * factor(6, 2.8111, 0.1240))


def test_ouyang_hand_value():
    delta = 0.017 * 1e12 ** 0.5251 / (1e9 ** 0.2261 * 4 ** 5.4967)
    law = OuyangPTQLaw()
    assert law.ptq_degradation(1e9, 1e12, 4) == pytest.approx(delta, rel=1e-12)
    assert delta == pytest.approx(0.15395924299801025, rel=1e-12)
    assert law.predict(1e9, 1e12, P_post=4) == pytest.approx(
        ChinchillaLaw().predict(1e9, 1e12) + delta, rel=1e-13)
    assert "not confirmed" in OuyangPTQLaw.PRESET_NOTES["ouyang2024"]


def test_broadcasting_and_scalar_outputs():
    law = PrecisionLaw()
    out = law.predict(np.array([1e8, 1e9])[:, None], np.array([1e10, 1e11, 1e12]),
                      P_post=np.array([3.0, 4.0, np.inf]))
    assert out.shape == (2, 3)
    assert out[1, 2] == pytest.approx(law.predict(1e9, 1e12))
    assert out[0, 0] == pytest.approx(law.predict(1e8, 1e10, P_post=3))
    assert np.ndim(law.predict(1e8, 1e10)) == 0


# ----- PTQ behaviour and the critical data size --------------------------------------------
def test_ptq_degradation_grows_with_data_at_fixed_n():
    law = PrecisionLaw()
    D = np.geomspace(1e9, 1e13, 50)
    for bits in (3, 4, 6):
        assert np.all(np.diff(law.ptq_degradation(1e8, D, bits)) > 0)


def test_more_data_eventually_hurts_low_bit_ptq_and_dcrit_is_the_minimum():
    law = PrecisionLaw()
    N, bits = 1e8, 4
    D = np.geomspace(1e9, 1e14, 200_001)
    loss = law.predict(N, D, P_post=bits)
    i = int(np.argmin(loss))
    assert 0 < i < len(D) - 1
    assert loss[-1] > loss[i]  # past the minimum more data raises the quantized loss
    assert np.all(np.diff(law.predict(N, D)) < 0)  # unquantized: more data always helps
    d_crit = law.critical_data_size(N, bits)
    assert d_crit == pytest.approx(D[i], rel=1e-4)


def test_dcrit_literal_eq13():
    """Appendix E.1, Eq. 13 with N_eff = N (parts not quantized in training)."""
    c = KUMAR
    expected = (c["beta"] * c["B"] * 1e8 ** c["gamma_N"] * math.exp(4 / c["gamma_post"])
                / (c["gamma_D"] * c["C_T"])) ** (1 / (c["gamma_D"] + c["beta"]))
    got = PrecisionLaw().critical_data_size(1e8, 4, np.inf, np.inf, np.inf)
    assert got == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(1.3380183598502505e11, rel=1e-12)


def test_dcrit_grows_with_post_bits_and_n_and_ouyang_has_one_too():
    law = PrecisionLaw()
    assert np.all(np.diff(law.critical_data_size(1e8, np.array([3, 4, 5, 6]))) > 0)
    assert law.critical_data_size(1e9, 4) > law.critical_data_size(1e8, 4)
    assert law.critical_data_size(1e8, 4, P_w=4) == math.inf  # no degradation: no minimum
    ouyang = OuyangPTQLaw()
    d = ouyang.critical_data_size(1e9, 4)
    grid = np.geomspace(d / 3, d * 3, 20_001)
    assert grid[np.argmin(ouyang.predict(1e9, grid, P_post=4))] == pytest.approx(d, rel=1e-3)


def test_low_precision_training_makes_models_robust_to_ptq():
    law = PrecisionLaw()
    at_16 = law.ptq_degradation(1e8, 1e11, 4)
    assert law.ptq_degradation(1e8, 1e11, 4, P_w=5) < at_16
    assert law.ptq_degradation(1e8, 1e11, 4, P_w=6) < at_16


@given(N=st.floats(1e7, 1e11), D=st.floats(1e9, 1e13), bits=st.floats(2.0, 12.0),
       factor_=st.floats(1.01, 10.0))
def test_monotonic_properties(N, D, bits, factor_):
    law = PrecisionLaw()
    delta = law.ptq_degradation(N, D, bits)
    assert law.ptq_degradation(N, D * factor_, bits) > delta       # grows with D
    assert law.ptq_degradation(N * factor_, D, bits) < delta       # shrinks with N
    assert law.ptq_degradation(N, D, bits + 0.5) < delta           # shrinks with P_post
    train = 3.2 + bits
    assert law.predict(N, D, train + 1, train + 1, train + 1) < law.predict(N, D, train, train,
                                                                            train)
    assert law.n_eff(N, train, train, train) < N
    assert law.predict(N * factor_, D) < law.predict(N, D)


# ----- input errors -------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"N": -1.0}, "N must be a positive finite number of parameters; got -1"),
    ({"N": float("nan")}, "N must be a positive finite number of parameters; got nan"),
    ({"D": np.inf}, "D must be a positive finite number of training tokens; got inf"),
    ({"D": np.array([1e9, 0.0])}, "got 0 (at index 1)"),
    ({"N": "abc"}, "N must be a number or an array of numbers; got 'abc'"),
    ({"P_w": 0.0}, "P_w must be a positive number of bits (inf = not quantized); got 0"),
    ({"P_kv": float("nan")}, "P_kv must be a positive number of bits"),
    ({"P_post": -4.0}, "P_post must be a positive number of bits"),
    ({"P_a": 3.0}, "P_a = 3 bits is outside the domain of law 'kumar2024'"),
    ({"P_a": np.array([8.0, 3.0])}, "(at index 1) is outside the domain"),
    ({"P_kv": 2.0}, "for P_kv ≤ n_kv·γ_kv = 2.316 bits"),
    ({"N": np.ones(2) * 1e8, "D": np.ones(3) * 1e10}, "do not broadcast together"),
])
def test_predict_errors(kwargs, message):
    args = {"N": 1e8, "D": 1e10, **kwargs}
    with pytest.raises(LawInputError) as err:
        PrecisionLaw().predict(**args)
    assert message in str(err.value)


def test_domain_threshold_is_n_times_gamma():
    law = PrecisionLaw()
    assert law.min_training_bits() == pytest.approx(1.4072 * 2.2102)
    law.predict(1e8, 1e10, 3.2, 3.2, 3.2)  # just above the activations' threshold 3.11
    with pytest.raises(LawInputError, match="the paper's runs with P_a ≤ 3 or P_kv ≤ 3 diverged"):
        law.predict(1e8, 1e10, 3.1, 3.1, 3.1)


@pytest.mark.parametrize("law, kwargs, message", [
    (ChinchillaLaw(), {"P_w": 8}, "does not model quantized training"),
    (ChinchillaLaw(), {"P_post": 4}, "has no post-training-quantization term"),
    (OuyangPTQLaw(), {"P_a": 8}, "law 'ouyang2024' (OuyangPTQLaw) does not model quantized"),
])
def test_scope_errors(law, kwargs, message):
    with pytest.raises(LawInputError) as err:
        law.predict(1e8, 1e10, **kwargs)
    assert message in str(err.value)


def test_critical_data_size_errors():
    with pytest.raises(LawInputError, match="P_post must be a finite number of bits"):
        PrecisionLaw().critical_data_size(1e8, np.inf)
    with pytest.raises(LawInputError, match="no post-training-quantization term"):
        ChinchillaLaw().critical_data_size(1e8, 4)


@pytest.mark.parametrize("make, message", [
    (lambda: PrecisionLaw(preset="kumar2025"), "unknown preset 'kumar2025' for PrecisionLaw; "
                                                "known: kumar2024, kumar2024-fp"),
    (lambda: PrecisionLaw(gamma_x=1.0), "unknown constant(s) gamma_x for PrecisionLaw"),
    (lambda: PrecisionLaw(A=-1.0), "constant A must be positive and finite; got -1.0"),
    (lambda: PrecisionLaw(C_T=float("nan")), "constant C_T must be positive and finite"),
    (lambda: PrecisionLaw(n_w=float("inf")), "constant n_w must be finite"),
    (lambda: PrecisionLaw(E="x"), "constant E must be a number; got 'x'"),
    (lambda: PrecisionLaw(alpha=0.3, beta=0.4), "alpha and beta are tied"),
    (lambda: ChinchillaLaw(preset=None, A=1.0), "constant(s) alpha, B, beta, E not given"),
    (lambda: ChinchillaLaw(huber_delta=0), "huber_delta must be > 0"),
    (lambda: ChinchillaLaw(n_bootstrap=-1), "n_bootstrap must be >= 0"),
    (lambda: ChinchillaLaw(ci_level=1.0), "ci_level must be in (0, 1)"),
    (lambda: ChinchillaLaw(max_iter=0), "max_iter must be >= 1"),
    (lambda: ChinchillaLaw(fit_constants="all"), "fit_constants must be 'auto' or a list"),
    (lambda: get_law("kumar"), "unknown law 'kumar'; known: kumar2024, kumar2024-fp, "
                               "kumar2024-b, lowbit-qat, sun2025, ouyang2024, chinchilla, "
                               "epoch2024"),
])
def test_constructor_errors(make, message):
    with pytest.raises(LawInputError) as err:
        make()
    assert message in str(err.value)


def test_negative_offset_is_allowed():
    law = PrecisionLaw(n_w=-0.5)
    assert law.n_eff(1e8, 4, np.inf, np.inf) == pytest.approx(1e8 * factor(4, 2.6745, -0.5))


# ----- registry, params, JSON -----------------------------------------------------------------
def test_registry_lists_every_law():
    assert list(LAWS) == ["kumar2024", "kumar2024-fp", "kumar2024-b", "lowbit-qat", "sun2025",
                          "ouyang2024", "chinchilla", "epoch2024"]
    for name, entry in LAWS.items():
        law = get_law(name)
        assert law.name == name and isinstance(law, entry.cls)
        assert entry.description
        assert np.isfinite(law.predict(1e9, 2e10))
    modified = get_law("chinchilla", A=500.0)
    assert modified.params["A"] == 500.0 and modified.name == "chinchilla (modified)"
    assert ChinchillaLaw(preset=None, **ChinchillaLaw().params).name == "custom"
    assert lawcore.DEFAULT_LAW == "kumar2024"


@pytest.mark.parametrize("name", list(LAWS))
def test_get_params_and_json_round_trip(name):
    law = get_law(name, n_bootstrap=7, seed=3)
    clone = type(law)(**law.get_params())
    assert clone.get_params() == law.get_params()
    back = type(law).from_json(law.to_json())
    assert back.get_params() == law.get_params()
    assert back.predict(1e9, 2e10) == law.predict(1e9, 2e10)
    assert json.loads(law.to_json())["fit"] is None


@pytest.mark.parametrize("text, message", [
    ("{", "law JSON is malformed"),
    ('{"format": "other"}', "not a PrecSim law JSON"),
    ('{"format": "precsim.lawcore.law/1", "law": "Foo"}', "unknown law class 'Foo'"),
    ('{"format": "precsim.lawcore.law/1", "law": "ChinchillaLaw", "params": 3}',
     "'params' must be an object"),
    ('{"format": "precsim.lawcore.law/1", "law": "ChinchillaLaw", "params": {"Z": 1}}',
     "unknown constant(s) Z"),
    ('{"format": "precsim.lawcore.law/1", "law": "ChinchillaLaw", "params": {}, "fit": {}}',
     "law JSON 'fit' lacks constants"),
])
def test_json_errors(text, message):
    with pytest.raises(LawInputError) as err:
        law_from_json(text)
    assert message in str(err.value)


def test_from_json_checks_the_class():
    with pytest.raises(LawInputError, match="describes a ChinchillaLaw, not a PrecisionLaw"):
        PrecisionLaw.from_json(ChinchillaLaw().to_json())


# ----- terms on their own axes ------------------------------------------------------------
_AXES_BITS = np.array([[16.0, 16.0, 16.0, np.inf], [8.0, 8.0, 8.0, np.inf], [6.0, 7.0, 8.0, 4.0],
                       [4.5, 16.0, 16.0, 4.0], [np.inf, np.inf, np.inf, 5.0]])


@pytest.mark.parametrize("name", sorted(LAWS))
def test_terms_on_their_own_axes_equal_the_broadcast_evaluation(name):
    """Bits on one axis, N and D on two others: the same numbers, bit for bit, as the
    arguments broadcast to the full grid first (each term is computed on its own axes),
    and a refusal names the same first bad element."""
    law = get_law(name)
    N = np.geomspace(3e7, 1e11, 7)[None, :, None]
    D = np.geomspace(1e9, 1e13, 5)[None, None, :]
    for rows in (_AXES_BITS[[0]], _AXES_BITS):
        bits = [rows[:, j, None, None] for j in range(4)]
        full = np.broadcast_arrays(N, D, *bits)
        try:
            expected = law.components(*[a.copy() for a in full])
        except LawInputError as exc:
            with pytest.raises(LawInputError) as got:
                law.components(N, D, *bits)
            assert str(got.value) == str(exc)
            continue
        got = law.components(N, D, *bits)
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            assert got[key].shape == value.shape == (len(rows), 7, 5)
            np.testing.assert_array_equal(got[key], value)
        np.testing.assert_array_equal(law.predict(N, D, *bits), expected["loss"])
