"""What the kernel formulas keep between calls (issue 19, the scalar call's formulas):
the shape-free terms of a format on a profile are memoised per format object (bounded),
never shared between formats, and every shortcut taken on them (a streaming kernel's
roofline, a home level found by one search, a plan without conversion) gives the value
the full formula gives, bit for bit."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from precsim.simulator import kernels
from precsim.simulator.errors import InputError
from precsim.simulator.hardware import as_hardware
from precsim.simulator.kernels import attention_cost, elementwise_cost, gemm_cost
from precsim.simulator.quant import QuantFormat, parse_quant
from precsim.simulator.roofline import EXTENSIVE_FIELDS, home_level, roofline_cost

PROFILES = ("a100-sxm-80gb", "h100-sxm", "host", "snapdragon-8-gen3", "ternary-accel")


def _fields(cost) -> list:
    return [np.asarray(getattr(cost, f), dtype=float) for f in EXTENSIVE_FIELDS] + [
        np.asarray(v, dtype=float) for v in cost.bytes_moved.values()]


def _identical(a, b) -> bool:
    """Every extensive field and level equal bit for bit (NaN equal to NaN)."""
    return all(np.array_equal(x, y, equal_nan=True) and x.shape == y.shape
               for x, y in zip(_fields(a), _fields(b), strict=True))


@settings(max_examples=40, deadline=None)
@given(profile=st.sampled_from(PROFILES),
       ops=st.lists(st.floats(0.0, 1e12), min_size=1, max_size=5),
       scale=st.floats(1e-3, 1e3), n_kernels=st.sampled_from((0.0, 1.0, 2.0)))
def test_a_streaming_roofline_is_the_full_one_with_zeros(profile, ops, scale, n_kernels):
    """roofline_cost(flops=None) leaves out the terms zero matrix ops and zero conversion
    add (on a profile that overlaps partly, too: the host)."""
    hw = as_hardware(profile)
    vec = np.asarray(ops, dtype=float)
    levels = [vec * scale * (j + 1) for j in range(hw.n_levels)]
    plan = {"ops_per_s": 1.0, "energy_per_op_j": 0.0, "exec_dtype": "vector"}
    zero = 0.0 * vec
    full = roofline_cost(hw, plan, zero, vec, zero, zero, zero, levels, n_kernels)
    streaming = roofline_cost(hw, plan, None, vec, None, None, None, levels, n_kernels)
    assert _identical(full, streaming)
    assert np.array_equal(streaming.compute_time_s, full.compute_time_s)


@settings(max_examples=40, deadline=None)
@given(profile=st.sampled_from(PROFILES),
       values=st.lists(st.tuples(st.floats(0.0, 1e12), st.floats(0.0, 1e12),
                                 st.floats(0.0, 1e10)), min_size=1, max_size=4),
       fraction=st.sampled_from((1.0, 0.37)), streaming=st.booleans())
def test_a_roofline_on_arrays_is_the_roofline_of_each_element(profile, values, fraction,
                                                             streaming):
    """An array call (the profile's numbers as 0-d operands: hardware.array_operands)
    prices each element as a call on Python floats does, bit for bit."""
    hw = as_hardware(profile)
    plan = {"ops_per_s": 3.1e14, "energy_per_op_j": 2e-13, "exec_dtype": "bf16",
            "stream_fraction": fraction}
    flops, vec, nbytes = (np.array(c, dtype=float) for c in zip(*values))

    def price(f, v, b):
        levels = [b * (j + 1) for j in range(hw.n_levels)]
        if streaming:
            return roofline_cost(hw, plan, None, v, None, None, None, levels, 1.0)
        return roofline_cost(hw, plan, f, v, 0.0 * f, 0.0 * f, 0.0 * f, levels, 1.0)
    whole = price(flops, vec, nbytes)
    for i, (f, v, b) in enumerate(values):
        one = price(f, v, b)
        for name in ("time_s", "energy_j", "memory_time_s", "compute_time_s"):
            assert np.asarray(getattr(whole, name))[i] == getattr(one, name)


def test_format_terms_are_kept_per_format_object_and_bounded():
    hw = as_hardware("a100-sxm-80gb")
    fmt = parse_quant("W4A16-g128")
    m, n, k = np.array([1.0, 512.0]), np.array([4096.0, 4096.0]), np.array([4096.0, 11008.0])
    first = gemm_cost(hw, m, n, k, fmt)
    memo = hw.exec_cache["group_terms"]
    terms = memo[(id(fmt), "mlp")][1]
    assert _identical(gemm_cost(hw, m, n, k, fmt), first)
    assert memo[(id(fmt), "mlp")][1] is terms  # kept, not rebuilt
    # another format object, even an equal one, gets its own entry
    twin = dataclasses.replace(fmt)
    assert twin == fmt and twin is not fmt
    assert _identical(gemm_cost(hw, m, n, k, twin), first)
    assert memo[(id(twin), "mlp")][1] is not terms
    # more formats than the bound: the oldest go first, results unchanged after rebuilding
    others = [QuantFormat.from_dtypes("int8", "bf16") for _ in range(kernels.FORMAT_MEMO_MAX)]
    for other in others:
        gemm_cost(hw, m, n, k, other)
    assert len(memo) == kernels.FORMAT_MEMO_MAX
    assert (id(fmt), "mlp") not in memo
    assert _identical(gemm_cost(hw, m, n, k, fmt), first)


def test_formats_in_an_array_price_as_each_alone():
    """An object array of formats (not memoised) gives each element its own format's
    GEMM and attention, per-channel scales included (W8A16 has them, W16A16 not)."""
    hw = as_hardware("h100-sxm")
    names = ("W8A16", "W16A16", "W4A16-g128")
    fmts = np.empty(3, dtype=object)
    for i, name in enumerate(names):
        fmts[i] = parse_quant(name)
    together = gemm_cost(hw, 8.0, 4096.0, 4096.0, fmts)
    attn = attention_cost(hw, 2.0, 1.0, np.array([300.0, 700.0, 900.0]), 32.0, 8.0, 128.0,
                          fmts, cache_len=np.array([299.0, 699.0, 899.0]))
    for i, name in enumerate(names):
        alone = gemm_cost(hw, 8.0, 4096.0, 4096.0, name)
        assert float(np.asarray(together.time_s)[i]) == float(alone.time_s)
        assert float(np.asarray(together.energy_j)[i]) == float(alone.energy_j)
        one = attention_cost(hw, 2.0, 1.0, [300.0, 700.0, 900.0][i], 32.0, 8.0, 128.0, name,
                             cache_len=[299.0, 699.0, 899.0][i])
        assert float(np.asarray(attn.time_s)[i]) == pytest.approx(float(one.time_s),
                                                                   rel=1e-15)


@pytest.mark.parametrize("profile", ("a100-sxm-80gb", "host"))
def test_attention_plans_kept_for_a_full_or_empty_cache_match_a_mixed_call(profile):
    """A kernel reading the cache everywhere (decode) or nowhere (prefill) uses kept
    plans; a mixed call (some sequences with a cache) picks per element the same."""
    hw = as_hardware(profile)
    kw = dict(n_heads=32, n_kv_heads=8, head_dim=128, quant="W16A16")
    for _ in range(2):  # the second call is served from the kept plans
        decode = attention_cost(hw, 1, 1, 600.0, cache_len=599.0, **kw)
        prefill = attention_cost(hw, 1, 64, 64, cache_len=0.0, **kw)
    mixed = attention_cost(hw, 1, np.array([1.0, 64.0]), np.array([600.0, 64.0]),
                           cache_len=np.array([599.0, 0.0]), **kw)
    assert float(np.asarray(mixed.time_s)[0]) == pytest.approx(float(decode.time_s), rel=1e-12)
    assert float(np.asarray(mixed.time_s)[1]) == pytest.approx(float(prefill.time_s),
                                                               rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(exponents=st.lists(st.floats(0.0, 12.0), min_size=1, max_size=6),
       persistent=st.booleans(), nan=st.booleans())
def test_home_level_where_rooms_do_not_grow_with_the_level(exponents, persistent, nan):
    """The search needs rooms growing with the level; a profile where a nearer level
    holds more (an edited capacity) takes the level-by-level test, equal to the scalar
    call element for element."""
    base = as_hardware("host")
    caps = list(base.capacity_bytes)
    caps[0], caps[1] = caps[2], caps[0]  # l1 as large as l3, l2 as small as l1
    hw = dataclasses.replace(base, capacity_bytes=tuple(caps), exec_cache={})
    nbytes = 10.0 ** np.array(exponents)
    if nan:
        nbytes[0] = np.nan
    got = np.broadcast_to(home_level(hw, nbytes, persistent), nbytes.shape)
    assert got.tolist() == [home_level(hw, float(x), persistent) for x in nbytes]
    assert hw.exec_cache[("rooms", persistent)][1] is None  # no search on these rooms


def test_an_elementwise_kernel_keeps_its_zero_fields():
    """A streaming kernel's matrix ops and conversion are zeros of its vector ops' shape."""
    cost = elementwise_cost("a100-sxm-80gb", np.array([1e6, 2e6]), np.array([1e6, 1e6]),
                            np.array([5e5, 7e5]))
    for name in ("flops", "convert_ops", "convert_time_s"):
        value = getattr(cost, name)
        assert value.shape == (2,) and not value.any()
    assert np.array_equal(cost.compute_time_s, cost.vector_ops / as_hardware(
        "a100-sxm-80gb").vector_ops_per_s)


_CHECKED = [  # (formula, its positional arguments after the profile, the checked ones)
    (gemm_cost, (64.0, 4096.0, 4096.0), ("m", "n", "k")),
    (kernels.norm_cost, (64.0, 4096.0), ("rows", "width")),
    (kernels.embedding_cost, (64.0, 4096.0), ("tokens", "d_model")),
    (attention_cost, (2.0, 1.0, 300.0, 32.0, 8.0, 128.0),
     ("batch", "q_len", "kv_len", "n_heads", "n_kv_heads", "head_dim")),
]


@pytest.mark.parametrize("formula, args, names", _CHECKED)
@pytest.mark.parametrize("bad", (0.0, -1.0, float("nan"), float("inf")))
def test_the_public_formulas_refuse_bad_sizes_the_unchecked_entry_prices_alike(
        formula, args, names, bad):
    """Each checked size refused (InputError naming it), given by position or by name,
    as a number or inside an array; `unchecked` (op_eval's entry, its inputs validated
    upstream) prices valid sizes bit for bit as the public formula."""
    hw = as_hardware("a100-sxm-80gb")
    assert _identical(formula(hw, *args), formula.unchecked(hw, *args))
    for i, name in enumerate(names):
        positional = list(args)
        positional[i] = bad
        with pytest.raises(InputError, match=f"{name} must be positive and finite"):
            formula(hw, *positional)
        keywords = dict(zip(names, args))
        keywords[name] = np.array([args[i], bad])
        with pytest.raises(InputError, match=f"{name} must be positive and finite"):
            formula(hw, **keywords)


@pytest.mark.parametrize("q_len, kv_len, cache_len, message", [
    (8.0, 4.0, None, "kv_len must be at least q_len"),
    (np.array([1.0, 8.0]), np.array([4.0, 4.0]), None, "kv_len must be at least q_len"),
    (1.0, 4.0, 5.0, "cache_len must be between 0 and kv_len"),
    (1.0, 4.0, np.array([2.0, -1.0]), "cache_len must be between 0 and kv_len")])
def test_attention_refuses_disordered_lengths(q_len, kv_len, cache_len, message):
    """attention_cost checks kv_len >= q_len and 0 <= cache_len <= kv_len (its
    `unchecked` entry, op_eval's, leaves that to simulator.cost)."""
    with pytest.raises(InputError, match=message):
        attention_cost("a100-sxm-80gb", 1.0, q_len, kv_len, 32.0, 8.0, 128.0,
                       cache_len=cache_len)
    ok = attention_cost("a100-sxm-80gb", 1.0, 1.0, 4.0, 32.0, 8.0, 128.0, cache_len=2.0)
    assert _identical(ok, attention_cost.unchecked("a100-sxm-80gb", 1.0, 1.0, 4.0, 32.0, 8.0,
                                                   128.0, cache_len=2.0))


@settings(max_examples=60, deadline=None)
@given(exponents=st.lists(st.floats(0.0, 12.0), min_size=1, max_size=80),
       persistent=st.booleans(), profile=st.sampled_from(["a100-sxm-80gb", "host"]))
def test_home_level_of_numbers_and_arrays_agree(exponents, persistent, profile):
    """One profile: a Python float, a numpy scalar and a 0-d array have the home (an int)
    of their element in an array; an array whose elements share a home gives that int
    (a list's count up to roofline.LIST_COMPARE elements, a numpy pass beyond)."""
    hw = as_hardware(profile)
    nbytes = 10.0 ** np.array(exponents)
    got = home_level(hw, nbytes, persistent)
    homes = [home_level(hw, float(x), persistent) for x in nbytes]
    assert all(type(h) is int for h in homes)
    assert [home_level(hw, x, persistent) for x in nbytes] == homes  # numpy scalars
    assert home_level(hw, np.asarray(nbytes[0]), persistent) == homes[0]
    if len(set(homes)) == 1:
        assert type(got) is int and got == homes[0]
    else:
        assert np.broadcast_to(got, nbytes.shape).tolist() == homes
