"""`qdt sweep` killed with SIGKILL and run again: no cell lost, none run twice, unfinished ones resume.

Each test starts `qdt sweep` twice as a subprocess (its own embedded Ray, ~10-20 s in all).
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from qdt.experiments.sweep import cell_dir, expand_cells, load_spec, read_results
from qdt.experiments.sweep.cell import read_attempts
from qdt.problem.generator import paper_instance
from qdt.rl.checkpoint import load_checkpoint
from qdt.rl.train import train

SPEC = """\
[sweep]
name = "kill"
[grid]
agent = ["classical"]
episodes = [40, {long}]  # a short cell that finishes, a long one that is cut
seed = [3]
[train]
steps_per_episode = 2
batch_size = 8
replay_size = 64
warmup_transitions = 8
hidden = 8
checkpoint_every = 20
"""
CLI = [sys.executable, "-c", "import sys; from qdt.cli.main import main; sys.exit(main())"]


def _start(tmp_path, name):
    log = open(tmp_path / f"{name}.log", "w")
    command = [
        *CLI,
        "sweep",
        str(tmp_path / "spec.toml"),
        "--out",
        str(tmp_path / "out"),
        "--max-parallel",
        "2",
    ]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _gone(pid, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _ok_rows(out):
    if not (out / "results.csv").exists():
        return {}
    return {r["cell_id"]: r for r in read_results(out / "results.csv") if r["status"] == "ok"}


def _kill_mid_sweep(tmp_path, long_episodes, kill_worker):
    (tmp_path / "spec.toml").write_text(SPEC.format(long=long_episodes))
    short, long = expand_cells(load_spec(tmp_path / "spec.toml"))
    out = tmp_path / "out"
    long_dir = cell_dir(out, long.cell_id)
    driver = _start(tmp_path, "first")
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and driver.poll() is None:
            if short.cell_id in _ok_rows(out) and (long_dir / "checkpoint.pt").exists():
                break
            time.sleep(0.02)
        else:
            pytest.fail(f"the sweep never reached the kill point:\n{(tmp_path / 'first.log').read_text()}")
        assert not (long_dir / "summary.json").exists(), "the long cell finished before the kill"
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and its embedded Ray (GCS, raylet)
        worker = read_attempts(long_dir)[0]["pid"]
        if kill_worker:  # the whole machine's work gone at once
            os.kill(worker, signal.SIGKILL)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert _gone(worker), "a worker of the killed sweep is still running"
    short_mtime = (cell_dir(out, short.cell_id) / "summary.json").stat().st_mtime_ns
    checkpoint_episode = int(load_checkpoint(long_dir)["episode"])
    assert 0 < checkpoint_episode < long_episodes or not kill_worker

    again = _start(tmp_path, "second")
    assert again.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()

    rows = read_results(out / "results.csv")
    assert sorted(r["cell_id"] for r in rows) == sorted([short.cell_id, long.cell_id])  # one row each
    assert all(r["status"] == "ok" for r in rows)
    # The finished cell was not run again.
    assert (cell_dir(out, short.cell_id) / "summary.json").stat().st_mtime_ns == short_mtime
    assert len(read_attempts(cell_dir(out, short.cell_id))) == 1
    # The cut cell continued from a checkpoint; its metrics hold every episode exactly once.
    episodes = [json.loads(line)["episode"] for line in (long_dir / "metrics.jsonl").read_text().splitlines()]
    assert episodes == list(range(1, long_episodes + 1))
    return long, long_dir, checkpoint_episode


@pytest.mark.slow  # about 30-60 s: the default run stays under 10 minutes
def test_killed_driver_and_worker_then_rerun_resumes_the_unfinished_cell(tmp_path):
    _, long_dir, checkpoint_episode = _kill_mid_sweep(tmp_path, 400, kill_worker=True)
    attempts = read_attempts(long_dir)
    assert len(attempts) == 2 and attempts[1]["resumed_from_episode"] == checkpoint_episode


@pytest.mark.slow
def test_killed_driver_whose_worker_outlives_it_then_rerun_gives_the_uninterrupted_result(tmp_path):
    """Only the driver's process group is killed: its Ray worker goes on for a few seconds, holding
    the cell's lock; the rerun waits for it, then resumes or reuses what it left."""
    long, long_dir, _ = _kill_mid_sweep(tmp_path, 2000, kill_worker=False)
    straight = train(long.config, paper_instance(), tmp_path / "straight", progress=False)
    summary = json.loads((long_dir / "summary.json").read_text())
    assert {k: v for k, v in summary.items() if k != "wall_s"} == {
        k: v for k, v in straight.items() if k != "wall_s"
    }
