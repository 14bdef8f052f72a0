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
from qdt.rl.builders import network_builders
from qdt.rl.checkpoint import load_checkpoint
from qdt.rl.config import RECIPES, TrainConfig
from qdt.rl.maddpg import joint_scores, make_agents, update_shared
from qdt.rl.ppo import gaussian_log_prob, ppo_update
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
    ppo_update(nets, states, actions, torch.tensor([-1.0, -2.0], dtype=torch.float64), 0.05, 0.2, 8)
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


def test_equal_rewards_make_no_step_and_log_prob_is_the_gaussian():
    nets = _nets()
    states = torch.zeros(3, 4, 2, dtype=torch.float64)
    before = [p.clone() for p in nets.actor.parameters()]
    assert (
        ppo_update(nets, states, torch.rand(3, 4, 2, dtype=torch.float64), torch.ones(3), 0.1, 0.2, 4) == 0.0
    )
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


@pytest.mark.parametrize("agent", ["classical", "quantum"])
def test_ppo_run_resumes_bit_identically(tmp_path, agent):
    config = TrainConfig.from_recipe("v3", **{**SMALL, "agent": agent, "layers": 2}, seed=1)
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
