"""Placement instances in the ``qdt-instance/1`` JSON format (docs/design.md §1): load, validate, save.

An :class:`Instance` is immutable and validated on construction, so every other module may
assume finite positive values and consistent shapes. Loading reports the first problem as a
:class:`~qdt.errors.QdtInputError` naming the JSON field (``users[2].deadline_s``) and what was
expected.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qdt.errors import QdtInputError
from qdt.files import write_json_atomic

FORMAT = "qdt-instance/1"

_TOP_FIELDS = {
    "format",
    "name",
    "bandwidth_hz",
    "noise_power_w",
    "users",
    "servers",
    "channel_gain",
    "compute_rate",
    "meta",
}
_REQUIRED_TOP = _TOP_FIELDS - {"meta"}
_USER_FIELDS = ("data_bits", "tx_power_w", "deadline_s")
_SERVER_FIELDS = ("capacity", "max_users")
MAX_USERS_CAP = 2**31 - 1

USERS_LIMIT = 100_000
"""Most users N in one instance. At this size (with 4 servers) an instance file is 36 MB, loads in
about 2 s and draws in under 1 s; every solver answers or says why not within its time limit."""

SERVERS_LIMIT = 10_000
"""Most servers M in one instance (a server is a column of every N×M matrix and, in training, an agent)."""

PAIRS_LIMIT = 1_000_000
"""Most user-server pairs N·M. The instance holds two N×M float64 matrices (channel gains, compute
rates) and the model derives several more; at 10^6 pairs each is 8 MB, the file about 70 MB
(loaded in about 3 s), and the MILP has 10^6 binaries. Without it, 100,000 users × 10,000
servers would ask for 8 GB a matrix."""

FILE_BYTES_LIMIT = 256 * 2**20
"""Largest instance file read (256 MiB): a file qdt writes for PAIRS_LIMIT pairs takes about 70 MB,
so this leaves room for other formatting and refuses a file of gigabytes before reading it."""


@dataclass(frozen=True)
class User:
    data_bits: float
    tx_power_w: float
    deadline_s: float


@dataclass(frozen=True)
class Server:
    capacity: float
    max_users: int


@dataclass(frozen=True, eq=False)
class Instance:
    """N users, M servers, channel gains h_ij and compute rates c_ij (both N×M).

    ``meta`` is free-form provenance (the generator and its seed); it never changes the model.
    """

    name: str
    bandwidth_hz: float
    noise_power_w: float
    users: tuple[User, ...]
    servers: tuple[Server, ...]
    channel_gain: NDArray[np.float64]
    compute_rate: NDArray[np.float64]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_positive("bandwidth_hz", self.bandwidth_hz)
        _check_positive("noise_power_w", self.noise_power_w)
        if len(self.users) == 0:
            raise QdtInputError("users", "at least one user (N >= 1)", "an empty list")
        if len(self.servers) == 0:
            raise QdtInputError("servers", "at least one server (M >= 1)", "an empty list")
        check_size(len(self.users), len(self.servers))
        for name in _USER_FIELDS:
            column = [getattr(user, name) for user in self.users]
            if _positive_floats(column) is None:  # the slow path names the first bad user
                for i, value in enumerate(column):
                    _check_positive(f"users[{i}].{name}", value)
        for j, server in enumerate(self.servers):
            _check_positive(f"servers[{j}].capacity", server.capacity)
            if not isinstance(server.max_users, int) or isinstance(server.max_users, bool):
                raise QdtInputError(f"servers[{j}].max_users", "an integer >= 1", server.max_users)
            if not 1 <= server.max_users <= MAX_USERS_CAP:
                raise QdtInputError(
                    f"servers[{j}].max_users",
                    f"an integer from 1 to {MAX_USERS_CAP}",
                    server.max_users,
                    "a cap above the number of users means no cap",
                )
        shape = (len(self.users), len(self.servers))
        for name in ("channel_gain", "compute_rate"):
            matrix = getattr(self, name)
            if matrix.shape != shape:
                raise QdtInputError(name, f"an N×M = {shape[0]}×{shape[1]} matrix", f"shape {matrix.shape}")
            bad = np.argwhere(~(np.isfinite(matrix) & (matrix > 0)))
            if bad.size:
                i, j = (int(v) for v in bad[0])
                raise QdtInputError(f"{name}[{i}][{j}]", "a finite number > 0", float(matrix[i, j]))
        matrix_gain = np.array(self.channel_gain, dtype=np.float64)
        matrix_rate = np.array(self.compute_rate, dtype=np.float64)
        matrix_gain.setflags(write=False)
        matrix_rate.setflags(write=False)
        object.__setattr__(self, "channel_gain", matrix_gain)
        object.__setattr__(self, "compute_rate", matrix_rate)

    # ---- shape and vectors -------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_servers(self) -> int:
        return len(self.servers)

    @property
    def data_bits(self) -> NDArray[np.float64]:
        return np.array([u.data_bits for u in self.users], dtype=np.float64)

    @property
    def tx_power_w(self) -> NDArray[np.float64]:
        return np.array([u.tx_power_w for u in self.users], dtype=np.float64)

    @property
    def deadline_s(self) -> NDArray[np.float64]:
        return np.array([u.deadline_s for u in self.users], dtype=np.float64)

    @property
    def capacity(self) -> NDArray[np.float64]:
        return np.array([s.capacity for s in self.servers], dtype=np.float64)

    @property
    def max_users(self) -> NDArray[np.int64]:
        return np.array([s.max_users for s in self.servers], dtype=np.int64)

    def with_channel_gain(self, channel_gain: NDArray[np.float64]) -> Instance:
        """The same instance with other channel gains (time-varying channels)."""
        return Instance(
            name=self.name,
            bandwidth_hz=self.bandwidth_hz,
            noise_power_w=self.noise_power_w,
            users=self.users,
            servers=self.servers,
            channel_gain=np.asarray(channel_gain, dtype=np.float64),
            compute_rate=self.compute_rate,
            meta=self.meta,
        )

    # ---- JSON --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": FORMAT,
            "name": self.name,
            "bandwidth_hz": self.bandwidth_hz,
            "noise_power_w": self.noise_power_w,
            "users": [
                {"data_bits": u.data_bits, "tx_power_w": u.tx_power_w, "deadline_s": u.deadline_s}
                for u in self.users
            ],
            "servers": [{"capacity": s.capacity, "max_users": s.max_users} for s in self.servers],
            "channel_gain": self.channel_gain.tolist(),
            "compute_rate": self.compute_rate.tolist(),
        }
        if self.meta:
            data["meta"] = self.meta
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Instance:
        return _parse(data)


def check_size(
    n_users: int, n_servers: int, users_field: str = "users", servers_field: str = "servers"
) -> None:
    """Refuse N users and M servers beyond USERS_LIMIT, SERVERS_LIMIT or PAIRS_LIMIT (before any work).

    ``users_field``/``servers_field`` name what the user set (``users`` in a file, ``--users`` on
    the command line).
    """
    if n_users > USERS_LIMIT:
        raise QdtInputError(
            users_field,
            f"at most {USERS_LIMIT:,} users",
            f"{n_users:,}",
            "split the users into several instances",
        )
    if n_servers > SERVERS_LIMIT:
        raise QdtInputError(
            servers_field,
            f"at most {SERVERS_LIMIT:,} servers",
            f"{n_servers:,}",
            "split the servers into several instances",
        )
    if n_users * n_servers > PAIRS_LIMIT:
        raise QdtInputError(
            f"{users_field}/{servers_field}",
            f"at most {PAIRS_LIMIT:,} user-server pairs N·M",
            f"{n_users:,}×{n_servers:,} = {n_users * n_servers:,}",
            "use fewer users or fewer servers per instance",
        )


def load_instance(path: str | os.PathLike[str]) -> Instance:
    """Read and validate an instance file; every problem is a QdtInputError naming the field."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        size = 0  # reading says what is wrong
    if size > FILE_BYTES_LIMIT:
        raise QdtInputError(
            "FILE",
            f"an instance file of at most {FILE_BYTES_LIMIT // 2**20} MiB",
            f"{path}: {size / 2**20:,.0f} MiB",
            f"the largest instance, {PAIRS_LIMIT:,} user-server pairs, takes about 70 MB",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QdtInputError("FILE", "an existing instance file", str(path)) from None
    except IsADirectoryError:
        raise QdtInputError("FILE", "an instance file, not a directory", str(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise QdtInputError("FILE", "a readable UTF-8 JSON file", f"{path}: {error}") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise QdtInputError(
            "FILE",
            f"valid JSON in the {FORMAT} format",
            f"{path}: {error.msg} at line {error.lineno} column {error.colno}",
        ) from None
    except ValueError as error:  # NaN / Infinity literals
        raise QdtInputError("FILE", "finite JSON numbers", f"{path}: {error}") from None
    except RecursionError:
        raise QdtInputError(
            "FILE",
            f"JSON in the {FORMAT} format (lists and objects nested 3 deep)",
            f"lists or objects nested too deep to parse, in {path}",
            "see docs/design.md §1 for the format, or write one with `qdt instance generate`",
        ) from None
    return _parse(data)


def save_instance(instance: Instance, path: str | os.PathLike[str]) -> None:
    """Write atomically (temporary file + rename), so a crash never leaves half a file."""
    write_json_atomic(path, instance.to_dict())


# ---- parsing ---------------------------------------------------------------------------
def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name} is not allowed")


def _parse(data: Any) -> Instance:
    if not isinstance(data, dict):
        raise QdtInputError("(top level)", f"a JSON object in the {FORMAT} format", type(data).__name__)
    missing = sorted(_REQUIRED_TOP - data.keys())
    if missing:
        raise QdtInputError(missing[0], "a required field", "nothing (field missing)")
    unknown = sorted(set(data) - _TOP_FIELDS)
    if unknown:
        raise QdtInputError(
            unknown[0], "no such field", "an unknown field", f"known fields: {sorted(_TOP_FIELDS)}"
        )
    if data["format"] != FORMAT:
        raise QdtInputError("format", repr(FORMAT), data["format"])
    name = data["name"]
    if not isinstance(name, str):
        raise QdtInputError("name", "a string", name)
    users_raw = _list(data["users"], "users")
    servers_raw = _list(data["servers"], "servers")
    if not users_raw:
        raise QdtInputError("users", "at least one user (N >= 1)", "an empty list")
    if not servers_raw:
        raise QdtInputError("servers", "at least one server (M >= 1)", "an empty list")
    check_size(len(users_raw), len(servers_raw))
    users = _users(users_raw)
    servers = []
    for j, raw in enumerate(servers_raw):
        record = _record(raw, f"servers[{j}]", _SERVER_FIELDS)
        capacity = _number(record["capacity"], f"servers[{j}].capacity")
        max_users = record["max_users"]
        if isinstance(max_users, float) and max_users.is_integer():
            max_users = int(max_users)
        if not isinstance(max_users, int) or isinstance(max_users, bool):
            raise QdtInputError(f"servers[{j}].max_users", "an integer >= 1", max_users)
        servers.append(Server(capacity=capacity, max_users=max_users))
    return Instance(
        name=name,
        bandwidth_hz=_number(data["bandwidth_hz"], "bandwidth_hz"),
        noise_power_w=_number(data["noise_power_w"], "noise_power_w"),
        users=users,
        servers=tuple(servers),
        channel_gain=_matrix(data["channel_gain"], "channel_gain", len(users), len(servers)),
        compute_rate=_matrix(data["compute_rate"], "compute_rate", len(users), len(servers)),
        meta=_meta(data.get("meta", {})),
    )


def _users(users_raw: list[Any]) -> tuple[User, ...]:
    """The users; a fast path checks whole columns at once, the slow one names the first bad field."""
    columns = _columns(users_raw, _USER_FIELDS)
    if columns is not None:
        return tuple(User(*row) for row in zip(*(column.tolist() for column in columns)))
    return tuple(
        User(**{k: _number(v, f"users[{i}].{k}") for k, v in _record(u, f"users[{i}]", _USER_FIELDS).items()})
        for i, u in enumerate(users_raw)
    )


def _columns(records: list[Any], fields: tuple[str, ...]) -> list[NDArray[np.float64]] | None:
    """Each field of every record as a float array, or None unless all are objects with exactly
    ``fields`` holding finite JSON numbers > 0 (then the slow path finds and names the first problem)."""
    keys = set(fields)
    if not all(type(record) is dict and record.keys() == keys for record in records):
        return None
    columns = []
    for name in fields:
        column = _positive_floats([record[name] for record in records])
        if column is None:
            return None
        columns.append(column)
    return columns


def _positive_floats(values: list[Any]) -> NDArray[np.float64] | None:
    """``values`` as float64 if every one is a JSON number (not a bool), finite and > 0; else None."""
    if not set(map(type, values)) <= {int, float}:
        return None
    try:
        array = np.array(values, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        return None
    return array if bool(np.all(np.isfinite(array) & (array > 0))) else None


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise QdtInputError(name, "a JSON list", type(value).__name__)
    return value


def _record(value: Any, name: str, fields: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise QdtInputError(name, f"an object with fields {list(fields)}", type(value).__name__)
    for key in fields:
        if key not in value:
            raise QdtInputError(f"{name}.{key}", "a required field", "nothing (field missing)")
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise QdtInputError(f"{name}.{unknown[0]}", f"one of {list(fields)}", "an unknown field")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise QdtInputError(name, "a number", value)
    try:
        number = float(value)
    except OverflowError:
        raise QdtInputError(name, "a finite number > 0", "an integer beyond the float64 range") from None
    _check_positive(name, number)
    return number


def _check_positive(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise QdtInputError(name, "a finite number > 0", value)
    if not math.isfinite(value) or value <= 0:
        raise QdtInputError(name, "a finite number > 0", value)


def _matrix(value: Any, name: str, n: int, m: int) -> NDArray[np.float64]:
    rows = _list(value, name)
    if len(rows) != n:
        raise QdtInputError(name, f"{n} rows (one per user)", f"{len(rows)} rows")
    if all(type(row) is list and len(row) == m for row in rows):  # fast path: all at once
        flat = _positive_floats(list(itertools.chain.from_iterable(rows)))
        if flat is not None:
            return flat.reshape(n, m)
    out = np.empty((n, m), dtype=np.float64)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != m:
            got = f"{len(row)} entries" if isinstance(row, list) else type(row).__name__
            raise QdtInputError(f"{name}[{i}]", f"a list of {m} numbers (one per server)", got)
        for j, entry in enumerate(row):
            out[i, j] = _number(entry, f"{name}[{i}][{j}]")
    return out


def _meta(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise QdtInputError("meta", "a JSON object (free-form provenance)", type(value).__name__)
    return value
