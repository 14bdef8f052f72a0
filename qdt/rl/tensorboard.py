"""TensorBoard scalars for a run, when the ``tensorboard`` package is installed (else nothing).

Written next to metrics.jsonl (which stays the record of truth) in DIR/tensorboard, at the same
moments: every checkpoint. A resumed run purges events past its checkpoint, so a crashed run's
unsaved tail never shows twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SCALARS = ("reward_mean", "latency_last_s", "critic_loss", "actor_loss", "explore", "greedy_latency_s")


class TensorBoardLog:
    def __init__(self, writer: Any) -> None:
        self.writer = writer

    @classmethod
    def open(cls, run_dir: Path, first_episode: int) -> TensorBoardLog | None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return None
        return cls(SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=first_episode + 1))

    def write(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            for key in SCALARS:
                value = record.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"train/{key}", value, record["episode"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
