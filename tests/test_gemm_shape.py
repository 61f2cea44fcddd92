"""Shape-dependent GEMM efficiency (simulator.gemm_shape) and flash-attention blocks."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from precsim.simulator.gemm_shape import ceil, closed_tile, flash_blocks, gemm_efficiency
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
    assert closed_tile(br, bc) == (not odd or bc == 1)  # the tile's test, kept per profile
    kept = flash_blocks(qs, kvs, br, bc, tile_closed=closed_tile(br, bc))
    np.testing.assert_array_equal(kept, want)
    assert type(kept) is type(got)
    assert np.shape(got) == np.shape(want)
    half = flash_blocks(np.asarray(qs) - 0.5, kvs, br, bc)  # fractional: by row block
    np.testing.assert_array_equal(half, _blocks_by_row(np.asarray(qs) - 0.5, kvs, br, bc,
                                                       np.ceil((np.asarray(qs) - 0.5) / br)))


@settings(max_examples=40, deadline=None)
@given(m=st.lists(st.floats(1.0, 1e5), min_size=1, max_size=5),
       n=st.floats(1.0, 1e5), s_a=st.sampled_from([0.5, 1.0, 2.0]),
       s_w=st.sampled_from([0.25, 0.515625, 2.0]), nd=st.integers(1, 3),
       profile=st.sampled_from([A100, "host", "h100-sxm"]))
def test_staged_tiles_are_the_output_tile_of_each_staging_level(m, n, s_a, s_w, nd, profile):
    """One stacked evaluation (its shape-free terms kept per profile) equals
    `output_tile` at each staging level, bit for bit, with `nd` element axes."""
    from precsim.simulator.roofline import output_tile, staged_tiles, staging_bytes
    hw = as_hardware(profile)
    m = np.array(m)
    for _ in range(2):  # the second call reads the kept terms
        tm, tn = staged_tiles(hw, m, n, s_a, s_w, nd)
        assert tm.shape == (max(hw.n_levels - 1, 1),) + (1,) * (nd - 1) + m.shape
        for j in range(1, max(hw.n_levels, 2)):
            want = output_tile(m, n, s_a, s_w, staging_bytes(hw, j))
            assert np.array_equal(tm[j - 1].reshape(m.shape), want[0])
            assert np.array_equal(tn[j - 1].reshape(m.shape), want[1])


@settings(max_examples=60, deadline=None)
@given(m=st.lists(st.one_of(st.floats(0.5, 1e300), st.sampled_from([np.inf, np.nan, 1.0])),
                  min_size=1, max_size=5),
       n=st.one_of(st.floats(0.5, 1e300), st.just(np.nan)),
       s_a=st.sampled_from([0.5, 1.0, 2.0]), s_w=st.sampled_from([0.25, 0.515625, 2.0, 64.0]),
       profile=st.sampled_from([A100, "host", "h100-sxm"]))
def test_staged_tiles_leave_at_least_one_read(m, n, s_a, s_w, profile):
    """The staged tiles are clipped to the problem: m / tm and n / tn are at least 1 (or
    NaN), so `gemm_cost`'s reads max(1, m / tm), max(1, n / tn) are the quotients."""
    from precsim.simulator.roofline import staged_tiles
    m = np.array(m)
    tm, tn = staged_tiles(as_hardware(profile), m, n, s_a, s_w, 1)
    for size, tile in ((m, tm), (n, tn)):
        reads = size / tile
        assert np.array_equal(np.maximum(1.0, reads), reads, equal_nan=True)


def test_weight_shape_terms_are_kept_per_shape_and_bounded(monkeypatch):
    """`_shape_terms` keeps the (n, k) terms of small weight shapes (read-only), at most
    SHAPE_MEMO_MAX of them; a choice with kept terms equals one computed afresh."""
    from precsim.simulator import gemm_shape
    hw = as_hardware(_a100())
    m, n, k = np.array([1.0, 512.0]), np.array([4096.0, 11008.0]), np.array([4096.0, 4096.0])
    first = gemm_efficiency(hw, m, n, k, RATE, 2.0, 2.0, 1e-5)
    again = gemm_efficiency(hw, m, n.copy(), k.copy(), RATE, 2.0, 2.0, 1e-5)
    memo = hw.exec_cache[("gemm_nk", 1)]
    assert len(memo) == 1 and not any(a.flags.writeable for a in next(iter(memo.values())))
    for name in ("efficiency", "tile_m", "tile_n", "split", "reduction_bytes"):
        assert np.array_equal(getattr(first, name), getattr(again, name)), name
    monkeypatch.setattr(gemm_shape, "SHAPE_MEMO_MAX", 3)
    for width in range(1, 6):
        gemm_efficiency(hw, m, n * width, k, RATE, 2.0, 2.0, 1e-5)
    assert len(memo) == 3


def test_tied_candidates_go_to_the_fewest_reduction_bytes_then_the_first_tile():
    """A memory-bound GEMV (memory time 1 s) ties every allowed candidate at the memory
    time (split-K bytes fit the L2, overlapped): the unsplit one (no reduction bytes)
    with the profile's first tile (256x128) is chosen; m = 128 of 4096 x 4096 with
    128x128 tiles, compute-bound, ties none and takes split 3 (as hand-computed above)."""
    hw = as_hardware(_a100())
    shape = gemm_efficiency(hw, np.array([1.0, 1.0]), 4096.0, 4096.0, RATE, 2.0, 2.0, 1.0)
    assert np.array_equal(shape.split, [1.0, 1.0]) and np.array_equal(shape.tile_m, [256, 256])
    assert np.array_equal(shape.tile_n, [128, 128])
    assert np.array_equal(shape.reduction_bytes, [0.0, 0.0])
    mixed = gemm_efficiency(as_hardware(_a100(tiles="128x128")), np.array([1.0, 128.0]),
                            4096.0, 4096.0, RATE, 2.0, 2.0, np.array([1.0, 0.0]))
    assert mixed.split.tolist() == [1.0, 3.0]


@settings(max_examples=25, deadline=None)
@given(m=st.lists(st.sampled_from([1.0, 7.0, 128.0, 512.0, 3000.0]), min_size=1, max_size=3),
       k=st.lists(st.sampled_from([64.0, 4096.0, 11008.0]), min_size=1, max_size=2),
       bits=st.sampled_from([16.0, 32.0]), fused=st.booleans(),
       profile=st.sampled_from([A100, "h100-sxm", "host"]),
       quant=st.sampled_from(["W16A16", "W4A16-g128", "W8A8"]))
def test_gemm_cost_on_broadcast_axes_equals_each_scalar_call(m, k, bits, fused, profile,
                                                             quant):
    """m, k and the output bits on three different axes (the memory time has axes the
    tile choice's efficiency has not): every element equals its scalar call exactly."""
    m, k, out = np.array(m), np.array(k)[:, None], np.array([16.0, bits])[:, None, None]
    cost = gemm_cost(profile, m, 4096.0, k, quant, out_bits=out, fused_dequant=fused)
    assert np.shape(cost.time_s) == (2, len(k), len(m))
    for i, j, e in np.ndindex(2, len(k), len(m)):
        one = gemm_cost(profile, float(m[e]), 4096.0, float(k[j, 0]), quant,
                        out_bits=float(out[i, 0, 0]), fused_dequant=fused)
        for field in ("time_s", "energy_j", "memory_time_s", "convert_ops"):
            assert np.broadcast_to(getattr(cost, field), (2, len(k), len(m)))[i, j, e] \
                == getattr(one, field), field


@settings(max_examples=60, deadline=None)
@given(m=st.lists(st.floats(1.0, 1e18), min_size=1, max_size=4),
       n=st.sampled_from([64.0, 4096.0, 11008.0, 3e16]), memory_time=st.floats(0.0, 1e-2))
def test_the_chosen_split_leaves_its_tiles_short_of_the_units(m, n, memory_time):
    """The allowed-candidate test (tiles x split < units x split) is the tiles' own:
    a chosen split > 1 has ceil(m / tm) ceil(n / tn) < units, also for shapes past
    2**53 (a100: 108 SMs)."""
    shape = gemm_efficiency(as_hardware(_a100()), np.array(m), n, 4096.0, RATE, 2.0, 2.0,
                            memory_time)
    tiles = np.ceil(np.array(m) / shape.tile_m) * np.ceil(n / shape.tile_n)
    assert np.all((shape.split == 1.0) | (tiles < 108.0))
    assert np.all(np.isfinite(shape.efficiency))


_LEVEL_BYTES = st.one_of(st.floats(0.0, 1e12), st.integers(0, 10 ** 6),
                         st.floats(0.0, 1e12).map(np.array),
                         st.lists(st.floats(0.0, 1e12), min_size=3, max_size=3).map(np.array))


@settings(max_examples=80, deadline=None)
@given(values=st.lists(_LEVEL_BYTES, min_size=1, max_size=4), same=st.lists(st.booleans(),
       min_size=4, max_size=4), home=st.integers(0, 3),
       red=st.one_of(st.floats(0.0, 1e9).map(np.array),
                     st.lists(st.floats(0.0, 1e9), min_size=3, max_size=3).map(np.array)))
def test_reduction_bytes_added_directly_are_level_bytes_sums(values, same, home, red):
    """`_with_reduction` (one home) gives `level_bytes`' sums of the levels (homed in
    main memory) and the reduction bytes: the same values, types and shared sums."""
    from precsim.simulator.gemm_shape import _with_reduction
    from precsim.simulator.levels import level_bytes
    hw = as_hardware(A100)
    levels = [values[0]]
    for j in range(1, hw.n_levels):  # a level may carry the same object as the one before
        levels.append(levels[-1] if same[j] or j >= len(values) else values[j])
    home = min(home, hw.main)
    want = level_bytes(hw, ((hw.main, tuple(levels)), (home, red)))
    got = _with_reduction(levels, home, red)
    assert [type(x) for x in got] == [type(x) for x in want]
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    assert [a is b for a, b in zip(got, got[1:])] == [a is b for a, b in zip(want, want[1:])]


@settings(max_examples=30, deadline=None)
@given(m=st.lists(st.sampled_from([1.0, 3.0, 128.0, 512.0, 5000.0]), min_size=1, max_size=4),
       n=st.sampled_from([64.0, 4096.0, 11008.0]), k=st.sampled_from([96.0, 4096.0]),
       memory_time=st.sampled_from([0.0, 1e-6, 1e-3]),
       profile=st.sampled_from([A100, "h100-sxm"]))
def test_kept_weight_shape_terms_choose_as_terms_formed_afresh(m, n, k, memory_time, profile):
    """`_shape_terms` kept per weight shape (shaped as the candidates x elements) and
    formed afresh for a shape too large to keep give the same choice, bit for bit."""
    from precsim.simulator import gemm_shape
    m = np.array(m)
    n, k = np.full(m.shape, n), np.full(m.shape, k)
    hw = as_hardware(profile)
    kept = gemm_efficiency(hw, m, n, k, RATE, 2.0, 2.0, memory_time)
    original = gemm_shape.SHAPE_MEMO_ELEMENTS
    try:
        gemm_shape.SHAPE_MEMO_ELEMENTS = 0  # (the kept terms are not looked up)
        fresh = gemm_efficiency(hw, m, n, k, RATE, 2.0, 2.0, memory_time)
    finally:
        gemm_shape.SHAPE_MEMO_ELEMENTS = original
    for name in ("efficiency", "tile_m", "tile_n", "split", "reduction_bytes"):
        assert np.array_equal(getattr(kept, name), getattr(fresh, name)), name


@given(x=st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.floats(-1e6, 1e6).map(np.float64), st.integers(-10**6, 10**6),
                   st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=3).map(np.array)))
def test_ceil_is_numpys_ceil_a_positive_finite_float_as_a_python_float(x):
    """`gemm_shape.ceil` (flash_blocks, flash_waves): np.ceil's doubles; math.ceil's Python
    float only for a positive finite Python float, np.ceil itself otherwise."""
    got, want = ceil(x), np.ceil(x)
    if type(x) is float and 0.0 < x < float("inf"):
        assert type(got) is float and got == want
    else:
        assert type(got) is type(want)
        np.testing.assert_array_equal(got, want)
        assert np.array_equal(np.signbit(got), np.signbit(want))
