"""Properties of the cost model (hypothesis): monotone in bits, bandwidth, native support."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from precsim.simulator.cost import decode_step_cost, prefill_cost, simulate, weight_bytes
from precsim.simulator.kernels import attention_cost, gemm_cost
from precsim.simulator.mapping import exec_options, resolve_exec
from precsim.simulator.models import get_model
from precsim.simulator.profile_loader import builtin_profile_dir, load_profile, load_profile_file
from precsim.simulator.profiles import DTYPES, profile_from_mapping
from precsim.simulator.quant import DTYPE_BITS, as_quant, stream_dtype

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


# ---- declaring a type native never raises a kernel's time --------------------------------

SHIPPED = sorted(path.stem for path in builtin_profile_dir().glob("*.yaml"))
MIXED_AND_SAME = ["W4A8-g128", "W4A16-g128", "W8A16", "W8A8", "W4A4", "NVFP4", "W1.58A8",
                  "FP8"]
SMALL = get_model("qwen2.5-0.5b")


def _add_native(profile, dtype: str, engine: str, rate_factor: float, energy_pj: float):
    """`profile` with a native `dtype` engine (its fallback rule dropped, as the schema
    requires): peak = rate_factor x the profile's fastest native peak."""
    fastest = max(s.peak_ops_per_s for s in profile.compute.values())
    return profile.with_overrides({
        f"compute.{dtype}": {
            "engine": engine,
            "peak": {"value": f"{fastest * rate_factor / 1e12:.6g} TOP/s", "assumed": "test"},
            "achievable_fraction": {"value": 0.7, "assumed": "test"},
            "energy_per_op": {"value": f"{energy_pj} pJ", "assumed": "test"}},
        f"fallbacks.{dtype}": None}, name=f"{profile.name}-native-{dtype.replace('_', '-')}")


def _engines(name: str) -> list:
    """The profile, or each compute unit of a SoC (the engine sets kernels run on)."""
    profile = load_profile_file(builtin_profile_dir() / f"{name}.yaml")
    return [profile.for_unit(u) for u in profile.compute_units] or [profile]


def _per_op_times(phase):
    return np.array([np.asarray(c.time_s, dtype=float) for c in phase.costs])


@pytest.mark.parametrize("name", SHIPPED)
@settings(max_examples=25)
@given(data=st.data())
def test_declaring_a_type_native_never_raises_decode_or_prefill_time(name, data):
    """Issue: int4 x int8 on a profile with both native was charged the default 4 ops per
    int4 element, more than the profile's own int4 -> int8 rule (snapdragon-8-gen3 W4A8
    TPOT 35.6 -> 41.2 ms when int4 was declared native). Every op of a decode step and a
    prefill must be no slower with the extra native type, whatever its speed."""
    profile = data.draw(st.sampled_from(_engines(name)), label="unit")
    missing = [d for d in DTYPES if not profile.native(d)]
    dtype = data.draw(st.sampled_from(missing), label="dtype")
    quant = data.draw(st.sampled_from(MIXED_AND_SAME), label="quant")
    native = _add_native(profile, dtype, data.draw(st.sampled_from(["matrix", "vector"])),
                         data.draw(st.floats(0.01, 10.0), label="rate_factor"),
                         data.draw(st.floats(0.001, 1.0), label="energy_pj"))
    batch = data.draw(st.sampled_from([1, 4, 64]), label="batch")
    length = data.draw(st.sampled_from([16, 512, 4096]), label="length")
    for cost in (decode_step_cost, prefill_cost):
        before = _per_op_times(cost(profile, SMALL, quant, batch, length))
        after = _per_op_times(cost(native, SMALL, quant, batch, length))
        assert np.all(after <= before * (1 + 1e-12)), (cost.__name__, before, after)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_execution_option_survives_declaring_a_type_native(name):
    """Exhaustive over the type pairs the formats use (GEMMs, KV cache, embedding) and
    every non-native type: each option of the old profile is matched or beaten by an
    option of the new one in math rate, conversion time of both operands and width, so
    no kernel can get slower (the reason behind the property test above)."""
    pairs = set()
    for fmt in map(as_quant, MIXED_AND_SAME):
        sdt = stream_dtype(fmt)
        pairs |= {(fmt.weight_dtype, fmt.act_dtype), (fmt.kv_dtype, sdt), (sdt, sdt),
                  (fmt.weight_dtype, sdt)}

    def key(o):
        return (1 / o.ops_per_s, o.w_convert_s, o.a_convert_s, DTYPE_BITS[o.exec_dtype])

    for profile in _engines(name):
        for dtype in (d for d in DTYPES if not profile.native(d)):
            native = _add_native(profile, dtype, "matrix", 0.01, 1.0)
            for w, a in sorted(pairs):
                new = [key(o) for o in exec_options(native, w, a)]
                for old in map(key, exec_options(profile, w, a)):
                    assert any(all(x <= y * (1 + 1e-12) for x, y in zip(n, old))
                               for n in new), (dtype, w, a, old, new)


@pytest.mark.parametrize("name, quant", [("snapdragon-8-gen3", "W4A8-g128"),
                                         ("ternary-accel", "W4A8-g128"),
                                         ("l4", "W4A8-g128")])
def test_native_int4_with_int8_activations_costs_no_more_than_the_int4_rule(name, quant):
    """The reported regressions: int4 weights x int8 activations with int4 made native
    run on the int8 engine with int4 unpacked at the default 2 ops, the same as the
    profile's int4 -> int8 rule."""
    profile = load_profile(name)
    if profile.compute_units:  # the SoC's unit with the int4 -> int8 rule
        profile = profile.for_unit("npu")
    native = _add_native(profile, "int4", "matrix", 1.0, 0.02)
    rule = resolve_exec(profile, "int4", "int8")
    mixed = resolve_exec(native, "int4", "int8")
    assert (rule.exec_dtype, rule.path) == ("int8", "fallback")
    assert (mixed.exec_dtype, mixed.path) == ("int8", "mixed")
    assert mixed.w_convert_ops == rule.w_convert_ops == 2
    assert mixed.w_convert_s <= rule.w_convert_s
    before = simulate(profile, SMALL, quant, 1, 512, 64).totals["tpot_s"]
    after = simulate(native, SMALL, quant, 1, 512, 64).totals["tpot_s"]
    assert after <= before * (1 + 1e-12)


def test_kernels_take_the_faster_option_per_shape():
    """W4A4 on an H100 with a slow native int4 engine (10% of its fastest peak): a
    compute-bound GEMM widens both operands to int8 (2 ops each), a memory-bound GEMV
    runs natively in int4 (no conversion; at 1% the GEMV's 16-row tile, 1/16 used,
    would make it compute-bound too: simulator.gemm_shape); a swept call chooses per
    element."""
    slow = _add_native(H100, "int4", "matrix", 0.1, 0.02)
    assert [o.exec_dtype for o in exec_options(slow, "int4", "int4")] == ["int4", "int8"]
    gemm = gemm_cost(slow, 8192, 8192, 8192, "W4A4")
    assert gemm.exec_dtype == "int8" and gemm.exec_path == "widen"
    assert gemm.convert_ops > 0
    gemv = gemm_cost(slow, 1, 8192, 8192, "W4A4")
    assert gemv.exec_dtype == "int4" and gemv.exec_path == "native"
    assert gemv.convert_ops == 0
    grid = gemm_cost(slow, np.array([1, 8192]), 8192, 8192, "W4A4")
    assert list(grid.exec_dtype) == ["int4", "int8"]
    assert grid.time_s[0] == gemv.time_s and grid.time_s[1] == gemm.time_s
    assert grid.energy_j[1] == gemm.energy_j and grid.convert_ops[0] == 0
