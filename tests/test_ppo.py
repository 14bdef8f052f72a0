"""The ppo learner (qdt/rl/ppo.py): its update moves the actor's scores towards the explored
actions that earned more, its settings are refused where they make no sense, and a ppo run
resumes bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from qdt.errors import QdtInputError
from qdt.problem.generator import paper_instance
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import solve
from qdt.rl.builders import check_fits, network_builders
from qdt.rl.checkpoint import load_checkpoint
from qdt.rl.config import RECIPES, TrainConfig
from qdt.rl.maddpg import joint_scores, make_agents, update_shared
from qdt.rl.ppo import (
    episode_advantages,
    gaussian_log_prob,
    joint_credit,
    ppo_update,
    user_advantages,
    user_rewards,
)
from qdt.rl.train import train

SMALL = dict(agent="classical", episodes=12, steps_per_episode=3, envs=2, hidden=16, checkpoint_every=5)


def _nets(seed=0):
    config = TrainConfig.from_recipe("v3", hidden=16)
    model = PlacementModel(paper_instance())
    build_actor, build_critic = network_builders(config, model, np.random.SeedSequence(seed))
    torch.manual_seed(seed)
    return make_agents(config, 1, build_actor, build_critic)[0]


def test_update_moves_scores_towards_the_better_action():
    nets = _nets()
    states = torch.zeros(2, 4, 2, dtype=torch.float64)
    with torch.no_grad():
        mean = joint_scores([nets], states[:1])[0]
    up, down = (mean + 0.05).clamp(0, 1), (mean - 0.05).clamp(0, 1)
    actions = torch.stack([up, down])
    rewards = torch.tensor([-1.0, -2.0], dtype=torch.float64)
    ppo_update(nets, states, actions, episode_advantages(rewards), 0.05, 0.2, 8)
    with torch.no_grad():
        after = joint_scores([nets], states[:1])[0]
    assert float(((after - up) ** 2).sum()) < float(((mean - up) ** 2).sum())  # closer to the better one


def test_ppo_builds_no_critic_and_a_critic_update_is_refused():
    nets = _nets()
    assert nets.critic is None and nets.target_critic is None and nets.critic_optimizer is None
    assert TrainConfig.from_recipe("v2").trains_critic and not TrainConfig.from_recipe("v3").trains_critic
    states = torch.zeros(2, 4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="no critic"):
        update_shared(nets, states, states, torch.zeros(2, dtype=torch.float64), states, gamma=0.0)
    # only the actor limits a ppo agent's size, and the refusal says there is no critic
    with pytest.raises(QdtInputError, match=r"actor 14 qubits, no critic \(ppo\)"):
        check_fits(TrainConfig.from_recipe("v3", agent="quantum", observation="features"), 512, 16)


def test_equal_rewards_make_no_step_and_log_prob_is_the_gaussian():
    nets = _nets()
    states = torch.zeros(3, 4, 2, dtype=torch.float64)
    before = [p.clone() for p in nets.actor.parameters()]
    assert episode_advantages(torch.ones(3)) is None  # equal rewards carry no signal
    assert ppo_update(nets, states, torch.rand(3, 4, 2, dtype=torch.float64), None, 0.1, 0.2, 4) == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, nets.actor.parameters()))
    with torch.no_grad():
        mean = joint_scores([nets], states)
    actions = mean + 0.1
    expected = -(0.1**2) * 8 / (2 * 0.2**2)
    assert torch.allclose(
        gaussian_log_prob(nets, states, actions, 0.2), torch.full((3,), expected, dtype=torch.float64)
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"exploration": "flip"}, "exploration = gaussian"),
        ({"sharing": "none"}, "sharing = shared"),
        ({"decode": "round"}, "score decoding"),
        ({"explore_end": 0.0}, "explore_end > 0"),
        ({"ppo_clip": 0.0}, "ppo-clip"),
    ],
)
def test_settings_ppo_cannot_use_are_refused(change, named):
    with pytest.raises(QdtInputError, match=named):
        TrainConfig.from_recipe("v3", **change)


def test_v3_is_v2_with_the_ppo_learner_and_old_v2_configs_keep_maddpg():
    assert {k: v for k, v in RECIPES["v3"].items() if RECIPES["v2"][k] != v} == {"learner": "ppo"}
    saved = TrainConfig.from_recipe("v2").to_dict()
    del saved["learner"], saved["ppo_clip"]  # a v2 run folder from before the learner existed
    assert TrainConfig.from_dict(saved).learner == "maddpg"


def test_user_rewards_share_the_reward_and_charge_each_user_its_own_latency():
    model = PlacementModel(paper_instance())  # 4 users, 2 servers
    optimum = model.assignment_to_matrix(solve(model, "enumerate").assignment)
    crowded = np.array([[1, 0], [1, 0], [1, 0], [1, 0]], dtype=np.int8)  # all on one server
    placements = np.stack([optimum, crowded])
    rewards = model.reward_batch(placements)  # the second breaks constraints: a penalty
    bound = np.full(2, float(model.latency.min(axis=1).sum()))
    latency = np.stack([model.latency, model.latency])
    users = user_rewards(placements, latency, rewards, bound)
    assert np.allclose(users.mean(axis=1), 100.0 * rewards / bound)  # the reward, in percent of B
    own = (placements * latency).sum(axis=2)
    penalty = -rewards - own.sum(axis=1)
    assert penalty[0] == pytest.approx(0.0) and penalty[1] > 0
    assert np.allclose(users, -100.0 * (4 * own + penalty[:, None]) / bound[:, None])


def test_user_credit_moves_each_users_scores_towards_its_own_better_action():
    # transition 0 is better for user 0, transition 1 for user 1, by the same amount: the episode's
    # credit sees equal rewards (no step), the user credit moves each user towards its own better action
    nets = _nets()
    states = torch.zeros(2, 4, 2, dtype=torch.float64)
    with torch.no_grad():
        mean = joint_scores([nets], states[:1])[0]
    first, second = mean.clone(), mean.clone()
    first[0] += 0.05
    second[1] += 0.05
    actions = torch.stack([first, second]).clamp(0, 1)
    users = torch.tensor([[-1.0, -2.0, -1.0, -1.0], [-2.0, -1.0, -1.0, -1.0]], dtype=torch.float64)
    assert episode_advantages(users.sum(dim=1)) is None
    ppo_update(nets, states, actions, user_advantages(users), 0.05, 0.2, 8)
    with torch.no_grad():
        after = joint_scores([nets], states[:1])[0]
    for user, target in ((0, first), (1, second)):
        assert float(((after[user] - target[user]) ** 2).sum()) < float(
            ((mean[user] - target[user]) ** 2).sum()
        )


def test_user_advantages_floor_keeps_noise_small_and_refuses_no_signal():
    tiny = torch.tensor([[0.0, 0.0], [1e-4, -1e-4]], dtype=torch.float64)  # spread far below the floor
    assert float(user_advantages(tiny).abs().max()) < 1e-2
    large = torch.tensor([[0.0, 10.0], [5.0, -5.0]], dtype=torch.float64)
    advantages = user_advantages(large)
    assert torch.allclose(advantages.mean(dim=0), torch.zeros(2, dtype=torch.float64))
    assert float(advantages.std()) == pytest.approx(1.0)
    assert user_advantages(torch.ones(3, 2, dtype=torch.float64)) is None
    episode = torch.tensor([1.0, -1.0], dtype=torch.float64)
    assert torch.equal(joint_credit(advantages, episode, 2), advantages + episode[:, None])
    assert torch.equal(joint_credit(None, episode, 2), episode[:, None].expand(-1, 2))
    assert joint_credit(advantages, None, 2) is advantages and joint_credit(None, None, 2) is None


def test_user_credit_is_a_ppo_setting_and_older_v3_runs_keep_episode_credit():
    with pytest.raises(QdtInputError, match="--ppo-credit: expected episode with the maddpg learner"):
        TrainConfig.from_recipe("v2", ppo_credit="user")
    with pytest.raises(QdtInputError, match="--ppo-credit: expected one of episode, user"):
        TrainConfig.from_recipe("v3", ppo_credit="global")
    saved = TrainConfig.from_recipe("v3").to_dict()
    del saved["ppo_credit"]  # a v3 run folder from before the setting existed
    assert TrainConfig.from_dict(saved).ppo_credit == "episode"


@pytest.mark.parametrize(
    ("agent", "credit"), [("classical", "episode"), ("quantum", "episode"), ("classical", "user")]
)
def test_ppo_run_resumes_bit_identically(tmp_path, agent, credit):
    config = TrainConfig.from_recipe(
        "v3", **{**SMALL, "agent": agent, "layers": 2}, seed=1, ppo_credit=credit
    )
    instance = paper_instance()
    full = train(config, instance, tmp_path / "full", progress=False)
    assert train(config, instance, tmp_path / "part", progress=False, stop_after=6)["stopped_early"]
    resumed = train(config, instance, tmp_path / "part", resume=True, progress=False)
    a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "part")
    assert set(a["agents"][0]) == {"actor", "target_actor", "actor_optimizer"}  # no critic saved
    for x, y in zip(a["agents"][0]["actor"].values(), b["agents"][0]["actor"].values()):
        assert torch.equal(x, y)
    metrics = [
        [
            {k: v for k, v in json.loads(line).items() if k != "wall_s"}
            for line in (tmp_path / run / "metrics.jsonl").open()
        ]
        for run in ("full", "part")
    ]
    assert metrics[0] == metrics[1]
    assert all(m["critic_loss"] is None for m in metrics[0])  # no critic is trained
    assert full["assignment"] == resumed["assignment"] and full["recipe"] == "v3"
