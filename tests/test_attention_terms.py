"""The shortcuts of the attention and streaming kernels' terms (issue 19, fifth round)
give the values and types the plain formulas give: bytes per level (`level_bytes`)
against adding every tensor's `bytes_through` at every level, the K/V reads against
max(1, rows / tile x share), the conversions of a plan converting nothing against the
products with its zero rates."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from precsim.simulator.attention import (causal_pairs, conversions, flash_tiling, kv_reads,
                                         plain, reread)
from precsim.simulator.hardware import as_hardware
from precsim.simulator.kernels import attention_cost
from precsim.simulator.levels import level_bytes
from precsim.simulator.roofline import ACC_BYTES, bytes_through, staging_bytes

PROFILES = ("a100-sxm-80gb", "host", "ternary-accel")


def _same(a, b) -> bool:
    """Equal values (NaN equal to NaN), types and shapes."""
    return type(a) is type(b) and np.shape(a) == np.shape(b) and bool(
        np.all((np.asarray(a) == np.asarray(b)) | (np.isnan(np.asarray(a, dtype=float))
                                                   & np.isnan(np.asarray(b, dtype=float)))))


_BYTES = st.one_of(st.floats(0.0, 1e12), st.integers(0, 10**9),
                   st.lists(st.floats(0.0, 1e12), min_size=3, max_size=3).map(np.array),
                   st.floats(0.0, 1e12).map(np.float64), st.floats(0.0, 1e12).map(np.array))


@settings(max_examples=200, deadline=None)
@given(profile=st.sampled_from(PROFILES), data=st.data(),
       n=st.integers(2, 4), per_level=st.booleans())
def test_level_bytes_equal_every_tensor_added_at_every_level(profile, data, n, per_level):
    hw = as_hardware(profile)
    home = st.one_of(st.integers(0, hw.main),
                     st.lists(st.integers(0, hw.main), min_size=3, max_size=3).map(np.array))
    tensors = []
    for i in range(n):
        nbytes = data.draw(_BYTES)
        if per_level and i == n - 1:  # a tensor re-read per level
            nbytes = tuple(nbytes * float(r) for r in data.draw(
                st.lists(st.floats(1.0, 8.0), min_size=hw.n_levels, max_size=hw.n_levels)))
        tensors.append((data.draw(home), nbytes))
    got = level_bytes(hw, tensors)
    assert len(got) == hw.n_levels
    for j, level in enumerate(got):
        terms = [bytes_through(hw, h, j, b[j] if type(b) is tuple else b) for h, b in tensors]
        want = terms[0]
        for t in terms[1:]:
            want = want + t
        assert _same(level, want), (j, level, want)


@settings(max_examples=150, deadline=None)
@given(profile=st.sampled_from(PROFILES), rows=st.floats(1.0, 1e5),
       frac=st.one_of(st.floats(0.0, 1.0).map(np.float64),
                      st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4).map(np.array)),
       head_dim=st.sampled_from([64.0, 128.0]))
def test_kv_reads_once_where_a_tile_holds_the_rows_equal_the_maximum(profile, rows, frac,
                                                                      head_dim):
    hw = as_hardware(profile)
    reads = kv_reads(hw, head_dim, 2.0, rows, frac * 1000.0, 1000.0, np.shape(frac))
    nbytes = np.full(np.shape(frac), 3.0e6) if np.ndim(frac) else 3.0e6
    for j, r in enumerate(reads):
        tq = staging_bytes(hw, j) / (head_dim * (2.0 + ACC_BYTES))
        want = np.maximum(1.0, rows / max(tq, 1.0) * (frac * 1000.0 / 1000.0))
        moved = reread(nbytes, reads)  # one product for every level, or one per level
        assert _same(moved[j] if type(moved) is tuple else moved, nbytes * want)
        assert np.array_equal(np.broadcast_to(r, np.shape(want)), want)


def test_a_plan_converting_nothing_gives_the_products_with_its_zero_rates():
    plan = {f"{o}_convert_{f}": 0.0 for o in "wa" for f in ("s", "j", "ops")}
    assert plain(plan)
    nbytes = np.array([4.0e6, 8.0e6])
    reads0 = np.array([1.0, 2.5])
    parts = [(nbytes, 2.0, "w", nbytes * reads0), (1.0e6, 1.0, "a", 1.0e6 * reads0)]
    want = [(nbytes / 2.0 * reads0) * 0.0 + (1.0e6 / 1.0 * reads0) * 0.0] * 3
    for g, w in zip(conversions(plan, parts, reads0, True), want):
        assert _same(g, w)
    for g, w in zip(conversions(plan, parts, reads0), want):
        assert _same(g, w)
    plan["a_convert_ops"] = 3.0
    assert not plain(plan)
    ops = conversions(plan, parts, reads0)[2]
    assert _same(ops, (nbytes / 2.0 * reads0) * 0.0 + (1.0e6 / 1.0 * reads0) * 3.0)


@settings(max_examples=100, deadline=None)
@given(q=st.one_of(st.just(1.0), st.integers(1, 64), st.floats(1.0, 64.0)),
       extra=st.lists(st.integers(0, 100000), min_size=1, max_size=5),
       dtype=st.sampled_from([float, int]))
def test_causal_pairs_of_an_array_are_the_plain_formula_of_each_length(q, extra, dtype):
    """Float64 arrays take 1 and 2 as 0-d operands (`hardware.on_floats`): the doubles and type
    the Python numbers give, element for element."""
    kv = np.array([q + e for e in extra], dtype=dtype) if dtype is float \
        else np.array([int(q) + e for e in extra])
    got = causal_pairs(q, kv)
    b = kv - q
    assert _same(got, (kv * (kv + 1) - b * (b + 1)) / 2.0)
    for i, k in enumerate(kv.tolist()):
        assert got[i] == causal_pairs(q, k)


@settings(max_examples=40, deadline=None)
@given(profile=st.sampled_from(PROFILES),
       quant=st.sampled_from(["W16A16", "W8A8", "W4A16-g64-KV8", "FP8"]),
       kv=st.lists(st.integers(1, 200000), min_size=1, max_size=4),
       ints=st.booleans(), batch=st.integers(1, 16))
def test_decode_attention_on_an_array_of_contexts_prices_each_context_alone(
        profile, quant, kv, ints, batch):
    """The 0-d operands a decode step's arrays take (cached K/V bytes per element, the
    plans' rates: `operand_plans`) give each context's own doubles."""
    kv_len = np.array(kv) if ints else np.array(kv, dtype=float)
    cost = attention_cost(profile, batch, 1.0, kv_len, 32, 8, 128.0, quant)
    for i, k in enumerate(kv_len.tolist()):
        one = attention_cost(profile, batch, 1.0, k, 32, 8, 128.0, quant)
        for field in ("time_s", "energy_j", "flops", "vector_ops", "convert_ops",
                      "convert_time_s", "memory_time_s", "compute_time_s"):
            assert np.shape(getattr(cost, field)) == kv_len.shape, field
            assert getattr(cost, field)[i] == getattr(one, field), field
        for level, nbytes in cost.bytes_moved.items():
            assert np.broadcast_to(nbytes, kv_len.shape)[i] == one.bytes_moved[level]


def test_flash_tiling_without_a_gemm_block_keeps_the_pairs_at_the_plans_rate():
    """A profile without a `gemm` block has no flash tile: the pairs as given, rate 1,
    on the first call (the tile looked up) and after (its absence kept)."""
    hw = as_hardware("ternary-accel")
    pairs = np.float64(130816.0)
    for _ in range(2):
        got = flash_tiling(hw, 512.0, 512.0, 32, pairs, True, True)
        assert got[0] is pairs and got[1] == 1.0


@settings(max_examples=30, deadline=None)
@given(profile=st.sampled_from(PROFILES), quant=st.sampled_from(["W16A16", "W4A16-g64-KV8"]),
       cached=st.lists(st.integers(0, 4096), min_size=1, max_size=4),
       q=st.integers(1, 512))
def test_chunked_prefill_on_an_array_of_caches_prices_each_cache_alone(profile, quant,
                                                                       cached, q):
    """Cached and fresh K/V parts (moved bytes, conversions) of a prefill chunk after an
    array of cached lengths: each element equals its own number call."""
    cache = np.array(cached, dtype=float)
    cost = attention_cost(profile, 2, float(q), cache + q, 32, 8, 128.0, quant,
                          cache_len=cache)
    for i, c in enumerate(cached):
        one = attention_cost(profile, 2, float(q), float(c + q), 32, 8, 128.0, quant,
                             cache_len=float(c))
        for field in ("time_s", "energy_j", "convert_ops", "memory_time_s"):
            assert np.broadcast_to(getattr(cost, field), cache.shape)[i] == \
                getattr(one, field), field
        for level, nbytes in cost.bytes_moved.items():
            assert np.broadcast_to(nbytes, cache.shape)[i] == one.bytes_moved[level]
