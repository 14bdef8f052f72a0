"""Sampled constructions (qdt/rl/construct.py ``Sampling``, ``qdt place --samples``): the best of K
constructions is never worse than the plain one and is the plain one at K = 1, its noise comes
from the seed it is given (same seed, same placement), the best placement is picked by the
objective among the feasible ones, and bad values are refused before any work."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import SMALL_CONSTRUCT
from qdt.cli.main import main
from qdt.cli.sampling_flags import DEFAULT_TEMPERATURE_TEXT
from qdt.errors import QdtInputError
from qdt.problem.decoding import best_placement
from qdt.problem.family import Family
from qdt.problem.model import PlacementModel
from qdt.rl.config import TrainConfig
from qdt.rl.construct import (
    MAX_SAMPLES,
    SAMPLE_TEMPERATURE,
    Sampling,
    construct_best,
)
from qdt.rl.policy import load_policy
from qdt.rl.train import Trainer, family_instance, train


def _models(users: int, servers: int, count: int) -> list[PlacementModel]:
    family = Family(users, servers, tight=True, seed=11)
    return [PlacementModel(family.held_out(0, k)) for k in range(count)]


def _latency(model: PlacementModel, placement: np.ndarray) -> float:
    evaluation = model.evaluate(placement)
    return evaluation.total_latency_s if evaluation.feasible else np.inf


def test_the_best_placement_is_the_feasible_one_of_least_latency_else_the_first():
    model = _models(6, 2, 1)[0]
    rng = np.random.default_rng(0)
    servers = rng.integers(0, 2, size=(64, 6))
    candidates = np.zeros((64, 6, 2), dtype=np.int8)
    candidates[np.arange(64)[:, None], np.arange(6), servers] = 1
    latencies = [_latency(model, x) for x in candidates]
    assert np.isfinite(latencies).any() and not np.isfinite(latencies).all()  # the pick can go wrong
    assert _latency(model, best_placement(model, candidates)) == min(latencies)
    infeasible = candidates[~np.isfinite(latencies)]
    assert np.array_equal(best_placement(model, infeasible), infeasible[0])


@pytest.mark.parametrize("guard", ["none", "completion"])
def test_sampled_constructions_are_never_worse_and_follow_their_seed(guard):
    """An untrained actor on tight 16 x 4 draws: the best of 16 constructions is at least as good
    as the plain construction on every instance and better on some; K = 1 is the plain construction
    whatever the rng; the same seed gives the same placements, another seed other ones."""
    config = TrainConfig(**{**SMALL_CONSTRUCT, "family": "users=16,servers=4,tight=true", "seed": 1})
    actor = Trainer(config, family_instance(config)).agents[0].actor
    models = _models(16, 4, 12)
    cpu = torch.device("cpu")
    plain = construct_best(actor, models, cpu, guard=guard)
    again = construct_best(actor, models, cpu, guard=guard, rng=np.random.default_rng(5))
    assert np.array_equal(plain, again)

    def sampled(seed: int) -> np.ndarray:
        rng = np.random.default_rng(np.random.SeedSequence(seed))
        return construct_best(actor, models, cpu, guard=guard, sampling=Sampling(16, 0.5), rng=rng)

    best, same, other = sampled(3), sampled(3), sampled(4)
    assert np.array_equal(best, same) and not np.array_equal(best, other)
    before = np.array([_latency(m, x) for m, x in zip(models, plain)])
    after = np.array([_latency(m, x) for m, x in zip(models, best)])
    assert np.all(after <= before)
    assert np.any(after < before)


def test_sampling_values_are_checked():
    assert Sampling() == Sampling(1, SAMPLE_TEMPERATURE) and not Sampling().sampled
    assert DEFAULT_TEMPERATURE_TEXT == f"{SAMPLE_TEMPERATURE:g}"  # what --help shows
    for samples in (0, -1, MAX_SAMPLES + 1, True, 2.0):
        with pytest.raises(QdtInputError, match="--samples"):
            Sampling(samples)
    for temperature in (0.0, -0.1, float("nan"), float("inf"), True):
        with pytest.raises(QdtInputError, match="--temperature"):
            Sampling(4, temperature)
    with pytest.raises(ValueError, match="rng"):
        construct_best(None, _models(6, 2, 1), torch.device("cpu"), sampling=Sampling(2))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def constructing_run(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("sampling") / "run"
    config = TrainConfig(**{**SMALL_CONSTRUCT, "construct_guard": "completion"})
    train(config, family_instance(config), folder, progress=False)
    instance = tmp_path_factory.mktemp("instances") / "unseen.json"
    args = ["instance", "generate", "--users", "6", "--servers", "2", "--tight", "--seed", "21"]
    assert main([*args, "-o", str(instance)]) == 0
    return folder, instance


def _place(capsys, run, instance, *flags):
    capsys.readouterr()
    assert main(["place", "--run", str(run), str(instance), *flags, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_qdt_place_samples_and_reports_it(constructing_run, capsys):
    run, instance = constructing_run
    plain = _place(capsys, run, instance)
    assert (plain["samples"], plain["temperature"], plain["keep"]) == (1, None, None)
    first = _place(capsys, run, instance, "--samples", "32", "--temperature", "1.0", "--seed", "4")
    second = _place(capsys, run, instance, "--samples", "32", "--temperature", "1.0", "--seed", "4")
    assert (first["samples"], first["temperature"], first["seed"]) == (32, 1.0, 4)
    assert first["assignment"] == second["assignment"]
    assert first["feasible"] or not plain["feasible"]
    if plain["feasible"]:
        assert first["total_latency_s"] <= plain["total_latency_s"]
    policy = load_policy(run)
    assert policy.sampling == Sampling()  # a loaded policy constructs once until told otherwise
    capsys.readouterr()
    assert main(["place", "--run", str(run), str(instance), "--samples", "4", "--seed", "4"]) == 0
    assert "best of 4 constructions" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--samples", "0"], "--samples: expected an integer from 1"),
        (["--samples", "4", "--temperature", "0"], "--temperature: expected a finite number > 0"),
        (["--temperature", "0.5"], "--temperature: expected no --temperature without --samples"),
        (["--samples", "2", "--seed", "-1"], "--seed: expected an integer >= 0"),
        (["--keep", "last"], "--keep: expected no --keep for a run with the construct decoding"),
    ],
)
def test_bad_sampling_flags_are_refused_before_any_work(constructing_run, capsys, flags, words):
    run, instance = constructing_run
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    capsys.readouterr()
    assert main(["place", "--run", str(run), str(instance), *flags]) == 2
    err = capsys.readouterr().err
    assert words in err
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


def test_a_run_that_scores_columns_refuses_samples(tmp_path, capsys):
    from qdt.problem.generator import paper_instance

    run = tmp_path / "run"
    tiny = dict(episodes=2, steps_per_episode=2, batch_size=8, replay_size=64, warmup_transitions=8, hidden=8)
    train(TrainConfig(**tiny, agent="classical"), paper_instance(), run, progress=False)
    path = tmp_path / "paper.json"
    path.write_text(json.dumps(paper_instance().to_dict()))
    capsys.readouterr()
    assert main(["place", "--run", str(run), str(path), "--samples", "4"]) == 2
    assert "--samples: expected 1 for a run whose actors score columns of X" in capsys.readouterr().err
    assert not (run / "place").exists()
