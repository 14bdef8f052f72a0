"""Sweeps on Ray (one Ray session for the module): rows, failures, retries, reruns, a killed worker."""

import json
import logging
import os
import signal
import threading
import time

import pytest
import ray

from qdt.experiments.sweep import cell_dir, expand_cells, parse_spec, read_results, run_sweep
from qdt.experiments.sweep.cell import read_attempts
from qdt.files import LOCK_FILE
from qdt.problem.generator import paper_instance
from qdt.rl.train import train

TINY = dict(
    episodes=20,
    steps_per_episode=2,
    batch_size=8,
    replay_size=64,
    warmup_transitions=8,
    hidden=8,
    checkpoint_every=5,
)


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.ERROR,
        log_to_driver=False,
    )
    yield
    ray.shutdown()


def _rows_by_id(out):
    rows = read_results(out / "results.csv")
    assert len(rows) == len({r["cell_id"] for r in rows}), "a cell has two rows"
    return {r["cell_id"]: r for r in rows}


def test_failures_are_recorded_and_the_rest_completes_then_nothing_reruns(ray_cluster, tmp_path):
    spec = parse_spec(
        {
            "sweep": {"name": "failures", "max_retries": 2},
            "grid": {
                "instance": ["paper", "missing.json"],
                "agent": ["classical", "quantum"],
                "backend": ["no-such-backend"],  # a QdtInputError inside the task: not retried
                "seed": [0, 1, 2],
            },
            "train": TINY,
        },
        base_dir=tmp_path,
    )
    cells = expand_cells(spec)
    out = tmp_path / "out"
    by_kind = {}
    for cell in cells:
        kind = "invalid" if not cell.runnable else cell.axes["agent"]
        by_kind.setdefault(kind, []).append(cell)
    assert [len(by_kind[k]) for k in ("classical", "quantum", "invalid")] == [3, 3, 6]
    blocked = by_kind["classical"][1]
    cell_dir(out, blocked.cell_id).parent.mkdir(parents=True)
    cell_dir(out, blocked.cell_id).write_text("a file where the cell folder should be")

    seen = []
    result = run_sweep(spec, out, progress=False, on_result=lambda cell, row: seen.append(cell.cell_id))
    rows = _rows_by_id(out)
    assert set(rows) == {c.cell_id for c in cells} and sorted(seen) == sorted(rows)
    assert [r["cell_id"] for r in result.rows] == [c.cell_id for c in cells]
    assert result.failed == 3 + 1 + 6 and result.ran == 6

    for cell in by_kind["classical"]:
        row = rows[cell.cell_id]
        if cell is blocked:  # an OSError every time: retried, then failed with its error
            assert row["status"] == "failed" and row["attempts"] == 3
            assert row["error"].startswith("FileExistsError") and blocked.cell_id in row["error"]
        else:
            assert row["status"] == "ok" and row["attempts"] == 1 and row["error"] is None
            summary = json.loads((out / row["run_dir"] / "summary.json").read_text())
            for key in ("assignment", "feasible", "total_latency_s", "optimum_total_latency_s", "gap"):
                assert row[key] == summary[key]
            assert row["episodes"] == 20 and row["seed"] == cell.config.seed and row["n_users"] == 4
    for cell in by_kind["quantum"]:
        row = rows[cell.cell_id]
        assert row["status"] == "failed" and row["attempts"] == 1 and "no-such-backend" in row["error"]
        assert "Traceback" in (out / row["run_dir"] / "error.txt").read_text()
    for cell in by_kind["invalid"]:
        row = rows[cell.cell_id]
        assert row["status"] == "failed" and row["attempts"] == 0 and "missing.json" in row["error"]

    # The summary and plots come out of the same rows.
    classical = next(
        g for g in result.summary if g["instance"] == "paper" and g["configuration"] == "classical"
    )
    assert (classical["cells"], classical["ok"], classical["failed"]) == (3, 2, 1)
    for name in ("gap.png", "rewards.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "classical" in result.summary_table() and (out / "summary.md").exists()

    # The same sweep again: every cell has its row, nothing runs, no row is repeated.
    mtimes = {
        c.cell_id: (out / rows[c.cell_id]["run_dir"] / "summary.json").stat().st_mtime_ns
        for c in by_kind["classical"]
        if c is not blocked
    }
    again = run_sweep(spec, out, progress=False)
    assert again.ran == 0 and _rows_by_id(out) == rows
    for cell_id, mtime in mtimes.items():
        assert (out / rows[cell_id]["run_dir"] / "summary.json").stat().st_mtime_ns == mtime
        assert len(read_attempts(out / rows[cell_id]["run_dir"])) == 1

    # Fix the blocked folder and retry the failed cells: its row is replaced, not added.
    cell_dir(out, blocked.cell_id).unlink()
    retried = run_sweep(spec, out, progress=False, retry_failed=True)
    rows = _rows_by_id(out)
    assert len(rows) == len(cells) and rows[blocked.cell_id]["status"] == "ok"
    assert retried.ran == 1 + 3  # the blocked cell and the three quantum cells (invalid ones need no task)


def test_a_killed_worker_is_retried_and_resumes_from_its_checkpoint(ray_cluster, tmp_path):
    settings = {**TINY, "episodes": 400, "checkpoint_every": 5}
    spec = parse_spec({"grid": {"agent": ["classical"], "seed": [7]}, "train": settings})
    (cell,) = expand_cells(spec)
    out = tmp_path / "out"
    folder = cell_dir(out, cell.cell_id)
    killed = {}

    def kill_the_worker_mid_cell():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            attempts = read_attempts(folder)
            if attempts and (folder / "checkpoint.pt").exists():
                killed["pid"] = attempts[0]["pid"]
                os.kill(killed["pid"], signal.SIGKILL)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_the_worker_mid_cell)
    killer.start()
    result = run_sweep(spec, out, progress=False)
    killer.join()

    (row,) = result.rows
    attempts = read_attempts(folder)
    assert "pid" in killed and row["status"] == "ok" and row["attempts"] == 2
    assert attempts[1]["pid"] != killed["pid"]
    # The killed worker's lock on the cell folder was taken over, not waited for, then released.
    assert not (folder / LOCK_FILE).exists() and not (out / LOCK_FILE).exists()
    resumed = attempts[1]["resumed_from_episode"]
    assert resumed is not None and resumed >= 5 and resumed % 5 == 0 and resumed < 400

    # The resumed cell is the uninterrupted run, bit for bit (wall times aside).
    straight = train(cell.config, paper_instance(), tmp_path / "s", progress=False)
    summary = json.loads((folder / "summary.json").read_text())
    assert {k: v for k, v in summary.items() if k != "wall_s"} == {
        k: v for k, v in straight.items() if k != "wall_s"
    }
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    reference = [json.loads(x) for x in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()]
    strip = lambda records: [{k: v for k, v in r.items() if k != "wall_s"} for r in records]  # noqa: E731
    assert strip(lines) == strip(reference)


def test_an_embedded_session_leaves_ray_s_authentication_settings_as_it_found_them(monkeypatch):
    """Ray 2.60 sets RAY_AUTH_MODE when it starts a cluster and leaves it set: after qdt's session it
    is gone again, so the next embedded session in this process gets a token of its own."""
    from qdt.experiments.sweep.engine import _ray_environment

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("HOME", "/nonexistent-home-for-this-test")
    for _ in range(2):
        with _ray_environment(None):
            assert len(os.environ["RAY_AUTH_TOKEN"]) == 64  # a token of its own, every session
            os.environ["RAY_AUTH_MODE"] = "token"  # as Ray sets it when its cluster starts
        assert "RAY_AUTH_MODE" not in os.environ and "RAY_AUTH_TOKEN" not in os.environ
