"""Training: determinism, bit-identical resume, refused config changes, NaN stops, summary keys."""

import json

import numpy as np
import pytest
import torch

from qdt.cli.main import main
from qdt.errors import QdtInputError
from qdt.problem.generator import generate_instance, paper_instance, tight_config
from qdt.rl import train as train_module
from qdt.rl.checkpoint import load_checkpoint, save_checkpoint
from qdt.rl.config import BASE_RECIPE, DEFAULT_RECIPE, FAMILY_RECIPE, RECIPE_FIELDS, RECIPES, TrainConfig
from qdt.rl.train import TrainingDivergedError, train

SMALL = dict(
    agent="classical",
    episodes=30,
    steps_per_episode=4,
    batch_size=16,
    replay_size=200,
    warmup_transitions=16,
    hidden=16,
    checkpoint_every=7,
    gradient_steps=2,
)


def _params(run_dir):
    payload = load_checkpoint(run_dir)
    # a ppo agent has no critic (the checkpoint holds none)
    nets = ("actor", "critic")
    return [t for agent in payload["agents"] for net in nets for t in agent.get(net, {}).values()]


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _strip_wall(records):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in records]


@pytest.mark.parametrize("agent", ["classical", "quantum"])
def test_same_seed_same_run_and_different_seed_differs(tmp_path, agent):
    config = TrainConfig(**{**SMALL, "agent": agent, "layers": 2}, seed=3)
    train(config, paper_instance(), tmp_path / "a", progress=False)
    train(config, paper_instance(), tmp_path / "b", progress=False)
    train(config.replace(seed=4), paper_instance(), tmp_path / "c", progress=False)
    assert _strip_wall(_metrics(tmp_path / "a")) == _strip_wall(_metrics(tmp_path / "b"))
    assert all(torch.equal(x, y) for x, y in zip(_params(tmp_path / "a"), _params(tmp_path / "b")))
    assert _strip_wall(_metrics(tmp_path / "a")) != _strip_wall(_metrics(tmp_path / "c"))


@pytest.mark.parametrize(
    "stop_at, agent, decode, exploration",
    [
        (int(np.random.default_rng().integers(8, 29)), "quantum", "argmax", "gaussian"),
        (int(np.random.default_rng().integers(8, 29)), "classical", "round", "flip"),
    ],
)
def test_resume_is_bit_identical(tmp_path, stop_at, agent, decode, exploration):
    config = TrainConfig(
        **{**SMALL, "agent": agent, "layers": 3}, seed=1, decode=decode, exploration=exploration
    )
    full = train(config, paper_instance(), tmp_path / "full", progress=False)
    partial = train(config, paper_instance(), tmp_path / "part", progress=False, stop_after=stop_at)
    assert partial["stopped_early"]
    resumed = train(config, paper_instance(), tmp_path / "part", resume=True, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(_params(tmp_path / "full"), _params(tmp_path / "part")))
    assert _strip_wall(_metrics(tmp_path / "full")) == _strip_wall(_metrics(tmp_path / "part"))
    for key in ("assignment", "total_latency_s", "best_seen_total_latency_s", "reward"):
        assert full[key] == resumed[key]


def test_each_episode_writes_its_metrics_line_when_it_ends_and_a_resume_drops_lines_past_the_checkpoint(
    tmp_path, monkeypatch
):
    """metrics.jsonl grows by one line per episode, checkpoint or not (a bench cell checkpoints once,
    at its end, and shows no progress bar); the lines a kill leaves after the last checkpoint (one of
    them torn) are dropped when the run resumes, which then equals the run trained in one go."""
    config = TrainConfig(**{**SMALL, "episodes": 6, "checkpoint_every": 4}, seed=2)
    full = train(config, paper_instance(), tmp_path / "full", progress=False)
    run = tmp_path / "run"
    seen: list[int] = []
    run_episode = train_module.Trainer.run_episode

    def killed_at_six(self):
        seen.append(len((run / "metrics.jsonl").read_text().splitlines()))
        if self.state.episode == 5:
            raise KeyboardInterrupt  # killed after episode 5's line, whose checkpoint never came
        return run_episode(self)

    monkeypatch.setattr(train_module.Trainer, "run_episode", killed_at_six)
    with pytest.raises(KeyboardInterrupt):
        train(config, paper_instance(), run, progress=False)
    assert seen == [0, 1, 2, 3, 4, 5] and load_checkpoint(run)["episode"] == 4
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as stream:
        stream.write('{"episode": 6, "rew')  # and in the middle of the next line
    monkeypatch.setattr(train_module.Trainer, "run_episode", run_episode)
    resumed = train(config, paper_instance(), run, resume=True, progress=False)
    assert _strip_wall(_metrics(run)) == _strip_wall(_metrics(tmp_path / "full"))
    assert all(torch.equal(x, y) for x, y in zip(_params(tmp_path / "full"), _params(run)))
    assert full["assignment"] == resumed["assignment"]


def test_summary_keys_and_files(tmp_path):
    summary = train(TrainConfig(**SMALL), paper_instance(), tmp_path, progress=False)
    for key in (
        "assignment",
        "feasible",
        "total_latency_s",
        "per_user_latency_s",
        "optimum_total_latency_s",
        "gap",
        "best_seen_total_latency_s",
        "episodes",
        "wall_s",
        "seed",
        "config",
    ):
        assert key in summary
    assert summary["optimum_total_latency_s"] == pytest.approx(7.7698036865798)
    assert summary["episodes"] == 30
    assert json.loads((tmp_path / "summary.json").read_text())["episodes"] == 30
    assert (tmp_path / "reward.png").stat().st_size > 1000
    assert len(_metrics(tmp_path)) == 30


def test_a_failed_checkpoint_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from qdt.rl import checkpoint as checkpoint_module

    save_checkpoint(tmp_path, {"episode": 7})

    def crash(obj, path):
        path.write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, {"episode": 14})
    assert load_checkpoint(tmp_path)["episode"] == 7
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left


@pytest.mark.parametrize(
    "recipe, update, message",
    [
        ("v1", "update_agent", "critic loss of agent"),
        ("v2", "update_shared", "critic loss of the shared critic"),
    ],
)
def test_nan_stops_the_run_and_is_never_checkpointed(tmp_path, monkeypatch, recipe, update, message):
    real_update = getattr(train_module, update)
    calls = {"n": 0}

    def poisoned(nets, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 25:
            target = nets[kwargs["j"]] if update == "update_agent" else nets
            with torch.no_grad():
                next(target.critic.parameters()).fill_(float("nan"))
        return real_update(nets, *args, **kwargs)

    monkeypatch.setattr(train_module, update, poisoned)
    with pytest.raises(TrainingDivergedError, match=rf"episode \d+: non-finite {message}"):
        train(TrainConfig.from_recipe(recipe, **SMALL), paper_instance(), tmp_path, progress=False)
    payload = load_checkpoint(tmp_path)
    assert all(torch.isfinite(t).all() for t in _params(tmp_path))
    assert payload["episode"] < 30


def test_cli_train_resume_and_refused_change(tmp_path, capsys):
    run = tmp_path / "run"
    args = [
        "train",
        "--preset",
        "paper",
        "--agent",
        "classical",
        "--episodes",
        "12",
        "--seed",
        "2",
        "--checkpoint-every",
        "5",
        "--out",
        str(run),
        "--no-progress",
        "--steps-per-episode",
        "3",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "greedy placement" in out and "optimum 7.7698" in out
    assert main(["train", "--resume", str(run), "--seed", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--seed: expected the run's own value 2 when resuming, got 3" in err
    assert main(["train", "--resume", str(run), "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 12
    assert main(args) == 2  # the folder already holds a run
    assert "use --resume" in capsys.readouterr().err


def test_bad_config_values_are_named():
    with pytest.raises(ValueError, match="--episodes"):
        TrainConfig(episodes=0)
    with pytest.raises(ValueError, match="--gamma"):
        TrainConfig(gamma=1.5)
    with pytest.raises(ValueError, match="--exploration"):
        TrainConfig(exploration="boltzmann")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=500, replay_size=100)


def test_tensorboard_scalars_match_the_metrics_file(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = TrainConfig(**SMALL, seed=4)
    train(config, paper_instance(), tmp_path / "run", progress=False, stop_after=14)
    train(config, paper_instance(), tmp_path / "run", resume=True, progress=False)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    scalars = events.Scalars("train/reward_mean")
    metrics = _metrics(tmp_path / "run")
    assert [s.step for s in scalars] == [m["episode"] for m in metrics]
    assert [s.value for s in scalars] == pytest.approx([m["reward_mean"] for m in metrics], rel=1e-6)


NOISY_TINY = dict(
    agent="quantum",
    layers=1,
    episodes=10,
    steps_per_episode=2,
    batch_size=8,
    replay_size=64,
    warmup_transitions=8,
    hidden=8,
    checkpoint_every=5,
)


@pytest.mark.parametrize(
    "options",
    [
        {"backend": "density", "noise": "depol-1e-3"},
        {"backend": "density", "noise": "depol-1e-3", "shots": 64},
        {"backend": "aer", "shots": 64},
    ],
    ids=["density-noise", "density-noise-shots", "aer-shots-parameter-shift"],
)
def test_noise_aware_and_shot_based_training_reproduce(tmp_path, options):
    config = TrainConfig(**NOISY_TINY, **options, seed=2)
    first = train(config, paper_instance(), tmp_path / "a", progress=False)
    second = train(config, paper_instance(), tmp_path / "b", progress=False)
    assert _strip_wall(_metrics(tmp_path / "a")) == _strip_wall(_metrics(tmp_path / "b"))
    for x, y in zip(_params(tmp_path / "a"), _params(tmp_path / "b")):
        assert torch.equal(x, y)
    assert first["config"]["noise"] == options.get("noise") and first["assignment"] == second["assignment"]
    critic_losses = [m["critic_loss"] for m in _metrics(tmp_path / "a") if m["critic_loss"] is not None]
    assert critic_losses and all(np.isfinite(critic_losses))


def test_training_options_are_checked_before_training(tmp_path):
    with pytest.raises(QdtInputError, match="shots"):
        train(TrainConfig(**NOISY_TINY, shots=8), paper_instance(), tmp_path / "sv", progress=False)
    with pytest.raises(QdtInputError, match="noise"):
        train(TrainConfig(**NOISY_TINY, backend="density", noise="nope"), paper_instance(), tmp_path / "n")
    with pytest.raises(QdtInputError, match="classical"):
        TrainConfig(agent="classical", noise="depol-1e-3")
    assert not (tmp_path / "sv").exists() and not (tmp_path / "n").exists()


# ---- recipes (issue 13) --------------------------------------------------------------------------

TINY_RECIPE = dict(
    episodes=14,
    steps_per_episode=3,
    batch_size=16,
    replay_size=200,
    warmup_transitions=16,
    hidden=16,
    checkpoint_every=4,
)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
@pytest.mark.parametrize("agent", ["classical", "quantum"])
def test_resume_is_bit_identical_for_every_recipe(tmp_path, recipe, agent):
    instance = generate_instance(tight_config(6, 3), 3)  # 6 users: scored by tables; 3 servers
    config = TrainConfig.from_recipe(recipe, **TINY_RECIPE, agent=agent, layers=2, seed=2)
    stop_at = int(np.random.default_rng().integers(5, 13))
    full = train(config, instance, tmp_path / "full", progress=False)
    train(config, instance, tmp_path / "part", progress=False, stop_after=stop_at)
    resumed = train(config, instance, tmp_path / "part", resume=True, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(_params(tmp_path / "full"), _params(tmp_path / "part")))
    assert _strip_wall(_metrics(tmp_path / "full")) == _strip_wall(_metrics(tmp_path / "part"))
    for key in ("assignment", "total_latency_s", "untrained_total_latency_s", "recipe", "decode"):
        assert full[key] == resumed[key]
    assert (
        full["recipe"] == recipe
        and json.loads((tmp_path / "full" / "config.json").read_text())["config"]["recipe"] == recipe
    )


def test_large_instances_train_on_vectorised_episodes_and_resume_bit_identically(tmp_path):
    instance = generate_instance(tight_config(12, 3), 1)  # 12 users: scored step by step, not by table
    config = TrainConfig.from_recipe("v2", **TINY_RECIPE, agent="classical", envs=3, seed=4)
    full = train(config, instance, tmp_path / "full", progress=False)
    train(config, instance, tmp_path / "part", progress=False, stop_after=6)
    train(config, instance, tmp_path / "part", resume=True, progress=False)
    assert _strip_wall(_metrics(tmp_path / "full")) == _strip_wall(_metrics(tmp_path / "part"))
    assert full["feasible"] and full["optimum_status"] == "optimal"  # the feasible decoding


def test_an_older_run_folder_resumes_with_the_recipe_it_was_trained_with(tmp_path):
    """A run folder from before recipes records none: it is v1, never the new default."""
    config = TrainConfig.from_recipe("v1", **TINY_RECIPE, agent="classical", seed=5)
    train(config, paper_instance(), tmp_path / "full", progress=False)
    train(config, paper_instance(), tmp_path / "old", progress=False, stop_after=8)
    saved = json.loads((tmp_path / "old" / "config.json").read_text())
    new_fields = {"recipe", "observation", "sharing", "envs", "reward_scaling"}
    saved["config"] = {k: v for k, v in saved["config"].items() if k not in new_fields}
    (tmp_path / "old" / "config.json").write_text(json.dumps(saved))
    assert main(["train", "--resume", str(tmp_path / "old"), "--no-progress", "--json"]) == 0
    assert _strip_wall(_metrics(tmp_path / "full")) == _strip_wall(_metrics(tmp_path / "old"))
    assert all(torch.equal(x, y) for x, y in zip(_params(tmp_path / "full"), _params(tmp_path / "old")))
    assert (
        main(["train", "--resume", str(tmp_path / "old"), "--recipe", DEFAULT_RECIPE, "--no-progress"]) == 2
    )


def test_recipes_name_their_settings_and_the_dataclass_is_the_base_recipe():
    assert TrainConfig().recipe == BASE_RECIPE == "v2"
    assert {name: getattr(TrainConfig(), name) for name in RECIPE_FIELDS} == RECIPES[BASE_RECIPE]
    # without a recipe: v5 on one instance, v2 for a family (v5's learner refuses a family)
    assert TrainConfig.from_recipe(seed=2) == TrainConfig.from_recipe(DEFAULT_RECIPE, seed=2)
    assert DEFAULT_RECIPE == "v5" and TrainConfig.from_recipe().learner == "elite"
    family = TrainConfig.from_recipe(family="users=4,servers=2", observation="user")
    assert family.recipe == FAMILY_RECIPE == "v2"
    paper = TrainConfig.from_recipe("paper")
    assert (paper.decode, paper.exploration, paper.target_update) == ("round", "paper", "hard")
    v1 = TrainConfig.from_recipe("v1", seed=3)
    assert (v1.decode, v1.sharing, v1.gamma, v1.seed, v1.recipe) == ("argmax", "none", 0.99, 3, "v1")
    assert TrainConfig.from_dict({"seed": 1}) == TrainConfig.from_recipe("v1", seed=1)  # no recipe: v1


def test_unknown_recipe_or_decoding_and_too_large_instances_fail_before_any_work(tmp_path, capsys):
    with pytest.raises(QdtInputError, match="--recipe: expected one of v2, v3, v4, v5, v1, paper"):
        TrainConfig.from_recipe("v9")
    with pytest.raises(QdtInputError, match="--recipe"):
        TrainConfig(recipe="v9")
    with pytest.raises(QdtInputError, match="--decode: expected one of round, argmax, feasible"):
        TrainConfig(decode="nearest")
    with pytest.raises(SystemExit) as stop:
        main(["train", "--recipe", "v9", "--out", str(tmp_path / "r"), "--no-progress"])
    assert stop.value.code == 2 and "--recipe: invalid choice: 'v9'" in capsys.readouterr().err
    huge = generate_instance(tight_config(128, 20), 0)  # the critic reads 5120 values: 13 qubits
    with pytest.raises(QdtInputError, match=r"--instance: .*at most 12 qubits.*critic 13 qubits"):
        train(TrainConfig(agent="quantum"), huge, tmp_path / "q", progress=False)
    wide = generate_instance(tight_config(2048, 17), 0)  # 69,632 critic inputs
    with pytest.raises(QdtInputError, match="--instance: .*65,536"):
        train(TrainConfig(agent="classical"), wide, tmp_path / "c", progress=False)
    assert not (tmp_path / "q").exists() and not (tmp_path / "c").exists() and not (tmp_path / "r").exists()
