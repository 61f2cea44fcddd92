"""Quantization formats: grammar, presets, effective bits, packing, overrides, errors."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from precsim.simulator.errors import InputError
from precsim.simulator.quant import PRESETS, QuantFormat, parse_quant


@pytest.mark.parametrize("spec, w, a, kv, group, eff", [
    ("W16A16", 16, 16, 16, None, 16.0),
    ("W8A16", 8, 16, 16, None, 8.0),
    ("W8A8", 8, 8, 16, None, 8.0),
    ("W4A16-g128", 4, 16, 16, 128, 4.125),
    ("W4A16-g64-KV8", 4, 16, 8, 64, 4.25),
    ("W4A4", 4, 4, 16, None, 4.0),
    ("W2A16-g64", 2, 16, 16, 64, 2.25),
    ("W1.58A8", 1.58, 8, 16, None, 2.0),
    ("w4a16-G128", 4, 16, 16, 128, 4.125),
])
def test_grammar(spec, w, a, kv, group, eff):
    fmt = parse_quant(spec)
    assert (fmt.weight_bits, fmt.act_bits, fmt.kv_bits, fmt.group_size) == (w, a, kv, group)
    assert fmt.effective_weight_bits == pytest.approx(eff)


def test_element_types():
    assert parse_quant("W16A16").weight_dtype == "bf16"
    assert parse_quant("W8A8").act_dtype == "int8"
    assert parse_quant("W4A16-g128").weight_dtype == "int4"
    assert parse_quant("W1.58A8").weight_dtype == "ternary"
    assert parse_quant("W1A8").weight_dtype == "binary"
    fmt = parse_quant("Wfp8Afp8-KVfp8")
    assert (fmt.weight_dtype, fmt.act_dtype, fmt.kv_dtype) == ("fp8_e4m3",) * 3
    assert parse_quant("We5m2A16").weight_dtype == "fp8_e5m2"
    assert parse_quant("W32A32").kv_dtype == "fp32"


def test_presets():
    fp8 = parse_quant("FP8")
    assert (fp8.weight_dtype, fp8.act_dtype, fp8.weight_bits) == ("fp8_e4m3", "fp8_e4m3", 8)
    nvfp4 = parse_quant("nvfp4")
    assert nvfp4.weight_dtype == "fp4_e2m1"
    assert nvfp4.effective_weight_bits == 4 + 8 / 16
    assert nvfp4.effective_act_bits == 4 + 8 / 16
    q4 = parse_quant("Q4_0")
    assert q4.effective_weight_bits == 4.5  # 18 bytes per block of 32
    assert parse_quant("MXFP4").effective_weight_bits == 4.25
    assert set(PRESETS) >= {"FP8", "NVFP4", "Q4_0"}


def test_zero_points_and_packing():
    assert parse_quant("W4A16-g128-asym").effective_weight_bits == 4 + (16 + 4) / 128
    assert parse_quant("W1.58A8-pack1.6").effective_weight_bits == 1.6
    assert parse_quant("W1.58A8-pack2").effective_weight_bits == 2.0


def test_kv_scales():
    assert parse_quant("W4A16-KV8").effective_kv_bits == 8
    assert parse_quant("W4A16-KV4").effective_kv_bits == 4 + 16 / 64
    assert parse_quant("W4A16-KVfp8").kv_dtype == "fp8_e4m3"


def test_per_channel_scale_bits():
    assert parse_quant("W8A16").channel_scale_bits == 16
    assert parse_quant("W4A16-g128").channel_scale_bits == 0
    assert parse_quant("W16A16").channel_scale_bits == 0


def test_overrides():
    fmt = parse_quant("W4A16-g128@lm_head=W16A16,attn=W8A8")
    assert fmt.for_group("lm_head").weight_bits == 16
    assert fmt.for_group("attn").act_dtype == "int8"
    assert fmt.for_group("mlp").effective_weight_bits == 4.125
    assert fmt.name == "W4A16-g128@attn=W8A8,lm_head=W16A16"
    again = parse_quant("W4A16-g128").with_overrides({"lm_head": "W16A16", "attn": "W8A8"})
    assert again == fmt
    assert hash(again) == hash(fmt)


def test_from_dtypes():
    fmt = QuantFormat.from_dtypes("int4", "bf16", group_size=128)
    assert fmt.effective_weight_bits == 4.125
    assert QuantFormat.from_dtypes("bf16").act_dtype == "bf16"
    with pytest.raises(InputError, match="unknown weight dtype"):
        QuantFormat.from_dtypes("int9")


@pytest.mark.parametrize("spec, match", [
    ("W3.5A16", "weight bits '3.5' is not accepted"),
    ("W4A3", "activation bits '3' is not accepted"),
    ("W16A16-g128", "needs weights below 16 bits"),
    ("W4A16-g0", "group size must be"),
    ("W4A16-pack1.6", "only applies to ternary"),
    ("W1.58A8-pack3", "-pack2"),
    ("Wfp8A16-asym", "integer weights"),
    ("W4A16@head=W16A16", "did you mean 'lm_head'"),
    ("W4A16@lm_head", "GROUP=FORMAT"),
    ("", "non-empty"),
])
def test_errors(spec, match):
    with pytest.raises(InputError, match=match):
        parse_quant(spec)


def test_unknown_names_suggest_and_list():
    with pytest.raises(InputError) as err:
        parse_quant("NVFP")
    msg = str(err.value)
    assert "Did you mean NVFP4" in msg and "W{w}A{a}" in msg and "Q4_0" in msg


@given(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8]), st.sampled_from([8, 16, 32, 64, 128]),
       st.sampled_from([8, 16, 32, 64, 128]))
def test_effective_bits_formula(bits, g1, g2):
    lo, hi = sorted((g1, g2))
    fine = parse_quant(f"W{bits}A16-g{lo}")
    coarse = parse_quant(f"W{bits}A16-g{hi}")
    assert fine.effective_weight_bits == bits + 16 / lo
    assert coarse.effective_weight_bits <= fine.effective_weight_bits


def test_dtype_tables_are_defined_once_and_agree():
    from precsim.simulator import dtypes, profiles, quant
    assert profiles.DTYPES is dtypes.DTYPES and profiles.FLOAT_DTYPES is dtypes.FLOAT_DTYPES
    assert quant.DTYPE_BITS is dtypes.DTYPE_BITS and quant.FLOAT_DTYPES is dtypes.FLOAT_DTYPES
    assert set(dtypes.FLOAT_DTYPES) <= set(dtypes.DTYPES) <= set(dtypes.DTYPE_BITS)
