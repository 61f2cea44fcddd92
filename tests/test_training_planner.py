"""The planner prices training with the training-step model (simulator.training)."""
import pytest

from precsim.codesign.study import load_study, problem_from_study, resolve_study
from precsim.codesign.planner import plan
from precsim.simulator.training import token_costs


@pytest.fixture(scope="module")
def result():
    resolved = resolve_study(*load_study(None))
    return plan(problem_from_study(resolved, 0))


def test_planner_training_cost_equals_the_training_model(result):
    o = result.optimum
    problem = result.problem
    fmt = next(t for t in problem.train_formats if t.name == o.train_format)
    per = token_costs(problem.train_profile, o.N, fmt.recipe_name, **problem.train_layout)
    assert o.train_recipe == fmt.recipe_name
    assert o.training.time_s == pytest.approx(o.D * float(per["device_s_per_token"]),
                                              rel=1e-9)
    assert o.training.energy_j == pytest.approx(o.D * float(per["j_per_token"]), rel=1e-9)
    assert o.train_mfu == pytest.approx(float(per["mfu"]), rel=1e-9)


def test_each_format_states_its_recipe(result):
    recipes = dict(zip(result.train_rates["train_format"], result.train_rates["recipe"]))
    assert recipes["16-bit"] == "bf16"
    assert recipes["8-bit"] == "fwdq:W8A8-KV8"
    assert recipes["W1.58A8"] == "ternary-qat"
