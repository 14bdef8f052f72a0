"""qdt bench paper|noise|shots|instances|scale on the sweep engine (tiny budgets).

The CLI tests start their own embedded Ray (as a user's command does); the Python-API tests
after them share one Ray session.
"""

import csv
import json
import logging

import numpy as np
import pytest
import ray

from qdt.cli.main import main
from qdt.errors import QdtInputError
from qdt.experiments.bench.instances import run_instances_bench
from qdt.experiments.bench.paper import PAPER_AGENTS, paper_runs
from qdt.experiments.bench.scale import DEFAULT_AGENTS, QUICK_SHAPES, run_scale_bench
from qdt.experiments.sweep import cell_dir, read_results
from qdt.experiments.sweep.cell import read_attempts, read_metrics_rewards
from qdt.rl.config import DEFAULT_RECIPE

PNG = b"\x89PNG\r\n\x1a\n"


def _csv(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def _md_row(text, first_cell):
    """The cells of the Markdown table row starting with ``first_cell``."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n{text}")


def _rows_by_key(runs_dir):
    rows = read_results(runs_dir / "results.csv")
    assert len(rows) == len({r["cell_id"] for r in rows}), "a run has two rows"
    return {
        ("classical" if r["agent"] == "classical" else f"quantum L={r['layers']}", r["seed"]): r for r in rows
    }


def test_bench_paper_writes_its_outputs_names_a_failed_run_reuses_finished_ones_and_retries(tmp_path, capsys):
    out, runs = tmp_path / "out", tmp_path / "runs"
    argv = ["bench", "paper", "--episodes", "10", "--seeds", "2", "--no-timing", "--workers", "2"]
    argv += ["--out", str(out), "--runs", str(runs)]
    # A file where one run's folder should be: that run fails (after its retries), the others finish.
    blocked = next(r for r in paper_runs(PAPER_AGENTS, 2, 10) if r.key == ("quantum L=3", 1))
    blocked_dir = cell_dir(runs, blocked.cell.cell_id)
    blocked_dir.parent.mkdir(parents=True)
    blocked_dir.write_text("not a folder")

    assert main(argv) == 1
    printed = capsys.readouterr().out
    assert (
        "1 training run(s) failed" in printed
        and f"quantum L=3 seed 1 (cell {blocked.cell.cell_id})" in printed
    )
    assert "FileExistsError" in printed and "8 run(s) trained" in printed

    rows = _rows_by_key(runs)
    assert len(rows) == 8 and [k for k, r in rows.items() if r["status"] != "ok"] == [("quantum L=3", 1)]
    assert rows[("quantum L=3", 1)]["attempts"] == 3  # retried twice, then recorded as failed
    for row in rows.values():
        if row["status"] == "ok":
            assert row["episodes"] == 10 and row["run_dir"].startswith("cells/")
            assert len(read_metrics_rewards(runs / row["run_dir"])) == 10

    # Table 3: every agent, the failed run counted as such, feasibility from the rows.
    table = _csv(out / "table3.csv")
    assert [r["user"] for r in table] == ["user 1", "user 2", "user 3", "user 4", "average"]
    for spec in PAPER_AGENTS:
        assert {f"{spec.label} mean", f"{spec.label} lo95", f"{spec.label} hi95"} <= set(table[0])
    md = (out / "table3.md").read_text()
    header = _md_row(md, "user")
    feasible, failed = _md_row(md, "feasible runs"), _md_row(md, "failed runs")
    for spec in PAPER_AGENTS:
        column = header.index(spec.label)
        ok = [rows[(spec.label, s)] for s in range(2) if rows[(spec.label, s)]["status"] == "ok"]
        assert feasible[column] == f"{sum(r['feasible'] for r in ok)}/2"
        assert failed[column] == ("1/2" if spec.label == "quantum L=3" else "0/2")
        if ok and any(r["feasible"] for r in ok):
            first = [r["per_user_latency_s"][0] for r in ok if r["feasible"]]
            assert float(table[0][f"{spec.label} mean"]) == pytest.approx(sum(first) / len(first))
    assert blocked.cell.cell_id in md and "FileExistsError" in md

    # Fig. 7 from each finished run's metrics.jsonl: means over both seeds, one seed for L=3.
    rewards = _csv(out / "rewards.csv")
    assert sorted({r["agent"] for r in rewards}) == sorted(s.label for s in PAPER_AGENTS)
    for label, seeds in (("classical", (0, 1)), ("quantum L=3", (0,))):
        curves = [read_metrics_rewards(runs / rows[(label, s)]["run_dir"]) for s in seeds]
        mine = [r for r in rewards if r["agent"] == label]
        assert len(mine) == 10
        for episode, row in enumerate(mine):
            values = [curve[episode] for curve in curves]
            assert float(row["reward_mean_over_seeds"]) == pytest.approx(sum(values) / len(values))
            assert float(row["min"]) == pytest.approx(min(values))
    assert (out / "fig7.png").read_bytes()[:8] == PNG
    assert "8 runs × 10 episodes" in (out / "timing.md").read_text()
    assert (out / ".qdt-owner").read_text() == "qdt bench paper\n"  # what lets the rerun below write here

    # The same command again: nothing is trained, the failed run stays recorded.
    stamps = {
        key: (runs / r["run_dir"] / "summary.json").stat().st_mtime_ns
        for key, r in rows.items()
        if r["status"] == "ok"
    }
    assert main(argv) == 1
    printed = capsys.readouterr().out
    assert "0 run(s) trained" in printed and "quantum L=3 seed 1" in printed
    assert _rows_by_key(runs) == rows
    for key, stamp in stamps.items():
        assert (runs / rows[key]["run_dir"] / "summary.json").stat().st_mtime_ns == stamp
        assert len(read_attempts(runs / rows[key]["run_dir"])) == 1

    # Cause removed, --retry-failed: only that run is trained; the table is complete.
    blocked_dir.unlink()
    assert main([*argv, "--retry-failed"]) == 0
    printed = capsys.readouterr().out
    assert "1 run(s) trained" in printed and "failed" not in printed
    rows = _rows_by_key(runs)
    assert all(r["status"] == "ok" for r in rows.values()) and len(rows) == 8
    for key, stamp in stamps.items():
        assert (runs / rows[key]["run_dir"] / "summary.json").stat().st_mtime_ns == stamp
    assert "failed runs" not in (out / "table3.md").read_text()
    assert sum(r["agent"] == "quantum L=3" for r in _csv(out / "rewards.csv")) == 10


def test_bench_rejects_bad_options_and_unreachable_ray_before_training(tmp_path, capsys):
    base = ["bench", "paper", "--episodes", "5", "--seeds", "1", "--no-timing", "--out", str(tmp_path / "o")]
    runs = ["--runs", str(tmp_path / "r")]
    assert main([*base, *runs, "--workers", "0"]) == 2
    assert main([*base, *runs, "--ray-address", "127.0.0.1:1"]) == 2
    assert "--ray-address" in capsys.readouterr().err
    assert not (tmp_path / "r" / "cells").exists()  # nothing trained
    assert main(["bench", "shots", "--shots-list", "8,x", "--runs", str(tmp_path / "s")]) == 2
    assert main(["bench", "scale", "--shapes", "8x2,8x2", "--runs", str(tmp_path / "s")]) == 2
    assert main(["bench", "instances", "--shapes", "4x2,4x2", "--runs", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "--shots-list" in err and err.count("--shapes") == 2
    for argv, named in (
        (["--max-critic-qubits", "13"], "--max-critic-qubits: expected an integer from 1 to 12"),
        (["--recipe", "v9"], "--recipe: expected one of"),
        (["--ppo-credit", "user"], "--ppo-credit: expected episode with recipe v5 (its learner is elite"),
        (["--recipe", "v3", "--ppo-credit", "joint"], "--ppo-credit: expected one of episode, user, both"),
        (["--shapes", "2000x2"], "--shapes"),
        (["--agents", "classical,qaoa"], "--agents: expected distinct agents from classical, quantum"),
        (["--recipe", "v4", "--ppo-credit", "user"], "recipe v4 (its learner is elite"),
    ):
        assert main(["bench", "scale", *argv, "--runs", str(tmp_path / "s")]) == 2
        assert named in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
    assert not (tmp_path / "s").exists()


def test_bench_noise_refuses_runtime_devices_it_cannot_run_before_training(tmp_path, capsys):
    base = ["bench", "noise", "--seeds", "1", "--episodes", "5", "--out", str(tmp_path / "o")]
    base += ["--runs", str(tmp_path / "r")]
    for value, named in (
        ("aer", "expected ibm profiles of fake devices"),
        ("fake_nowhere", "expected ibm profiles of fake devices"),
        ("ibm_torino", "expected fake devices in local testing mode"),
        ("none,fake_torino", "expected comma-separated ibm profiles of fake devices"),
        (",", "expected comma-separated ibm profiles of fake devices"),
    ):
        assert main([*base, "--runtime-devices", value]) == 2
        assert f"--runtime-devices: {named}" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "o").exists()  # nothing trained or written
    with pytest.raises(SystemExit):
        main(["bench", "noise", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--runtime-devices D1,D2,...|none" in text and "(default fake_torino,fake_fractional)" in text
    assert "'none' skips them" in text and "mthree" in text


@pytest.mark.slow  # about 40-70 s: the default run stays under 10 minutes
def test_bench_noise_smoke(tmp_path, capsys):
    out, runs = tmp_path / "out", tmp_path / "runs"
    argv = ["bench", "noise", "--seeds", "1", "--episodes", "5", "--devices", "fake_manila"]
    argv += ["--runtime-devices", "fake_fractional"]  # the 5-qubit device, fractional gates on and off
    assert main([*argv, "--out", str(out), "--runs", str(runs)]) == 0
    assert "2 run(s) trained" in capsys.readouterr().out
    trained = {(r["backend"], r["noise"]) for r in read_results(runs / "results.csv") if r["status"] == "ok"}
    assert trained == {("statevector", None), ("density", "depol-1e-3")}
    rows = _csv(out / "noise.csv")
    # per policy: the depolarizing x readout grid, one Aer device, 2 Runtime variants x raw/mthree
    assert len(rows) == 2 * (7 * 3 + 1 + 2 * 2)
    assert {r["policy"] for r in rows} == {"noiseless-trained", "noise-aware"}
    assert sum(r["model"] == "fake_manila" and r["executor"] == "aer" for r in rows) == 2
    for row in rows:
        assert 0.0 <= float(row["feasible_rate"]) <= 1.0 and 0.0 <= float(row["action_agreement"]) <= 1.0
        assert 0.0 <= float(row["decision_agreement"]) <= 1.0
    noiseless = [
        r for r in rows if r["model"] == "parametric" and float(r["p2"]) == 0 and r["readout"] == "0.0"
    ]
    assert [float(r["action_agreement"]) for r in noiseless] == [1.0, 1.0]  # the density run = statevector
    assert [float(r["decision_agreement"]) for r in noiseless] == [1.0, 1.0]

    runtime = [r for r in rows if r["executor"] == "ibm"]
    assert {(r["model"], r["fractional_gates"], r["mitigation"]) for r in runtime} == {
        (model, on, readout)
        for model, on in (("fake_fractional (rx)", "True"), ("fake_fractional (no rx)", "False"))
        for readout in ("raw", "mthree")
    }
    depth = {r["fractional_gates"]: int(r["isa_depth"]) for r in runtime}
    assert depth["True"] < depth["False"]  # native rx: the L = 6 actor's ISA circuit is shallower
    # Raw and mitigated come from one job per (policy, device): same depth, same job time; the
    # mitigated TVD to the exact probabilities stays within shot noise of the raw one on average
    # (2-qubit actors, 1024 shots: 0.5 sqrt(4 / 1024), see tests/test_runtime_devices.py).
    pairs = {}
    for r in runtime:
        pairs.setdefault((r["policy"], r["model"]), {})[r["mitigation"]] = r
    assert len(pairs) == 4
    for pair in pairs.values():
        assert pair["raw"]["per_decision_s"] == pair["mthree"]["per_decision_s"]
        assert pair["raw"]["tvd"] != pair["mthree"]["tvd"]  # mitigation changed the probabilities
    raw_tvd = np.mean([float(p["raw"]["tvd"]) for p in pairs.values()])
    mitigated_tvd = np.mean([float(p["mthree"]["tvd"]) for p in pairs.values()])
    assert 0 < mitigated_tvd <= raw_tvd + 0.5 * (4 / 1024) ** 0.5

    text = (out / "noise.md").read_text()
    assert "fake_manila" in text and "IBM Runtime fake devices" in text
    assert (
        _md_row(text.split("IBM Runtime fake devices")[1], "noiseless-trained")[1] == "fake_fractional (rx)"
    )
    assert "M3, calibrated in the job" in text
    assert (out / "noise.png").read_bytes()[:8] == PNG


@pytest.mark.slow  # about 30-60 s: the default run stays under 10 minutes
def test_bench_shots_smoke(tmp_path, capsys):
    out, runs = tmp_path / "out", tmp_path / "runs"
    argv = ["bench", "shots", "--seeds", "1", "--episodes", "5", "--shots-list", "8,64", "--repeats", "2"]
    assert main([*argv, "--out", str(out), "--runs", str(runs)]) == 0
    assert "1 run(s) trained" in capsys.readouterr().out
    rows = _csv(out / "shots.csv")
    assert [(r["mode"], r["shots"]) for r in rows] == [
        ("exact", ""),
        ("sampled", "8"),
        ("gaussian", "8"),
        ("sampled", "64"),
        ("gaussian", "64"),
    ]
    assert float(rows[0]["decision_agreement"]) == 1.0  # exact readout decides as the noiseless policy
    assert (out / "shots.png").read_bytes()[:8] == PNG
    # Run again: the policy is reused, not trained.
    assert main([*argv, "--out", str(out), "--runs", str(runs)]) == 0
    assert "0 run(s) trained" in capsys.readouterr().out


@pytest.fixture(scope="module")
def ray_cluster():
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    yield
    ray.shutdown()


def test_bench_scale_quick_grid_reports_every_run_once_beside_greedy_and_untrained(ray_cluster, tmp_path):
    heard = []
    kwargs = dict(shapes=QUICK_SHAPES, seeds=2, episodes=4)
    result = run_scale_bench(
        tmp_path / "scale",
        tmp_path / "scale-runs",
        **kwargs,
        on_result=lambda label, row: heard.append((label, row["status"])),
    )
    labels = [
        f"{n}x{m} {a} seed {s}" for n, m in QUICK_SHAPES for a in ("classical", "quantum L=6") for s in (0, 1)
    ]
    assert sorted(heard) == sorted((label, "ok") for label in labels)
    assert result["trained"] == 8 and not result["failures"] and not result["skipped"]
    rows = _csv(tmp_path / "scale" / "scale.csv")
    assert len(rows) == 8 and {r["recipe"] for r in rows} == {DEFAULT_RECIPE}
    for row in rows:  # a gap exactly where the placement is feasible (the decoding can miss: 4 episodes)
        assert (row["gap"] != "") == (row["feasible"] == "True") and float(row["gap"] or 0) >= 0
        assert (row["untrained_gap"] != "") == (row["untrained_feasible"] == "True")
        assert row["untrained_feasible"] in ("True", "False")  # read from the run's summary.json
        assert row["greedy_gap"] == ""  # these tight instances defeat greedy-with-repair
    summaries = {
        json.loads((tmp_path / "scale-runs" / r["run_dir"] / "summary.json").read_text())["wall_s"]
        for r in read_results(tmp_path / "scale-runs" / "results.csv")
    }
    assert sorted(float(r["wall_s"]) for r in rows) == pytest.approx(sorted(summaries))
    md = (tmp_path / "scale" / "scale.md").read_text()
    line = _md_row(md, "4×2")
    feasible = sum(r["feasible"] == "True" for r in rows if r["users"] == "4" and r["agent"] == "classical")
    assert line[3] == f"{feasible}/2" and line[7] == "no placement"  # feasible runs, greedy's gap
    assert "IQM gap" in md and "stratified-bootstrap" in md and "Wall time of the bench" in md
    for agent in ("classical", "quantum L=6"):
        point, low, high = result["aggregates"][agent]
        assert low <= point <= high
    assert (tmp_path / "scale" / "scale.png").read_bytes()[:8] == PNG

    heard.clear()  # again: every run reported (from the results table), none trained
    again = run_scale_bench(
        tmp_path / "scale",
        tmp_path / "scale-runs",
        **kwargs,
        on_result=lambda label, row: heard.append((label, row["status"])),
    )
    assert again["trained"] == 0 and len(heard) == 8
    assert "which trained 0 of the 8 runs" in (tmp_path / "scale" / "scale.md").read_text()

    capped = run_scale_bench(  # v2 at 8x2: the critic reads 32 numbers, 5 qubits > 4: not trained
        tmp_path / "scale-capped",
        tmp_path / "scale-runs",
        **{**kwargs, "shapes": ((8, 2),)},
        agents=DEFAULT_AGENTS[1:],
        recipe="v2",
        max_critic_qubits=4,
    )
    assert capped["trained"] == 0 and capped["skipped"] == ["8x2 quantum L=6 (5-qubit critic)"]
    assert (
        "Not trained (critic above --max-critic-qubits 4): 8x2 quantum L=6"
        in (tmp_path / "scale-capped" / "scale.md").read_text()
    )
    with pytest.raises(QdtInputError, match="--max-critic-qubits"):
        run_scale_bench(tmp_path / "x", tmp_path / "y", **kwargs, max_critic_qubits=13)

    credited = run_scale_bench(  # --ppo-credit reaches every run's config and the table's setting
        tmp_path / "scale-user",
        tmp_path / "scale-user-runs",
        shapes=((4, 2),),
        seeds=1,
        episodes=3,
        recipe="v3",
        ppo_credit="user",
    )
    assert credited["trained"] == 2
    configs = [
        json.loads((tmp_path / "scale-user-runs" / r["run_dir"] / "config.json").read_text())["config"]
        for r in read_results(tmp_path / "scale-user-runs" / "results.csv")
    ]
    assert [(c["learner"], c["ppo_credit"]) for c in configs] == [("ppo", "user")] * 2
    assert "recipe v3 with --ppo-credit user" in (tmp_path / "scale-user" / "scale.md").read_text()

    elite = run_scale_bench(  # v4: the elite learner, no critic, so the quantum run is never capped
        tmp_path / "scale-v4",
        tmp_path / "scale-v4-runs",
        shapes=((4, 2),),
        seeds=1,
        episodes=3,
        recipe="v4",
        max_critic_qubits=1,
    )
    assert elite["trained"] == 2 and not elite["skipped"]
    rows = _csv(tmp_path / "scale-v4" / "scale.csv")
    assert {(r["recipe"], r["feasible"]) for r in rows} == {("v4", "True")}  # guarded constructions
    assert all(r["untrained_feasible"] == "True" for r in rows)


def test_bench_instances_runs_as_sweep(ray_cluster, tmp_path):
    result = run_instances_bench(
        tmp_path / "inst", tmp_path / "inst-runs", shapes=((3, 2),), seeds=2, episodes=3
    )
    assert result["trained"] == 4
    rows = _csv(tmp_path / "inst" / "instances.csv")
    assert len(rows) == 4 and {r["seed"] for r in rows} == {"0", "1"}
    md = (tmp_path / "inst" / "instances.md").read_text()
    header = _md_row(md, "instance")
    (line,) = [line for line in md.splitlines() if line.startswith("| 3x2")]
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    for agent in ("classical", "quantum L=6"):
        feasible = sum(r["feasible"] == "True" for r in rows if r["agent"] == agent)
        assert cells[header.index(f"{agent} feasible")] == f"{feasible}/2"


def test_reward_band_cuts_to_the_shortest_seed_and_smooths_over_a_fortieth():
    from qdt.plots import reward_band

    band = reward_band([list(range(80)), [2.0 * k for k in range(81)]])  # 80 episodes kept, window 2
    assert band.runs.shape == (2, 80) and band.smooth.shape == (2, 79)
    assert band.episodes[0] == 2 and band.episodes[-1] == 80  # a window ends at these episodes
    assert band.smooth[0, 0] == 0.5 and band.smooth[1, -1] == 157.0
    assert band.mean[0] == pytest.approx((0.5 + 1.0) / 2)
    assert reward_band([[1.0, 3.0]]).smooth.tolist() == [[1.0, 3.0]]  # short runs: no smoothing


def test_study_intervals_stay_inside_the_metrics_range():
    from qdt.experiments.bench.noise import _summary, clipped_interval

    mean, lo, hi = clipped_interval([0.0, 1.0, 1.0])  # a t-interval over 3 seeds spans ~[-0.8, 2.1]
    assert mean == pytest.approx(2 / 3) and lo == 0.0 and hi == 1.0
    assert clipped_interval([0.0, 0.5, 0.6], upper=None)[2] > 1.0  # gaps have no upper bound
    assert _summary([0.0, 1.0, 1.0]) == "66.67 [0.00, 100.00]"
    assert _summary([None, None]) == "-" and _summary([0.25, 0.25]) == "25.00"

    from qdt.stats import RATE, format_interval, interval  # one home for every interval (evaluate, demo)

    assert interval([0.0, 1.0, 1.0], RATE) == {"mean": pytest.approx(2 / 3), "lo95": 0.0, "hi95": 1.0}
    assert format_interval(0.5, 0.25, 0.75, scale=100, unit="%") == "50.00% [25.00, 75.00]"
    assert format_interval(0.123456, 0.1, 0.1, spec=".4g") == "0.1235"  # a collapsed interval: the mean only


def test_iqm_and_its_stratified_bootstrap_interval_by_hand():
    from qdt.stats import iqm, iqm_interval

    # 8 values: drop the lowest 2 and the highest 2, average 0.03, 0.04, 0.05, 0.08.
    assert iqm([0.10, 0.02, 0.05, 0.30, 0.01, 0.04, 0.03, 0.08]) == pytest.approx(0.05)
    assert iqm([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(3.0)  # drop 1 and 5
    assert iqm([7.0]) == 7.0
    # Strata are resampled separately: four 0s and four 1s in every resample, so every IQM is 0.5;
    # resampling the eight runs together would give IQMs from 0 to 1.
    assert iqm_interval([[0.0] * 4, [1.0] * 4], samples=200) == (0.5, 0.5, 0.5)
    point, low, high = iqm_interval([[0.0, 0.1, 0.2, 0.3], [0.5, 0.6, 0.7, 0.8]], samples=400, seed=1)
    assert point == pytest.approx(iqm([0.0, 0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8])) and low < point < high
    assert iqm_interval([[0.0, 0.1, 0.2, 0.3]], samples=400, seed=1) == iqm_interval(
        [[0.0, 0.1, 0.2, 0.3]], samples=400, seed=1
    )  # seeded: the same interval every time
    with pytest.raises(ValueError):
        iqm([])
