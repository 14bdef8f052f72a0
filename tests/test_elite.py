"""The ``elite`` learner (recipe v4, qdt/rl/construct.py "Self-imitation"): one instance constructed
K times per episode, the actor imitating the best feasible construction found so far. Its recipe,
the settings it refuses, that its elite only ever improves and the trained plain construction
reproduces it, bit-identical resume, and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from qdt.cli.main import main
from qdt.errors import QdtInputError
from qdt.problem.generator import generate_instance, tight_config
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import solve
from qdt.rl.checkpoint import load_checkpoint
from qdt.rl.config import ELITE_SETTINGS, RECIPES, TrainConfig
from qdt.rl.construct import construct_placements, sampled_placements
from qdt.rl.observations import context_of
from qdt.rl.policy import load_policy
from qdt.rl.train import Trainer, train

SMALL = dict(
    episodes=12, envs=8, batch_size=8, replay_size=8, gradient_steps=8, hidden=16, checkpoint_every=5
)


def _tight(users: int, servers: int, seed: int):
    return generate_instance(tight_config(users, servers), seed)


def _metrics(folder) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k != "wall_s"}
        for line in (folder / "metrics.jsonl").read_text().splitlines()
    ]


def test_v4_is_v2_with_the_elite_settings_and_round_trips_through_config_json():
    changed = {k: v for k, v in RECIPES["v4"].items() if RECIPES["v2"][k] != v}
    assert changed == {k: v for k, v in ELITE_SETTINGS.items() if RECIPES["v2"][k] != v}
    config = TrainConfig.from_recipe("v4")
    assert (config.learner, config.decode, config.family, config.trains_critic) == (
        "elite",
        "construct",
        None,
        False,
    )
    # the guard is v4's own: recorded only when it is not, and read back either way
    assert "construct_guard" not in config.to_dict()
    unguarded = TrainConfig.from_recipe("v4", construct_guard="none")
    assert unguarded.to_dict()["construct_guard"] == "none"
    assert TrainConfig.from_dict(unguarded.to_dict()) == unguarded
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "changes, words",
    [
        (
            {"decode": "feasible", "observation": "user"},
            "--decode: expected construct with the elite learner",
        ),
        ({"family": "users=6,servers=2"}, "--family: expected none with the elite learner"),
        ({"exploration": "gaussian"}, "--exploration: expected gumbel with the elite learner"),
        ({"channel_fading_db": 3.0}, "--fading-db: expected 0 with the elite learner"),
        ({"learner": "maddpg"}, "--exploration: expected flip, gaussian or paper"),
        (
            {"learner": "maddpg", "exploration": "gaussian"},
            "--decode: expected a family run .* or --learner elite",
        ),
    ],
)
def test_settings_the_elite_learner_cannot_run_with_are_refused(changes, words):
    with pytest.raises(QdtInputError, match=words):
        TrainConfig.from_recipe("v4", **changes)


def test_sampled_constructions_start_with_the_plain_one_and_differ_only_when_noisy():
    config = TrainConfig.from_recipe("v4", agent="classical", **SMALL)
    model = PlacementModel(_tight(8, 2, 3))
    actor = Trainer(config, model.instance).agents[0].actor
    plain = construct_placements(actor, [model], context_of([model]), guard="completion")[0]
    context = context_of([model] * 16)
    noisy = sampled_placements(actor, [model], context, 16, 1.0, np.random.default_rng(0), guard="completion")
    calm = sampled_placements(actor, [model], context, 16, 0.0, np.random.default_rng(0), guard="completion")
    assert np.array_equal(noisy[0], plain) and all(np.array_equal(row, plain) for row in calm)
    assert len({row.tobytes() for row in noisy}) > 1


def test_the_elite_only_improves_and_the_trained_construction_reproduces_it(tmp_path):
    instance = _tight(8, 2, 3)  # greedy-with-repair finds no placement
    config = TrainConfig.from_recipe(
        "v4", agent="classical", **{**SMALL, "episodes": 30, "gradient_steps": 16}
    )
    summary = train(config, instance, tmp_path / "run", progress=False)
    elites = [m["elite_latency_s"] for m in _metrics(tmp_path / "run")]
    assert all(e is not None for e in elites) and all(a >= b for a, b in zip(elites, elites[1:]))
    model = PlacementModel(instance)
    best = solve(model, "enumerate").total_latency_s
    assert summary["best_seen_total_latency_s"] == pytest.approx(elites[-1])
    assert summary["best_seen_total_latency_s"] >= best - 1e-9
    # no search when deciding: the plain construction of the trained actor is the elite
    assert summary["feasible"] and summary["total_latency_s"] == pytest.approx(elites[-1])
    assert solve(model, "greedy").total_latency_s is None
    policy = load_policy(tmp_path / "run")
    assert policy.constructs and np.array_equal(policy.placement().argmax(1), summary["assignment"])


@pytest.mark.parametrize("agent", ["classical", "quantum"])
def test_an_elite_run_resumes_bit_identically(tmp_path, agent):
    config = TrainConfig.from_recipe("v4", agent=agent, layers=2, seed=2, **SMALL)
    instance = _tight(6, 2, 1)
    full = train(config, instance, tmp_path / "full", progress=False)
    partial = train(config, instance, tmp_path / "part", progress=False, stop_after=7)
    assert partial["stopped_early"]
    resumed = train(config, instance, tmp_path / "part", resume=True, progress=False)
    weights = [load_checkpoint(tmp_path / name)["agents"][0]["actor"] for name in ("full", "part")]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    assert _metrics(tmp_path / "full") == _metrics(tmp_path / "part")
    for key in (
        "assignment",
        "best_seen_assignment",
        "best_seen_total_latency_s",
        "untrained_total_latency_s",
    ):
        assert full[key] == resumed[key]


def test_cli_trains_v4_on_one_instance_and_refuses_a_family_before_any_folder(tmp_path, capsys):
    path = tmp_path / "tight.json"
    path.write_text(json.dumps(_tight(6, 2, 1).to_dict()))
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--recipe",
            "v4",
            "--agent",
            "classical",
            "--instance",
            str(path),
            "--episodes",
            "3",
            "--envs",
            "4",
            "--out",
            str(out),
            "--no-progress",
            "--json",
        ]
    )
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["recipe"] == "v4" and summary["feasible"]
    assert json.loads((out / "config.json").read_text())["config"]["learner"] == "elite"
    refused = tmp_path / "family"
    code = main(["train", "--recipe", "v4", "--family", "users=6,servers=2", "--out", str(refused)])
    err = capsys.readouterr().err
    assert code == 2 and "--family: expected none with the elite learner" in err and not refused.exists()
