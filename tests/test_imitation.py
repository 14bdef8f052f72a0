"""Imitation of the exact optimum for a family run's first episodes (qdt/rl/imitation.py): the
labels are the MILP's optimum, the update fits the actor's logits to them, the settings that make
no sense are refused before any work, and a run that imitates resumes bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qdt.errors import QdtInputError
from qdt.problem.family import parse_family
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import solve
from qdt.rl.config import TrainConfig
from qdt.rl.imitation import (
    NEAR_OPTIMUM_MOVES,
    imitation_update,
    near_optimum_states,
    optimal_servers,
    shared_actor_logits,
)
from qdt.rl.observations import context_of
from qdt.rl.train import Trainer, family_instance

FAMILY = dict(
    agent="classical",
    family="users=6,servers=3",
    observation="user",
    learner="ppo",
    episodes=6,
    steps_per_episode=2,
    envs=2,
    gradient_steps=2,
    hidden=16,
)


def test_labels_are_the_milps_optimum_and_unproven_instances_teach_nothing():
    family = parse_family("users=6,servers=3")
    models = [PlacementModel(family.draw(0, 0, k)) for k in range(3)]
    targets = optimal_servers(models)
    for model, row in zip(models, targets):
        assert row.tolist() == list(solve(model, "auto").assignment)
    assert (optimal_servers(models[:1], time_limit_s=1e-9) == -1).all()  # no proof within the limit


def test_states_near_the_optimum_keep_most_users_on_their_optimal_server():
    targets = np.array([[0, 1, 2, 0, 1, 2, 0, 1] * 25, [-1] * 200])  # instance 1: optimum unknown
    states = near_optimum_states(targets, 3, 3, np.random.default_rng(0))
    assert states.shape == (6, 200, 3) and states.dtype == np.int8
    assert (states[0::2].sum(axis=2) == 1).all() and not states[1::2].any()  # one server each; unknown: empty
    kept = (states[0::2].argmax(axis=2) == targets[0]).mean()
    assert abs(kept - (1 - NEAR_OPTIMUM_MOVES * 2 / 3)) < 0.05  # a moved user lands elsewhere 2 times in 3
    assert not np.array_equal(states[0], states[2])  # each copy is drawn anew


def test_the_update_fits_the_actors_servers_to_the_optimum():
    """Fitted on one instance's optimum, the actor's best-scored server of every user is the
    optimum's, from the empty placement and from any other; unlabelled rows give no step."""
    config = TrainConfig(**FAMILY)
    trainer = Trainer(config, family_instance(config))
    model = PlacementModel(family_instance(config))
    target = torch.from_numpy(optimal_servers([model]))
    states = torch.zeros(4, 6, 3, dtype=torch.float64)
    states[1:, torch.arange(6), torch.randint(0, 3, (3, 6), generator=torch.Generator().manual_seed(0))] = 1.0
    context = context_of([model]).rows(torch.zeros(4, dtype=torch.long))
    nets = trainer.agents[0]
    before = imitation_update(nets, states, target.expand(4, 6), 1, context)
    after = imitation_update(nets, states, target.expand(4, 6), 300, context)
    assert before is not None and after is not None and after < 0.1 * before
    with torch.no_grad():
        chosen = shared_actor_logits(nets, states, context).argmax(dim=2)
    assert torch.equal(chosen, target.expand(4, 6))
    weights = [p.detach().clone() for p in nets.actor.parameters()]
    assert imitation_update(nets, states, torch.full((4, 6), -1), 5, context) is None
    assert all(torch.equal(w, p) for w, p in zip(weights, nets.actor.parameters()))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"family": None, "observation": "column"}, "a family run"),
        ({"imitation_episodes": 7}, "at most --episodes = 6"),
        ({"imitation_episodes": -1}, "--imitation-episodes: expected an integer >= 0"),
        ({"learner": "maddpg", "sharing": "none"}, "one shared actor"),
        ({"learner": "maddpg", "decode": "round"}, "a score decoding"),
    ],
)
def test_settings_that_cannot_imitate_are_refused(changes, message):
    with pytest.raises(QdtInputError, match=message):
        TrainConfig(**{**FAMILY, "imitation_episodes": 2, **changes})


def test_imitation_is_recorded_only_when_used():
    assert "imitation_episodes" not in TrainConfig(**FAMILY).to_dict()  # older configs read the same
    saved = TrainConfig(**{**FAMILY, "imitation_episodes": 2}).to_dict()
    assert saved["imitation_episodes"] == 2
    assert TrainConfig.from_dict(saved).imitation_episodes == 2


def test_imitation_episodes_then_rewards(tmp_path):
    config = TrainConfig(**{**FAMILY, "imitation_episodes": 3})
    trainer = Trainer(config, family_instance(config))
    records = [trainer.run_episode() for _ in range(config.episodes)]
    assert [r["imitation"] for r in records] == [True] * 3 + [False] * 3
    assert all(r["critic_loss"] is None for r in records)
    assert all(np.isfinite(r["actor_loss"]) and r["actor_loss"] > 0 for r in records[:3])  # cross-entropy
