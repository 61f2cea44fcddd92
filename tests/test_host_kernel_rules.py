"""Profile fields that describe how a CPU software stack runs kernels (host profile):
`vector.rate`, `compute.<type>.stream_fraction`, `overheads.matmul_overlap`,
`weight_only`, `attention` — exact values against the cost model's formulas, and that
profiles without them keep the roofline's behaviour."""
from __future__ import annotations

import numpy as np
import pytest

from precsim.simulator.errors import InputError
from precsim.simulator.hardware import STAGING_FRACTION, as_hardware
from precsim.simulator.kernels import (attention_cost, elementwise_cost, gemm_cost, norm_cost,
                                       widen_ops)
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.roofline import chain_hit_share

HOST = load_profile("host")


def test_matmul_overlap_zero_adds_streaming_and_math():
    apart = HOST.with_overrides({"overheads.matmul_overlap": 0.0})
    hidden = HOST.with_overrides({"overheads.matmul_overlap": 1.0})
    a = gemm_cost(apart, 64, 4096, 4096, "BF16")
    h = gemm_cost(hidden, 64, 4096, 4096, "BF16")
    launch = HOST.kernel_launch_s
    assert a.time_s == pytest.approx(h.compute_time_s + h.memory_time_s + launch)
    assert h.time_s == pytest.approx(max(h.compute_time_s, h.memory_time_s) + launch)
    # element-wise kernels are never penalised by the matmul overlap
    e_a = elementwise_cost(apart, 1e8, 1e8, 1e6)
    e_h = elementwise_cost(hidden, 1e8, 1e8, 1e6)
    assert e_a.time_s == pytest.approx(e_h.time_s)


def test_stream_fraction_scales_matrix_kernel_memory_time_only():
    full = HOST.with_overrides({"compute.bf16.stream_fraction": 1.0})
    half = HOST.with_overrides({"compute.bf16.stream_fraction": 0.5})
    g_full = gemm_cost(full, 1, 8192, 8192, "BF16")
    g_half = gemm_cost(half, 1, 8192, 8192, "BF16")
    assert g_half.memory_time_s == pytest.approx(2.0 * g_full.memory_time_s)
    hw = as_hardware(full)
    dram = g_full.bytes_moved["dram"] / hw.bandwidth_bytes_per_s[-1]
    assert g_full.memory_time_s == pytest.approx(dram)
    assert elementwise_cost(half, 1e8, 1e8, 1.0).memory_time_s == pytest.approx(
        elementwise_cost(full, 1e8, 1e8, 1.0).memory_time_s)


def test_exclusive_weight_only_kernel_runs_every_shape_at_its_rate():
    kernel = HOST.weight_only["int4"]
    for m in (1, 512):
        cost = gemm_cost(HOST, m, 4096, 4096, "W4A16-g128")
        assert cost.exec_path == "weight_only" and cost.convert_ops == 0
        assert cost.flops == 2 * m * 4096 * 4096
    big = gemm_cost(HOST, 512, 4096, 4096, "W4A16-g128")
    assert big.compute_time_s == pytest.approx(big.flops / kernel.achievable_ops_per_s)
    # not exclusive: one more option, and the kernel takes the fastest
    optional = HOST.with_overrides({"weight_only.int4.exclusive": False})
    assert gemm_cost(optional, 512, 4096, 4096, "W4A16-g128").time_s <= big.time_s


def test_vector_rate_prices_element_wise_work_and_bf16_is_widened():
    rate = HOST.vector.rate.value
    cost = elementwise_cost(HOST, 64.0, 64.0, 1e9)
    assert cost.compute_time_s == pytest.approx(1e9 / rate)
    assert float(widen_ops(HOST, 1000)) == 1000.0  # fp32 vector unit: 1 op per element
    bf16 = norm_cost(HOST, 8, 1024, in_bits=16.0, out_bits=16.0, kind="layernorm",
                     fused_residual=False)
    assert bf16.vector_ops == 8 * 1024 * (5 + 2)  # layernorm 5, widen in, narrow out
    no_block = HOST.with_overrides({"vector": None})
    assert as_hardware(no_block).vector_ops_per_s == HOST.achievable_ops_per_s("fp32")


def test_attention_rule_full_causal_product_per_head_kv_and_conversion():
    b, q, h, hd = 1, 256, 8, 64
    host = attention_cost(HOST, b, q, q, h, h, hd, "FP32", causal=True)
    gpu = attention_cost("h100-sxm", b, q, q, h, h, hd, "FP32", causal=True)
    assert host.flops == 4 * b * h * hd * q * q  # masked half computed too
    # the GPU's flash kernel skips blocks above the diagonal: 6 blocks of 128 x 64
    # (simulator.gemm_shape.flash_blocks; the causal pairs are q (q + 1) / 2)
    assert gpu.flops == 4 * b * h * hd * 6 * 128 * 64
    rule = HOST.attention
    assert host.compute_time_s == pytest.approx(
        host.flops / rule.peak.value + host.vector_ops / HOST.vector.rate.value)
    kv, kv_heads = 1024, 4
    per_head = attention_cost(HOST, 1, 1, kv, 16, kv_heads, hd, "BF16")
    shared = attention_cost(HOST.with_overrides({"attention.shares_kv": True}), 1, 1, kv,
                            16, kv_heads, hd, "BF16")
    cache = 2 * kv * hd * 2  # K and V of one head, bf16 (the query lives in a cache)
    assert per_head.bytes_moved["dram"] == pytest.approx(16 * cache)
    assert shared.bytes_moved["dram"] == pytest.approx(kv_heads * cache)
    ops = rule.convert_ops_per_element.value  # every bf16 K/V element read, per head
    assert per_head.convert_ops == pytest.approx(ops * 16 * 2 * kv * hd)


def test_bad_new_fields_name_the_field():
    with pytest.raises(InputError, match="attention.execute_as: fp16 is not native"):
        HOST.with_overrides({"attention.execute_as": "fp16"})
    with pytest.raises(InputError, match="overheads.matmul_overlap.value"):
        HOST.with_overrides({"overheads.matmul_overlap": 1.5})
    with pytest.raises(InputError, match="weight_only.int4.stream_fraction.value"):
        HOST.with_overrides({"weight_only.int4.stream_fraction": 0.0})
    with pytest.raises(InputError, match="vector.rate.value"):
        HOST.with_overrides({"vector.rate": "12 GB/s"})


def test_chain_hit_share_ramps_from_the_usable_cache_to_twice_it():
    hw = as_hardware(HOST)
    llc = hw.main - 1
    usable = STAGING_FRACTION * hw.capacity_bytes[llc]
    tensor = 0.25 * usable  # the largest tensor lives in the last-level cache
    assert chain_hit_share(HOST, 0.9 * usable, tensor) == (llc, 1.0)
    assert chain_hit_share(HOST, usable, tensor)[1] == pytest.approx(1.0)
    assert chain_hit_share(HOST, 1.25 * usable, tensor)[1] == pytest.approx(0.75)
    assert chain_hit_share(HOST, 2.0 * usable, tensor)[1] == pytest.approx(0.0)
    assert chain_hit_share(HOST, 5.0 * usable, tensor)[1] == 0.0
    # a tensor no cache holds: read from main memory, which holds all of it
    assert chain_hit_share(HOST, 5.0 * usable, 2.0 * usable) == (hw.main, 1.0)


def test_dequant_chain_blends_cached_and_main_memory_passes():
    """precsim.validation.simulate prices a dequantise-then-matmul chain as the share of its
    temporaries still cached times the cached chain plus the rest from main memory."""
    from precsim.validation.simulate import FOOTPRINT, _dequant_then_matmul
    hw = as_hardware(HOST)
    usable = STAGING_FRACTION * hw.capacity_bytes[hw.main - 1]
    small = int(usable / FOOTPRINT["w4a16-deq"] / 4096 / 2)  # n with footprint 0.5 C
    mid = int(1.5 * usable / FOOTPRINT["w4a16-deq"] / 4096)  # footprint 1.5 C
    big = int(3 * usable / FOOTPRINT["w4a16-deq"] / 4096)  # footprint 3 C
    per_weight = [(_dequant_then_matmul(hw, "w4a16-deq", 1, n, 4096).time_s) / n
                  for n in (small, mid, big)]
    assert per_weight[0] < per_weight[1] < per_weight[2]
    _, share = chain_hit_share(hw, FOOTPRINT["w4a16-deq"] * mid * 4096, 2.0 * mid * 4096)
    assert 0.0 < share < 1.0


def test_gemm_stream_fraction_prices_few_row_matmuls_and_row_time_only_gemvs():
    assert HOST.compute["fp32"].row_time_s == 0.0  # the template has none
    base = HOST.with_overrides({"compute.fp32.stream_fraction": 0.5,
                                "compute.fp32.gemm_stream_fraction": 0.5})
    slow = base.with_overrides({"compute.fp32.gemm_stream_fraction": 0.25})
    hw = as_hardware(base)
    for m in (1, 4):
        one = gemm_cost(base, m, 4096, 4096, "FP32")
        two = gemm_cost(slow, m, 4096, 4096, "FP32")
        main = one.bytes_moved["dram"] / hw.bandwidth_bytes_per_s[-1]
        stream = 4096 * 4096 * 4.0 / hw.bandwidth_bytes_per_s[-1]
        f = 0.5 if m == 1 else 0.25
        # t_mem = max_j b_j / bw_j + stream bytes (1 - f) / (f bw_main)
        assert two.memory_time_s == pytest.approx(max(main, two.memory_time_s - stream
                                                      * (1 - f) / f) + stream * (1 - f) / f)
        assert (two.time_s > one.time_s) == (m > 1)
    # without the field the few-row path streams at the one-row fraction
    assert HOST.compute["bf16"].gemm_stream_fraction_value == \
        HOST.compute["bf16"].stream_fraction_value
    rows = HOST.with_overrides({"compute.fp32.row_time": {"value": "50 ns",
                                                          "assumed": "test"}})
    no_rows = HOST
    assert gemm_cost(rows, 1, 4096, 1024, "FP32").time_s == pytest.approx(
        gemm_cost(no_rows, 1, 4096, 1024, "FP32").time_s + 4096 * 50e-9)
    assert gemm_cost(rows, 4, 4096, 1024, "FP32").time_s == pytest.approx(
        gemm_cost(no_rows, 4, 4096, 1024, "FP32").time_s)


def _few_rows(f0, f1=None, r0=4, r1=64):
    """HOST with fp32 gemm_stream_fraction f0 at r0 rows and, given f1, the wide share."""
    over = {"compute.fp32.gemm_stream_fraction": {"value": f0, "rows": r0, "assumed": "test"}}
    if f1 is not None:
        over["compute.fp32.gemm_stream_wide"] = {"value": f1, "rows": r1, "assumed": "test"}
    return HOST.with_overrides(over)


def test_gemm_stream_wide_interpolates_in_log_rows_and_is_flat_outside():
    curve = _few_rows(0.4, 0.8)

    def t(profile, m):
        return float(gemm_cost(profile, m, 2048, 1024, "FP32").time_s)
    # at the calibrated rows exactly the calibrated shares; 16 rows is halfway in log
    # between 4 and 64: share 0.6; below 4 and above 64 the end shares; one row untouched
    for m, f in ((2, 0.4), (4, 0.4), (16, 0.6), (64, 0.8), (256, 0.8)):
        assert t(curve, m) == pytest.approx(t(_few_rows(f), m), rel=1e-12)
    assert t(curve, 1) == t(_few_rows(0.4), 1)
    # vectorised over rows: the same numbers in one call
    arr = gemm_cost(curve, np.array([2, 16, 256]), 2048, 1024, "FP32").time_s
    assert list(arr) == pytest.approx([t(curve, 2), t(curve, 16), t(curve, 256)], rel=1e-12)


def test_gemm_stream_wide_needs_both_row_counts():
    with pytest.raises(InputError, match="gemm_stream_wide needs `rows`"):
        HOST.with_overrides({"compute.fp32.gemm_stream_fraction": 0.5,
                             "compute.fp32.gemm_stream_wide":
                                 {"value": 0.8, "rows": 64, "assumed": "test"}})
    with pytest.raises(InputError, match="got 64 and 16"):
        _few_rows(0.5, 0.8, r0=64, r1=16)
    with pytest.raises(InputError, match="rows"):
        _few_rows(0.5, 0.8, r0=1)


def test_attention_tiles_run_bf16_prompts_in_bf16_and_leave_decode_and_fp32_alone():
    """`attention.tiles.bf16` (AMX): a bf16 prompt runs at the tiles' peak without
    converting Q/K/V; a one-query decode and fp32 keep the rule's path."""
    tiled = HOST.with_overrides({"attention.tiles": {"bf16": {
        "peak": {"value": "900 GFLOP/s", "assumed": "test"}}}})
    b, q, h, hd = 1, 256, 8, 64
    on = attention_cost(tiled, b, q, q, h, h, hd, "BF16", causal=True)
    off = attention_cost(HOST, b, q, q, h, h, hd, "BF16", causal=True)
    assert on.exec_dtype == "bf16" and off.exec_dtype == "fp32"
    assert on.convert_ops == 0 and off.convert_ops > 0
    assert on.flops == off.flops == 4 * b * h * hd * q * q  # same blocks computed
    assert on.compute_time_s == pytest.approx(
        on.flops / 900e9 + on.vector_ops / HOST.vector.rate.value)
    for quant, q_len, kv in (("BF16", 1, 1024), ("FP32", 256, 256)):
        args = (b, q_len, kv, h, h, hd, quant)
        assert attention_cost(tiled, *args, causal=q_len > 1).time_s == pytest.approx(
            attention_cost(HOST, *args, causal=q_len > 1).time_s)
    # min_queries: prompts shorter than it keep the rule's path (vectorised over q_len)
    short = tiled.with_overrides({"attention.tiles.bf16.min_queries":
                                  {"value": 300, "assumed": "test"}})
    both = attention_cost(short, 1, np.array([256, 512]), np.array([256, 512]), h, h, hd,
                          "BF16", causal=True)
    assert list(both.exec_dtype) == ["fp32", "bf16"]
    with pytest.raises(InputError, match="attention.tiles.fp16: fp16 is not native"):
        HOST.with_overrides({"attention.tiles": {"fp16": {
            "peak": {"value": "900 GFLOP/s", "assumed": "test"}}}})


def test_rate_by_kernel_runs_only_the_named_kernel_at_its_own_rate():
    own = HOST.with_overrides({"vector.rate_by_kernel": {
        "silu": {"value": "12 GOP/s", "assumed": "test"}}})
    ops = 5e8  # far more math than bytes: compute-bound
    silu = elementwise_cost(own, 64.0, 64.0, ops, kernel="silu")
    assert silu.compute_time_s == pytest.approx(ops / 12e9)
    for kernel in ("gelu", None):
        assert elementwise_cost(own, 64.0, 64.0, ops, kernel=kernel).compute_time_s == \
            pytest.approx(ops / HOST.vector.rate.value)


def test_widen_by_kernel_prices_only_the_named_kernel():
    own = HOST.with_overrides({"vector.widen_by_kernel": {
        "gelu": {"value": 0.25, "assumed": "test"}}})
    half = 3000.0
    assert float(widen_ops(own, half, "gelu")) == pytest.approx(750.0)
    assert float(widen_ops(own, half, "silu")) == float(widen_ops(own, half)) == 3000.0
    args = (4e6, 2e6, 5e6)
    gelu = elementwise_cost(own, *args, half_elements=2e6, kernel="gelu")
    assert gelu.vector_ops == pytest.approx(5e6 + 0.5e6)
    assert elementwise_cost(own, *args, half_elements=2e6).vector_ops == \
        pytest.approx(7e6)
    # norms name their kind: layernorm's entry applies to layer norms only
    ln = HOST.with_overrides({"vector.widen_by_kernel": {
        "layernorm": {"value": 0.5, "assumed": "test"}}})
    n = 8 * 1024
    assert norm_cost(ln, 8, 1024, kind="layernorm", fused_residual=False).vector_ops == \
        pytest.approx(n * (5 + 2 * 0.5))
    assert norm_cost(ln, 8, 1024, kind="rmsnorm", fused_residual=False).vector_ops == \
        pytest.approx(n * (4 + 2))
    with pytest.raises(InputError, match="vector.widen_by_kernel"):
        HOST.with_overrides({"vector.widen_by_kernel": {"softmax": {"value": 1,
                                                                    "assumed": "x"}}})


def test_dequant_overlap_adds_the_unhidden_share_of_each_pass():
    """simulator.dequant: a pass costs max(math, memory) + (1 - o) min(math, memory); at
    o = 1 (absent) the chain is the roofline's, and the chain's time is linear in o."""
    from precsim.simulator.dequant import dequant_chain_cost, serial_pass
    from precsim.simulator.kernels import elementwise_cost
    from precsim.validation.simulate import FOOTPRINT, PASSES
    one = elementwise_cost(HOST, 1e6, 2e6, 3e6)
    t_math, t_mem = float(one.compute_time_s), float(one.memory_time_s)
    half = serial_pass(one, 0.5)
    assert float(half.time_s) == pytest.approx(float(one.time_s) + 0.5 * min(t_math, t_mem))
    assert float(serial_pass(one, 1.0).time_s) == float(one.time_s)
    times = [float(dequant_chain_cost(
        as_hardware(HOST.with_overrides({"vector.dequant_overlap": {"value": o, "assumed": "test"}})),
        1, 2048, 2048, PASSES["w8a16-deq"], FOOTPRINT["w8a16-deq"]).time_s)
        for o in (0.0, 0.5, 1.0)]
    assert times[2] == pytest.approx(float(dequant_chain_cost(
        as_hardware(HOST), 1, 2048, 2048, PASSES["w8a16-deq"], FOOTPRINT["w8a16-deq"]).time_s))
    assert times[0] > times[1] > times[2]
    assert times[1] == pytest.approx((times[0] + times[2]) / 2, rel=1e-9)
