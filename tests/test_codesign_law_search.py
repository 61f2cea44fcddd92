"""codesign.law_search: the law half of a plan, solved once and shared without changing
any answer (the report's speed, issue 19)."""
import dataclasses

import numpy as np

from precsim import lawcore
from precsim.codesign.law_search import LawSolver, solve_law
from precsim.codesign.planner import hardware_costs, plan, price
from precsim.codesign.study import problem_from_study
from precsim.codesign.variants import profile_variants
from precsim.codesign.whatif import run_whatif
from tests.test_codesign_planner import small_resolved


def _same_plan(a, b):
    assert a.optimum == b.optimum
    assert a.by_format.equals(b.by_format)
    assert a.frontier.equals(b.frontier)
    assert a.iso_loss.equals(b.iso_loss)


def test_a_shared_law_half_gives_the_plan_computed_alone():
    rs = small_resolved()
    solve = LawSolver()
    for index in range(len(rs.deploy_profiles)):
        problem = problem_from_study(rs, index)
        _same_plan(plan(problem, hardware_costs(problem), solve(problem)), plan(problem))


def test_solver_answers_a_repeated_question_once_and_tells_laws_apart():
    rs = small_resolved()
    solve = LawSolver()
    first, second = problem_from_study(rs, 0), problem_from_study(rs, 1)
    assert first.deploy_profile.name != second.deploy_profile.name
    assert solve(first) is solve(second)          # hardware differs, the law half does not
    fresh = dataclasses.replace(first, law=lawcore.get_law("kumar2024"))
    assert solve(fresh) is solve(first)            # same class and constants
    other = dataclasses.replace(first, law=lawcore.get_law("lowbit-qat"))
    assert solve(other) is not solve(first)
    looser = dataclasses.replace(first, target_loss=first.target_loss + 0.01)
    assert solve(looser) is not solve(first)
    np.testing.assert_array_equal(solve(other).sol.D_min, solve_law(other).sol.D_min)


def test_price_is_the_plans_optimum_and_table_without_the_frontier():
    problem = problem_from_study(small_resolved(), 0)
    full, priced = plan(problem), price(problem)
    assert priced.optimum() == full.optimum
    assert priced.by_format().equals(full.by_format)


def test_whatif_with_shared_halves_equals_the_variants_planned_alone():
    """run_whatif prices the role the varied profile does not play once and takes the
    caller's hardware for the as-is variant: every optimum is the full plan's."""
    rs = small_resolved()
    for index, spec in ((0, ["memory.hbm.bandwidth=0.5x"]), (1, ["power.static=2x"])):
        profile = rs.deploy_profiles[index]
        shared = run_whatif(rs, index, profile, spec, solve=LawSolver(),
                            hardware=hardware_costs(problem_from_study(rs, index)))
        for (label, variant), row in zip(profile_variants(profile, spec),
                                         shared.itertuples()):
            alone = plan(problem_from_study(
                rs, index, train_profile=variant if profile.name == rs.train_profile.name
                else None, deploy_profile=variant)).optimum
            assert row.variant == label and row.cost == alone.total.cost
            assert (row.train_format, row.serve_format, row.N, row.D) == \
                (alone.train_format, alone.serve_format, alone.N, alone.D)
