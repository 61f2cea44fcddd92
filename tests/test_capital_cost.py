"""Deployment.capital: $/device-hour = price / (lifetime hours x utilisation)."""
import pydantic
import pytest

from precsim.codesign.study import CapitalCost, Deployment, problem_from_study, updated
from tests.test_codesign_planner import small_resolved


def test_capital_price_by_hand():
    cap = CapitalCost(device_price_dollars=30000, lifetime_years=4, utilisation=0.5,
                      source="a quote")
    # 30000 / (4 * 8766 h * 0.5) = 1.7111...
    assert cap.dollars_per_device_hour == pytest.approx(30000 / 17532)
    dep = Deployment(profile="l4", capital=cap)
    assert dep.stated_price == pytest.approx(1.7111567)


@pytest.mark.parametrize("fields, message", [
    ({"dollars_per_device_hour": 1.0, "capital": {
        "device_price_dollars": 1, "lifetime_years": 1, "utilisation": 1, "source": "x"}},
     "not both"),
    ({"capital": {"device_price_dollars": 1, "lifetime_years": 1, "utilisation": 1}},
     "source"),
    ({"capital": {"device_price_dollars": 1, "lifetime_years": 1, "utilisation": 1.5,
                  "source": "x"}}, "utilisation"),
])
def test_capital_refused_without_source_or_with_two_prices(fields, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        Deployment(profile="l4", **fields)


def test_capital_price_reaches_the_plan_weights():
    rs = small_resolved()
    cap = CapitalCost(device_price_dollars=25000, lifetime_years=5, utilisation=0.6,
                      source="test value")
    deps = [d.model_copy(update={"dollars_per_device_hour": None, "capital": cap})
            for d in rs.study.deployments]
    problem = problem_from_study(rs.__class__(**{**rs.__dict__, "study": rs.study.model_copy(
        update={"deployments": deps})}), 0)
    assert problem.weights.deploy_dollars_per_device_hour == pytest.approx(
        25000 / (5 * 8766 * 0.6))
