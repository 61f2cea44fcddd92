"""An engine's per-expert tile work (overheads.expert_tile_rows, op_eval._expert_tiles):
a hand-computed case, no work once the routed rows fill the tiles, and board power
with it: energy = power x time, under the cap, time and energy monotone in the tile rows."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from precsim.simulator.cost import decode_step_cost
from precsim.simulator.parallel import ParallelLayout
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.steady import steady_state

H100 = load_profile("h100-sxm")
MODEL = "qwen3-235b-a22b"  # 128 experts, 8 per token, d 4096, expert d_ff 1536, SwiGLU


def _tiles(rows):
    return H100.with_overrides({"overheads.expert_tile_rows": {
        "fp8_e4m3": {"value": rows, "assumed": "test"}}})


def _op(profile, batch, name="expert_gate_up"):
    return decode_step_cost(profile, MODEL, "FP8", batch, 600).ops.set_index("op").loc[name]


def test_tile_work_by_hand():
    # batch 8 on one H100: 8 x 8 = 64 routed rows of width 2 x 1536 (gate + up); 128
    # stored experts x 100 rows = 12800 rows: 2 x 4096 x (12800 - 64) x 3072 FP8 matrix
    # ops per layer at 1978.9 T x 0.709 /s, drawing the fp32 vector engine's
    # 66.9 T x 0.8 ops/s x 2.26 pJ = 120.96 W of dynamic power
    base, tiled = _op(H100, 8), _op(_tiles(100), 8)
    ops = 2 * 4096 * (12800 - 64) * 3072 * 94          # 94 layers, all MoE
    busy_s = ops / (1978.9e12 * 0.709)
    assert tiled["time_s"] - base["time_s"] == pytest.approx(busy_s, rel=1e-9)
    assert tiled["vector_ops"] - base["vector_ops"] == pytest.approx(busy_s * 53.52e12, rel=1e-9)
    assert tiled["energy_j"] - base["energy_j"] == pytest.approx(busy_s * 120.9552, rel=1e-9)
    assert tiled["bytes_hbm"] == base["bytes_hbm"]      # no bytes: not a weight stream
    assert tiled["flops"] == base["flops"]


def test_no_tile_work_once_routed_rows_fill_the_tiles_nor_on_other_types():
    # 512 tokens x 8 / 128 experts = 32 routed rows per expert on average >= 16 rows
    assert _op(_tiles(16), 512)["time_s"] == pytest.approx(_op(H100, 512)["time_s"], rel=1e-12)
    bf16 = decode_step_cost(_tiles(100), MODEL, "BF16", 8, 600).time_s
    assert bf16 == decode_step_cost(H100, MODEL, "BF16", 8, 600).time_s
    dense = decode_step_cost(_tiles(100), "qwen3-8b", "FP8", 8, 600).time_s
    assert dense == decode_step_cost(H100, "qwen3-8b", "FP8", 8, 600).time_s


def test_tiles_count_the_experts_each_device_stores():
    # expert parallelism over 8 GPUs: 16 stored experts each, 1/8 of the one-GPU work
    def extra(layout):
        one = steady_state(_tiles(100), MODEL, "FP8", 8, 256, 1000, layout)
        none = steady_state(H100, MODEL, "FP8", 8, 256, 1000, layout)
        return one.decode_step_s - none.decode_step_s
    ep8 = extra(ParallelLayout(tp=8, ep=8))
    ops = 2 * 4096 * (16 * 100 - 64 / 8) * 3072 + 2 * 1536 * (16 * 100 - 64 / 8) * 4096
    assert ep8 == pytest.approx(ops * 94 / (1978.9e12 * 0.709), rel=1e-9)


@settings(max_examples=25, deadline=None)
@given(rows=st.floats(1.0, 512.0), batch=st.integers(1, 512))
def test_board_power_with_tile_work(rows, batch):
    lo = steady_state(_tiles(rows), MODEL, "FP8", batch, 256, 1000, ParallelLayout(tp=8, ep=8))
    hi = steady_state(_tiles(rows * 1.5), MODEL, "FP8", batch, 256, 1000,
                      ParallelLayout(tp=8, ep=8))
    for s in (lo, hi):
        energy = float(s.energy_per_token_j) * batch
        assert energy == pytest.approx(float(s.average_power_w) * float(s.step_s), rel=1e-9)
        assert float(s.average_power_w) / 8 <= 700.0 + 1e-9
    assert float(hi.step_s) >= float(lo.step_s)
    assert float(hi.energy_per_token_j) >= float(lo.energy_per_token_j)
