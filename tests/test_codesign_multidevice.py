"""The planner's multi-device option (`deployments[i].max_devices_per_replica`):
a model that does not fit one device is served on the smallest fitting tensor-parallel
replica, and its device-hours count every device."""
import functools

import numpy as np
import pytest

from precsim.codesign.multidevice import serving_totals, splits_heads, tp_degrees
from precsim.codesign.planner import DECODE_NODES, plan, serving_costs
from precsim.codesign.study import Deployment, Grid, problem_from_study, resolve_study, updated
from precsim.simulator.models import get_model, model_for_params
from precsim.simulator.parallel import ParallelLayout, simulate_parallel
from precsim.simulator.profile_loader import load_profile
from tests.test_codesign_planner import small_study


@functools.lru_cache(maxsize=2)
def l4_problem(max_devices: int):
    """16-bit training and serving of N in [2e10, 4e10] on an L4 (24 GiB): at 16 bits
    the weights alone (>= 40 GB) do not fit one card."""
    study, source = small_study()
    search = study.search.model_copy(update={
        "N": Grid(min=2e10, max=4e10, points=5), "serve_formats": ["W16A16"],
        "train_formats": study.search.train_formats[:1]})
    study = updated(study, source, search=search, deployments=[Deployment(
        profile="l4", dollars_per_device_hour=0.8, max_devices_per_replica=max_devices)])
    return problem_from_study(resolve_study(study, source), 0)


def test_off_the_large_model_is_infeasible_as_before():
    result = plan(l4_problem(1))
    assert result.optimum is None
    assert result.by_format["reason"].tolist() == [
        "no model reaching the target fits the device memory"]
    assert "serve_devices" not in result.by_format


def test_on_the_model_is_served_on_the_smallest_fitting_tp():
    problem = l4_problem(8)
    best = plan(problem).optimum
    assert best is not None and best.serve_devices in (2, 4, 8)
    record = best.to_dict()
    assert record["serve_layout"] == {"tp": best.serve_devices, "pp": 1, "ep": 1, "dp": 1}
    model = model_for_params(best.N, **problem.model_options)
    wl = problem.workload
    fmt = problem.serve_formats[0]

    def run(tp):
        return simulate_parallel(problem.deploy_profile, model, fmt, wl.batch,
                                 wl.prompt_len, wl.output_len, ParallelLayout(tp=tp),
                                 decode_nodes=DECODE_NODES).totals
    chosen = run(best.serve_devices)
    assert chosen["fits"] and best.memory_bytes == pytest.approx(chosen["memory_bytes"])
    if best.serve_devices > 2:
        assert not run(best.serve_devices // 2)["fits"]
    # device-hours: the replica's latency times all its devices
    tokens = wl.batch * wl.output_len
    assert best.serving.time_s == pytest.approx(
        wl.tokens_served * chosen["e2e_latency_s"] * best.serve_devices / tokens, rel=1e-12)
    assert best.serving.energy_j == pytest.approx(
        wl.tokens_served * chosen["energy_per_token_j"], rel=1e-12)


def test_serving_costs_scale_with_devices_and_match_one_device_when_it_fits():
    problem = l4_problem(8)
    N = np.array([1e9, 3e10])
    on, off = serving_costs(problem, N), serving_costs(l4_problem(1), N)
    assert on["devices_per_replica"][0].tolist()[0] == 1.0
    assert on["devices_per_replica"][0, 1] >= 2 and on["fits"][0].all()
    assert not off["fits"][0, 1] and off["devices_per_replica"][0].tolist() == [1.0, 1.0]
    for key in ("serve_time_s", "serve_energy_j", "tpot_s", "ttft_s", "memory_bytes"):
        assert on[key][0, 0] == off[key][0, 0]      # fits one device: unchanged


def test_tp_degrees_within_a_node_and_the_option():
    l4 = load_profile("l4")
    assert tp_degrees(l4, 8) == [2, 4, 8]
    assert tp_degrees(l4, 5) == [2, 4]
    assert tp_degrees(l4, 1) == []
    assert tp_degrees(load_profile("rtx-4090"), 8) == []   # no device link in the profile


def test_splits_heads_discrete_and_continuous():
    llama = get_model("llama-3-8b")          # 32 heads, 8 KV heads
    assert [bool(splits_heads(llama, t)) for t in (2, 4, 8, 16, 3)] == [
        True, True, True, True, False]
    family = model_for_params(np.array([1e8, 1e10]))   # continuous heads
    heads = np.asarray(family.n_heads)
    assert splits_heads(family, 8).tolist() == (heads >= 8).tolist()


def test_nothing_fits_keeps_one_device_and_infeasible():
    l4 = load_profile("l4")
    wl = l4_problem(8).workload
    tot = serving_totals(l4, model_for_params(np.array([5e11])), "W16A16", wl, 8,
                         decode_nodes=DECODE_NODES)
    assert not tot["fits"].any() and tot["devices_per_replica"].tolist() == [1.0]


def test_study_option_must_be_a_positive_device_count(tmp_path):
    from precsim.codesign.study import load_study
    from precsim.simulator.errors import InputError
    path = tmp_path / "study.yaml"
    path.write_text("deployments:\n  - profile: l4\n    max_devices_per_replica: 0\n")
    with pytest.raises(InputError, match="max_devices_per_replica"):
        load_study(str(path))
