"""Cost model: hand-computed kernels, phases, residency, vectorisation, footprint."""
import numpy as np
import pandas as pd
import pytest

from precsim.simulator.cost import decode_step_cost, prefill_cost, simulate, weight_bytes
from precsim.simulator.errors import InputError
from precsim.simulator.hardware import as_hardware
from precsim.simulator.kernels import (attention_cost, dequant_cost, embedding_cost, gemm_cost,
                                       norm_cost)
from precsim.simulator.mapping import resolve_exec
from precsim.simulator.matmul import matmul_cost
from precsim.simulator.models import TransformerConfig, get_model, model_for_params
from precsim.simulator.power import power_and_energy
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.quant import as_quant

H100 = load_profile("h100-sxm")
A100 = load_profile("a100-sxm-80gb")
HBM_BW = 3.35e12 * 0.70  # h100-sxm hbm achievable_fraction (commit 09c5b3f)
BF16 = 989.4e12 * 0.803
GPUS = [p.name for p in (H100, A100, load_profile("l4"), load_profile("rtx-4090"))]


def test_gemv_w4a16_g128_moves_exact_weight_bytes():
    cost = gemm_cost(H100, 1, 4096, 4096, "W4A16-g128", group="mlp")
    assert cost.bytes_moved["hbm"] == 4096 * 4096 * 4.125 / 8
    # input and output vectors (8 KiB each) stay in L2: they cross l2 and smem only
    assert cost.bytes_moved["l2"] == 4096 * 4096 * 4.125 / 8 + 2 * 4096 * 2


def test_gemv_bf16_time_is_memory_roofline_plus_launch():
    cost = gemm_cost(H100, 1, 4096, 4096, "W16A16")
    weights = 4096 * 4096 * 2
    assert cost.bytes_moved["hbm"] == weights
    assert cost.time_s == pytest.approx(weights / HBM_BW + 3.4e-6, rel=1e-12)
    assert cost.exec_dtype == "bf16" and cost.bound == "memory"
    # dynamic only (board baseline: simulator.power): bf16 0.67 pJ/FLOP, HBM 3.97 pJ/bit,
    # L2 12.5 + smem 2.5 pJ/B for the weights and the 16 KiB of activations
    assert cost.energy_j == pytest.approx(
        2 * 4096**2 * 0.67e-12 + weights * 3.97e-12 * 8
        + (weights + 16384) * (12.5e-12 + 2.5e-12), rel=1e-9)


def test_large_gemm_is_compute_bound_at_achievable_peak():
    cost = gemm_cost(H100, 8192, 8192, 8192, "W16A16")
    assert cost.bound == "compute"
    # wave quantization: 64x64 tiles, 16384 in 125 waves of 132 SMs, and their operand
    # feed (simulator.gemm_shape) keep it 1.1% above the achievable peak
    flat = 2 * 8192**3 / BF16 + 3.4e-6
    assert flat < cost.time_s < flat * 1.012


def test_gemm_reuse_compulsory_when_it_fits_and_rereads_when_not():
    small = gemm_cost(H100, 64, 1024, 1024, "W16A16")
    assert small.bytes_moved["hbm"] == 1024 * 1024 * 2  # activations stay in L2
    big = gemm_cost(H100, 16384, 16384, 16384, "W16A16", act_home=2, out_home=2)
    compulsory = 3 * 16384**2 * 2
    assert big.bytes_moved["hbm"] > 1.5 * compulsory


def test_int4_on_h100_falls_back_to_bf16_with_dequant_cost():
    plan = resolve_exec(H100, "int4", "bf16")
    assert plan.exec_dtype == "bf16" and plan.path == "fallback"
    assert plan.w_convert_ops == 4
    cost = gemm_cost(H100, 1, 4096, 4096, "W4A16-g128")
    assert cost.convert_ops == 4096 * 4096 * 4
    fp32 = 66.9e12 * 0.8
    assert cost.time_s == pytest.approx(4096 * 4096 * 4.125 / 8 / HBM_BW
                                        + 4096 * 4096 * 4 / fp32 + 3.4e-6, rel=1e-9)


def test_exec_dtype_resolution():
    assert resolve_exec(H100, "int8", "int8").exec_dtype == "int8"
    mixed = resolve_exec(H100, "int8", "bf16")
    assert mixed.exec_dtype == "bf16" and mixed.path == "mixed" and mixed.w_convert_ops == 2
    assert resolve_exec(A100, "int4", "int4").exec_dtype == "int4"
    assert resolve_exec(A100, "fp8_e4m3", "fp8_e4m3").exec_dtype == "fp16"
    assert resolve_exec(H100, "ternary", "int8").exec_dtype == "int8"
    accel = load_profile("ternary-accel")
    native = resolve_exec(accel, "ternary", "int8")
    assert native.exec_dtype == "ternary" and native.w_convert_ops == 0
    assert resolve_exec(H100, "int2", "bf16").path == "widen"


def test_separate_dequant_kernel_moves_more_bytes():
    fused = gemm_cost(H100, 16, 4096, 4096, "W4A16-g128")
    split = gemm_cost(H100, 16, 4096, 4096, "W4A16-g128", fused_dequant=False)
    assert split.n_kernels == 2
    assert split.bytes_moved["hbm"] == pytest.approx(
        fused.bytes_moved["hbm"] + 4096 * 4096 * 2 * 2)  # write + read bf16 copy
    assert split.time_s > fused.time_s
    alone = dequant_cost(H100, 4096 * 4096, "W4A16-g128")
    assert alone.convert_ops == 4096 * 4096 * 4


def test_decode_attention_reads_kv_at_kv_bits():
    kw = dict(batch=4, q_len=1, kv_len=2048, n_heads=32, n_kv_heads=8, head_dim=128)
    bf16 = attention_cost(H100, quant="W16A16", **kw)
    kv8 = attention_cost(H100, quant="W16A16-KV8", **kw)
    kv_bf16 = 2 * 4 * 8 * 2048 * 128 * 2
    assert bf16.bytes_moved["hbm"] == kv_bf16
    assert kv8.bytes_moved["hbm"] == kv_bf16 / 2
    assert kv8.convert_ops > 0 and bf16.convert_ops == 0
    assert bf16.bound == "memory"


def test_prefill_attention_flash_vs_unfused():
    kw = dict(batch=1, q_len=8192, kv_len=8192, n_heads=32, n_kv_heads=32, head_dim=128)
    flash = attention_cost(H100, **kw)
    naive = attention_cost(H100, flash=False, **kw)
    assert naive.n_kernels == 3 and flash.n_kernels == 1
    scores = 32 * 8192**2 * 2
    assert naive.bytes_moved["hbm"] >= 4 * scores
    # the H100's 128 x 64 flash blocks: row block i visits 2 (i + 1) blocks, the
    # diagonal ones in full: 2 x 64 x 65 / 2 = 4160 blocks (causal pairs: 8192 x 8193 / 2)
    assert flash.flops == pytest.approx(4 * 32 * 128 * 4160 * 128 * 64)
    assert naive.flops == 4 * 32 * 128 * 8192**2
    assert flash.time_s < naive.time_s


def test_elementwise_kernels():
    norm = norm_cost(H100, 1, 4096)
    # rmsnorm 4 + residual add 1, plus widening the two bf16 inputs and narrowing the
    # two bf16 outputs on H100's fp32 vector unit (1 op each)
    assert norm.vector_ops == 4096 * (5 + 4) and norm.bound == "overhead"
    fp32 = norm_cost(H100, 1, 4096, in_bits=32.0, out_bits=32.0, kind="layernorm",
                     fused_residual=False)
    assert fp32.vector_ops == 4096 * 5
    emb = embedding_cost(H100, 8, 4096, "W16A16")
    assert emb.bytes_moved["hbm"] == 8 * 4096 * 2


def test_decode_memory_bound_and_prefill_compute_bound_on_gpus():
    for name in GPUS:
        dec = decode_step_cost(name, "llama-2-7b", "W16A16", 1, 1024).ops
        gemms = dec[dec.op.str.endswith("proj")]
        assert set(gemms.bound) == {"memory"}, name
        pre = prefill_cost(name, "llama-3.2-1b", "W16A16", 4, 2048).ops
        assert set(pre[pre.op.str.endswith("proj")].bound) == {"compute"}, name


def test_decode_step_launches_nine_kernels_per_layer():
    dec = decode_step_cost(H100, "llama-2-7b", "W16A16", 1, 100)
    assert dec.n_kernels == 32 * 9 + 4
    assert dec.overhead_time_s == pytest.approx((32 * 9 + 4) * 3.4e-6)
    bitnet = decode_step_cost(H100, "bitnet-b1.58-2b4t", "W1.58A8", 1, 100)
    assert bitnet.n_kernels == 30 * 11 + 4


def test_decode_reads_every_weight_once():
    model = get_model("llama-2-7b")
    dec = decode_step_cost(H100, model, "W4A16-g128", 1, 1)
    wb = weight_bytes(model, as_quant("W4A16-g128"))
    streamed = wb["attn"] + wb["mlp"] + wb["lm_head"]
    kv = 2 * 32 * 4096 * 2
    assert dec.bytes_moved["hbm"] == pytest.approx(streamed + 4096 * 4.125 / 8 + kv + kv,
                                                   rel=1e-6)


def test_simulate_totals_and_op_table_agree():
    res = simulate(H100, "llama-2-7b", "W4A16-g128", 2, 256, 33)
    t = res.totals
    ops = res.ops
    # the op table is kernel time and dynamic energy; totals put each phase through the
    # board power model (baseline, cap)
    pre, dec = (ops[ops.phase == phase] for phase in ("prefill", "decode"))
    board_pre = power_and_energy(H100, pre.time_s.sum(), pre.energy_j.sum())
    board_dec = power_and_energy(H100, dec.time_s.sum(), dec.energy_j.sum())
    assert t["ttft_s"] == pytest.approx(board_pre.time_s)
    assert t["e2e_latency_s"] == pytest.approx(board_pre.time_s + board_dec.time_s)
    steps = [decode_step_cost(H100, "llama-2-7b", "W4A16-g128", 2, 256 + i).time_s
             for i in range(1, 33)]
    assert t["tpot_s"] == pytest.approx(np.mean(steps) / board_dec.clock_fraction,
                                        rel=1e-12)
    assert t["decode_tokens_per_s"] == pytest.approx(2 / t["tpot_s"])
    assert t["energy_j"] == pytest.approx(board_pre.energy_j + board_dec.energy_j)
    assert t["energy_j"] == pytest.approx(t["energy_static_j"] + t["energy_compute_j"]
                                          + sum(t["energy_memory_j"].values()))
    assert t["fits"] and t["capacity_bytes"] == 80 * 2**30   # 80 GiB (binary DRAM)
    assert {"op", "phase", "exec_dtype", "bound", "bytes_hbm", "time_s", "energy_j",
            "shape"} <= set(ops.columns)


def test_simulate_midpoint_rule_matches_exact_sum():
    exact = simulate(H100, "llama-3.2-1b", "W16A16", 4, 128, 200, decode_nodes=256)
    rule = simulate(H100, "llama-3.2-1b", "W16A16", 4, 128, 200, decode_nodes=16)
    assert rule.totals["tpot_s"] == pytest.approx(exact.totals["tpot_s"], rel=1e-3)


def test_a_request_does_not_depend_on_the_others_in_a_call():
    """Issue: the decode rule (exact sum or midpoint) and its length followed the largest
    gen_len of the call, so a short request summed exactly alone was approximated next
    to a long one. Every element must equal its scalar call bit for bit."""
    both = simulate(H100, "llama-3.2-1b", "W4A16-g128", 1, 1, np.array([8, 1000])).totals
    grid = simulate(H100, "llama-3.2-1b", "W4A16-g128", np.array([[1], [8]]),
                    np.array([[128, 2048]]), np.array([[1], [65]])).totals
    for i, gen in enumerate([8, 1000]):
        one = simulate(H100, "llama-3.2-1b", "W4A16-g128", 1, 1, gen).totals
        for name in ("ttft_s", "tpot_s", "e2e_latency_s", "energy_j", "energy_per_token_j",
                     "decode_energy_per_token_j", "kernels_per_decode_step"):
            assert np.broadcast_to(both[name], (2,))[i] == one[name], (name, gen)
        for level, moved in one["bytes_moved"].items():
            assert both["bytes_moved"][level][i] == moved
    for (i, b, g), j, p in [((0, 1, 1), 0, 128), ((1, 8, 65), 1, 2048)]:
        one = simulate(H100, "llama-3.2-1b", "W4A16-g128", b, p, g).totals
        for name in ("e2e_latency_s", "energy_j", "tpot_s"):
            assert np.array_equal(grid[name][i, j], one[name], equal_nan=True), name
    # 8 generated tokens are 7 exact steps: the mean of the 7 step costs
    steps = [decode_step_cost(H100, "llama-3.2-1b", "W4A16-g128", 1, 1 + i).time_s
             for i in range(1, 8)]
    assert both["tpot_s"][0] == pytest.approx(np.mean(steps), rel=1e-12)


def test_single_token_request_has_no_decode():
    res = simulate(H100, "llama-3.2-1b", "W16A16", 1, 64, 1)
    assert np.isnan(res.totals["tpot_s"]) and res.totals["e2e_latency_s"] == res.totals["ttft_s"]


def test_vectorised_sweep_equals_scalar_calls():
    batch = np.array([1, 8, 64])[:, None]
    ctx = np.array([128, 4096])[None, :]
    grid = decode_step_cost(H100, "llama-2-7b", "W4A16-g128", batch, ctx)
    assert grid.time_s.shape == (3, 2)
    for i, b in enumerate([1, 8, 64]):
        for j, c in enumerate([128, 4096]):
            one = decode_step_cost(H100, "llama-2-7b", "W4A16-g128", b, c)
            assert grid.time_s[i, j] == pytest.approx(one.time_s, rel=1e-12)
            assert grid.bytes_moved["hbm"][i, j] == pytest.approx(one.bytes_moved["hbm"])


def test_sweep_formats_profiles_and_model_sizes():
    quants = as_quant(["W16A16", "W8A8", "W4A16-g128"])
    profiles = np.array(["h100-sxm", "a100-sxm-80gb"], dtype=object)[:, None]
    res = simulate(profiles, "llama-2-7b", quants[None, :], 1, 128, 8)
    tps = res.totals["decode_tokens_per_s"]
    assert tps.shape == (2, 3)
    assert np.all(tps[0] > tps[1])  # H100 beats A100 in every format
    assert np.all(np.diff(tps, axis=1) > 0)  # fewer bits, faster decode
    one = simulate(A100, "llama-2-7b", "W8A8", 1, 128, 8).totals["decode_tokens_per_s"]
    assert tps[1, 1] == pytest.approx(one)
    sizes = model_for_params(np.geomspace(1e8, 7e10, 6))
    res = simulate(H100, sizes, "W4A16-g128", 1, 256, 16)
    assert res.totals["tpot_s"].shape == (6,)
    assert np.all(np.diff(res.totals["tpot_s"]) > 0)
    with pytest.raises(InputError, match="scalar inputs"):
        res.ops


def test_mixed_level_profiles_are_aligned_from_main_memory():
    res = decode_step_cost(np.array(["h100-sxm", "host"], dtype=object), "qwen2.5-0.5b",
                           "W16A16", 1, 64)
    assert list(res.bytes_moved)[-1] == "main"
    assert res.time_s[1] > res.time_s[0]


def test_not_fitting_is_reported_with_the_need():
    res = simulate(H100, "llama-2-7b", "W16A16", 64, 8192, 16)
    t = res.totals
    assert not t["fits"]
    assert t["memory_bytes"] == pytest.approx(t["weight_bytes"] + t["kv_cache_bytes"]
                                              + t["activation_bytes"])
    assert t["kv_cache_bytes"] == 64 * (8192 + 16) * 2 * 32 * 4096 * 2


def test_sliding_window_caps_attention_and_cache():
    mistral = get_model("mistral-7b")
    assert mistral.sliding_window == 4096
    at_window = decode_step_cost(H100, mistral, "W16A16", 1, 4096)
    beyond = decode_step_cost(H100, mistral, "W16A16", 1, 32768)
    assert beyond.time_s == at_window.time_s
    t = simulate(H100, mistral, "W16A16", 2, 8000, 8).totals
    assert t["kv_cache_bytes"] == 2 * 4096 * 2 * 32 * 1024 * 2
    windowed = attention_cost(H100, 1, 8192, 8192, 32, 8, 128, window=4096)
    assert windowed.flops == pytest.approx(4 * 32 * 128 * (4096 * 4097 / 2 + 4096 * 4096))


def test_per_group_overrides_change_weight_bytes():
    model = get_model("llama-2-7b")
    plain = weight_bytes(model, as_quant("W4A16-g128"))
    head16 = weight_bytes(model, as_quant("W4A16-g128@lm_head=W16A16,embedding=W16A16"))
    assert head16["lm_head"] == 32000 * 4096 * 2
    assert head16["mlp"] == plain["mlp"]
    tied = get_model("llama-3.2-1b")
    assert weight_bytes(tied, as_quant("W16A16"))["lm_head"] == 0
    assert weight_bytes(tied, as_quant("W4A16-g128@lm_head=W16A16"))["lm_head"] > 0


def test_model_resident_in_sram_skips_main_memory():
    accel = load_profile("ternary-accel")
    dec = decode_step_cost(accel, "qwen2.5-0.5b", "W1.58A8", 1, 64)
    assert dec.weights_home == 0
    ops = dec.ops
    gemms = ops[ops.op.str.endswith("proj")]
    assert (gemms["bytes_lpddr5x"] == 0).all() and set(gemms.exec_dtype) == {"ternary"}
    big = decode_step_cost(accel, "llama-2-7b", "W1.58A8", 1, 64)
    assert big.weights_home == 1


def test_block_sharing_reads_repeats_from_cache():
    # MobileLLM-125M shape (Liu et al., arXiv 2402.14905, Table 9): 30 x 576, 9/3 heads
    base = TransformerConfig(name="mobilellm-125m", n_layers=30, d_model=576, n_heads=9,
                             n_kv_heads=3, d_ff=1536, vocab_size=32000,
                             tied_embeddings=True)
    shared = TransformerConfig(**{**base.__dict__, "block_repeat": 2})
    one = decode_step_cost(H100, base, "W16A16", 1, 64)
    two = decode_step_cost(H100, shared, "W16A16", 1, 64)
    block = (weight_bytes(base, as_quant("W16A16"))["attn"]
             + weight_bytes(base, as_quant("W16A16"))["mlp"]) / base.n_layers
    assert block < 0.5 * 50e6
    extra_hbm = two.bytes_moved["hbm"] - one.bytes_moved["hbm"]
    # the repeated blocks' own KV cache: 64 positions read + 1 appended, bf16
    extra_kv = base.n_layers * 2 * base.kv_dim * 2 * (64 + 1)
    assert extra_hbm == pytest.approx(extra_kv, rel=1e-6)
    assert two.bytes_moved["l2"] > one.bytes_moved["l2"] + 0.9 * block * base.n_layers


def test_matmul_time_for_training():
    t16 = matmul_cost(H100, 1e18, "bf16").time_s
    assert t16 == pytest.approx(1e18 / BF16)
    assert matmul_cost(H100, 1e18, "fp8_e4m3").time_s < t16
    t4 = matmul_cost(H100, 1e18, "int4").time_s
    assert t4 > t16  # int4 runs through bf16 plus conversions on Hopper
    assert matmul_cost(A100, 1e18, "int4").time_s < matmul_cost(A100, 1e18, "bf16").time_s
    arr = matmul_cost(H100, np.array([1e15, 1e18]), "bf16").time_s
    assert arr.shape == (2,)


def test_matmul_cost_is_the_large_gemm_limit():
    """bf16 on H100, by hand: output tiles of T = usable staging / 4 B accumulators,
    tm = tn = sqrt(T); each level sees 2 B / (2 tm) + 2 B / (2 tn) = 2 / sqrt(T) bytes per
    FLOP (smem and l2 staged by smem's 15.4 MB share, hbm by l2's 25 MB); compute-bound."""
    flops = 1e18
    cost = matmul_cost(H100, flops, "bf16")
    per_smem = 2 / np.sqrt(0.5 * 30828134.4 / 4)
    per_hbm = 2 / np.sqrt(0.5 * 50e6 / 4)
    assert cost.time_s == pytest.approx(flops / BF16, rel=1e-12)
    assert cost.exec_dtype == "bf16" and cost.exec_path == "native"
    assert cost.energy_j == pytest.approx(  # dynamic: bf16 0.67 pJ/FLOP + bytes
        flops * (0.67e-12 + per_smem * (2.5e-12 + 12.5e-12) + per_hbm * 3.176e-11), rel=1e-9)
    # close to an 8192^3 GEMM's energy per FLOP (its outputs and launch gap aside)
    big = gemm_cost(H100, 8192, 8192, 8192, "W16A16")
    assert float(cost.energy_j) / flops == pytest.approx(float(big.energy_j / big.flops),
                                                         rel=0.03)
    arr = matmul_cost(H100, np.array([1e15, 1e18]), "int8", "bf16")
    assert arr.energy_j.shape == (2,) and arr.exec_dtype == "bf16"


def test_matmul_cost_takes_the_path_of_the_kernels():
    """W4A8 with int4 and int8 both native (rtx-4090): int8 math with int4 unpacked (2
    ops), not the old default of 4 ops; the same choice as gemm_cost's large GEMM."""
    rtx = load_profile("rtx-4090")
    cost = matmul_cost(rtx, 1e18, "int4", "int8")
    gemm = gemm_cost(rtx, 16384, 16384, 16384, "W4A8")
    assert cost.exec_dtype == gemm.exec_dtype == "int8" and cost.exec_path == "mixed"
    plan = resolve_exec(rtx, "int4", "int8")
    assert plan.w_convert_ops == 2 and plan.a_convert_ops == 0
    fp32 = rtx.compute["fp32"].achievable_ops_per_s
    tile = np.sqrt(0.5 * rtx.memory[0].capacity_bytes / 4)
    assert cost.time_s == pytest.approx(
        1e18 / rtx.compute["int8"].achievable_ops_per_s + 1e18 / (2 * tile) * 2 / fp32,
        rel=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch=0, prompt_len=128, gen_len=8), "batch must be at least 1"),
    (dict(batch=1, prompt_len=-4, gen_len=8), "prompt_len must be at least 1"),
    (dict(batch=1, prompt_len=128, gen_len=np.array([4, 0])), "gen_len"),
])
def test_bad_lengths(kwargs, match):
    with pytest.raises(InputError, match=match):
        simulate(H100, "llama-2-7b", "W16A16", **kwargs)


def test_unknown_names_suggest():
    with pytest.raises(InputError, match="did you mean h100-sxm"):
        as_hardware("h100-sx")
    with pytest.raises(InputError, match="did you mean"):
        simulate(H100, "mistral-7", "W16A16", 1, 8, 8)
    with pytest.raises(InputError):
        gemm_cost(H100, 0, 10, 10)


def test_per_op_frame_is_a_dataframe_with_levels():
    ops = prefill_cost(A100, "qwen2.5-0.5b", "FP8", 1, 64).ops
    assert isinstance(ops, pd.DataFrame)
    assert {"bytes_smem", "bytes_l2", "bytes_hbm"} <= set(ops.columns)
    assert set(ops.exec_dtype[ops.op.str.endswith("proj")]) == {"fp16"}


def test_footprint_terms_are_kept_per_model_and_format():
    """kv_cache_bytes / activation_bytes take the model's and format's part once per
    object pair (footprint._footprint_terms): a request multiplies it by its sizes, by hand:
    Llama-2-7B at 16 bits keeps 2 x 32 layers x 4096 K/V elements per token, and a
    prefill block holds m x 2 bytes x (2 x 4096 + 3 x 4096 wide qkv vs 2 x 11008 wide
    gate+up) plus the fp32 logits of the last positions."""
    from precsim.simulator.cost import activation_bytes, kv_cache_bytes
    model, fmt = get_model("llama-2-7b"), as_quant("W16A16")
    assert kv_cache_bytes(model, fmt, 3, 640) == 3 * 640 * 2 * 32 * 4096 * 2
    assert kv_cache_bytes(model, fmt, 3, 640) == kv_cache_bytes(model, "W16A16", 3.0, 640.0)
    m = 2 * 512
    expected = m * 2.0 * (2 * 4096 + 2 * 11008) + 2 * 32000 * 4.0
    assert activation_bytes(model, fmt, 2, 512) == expected
    batch = np.array([1.0, 2.0])
    np.testing.assert_array_equal(activation_bytes(model, fmt, batch, 512),
                                  [activation_bytes(model, fmt, b, 512) for b in (1, 2)])
