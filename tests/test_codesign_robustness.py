"""precsim.codesign.robustness: the plan under an ensemble of laws."""
import json

import numpy as np
import pytest

from precsim.codesign.cli import main
from precsim.codesign.planner import hardware_costs, plan
from precsim.codesign.robustness import (ENSEMBLE_LAWS, answers_by_law, answers_text, ensemble,
                                         robustness, robustness_text)
from precsim.codesign.study import TrainFormat, problem_from_study, resolve_study
from precsim.lawcore import get_law
from tests.test_codesign_planner import small_study


def test_ensemble_members_presets_then_draws():
    names = [n for n, _ in ensemble(get_law("kumar2024"), draws=3)]
    assert names == [*ENSEMBLE_LAWS, "lowbit-qat bootstrap 1", "lowbit-qat bootstrap 2",
                     "lowbit-qat bootstrap 3"]
    # a study law outside the presets joins first
    assert ensemble(get_law("kumar2024-fp"), draws=0)[0][0] == "kumar2024-fp"


def test_section_counts_sum_to_the_ensemble_and_reuse_the_plan():
    resolved = resolve_study(*small_study())
    problem = problem_from_study(resolved, 0)
    hardware = hardware_costs(problem)
    section = robustness(problem, hardware, draws=2)
    assert section["ensemble_size"] == 5 == section["evaluated"] + len(section["failed"])
    assert sum(w["wins"] for w in section["wins"]) + section["infeasible"] == \
        section["evaluated"]
    assert sum(w["share"] for w in section["wins"]) == pytest.approx(
        section["feasible"] / section["evaluated"])
    # the kumar2024 member is the plan itself
    base = plan(problem, hardware).optimum
    member = next(m for m in section["members"] if m["law"] == "kumar2024")
    assert (member["train_format"], member["serve_format"]) == (base.train_format,
                                                                base.serve_format)
    assert member["cost"] == pytest.approx(base.total.cost, rel=1e-12)
    spread = section["optimal_cost_spread"]
    costs = [m["cost"] for m in section["members"] if m["feasible"]]
    assert spread["min"] == min(costs) and spread["max"] == max(costs)
    for m in section["members"]:
        if m["gap"] is not None:
            assert m["gap"] >= 0 and m["tie"] == (m["gap"] <= section["tie_margin"])


def test_ties_are_reported_in_words():
    section = {"evaluated": 3, "tie_margin": 0.02,
               "wins": [{"train_format": "16-bit", "serve_format": "W8A8", "wins": 2},
                        {"train_format": "8-bit", "serve_format": None, "wins": 1}],
               "optimal_cost_spread": {"min": 3600.0, "max": 7200.0},
               "members": [{"law": "kumar2024", "tie": True, "gap": 0.013,
                            "train_format": "16-bit", "serve_format": "W8A8",
                            "runner_up": {"train_format": "8-bit", "serve_format": "W8A8"}}]}
    text = robustness_text(section, "time")
    assert text.startswith("Training 16-bit and serving W8A8 wins under 2 of 3 laws")
    assert "(others: 8-bit/as trained 1)" in text
    assert "from 1 device-h to 2 device-h" in text
    assert "within 2% of the optimum — a tie" in text and "differ by 1.3%" in text


@pytest.mark.slow
def test_plan_json_has_robustness_and_validity(capsys):
    code = main(["plan", "--draws", "1", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    r = doc["robustness"]
    assert r["ensemble_size"] == 4 and r["summary"]
    assert doc["validity"]["inside"] is False  # the default plan is far outside Kumar's runs
    assert np.isfinite(r["optimal_cost_spread"]["max"])


def test_answers_by_law_flag_the_ternary_extrapolation():
    study, source = small_study()
    search = study.search.model_copy(update={
        "train_formats": [*study.search.train_formats[:1],
                          TrainFormat(name="W1.58A8", weight_bits=1.58, act_bits=8,
                                      kv_bits=8)],
        "serve_formats": ["W8A8", "W1.58A8"]})
    resolved = resolve_study(study.model_copy(update={"search": search}), source)
    problem = problem_from_study(resolved, 0)
    rows = answers_by_law(problem, hardware_costs(problem))
    assert [r["law"] for r in rows] == ["kumar2024", "lowbit-qat"]
    kumar = rows[0]
    assert kumar["optimum"]["cost"] == pytest.approx(plan(problem).optimum.total.cost,
                                                     rel=1e-12)
    low = kumar["low_bit"]
    assert low["train_format"] == "W1.58A8"
    assert any(f.startswith("P_w = 1.58 bits") for f in low["flags"])  # below Kumar's 3 bits
    assert low["gap"] == pytest.approx(low["cost"] / kumar["optimum"]["cost"] - 1)
    # the low-bit law was fitted down to 1 bit: no P_w flag there
    assert not any(f.startswith("P_w") for f in rows[1]["low_bit"]["flags"])
    assert "the low-bit pair — " in answers_text(rows, "dollars")


# ----- economics: no silent zero ----------------------------------------------------------------
def test_datacenter_deployment_without_price_is_refused(capsys):
    code = main(["plan", "--deploy-profile", "l4", "--draws", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert ("dollars_per_device_hour is not set for profile 'l4' (kind gpu); a datacenter "
            "device-hour is not free") in err


def test_user_owned_device_is_charged_energy_only():
    from precsim.codesign.study import device_hour_price
    from precsim.simulator.profile_loader import load_profile
    phone, l4 = load_profile("snapdragon-8-gen3"), load_profile("l4")
    assert device_hour_price(None, phone, "dollars", "deployments[1]") == 0.0
    assert device_hour_price(1.5, l4, "dollars", "deployments[0]") == 1.5
    assert np.isnan(device_hour_price(None, l4, "time", "deployments[0]"))  # dollars: null
