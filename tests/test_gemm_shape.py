"""Shape-dependent GEMM efficiency (simulator.gemm_shape) and flash-attention blocks."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from precsim.simulator.gemm_shape import flash_blocks, gemm_efficiency
from precsim.simulator.hardware import as_hardware
from precsim.simulator.kernels import attention_cost, gemm_cost
from precsim.simulator.profile_loader import cached_profile
from precsim.simulator.profiles import profile_from_mapping

A100 = "a100-sxm-80gb"
RATE = 312e12 * 0.869  # a100 fp16 achievable [mamf]


def _a100(**gemm) -> object:
    """The a100 profile with fields of its `gemm` block replaced (drop=True: removed)."""
    doc = cached_profile(A100).raw()
    if gemm.pop("drop", False):
        del doc["gemm"]
    for key, value in gemm.items():
        doc["gemm"][key] = {"value": value, "assumed": "test"}
    return profile_from_mapping(doc, "test")


def test_wave_quantization_hand_computed():
    # 8192^3 with 256x128 tiles on 108 SMs: 32 x 64 = 2048 tiles,
    # ceil(2048 / 108) = 19 waves -> 2048 / (19 x 108) = 0.998
    hw = as_hardware(_a100(tiles="256x128"))
    shape = gemm_efficiency(hw, 8192, 8192, 8192, RATE, 2.0, 2.0, 0.0)
    assert shape.efficiency == pytest.approx(2048 / (19 * 108), rel=1e-12)
    assert shape.split == 1 and shape.reduction_bytes == 0


def test_tile_quantization_hand_computed():
    # m = 200 in 128-row tiles: 2 rows of tiles, mean real extent 100 of 128; 2 tiles on
    # 108 units, no split allowed: e = (100 x 128) / (128 x 128) x 2 / 108
    hw = as_hardware(_a100(tiles="128x128", max_split=1))
    shape = gemm_efficiency(hw, 200, 128, 4096, RATE, 2.0, 2.0, 0.0)
    assert shape.efficiency == pytest.approx(100 / 128 * 2 / 108, rel=1e-12)


def test_split_k_hand_computed():
    # 128 x 4096 x 4096 in 128x128 tiles: 32 tiles < 108 units; split 3 -> 96 tiles in one
    # wave (96/108), each split ceil(4096 / 96) = 43 K steps of 32: e_k = 4096 / 4128;
    # split 6 -> 192 in 2 waves (0.889) but e_k = 4096/4224: 3 wins. Reduction: the 3
    # fp32 partial tiles written and read back, 2 x 3 x 128 x 4096 x 4 bytes.
    hw = as_hardware(_a100(tiles="128x128"))
    shape = gemm_efficiency(hw, 128, 4096, 4096, RATE, 2.0, 2.0, 0.0)
    assert shape.split == 3
    assert shape.efficiency == pytest.approx(96 / 108 * 4096 / 4128, rel=1e-12)
    assert shape.reduction_bytes == 2 * 3 * 128 * 4096 * 4


def test_large_shape_keeps_the_asymptote():
    with_fields = gemm_cost(A100, 8192, 8192, 8192, "FP16").time_s
    without = gemm_cost(_a100(drop=True), 8192, 8192, 8192, "FP16").time_s
    assert with_fields == pytest.approx(without, rel=0.01)
    assert with_fields >= without


def test_profile_without_fields_is_the_roofline():
    # compute-bound 8192^3 on the a100 without a `gemm` block: flops / achievable + launch
    cost = gemm_cost(_a100(drop=True), 8192, 8192, 8192, "FP16")
    assert cost.time_s == pytest.approx(2 * 8192**3 / RATE + 3.4e-6, rel=1e-9)
    assert gemm_efficiency(as_hardware("apple-m2"), 128, 128, 128, 1e12, 2, 2, 0.0) is None


def test_small_m_wave_limited_slower_than_roofline():
    # 128 tokens through a 4096 x 4096 projection without split-K: 32 tiles of 128 x 128
    # at best fill 32 of 108 SMs, far below the roofline's full-chip rate
    slow = gemm_cost(_a100(tiles="128x128", max_split=1), 128, 4096, 4096, "FP16")
    flat = gemm_cost(_a100(drop=True), 128, 4096, 4096, "FP16")
    assert slow.time_s > 2.0 * flat.time_s


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 4096), n=st.integers(16, 8192), k=st.integers(16, 8192),
       dm=st.integers(1, 512), axis=st.sampled_from("mnk"))
def test_time_non_decreasing_in_each_dimension(m, n, k, dm, axis):
    base = dict(m=m, n=n, k=k)
    grown = dict(base, **{axis: base[axis] + dm})
    for prof in (A100, "h100-sxm"):
        t0 = gemm_cost(prof, base["m"], base["n"], base["k"], "FP16").time_s
        t1 = gemm_cost(prof, grown["m"], grown["n"], grown["k"], "FP16").time_s
        assert t1 >= t0 * (1 - 1e-12)


def test_causal_blocks_hand_computed():
    # 256 queries over 256 keys, Br x Bc = 128 x 64: row block 0 reaches key 128 (2
    # blocks), row block 1 key 256 (4 blocks) -> 6; non-causal 2 x 4 = 8
    assert flash_blocks(256, 256, 128, 64) == 6
    assert flash_blocks(256, 256, 128, 64, causal=False) == 8
    # 100 queries after 28 cached keys: one row block reaching key 128 -> 2 blocks
    assert flash_blocks(100, 128, 128, 64) == 2
    # vectorised over lengths
    np.testing.assert_array_equal(flash_blocks(np.array([128, 256]), np.array([128, 256]),
                                              128, 64), [2, 6])


def test_prefill_attention_counts_visited_blocks():
    # 128 causal queries, one 128 x 64 row block: 2 full blocks = 128 x 128 pairs computed
    # (the causal mask keeps 128 x 129 / 2), at 32 heads
    cost = attention_cost(A100, 1, 128, 128, 32, 32, 128)
    assert cost.flops == pytest.approx(4 * 32 * 128 * 128 * 128)
    decode = attention_cost(A100, 1, 1, 128, 32, 32, 128)
    assert decode.flops == pytest.approx(4 * 32 * 128 * 128)  # one query: pairs as before



@settings(max_examples=300, deadline=None)
@given(q=st.integers(1, 5000), p=st.integers(-300, 5000), bc=st.integers(1, 160),
       ratio=st.integers(1, 6), odd=st.booleans(), arrays=st.booleans())
def test_causal_blocks_closed_form_equals_the_sum_by_row_block(q, p, bc, ratio, odd, arrays):
    """The closed form (integral lengths, Br a multiple of Bc) counts exactly the blocks
    the sum over row blocks counts; other tiles and fractional lengths take that sum."""
    from precsim.simulator.gemm_shape import _blocks_by_row
    br = bc * ratio + (1 if odd else 0)  # odd: Br not a multiple of Bc (the sum itself)
    kv = max(q + p, 1)
    qs, kvs = (np.array([q, q + 1]), np.array([kv, kv + 1])) if arrays else (q, kv)
    rows = np.ceil(np.asarray(qs, dtype=float) / br)
    got, want = flash_blocks(qs, kvs, br, bc), _blocks_by_row(qs, kvs, br, bc, rows)
    np.testing.assert_array_equal(got, want)
    assert np.shape(got) == np.shape(want)
    half = flash_blocks(np.asarray(qs) - 0.5, kvs, br, bc)  # fractional: by row block
    np.testing.assert_array_equal(half, _blocks_by_row(np.asarray(qs) - 0.5, kvs, br, bc,
                                                       np.ceil((np.asarray(qs) - 0.5) / br)))
