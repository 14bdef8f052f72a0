"""Loading a trained run for inference: same placement as training's summary, any executor."""

import json

import numpy as np
import pytest
import torch

from qdt.errors import QdtInputError
from qdt.executors import open_backend
from qdt.problem.generator import paper_instance
from qdt.problem.model import PlacementModel
from qdt.rl.config import TrainConfig
from qdt.rl.policy import all_observations, load_policy
from qdt.rl.train import train

SMALL = dict(
    episodes=12,
    steps_per_episode=3,
    batch_size=8,
    replay_size=64,
    warmup_transitions=8,
    hidden=8,
    checkpoint_every=6,
    layers=2,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One small trained run per agent kind, shared by the module's tests."""
    out = {}
    for agent in ("classical", "quantum"):
        run_dir = tmp_path_factory.mktemp(agent)
        train(TrainConfig(**SMALL, agent=agent, seed=3), paper_instance(), run_dir, progress=False)
        out[agent] = run_dir
    return out


@pytest.fixture(params=["classical", "quantum"])
def run(request, runs):
    return runs[request.param]


def test_loaded_policy_reproduces_the_summary_placement(run):
    summary = json.loads((run / "summary.json").read_text())
    policy = load_policy(run)
    x = policy.placement()
    expected = summary["assignment"]
    if expected is None:
        assert not ((x.sum(axis=1) == 1).all())
    else:
        assert x.argmax(axis=1).tolist() == expected and (x.sum(axis=1) == 1).all()
    assert policy.episode == SMALL["episodes"]


def test_batched_scores_equal_row_by_row(run):
    policy = load_policy(run)
    obs = all_observations(policy.n_users)
    assert obs.shape == (2**policy.n_users, policy.n_users)
    batch = policy.actor_scores(1, obs)
    rows = torch.cat([policy.actor_scores(1, obs[k : k + 1]) for k in range(len(obs))])
    torch.testing.assert_close(batch, rows, rtol=0, atol=1e-12)


def test_shared_actor_scores_every_agent_in_one_call(run, monkeypatch):
    """A shared actor scores all B·M columns in one call, equal to scoring agent by agent."""
    policy = load_policy(run)
    assert all(actor is policy.actors[0] for actor in policy.actors)  # v2 shares one actor
    states = np.random.default_rng(0).integers(0, 2, size=(5, policy.n_users, policy.n_servers))
    by_agent = torch.stack([policy.actor_scores(j, states[:, :, j]) for j in range(policy.n_servers)], dim=2)
    calls = []
    forward = type(policy.actors[0]).forward
    monkeypatch.setattr(
        type(policy.actors[0]), "forward", lambda self, *a, **k: calls.append(1) or forward(self, *a, **k)
    )
    torch.testing.assert_close(policy.scores(states), by_agent, rtol=0, atol=1e-12)
    assert len(calls) == 1


def test_quantum_policy_on_another_executor_keeps_its_scores(runs):
    policy = load_policy(runs["quantum"])
    other = load_policy(runs["quantum"], executor=open_backend("executor:density"))
    states = np.random.default_rng(0).integers(0, 2, size=(5, policy.n_users, policy.n_servers))
    torch.testing.assert_close(policy.scores(states), other.scores(states), rtol=0, atol=1e-10)


def test_bad_inputs(run, tmp_path):
    policy = load_policy(run)
    with pytest.raises(QdtInputError, match="observations"):
        policy.actor_scores(0, np.zeros((2, policy.n_users + 1)))
    with pytest.raises(QdtInputError, match="states"):
        policy.scores(np.zeros((2, 3)))
    with pytest.raises(QdtInputError, match="--run"):
        load_policy(tmp_path / "nothing-here")


def test_rollout_stops_at_a_fixed_point_with_the_full_rollouts_placement(run):
    """A deterministic policy's rollout ends at its first fixed point, with the placement the N_t
    decisions would give; shot-estimated scores make every decision."""
    policy = load_policy(run)
    assert policy.deterministic
    x = np.zeros((policy.n_users, policy.n_servers), dtype=np.int8)
    for _ in range(policy.config.steps_per_episode):
        x = policy.decide(x)
    calls = []
    policy_decide = policy.decide
    policy.decide = lambda state: calls.append(state) or policy_decide(state)
    np.testing.assert_array_equal(policy.placement(), x)
    assert 1 <= len(calls) <= policy.config.steps_per_episode
    if len(calls) < policy.config.steps_per_episode:
        np.testing.assert_array_equal(policy_decide(calls[-1]), calls[-1])  # it stopped at a fixed point


def test_rollout_by_shots_makes_every_decision(runs):
    policy = load_policy(runs["quantum"], executor=open_backend("aer", shots=64, seed=5))
    assert not policy.deterministic
    calls = []
    policy_decide = policy.decide
    policy.decide = lambda state: calls.append(state) or policy_decide(state)
    policy.placement(steps=4)
    assert len(calls) == 4


def test_roll_out_counts_its_decisions():
    from qdt.rl.rollout import roll_out

    start = np.zeros((3, 2), dtype=np.int8)
    fixed = np.eye(3, 2, dtype=np.int8)
    placement, made = roll_out(lambda x: fixed, start, 10, deterministic=True)
    assert made == 2 and np.array_equal(placement, fixed)  # the second decision repeats the first
    placement, made = roll_out(lambda x: fixed, start, 10, deterministic=False)
    assert made == 10 and np.array_equal(placement, fixed)
    flip = roll_out(lambda x: 1 - x, start, 3, deterministic=True)
    assert flip[1] == 3 and np.array_equal(flip[0], 1 - start)  # never fixed: all N_t decisions


def test_keep_best_returns_the_best_feasible_placement_visited_else_the_last():
    """roll_out(..., best_of=model): the rollout visits the empty start (infeasible), then feasible
    placements of known latency, the best in the middle, and ends infeasible: ``best`` returns the
    middle one, the last of equals, and the last placement when none is feasible; the calls made and
    the plain rollout are unchanged."""
    from qdt.problem.family import Family
    from qdt.rl.rollout import roll_out

    model = PlacementModel(Family(5, 2, seed=3).held_out(0, 0))
    n, m = model.n_users, model.n_servers
    placements = [np.eye(m, dtype=np.int8)[np.array(a)] for a in np.ndindex(*([m] * n))]  # all M^N
    feasible = sorted(
        (p for p in placements if model.evaluate(p).feasible), key=lambda p: model.evaluate(p).total_latency_s
    )
    infeasible = [p for p in placements if not model.evaluate(p).feasible]
    assert len(feasible) >= 3 and infeasible
    best, middle, worst = feasible[0], feasible[len(feasible) // 2], feasible[-1]
    path = [middle, best, worst, infeasible[0]]
    start = np.zeros((n, m), dtype=np.int8)

    def scripted(x: np.ndarray) -> np.ndarray:
        index = next((k for k, p in enumerate([start, *path]) if np.array_equal(p, x)), None)
        assert index is not None
        return path[min(index, len(path) - 1)]

    last, made = roll_out(scripted, start, 10, deterministic=True)
    assert made == 5 and np.array_equal(last, infeasible[0])  # the fifth decision repeats the fourth
    kept, made = roll_out(scripted, start, 10, deterministic=True, best_of=model)
    assert made == 5 and np.array_equal(kept, best)
    kept, _ = roll_out(scripted, start, 2, deterministic=True, best_of=model)  # stopped after `best`
    assert np.array_equal(kept, best)
    kept, _ = roll_out(scripted, start, 1, deterministic=True, best_of=model)
    assert np.array_equal(kept, middle)
    nowhere = roll_out(lambda x: infeasible[-1], start, 3, deterministic=True, best_of=model)[0]
    assert np.array_equal(nowhere, infeasible[-1])  # nothing feasible visited: the last placement
