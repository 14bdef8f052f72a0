"""Property-based tests: no unhandled exception anywhere on generated or mangled instances."""

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qdt.cli.main import main
from qdt.errors import QdtInputError
from qdt.problem.generator import GeneratorConfig, generate_instance, paper_instance
from qdt.problem.instance import Instance
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import solve

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(users=st.integers(1, 7), servers=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_generated_instances_solve_consistently(users, servers, seed):
    model = PlacementModel(generate_instance(GeneratorConfig(users=users, servers=servers), seed))
    exact = solve(model, "enumerate")
    milp = solve(model, "milp")
    assert exact.status == milp.status
    if exact.status == "optimal":
        assert abs(exact.total_latency_s - milp.total_latency_s) <= 1e-9 * exact.total_latency_s
    for name in ("greedy", "random"):
        result = solve(model, name, seed=seed)
        assert result.status in ("feasible", "infeasible", "unsolved")
        if exact.status == "infeasible":
            assert result.assignment is None


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-10, 10**12),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


@SETTINGS
@given(data=st.data())
def test_mangled_instances_raise_only_input_errors(data):
    raw = paper_instance().to_dict()
    path = data.draw(
        st.sampled_from(
            [
                ("bandwidth_hz",),
                ("noise_power_w",),
                ("name",),
                ("format",),
                ("users",),
                ("servers",),
                ("users", 0, "data_bits"),
                ("users", 3, "deadline_s"),
                ("users", 1, "tx_power_w"),
                ("servers", 1, "capacity"),
                ("servers", 0, "max_users"),
                ("channel_gain", 2, 1),
                ("compute_rate", 0, 0),
                ("channel_gain", 1),
                ("compute_rate",),
            ]
        )
    )
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(numbers)
    try:
        instance = Instance.from_dict(json.loads(json.dumps(raw)))
        model = PlacementModel(instance)
    except QdtInputError as error:
        assert "\n" not in str(error)
        return
    solve(model, "auto")


def test_a_mangled_value_with_a_control_character_is_named_on_one_line():
    """What hypothesis once drew (a field set to "\n"): the error stays one line, the value shown as
    its repr; a printable string is shown as it is."""
    for path, value in ((("bandwidth_hz",), "\n"), (("servers", 0, "max_users"), "a\tb\r")):
        raw = paper_instance().to_dict()
        target = raw
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        try:
            Instance.from_dict(json.loads(json.dumps(raw)))
        except QdtInputError as error:
            assert "\n" not in str(error) and "\r" not in str(error) and repr(value) in str(error)
        else:
            raise AssertionError(f"{path} = {value!r} was accepted")
    assert str(QdtInputError("--order", "sure or constrained", "fast")).endswith("got fast")


@SETTINGS
@given(assignment=st.lists(st.integers(-3, 5), min_size=0, max_size=6))
def test_score_cli_never_crashes(assignment):
    text = ",".join(map(str, assignment))
    code = main(["score", "--preset", "paper", f"--assignment={text}", "--json"])
    valid = len(assignment) == 4 and all(0 <= a <= 1 for a in assignment)
    assert code == (0 if valid else 2)


@SETTINGS
@given(x=st.lists(st.integers(0, 1), min_size=8, max_size=8))
def test_reward_is_finite_and_feasible_iff_no_violation(x):
    model = PlacementModel(paper_instance())
    matrix = np.array(x, dtype=np.int8).reshape(4, 2)
    evaluation = model.evaluate(matrix)
    assert np.isfinite(evaluation.reward)
    assert evaluation.feasible == (not any(evaluation.violations.values()))
    assert evaluation.feasible == bool(model.feasible_batch(matrix[None])[0])
