import numpy as np
import pytest

from helpers import all_binary_matrices, brute_force_optimum, small_instance
from qdt.problem.generator import GeneratorConfig, generate_instance, paper_instance
from qdt.problem.model import (
    PlacementModel,
    RewardConfig,
    latency_matrix,
    matrix_to_assignment,
    upload_rate_bps,
)


def test_rate_and_latency_follow_eqs_17_to_20():
    inst = paper_instance()
    i, j = 2, 1
    user = inst.users[i]
    rate = inst.bandwidth_hz * np.log2(1 + user.tx_power_w * inst.channel_gain[i, j] / inst.noise_power_w)
    assert upload_rate_bps(inst)[i, j] == pytest.approx(rate, rel=1e-14)
    expected = user.data_bits / rate + user.data_bits / inst.compute_rate[i, j]
    assert latency_matrix(inst)[i, j] == pytest.approx(expected, rel=1e-14)


def test_reward_argmax_is_a_constrained_optimum_on_200_instances():
    """The reward's maximum over all 2^(NM) binary X is an optimum of (21) whenever one exists."""
    checked_feasible = checked_infeasible = 0
    for seed in range(200):
        users, servers = [(2, 2), (3, 2), (4, 2), (2, 3), (3, 3), (4, 3)][seed % 6]
        model = PlacementModel(small_instance(seed, users, servers))
        xs = all_binary_matrices(users, servers)
        rewards = model.reward_batch(xs)
        best = xs[int(np.argmax(rewards))]
        optimum = brute_force_optimum(model)
        if optimum is None:
            checked_infeasible += 1
            assert not model.feasible_batch(xs).any()
            continue
        checked_feasible += 1
        evaluation = model.evaluate(best)
        assert evaluation.feasible, f"seed {seed}: reward argmax is infeasible {evaluation.violations}"
        assert evaluation.total_latency_s == pytest.approx(optimum, rel=1e-12), f"seed {seed}"
        assert rewards.max() == pytest.approx(-optimum, rel=1e-12)
    assert checked_feasible >= 150 and checked_infeasible >= 1


def test_every_violation_costs_more_than_any_feasible_latency():
    model = PlacementModel(small_instance(5, 3, 3))
    xs = all_binary_matrices(3, 3)
    feasible = model.feasible_batch(xs)
    rewards = model.reward_batch(xs)
    assert feasible.any() and (~feasible).any()
    assert rewards[~feasible].max() < rewards[feasible].min()


def test_penalty_terms_are_normalised_and_graded():
    model = PlacementModel(paper_instance())
    # Everything on server 1 (cap 2): cap and deadlines of users 1, 2 broken (capacity holds).
    x = np.zeros((4, 2), dtype=np.int8)
    x[:, 1] = 1
    evaluation = model.evaluate(x)
    assert evaluation.violations["max_users"] == [1]
    assert evaluation.violations["capacity"] == []
    assert evaluation.violations["deadline"] == [1, 2]
    assert evaluation.penalties["max_users"] == 4.0  # (4 - 2)^2
    late = (model.latency[[1, 2], 1] - model.instance.deadline_s[[1, 2]]) / model.instance.deadline_s[[1, 2]]
    assert evaluation.penalties["deadline"] == pytest.approx(2 + (late**2).sum())
    # Everything on server 0 (cap 3): cap exceeded by one, capacity exceeded.
    x = np.zeros((4, 2), dtype=np.int8)
    x[:, 0] = 1
    evaluation = model.evaluate(x)
    assert evaluation.violations == {"one_server": [], "max_users": [0], "capacity": [0], "deadline": []}
    load = model.instance.compute_rate[:, 0].sum()
    excess = (load - model.instance.capacity[0]) / model.instance.capacity[0]
    assert evaluation.penalties["capacity"] == pytest.approx(1 + excess**2)
    total = model.latency[:, 0].sum()
    assert evaluation.reward == pytest.approx(-total - model.penalty_weight * (1.0 + 1 + excess**2))
    # An unassigned user: P1 = 1.
    empty = np.zeros((4, 2), dtype=np.int8)
    assert model.evaluate(empty).penalties["one_server"] == 4.0
    assert model.evaluate(empty).reward == pytest.approx(-4.0 * model.penalty_weight)


def test_paper_mode_is_the_literal_formula():
    model = PlacementModel(paper_instance(), RewardConfig(mode="paper"))
    x = np.zeros((4, 2), dtype=np.int8)
    x[:, 0] = 1  # 4 users on server 0 (cap 3)
    load = model.instance.compute_rate[:, 0].sum()
    cap = model.instance.capacity[0]
    expected_p3 = (load - cap) ** 2 if load >= cap else 0.0
    latency = model.latency[:, 0].sum()
    assert model.reward_batch(x[None])[0] == pytest.approx(-latency - 1.0 - expected_p3)


def test_matrix_to_assignment():
    assert matrix_to_assignment([[1, 0], [0, 1]]) == [0, 1]
    assert matrix_to_assignment([[1, 1], [0, 1]]) is None
    assert matrix_to_assignment([[0, 0], [0, 1]]) is None


def test_custom_penalty_weight_is_validated():
    with pytest.raises(ValueError):
        RewardConfig(penalty_weight=-1.0)
    with pytest.raises(ValueError):
        RewardConfig(mode="other")  # type: ignore[arg-type]


def test_large_instance_evaluates_in_batch():
    model = PlacementModel(generate_instance(GeneratorConfig(users=64, servers=8), 0))
    rng = np.random.default_rng(0)
    xs = rng.integers(0, 2, size=(32, 64, 8)).astype(np.int8)
    rewards = model.reward_batch(xs)
    assert rewards.shape == (32,) and np.all(np.isfinite(rewards))
    assert np.allclose(rewards, [model.evaluate(x).reward for x in xs])
