"""Steady-state continuous batching (simulator.steady) and the engine's grouped expert
GEMM properties (overheads.expert_stream, .expert_tile_rows: the vllm runtime's): values
by hand from the step costs, energy = power x time, power under the cap, the median
step, refusals, and the FP8-vs-BF16 step-time sign of vLLM's MoE path."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from precsim.simulator.cost import decode_step_cost, mixed_step_cost
from precsim.simulator.errors import InputError
from precsim.simulator.hardware import as_hardware
from precsim.simulator.parallel import ParallelLayout
from precsim.simulator.power import dynamic_split, power_and_energy
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.runtime import apply_runtime
from precsim.simulator.steady import steady_state

H100 = load_profile("h100-sxm")


def _board(cost):
    return power_and_energy(H100, cost.time_s, dynamic_split(as_hardware(H100), cost))


def test_mean_step_is_decode_plus_join_share_by_hand():
    b, p, g = 32, 700, 400
    dec = _board(decode_step_cost(H100, "qwen3-8b", "BF16", b, p + g / 2))
    join = _board(mixed_step_cost(H100, "qwen3-8b", "BF16", b - 1, p + g / 2, p))
    phi = b / g                                   # 0.08 prompts join per step
    s = steady_state(H100, "qwen3-8b", "BF16", b, p, g)
    t = dec.time_s + phi * (join.time_s - dec.time_s)
    e = dec.energy_j + phi * (join.energy_j - dec.energy_j)
    assert s.joins_per_step == pytest.approx(0.08)
    assert s.step_s == pytest.approx(t, rel=1e-12)
    assert s.energy_per_token_j == pytest.approx(e / b, rel=1e-12)
    assert s.output_tokens_per_s == pytest.approx(b / t, rel=1e-12)
    assert s.average_power_w == pytest.approx(e / t, rel=1e-12)
    assert s.median_step_s == pytest.approx(dec.time_s)   # phi < ln 2: a decode step


def test_median_step_is_a_join_step_once_most_steps_carry_a_prompt():
    # phi = B / G = 0.8 > ln 2: Poisson(0.8) has median 1, the median step prefills one
    s = steady_state(H100, "qwen3-8b", "BF16", 64, 500, 80)
    assert s.median_step_s == pytest.approx(s.join_step_s)
    assert s.join_step_s > s.step_s > s.decode_step_s


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 512), st.integers(16, 4096), st.integers(2, 8192),
       st.sampled_from(["BF16", "FP8"]))
def test_energy_is_power_times_time_and_power_stays_under_the_cap(b, p, g, fmt):
    s = steady_state(H100, "qwen3-8b", fmt, b, p, g)
    assert s.energy_per_token_j * b == pytest.approx(s.average_power_w * s.step_s, rel=1e-9)
    assert s.average_power_w <= H100.power.tdp.value * (1 + 1e-9)
    assert s.average_power_w >= H100.power.static.value


def test_tensor_parallel_power_counts_every_device_and_collectives_lengthen_the_step():
    one = steady_state(H100, "qwen3-14b", "BF16", 64, 700, 600)
    two = steady_state(H100, "qwen3-14b", "BF16", 64, 700, 600, ParallelLayout(tp=2))
    assert two.devices_per_replica == 2
    assert two.average_power_w / 2 <= H100.power.tdp.value
    assert two.step_s < one.step_s          # half the weights and KV per device


def test_arrays_broadcast_in_one_call():
    s = steady_state(H100, "qwen3-8b", "BF16", np.array([8, 64, 256]), 700, 600)
    for b, t in zip((8, 64, 256), s.step_s):
        assert t == pytest.approx(steady_state(H100, "qwen3-8b", "BF16", b, 700, 600).step_s)


@pytest.mark.parametrize("kw, match", [
    ({"batch": 0}, "batch, prompt_len and gen_len must be >= 1"),
    ({"layout": ParallelLayout(tp=2, pp=2)}, "pipeline layouts"),
])
def test_bad_inputs_are_refused(kw, match):
    args = dict(batch=8, prompt_len=100, gen_len=100) | kw
    layout = args.pop("layout", None)
    with pytest.raises(InputError, match=match):
        steady_state(H100, "qwen3-8b", "BF16", layout=layout, **args)


def _expert_op(profile, fmt):
    ops = decode_step_cost(profile, "qwen3-235b-a22b", fmt, 8, 600).ops
    return ops.set_index("op").loc[["expert_gate_up", "qkv_proj"], "memory_time_s"]


def test_expert_stream_share_divides_the_expert_gemms_streaming_rate_only():
    slow = H100.with_overrides({"overheads.expert_stream": {
        "fp8_e4m3": {"value": 0.5, "assumed": "test"}}})
    base, half = _expert_op(H100, "FP8"), _expert_op(slow, "FP8")
    assert half["expert_gate_up"] == pytest.approx(2.0 * base["expert_gate_up"])
    assert half["qkv_proj"] == pytest.approx(base["qkv_proj"])       # dense GEMM
    assert _expert_op(slow, "BF16").equals(_expert_op(H100, "BF16"))  # other weight type
    assert H100.overheads.expert_stream_value("fp8_e4m3") == 1.0     # bare hardware


def test_vllm_runtime_sets_the_fp8_tile_rows_with_their_provenance():
    engine = apply_runtime("vllm", H100, "FP8").profile
    rows = engine.overheads.expert_tile_rows["fp8_e4m3"]
    assert rows.value > 0
    assert rows.derived.startswith("runtime vllm efficiency.expert_tile_rows")
    assert engine.overheads.expert_stream_value("fp8_e4m3") == 1.0  # replaced by the tiles
    assert H100.overheads.expert_tile_rows_value("fp8_e4m3") == 0.0  # bare hardware


def _step(fmt, batch):
    engine = apply_runtime("vllm", H100, fmt).profile
    return steady_state(engine, "qwen3-235b-a22b", fmt, batch, 974, 870,
                        ParallelLayout(tp=8, ep=8))


def test_vllm_fp8_moe_energy_sign_against_bf16_at_small_and_large_batch():
    # ML.ENERGY v3, Qwen3-235B-A22B on 8 H100 (power_energy_relative.csv): FP8's step
    # is longer at batch 8 (ITL 24.7 vs 20.2 ms) and costs more per token (x1.56), its
    # step shorter at 64 (34.7 vs 40.3 ms) and its J/token lower at 64 and 256 (x0.88,
    # x0.87)
    assert _step("FP8", 8).decode_step_s > _step("BF16", 8).decode_step_s
    assert _step("FP8", 8).energy_per_token_j > _step("BF16", 8).energy_per_token_j
    assert _step("FP8", 64).decode_step_s < _step("BF16", 64).decode_step_s
    for batch in (64, 256):
        assert _step("FP8", batch).energy_per_token_j < _step("BF16", batch).energy_per_token_j


def test_a_runtime_share_above_one_is_refused_naming_the_field(tmp_path):
    from precsim.simulator.runtime import load_runtime_file
    path = tmp_path / "rt.yaml"
    path.write_text("name: rt\ndescription: x\nsources: ['[x] y']\napplies_to: [gpu]\n"
                    "efficiency:\n  expert_stream:\n    fp8_e4m3: {value: 1.5, assumed: z}\n")
    with pytest.raises(InputError, match=r"efficiency\.expert_stream"):
        load_runtime_file(path)
