"""The sweep's results table, ``results.csv``: one row per finished cell, written by the driver only.

Every change rewrites the whole file atomically (temporary file, fsync, rename, fsync of the
folder), so a reader or a crash sees the table before or after a row, never half of one, and a
cell's row is replaced rather than repeated. Lists (assignment, per-user latency) and the config
are JSON in their cells; an empty cell is "no value".
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from qdt.errors import QdtInputError
from qdt.files import atomic_write_text

RESULTS_FILE = "results.csv"
STATUS_OK = "ok"
STATUS_FAILED = "failed"

# Column name -> type; extra grid keys follow these, as JSON values.
COLUMNS: dict[str, str] = {
    "cell_id": "str",
    "status": "str",
    "instance": "str",
    "agent": "str",
    "layers": "int",
    "backend": "str",
    "noise": "str",
    "shots": "int",
    "seed": "int",
    "feasible": "bool",
    "total_latency_s": "float",
    "optimum_total_latency_s": "float",
    "gap": "float",
    "best_seen_total_latency_s": "float",
    "assignment": "json",
    "per_user_latency_s": "json",
    "reward": "float",
    "optimum_status": "str",
    "episodes": "int",
    "wall_s": "float",
    "cell_wall_s": "float",
    "attempts": "int",
    "n_users": "int",
    "n_servers": "int",
    "error": "str",
    "run_dir": "str",
    "config": "json",
}
SUMMARY_KEYS = (
    "assignment",
    "feasible",
    "total_latency_s",
    "optimum_total_latency_s",
    "gap",
    "best_seen_total_latency_s",
    "per_user_latency_s",
    "reward",
    "optimum_status",
    "episodes",
    "wall_s",
    "seed",
)


class ResultsTable:
    """Rows keyed by cell id, in insertion order, kept in ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {}
        if path.exists():
            try:
                for row in read_results(path):
                    if row.get("status") not in (STATUS_OK, STATUS_FAILED):
                        raise ValueError(f"row of cell {row['cell_id']}: status {row.get('status')!r}")
                    self.rows[str(row["cell_id"])] = row
            except (KeyError, ValueError, csv.Error, UnicodeDecodeError) as error:
                raise QdtInputError(
                    str(path),
                    "the results table a qdt sweep wrote (CSV with cell_id and status columns)",
                    f"unreadable ({type(error).__name__}: {error})",
                    "move it away to rebuild it: finished cells are found again in cells/",
                ) from None

    def get(self, cell_id: str) -> dict[str, Any] | None:
        return self.rows.get(cell_id)

    def put(self, row: Mapping[str, Any]) -> None:
        self.rows[row["cell_id"]] = dict(row)
        write_results(self.path, self.rows.values())


def write_results(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    rows = list(rows)
    extra = sorted({key for row in rows for key in row} - set(COLUMNS))
    header = [*COLUMNS, *extra]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_encode(row.get(key), COLUMNS.get(key, "json")) for key in header])
    atomic_write_text(path, buffer.getvalue(), sync_folder=True)


def read_results(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="", encoding="utf-8") as stream:
        return [
            {key: _decode(value, COLUMNS.get(key, "json")) for key, value in row.items()}
            for row in csv.DictReader(stream)
        ]


def _encode(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "bool":
        return "true" if value else "false"
    if kind == "float":
        return repr(float(value))
    if kind == "json":
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    if kind == "str":
        return " ".join(str(value).split())  # one line: errors carry newlines
    return str(value)


def _decode(text: str | None, kind: str) -> Any:
    if text is None or text == "":
        return None
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        return text == "true"
    if kind == "json":
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text
