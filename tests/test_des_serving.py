"""Serving DES: hand-checked latencies against the cost model, queueing, KV capacity,
chunked prefill and byte-for-byte determinism."""
import json

import numpy as np
import pytest

from precsim.simulator.cost import (activation_bytes, decode_step_cost, kv_cache_bytes,
                            mixed_step_cost, prefill_cost, ragged_prefill_cost, weight_bytes)
from precsim.simulator.des.serving import SchedulerConfig, serve
from precsim.simulator.des.tables import build_cost_tables
from precsim.simulator.des.workload import Workload, poisson_workload
from precsim.simulator.errors import InputError
from precsim.simulator.models import get_model
from precsim.simulator.power import power_and_energy
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.quant import as_quant

PROFILE, MODEL, QUANT = "h100-sxm", "qwen2.5-0.5b", "W4A16-g128"


def _requests(arrivals, prompts, outputs):
    return Workload(np.asarray(arrivals, float), np.asarray(prompts), np.asarray(outputs))


def test_one_request_alone_matches_the_cost_model():
    prompt, output = 300, 40
    result = serve(PROFILE, MODEL, QUANT, _requests([1.5], [prompt], [output]), max_batch=8)
    row = result.requests.iloc[0]
    ttft = float(prefill_cost(PROFILE, MODEL, QUANT, 1, prompt).time_s)
    steps = decode_step_cost(PROFILE, MODEL, QUANT, 1,
                             prompt + np.arange(1, output, dtype=float)).time_s
    assert row["queue_s"] == 0.0
    assert row["ttft_s"] == pytest.approx(ttft, rel=1e-9)
    assert row["tpot_s"] == pytest.approx(steps.mean(), rel=1e-4)
    assert row["e2e_s"] == pytest.approx(ttft + steps.sum(), rel=1e-4)
    s = result.summary
    assert s["served"] == 1 and s["rejected"] == 0
    assert s["iterations"] == output  # one prefill + output - 1 decode steps
    assert s["utilization"] == pytest.approx(1.0)
    assert s["throughput_tokens_per_s"] == pytest.approx(output / row["e2e_s"])
    pre = prefill_cost(PROFILE, MODEL, QUANT, 1, prompt)
    dec = decode_step_cost(PROFILE, MODEL, QUANT, 1, prompt + np.arange(1, output, dtype=float))
    # every iteration through the board power model; busy all the time: no idle floor
    board = power_and_energy(load_profile(PROFILE), np.r_[pre.time_s, dec.time_s],
                             np.r_[pre.energy_j, dec.energy_j])
    assert s["energy_per_token_j"] == pytest.approx(np.sum(board.energy_j) / output, rel=1e-4)
    assert s["energy_static_j"] + s["energy_dynamic_j"] == pytest.approx(s["energy_j"])
    assert s["average_power_w"] == pytest.approx(s["energy_j"] / s["makespan_s"])


def test_second_request_queues_for_the_only_batch_slot():
    w = _requests([0.0, 0.0], [100, 100], [10, 10])
    req = serve(PROFILE, MODEL, QUANT, w, max_batch=1).requests
    first, second = req.iloc[0], req.iloc[1]
    assert first["queue_s"] == 0.0
    assert second["queue_s"] == pytest.approx(first["e2e_s"], rel=1e-12)
    assert second["ttft_s"] == pytest.approx(first["e2e_s"] + first["ttft_s"], rel=1e-12)
    assert second["tpot_s"] == pytest.approx(first["tpot_s"], rel=1e-12)


def test_batched_requests_share_iterations():
    w = _requests([0.0] * 4, [100] * 4, [10] * 4)
    result = serve(PROFILE, MODEL, QUANT, w, max_batch=4)
    req = result.requests
    ttft = float(prefill_cost(PROFILE, MODEL, QUANT, 4, 100).time_s)
    assert np.allclose(req["ttft_s"], ttft, rtol=1e-9)
    assert req["e2e_s"].nunique() == 1
    assert result.summary["iterations"] == 10
    assert result.summary["mean_decode_batch"] == 4


def test_little_law_holds_for_the_simulated_queue():
    w = poisson_workload(50.0, 400, seed=1, prompt_tokens="64:256", output_tokens="8:64")
    result = serve(PROFILE, MODEL, QUANT, w, max_batch=16)
    req, s = result.requests, result.summary
    # time-average number in system from the event times vs lambda x mean time in system
    times = np.concatenate([req["arrival_s"], req["finish_s"]])
    steps = np.concatenate([np.ones(len(req)), -np.ones(len(req))])
    order = np.lexsort((-steps, times))
    in_system = np.cumsum(steps[order])
    area = np.sum(in_system[:-1] * np.diff(times[order]))
    lam = len(req) / s["makespan_s"]
    assert area / s["makespan_s"] == pytest.approx(lam * req["e2e_s"].mean(), rel=1e-9)
    assert (req["first_token_s"] >= req["admitted_s"]).all()
    assert (result.iterations["decode_batch"] <= 16).all()


def test_request_longer_than_kv_cache_is_rejected_not_hung():
    w = _requests([0.0, 0.1, 0.2], [100, 5000, 100], [10, 10, 10])
    result = serve(PROFILE, MODEL, QUANT, w, kv_capacity_tokens=1000)
    req = result.requests
    assert list(req["rejected"]) == [False, True, False]
    assert req.loc[1, "reject_reason"] == "exceeds_kv_capacity"
    assert np.isnan(req.loc[1, "ttft_s"])
    assert result.summary["rejected_exceeds_kv_capacity"] == 1
    assert result.summary["served"] == 2


def test_kv_capacity_from_device_memory():
    model, quant = get_model("llama-3-8b"), as_quant("W16A16")
    s = serve("l4", model, quant, _requests([0.0], [10], [2])).summary
    weights = sum(weight_bytes(model, quant).values())
    acts = float(activation_bytes(model, quant, 1.0, 8192.0))  # largest iteration
    per_token = float(kv_cache_bytes(model, quant, 1, 1))
    assert per_token == 2 * 32 * 8 * 128 * 2  # K and V, 32 layers, 8 KV heads, bf16
    assert s["kv_capacity_tokens"] == int((24 * 2**30 - weights - acts) // per_token)
    # a prompt longer than that capacity is rejected, and the simulation ends
    big = serve("l4", model, quant,
                _requests([0.0, 0.0], [s["kv_capacity_tokens"] + 1, 10], [1, 2]))
    assert list(big.requests["reject_reason"]) == ["exceeds_kv_capacity", ""]


def test_weights_that_do_not_fit_are_an_input_error():
    with pytest.raises(InputError, match="does not fit"):
        serve("l4", "llama-2-7b", "FP32", _requests([0.0], [10], [2]))


def test_full_kv_cache_waits_or_rejects():
    w = _requests([0.0] * 5, [140] * 5, [20] * 5)   # 160 tokens each, 3 fit in 500
    waited = serve(PROFILE, MODEL, QUANT, w, kv_capacity_tokens=500, on_full="wait")
    assert waited.summary["served"] == 5 and waited.summary["kv_peak_tokens"] == 480
    assert (waited.requests["queue_s"].iloc[3:] > 0).all()
    rejected = serve(PROFILE, MODEL, QUANT, w, kv_capacity_tokens=500, on_full="reject")
    assert list(rejected.requests["reject_reason"]) == [""] * 3 + ["kv_cache_full"] * 2
    assert rejected.summary["rejected_kv_cache_full"] == 2


def test_chunked_prefill_alone_equals_prefill_and_chunks_cost_more():
    w = _requests([0.0], [400], [5])
    whole = serve(PROFILE, MODEL, QUANT, w, chunked_prefill_tokens=512).requests.iloc[0]
    assert whole["ttft_s"] == pytest.approx(
        float(prefill_cost(PROFILE, MODEL, QUANT, 1, 400).time_s), rel=1e-9)
    chunked = serve(PROFILE, MODEL, QUANT, w, chunked_prefill_tokens=64)
    assert chunked.requests.iloc[0]["ttft_s"] > whole["ttft_s"]
    assert (chunked.iterations["prefill_tokens"] <= 64).all()
    assert chunked.iterations["prefill_tokens"].sum() == 400


def test_chunked_prefill_keeps_decodes_running():
    w = poisson_workload(40.0, 300, seed=2, prompt_tokens=512, output_tokens=64)
    plain = serve(PROFILE, MODEL, QUANT, w, max_batch=32).summary
    chunked = serve(PROFILE, MODEL, QUANT, w, max_batch=32, chunked_prefill_tokens=256)
    assert chunked.summary["served"] == plain["served"] == 300
    mixed = chunked.iterations
    assert ((mixed["decode_batch"] > 0) & (mixed["prefill_tokens"] > 0)).any()
    assert (mixed["decode_batch"] + mixed["prefill_tokens"] <= 256).all()


def test_prefill_of_unequal_prompts_charges_attention_per_prompt():
    w = _requests([0.0, 0.0], [100, 300], [2, 2])
    req = serve(PROFILE, MODEL, QUANT, w, max_batch=2).requests
    ragged_cost = ragged_prefill_cost(PROFILE, MODEL, QUANT, [100, 300])
    ragged = float(ragged_cost.time_s)
    assert np.allclose(req["ttft_s"], ragged, rtol=1e-9)
    # attention work per prompt: sum L^2 > k mean(L)^2 (in flash blocks of 128 x 64:
    # 2 + 11 > 2 x 6); the time need not follow, as the longer prompt fills more SMs
    assert float(ragged_cost.flops) > float(prefill_cost(PROFILE, MODEL, QUANT, 2, 200).flops)


def test_chunked_iterations_are_mixed_step_costs():
    # every length on the tables' integer grids: lookups are exact
    tables = build_cost_tables(load_profile(PROFILE), get_model(MODEL), as_quant(QUANT),
                               max_batch=8, max_context=128, max_prompt=100,
                               chunk_tokens=64)
    cases = [(3, 40, [(20, 30, True)]), (3, 40, [(20, 30, False)]),
             (0, 0, [(0, 64, False)]), (5, 90, [(0, 12, True), (50, 30, False)])]
    for batch, ctx, chunks in cases:
        time_s, energy_j = tables.mixed(batch, batch * ctx, chunks)
        past, take, last = (np.array(col) for col in zip(*chunks))
        ref = mixed_step_cost(PROFILE, MODEL, QUANT, batch, max(ctx, 1), take, past,
                              last_chunk=last, ragged=True)
        assert time_s == pytest.approx(float(ref.time_s), rel=1e-9), (batch, chunks)
        assert energy_j == pytest.approx(float(ref.energy_j), rel=1e-9), (batch, chunks)


def test_same_seed_same_result_byte_for_byte():
    def run():
        w = poisson_workload(30.0, 300, seed=11, prompt_tokens="32:512", output_tokens="1:64")
        r = serve(PROFILE, MODEL, QUANT, w, max_batch=16, chunked_prefill_tokens=128)
        return r.requests.to_csv(index=False), json.dumps(r.summary, sort_keys=True)
    assert run() == run()


@pytest.mark.parametrize("kwargs,match", [
    ({"max_batch": 0}, "max batch"), ({"chunked_prefill_tokens": 0}, "chunked prefill"),
    ({"on_full": "drop"}, "on_full"), ({"max_batch_tokens": 0}, "max batch tokens")])
def test_bad_scheduler_settings(kwargs, match):
    with pytest.raises(InputError, match=match):
        SchedulerConfig(kv_capacity_tokens=10, **kwargs)
