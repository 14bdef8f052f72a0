"""A sweep cell: one training run (a TrainConfig on an instance) with a deterministic id.

The id is ``<agent>[-L<layers>]-s<seed>-<hash>``, the hash being the first 12 hex digits of the
SHA-256 of the resolved config (fields whose value is None left out, so that adding an optional
field to TrainConfig keeps existing ids) and of the instance's JSON. The same cell in another
sweep, or in the same sweep run again, has the same id and the same folder ``cells/<id>/``.

A cell folder holds the run folder of :func:`qdt.rl.train.train` (config.json,
metrics.jsonl, checkpoint.pt, summary.json, reward.png) plus ``attempts.jsonl`` (one line per
time a worker started the cell: pid, host, the episode it resumed from) and, after a failure,
``error.txt`` (the traceback). While a worker runs the cell, the folder also holds its lock file
(``.qdt.lock``, see :func:`qdt.files.hold_folder`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from qdt.problem.instance import Instance
from qdt.rl.config import TrainConfig

CELLS_DIR = "cells"
ATTEMPTS_FILE = "attempts.jsonl"
ERROR_FILE = "error.txt"
RUN_CONFIG_FILE = "config.json"  # written by qdt.rl.train
SUMMARY_FILE = "summary.json"  # written by qdt.rl.train
METRICS_FILE = "metrics.jsonl"  # written by qdt.rl.train
ID_HASH_DIGITS = 12
QUANTUM_ONLY = ("layers", "backend", "noise", "shots")  # settings the classical agent does not use


@dataclass(frozen=True)
class Cell:
    """One point of the grid. ``problem`` is set when no valid config or instance could be made."""

    STANDARD_AXES: ClassVar[tuple[str, ...]] = ("agent", "layers", "backend", "noise", "shots", "seed")

    cell_id: str
    instance_label: str
    axes: Mapping[str, Any] = field(default_factory=dict)  # STANDARD_AXES, then extra grid keys
    config: TrainConfig | None = None
    instance: Instance | None = None
    problem: str | None = None

    @property
    def runnable(self) -> bool:
        return self.problem is None


def make_cell(
    config: TrainConfig,
    instance: Instance,
    instance_label: str = "instance",
    extra_axes: Mapping[str, Any] | None = None,
) -> Cell:
    """The cell that trains ``config`` on ``instance`` (the Python API for benchmarks)."""
    digest = _digest({"config": config_identity(config), "instance": instance.to_dict()})
    classical = config.agent == "classical"
    axes: dict[str, Any] = {
        key: None if classical and key in QUANTUM_ONLY else getattr(config, key, None)
        for key in Cell.STANDARD_AXES
    }
    axes.update(extra_axes or {})
    prefix = "classical" if classical else f"quantum-L{config.layers}"
    return Cell(f"{prefix}-s{config.seed}-{digest}", instance_label, axes, config, instance)


def invalid_cell(
    instance_label: str,
    instance_description: Any,
    settings: Mapping[str, Any],
    problem: str,
    extra_axes: tuple[str, ...] | list[str] = (),
) -> Cell:
    """A cell that cannot run; it is recorded as failed with ``problem`` as its error."""
    digest = _digest({"instance": instance_description, "settings": dict(settings)})
    classical = settings.get("agent", TrainConfig.agent) == "classical"
    axes = {
        key: None if classical and key in QUANTUM_ONLY else settings.get(key, getattr(TrainConfig, key, None))
        for key in Cell.STANDARD_AXES
    }
    axes.update({key: settings.get(key) for key in extra_axes})
    return Cell(f"invalid-{digest}", instance_label, axes, problem=problem)


def config_identity(config: TrainConfig) -> dict[str, Any]:
    return {key: value for key, value in config.to_dict().items() if value is not None}


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:ID_HASH_DIGITS]


# ---- the cell folder -------------------------------------------------------------------------
def cell_dir(out_dir: Path, cell_id: str) -> Path:
    return out_dir / CELLS_DIR / cell_id


def finished_summary(path: Path, config: TrainConfig, instance: Instance) -> dict[str, Any] | None:
    """The cell's summary if its folder holds a finished run of exactly this config and instance."""
    if not same_run(path, config, instance):
        return None
    try:
        summary = json.loads((path / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and summary.get("config") == config.to_dict() else None


def same_run(path: Path, config: TrainConfig, instance: Instance) -> bool:
    """Whether the run folder's config.json records this config and instance."""
    try:
        saved = json.loads((path / RUN_CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(saved, dict)
        and saved.get("config") == config.to_dict()
        and saved.get("instance") == json.loads(json.dumps(instance.to_dict()))
    )


def read_attempts(path: Path) -> list[dict[str, Any]]:
    try:
        lines = (path / ATTEMPTS_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a crash
    return out


def read_metrics_rewards(path: Path) -> list[float]:
    """The run's reward per episode (metrics.jsonl ``reward_mean``); empty if unreadable."""
    try:
        lines = (path / METRICS_FILE).read_text(encoding="utf-8").splitlines()
        return [float(json.loads(line)["reward_mean"]) for line in lines if line]
    except (OSError, ValueError, KeyError, TypeError):
        return []
