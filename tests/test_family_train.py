"""Training one policy on a family of instances (issue 17): per-row instance contexts give the same
actor inputs as the one-instance tables, the critic reads the instance, the replay memory keeps each
transition's instance, resume is bit-identical, and the CLI refuses what makes no sense."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from qdt.cli.main import main
from qdt.problem.decoding import start_placement
from qdt.problem.family import parse_family
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import solve
from qdt.rl.builders import agent_qubits, critic_width
from qdt.rl.checkpoint import load_checkpoint
from qdt.rl.config import TrainConfig
from qdt.rl.observations import ObservationFeatures, context_arrays, context_of
from qdt.rl.policy import load_policy
from qdt.rl.replay import ReplayMemory
from qdt.rl.train import Trainer, family_instance, train

SMALL = dict(
    agent="classical",
    episodes=12,
    steps_per_episode=3,
    batch_size=16,
    replay_size=120,
    warmup_transitions=16,
    envs=2,
    gradient_steps=2,
    checkpoint_every=4,
    hidden=16,
    observation="features",
    family="users=6,servers=2,tight=true",
)


def _params(run_dir):
    payload = load_checkpoint(run_dir)
    return [
        t for agent in payload["agents"] for net in ("actor", "critic") for t in agent.get(net, {}).values()
    ]


def _metrics(run_dir):
    return [
        {k: v for k, v in json.loads(line).items() if k != "wall_s"}
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]


@pytest.mark.parametrize("kind", ["features", "user"])
@pytest.mark.parametrize("shared", [True, False])
def test_context_features_equal_the_instance_tables(shared, kind):
    """Features built from per-row contexts equal those from the tables of each row's own instance."""
    family = parse_family("users=5,servers=3")
    models = [PlacementModel(family.draw(0, 0, k)) for k in range(3)]
    rng = np.random.default_rng(0)
    columns = torch.from_numpy(rng.integers(0, 2, size=(3, 5)).astype(np.float64))
    for agent in range(3):
        who = torch.full((3,), agent)
        with_context = ObservationFeatures(kind, models[0], shared)(columns, who, context_of(models))
        for row, model in enumerate(models):
            own = ObservationFeatures(kind, model, shared)(columns[row : row + 1], agent)
            assert torch.equal(with_context[row : row + 1], own)
    # and the instances differ, so the features do too
    assert not torch.equal(context_of(models[:1]).latency, context_of(models[1:2]).latency)


def test_family_critic_reads_the_instance_and_widths_follow():
    config = TrainConfig(**SMALL)
    assert critic_width(config, 6, 2) == 4 * 6 * 2
    assert critic_width(config.replace(family=None, observation="column"), 6, 2) == 2 * 6 * 2
    assert agent_qubits(TrainConfig(**{**SMALL, "agent": "quantum"}), 64, 8)[1] == 11  # 2048 values
    trainer = Trainer(config, family_instance(config))
    assert trainer.agents[0].critic.body[0].in_features == 4 * 6 * 2


def test_replay_keeps_each_transitions_instance():
    memory = ReplayMemory(6, 2, 2, contexts=3)
    first = [np.full((2, 2), 0.1), np.full((2, 2), 0.2), np.full(2, 0.3)]
    second = [np.full((2, 2), 0.4), np.full((2, 2), 0.5), np.full(2, 0.6)]
    a, b = memory.add_context(*first), memory.add_context(*second)
    x = np.zeros((2, 2), dtype=np.int8)
    memory.add(x, np.zeros((2, 2)), -1.0, x, a)
    memory.add(x, np.zeros((2, 2)), -2.0, x, b)
    *_, rewards, _, context = memory.sample(np.random.default_rng(1), 64)
    for reward, latency in zip(rewards.tolist(), context.latency[:, 0, 0].tolist()):
        assert latency == (0.1 if reward == -1.0 else 0.4)
    restored = ReplayMemory(6, 2, 2, contexts=3)
    restored.load_state_dict(memory.state_dict())
    assert np.array_equal(restored.latency, memory.latency) and restored.context_position == 2
    with pytest.raises(ValueError, match="context index"):
        memory.add(x, np.zeros((2, 2)), -1.0, x)
    with pytest.raises(ValueError, match="no instance contexts"):
        ReplayMemory(6, 2, 2, contexts=3).load_state_dict(ReplayMemory(6, 2, 2).state_dict())


def test_every_stored_transition_keeps_its_own_instance_after_the_ring_wraps():
    """Past a full memory (the context ring wrapped several times), every transition still points at
    the context of the instance it was played on: episode e's draw for its environment k."""
    config = TrainConfig(**{**SMALL, "replay_size": 24, "batch_size": 8, "warmup_transitions": 8})
    trainer = Trainer(config, family_instance(config))
    episodes = 10
    for _ in range(episodes):
        trainer.run_episode()
    memory, family = trainer.replay, parse_family(config.family)
    per_episode, envs = config.envs * config.steps_per_episode, config.envs
    total = episodes * per_episode
    assert memory.size == memory.capacity < total  # wrapped
    for g in range(total - memory.capacity, total):  # the transitions still stored, oldest first
        episode, copy = g // per_episode, g % envs  # transitions are added step by step, copy by copy
        expected = context_arrays(PlacementModel(family.draw(config.seed, episode, copy)))[0]
        assert np.array_equal(memory.latency[memory.context_of[g % memory.capacity]], expected)


@pytest.mark.parametrize(
    "agent, changes",
    [
        ("classical", {}),
        ("quantum", {}),
        ("quantum", {"observation": "user", "learner": "ppo"}),
        ("classical", {"observation": "user", "learner": "ppo", "imitation_episodes": 8}),
        ("classical", {"observation": "user", "learner": "ppo", "imitation_episodes": 4, "start": "greedy"}),
    ],
    ids=["classical", "quantum", "quantum-user-ppo", "classical-user-imitation", "classical-greedy-start"],
)
def test_family_training_draws_new_instances_and_resumes_bit_identically(tmp_path, agent, changes):
    config = TrainConfig(**{**SMALL, "agent": agent, "layers": 2, **changes}, seed=2)
    instance = family_instance(config)
    full = train(config, instance, tmp_path / "full", progress=False)
    partial = train(config, instance, tmp_path / "part", progress=False, stop_after=5)
    assert partial["stopped_early"]
    resumed = train(config, instance, tmp_path / "part", resume=True, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(_params(tmp_path / "full"), _params(tmp_path / "part")))
    assert _metrics(tmp_path / "full") == _metrics(tmp_path / "part")
    assert full["family"] == resumed["family"]
    family = full["family"]
    assert family["spec"] == "users=6,servers=2,tight=true" and family["held_out_instances"] == 20
    assert 0.0 <= family["feasible_share"] <= 1.0
    saved = json.loads((tmp_path / "full" / "config.json").read_text())
    assert saved["family"]["users"] == 6 and saved["config"]["family"] == family["spec"]
    validation = [m for m in _metrics(tmp_path / "full") if "validation_feasible" in m]
    assert validation, "the greedy policy is evaluated on held-out instances"
    # a new instance every episode and environment: the memory holds distinct contexts
    payload = load_checkpoint(tmp_path / "full")
    used = config.episodes * config.envs  # fewer than the ring holds: no entry overwritten yet
    assert payload["replay"]["context_position"] == used
    latencies = payload["replay"]["context_latency"][:used]
    assert len({tuple(t.flatten().tolist()) for t in latencies}) == used


def test_family_needs_actors_that_read_the_instance_and_a_known_spec():
    with pytest.raises(Exception, match="add --observation user"):
        TrainConfig(**{**SMALL, "observation": "column"})
    with pytest.raises(Exception, match="--family"):
        TrainConfig(**{**SMALL, "family": "users=6,servers=2,colour=red"})


def test_cli_family_run_and_refusals(tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", "--family", "users=4,servers=2", "--agent", "classical", "--episodes", "4"]
    base += ["--steps-per-episode", "2", "--no-progress"]
    assert main([*base, "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "family users=4,servers=2: on 20 held-out instances" in out
    saved = json.loads((run / "config.json").read_text())["config"]
    assert saved["recipe"] == "v2"  # FAMILY_RECIPE: v5, the one-instance default, refuses a family
    assert (saved["observation"], saved["hidden"], saved["start"]) == (
        "user",
        64,
        "greedy",
    )  # FAMILY_DEFAULTS
    assert main([*base, "--preset", "paper", "--out", str(tmp_path / "b")]) == 2
    assert "--family" in capsys.readouterr().err and not (tmp_path / "b").exists()
    assert main([*base, "--observation", "column", "--out", str(tmp_path / "c")]) == 2
    assert "--observation user" in capsys.readouterr().err
    assert (
        main([*base, "--imitation-episodes", "5", "--out", str(tmp_path / "e")]) == 2
    )  # more than --episodes
    assert "--imitation-episodes: expected at most --episodes = 4" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
    assert main(["train", "--family", "users=4", "--out", str(tmp_path / "d"), "--no-progress"]) == 2
    assert "--family" in capsys.readouterr().err
    # the place command sees a family run
    assert main(["train", "--resume", str(run), "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["family"]["spec"] == "users=4,servers=2"


def test_a_greedy_start_run_starts_every_episode_and_decision_from_greedys_placement(tmp_path):
    """start = greedy: the environments reset to greedy-with-repair's placement of each episode's
    instance, and the trained policy's rollout (training's held-out evaluation, qdt place's) starts
    there too; a run that starts empty records no ``start`` (older configs read the same)."""
    changes = {"observation": "user", "learner": "ppo", "family": "users=6,servers=2"}
    config = TrainConfig(**{**SMALL, **changes}, start="greedy", seed=4)
    trainer = Trainer(config, family_instance(config))
    trainer.env.set_instances(trainer.family.draws(config.seed, 0, config.envs))
    states = trainer.env.reset()
    greedy_found = 0
    for model, state in zip(trainer.env.models, states):
        np.testing.assert_array_equal(state, start_placement(model, "greedy"))
        assert (state.sum(axis=1) == 1).all()  # every user placed
        expected = solve(model, "greedy").assignment
        if expected is not None:
            greedy_found += 1
            assert state.argmax(axis=1).tolist() == list(expected)
        else:  # greedy found none: every user on its fastest server
            assert state.argmax(axis=1).tolist() == model.latency.argmin(axis=1).tolist()
    assert greedy_found
    assert config.to_dict()["start"] == "greedy" and "start" not in config.replace(start="empty").to_dict()
    train(config, family_instance(config), tmp_path / "run", progress=False)
    policy = load_policy(tmp_path / "run", instance=trainer.family.held_out(9, 0))
    starts = []
    decide = policy.decide
    policy.decide = lambda x: starts.append(x.copy()) or decide(x)
    policy.placement()
    np.testing.assert_array_equal(starts[0], start_placement(policy.placement_model, "greedy"))


def test_family_summary_scores_against_the_milp_bound_where_no_optimum_is_proven(tmp_path, monkeypatch):
    """Held-out instances whose optimum the MILP does not prove within the summary's limit are scored
    against its lower bound (HiGHS within 1%): never below the gap to the optimum, instance by instance."""
    import qdt.rl.train as training
    from qdt.rl.train import family_summary

    config = TrainConfig(**{**SMALL, "episodes": 2, "checkpoint_every": 2}, seed=1)
    trainer = Trainer(config, family_instance(config))
    exact = family_summary(trainer)
    assert exact["solved"] > 10 and exact["bounded"] == 0 and exact["bound_gap_median"] is None
    monkeypatch.setattr(training, "FAMILY_EXACT_LIMIT_S", 1e-9)  # no optimum proven in time
    bounded = family_summary(trainer)  # the tight family's infeasible draws stay neither
    assert bounded["solved"] == 0 and bounded["bounded"] == exact["solved"] and bounded["gap_median"] is None
    assert bounded["feasible_share"] == exact["feasible_share"] > 0
    assert bounded["bound_gap_median"] >= exact["gap_median"] - 1e-12
    for index in range(6):
        model = PlacementModel(trainer.family.held_out(config.seed, index))
        reference, optimum = training.reference_solve(model), solve(model, "milp")
        if optimum.status == "optimal":
            assert (
                reference.status == "feasible" and reference.lower_bound_s <= optimum.total_latency_s + 1e-9
            )
        else:
            assert reference.status == optimum.status == "infeasible"
