"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)`` (tensors, numbers,
strings and containers only; no arbitrary objects are unpickled).

A checkpoint holds the networks, their targets and optimisers, the replay memory, every random
generator's state and the run's bookkeeping, so that a resumed run continues bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from qdt.errors import QdtError
from qdt.files import atomic_path

FORMAT = "qdt-checkpoint/1"
FILENAME = "checkpoint.pt"


class CheckpointError(QdtError):
    pass


def save_checkpoint(run_dir: Path, payload: dict[str, Any]) -> Path:
    path = run_dir / FILENAME
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)
    return path


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    path = run_dir / FILENAME
    if not path.exists():
        raise CheckpointError(
            f"{path}: expected a checkpoint to resume from, found none "
            "(a run writes one every --checkpoint-every episodes)"
        )
    try:
        data = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:  # noqa: BLE001 - any unreadable file is the same user problem
        raise CheckpointError(f"{path}: expected a qdt checkpoint, could not read it ({error})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: expected format {FORMAT!r}, got {data.get('format')!r}")
    return data


def encode_json(value: Any) -> str:
    """Generator states and bookkeeping travel as JSON strings (Python ints beyond 64 bits)."""
    return json.dumps(value)


def decode_json(text: str) -> Any:
    return json.loads(text)
