"""precsim.codesign.planner: a hand-solved optimum, constraints, and monotonicity invariants."""
import dataclasses
import functools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from precsim import lawcore
from precsim.codesign.law_search import smallest_D
from precsim.codesign.planner import plan, serving_at_batch, serving_costs
from precsim.codesign.study import (Grid, Target, TrainFormat, Training, load_study,
                                    problem_from_study, resolve_study, updated)
from precsim.codesign.variants import profile_variants
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.training import token_costs



def small_study(**update):
    """The built-in study on a coarse grid with few formats (fast plans)."""
    study, source = load_study()
    search = study.search.model_copy(update={
        "N": Grid(min=3e8, max=3e10, points=25), "D": Grid(min=1e9, max=1e14, points=21),
        "bisection_steps": 20, "train_formats": study.search.train_formats[:1]
        + study.search.train_formats[3:4] + study.search.train_formats[7:8],
        "serve_formats": ["W16A16", "W8A8", "FP8", "NVFP4", "W4A4"]})
    return updated(study, source, search=search, whatif=[], **update), source


def plan_for(study, source, deployment, **profiles):
    return plan(problem_from_study(resolve_study(study, source), deployment, **profiles))


@functools.lru_cache(maxsize=1)
def small_resolved():
    return resolve_study(*small_study())


def test_hand_solved_training_only_optimum():
    """16-bit training only, objective time, law kumar2024 (alpha = beta, no PTQ).

    Minimising N*D subject to A*(g*N)^-a + B*D^-a = L - E gives equal terms at the
    optimum (Lagrange): A*(g*N)^-a = B*D^-a = (L - E)/2. Pick N* = 2e9 and derive L, D*:
    at N*, the planner's D is D*, and the training time is D* tokens priced by the
    training-step model (whose cost per token is not proportional to N, so the optimum
    N itself moves off N*).
    """
    law = lawcore.get_law("kumar2024")
    c = law.constants
    g = float(law.training_factor(16, 16, 16))
    n_star = 2e9
    term = c["A"] * (g * n_star) ** -c["alpha"]
    d_star = (c["B"] / term) ** (1 / c["beta"])
    target = c["E"] + 2 * term
    study, source = load_study()
    search = study.search.model_copy(update={
        "N": Grid(min=1e9, max=4e9, points=21),   # 2e9 is the middle point
        "D": Grid(min=1e9, max=1e14, points=51), "bisection_steps": 45,
        "train_formats": [TrainFormat(name="16-bit", weight_bits=16, act_bits=16, kv_bits=16)]})
    study = updated(study, source, search=search, deployments=[], whatif=[],
                    objective="time", target=Target(target_loss=target),
                    training=Training(profile="h100-sxm"))
    result = plan_for(study, source, None)
    o = result.optimum
    assert o.loss <= target
    assert o.train_dtype == "bf16" and o.serve_format is None and o.train_recipe == "bf16"
    iso = result.iso_loss
    at = iso[np.isclose(iso["N"], n_star, rtol=1e-12) & (iso["weight_bits"] == 16)]
    assert float(at["D"].iloc[0]) == pytest.approx(d_star, rel=1e-6)
    per = token_costs("h100-sxm", o.N, "bf16", **Training(profile="h100-sxm").layout())
    assert o.total.cost == pytest.approx(o.D * float(per["device_s_per_token"]), rel=1e-9)
    assert 0.2 < o.train_mfu < 0.7
    # the paper's abstract optimum is the same point here: 16 bits, C = (6/16) N D 16
    a = result.abstract
    assert a["precision_bits"] == 16
    assert a["abstract_cost"] == pytest.approx(6 * n_star * d_star, rel=1e-6)


def test_smallest_D_is_first_crossing_and_monotone():
    law = lawcore.get_law("kumar2024")
    bits = np.array([[16, 16, 16, np.inf], [8, 8, 8, 4.0]])
    N = np.geomspace(1e9, 1e10, 5)
    D = np.geomspace(1e9, 1e14, 31)
    lo = smallest_D(law, 2.93, bits, N, D, 30)
    hi = smallest_D(law, 2.95, bits, N, D, 30)
    reach = np.isfinite(lo.D_min)
    assert np.all(hi.D_min[reach] <= lo.D_min[reach])
    assert np.all(lo.loss_at[reach] <= 2.93)
    # just below D_min the loss is above the target (first crossing)
    n = np.broadcast_to(N, lo.D_min.shape)[reach]
    below = law.predict(n, lo.D_min[reach] * 0.999,
                        *(np.broadcast_to(bits[:, k:k + 1], lo.D_min.shape)[reach]
                          for k in range(4)))
    assert np.all(below > 2.93)


def test_constraints_hold_at_the_optimum():
    rs = small_resolved()
    small = rs.deploy_profiles[2].with_overrides({"memory.lpddr5.capacity.value": "2 GB"})
    result = plan(problem_from_study(rs, 2, deploy_profile=small))
    o = result.optimum
    assert o.memory_bytes <= 2e9
    assert o.tpot_s <= 0.1          # the study's SLO
    bf = result.by_format
    assert not bf.loc[bf.serve_format == "W16A16", "feasible"].any() or \
        (bf.loc[bf.serve_format == "W16A16", "memory_bytes"] <= 2e9).all()


def test_frontier_is_pareto_and_abstract_matches_lawcore():
    study, source = load_study()
    result = plan_for(study, source, 1)
    fr = result.frontier
    assert np.all(np.diff(fr["cost"]) >= 0) and np.all(np.diff(fr["loss"]) < 0)
    a = result.abstract
    assert a["lawcore_compute_optimal"]["precision"] == pytest.approx(a["precision_bits"],
                                                                       abs=0.5)
    assert a["real_cost"] >= result.optimum.total.cost


@settings(max_examples=10)
@given(st.floats(0.0, 0.05), st.floats(0.0, 0.05))
def test_raising_the_target_never_raises_the_cost(inc_a, inc_b):
    low, high = sorted((inc_a, inc_b))
    rs = small_resolved()
    costs = [plan(problem_from_study(dataclasses.replace(
        rs, target_loss=rs.baseline_loss + inc), 1)).optimum.total.cost
        for inc in (low, high)]
    assert costs[1] <= costs[0] * (1 + 1e-12)


@functools.lru_cache(maxsize=1)
def mixed_resolved():
    """The small study with serving formats whose weights and activations differ in type
    (W4A8, W4A16, W8A16, W1.58A8) and the W1.58A8 training format."""
    formats = load_study()[0].search.train_formats
    study, source = small_study()
    search = study.search.model_copy(update={
        "train_formats": [formats[0], formats[3], formats[7], formats[8]],
        "serve_formats": ["W16A16", "W8A8", "FP8", "NVFP4", "W4A4", "W8A16", "W4A8-g128",
                          "W4A16-g128", "W1.58A8"]})
    return resolve_study(updated(study, source, search=search), source)


@pytest.mark.parametrize("profile,dtype,deployment", [
    ("h100-sxm", "fp4_e2m1", 0), ("h100-sxm", "int4", 0),
    ("apple-m2", "compute_units.gpu.compute.fp8_e4m3", 2),
    ("apple-m2", "compute_units.gpu.compute.int4", 2),
    ("snapdragon-8-gen3", "compute_units.npu.compute.int4", 1),
    ("snapdragon-8-gen3", "compute_units.gpu.compute.bf16", 1),
    ("ternary-accel", "int4", 3)])
def test_adding_native_support_never_raises_the_cost(profile, dtype, deployment):
    """Every format, including those whose weights and activations differ in type: int4
    weights with int8 activations used to be charged more conversion once int4 was
    native than through int4's fallback rule (snapdragon-8-gen3 W4A8 TPOT 35.6 -> 41.2
    ms, ternary-accel 26.6 -> 78.5 ms)."""
    rs = mixed_resolved()
    field = dtype if "." in dtype else f"compute.{dtype}"  # a SoC: one unit's engines
    base, native = (p for _, p in profile_variants(load_profile(profile),
                                                    [f"{field}=native"]))
    roles = {"deploy_profile": native}
    if profile == "h100-sxm":
        roles["train_profile"] = native
    problems = problem_from_study(rs, deployment), problem_from_study(rs, deployment, **roles)
    before, after = map(plan, problems)
    assert after.optimum.total.cost <= before.optimum.total.cost * (1 + 1e-12)
    merged = before.by_format.merge(after.by_format, on=["train_format", "serve_format"])
    assert set(merged.serve_format) >= {"W4A8-g128", "W4A16-g128", "W8A16", "W1.58A8"}
    assert not (merged.feasible_x & ~merged.feasible_y).any()
    ok = merged.feasible_x & merged.feasible_y
    assert (merged.cost_y[ok] <= merged.cost_x[ok] * (1 + 1e-9)).all()
    # every serving format at every N: at the study's batch no slower and no dearer;
    # with the batch searched no dearer (a larger batch may trade TPOT within the SLO)
    N = np.asarray(problems[0].N_grid, float)
    fixed = [serving_at_batch(p, N, p.workload) for p in problems]
    for key in ("tpot_s", "ttft_s", "serve_time_s", "serve_energy_j"):
        assert np.all(fixed[1][key] <= fixed[0][key] * (1 + 1e-9)), key
    searched = [serving_costs(p, N) for p in problems]
    cost = [p.weights.cost("deploy", s["serve_time_s"], s["serve_energy_j"])
            for p, s in zip(problems, searched)]
    ok = searched[0]["fits"] & searched[0]["slo_ok"]
    assert np.all(cost[1][ok] <= cost[0][ok] * (1 + 1e-9))


@settings(max_examples=8)
@given(st.floats(1.0, 4.0))
def test_more_bandwidth_never_raises_the_cost(factor):
    rs = small_resolved()
    profile = rs.deploy_profiles[1]
    faster = profile.with_overrides(
        {"memory.lpddr5x.bandwidth.value": f"{76.8 * factor:.6f} GB/s"})
    before = plan(problem_from_study(rs, 1))
    after = plan(problem_from_study(rs, 1, deploy_profile=faster))
    assert after.optimum.total.cost <= before.optimum.total.cost * (1 + 1e-12)


def test_training_runs_narrow_bits_in_the_cheapest_container():
    """On h100-sxm int4 has no tensor path: 4-bit training runs on int8 tensor cores."""
    rates = plan(problem_from_study(small_resolved(), 0)).train_rates.set_index("train_format")
    assert rates.loc["16-bit", "exec_dtype"] == "bf16"
    assert rates.loc["4-bit", "exec_dtype"] in ("int8", "fp8_e4m3")
    # seconds_per_flop is the cost model's output (deterministic), not a timing
    assert math.isclose(rates.loc["4-bit", "seconds_per_flop"],
                        rates.loc["8-bit", "seconds_per_flop"])


def test_unreachable_target_is_answered_as_infeasible_with_exit_3(capsys):
    """`plan --target-loss 1.5` (below any reachable loss) used to raise KeyError 'cost'
    (exit 1); it is an answer: no configuration, exit 3, in text and JSON."""
    from precsim.codesign.cli import main
    assert main(["plan", "--target-loss", "1.5"]) == 3
    assert "no configuration reaches the target loss" in capsys.readouterr().out
    assert main(["plan", "--target-loss", "1.5", "--json"]) == 3
    assert json.loads(capsys.readouterr().out)["optimum"] is None


def test_serving_batch_is_searched_within_the_slo():
    """h100-sxm's deployment (batch up to 32, TPOT <= 50 ms, TTFT <= 1 s): per (format, N)
    the planner keeps the batch with the lowest serving cost among the powers of two
    that fit and meet the SLO; batch_search false prices exactly the study's batch."""
    problem = problem_from_study(small_resolved(), 0)
    wl = problem.workload
    assert wl.batch == 32 and wl.batch_candidates() == [1, 2, 4, 8, 16, 32]
    N = np.asarray(problem.N_grid, float)
    chosen = serving_costs(problem, N)
    each = {b: serving_at_batch(problem, N, wl.model_copy(update={"batch": b}))
            for b in wl.batch_candidates()}
    for f in range(len(problem.serve_axis)):
        for i in range(N.size):
            ok = {b: problem.weights.cost("deploy", r["serve_time_s"][f, i],
                                          r["serve_energy_j"][f, i])
                  for b, r in each.items() if r["fits"][f, i] and r["slo_ok"][f, i]}
            if ok:
                assert chosen["serve_batch"][f, i] == min(ok, key=ok.get)
            else:
                assert chosen["serve_batch"][f, i] == 1 and not chosen["slo_ok"][f, i] \
                    or not chosen["fits"][f, i]
    fixed = wl.model_copy(update={"batch_search": False})
    assert fixed.batch_candidates() == [32]
