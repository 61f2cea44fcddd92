"""codesign.lifetime: the optimum over lifetime tokens served reuses one hardware pass."""
import numpy as np
import pytest

from precsim.codesign.lifetime import lifetime_sweep
from precsim.codesign.planner import plan
from precsim.codesign.study import problem_from_study
from tests.test_codesign_planner import small_resolved


def test_lifetime_at_the_studys_tokens_is_the_plan_and_serving_scales():
    rs = small_resolved()
    result = plan(problem_from_study(rs, 0))
    T = result.problem.workload.tokens_served
    table = lifetime_sweep("d", result, np.array([T, 10 * T, 1e13]))
    first = table.iloc[0]
    o = result.optimum
    assert (first.N, first.D, first.train_format, first.serve_format) == \
        (o.N, pytest.approx(o.D), o.train_format, o.serve_format)
    assert first.serve_cost == pytest.approx(o.serving.cost, rel=1e-12)
    # more tokens served: the optimum never costs less to serve and never grows N
    assert (np.diff(table.serve_cost) > 0).all()
    assert (np.diff(table.N) <= 0).all()
