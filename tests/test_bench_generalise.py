"""qdt bench generalise: family-trained policies on unseen instances, beside MILP, greedy and random.

The smoke run goes through the CLI with tiny budgets (its own embedded Ray, as a user's command);
the unit tests around it need no Ray: the unseen sets, rebinding a loaded policy to another
instance, and the quantiles that count an infeasible placement as infinitely far.
"""

import csv
import json
import math
from dataclasses import replace
from typing import get_args

import numpy as np
import pytest

from helpers import benchmark_script
from qdt.cli.main import main
from qdt.errors import QdtInputError
from qdt.experiments.bench.generalise import (
    DEFAULT_AGENTS,
    QUICK_EPISODES,
    QUICK_SEEDS,
    QUICK_SHAPES,
    QUICK_UNSEEN,
    GeneraliseTraining,
    family_spec,
    instance_digest,
    quantiles,
    training_text,
    unseen_instances,
)
from qdt.experiments.sweep import read_results
from qdt.problem.family import Family, parse_family
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import solve
from qdt.rl.config import InputScaling, TrainConfig
from qdt.rl.policy import load_policy
from qdt.rl.train import Trainer, family_instance, load_run_config, train

PNG = b"\x89PNG\r\n\x1a\n"


def _csv(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def _float(text):
    return None if text == "" else float(text)


def _training_digests(family_text, seeds, episodes, copies):
    family = parse_family(family_text)
    return {
        instance_digest(family.draw(seed, episode, copy))
        for seed in seeds
        for episode in range(episodes)
        for copy in range(copies)
    }


@pytest.mark.parametrize("tight", [False, True])
def test_unseen_sets_are_fixed_and_never_a_training_or_validation_draw(tight):
    shape = (4, 2)
    first = [instance_digest(i) for i in unseen_instances(shape, 6, tight)]
    assert first == [instance_digest(i) for i in unseen_instances(shape, 6, tight)]  # pure: same set
    assert len(set(first)) == 6
    assert first[:3] == [instance_digest(i) for i in unseen_instances(shape, 3, tight)]  # a prefix
    # the digest reads the numbers only, so a training draw under another name would be caught
    draw = parse_family(family_spec(shape, tight)).draw(0, 0, 0)
    assert instance_digest(replace(draw, name="renamed", meta={})) == instance_digest(draw)
    v2 = TrainConfig()
    training = _training_digests(family_spec(shape, tight), range(5), 30, v2.envs)
    assert len(training) == 5 * 30 * v2.envs
    assert not training & set(first)
    held_out = {  # the runs' own validation and summary instances (their seeds' held-out draws)
        instance_digest(Family(*shape, tight=tight).held_out(seed, index))
        for seed in range(5)
        for index in range(20)
    }
    assert not held_out & set(first)


@pytest.mark.parametrize(
    "agent, observation", [("classical", "features"), ("quantum", "features"), ("quantum", "user")]
)
def test_rebind_places_like_the_policy_loaded_on_that_instance(tmp_path, agent, observation):
    config = TrainConfig.from_recipe(
        agent=agent, layers=2, family="users=4,servers=2", observation=observation, episodes=2, seed=3
    )
    train(config, family_instance(config), tmp_path / "run", progress=False)
    instances = unseen_instances((4, 2), 3, False)
    policy = load_policy(tmp_path / "run", instance=instances[0])
    states = np.random.default_rng(0).integers(0, 2, size=(5, 4, 2))
    before = policy.scores(states)
    for instance in instances[1:]:
        fresh = load_policy(tmp_path / "run", instance=instance)
        policy.rebind(instance)
        assert policy.instance is instance and policy.placement_model.instance is instance
        assert np.array_equal(policy.scores(states).numpy(), fresh.scores(states).numpy())
        assert np.array_equal(policy.placement(), fresh.placement())
    assert not np.array_equal(policy.scores(states).numpy(), before.numpy())  # the tables did change
    with pytest.raises(QdtInputError, match="the run's size"):
        policy.rebind(unseen_instances((5, 2), 1, False)[0])


def test_quantiles_count_an_infeasible_placement_as_infinitely_far():
    assert quantiles([0.0, 0.1, 0.2, 0.3]) == pytest.approx((0.075, 0.15, 0.225))
    q1, median, q3 = quantiles([0.0, 0.1, 0.2, math.inf])
    assert (q1, median) == pytest.approx((0.075, 0.15)) and q3 == math.inf
    assert quantiles([0.0, 0.1, math.inf]) == (0.05, 0.1, math.inf)  # exactly on 0.1: no NaN
    assert quantiles([math.inf, math.inf, 0.1])[1] == math.inf


def test_bench_generalise_refuses_bad_flags_with_one_line_before_any_work(tmp_path, capsys):
    from qdt.cli import bench
    from qdt.rl.rollout import KEEPS

    assert bench.KEEPS == KEEPS  # the CLI's copies (not imported there, to keep --help fast)
    assert set(bench.INPUT_SCALINGS) == set(get_args(InputScaling))
    folders = ["--out", str(tmp_path / "o"), "--runs", str(tmp_path / "r")]
    for argv, named in (
        (["--unseen", "0"], "--unseen: expected an integer from 1 to 10,000"),
        (["--unseen", "10001"], "--unseen: expected an integer from 1 to 10,000"),
        (["--seeds", "0"], "--seeds: expected an integer >= 1"),
        (["--quantum-episodes", "0"], "--quantum-episodes: expected an integer >= 1"),
        (["--shapes", "8x2,8x2"], "--shapes: expected distinct shapes"),
        (["--shapes", "1024x64"], "--shapes 1024x64: expected an instance whose user-by-user actor"),
        (
            ["--recipe", "v2", "--shapes", "1024x64", "--imitation-episodes", "0"],
            "--shapes 1024x64: expected",
        ),
        (["--imitation-episodes", "151"], "--imitation-episodes: expected at most --episodes = 150"),
        (["--imitation-episodes", "-1"], "--imitation-episodes: expected an integer >= 0"),
        (["--max-critic-qubits", "13"], "--max-critic-qubits: expected an integer from 1 to 12"),
        (["--recipe", "v9"], "--recipe: expected one of"),
        (
            ["--recipe", "v2", "--ppo-credit", "both"],
            "--ppo-credit: expected episode with recipe v2 (its learner",
        ),
        (["--quick", "--shapes", "4x2"], "not allowed with argument --quick"),
        (["--unseen", "x"], "argument --unseen: invalid int value"),
        (["--workers", "0"], "--workers: expected an integer >= 1"),
        (["--label-gap", "0.01"], "--label-gap: expected 0 unless --construct"),
        (["--construct-order", "constrained"], "--construct-order: expected sure unless --construct"),
        (["--construct-order", "fewest"], "argument --construct-order: invalid choice"),
        (["--construct-guard", "completion"], "--construct-guard: expected none unless --construct"),
        (["--construct-guard", "search"], "argument --construct-guard: invalid choice"),
        (["--keep", "first"], "argument --keep: invalid choice"),
        (["--input-scaling", "scale"], "argument --input-scaling: invalid choice"),
        (["--construct", "--keep", "last"], "--keep: expected no --keep with --construct"),
        (["--agents", "qaoa"], "--agents: expected distinct agents from classical, quantum"),
        (["--agents", "classical,classical"], "--agents: expected distinct agents"),
        (
            ["--construct", "--tight", "--label-gap", "0.5"],
            "--label-gap: expected a finite number in [0, 0.1]",
        ),
        (["--milp-gap", "0.5"], "--milp-gap: expected a share in [0, 0.1]"),
        (["--milp-gap", "-0.01"], "--milp-gap: expected a share in [0, 0.1]"),
        (["--milp-gap", "x"], "argument --milp-gap: invalid float value"),
        (["--lr-quantum", "0"], "--lr-quantum: expected a finite learning rate > 0"),
        (["--lr-quantum", "inf"], "--lr-quantum: expected a finite learning rate > 0"),
        (["--lr-quantum", "x"], "argument --lr-quantum: invalid float value"),
    ):
        try:
            status = main(["bench", "generalise", *argv, *folders])
        except SystemExit as stop:  # argparse's own refusals
            status = stop.code
        assert status == 2, argv
        err = capsys.readouterr().err
        assert named in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()


def test_baselines_within_a_milp_gap_are_scored_against_its_lower_bound():
    """--milp-gap: each instance's gaps are to HiGHS's lower bound, never below the gaps to the
    optimum and within the MILP's own proof of them; 0 scores against proven optima as before."""
    from qdt.experiments.bench.generalise import solve_baselines

    looser = 0
    for index, instance in enumerate(unseen_instances((24, 6), 4, True)):
        model = PlacementModel(instance)
        exact = solve_baselines(model, index, "d", 60.0)
        bounded = solve_baselines(model, index, "d", 60.0, milp_gap=0.02)
        assert not exact.bounded and exact.reference_s == exact.optimum_s == exact.bound_s
        assert exact.milp_gap == 0.0 and exact.milp_ms > 0
        assert bounded.bounded and bounded.milp_status == "feasible" and bounded.optimum_s is None
        assert bounded.reference_s == bounded.bound_s <= exact.optimum_s * (1 + 1e-9)
        assert 0.0 <= bounded.milp_gap <= 0.02 / (1 - 0.02) + 1e-9 and bounded.milp_ms > 0
        for name in ("greedy_gap", "random_gap"):
            tight_gap, loose_gap = getattr(exact, name), getattr(bounded, name)
            assert (tight_gap is None) == (loose_gap is None)
            if tight_gap is not None:
                assert loose_gap >= tight_gap - 1e-12
                looser += loose_gap > tight_gap + 1e-9
    assert looser  # the bound sat below the optimum on some of them
    with pytest.raises(QdtInputError, match="rel_gap"):  # the CLI refuses it first (--milp-gap)
        solve_baselines(PlacementModel(instance), 0, "d", 60.0, milp_gap=1.5)


def test_only_the_quantum_rollout_runs_scale_their_inputs():
    """The bench's quantum rollout runs read their inputs through a trained scale and shift; the
    classical runs' cells are the same with or without it, and ``input_scaling="none"`` gives the
    quantum cells of the bench before it (config.json records no input_scaling)."""
    classical, quantum = DEFAULT_AGENTS
    scaled, unscaled = GeneraliseTraining(), GeneraliseTraining(input_scaling="none")
    for shape in ((8, 2), (64, 8)):
        assert scaled.config(quantum, 1, shape).input_scaling == "affine"
        assert scaled.config(classical, 1, shape).to_dict() == unscaled.config(classical, 1, shape).to_dict()
        assert "input_scaling" not in unscaled.config(quantum, 1, shape).to_dict()
        assert scaled.config(quantum, 1, shape).to_dict()["input_scaling"] == "affine"
    constructing = GeneraliseTraining(construct=True, tight=True)
    assert constructing.config(quantum, 0, (8, 2)).input_scaling == "none"
    assert replace(constructing, input_scaling="affine").config(quantum, 0, (8, 2)).input_scaling == "affine"


def test_a_circuit_learning_rate_reaches_only_the_quantum_runs():
    """--lr-quantum sets the quantum runs' circuit learning rate and nothing else: the classical
    cells are the same, and without it the quantum cells are those of the bench before it."""
    classical, quantum = DEFAULT_AGENTS
    plain = GeneraliseTraining(construct=True, tight=True, input_scaling="affine")
    faster = replace(plain, lr_quantum=0.05)
    assert faster.config(quantum, 2, (64, 8)).lr_quantum == 0.05
    assert plain.config(quantum, 2, (64, 8)).lr_quantum == 0.01  # the recipe's rate
    assert faster.config(classical, 2, (64, 8)).to_dict() == plain.config(classical, 2, (64, 8)).to_dict()
    assert "quantum lr_quantum 0.05" in training_text(faster)
    assert "lr_quantum" not in training_text(plain)


def _run_dir(runs, label, seed, users):
    """The run folder of one (agent label, seed, N) of the bench, from its sweep table."""
    agent = "classical" if label == "classical" else "quantum"
    (found,) = [
        runs / r["run_dir"]
        for r in read_results(runs / "results.csv")
        if r["agent"] == agent
        and r["seed"] == int(seed)
        and json.loads((runs / r["run_dir"] / "config.json").read_text())["family"]["users"] == users
    ]
    return found


def _md_row(text, first, second):
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:2] == [first, second]:
            return cells
    raise AssertionError(f"no row {first} {second} in:\n{text}")


def _check_outputs(out, runs, shapes, seeds, unseen, tight=False, observation="user", scaling="affine"):
    """What every smoke run must write (the quantum runs' actors reading their inputs by
    ``scaling``, the classical ones never scaled); returns the CSV rows."""
    rows = _csv(out / "generalise.csv")
    labels = ("classical", "quantum L=6")
    assert len(rows) == len(shapes) * len(labels) * seeds * unseen
    results = {r["cell_id"]: r for r in read_results(runs / "results.csv")}
    assert len(results) == len(shapes) * len(labels) * seeds and all(
        r["status"] == "ok" for r in results.values()
    )
    md = (out / "generalise.md").read_text()
    for n, m in shapes:
        mine = [r for r in rows if (int(r["users"]), int(r["servers"])) == (n, m)]
        expected = [instance_digest(i) for i in unseen_instances((n, m), unseen, tight)]
        by_run: dict = {}
        for r in mine:
            by_run.setdefault((r["agent"], r["seed"]), []).append(r)
        assert len(by_run) == len(labels) * seeds
        for run_rows in by_run.values():  # the same unseen instances, in order, for every agent and seed
            assert [r["instance_digest"] for r in run_rows] == expected
            assert [int(r["instance"]) for r in run_rows] == list(range(unseen))
        for r in mine:
            assert float(r["decision_ms"]) > 0
            optimum = _float(r["optimum_total_latency_s"])
            assert (optimum is not None) == (r["milp_status"] == "optimal")
            if optimum is None:
                assert r["gap"] == r["greedy_gap"] == r["milp_ms"] == ""
                continue
            assert float(r["milp_ms"]) > 0
            if r["feasible"] == "True":
                assert float(r["gap"]) == pytest.approx((float(r["total_latency_s"]) - optimum) / optimum)
                assert float(r["gap"]) >= -1e-9
            else:
                assert r["gap"] == ""
            assert (r["untrained_gap"] != "") == (r["untrained_feasible"] == "True")
            if r["keep"] == "best":  # the best placement the rollout visited: never worse than its last
                assert r["feasible"] == "True" or r["plain_feasible"] == "False"
                if r["plain_feasible"] == "True":
                    assert float(r["gap"]) <= float(r["plain_gap"]) + 1e-12
        # the runs trained on draws of this family, never on one of these instances
        for agent, seed in by_run:
            config, _ = load_run_config(_run_dir(runs, agent, seed, n))
            assert config.family == family_spec((n, m), tight) and config.observation == observation
            assert config.imitation_episodes == config.episodes and config.learner == "ppo"
            assert config.input_scaling == (scaling if config.agent == "quantum" else "none")
            drawn = _training_digests(config.family, [config.seed], config.episodes, config.envs)
            assert not drawn & set(expected)
        # the table's feasible share: of the instances the MILP solved, pooled over seeds
        for agent in labels:
            solved = [r for r in mine if r["agent"] == agent and r["milp_status"] == "optimal"]
            share = sum(r["feasible"] == "True" for r in solved) / len(solved)
            assert 0.0 <= share <= 1.0
            assert _md_row(md, f"{n}×{m}", agent)[4] == f"{100 * share:.1f}%"
    assert "IQM of seed medians" in md and "MILP/decision" in md
    assert f"quantum input_scaling {scaling}" in md
    assert (out / "generalise.png").read_bytes()[:8] == PNG
    assert (out / ".qdt-owner").read_text() == "qdt bench generalise\n"
    return rows


def test_bench_generalise_smoke_via_the_cli(tmp_path, capsys):
    out, runs = tmp_path / "out", tmp_path / "runs"
    argv = ["bench", "generalise", "--quick", "--seeds", "1", "--episodes", "2", "--unseen", "4"]
    argv += ["--workers", "2", "--out", str(out), "--runs", str(runs)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "4 run(s) trained" in printed and "MILP/decision" in printed and "Targets (issue 17" in printed
    rows = _check_outputs(out, runs, QUICK_SHAPES, 1, 4)
    assert {r["keep"] for r in rows} == {"best"}  # the default: a rollout's best visited placement
    assert "last placement" in (out / "generalise.md").read_text()

    # baselines recomputed for one row: greedy's gap, and the untrained decoding of that seed
    row = next(r for r in rows if r["agent"] == "quantum L=6" and r["milp_status"] == "optimal")
    shape = (int(row["users"]), int(row["servers"]))
    model = PlacementModel(unseen_instances(shape, 4, False)[int(row["instance"])])
    optimum = float(row["optimum_total_latency_s"])
    assert optimum == pytest.approx(solve(model, "milp").total_latency_s)
    greedy = solve(model, "greedy")
    assert _float(row["greedy_gap"]) == pytest.approx((greedy.total_latency_s - optimum) / optimum)
    config, _ = load_run_config(_run_dir(runs, row["agent"], row["seed"], shape[0]))
    untrained = model.evaluate(Trainer(config, family_instance(config)).greedy_placement(model, keep="best"))
    assert (row["untrained_feasible"] == "True") == untrained.feasible
    if untrained.feasible:
        assert float(row["untrained_gap"]) == pytest.approx((untrained.total_latency_s - optimum) / optimum)

    # one agent: its runs are the same cells (--input-scaling changes only the quantum runs), so
    # nothing is trained again and only it is placed; with --keep last each decision is the rollout's
    # last placement, the first call's "last placement"
    argv = ["bench", "generalise", "--quick", "--seeds", "1", "--episodes", "2", "--unseen", "4"]
    argv += ["--agents", "classical", "--out", str(tmp_path / "classical"), "--runs", str(runs)]
    argv += ["--keep", "last", "--input-scaling", "none"]
    assert main(argv) == 0
    assert "0 run(s) trained" in capsys.readouterr().out
    with (tmp_path / "classical" / "generalise.csv").open(newline="", encoding="utf-8") as handle:
        alone = list(csv.DictReader(handle))
    assert {r["agent"] for r in alone} == {"classical"}
    ours = [r for r in rows if r["agent"] == "classical"]
    assert [(r["seed"], r["instance"], r["gap"], r["keep"]) for r in alone] == [
        (r["seed"], r["instance"], r["plain_gap"], "last") for r in ours
    ]
    assert "last placement" not in (tmp_path / "classical" / "generalise.md").read_text()


@pytest.mark.slow
def test_bench_generalise_quick_as_ci_would_run_it(tmp_path, capsys):
    out, runs = tmp_path / "out", tmp_path / "runs"
    argv = ["bench", "generalise", "--quick", "--workers", "2", "--out", str(out), "--runs", str(runs)]
    assert main(argv) == 0
    assert f"{len(QUICK_SHAPES) * 2 * QUICK_SEEDS} run(s) trained" in capsys.readouterr().out
    rows = _check_outputs(out, runs, QUICK_SHAPES, QUICK_SEEDS, QUICK_UNSEEN)
    # the same command again: no run trained, every summary untouched, the same unseen instances
    stamps = {p: p.stat().st_mtime_ns for p in runs.glob("cells/*/summary.json")}
    assert len(stamps) == len(QUICK_SHAPES) * 2 * QUICK_SEEDS
    assert main(argv) == 0
    assert "0 run(s) trained" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in runs.glob("cells/*/summary.json")} == stamps
    again = _csv(out / "generalise.csv")
    assert [r["instance_digest"] for r in again] == [r["instance_digest"] for r in rows]
    assert [r["optimum_total_latency_s"] for r in again] == [r["optimum_total_latency_s"] for r in rows]

    assert {int(r["episodes"]) for r in rows} == {QUICK_EPISODES}


def test_bench_generalise_construct_smoke_via_the_cli(tmp_path, capsys):
    """--construct: every run constructs user by user and learns by imitation in every episode; its
    untrained baseline is the same construction fed the untrained actor."""
    out, runs = tmp_path / "out", tmp_path / "runs"
    argv = ["bench", "generalise", "--quick", "--construct", "--tight", "--seeds", "1", "--episodes", "2"]
    argv += ["--label-gap", "0.01", "--construct-order", "constrained", "--construct-guard", "completion"]
    argv += ["--unseen", "4", "--workers", "2", "--out", str(out), "--runs", str(runs)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "4 run(s) trained" in printed
    markdown = (out / "generalise.md").read_text()
    assert "constructing user by user" in markdown
    # its setting line describes a construction, not the score-then-decode rollout or ppo's credit
    assert "N steps from the empty placement" in markdown and "the start placement" not in markdown
    assert "--ppo-credit" not in markdown and "label_gap 0.01" in markdown
    assert "construct_order constrained" in markdown and "construct_guard completion" in markdown
    assert "each step kept completable" in markdown
    rows = _check_outputs(out, runs, QUICK_SHAPES, 1, 4, tight=True, observation="placement", scaling="none")
    assert {r["keep"] for r in rows} == {""}  # a construction keeps no rollout placement
    row = next(r for r in rows if r["agent"] == "classical" and r["milp_status"] == "optimal")
    config, _ = load_run_config(_run_dir(runs, row["agent"], row["seed"], int(row["users"])))
    assert (config.decode, config.observation, config.imitation_episodes) == ("construct", "placement", 2)
    assert (config.label_gap, config.construct_order, config.construct_guard) == (
        0.01,
        "constrained",
        "completion",
    )
    model = PlacementModel(unseen_instances((int(row["users"]), 2), 4, True)[int(row["instance"])])
    untrained = model.evaluate(Trainer(config, family_instance(config)).greedy_placement(model))
    assert (row["untrained_feasible"] == "True") == untrained.feasible
    # the same runs and decisions scored against the MILP's lower bound where it proves a placement
    # within 2% (--milp-gap): each gap never below the gap to the optimum, the table says so
    bound_out = tmp_path / "bounded"
    argv[argv.index(str(out))] = str(bound_out)
    assert main([*argv, "--milp-gap", "0.02"]) == 0
    assert "0 run(s) trained in this call" in capsys.readouterr().out
    markdown = (bound_out / "generalise.md").read_text()
    assert "gap to bound median" in markdown and "MILP within 2% proven" in markdown
    assert "median gap to the MILP's lower bound ≤ 2%" in markdown
    bounded = _csv(bound_out / "generalise.csv")
    exact = {(r["agent"], r["users"], r["instance"]): r for r in rows}
    assert len(bounded) == len(rows)
    for r in bounded:
        before = exact[(r["agent"], r["users"], r["instance"])]
        assert r["total_latency_s"] == before["total_latency_s"]  # the same decision
        if before["milp_status"] == "infeasible":  # proven so, at any gap: nothing to score against
            assert (r["milp_status"], r["gap_to_bound"], r["gap"]) == ("infeasible", "False", "")
            continue
        assert r["gap_to_bound"] == "True" and r["milp_status"] == "feasible"
        bound, optimum = float(r["lower_bound_total_latency_s"]), float(before["optimum_total_latency_s"])
        assert bound <= optimum * (1 + 1e-9) and 0.0 <= float(r["milp_gap"]) <= 0.02 / 0.98 + 1e-9
        if r["feasible"] == "True":
            assert float(r["gap"]) == pytest.approx((float(r["total_latency_s"]) - bound) / bound)
            assert float(r["gap"]) >= float(before["gap"]) - 1e-12
        else:
            assert r["gap"] == before["gap"] == ""
    argv[argv.index(str(bound_out))] = str(out)
    # the same runs (reused, not trained again) decided by the best of 32 sampled constructions: never
    # worse than each run's plain construction, which the rows and the table keep beside it
    sampled_out = tmp_path / "sampled"
    argv[argv.index(str(out))] = str(sampled_out)
    assert main([*argv, "--samples", "32", "--temperature", "1.0"]) == 0
    printed = capsys.readouterr().out
    assert "0 run(s) trained in this call" in printed
    markdown = (sampled_out / "generalise.md").read_text()
    assert "one construction" in markdown and "best of 32 constructions" in markdown
    sampled = _csv(sampled_out / "generalise.csv")
    plain = {(r["agent"], r["users"], r["instance"]): r for r in rows}
    assert len(sampled) == len(rows) and {r["samples"] for r in sampled} == {"32"}
    better = 0
    for r in sampled:
        before = plain[(r["agent"], r["users"], r["instance"])]
        assert r["plain_gap"] == before["gap"]  # the plain construction, as the first bench decided
        if before["gap"] and r["gap"]:
            assert float(r["gap"]) <= float(before["gap"]) + 1e-12
            better += float(r["gap"]) < float(before["gap"])
        assert r["feasible"] == "True" or before["feasible"] == "False"
    assert better > 0
    # the same runs, each decision ended with the local search, and so every baseline: never worse than
    # the plain construction, exactly its local search, and the rows and the table say so
    searched_out = tmp_path / "searched"
    argv[argv.index(str(sampled_out))] = str(searched_out)
    assert main([*argv, "--local-search"]) == 0
    assert "0 run(s) trained in this call" in capsys.readouterr().out
    assert "ended with the local search" in (searched_out / "generalise.md").read_text()
    searched = _csv(searched_out / "generalise.csv")
    assert len(searched) == len(rows) and {r["local_search"] for r in searched} == {"True"}
    improved = 0
    for r in searched:
        before = plain[(r["agent"], r["users"], r["instance"])]
        if before["feasible"] == "True":
            assert r["feasible"] == "True"
            assert float(r["total_latency_s"]) <= float(before["total_latency_s"]) + 1e-9
            improved += float(r["total_latency_s"]) < float(before["total_latency_s"]) - 1e-9
        if r["greedy_gap"] and before["greedy_gap"]:
            assert float(r["greedy_gap"]) <= float(before["greedy_gap"]) + 1e-12
    assert improved > 0
    argv[argv.index(str(searched_out))] = str(sampled_out)
    # benchmarks/sampling_curve.py on the same runs: K = 1 is each run's plain construction, exactly as
    # the bench placed it; K = 8 never worse; its table, csv and figure are written
    curve = tmp_path / "curve"
    sampling_curve = benchmark_script("sampling_curve")
    argv = ["--runs", str(runs), "--bench", str(out), "--out", str(curve), "--samples", "1,8", "--timed", "2"]
    with pytest.raises(SystemExit, match="--shape: expected one of"):
        sampling_curve.main(argv)
    assert sampling_curve.main([*argv, "--shape", "8x2"]) == 0
    capsys.readouterr()
    points = _csv(curve / "sampling.csv")
    assert {r["samples"] for r in points} == {"1", "8"} and (curve / "sampling.png").read_bytes()[:8] == PNG
    assert "| classical | 8 |" in (curve / "sampling.md").read_text()
    for point in points:
        placed = plain[(point["agent"], "8", point["instance"])]
        one = next(
            p
            for p in points
            if (p["agent"], p["instance"], p["samples"]) == (point["agent"], point["instance"], "1")
        )
        if point["samples"] == "1":
            assert math.isclose(_float(point["gap"]), _float(placed["gap"]) if placed["gap"] else math.inf)
        else:
            assert _float(point["gap"]) <= _float(one["gap"]) + 1e-12
    # against the bench that stopped the MILP at 2% (no optimum proven): every instance scored against
    # the MILP's lower bound, as that bench scored it, and the table and figure say so
    bound_curve = tmp_path / "bound-curve"
    argv[argv.index(str(out))], argv[argv.index(str(curve))] = str(bound_out), str(bound_curve)
    assert sampling_curve.main([*argv, "--shape", "8x2", "--samples", "1"]) == 0
    capsys.readouterr()
    assert "to the MILP's lower bound" in (bound_curve / "sampling.md").read_text()
    to_bound = {(r["agent"], r["instance"]): r for r in bounded if r["users"] == "8"}
    scored = 0
    for point in _csv(bound_curve / "sampling.csv"):
        placed = to_bound[(point["agent"], point["instance"])]
        assert math.isclose(_float(point["gap"]), _float(placed["gap"]) if placed["gap"] else math.inf)
        scored += 1
    assert scored == sum(r["gap_to_bound"] == "True" for r in to_bound.values())
    # --local-search: K = 1 is each run's plain construction after the local search, as the searched
    # bench placed it
    searched_curve = tmp_path / "searched-curve"
    argv[argv.index(str(bound_out))], argv[argv.index(str(bound_curve))] = str(out), str(searched_curve)
    assert sampling_curve.main([*argv, "--shape", "8x2", "--samples", "1", "--local-search"]) == 0
    capsys.readouterr()
    assert "each improved by the local search" in (searched_curve / "sampling.md").read_text()
    by_search = {(r["agent"], r["instance"]): r for r in searched if r["users"] == "8"}
    for point in _csv(searched_curve / "sampling.csv"):
        placed = by_search[(point["agent"], point["instance"])]
        assert point["local_search"] == "True"
        assert math.isclose(_float(point["gap"]), _float(placed["gap"]) if placed["gap"] else math.inf)


def test_the_figure_names_a_baseline_that_placed_nothing(tmp_path, monkeypatch):
    """On the tight family greedy may place no instance: its gaps have nothing to draw, and the
    legend still names it with its infeasible count."""
    from qdt.experiments.bench import generalise

    figures = []
    monkeypatch.setattr(generalise, "save_figure", lambda fig, path: figures.append(fig))
    baselines = {
        (4, 2): [
            generalise.Baseline(k, f"d{k}", "optimal", 1.0, 10.0, None, 0.1, 0.1 + 0.01 * k) for k in range(3)
        ]
    }
    rows = [
        {"users": 4, "servers": 2, "agent": "classical", "instance": k, "gap": 0.01 * k} for k in range(3)
    ]
    summary = [{"users": 4, "servers": 2, "agent": "classical", "decision_ms_median": 1.0}]
    generalise.plot_generalise(tmp_path / "g.png", rows, baselines, summary, "setting")
    labels = [text.get_text() for text in figures[0].axes[0].get_legend().get_texts()]
    assert "greedy (3/3 infeasible)" in labels and "classical" in labels and "random" in labels


def test_the_progress_bar_tells_an_unproven_optimum_from_an_infeasible_run():
    from qdt.cli.bench import _gap_text

    assert _gap_text({"gap": 0.0123, "feasible": True, "optimum_status": "optimal"}) == "gap 1.2%"
    assert _gap_text({"gap": None, "feasible": True, "optimum_status": "feasible"}) == (
        "feasible, no optimum proven"
    )
    assert _gap_text({"gap": None, "feasible": False, "optimum_status": "optimal"}) == "infeasible"
