"""How a backend joins qdt: a :class:`BackendSpec`, registered with :func:`register_backend`.

A backend module (``statevector``, ``density``, ``aer/``, ``ibm/``) defines one spec, named
``BACKEND``: the factory that opens its executor from a profile, the keyword options
:func:`~qdt.executors.open_backend` may pass it, how it reads its own tables of a profile file,
the names it resolves without a file (``fake_<device>``), and its capabilities for a profile
(asked without opening anything: no connection, no import of a device's client). This module
is generic: it imports no backend; :mod:`qdt.executors.catalog` knows the built-in ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from qdt.errors import QdtInputError
from qdt.executors.base import Capabilities, Executor

if TYPE_CHECKING:
    from qdt.executors.profiles import BackendProfile, ProfileOptions


@dataclass(frozen=True)
class OpenRequest:
    """What :func:`~qdt.executors.open_backend` hands a backend's factory, already validated."""

    profile: BackendProfile  # shots already overridden by the caller's
    seed: object  # the caller's seed, else the profile's (None: fresh entropy)
    noise: object  # the caller's noise, else the profile's (NoiseConfig, noise profile or its name)
    job_dir: Path | None  # where jobs are kept (backends that submit jobs)
    options: Mapping[str, Any] = field(default_factory=dict)  # the backend's own options, by name


@dataclass(frozen=True)
class NameRule:
    """Names a backend resolves without a profile file, e.g. ``fake_<device>``."""

    pattern: str  # for listings: "fake_<device>"
    meaning: str
    resolve: Callable[[str], BackendProfile | None]  # None: the name is not of this pattern


@dataclass(frozen=True)
class BackendSpec:
    """One backend: its factory, the options it takes, its profile tables, rules and capabilities."""

    name: str
    factory: Callable[[OpenRequest], Executor]
    capabilities: Callable[[BackendProfile], Capabilities]
    options: tuple[str, ...] = ()  # keyword options of open_backend it takes (seed, job_dir: always)
    hints: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # refused option -> fix
    tables: frozenset[str] = frozenset()  # profile keys it reads besides the generic ones
    parse_options: Callable[[Mapping[str, Any], str], ProfileOptions] | None = None  # (data, where)
    default_shots: int | None = None  # shots of a profile file that names none
    rules: tuple[NameRule, ...] = ()
    needs: str | None = None  # what a profile must add before the executor can run (None: nothing)


_BACKENDS: dict[str, BackendSpec] = {}


def register_backend(spec: BackendSpec) -> None:
    """Make ``spec`` available to ``open_backend`` and profiles (``executor = "<name>"``)."""
    if not isinstance(spec, BackendSpec):
        raise QdtInputError("spec", "a qdt.executors.registry.BackendSpec", type(spec).__name__)
    _BACKENDS[spec.name] = spec


def registered_backend(name: str) -> BackendSpec | None:
    """The spec registered under ``name``, or None."""
    return _BACKENDS.get(name)


def registered_names() -> tuple[str, ...]:
    return tuple(sorted(_BACKENDS))
