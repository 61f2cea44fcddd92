"""Cost model: conversion time, prefill chunks after cached tokens, mixed (chunked
prefill) passes, ragged prefill batches, and the optional `persistent` memory field."""
import numpy as np
import pytest

from precsim.simulator.cost import (decode_step_cost, mixed_step_cost, prefill_cost,
                            ragged_prefill_cost)
from precsim.simulator.des.kernel_pipeline import convert_s_per_op
from precsim.simulator.errors import InputError
from precsim.simulator.kernels import attention_cost, gemm_cost
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.quant import as_quant

H100 = load_profile("h100-sxm")
FP32 = 66.9e12 * 0.8  # h100 fp32 vector peak x achievable fraction: runs conversions
LLAMA = "llama-3-8b"  # 32 layers, 32 / 8 heads of 128, d_model 4096
ATTN_FLOPS = 4 * 32 * 128 * 32  # per causal (query, key) pair, all heads and layers


def _op(phase, name):
    return phase.costs[[s.name for s in phase.specs].index(name)]


def _same(a, b):
    """Exactly equal totals (arrays may differ in broadcast shape, not in values)."""
    pairs = [(a.time_s, b.time_s), (a.energy_j, b.energy_j), (a.n_kernels, b.n_kernels)]
    pairs += [(a.bytes_moved[k], b.bytes_moved[k]) for k in a.level_names]
    for x, y in pairs:
        assert np.array_equal(*np.broadcast_arrays(x, y))


# ---- conversion time -------------------------------------------------------------------

def test_convert_time_is_convert_ops_times_seconds_per_op():
    cost = gemm_cost(H100, 1, 4096, 4096, "W4A16-g128")
    assert cost.convert_ops == 4096 * 4096 * 4
    assert cost.convert_time_s == pytest.approx(4096 * 4096 * 4 / FP32, rel=1e-12)
    assert cost.time_s == pytest.approx(cost.memory_time_s + cost.convert_time_s + 3.4e-6,
                                        rel=1e-12)
    assert gemm_cost(H100, 1, 4096, 4096, "W16A16").convert_time_s == 0.0
    assert cost.scaled(3).convert_time_s == pytest.approx(3 * cost.convert_time_s)


def test_phase_convert_time_per_op_matches_the_execution_plan():
    quant = "W4A16-g128-KV8"
    phase = decode_step_cost(H100, LLAMA, quant, 4, 2048)
    total = 0.0
    for spec, cost in zip(phase.specs, phase.costs):
        rate = convert_s_per_op(H100, spec, as_quant(quant))
        assert float(cost.convert_time_s) == pytest.approx(float(cost.convert_ops) * rate,
                                                           rel=1e-12), spec.name
        total += float(cost.convert_time_s)
    assert _op(phase, "attention").convert_time_s > 0  # int8 KV converted to bf16
    assert phase.convert_time_s == pytest.approx(total, rel=1e-12)


# ---- a prefill chunk after cached tokens ---------------------------------------------

def test_chunk_attends_to_past_plus_chunk_keys_reading_the_past_at_kv_bits():
    kw = dict(batch=1, q_len=64, kv_len=1064, n_heads=32, n_kv_heads=8, head_dim=128)
    bf16 = attention_cost(H100, quant="W16A16", cache_len=1000, **kw)
    # causal pairs: query i (0..63) sees 1000 + i + 1 keys; the H100's flash kernel pads
    # the 64 queries to one 128-row block visiting ceil(1064 / 64) = 17 blocks of 64 keys
    assert bf16.flops == 4 * 32 * 128 * 17 * 128 * 64
    # the 1000 cached positions come from HBM; the 64 fresh K/V, Q and O stay in L2
    assert bf16.bytes_moved["hbm"] == 2 * 8 * 1000 * 128 * 2
    assert bf16.convert_ops == 0
    kv8 = attention_cost(H100, quant="W16A16-KV8", cache_len=1000, **kw)
    assert kv8.bytes_moved["hbm"] == 2 * 8 * 1000 * 128 * 1
    assert kv8.convert_ops == 2 * 8 * 1000 * 128 * 2  # only cached keys: int8 -> bf16
    fresh = attention_cost(H100, batch=1, q_len=64, kv_len=64, n_heads=32, n_kv_heads=8,
                           head_dim=128)
    zero = attention_cost(H100, batch=1, q_len=64, kv_len=64, n_heads=32, n_kv_heads=8,
                          head_dim=128, cache_len=0)
    assert (zero.time_s, zero.energy_j) == (fresh.time_s, fresh.energy_j)
    with pytest.raises(InputError, match="cache_len"):
        attention_cost(H100, quant="W16A16", cache_len=2000, **kw)


def test_prefill_past_len_zero_is_the_plain_prefill():
    _same(prefill_cost(H100, LLAMA, "W4A16-g128", 2, 300, past_len=0),
          prefill_cost(H100, LLAMA, "W4A16-g128", 2, 300))


def test_prefill_chunk_with_past_context():
    chunk = prefill_cost(H100, LLAMA, "W16A16", 1, 512, past_len=1536)
    attn = _op(chunk, "attention")
    # 4 row blocks of 128 queries reach keys 1664, 1792, 1920, 2048: 26 + 28 + 30 + 32
    # blocks of 128 x 64 (causal pairs 512 x 1536 + 512 x 513 / 2)
    assert attn.flops == ATTN_FLOPS * 116 * 128 * 64
    assert attn.bytes_moved["hbm"] == 32 * 2 * 8 * 1536 * 128 * 2  # cached K/V, bf16
    whole = prefill_cost(H100, LLAMA, "W16A16", 1, 512)
    # the same 512 new tokens: same GEMMs and the same KV-cache append
    assert _op(chunk, "rope_kv").bytes_moved["hbm"] == _op(whole, "rope_kv").bytes_moved["hbm"]
    assert _op(chunk, "qkv_proj").time_s == _op(whole, "qkv_proj").time_s
    # flash blocks of consecutive chunks (on 128-row boundaries) add up to the whole
    # prompt's: 2 x 16 x 17 / 2 = 272 blocks of 128 x 64
    parts = sum(float(_op(prefill_cost(H100, LLAMA, "W16A16", 1, n, past_len=p),
                          "attention").flops)
                for n, p in ((512, 0), (512, 512), (1024, 1024)))
    assert parts == ATTN_FLOPS * 272 * 128 * 64


def test_a_chunk_that_is_not_the_last_produces_no_token():
    last = prefill_cost(H100, LLAMA, "W16A16", 1, 512, past_len=512)
    mid = prefill_cost(H100, LLAMA, "W16A16", 1, 512, past_len=512, last_chunk=False)
    assert mid.n_kernels == last.n_kernels - 2
    head = _op(last, "lm_head").time_s + _op(last, "sampling").time_s
    assert mid.time_s == pytest.approx(last.time_s - head, rel=1e-12)
    assert _op(mid, "lm_head").time_s == 0.0


# ---- mixed passes (chunked prefill) ----------------------------------------------------

def test_mixed_step_without_prompt_tokens_is_the_decode_step():
    _same(mixed_step_cost(H100, LLAMA, "W4A16-g128", 8, 1000, 0),
          decode_step_cost(H100, LLAMA, "W4A16-g128", 8, 1000))
    batch, ctx = np.array([1, 16])[:, None], np.array([10.0, 4000.0])
    _same(mixed_step_cost(H100, LLAMA, "W4A16-g128", batch, ctx, 0),
          decode_step_cost(H100, LLAMA, "W4A16-g128", batch, ctx))


def test_mixed_step_without_decode_tokens_is_the_prefill_chunk():
    _same(mixed_step_cost(H100, LLAMA, "W4A16-g128-KV8", 0, 1, 256, 512),
          prefill_cost(H100, LLAMA, "W4A16-g128-KV8", 1, 256, past_len=512))


def test_mixed_step_reads_weights_once_and_charges_lm_head_per_token():
    quant = "W4A16-g128"
    mixed = mixed_step_cost(H100, LLAMA, quant, 8, 1000, 256, 512)
    decode = decode_step_cost(H100, LLAMA, quant, 8, 1000)
    chunk = prefill_cost(H100, LLAMA, quant, 1, 256, past_len=512)
    rows = prefill_cost(H100, LLAMA, quant, 1, 8 + 256)  # one GEMM over all 264 rows
    for name in ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"):
        assert _op(mixed, name).time_s == _op(rows, name).time_s, name
    assert _op(mixed, "lm_head").time_s == _op(decode_step_cost(H100, LLAMA, quant, 9, 1000),
                                               "lm_head").time_s  # 8 decodes + last chunk
    assert _op(mixed, "attention").flops == _op(decode, "attention").flops
    assert _op(mixed, "prefill_attention").flops == _op(chunk, "attention").flops
    assert _op(mixed, "prefill_attention").n_kernels == 0  # launched with the decode part
    assert mixed.n_kernels == decode.n_kernels == 4 + 32 * 9
    assert mixed.time_s < decode.time_s + chunk.time_s
    mid = mixed_step_cost(H100, LLAMA, quant, 8, 1000, 256, 512, last_chunk=False)
    assert _op(mid, "lm_head").time_s == _op(decode, "lm_head").time_s


def test_mixed_step_vectorised_equals_scalar_calls():
    batch = np.array([0, 4, 8])[:, None]
    tokens = np.array([64, 256])[None, :]
    grid = mixed_step_cost(H100, LLAMA, "W4A16-g128", batch, 700, tokens, 100)
    assert grid.time_s.shape == (3, 2)
    for i, b in enumerate((0, 4, 8)):
        for j, t in enumerate((64, 256)):
            one = mixed_step_cost(H100, LLAMA, "W4A16-g128", b, 700, t, 100)
            assert grid.time_s[i, j] == pytest.approx(float(one.time_s), rel=1e-12)
            assert np.broadcast_to(grid.n_kernels, (3, 2))[i, j] == one.n_kernels


@pytest.mark.parametrize("args, match", [
    ((0, 1, 0), "both 0"), ((-1, 10, 5), "decode_batch"), ((1, 10, 5, -3), "past"),
    ((2, 0, 5), "decode_context_len")])
def test_mixed_step_bad_input(args, match):
    with pytest.raises(InputError, match=match):
        mixed_step_cost(H100, LLAMA, "W16A16", *args)


# ---- ragged prefill batches ------------------------------------------------------------

def test_ragged_prefill_of_equal_lengths_is_prefill_cost():
    ragged = ragged_prefill_cost(H100, LLAMA, "W4A16-g128", [300, 300, 300, 300])
    plain = prefill_cost(H100, LLAMA, "W4A16-g128", 4, 300)
    assert ragged.time_s == pytest.approx(float(plain.time_s), rel=1e-12)
    assert ragged.energy_j == pytest.approx(float(plain.energy_j), rel=1e-12)
    assert ragged.bytes_moved["hbm"] == pytest.approx(float(plain.bytes_moved["hbm"]),
                                                      rel=1e-12)
    assert ragged.n_kernels == plain.n_kernels


def test_ragged_prefill_charges_attention_per_prompt():
    ragged = ragged_prefill_cost(H100, LLAMA, "W16A16", [100, 300])
    mean = prefill_cost(H100, LLAMA, "W16A16", 2, 200)
    attn = _op(ragged, "attention")
    # 128 x 64 flash blocks: 100 queries -> 2 blocks, 300 -> 2 + 4 + 5
    assert attn.flops == ATTN_FLOPS * (2 + 11) * 128 * 64
    assert attn.flops > _op(mean, "attention").flops  # sum L^2 > k mean(L)^2
    assert attn.n_kernels == 32  # one launch per layer for the whole batch
    for name in ("qkv_proj", "lm_head"):  # 400 rows; 2 sequences produce a token
        assert _op(ragged, name).time_s == _op(mean, name).time_s, name
    padded = ragged_prefill_cost(H100, LLAMA, "W16A16", [100, 300, 0])
    assert padded.time_s == pytest.approx(float(ragged.time_s), rel=1e-12)


def test_ragged_prefill_vectorises_over_leading_axes():
    lens = np.array([[100, 300, 0], [50, 50, 50]])
    profiles = np.array(["h100-sxm", "a100-sxm-80gb"], dtype=object)[:, None]
    grid = ragged_prefill_cost(profiles, LLAMA, "W4A16-g128", lens)
    assert grid.time_s.shape == (2, 2)
    for i, profile in enumerate(("h100-sxm", "a100-sxm-80gb")):
        for j, row in enumerate(lens):
            one = ragged_prefill_cost(profile, LLAMA, "W4A16-g128", row[row > 0])
            assert grid.time_s[i, j] == pytest.approx(float(one.time_s), rel=1e-12)


# ---- optional `persistent` field of a memory level ---------------------------------------

def test_persistent_field_overrides_the_inferred_residency():
    weights = 4096 * 4096 * 2
    vectors = 2 * 4096 * 2  # input and output of a 1 x 4096 x 4096 bf16 GEMV
    inferred = gemm_cost(H100, 1, 4096, 4096, "W16A16")
    assert inferred.bytes_moved["hbm"] == weights  # vectors live in L2 (a cache)
    no_l2 = H100.with_overrides({"memory.l2.persistent": False})
    assert gemm_cost(no_l2, 1, 4096, 4096, "W16A16").bytes_moved["hbm"] == weights + vectors
    smem = H100.with_overrides({"memory.smem.persistent": True})  # GPU sram kept
    assert inferred.bytes_moved["l2"] == weights + vectors
    assert gemm_cost(smem, 1, 4096, 4096, "W16A16").bytes_moved["l2"] == weights
