"""MoE models and multi-device layouts: hand-computed weights, routing, shards, errors."""
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from precsim.simulator.collectives import Topology, collective_time
from precsim.simulator.cost import simulate, weight_bytes
from precsim.simulator.errors import InputError
from precsim.simulator.models import config_from_hf, get_model
from precsim.simulator.parallel import (ParallelLayout, block_comm_s, shard,
                                        simulate_parallel)
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.quant import parse_quant

BF16 = parse_quant("BF16")


@pytest.fixture(scope="module")
def h100():
    return load_profile("h100-sxm")


def test_mixtral_weights_hand_computed():
    m = get_model("mixtral-8x7b")
    attn = 4096 * (4096 + 2 * 1024) + 4096 * 4096
    moe = 8 * 3 * 4096 * 14336 + 4096 * 8           # experts + router
    assert m.n_params_non_embedding == 32 * (attn + moe)
    assert m.n_params_total == 46_702_792_704        # HF model card: 46.7B
    total = sum(weight_bytes(m, BF16).values())
    assert total == pytest.approx(2 * 46_702_792_704)    # ~93.4 GB in BF16
    active = 32 * (attn + 2 * 3 * 4096 * 14336 + 4096 * 8)
    assert m.n_params_active_non_embedding == active


@pytest.mark.parametrize("name, total_b, active_b, tables", [
    # model cards: Qwen counts both vocabulary tables in "activated", OpenAI only the
    # unembedding (gpt-oss model card, Table 1: 5.13B / 3.61B active)
    ("qwen3-235b-a22b", 235.1, 22.0, 2), ("qwen3-30b-a3b", 30.5, 3.3, 2),
    ("gpt-oss-120b", 116.8, 5.13, 1), ("gpt-oss-20b", 20.9, 3.61, 1),
    ("llama-3-70b", 70.6, 70.6, 2), ("llama-3.1-405b", 405.9, 405.9, 2),
    ("qwen3-8b", 8.2, 8.2, 2), ("qwen3-14b", 14.8, 14.8, 2), ("qwen3-32b", 32.8, 32.8, 2)])
def test_zoo_counts_match_model_cards(name, total_b, active_b, tables):
    m = get_model(name)
    assert m.n_params_total / 1e9 == pytest.approx(total_b, abs=0.05)
    active = (m.n_params_active_non_embedding + tables * m.vocab_size * m.d_model) / 1e9
    assert active == pytest.approx(active_b, rel=0.02)


@given(e=st.integers(2, 256), k=st.integers(1, 16), b=st.integers(1, 4096))
@settings(max_examples=60, deadline=None)
def test_distinct_experts_formula(e, k, b):
    k = min(k, e)
    m = config_from_hf({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                        "intermediate_size": 128, "vocab_size": 100,
                        "num_local_experts": e, "num_experts_per_tok": k}, "t", "test")
    touched = m.distinct_experts(b)
    assert touched == pytest.approx(e * (1 - (1 - k / e) ** b))
    assert k - 1e-9 <= touched <= min(e, b * k) + 1e-9
    assert m.distinct_experts(1) == pytest.approx(k)


def test_moe_decode_reads_touched_experts_only(h100):
    m = get_model("mixtral-8x7b")
    one = simulate(h100, m, BF16, 1, 128, 2).decode
    many = simulate(h100, m, BF16, 64, 128, 2).decode
    main = h100.main_memory.name

    def expert_bytes(phase):
        return sum(float(c.bytes_moved[main]) for s, c in zip(phase.specs, phase.costs)
                   if s.name in ("expert_gate_up", "expert_down"))
    per_expert = 3 * 4096 * 14336 * 2 * 32          # bytes of one expert over 32 layers
    assert expert_bytes(one) == pytest.approx(2 * per_expert, rel=0.02)
    assert expert_bytes(many) == pytest.approx(8 * (1 - 0.75 ** 64) * per_expert, rel=0.02)


def test_shard_hand_computed():
    m = get_model("llama-3-70b")
    s = shard(m, ParallelLayout(tp=4, pp=2))
    assert (s.n_heads, s.n_kv_heads, s.d_ff, s.n_layers, s.vocab_size) == \
        (16, 2, 7168, 40, 32064)
    attn = 8192 * (16 * 128 + 2 * 2 * 128) + 16 * 128 * 8192
    mlp = 3 * 8192 * 7168
    w = sum(weight_bytes(s, BF16).values())
    norms = (40 * 2 * 8192 + 8192) * 2
    assert w == pytest.approx(2 * (40 * (attn + mlp) + 2 * 32064 * 8192) + norms)
    q = shard(get_model("qwen3-235b-a22b"), ParallelLayout(tp=8, ep=8))
    assert q.n_kv_heads == 1            # 4 KV heads replicated over 8 devices
    assert q.expert_shards == 8 and q.expert_d_ff == 1536
    experts = 94 * 16 * 3 * 4096 * 1536
    assert q.mlp_params == pytest.approx(experts + 94 * 4096 * 128)


def test_block_comm_is_two_all_reduces(h100):
    topo = Topology.of(h100)
    m = get_model("llama-3-70b")
    got = block_comm_s(topo, m, ParallelLayout(tp=8), 16, 2.0)
    assert got == pytest.approx(2 * collective_time(topo, "all_reduce", 16 * 8192 * 2.0, 8))
    assert block_comm_s(topo, m, ParallelLayout(), 16, 2.0) == 0.0


def test_vectorised_layouts_equal_scalar_calls(h100):
    tp = np.array([2, 4, 8])
    pp = np.array([[1], [2]])
    grid = simulate_parallel(h100, "llama-3-70b", BF16, 8, 256, 16,
                             ParallelLayout(tp=tp, pp=pp)).totals
    for i in range(2):
        for j in range(3):
            one = simulate_parallel(h100, "llama-3-70b", BF16, 8, 256, 16,
                                    ParallelLayout(tp=int(tp[j]), pp=int(pp[i, 0]))).totals
            for key in ("tpot_s", "ttft_s", "memory_bytes", "collective_s_per_decode_step"):
                assert np.asarray(grid[key])[i, j] == pytest.approx(one[key], rel=1e-9)


def test_pipeline_bubble_and_micro_batches(h100):
    small = simulate_parallel(h100, "llama-3-70b", BF16, 1, 128, 8,
                              ParallelLayout(tp=2, pp=4)).totals
    big = simulate_parallel(h100, "llama-3-70b", BF16, 8, 128, 8,
                            ParallelLayout(tp=2, pp=4)).totals
    assert small["pipeline_bubble"] == pytest.approx(0.75)
    assert big["pipeline_bubble"] == 0.0 and big["micro_batches"] == 4
    huge = simulate_parallel(h100, "llama-3.1-405b", BF16, 1, 128, 8,
                             ParallelLayout(tp=8)).totals
    assert not huge["fits"]          # 811 GB of bf16 weights / 8 > 72 GB usable each
    assert simulate_parallel(h100, "llama-3.1-405b", BF16, 1, 128, 8,
                             ParallelLayout(tp=8, pp=2)).totals["fits"]


def test_memory_reserve_from_profile(h100):
    t = simulate_parallel(h100, "qwen3-8b", BF16, 1, 128, 8, ParallelLayout(tp=2)).totals
    assert t["usable_capacity_bytes"] == pytest.approx(0.9 * h100.main_memory.capacity_bytes)


@pytest.mark.parametrize("model, layout, match", [
    ("llama-3-70b", dict(tp=3), r"--tp 3 does not split .*n_kv_heads=8.*valid --tp: 1, 2, 4, 8"),
    ("mixtral-8x7b", dict(tp=2, ep=3), r"--ep 3 does not divide .*n_experts=8; valid --ep: "
                                       r"1, 2, 4, 8"),
    ("llama-3-8b", dict(ep=2), r"--ep 2: llama-3-8b has no experts"),
    ("llama-3-8b", dict(pp=33), r"--pp 33 is deeper than .*n_layers=32; valid --pp: 1 to 32"),
    ("mixtral-8x7b", dict(tp=2, ep=4), r"--ep must divide --tp"),
])
def test_bad_layouts(h100, model, layout, match):
    with pytest.raises(InputError, match=match):
        simulate_parallel(h100, model, BF16, 1, 16, 4, ParallelLayout(**layout))


def test_tp_without_device_link():
    with pytest.raises(InputError, match=r"profile rtx-4090: .* needs a device link.*"
                                         r"interconnect.device_to_device\); valid: 1"):
        simulate_parallel(load_profile("rtx-4090"), "llama-3-8b", BF16, 1, 16, 4,
                          ParallelLayout(tp=2))
    with pytest.raises(InputError, match="--tp must be a positive integer"):
        ParallelLayout(tp=0)


def test_unmodelled_fields_refused_or_flagged():
    base = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 128, "vocab_size": 100}
    with pytest.raises(InputError, match=r"kv_lora_rank=512 means multi-head latent"):
        config_from_hf({**base, "kv_lora_rank": 512}, "t", "cfg.json")
    with pytest.raises(InputError, match=r"hybrid_override_pattern.*state-space"):
        config_from_hf({**base, "hybrid_override_pattern": "M-M*"}, "t", "cfg.json")
    m = config_from_hf({**base, "attention_chunk_size": 8192}, "t", "cfg.json")
    assert any("chunked local attention" in a for a in m.approximations)
    oss = get_model("gpt-oss-20b")
    assert oss.sliding_window is None and "12 of 24 layers" in oss.approximations[0]


def test_moe_layout_import():
    cfg = {"hidden_size": 64, "num_hidden_layers": 6, "num_attention_heads": 4,
           "intermediate_size": 256, "moe_intermediate_size": 32, "vocab_size": 100,
           "num_experts": 8, "num_experts_per_tok": 2, "decoder_sparse_step": 2,
           "mlp_only_layers": [5], "shared_expert_intermediate_size": 64}
    m = config_from_hf(cfg, "t", "cfg.json")
    assert m.n_moe_layers == 2 and m.n_dense_layers == 4     # layers 1 and 3 (5 is dense)
    assert m.mlp_params == 4 * 3 * 64 * 256 + 2 * (8 * 3 * 64 * 32 + 3 * 64 * 64 + 64 * 8)


def _write_cache(root, repo, cfg, snapshot="abc123"):
    folder = root / "hub" / ("models--" + repo.replace("/", "--"))
    (folder / "snapshots" / snapshot).mkdir(parents=True)
    (folder / "snapshots" / snapshot / "config.json").write_text(json.dumps(cfg))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(snapshot)


def test_hf_cache_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    cfg = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
           "intermediate_size": 128, "vocab_size": 100}
    _write_cache(tmp_path, "acme/tiny-lm", cfg)
    m = get_model("acme/tiny-lm")
    assert m.name == "acme/tiny-lm" and m.d_model == 64
    with pytest.raises(InputError, match=r"'acme/absent': not in the local Hugging Face "
                                         r"cache.*built-ins: .*mixtral-8x7b.*config.json"):
        get_model("acme/absent")


def test_cli_layout_and_exit_codes():
    def run(*argv):
        return subprocess.run([sys.executable, "-m", "precsim.codesign.cli", "simulate",
                               "--profile", "h100-sxm", "--json", *argv],
                              capture_output=True, text=True)
    ok = run("--model", "llama-3-70b", "--quant", "FP8", "--tp", "2", "--batch", "4")
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["request"]["layout"]["tp"] == 2 and out["totals"]["devices"] == 2
    full = run("--model", "llama-3.1-405b", "--quant", "BF16", "--tp", "8")
    assert full.returncode == 3
    assert json.loads(full.stdout)["feasible"] is False
    bad = run("--model", "llama-3-70b", "--tp", "3")
    assert bad.returncode == 2 and "valid --tp" in bad.stderr and "Traceback" not in bad.stderr


def test_serve_replica_adds_collectives_and_counts_devices(h100):
    from precsim.simulator.des.serving import serve
    from precsim.simulator.des.workload import poisson_workload
    work = poisson_workload(2.0, 20, 1, 256, 16)
    one = serve(h100, "qwen3-8b", "BF16", work).summary
    two = serve(h100, "qwen3-8b", "BF16", work, layout=ParallelLayout(tp=2)).summary
    assert two["devices"] == 2 and two["layout"]["tp"] == 2 and "devices" not in one
    assert two["weight_bytes"] < 0.55 * one["weight_bytes"]      # half the weights each
    assert two["tpot_p50_s"] < one["tpot_p50_s"]                 # memory-bound decode splits


def test_size_searches_layouts_when_one_device_is_too_small(h100):
    from precsim.simulator.des.sizing import SLO, compare_sizing
    from precsim.simulator.parallel import candidate_layouts
    layouts = candidate_layouts(h100, "llama-3-70b", ["BF16"], (1,), (1,), (1,))
    assert [lay.tp for lay in layouts] == [1, 2, 4, 8]
    assert candidate_layouts(h100, "llama-3-8b", ["BF16"], (1,), (1,), (1,)) == [None]
    results, best = compare_sizing(h100, "llama-3-70b", ["BF16"], 2.0, SLO(ttft=2.0, tpot=0.1),
                                   layouts=layouts[:3], n_requests=40, prompt_tokens=128,
                                   output_tokens=16)
    assert results[0].devices is None and "do not fit" in results[0].reason
    assert best is not None and best.devices % best.layout["tp"] == 0


def test_moe_block_comm_hand_computed(h100):
    topo = Topology.of(h100)
    m = get_model("qwen3-235b-a22b")           # every block MoE, k = 8
    act = 32 * 4096 * 2.0
    got = block_comm_s(topo, m, ParallelLayout(tp=8, ep=8), 32, 2.0)
    want = (collective_time(topo, "all_reduce", act, 8)          # attention
            + 2 * collective_time(topo, "all_to_all", act * 8 / 8, 8)   # dispatch, combine
            + collective_time(topo, "all_gather", act, 8))
    assert got == pytest.approx(want)
    tp_only = block_comm_s(topo, m, ParallelLayout(tp=8), 32, 2.0)
    assert tp_only == pytest.approx(2 * collective_time(topo, "all_reduce", act, 8))


def test_energy_counts_every_device(h100):
    one = simulate_parallel(h100, "qwen3-8b", BF16, 4, 128, 8, ParallelLayout()).totals
    two = simulate_parallel(h100, "qwen3-8b", BF16, 4, 128, 8, ParallelLayout(tp=2)).totals
    assert one["energy_j"] == pytest.approx(simulate(h100, "qwen3-8b", BF16, 4, 128, 8)
                                            .totals["energy_j"])
    assert two["energy_j"] > one["energy_j"]    # two boards, each above static power


def test_vectorised_moe_layouts_equal_scalar_calls(h100):
    tp = np.array([2, 4, 8])
    grid = simulate_parallel(h100, "qwen3-30b-a3b", BF16, 16, 256, 80,
                             ParallelLayout(tp=tp, ep=tp)).totals
    for j, t in enumerate(tp):
        one = simulate_parallel(h100, "qwen3-30b-a3b", BF16, 16, 256, 80,
                                ParallelLayout(tp=int(t), ep=int(t))).totals
        for key in ("tpot_s", "ttft_s", "weight_bytes", "energy_j"):
            assert np.asarray(grid[key])[j] == pytest.approx(one[key], rel=1e-9)
