"""The one way to open a backend: :func:`open_backend`, over the built-in and registered backends.

>>> executor = open_backend("fake_torino", shots=512)        # a profile name, path or BackendProfile
>>> executor = open_backend("executor:aer", shots=100)       # an executor with its default options
>>> executor = open_backend("density", noise="depol-1e-3")  # the shipped profile, noise overridden

Names resolve in this order: a path to a ``.toml`` file; ``executor:<name>`` (the executor
with its defaults, no profile file: ``executor:aer`` is exact, while the ``aer`` profile samples
1024 shots); ``<name>.toml`` in the directories of ``$QDT_BACKENDS_PATH`` (``os.pathsep``-
separated), then in the profiles shipped inside the package (``_profiles/backends``), then in
the checkout's ``backends/`` (:func:`~qdt.executors.profiles.profile_files`); the backends'
name rules (``fake_<device>``, ``ibm_<device>``); and finally a plain executor name.

This module knows the built-in backend modules (:data:`BUILTIN_BACKENDS`) and imports each
only when one of its profiles is asked for (the ``ibm`` client and the fake devices are slow to
import); other backends join with :func:`~qdt.executors.registry.register_backend`.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from qdt.errors import QdtInputError
from qdt.executors.base import Capabilities, Executor, validate_shots
from qdt.executors.profiles import BackendProfile, profile_files, read_profile, read_profile_file
from qdt.executors.registry import (
    BackendSpec,
    NameRule,
    OpenRequest,
    register_backend,
    registered_backend,
    registered_names,
)

# name -> module defining BACKEND (a BackendSpec), imported on first use
BUILTIN_BACKENDS: dict[str, str] = {
    "statevector": "qdt.executors.statevector",
    "density": "qdt.executors.density",
    "aer": "qdt.executors.aer.executor",
    "ibm": "qdt.executors.ibm.executor",
}
EXECUTOR_PREFIX = "executor:"
ALWAYS_ACCEPTED = ("seed", "job_dir")


def executor_names() -> tuple[str, ...]:
    """Every backend that can be opened: the built-in ones and those registered at run time."""
    return tuple(sorted(set(BUILTIN_BACKENDS) | set(registered_names())))


def backend_spec(name: str) -> BackendSpec:
    """The :class:`~qdt.executors.registry.BackendSpec` of executor ``name``; unknown names raise."""
    spec = registered_backend(name)
    if spec is not None:
        return spec
    if name not in BUILTIN_BACKENDS:
        raise QdtInputError(
            "executor",
            "one of " + ", ".join(repr(n) for n in executor_names()),
            name,
            "pick one of the listed executors",
        )
    spec = importlib.import_module(BUILTIN_BACKENDS[name]).BACKEND
    assert isinstance(spec, BackendSpec) and spec.name == name
    register_backend(spec)
    return spec


def name_rules() -> Iterator[NameRule]:
    """The name rules of every backend (``fake_<device>``, ``ibm_<device>``)."""
    for name in executor_names():
        yield from backend_spec(name).rules


# ---- profiles ----------------------------------------------------------------------------------
def parse_profile(data: Mapping[str, Any], where: str = "profile") -> BackendProfile:
    """Validate a profile mapping (parsed TOML); every error names the offending field."""
    return read_profile(data, where, backend_spec)


def parse_profile_file(path: Path) -> BackendProfile:
    return read_profile_file(path, backend_spec)


def list_backend_profiles() -> list[BackendProfile]:
    """The profiles shipped on the search path (invalid files raise, naming the field)."""
    return [parse_profile_file(path) for path in profile_files().values()]


def executor_profile(name: str) -> BackendProfile:
    """Executor ``name`` with its default options, as if no profile file named it."""
    spec = backend_spec(name)
    if spec.needs is not None:
        raise QdtInputError("backend", f"a profile for the {name} executor", name, spec.needs)
    return BackendProfile(name=name, executor=name, source=f"{EXECUTOR_PREFIX}{name}")


def load_backend_profile(backend: str | Path | BackendProfile) -> BackendProfile:
    """A profile by path, ``executor:<name>``, search-path name, rule or executor name (see above)."""
    if isinstance(backend, BackendProfile):
        return backend
    text = str(backend)
    if not text:
        raise QdtInputError("backend", "a profile name or a path to a .toml file", text)
    if text.endswith(".toml") or os.sep in text or (os.altsep and os.altsep in text):
        path = Path(text).expanduser()
        if not path.is_file():
            raise QdtInputError("backend", "an existing profile file", text, "see `qdt backends list`")
        return parse_profile_file(path)
    if text.startswith(EXECUTOR_PREFIX):
        return executor_profile(text[len(EXECUTOR_PREFIX) :])
    files = profile_files()
    if text in files:
        return parse_profile_file(files[text])
    for rule in name_rules():
        profile = rule.resolve(text)
        if profile is not None:
            return profile
    if text in executor_names():
        return executor_profile(text)
    raise QdtInputError(
        "backend",
        "a profile ("
        + ", ".join(sorted(files))
        + "), fake_<device>, ibm_<device>, executor:<name> ("
        + ", ".join(executor_names())
        + ") or a .toml path",
        text,
        "see `qdt backends list`",
    )


def profile_capabilities(profile: BackendProfile) -> Capabilities:
    """What the executor ``profile`` opens can do, asked of its backend without opening it."""
    return backend_spec(profile.executor).capabilities(profile)


def backend_options(backend: str | Path | BackendProfile) -> tuple[str, ...]:
    """The keyword options :func:`open_backend` accepts for ``backend`` (always seed, job_dir)."""
    return (*ALWAYS_ACCEPTED, *backend_spec(load_backend_profile(backend).executor).options)


# ---- opening -----------------------------------------------------------------------------------
def open_backend(
    backend: str | Path | BackendProfile,
    *,
    shots: int | None = None,
    seed: object = None,
    noise: object = None,
    job_dir: Path | None = None,
    **options: Any,
) -> Executor:
    """An executor ready for ``prepare``/``run``, from a profile name, path or profile.

    ``shots`` and ``noise`` (a NoiseConfig, a noise profile or its name) override the
    profile's; ``seed`` (None, an int, a numpy SeedSequence or Generator) seeds the executor's
    randomness, else the profile's ``seed`` does; ``job_dir`` is where an executor that submits
    jobs keeps them (``ibm``: jobs.jsonl and results; default
    :func:`qdt.executors.ibm.jobs.default_job_dir`). Executors without randomness or jobs
    ignore ``seed`` and ``job_dir``. Other keyword options go to the executor (aer:
    ``mode``, ``engine``; density: ``method`` …); an option the backend does not take, ``None``
    aside, raises one QdtInputError naming it and the accepted ones.
    """
    profile = load_backend_profile(backend)
    spec = backend_spec(profile.executor)
    asked = {"shots": shots, "noise": noise, **options}
    for key, value in asked.items():
        if value is not None and key not in spec.options:
            accepted = ", ".join(sorted({*ALWAYS_ACCEPTED, *spec.options}))
            raise QdtInputError(
                key,
                f"no {key} option for the {spec.name!r} backend (its options: {accepted})",
                value,
                spec.hints.get(key, f"see `qdt backends show {profile.name}`"),
            )
    if shots is not None:
        profile = dataclasses.replace(profile, shots=validate_shots(shots))
    request = OpenRequest(
        profile=profile,
        seed=seed if seed is not None else profile.seed,
        noise=noise if noise is not None else profile.noise,
        job_dir=None if job_dir is None else Path(job_dir),
        options={k: v for k, v in options.items() if v is not None},
    )
    return spec.factory(request)
