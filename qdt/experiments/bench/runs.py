"""The benchmarks' training runs, as cells of a sweep on qdt's Ray engine (:mod:`qdt.experiments.sweep`).

Each benchmark lists its runs (a key of its own, a label for people, a TrainConfig and an
instance), and :func:`train_runs` runs them with :func:`qdt.experiments.sweep.run_cells` into the
benchmark's runs folder. The benches so inherit the engine's guarantees: one atomic row per run
in ``RUNS/results.csv``; a finished run is never trained again; after a killed driver or worker
the same command resumes unfinished runs from their checkpoints; a failing run is retried, then
recorded as failed with its error while the others complete. Run folders are
``RUNS/cells/<cell id>/`` (the row's ``run_dir``). ``RUNS`` follows the sweep folder's rules: new,
empty or a sweep folder, and written by one process at a time (``--runs`` in errors).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qdt.experiments.sweep import RESULTS_FILE, Cell, make_cell, read_results, run_cells
from qdt.experiments.sweep.table import STATUS_FAILED, STATUS_OK
from qdt.problem.instance import Instance
from qdt.rl.config import TrainConfig

OnRun = Callable[[str, Mapping[str, Any]], None]  # (label, result row: status, summary values, error)


@dataclass(frozen=True)
class BenchRun:
    """One training run of a benchmark: ``key`` is the benchmark's own handle, e.g. (agent, seed)."""

    key: Hashable
    label: str
    cell: Cell


def bench_run(
    key: Hashable, label: str, config: TrainConfig, instance: Instance, instance_label: str
) -> BenchRun:
    return BenchRun(key, label, make_cell(config, instance, instance_label))


@dataclass(frozen=True)
class RunFailure:
    label: str
    cell_id: str
    error: str

    def __str__(self) -> str:
        return f"{self.label} (cell {self.cell_id}): {self.error}"


@dataclass
class TrainedRuns:
    """The result rows of a benchmark's runs, by the benchmark's keys."""

    runs_dir: Path
    runs: list[BenchRun]
    rows: dict[Hashable, dict[str, Any]]
    trained: int  # runs that got a task in this call (0: everything reused)
    max_parallel: int
    wall_s: float

    def ok(self, key: Hashable) -> dict[str, Any] | None:
        """The run's row (summary.json values) if it finished, else None."""
        row = self.rows.get(key)
        return row if row is not None and row["status"] == STATUS_OK else None

    def run_dir(self, key: Hashable) -> Path | None:
        """The run folder of a finished run (config.json, metrics.jsonl, checkpoint.pt, summary.json)."""
        row = self.ok(key)
        return None if row is None else self.runs_dir / str(row["run_dir"])

    @property
    def failures(self) -> list[RunFailure]:
        return [
            RunFailure(run.label, run.cell.cell_id, str(self.rows[run.key].get("error") or "unknown error"))
            for run in self.runs
            if self.rows[run.key]["status"] != STATUS_OK
        ]


def train_runs(
    runs: Sequence[BenchRun],
    runs_dir: Path,
    *,
    name: str,
    workers: int | None = None,
    ray_address: str | None = None,
    retry_failed: bool = False,
    on_result: OnRun | None = None,
) -> TrainedRuns:
    """Train (or resume, or reuse) every run as a sweep cell; ``on_result`` hears of each run once.

    Runs already recorded in ``runs_dir/results.csv`` are reported first (they need no task;
    no Ray is started when every run is recorded), then each run as the engine finishes it.
    """
    runs = list(runs)
    by_cell = {run.cell.cell_id: run for run in runs}
    if len(by_cell) != len(runs):
        raise ValueError("two benchmark runs with the same config and instance")
    if on_result is not None:
        for row in _recorded_rows(runs_dir, by_cell, retry_failed):
            on_result(by_cell[row["cell_id"]].label, row)

    def relay(cell: Cell, row: Mapping[str, Any]) -> None:
        if on_result is not None:
            on_result(by_cell[cell.cell_id].label, row)

    result = run_cells(
        [run.cell for run in runs],
        runs_dir,
        name=name,
        ray_address=ray_address,
        max_parallel=workers,
        progress=False,
        retry_failed=retry_failed,
        on_result=relay,
        field="--runs",
    )
    rows = {by_cell[row["cell_id"]].key: row for row in result.rows}
    return TrainedRuns(
        runs_dir=result.out_dir,
        runs=runs,
        rows=rows,
        trained=result.ran,
        max_parallel=workers or os.cpu_count() or 1,
        wall_s=result.wall_s,
    )


def _recorded_rows(
    runs_dir: Path, by_cell: Mapping[str, BenchRun], retry_failed: bool
) -> list[dict[str, Any]]:
    """Rows of these runs already in the results table that the engine will not run again."""
    path = Path(runs_dir) / RESULTS_FILE
    if not path.exists():
        return []
    try:
        rows = read_results(path)
    except (OSError, ValueError, KeyError):
        return []  # the engine reports an unreadable table itself
    return [
        row
        for row in rows
        if row.get("cell_id") in by_cell
        and (row["status"] == STATUS_OK or (row["status"] == STATUS_FAILED and not retry_failed))
    ]


def failure_note(trained: TrainedRuns) -> str:
    """A Markdown paragraph naming the failed runs, or "" when every run finished."""
    failures = trained.failures
    if not failures:
        return ""
    lines = [
        f"**{len(failures)} of {len(trained.runs)} training runs failed** and are missing from the "
        f"figures above (errors in {trained.runs_dir / RESULTS_FILE}, tracebacks in the cells' error.txt):",
        "",
        *(f"- {failure}" for failure in failures),
    ]
    return "\n".join(lines)
