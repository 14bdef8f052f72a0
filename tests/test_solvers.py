import numpy as np
import pytest

from helpers import brute_force_optimum, small_instance
from qdt.errors import QdtInputError
from qdt.problem.family import Family
from qdt.problem.generator import GeneratorConfig, generate_instance, paper_instance
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import ENUMERATION_LIMIT, solve


@pytest.mark.parametrize("shape", [(2, 2), (3, 2), (4, 2), (4, 3), (6, 3), (8, 3), (9, 4)])
def test_enumeration_and_milp_agree(shape):
    users, servers = shape
    statuses = set()
    for seed in range(25):
        model = PlacementModel(generate_instance(GeneratorConfig(users=users, servers=servers), seed))
        exact = solve(model, "enumerate")
        milp = solve(model, "milp")
        assert exact.status == milp.status, f"seed {seed}"
        statuses.add(exact.status)
        if exact.status == "optimal":
            assert milp.total_latency_s == pytest.approx(exact.total_latency_s, rel=1e-9), f"seed {seed}"
            assert model.evaluate_assignment(milp.assignment).feasible
    assert "optimal" in statuses


def test_enumeration_matches_brute_force_over_binary_matrices():
    for seed in range(40):
        model = PlacementModel(small_instance(seed, 3, 3))
        exact = solve(model, "enumerate")
        reference = brute_force_optimum(model)
        if reference is None:
            assert exact.status == "infeasible"
        else:
            assert exact.status == "optimal"
            assert exact.total_latency_s == pytest.approx(reference, rel=1e-12)


def test_heuristics_return_feasible_placements_no_better_than_optimum():
    found = {"greedy": 0, "random": 0}
    for seed in range(60):
        model = PlacementModel(small_instance(seed, 6, 3))
        exact = solve(model, "enumerate")
        for name in found:
            result = solve(model, name, seed=seed)
            if exact.status == "infeasible":
                assert result.status in ("infeasible", "unsolved")
                assert result.assignment is None
            elif result.status == "feasible":
                found[name] += 1
                assert model.evaluate_assignment(result.assignment).feasible
                assert result.total_latency_s >= exact.total_latency_s - 1e-12
    assert found["greedy"] >= 30 and found["random"] >= 30


def test_paper_preset_optimum_and_greedy_gap():
    model = PlacementModel(paper_instance())
    exact = solve(model)
    assert exact.status == "optimal" and exact.solver == "enumerate"
    assert exact.assignment == [0, 0, 0, 1]
    greedy = solve(model, "greedy")
    assert greedy.status == "feasible" and greedy.total_latency_s > exact.total_latency_s * 1.05


def test_auto_switches_to_milp_past_the_enumeration_limit():
    model = PlacementModel(generate_instance(GeneratorConfig(users=21, servers=2), 0))
    assert 2**21 > ENUMERATION_LIMIT
    assert solve(model, "auto").solver == "milp"
    with pytest.raises(QdtInputError, match="milp"):
        solve(model, "enumerate")


def test_milp_handles_200_by_10():
    model = PlacementModel(generate_instance(GeneratorConfig(users=200, servers=10), 1))
    result = solve(model, "milp", time_limit_s=120)
    assert result.status in ("optimal", "infeasible")
    if result.status == "optimal":
        assert model.evaluate_assignment(result.assignment).feasible
        greedy = solve(model, "greedy")
        if greedy.status == "feasible":
            assert result.total_latency_s <= greedy.total_latency_s + 1e-9


def test_random_solver_is_seeded():
    model = PlacementModel(small_instance(3, 6, 3))
    a = solve(model, "random", seed=np.random.SeedSequence(7))
    b = solve(model, "random", seed=np.random.SeedSequence(7))
    assert a.assignment == b.assignment


def test_unknown_solver_is_rejected():
    with pytest.raises(QdtInputError, match="--solver"):
        solve(PlacementModel(paper_instance()), "cplex")


def test_milp_under_a_time_limit_runs_in_a_child_and_agrees_with_the_in_process_milp():
    for seed in range(6):
        model = PlacementModel(generate_instance(GeneratorConfig(users=12, servers=3), seed))
        unlimited = solve(model, "milp")
        limited = solve(model, "milp", time_limit_s=60)
        assert limited.status == unlimited.status and limited.reason is None
        if unlimited.status == "optimal":
            assert limited.total_latency_s == pytest.approx(unlimited.total_latency_s, rel=1e-9)


@pytest.mark.parametrize("solver", ["auto", "enumerate", "milp", "greedy", "random"])
@pytest.mark.parametrize("limit", [-1.0, 0.0, float("nan"), float("inf"), True])
def test_every_solver_checks_its_time_limit(solver, limit):
    with pytest.raises(QdtInputError, match="--time-limit"):
        solve(PlacementModel(paper_instance()), solver, time_limit_s=limit)


def test_unsolved_says_why_and_solved_does_not():
    reasons = set()
    for seed in range(60):
        model = PlacementModel(small_instance(seed, 6, 3))
        for name in ("enumerate", "milp", "greedy", "random"):
            result = solve(model, name, seed=seed)
            assert (result.reason is not None) == (result.status == "unsolved"), (seed, name)
            assert result.to_dict()["reason"] == result.reason
            if result.reason is not None:
                reasons.add(result.reason)
    assert reasons  # greedy gives up on some of these instances, and says so


@pytest.mark.parametrize(
    ("users", "servers", "enumerated"),
    [(19, 2, True), (20, 2, False), (6, 10, True), (7, 10, False), (100_000, 1, True), (600, 4, False)],
)
def test_auto_decides_enumeration_without_computing_huge_powers(users, servers, enumerated):
    model = PlacementModel(generate_instance(GeneratorConfig(users=users, servers=servers), 0))
    assert (solve(model, "auto", time_limit_s=30).solver == "enumerate") == enumerated


def test_milp_within_a_relative_gap_is_proven_against_the_optimum():
    """rel_gap > 0: a placement with HiGHS's lower bound, bound ≤ optimum ≤ placement, within the gap;
    the same answer in a child process (with a time limit) as in this one."""
    gap = 0.02
    loose = 0
    for i in range(4):
        model = PlacementModel(Family(24, 6, True, seed=7).held_out(0, i))
        optimum = solve(model, "milp")
        within = solve(model, "milp", rel_gap=gap)
        limited = solve(model, "milp", rel_gap=gap, time_limit_s=60)
        assert optimum.status == "optimal" and optimum.lower_bound_s == optimum.total_latency_s
        assert within.status == limited.status == "feasible" and within.reason is None
        assert within.lower_bound_s == limited.lower_bound_s
        assert within.total_latency_s == pytest.approx(limited.total_latency_s, rel=1e-12)
        bound, latency = within.lower_bound_s, within.total_latency_s
        assert bound <= optimum.total_latency_s * (1 + 1e-9) and optimum.total_latency_s <= latency
        assert (latency - bound) / latency <= gap + 1e-9
        loose += latency > optimum.total_latency_s * (1 + 1e-9)
        assert within.to_dict()["lower_bound_s"] == bound
    assert loose  # the gap let HiGHS stop short of an optimum on some of these instances


def test_heuristics_prove_no_bound_and_rel_gap_is_the_milp_s_alone():
    model = PlacementModel(paper_instance())
    assert solve(model, "greedy").lower_bound_s is None
    for bad in (-0.1, 1.0, float("nan"), True):
        with pytest.raises(QdtInputError, match="rel_gap"):
            solve(model, "milp", rel_gap=bad)
    with pytest.raises(QdtInputError, match="rel_gap"):
        solve(model, "enumerate", rel_gap=0.01)
