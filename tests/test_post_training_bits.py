"""post_training_bits follows per-group overrides (docs/laws.md, "PTQ of some groups")."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from precsim.codesign.problem import KUMAR_GAMMA_POST, post_training_bits, quantized_shares
from precsim.simulator.quant import parse_quant


def test_shares_of_the_mha_family_by_hand():
    # MHA, d_ff = 8d/3: attention 4d^2, MLP 3 * 8/3 d^2 = 8d^2 per block
    s = quantized_shares({"gqa_ratio": 1.0})
    assert s["attn"] == pytest.approx(4 / 12) and s["mlp"] == pytest.approx(8 / 12)


def test_mlp_only_ptq_by_hand():
    share = quantized_shares()["mlp"]
    expected = -KUMAR_GAMMA_POST * math.log(share * math.exp(-4 / KUMAR_GAMMA_POST))
    assert post_training_bits(parse_quant("W16A16@mlp=W4A16-g128")) == pytest.approx(expected)
    # less of the model quantized -> less degradation -> more equivalent bits than 4
    assert expected > 4


@pytest.mark.parametrize("spec, bits", [("W16A16", np.inf), ("W4A16-g128", 4.0),
                                        ("W4A16@embedding=W16A16", 4.0),
                                        ("W16A16@lm_head=W4A16", np.inf),
                                        ("W4A16@attn=W4A8,mlp=W4A16", 4.0)])
def test_whole_model_and_groups_outside_N(spec, bits):
    assert post_training_bits(parse_quant(spec)) == bits


@given(st.sampled_from([2, 3, 4, 5, 6, 8]), st.sampled_from([2, 3, 4, 5, 6, 8]))
def test_mixed_bits_lie_between_the_groups(a, b):
    p = post_training_bits(parse_quant(f"W{a}A16@attn=W{a}A16,mlp=W{b}A16"))
    assert min(a, b) - 1e-9 <= p <= max(a, b) + 1e-9


def _train(w, a, kv):
    from precsim.codesign.study import TrainFormat
    return TrainFormat(name=f"t{w}", weight_bits=w, act_bits=a, kv_bits=kv)


@pytest.mark.parametrize("train, serve, expected", [
    ((16, 16, 16), None, (16.0, 16.0)),
    ((16, 16, 16), "W8A8", (8.0, 16.0)),
    ((16, 16, 16), "W4A16-KV8", (16.0, 8.0)),
    ((8, 8, 8), "W4A16", (8.0, 8.0)),            # trained lower than served: training bits
    ((16, 16, 16), "W8A16@mlp=W8A8", (8.0, 16.0)),   # the lowest of attention and MLP
])
def test_serving_act_kv_bits_proxy(train, serve, expected):
    from precsim.codesign.problem import serving_act_kv_bits
    fmt = None if serve is None else parse_quant(serve)
    assert serving_act_kv_bits(_train(*train), fmt) == expected


def test_serving_activation_quantization_is_not_free_under_kumar():
    from precsim.lawcore import get_law
    law = get_law("kumar2024")
    served_a16 = law.predict(1e9, 2e10, 16.0, 16.0, 16.0, 8.0)
    served_a4 = law.predict(1e9, 2e10, 16.0, 4.0, 16.0, 8.0)
    assert served_a4 > served_a16
