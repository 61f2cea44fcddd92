"""Properties of the cost model (hypothesis): monotone in bits, bandwidth, native support."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.cost import decode_step_cost, weight_bytes
from simulator.kernels import as_quant, attention_cost, gemm_cost
from simulator.models import get_model
from simulator.profiles import load_profile, profile_from_mapping

H100 = load_profile("h100-sxm")
BITS = [1, 2, 3, 4, 5, 6, 7, 8, 16]
dims = st.sampled_from([1, 2, 16, 64, 256, 1024, 4096, 14336])


def _spec(bits, group):
    return f"W{bits}A16" + (f"-g{group}" if group and bits < 16 else "")


@given(st.sampled_from(BITS), st.sampled_from(BITS), st.sampled_from([None, 32, 64, 128]),
       dims, dims, dims.filter(lambda k: k >= 16))
def test_fewer_weight_bits_never_increase_weight_bytes(b1, b2, group, m, n, k):
    # k >= 16: a per-channel fp16 scale over fewer than 2 inputs would outweigh the savings
    lo, hi = sorted((b1, b2))
    small, big = as_quant(_spec(lo, group)), as_quant(_spec(hi, group))
    assert small.effective_weight_bits <= big.effective_weight_bits
    model = get_model("llama-3.2-1b")
    assert weight_bytes(model, small)["mlp"] <= weight_bytes(model, big)["mlp"]
    c_small = gemm_cost(H100, m, n, k, small, act_home=2, out_home=2)
    c_big = gemm_cost(H100, m, n, k, big, act_home=2, out_home=2)
    assert c_small.bytes_moved["hbm"] <= c_big.bytes_moved["hbm"]


@settings(max_examples=25)
@given(st.floats(1.0, 8.0), dims, dims, dims, st.sampled_from(["W16A16", "W4A16-g128", "W8A8"]))
def test_more_bandwidth_never_slows_an_op(factor, m, n, k, quant):
    faster = H100.with_overrides({"memory.hbm.bandwidth.value": f"{3.35 * factor} TB/s",
                                  "memory.l2.bandwidth.value": f"{10 * factor} TB/s"})
    before = gemm_cost(H100, m, n, k, quant)
    after = gemm_cost(faster, m, n, k, quant)
    assert after.time_s <= before.time_s * (1 + 1e-12)
    if before.bound == "memory" and factor > 1.01:
        assert after.time_s < before.time_s
    att0 = attention_cost(H100, 1, 1, 64 * m, 32, 8, 128)
    att1 = attention_cost(faster, 1, 1, 64 * m, 32, 8, 128)
    assert att1.time_s <= att0.time_s * (1 + 1e-12)


def _with_native_int4(speedup: float):
    """H100 with an int4 tensor path at `speedup` x the bf16 rate instead of the fallback."""
    doc = H100.raw()
    bf16 = doc["compute"]["bf16"]
    doc["compute"]["int4"] = {
        "engine": "matrix",
        "peak": {"value": f"{989.4 * speedup} TFLOP/s", "assumed": "what-if"},
        "achievable_fraction": bf16["achievable_fraction"],
        "energy_per_op": bf16["energy_per_op"]}
    del doc["fallbacks"]["int4"]
    return profile_from_mapping(doc, source="test")


@settings(max_examples=25)
@given(st.floats(1.0, 4.0), dims, dims, dims, st.sampled_from(["W4A4", "W4A16-g128"]))
def test_native_format_never_slower_than_fallback(speedup, m, n, k, quant):
    native = _with_native_int4(speedup)
    fast = gemm_cost(native, m, n, k, quant)
    slow = gemm_cost(H100, m, n, k, quant)
    assert fast.time_s <= slow.time_s * (1 + 1e-12)
    assert fast.energy_j <= slow.energy_j * (1 + 1e-12)


@settings(max_examples=20)
@given(st.integers(1, 256), st.integers(1, 256), st.integers(1, 32768), st.integers(1, 32768))
def test_decode_time_monotone_in_batch_and_context(b1, b2, c1, c2):
    b = np.array(sorted((b1, b2)))
    c = np.array(sorted((c1, c2)))
    grid = decode_step_cost(H100, "llama-3-8b", "W4A16-g128-KV8", b[:, None], c[None, :])
    t = grid.time_s
    assert np.all(t[1] >= t[0] * (1 - 1e-12)) and np.all(t[:, 1] >= t[:, 0] * (1 - 1e-12))
