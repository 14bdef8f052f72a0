"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)`` (tensors, numbers,
strings and containers only; no arbitrary objects are unpickled).

A checkpoint holds the networks, their targets and optimisers, the replay memory, every random
generator's state and the run's bookkeeping, so that a resumed run continues bit for bit.
"""

from __future__ import annotations

import errno
import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
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
    try:
        with atomic_path(path) as tmp:
            torch.save({"format": FORMAT, **payload}, tmp)
    except RuntimeError as error:  # torch's zip writer reports a failed write as a RuntimeError
        if _disk_full(run_dir):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
        raise CheckpointError(
            f"{path}: could not be written ({str(error).strip()[:120]}) (check the disk, then --resume)"
        ) from None
    return path


def _disk_full(folder: Path) -> bool:
    try:
        stats = os.statvfs(folder)
    except (OSError, AttributeError):
        return False
    return stats.f_bavail * stats.f_frsize < 2**20  # under 1 MiB left: no room for a checkpoint


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    path = run_dir / FILENAME
    if not path.exists():
        raise CheckpointError(
            f"{path}: expected a checkpoint to resume from, found none "
            "(a run writes one every --checkpoint-every episodes)"
        )
    try:
        with warnings.catch_warnings():  # torch warns about what it then refuses: the error says it
            warnings.simplefilter("ignore")
            data = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:  # noqa: BLE001 - any unreadable file is the same user problem
        # torch's own message advises weights_only=False, which must never be done with a file from
        # elsewhere: only the kind of failure is kept.
        raise CheckpointError(
            f"{path}: expected a qdt checkpoint ({FORMAT}), got a file torch cannot read safely "
            f"({type(error).__name__}) (resume from an intact copy, or start a new run with --out)"
        ) from None
    found = data.get("format") if isinstance(data, dict) else type(data).__name__
    if found != FORMAT:
        raise CheckpointError(
            f"{path}: expected format {FORMAT!r}, got {found!r} "
            "(resume from an intact copy, or start a new run with --out)"
        )
    return data


@contextmanager
def checkpoint_content(run_dir: Path) -> Iterator[None]:
    """Errors while a loaded checkpoint is applied to a run's networks and state (a key missing, a
    value of another type, a tensor of another shape: a checkpoint of another run, or a damaged
    one) become one :class:`CheckpointError` naming the file."""
    try:
        yield
    except QdtError:  # already says what is wrong (a checkpoint error, an input error)
        raise
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as error:
        first = (str(error).strip().splitlines() or [""])[0][:120]
        raise CheckpointError(
            f"{Path(run_dir) / FILENAME}: expected a checkpoint of this run ({FORMAT}), got one whose "
            f"content does not fit it ({type(error).__name__}: {first}) (resume from an intact copy, "
            "or start a new run with --out)"
        ) from None


def encode_json(value: Any) -> str:
    """Generator states and bookkeeping travel as JSON strings (Python ints beyond 64 bits)."""
    return json.dumps(value)


def decode_json(text: str) -> Any:
    return json.loads(text)
