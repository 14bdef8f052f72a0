"""Backend profiles (``backends/*.toml``): what an executor runs on, declared once, validated on load.

A profile is data, not code (docs/design.md §4): ``schema = "qdt-backend/1"``, the ``executor``
it uses and that executor's options. The generic keys are read here (``name``, ``executor``,
``description``, ``shots``, ``seed``, ``noise``: a noise profile name or an inline ``[noise]``
table of :class:`~qdt.noise.NoiseConfig` fields); every other table belongs to the executor, and
its :class:`~qdt.executors.registry.BackendSpec` parses it into ``BackendProfile.options``
(for ``ibm``: ``[device]``, ``[transpile]``, ``[runtime]``, ``[error_suppression]``,
``[estimator]``, see :mod:`qdt.executors.ibm.settings`). Profiles never hold a token.

This module is generic: it imports no backend. Resolving a name to a profile (search path,
``fake_<device>`` rules, ``executor:<name>``) and opening it is :mod:`qdt.executors.catalog`'s
job (:func:`~qdt.executors.catalog.load_backend_profile`, :func:`~qdt.executors.open_backend`).
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from qdt.errors import QdtInputError
from qdt.executors.base import validate_shots
from qdt.noise.config import NoiseConfig
from qdt.noise.profiles import profile_search_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from qdt.executors.registry import BackendSpec

SCHEMA = "qdt-backend/1"
DEFAULT_SHOTS = 1024  # shots of a sampling backend's profile that names none
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
BACKENDS_ENV = "QDT_BACKENDS_PATH"
BACKENDS_FOLDER = "backends"
GENERIC_KEYS = frozenset({"schema", "name", "executor", "description", "shots", "seed", "noise"})

SpecLookup = Callable[[str], "BackendSpec"]


class ProfileOptions(Protocol):
    """An executor's own parsed profile options (e.g. the ibm device and runtime settings)."""

    def to_dict(self) -> dict[str, Any]: ...

    @property
    def runs_on(self) -> str: ...

    @property
    def summary(self) -> str: ...


@dataclass(frozen=True)
class BackendProfile:
    """A validated profile: the generic fields and the executor's parsed ``options``."""

    name: str
    executor: str
    description: str = ""
    source: str = ""  # the file it came from, or "rule:<pattern>" / "executor:<name>"
    shots: int | None = None
    seed: int | None = None
    noise: NoiseConfig | str | None = None  # inline [noise] table, or a noise profile name
    options: ProfileOptions | None = None  # parsed by the executor's BackendSpec

    @property
    def has_noise(self) -> bool:
        """A noise model is named (a profile name counts; an all-zero [noise] table does not)."""
        return self.noise is not None and not (isinstance(self.noise, NoiseConfig) and self.noise.is_trivial)

    @property
    def runs_on(self) -> str:
        return self.options.runs_on if self.options is not None else "this machine"

    @property
    def summary(self) -> str:
        """The options worth a glance in a listing."""
        if self.options is not None:
            return self.options.summary
        if self.noise is None:
            return ""
        return f"noise {self.noise}" if isinstance(self.noise, str) else "noise"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view (the profile holds no secret, so all of it may be printed)."""
        data: dict[str, Any] = {
            "name": self.name,
            "executor": self.executor,
            "description": self.description,
            "source": self.source,
            "shots": self.shots,
            "seed": self.seed,
        }
        if self.options is not None:
            data.update(self.options.to_dict())
        if self.noise is not None:
            data["noise"] = self.noise if isinstance(self.noise, str) else dataclasses.asdict(self.noise)
        return data


# ---- where profiles live ---------------------------------------------------------------------
def backend_dirs() -> list[Path]:
    """Where profile names are looked up: $QDT_BACKENDS_PATH entries, then the ``backends/`` shipped
    in the installed package, then the checkout's (:func:`qdt.noise.profiles.profile_search_path`)."""
    return profile_search_path(BACKENDS_ENV, BACKENDS_FOLDER)


def profile_files() -> dict[str, Path]:
    """Every ``<name>.toml`` on the search path; earlier directories win."""
    found: dict[str, Path] = {}
    for directory in backend_dirs():
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                found.setdefault(path.stem, path)
    return found


# ---- parsing ---------------------------------------------------------------------------------
def read_profile_file(path: Path, lookup: SpecLookup) -> BackendProfile:
    """Parse and validate ``path``; the profile's name must be the file's stem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise QdtInputError(str(path), "valid TOML", str(error)) from None
    except OSError as error:
        raise QdtInputError(str(path), "a readable file", error.strerror or str(error)) from None
    profile = read_profile(data, str(path), lookup)
    if profile.name != path.stem:
        raise QdtInputError(
            f"{path}: name", f"the file's stem {path.stem!r}", profile.name, "rename the file or the profile"
        )
    return profile


def read_profile(data: Mapping[str, Any], where: str, lookup: SpecLookup) -> BackendProfile:
    """Validate a profile mapping (parsed TOML); every error names the offending field.

    ``lookup(executor)`` gives the executor's :class:`~qdt.executors.registry.BackendSpec`
    (unknown names raise), which says which options and tables the profile may set.
    """
    reader = TableReader(data, f"{where}: ")
    if reader.get("schema", str) != SCHEMA:
        raise QdtInputError(f"{where}: schema", f"{SCHEMA!r}", data.get("schema"))
    name = reader.require("name", str)
    if not NAME_PATTERN.match(name):
        raise QdtInputError(f"{where}: name", "letters, digits, '_', '-', '.'", name)
    executor = reader.require("executor", str)
    try:
        spec = lookup(executor)
    except QdtInputError as error:
        raise QdtInputError(f"{where}: executor", error.expected, error.got, error.fix) from None
    reader.reject_unknown(set(GENERIC_KEYS | spec.tables), f" for executor {executor!r}")
    shots = reader.get("shots", int)
    if shots is not None:
        validate_shots(shots, f"{where}: shots")
        if "shots" not in spec.options:
            raise QdtInputError(
                f"{where}: shots", f"no shots for the {executor!r} executor", shots, spec.hints.get("shots")
            )
    seed = reader.get("seed", int)
    if seed is not None and seed < 0:
        raise QdtInputError(f"{where}: seed", "a non-negative integer", seed)
    noise = parse_noise_table(data.get("noise"), where)
    if noise is not None and "noise" not in spec.options:
        raise QdtInputError(
            f"{where}: noise",
            f"no noise for the {executor!r} executor",
            "a noise entry",
            spec.hints.get("noise"),
        )
    return BackendProfile(
        name=name,
        executor=executor,
        description=reader.get("description", str) or "",
        source=where,
        shots=spec.default_shots if shots is None else shots,
        seed=seed,
        noise=noise,
        options=spec.parse_options(data, where) if spec.parse_options is not None else None,
    )


def parse_noise_table(value: object, where: str) -> NoiseConfig | str | None:
    """A profile's ``noise``: a noise profile name, or a ``[noise]`` table of NoiseConfig fields."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, Mapping):
        raise QdtInputError(
            f"{where}: noise", "a noise profile name or a [noise] table of NoiseConfig fields", value
        )
    known = {f.name for f in dataclasses.fields(NoiseConfig)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise QdtInputError(
            f"{where}: noise.{unknown[0]}", "a NoiseConfig field: " + ", ".join(sorted(known)), unknown[0]
        )
    options = dict(value)
    if "noiseless_gates" in options and isinstance(options["noiseless_gates"], list):
        options["noiseless_gates"] = tuple(options["noiseless_gates"])
    try:
        return NoiseConfig(**options)
    except QdtInputError as error:
        raise QdtInputError(f"{where}: {error.field}", error.expected, error.got, error.fix) from None


class TableReader:
    """Typed access to one TOML table; errors name ``<where><key>`` (where = "file: " or "file: table.")."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        if not isinstance(data, Mapping):
            raise QdtInputError(where, "a TOML table", data)
        self.data = data
        self.where = where

    def _name(self, key: str) -> str:
        return self.where + key

    def get(self, key: str, kind: type) -> Any:
        if key not in self.data:
            return None
        value = self.data[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise QdtInputError(self._name(key), f"a {kind.__name__}", value)
        return value

    def require(self, key: str, kind: type) -> Any:
        if key not in self.data:
            raise QdtInputError(self._name(key), f"a {kind.__name__} (required)", None)
        return self.get(key, kind)

    def table(self, key: str, required: bool = False) -> Mapping[str, Any]:
        if key not in self.data:
            if required:
                raise QdtInputError(self._name(key), "a table (required)", None)
            return {}
        value = self.data[key]
        if not isinstance(value, Mapping):
            raise QdtInputError(self._name(key), "a table", value)
        return value

    def reject_unknown(self, allowed: set[str], note: str = "") -> None:
        unknown = sorted(set(self.data) - allowed)
        if unknown:
            raise QdtInputError(
                self._name(unknown[0]), "one of " + ", ".join(sorted(allowed)) + note, unknown[0]
            )
