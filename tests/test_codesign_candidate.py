"""precsim.codesign.candidate: the plan's answer as a frozen dataclass, and its JSON record."""
import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from precsim.codesign.candidate import Candidate, PhaseCost
from precsim.codesign.planner import plan
from precsim.codesign.study import Grid, load_study, problem_from_study, resolve_study, updated

GOLDEN = Path(__file__).parent / "golden" / "outputs.json"


def candidate(training=PhaseCost(7200.0, 3.6e6, 10.0, 20.0),
              serving=PhaseCost(1800.0, 7.2e6, 5.0, 6.0)) -> Candidate:
    return Candidate(
        train_format="8-bit", weight_bits=8.0, act_bits=8.0, kv_bits=8.0, train_dtype="int8",
        train_native=True, serve_format="W4A16-g128", P_post=4.0, N=2e9, D=5e10, loss=2.95,
        train_flops=6e20, training=training, serving=serving, tpot_s=0.02, ttft_s=0.3,
        memory_bytes=1.5e9, N_at_grid_edge=False, D_at_grid_edge=True)


def test_candidate_is_frozen():
    c = candidate()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.N = 1e9
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.training.cost = 0.0


def test_totals_split_into_training_and_serving_by_hand():
    c = candidate()
    assert c.total == PhaseCost(9000.0, 1.08e7, 15.0, 26.0)
    assert c.training.device_hours == 2.0 and c.serving.device_hours == 0.5
    assert c.total.device_hours == 2.5
    assert c.tokens_per_param == 25.0


def test_to_dict_has_the_recorded_plan_json_keys_and_survives_json():
    recorded = json.loads(GOLDEN.read_text())["plan/default"]["json"]
    record = candidate().to_dict()
    assert set(record) == set(recorded["optimum"])
    assert set(recorded["by_format"][0]) == set(record) | {"feasible", "reason"}
    assert json.loads(json.dumps(record)) == record
    assert record["train_time_s"] == 7200.0 and record["serve_energy_j"] == 7.2e6
    assert record["cost"] == 15.0 and record["tokens_per_param"] == 25.0


@given(st.lists(st.floats(0, 1e12), min_size=8, max_size=8))
def test_totals_are_the_sums_of_the_phases(values):
    c = candidate(PhaseCost(*values[:4]), PhaseCost(*values[4:]))
    record = c.to_dict()
    assert record["time_s"] == values[0] + values[4]
    assert record["energy_j"] == values[1] + values[5]
    assert record["cost"] == values[2] + values[6]
    assert record["dollars"] == values[3] + values[7]


def test_plan_optimum_is_a_candidate_and_the_json_is_its_record():
    study, source = load_study()
    search = study.search.model_copy(update={
        "N": Grid(min=3e8, max=3e10, points=9), "D": Grid(min=1e9, max=1e14, points=9),
        "bisection_steps": 10, "train_formats": study.search.train_formats[:2],
        "serve_formats": ["W16A16", "W8A8"]})
    resolved = resolve_study(updated(study, source, search=search, whatif=[]), source)
    result = plan(problem_from_study(resolved, 1))
    o = result.optimum
    assert isinstance(o, Candidate)
    assert result.summary()["optimum"] == o.to_dict()
    best = result.by_format[result.by_format["feasible"]].sort_values("cost").iloc[0]
    assert best.drop(["feasible", "reason"]).to_dict() == o.to_dict()
    assert o.total.cost == pytest.approx(o.training.cost + o.serving.cost, rel=0)
