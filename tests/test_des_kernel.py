"""Kernel-level DES: agreement with the roofline for long kernels, fill/drain for small
ones, buffering, dequant modes and a decode step run as its kernel sequence."""
import math

import pytest

from precsim.simulator.cost import decode_step_cost, mixed_step_cost
from precsim.simulator.des.kernel_pipeline import (KernelWork, PipelineConfig, convert_s_per_op,
                                           phase_kernels, simulate_decode_step,
                                           simulate_kernel, simulate_kernels)
from precsim.simulator.errors import InputError
from precsim.simulator.kernels import gemm_cost
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.quant import as_quant

H100 = load_profile("h100-sxm")


def _work(m, n, k, quant="W16A16"):
    cost = gemm_cost(H100, m, n, k, quant)
    return cost, KernelWork.from_cost(f"gemm {m}x{n}x{k}", cost)


@pytest.mark.parametrize("m,n,k", [(1, 32768, 32768), (8192, 8192, 8192)])
def test_long_kernel_agrees_with_roofline_within_one_percent(m, n, k):
    cost, work = _work(m, n, k)
    result = simulate_kernel(work, H100, PipelineConfig(n_buffers=2))
    assert result.n_tiles > 100
    assert result.roofline_time_s == pytest.approx(float(cost.time_s), rel=1e-12)
    assert result.time_s >= result.roofline_time_s * (1 - 1e-9)
    assert result.time_s == pytest.approx(float(cost.time_s), rel=0.01)


def test_hand_checked_single_tile_is_launch_plus_transfer_plus_math():
    work = KernelWork("k", dram_bytes=1000.0, memory_time_s=2e-6, compute_time_s=3e-6,
                      roofline_time_s=3e-6, launch_s=1e-6)
    result = simulate_kernel(work, H100, PipelineConfig(tile_bytes=4096.0))
    assert result.n_tiles == 1
    assert result.time_s == pytest.approx(1e-6 + 2e-6 + 3e-6)
    assert result.fill_s == pytest.approx(2e-6)
    assert result.roofline_time_s == pytest.approx(4e-6)


def test_fill_and_drain_make_small_kernels_slower_than_roofline():
    # a balanced small GEMM: one or two tiles, so transfer and math barely overlap
    cost, work = _work(256, 2048, 2048)
    small = simulate_kernel(work, H100, PipelineConfig(n_buffers=2))
    assert small.n_tiles <= 2
    assert small.slowdown > 1.05
    assert small.fill_s > 0
    _, long_work = _work(8192, 8192, 8192)
    long = simulate_kernel(long_work, H100, PipelineConfig(n_buffers=2))
    assert small.slowdown > long.slowdown


def test_single_buffering_serialises_transfer_and_math():
    _, work = _work(8192, 8192, 8192)
    single = simulate_kernel(work, H100, PipelineConfig(n_buffers=1))
    double = simulate_kernel(work, H100, PipelineConfig(n_buffers=2))
    triple = simulate_kernel(work, H100, PipelineConfig(n_buffers=3))
    assert single.time_s > double.time_s * 1.1
    assert triple.time_s <= double.time_s * (1 + 1e-9)
    # one buffer: every tile's transfer and math run back to back
    assert single.time_s == pytest.approx(work.launch_s + work.memory_time_s
                                          + work.compute_time_s, rel=1e-9)


def test_dma_latency_defaults_to_the_profiles_main_memory_latency():
    work = KernelWork("k", dram_bytes=1000.0, memory_time_s=2e-6, compute_time_s=3e-6,
                      roofline_time_s=3e-6, launch_s=1e-6)
    slow = H100.with_overrides({"memory.hbm.latency.value": "600 ns"})
    assert slow.main_memory.latency_s == pytest.approx(6e-7)
    assert H100.main_memory.latency_s is None
    one_tile = PipelineConfig(tile_bytes=4096.0)
    result = simulate_kernel(work, slow, one_tile)
    assert result.time_s == pytest.approx(1e-6 + 2e-6 + 0.6e-6 + 3e-6)
    assert result.fill_s == pytest.approx(2.6e-6)
    explicit = simulate_kernel(work, slow, PipelineConfig(tile_bytes=4096.0, dma_latency_s=0.0))
    assert explicit.time_s == pytest.approx(1e-6 + 2e-6 + 3e-6)
    assert one_tile.dma_latency_for(H100) == 0.0


def test_a_prompt_chunk_runs_as_its_kernel_sequence():
    # not the prompt's last chunk: no lm_head and no sampling kernel (count 0)
    phase = mixed_step_cost(H100, "llama-3-8b", "W4A16-g128", 0, 1, 64, 128,
                            last_chunk=False)
    works = phase_kernels(phase)
    assert len(works) == 2 + 32 * 9
    assert works[-1].name == "final_norm"
    frame = simulate_kernels(works, H100, PipelineConfig())
    assert frame["roofline_time_s"].sum() == pytest.approx(float(phase.time_s), rel=1e-9)


def test_dma_latency_is_hidden_by_buffers_but_not_without():
    _, work = _work(1, 32768, 32768)
    base = simulate_kernel(work, H100, PipelineConfig(n_buffers=3))
    late = simulate_kernel(work, H100, PipelineConfig(n_buffers=3, dma_latency_s=1e-6))
    late1 = simulate_kernel(work, H100, PipelineConfig(n_buffers=1, dma_latency_s=1e-6))
    assert late.time_s - base.time_s < 5e-6
    assert late1.time_s - base.time_s > late1.n_tiles * 1e-6 * 0.99


def test_stalling_dequant_matches_the_cost_model_and_hiding_it_is_a_what_if():
    quant = "W4A16-g128"
    phase = decode_step_cost(H100, "llama-3-8b", quant, 1, 600)
    spec, cost = next((s, c) for s, c in zip(phase.specs, phase.costs)
                      if s.name == "gate_up_proj")
    one = cost.scaled(1 / 32)
    dequant = float(one.convert_time_s)
    assert dequant > 0
    assert dequant == pytest.approx(
        float(one.convert_ops) * convert_s_per_op(H100, spec, as_quant(quant)), rel=1e-12)
    work = KernelWork.from_cost("gate_up", one, dequant_time_s=dequant)
    stall = simulate_kernel(work, H100, PipelineConfig(n_buffers=3, tile_bytes=64e3))
    hidden = simulate_kernel(work, H100, PipelineConfig(n_buffers=3, tile_bytes=64e3,
                                                        dequant="engine"))
    assert stall.time_s == pytest.approx(float(one.time_s), rel=0.01)
    assert hidden.time_s < stall.time_s - 0.5 * dequant


def test_decode_step_runs_as_its_kernel_sequence():
    frame, totals = simulate_decode_step(H100, "llama-3-8b", "W4A16-g128", 8, 1024)
    phase = decode_step_cost(H100, "llama-3-8b", "W4A16-g128", 8, 1024)
    assert totals["kernels"] == 4 + 32 * 9
    assert list(frame["kernel"][:3]) == ["embedding", "attn_norm", "qkv_proj"]
    assert frame["roofline_time_s"].sum() == pytest.approx(float(phase.time_s), rel=1e-9)
    assert totals["launch_s"] == pytest.approx(totals["kernels"] * H100.kernel_launch_s)
    assert 1.0 <= totals["slowdown"] < 1.2
    assert frame["start_s"].is_monotonic_increasing


def test_sequence_is_deterministic():
    _, work = _work(64, 4096, 4096, "W4A16-g128")
    a = simulate_kernels([work] * 3, H100, PipelineConfig(n_buffers=2))
    b = simulate_kernels([work] * 3, H100, PipelineConfig(n_buffers=2))
    assert a.to_csv() == b.to_csv()


@pytest.mark.parametrize("kwargs,match", [
    ({"n_buffers": 0}, "n_buffers"), ({"n_dma": 1.5}, "n_dma"),
    ({"tile_bytes": -1.0}, "tile_bytes"), ({"dma_latency_s": math.inf}, "dma_latency_s"),
    ({"dequant": "fast"}, "dequant")])
def test_bad_pipeline_config(kwargs, match):
    with pytest.raises(InputError, match=match):
        PipelineConfig(**kwargs)


def test_buffers_must_fit_on_chip():
    _, work = _work(1, 4096, 4096)
    with pytest.raises(InputError, match="do not fit"):
        simulate_kernel(work, H100, PipelineConfig(n_buffers=3, tile_bytes=1e9))
