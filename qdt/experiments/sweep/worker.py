"""The body of one cell, run in a worker process (a Ray task, or directly).

It holds the cell folder's lock (:func:`qdt.files.hold_folder`) for the whole attempt, waiting
for it if another process has it, so two attempts never write the same folder at once (a worker
of a killed driver may outlive it by a few seconds, and the rerun waits for it). The lock of a
worker that died is free at once: the kernel drops it with the process, so the sweep's retry of
that cell takes it over (with a notice on the worker's stderr) and never waits on it. The
training inside the attempt takes the same lock again, which a holder's own thread may. Then:
a finished run of the same config is returned as is; a run folder with a checkpoint of the same
config is resumed from it; anything else is cleared and trained from the start.
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from qdt.errors import QdtError
from qdt.experiments.sweep.cell import (
    ATTEMPTS_FILE,
    ERROR_FILE,
    finished_summary,
    read_attempts,
    same_run,
)
from qdt.files import hold_folder
from qdt.problem.instance import Instance
from qdt.rl.config import TrainConfig

CHECKPOINT_FILE = "checkpoint.pt"  # written by qdt.rl.checkpoint
RUN_FILES = ("config.json", "metrics.jsonl", CHECKPOINT_FILE, "summary.json", "reward.png")


def run_cell(config_data: dict[str, Any], instance_data: dict[str, Any], folder: str) -> dict[str, Any]:
    """Train (or resume, or reuse) one cell; returns the summary and how the attempt went.

    An exception comes back as ``{"error": "Type: message", "retryable": bool}`` rather than
    raised, so that any exception (even one that cannot be pickled) reaches the driver intact. A
    :class:`~qdt.errors.QdtError` (bad input, diverged training) is deterministic: not retryable.
    """
    try:
        return _run_cell(config_data, instance_data, folder)
    except Exception as error:  # noqa: BLE001 - every failure is reported to the driver
        return {
            "error": f"{type(error).__name__}: {error}",
            "retryable": not isinstance(error, QdtError),
            "attempts": len(read_attempts(Path(folder))),
        }


def _run_cell(config_data: dict[str, Any], instance_data: dict[str, Any], folder: str) -> dict[str, Any]:
    start = time.perf_counter()
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    config = TrainConfig.from_dict(config_data)
    instance = Instance.from_dict(instance_data)
    with hold_folder(path, "cell folder", wait=True):
        summary = finished_summary(path, config, instance)
        resumed_from: int | None = None
        reused = summary is not None
        if summary is None:
            resumed_from = _prepare(path, config, instance)
            _log_attempt(path, resumed_from)
            summary = _train(config, instance, path, resumed_from is not None)
        attempts = len(read_attempts(path))
    return {
        "summary": summary,
        "attempts": attempts,
        "resumed_from_episode": resumed_from,
        "reused": reused,
        "cell_wall_s": time.perf_counter() - start,
    }


def _train(config: TrainConfig, instance: Instance, path: Path, resume: bool) -> dict[str, Any]:
    from qdt.rl.train import train

    (path / ERROR_FILE).unlink(missing_ok=True)
    try:
        return train(config, instance, path, resume=resume, progress=False)
    except BaseException:
        (path / ERROR_FILE).write_text(traceback.format_exc(), encoding="utf-8")
        raise


def _prepare(path: Path, config: TrainConfig, instance: Instance) -> int | None:
    """The episode of a usable checkpoint to resume from, or None after clearing the run files."""
    if same_run(path, config, instance) and (path / CHECKPOINT_FILE).exists():
        from qdt.rl.checkpoint import CheckpointError, load_checkpoint

        try:
            return int(load_checkpoint(path)["episode"])
        except (CheckpointError, KeyError, TypeError, ValueError):
            pass  # unreadable: start over
    for name in RUN_FILES:
        (path / name).unlink(missing_ok=True)
    for stale in path.glob(".checkpoint.*.tmp"):
        stale.unlink(missing_ok=True)
    return None


def _log_attempt(path: Path, resumed_from: int | None) -> None:
    record = {
        "attempt": len(read_attempts(path)) + 1,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "resumed_from_episode": resumed_from,
    }
    with open(path / ATTEMPTS_FILE, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")
        stream.flush()
        os.fsync(stream.fileno())
