"""Backend profiles (``backends/*.toml``): what an executor runs on, declared once, validated on load.

>>> profile = load_backend_profile("fake_torino")          # a name, or a path to a TOML file
>>> executor = open_backend("fake_torino", shots=512)       # an Executor ready for prepare()/run()

A profile is data, not code (DESIGN.md §4): ``schema = "qdt-backend/1"``, the ``executor`` it
uses (statevector, density, aer, ibm) and that executor's options. IBM profiles name a device
(``[device]``: ``provider = "fake"`` for qiskit-ibm-runtime's local testing mode,
``"ibm_cloud"`` for a real device) and never a token: the token comes from ``QISKIT_IBM_TOKEN``
or a saved Qiskit account (see :mod:`qdt.executors.ibm.connect`).

Names resolve in this order: a path to a ``.toml`` file; ``<name>.toml`` in the directories of
``$QDT_BACKENDS_PATH`` (``os.pathsep``-separated) and then the repository's ``backends/``;
the rules ``fake_<device>`` (any fake backend of ``qiskit_ibm_runtime.fake_provider``, e.g.
``fake_kawasaki``) and ``ibm_<device>`` (a real device of that name, account defaults); and
finally a plain executor name (``statevector``, ``density``, ``aer``).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qdt.errors import QdtInputError
from qdt.executors.base import Capabilities, Executor
from qdt.noise.config import NoiseConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SCHEMA = "qdt-backend/1"
EXECUTORS = ("statevector", "density", "aer", "ibm")
PROVIDERS = ("fake", "ibm_cloud")
MODES = ("job", "batch", "session")
DD_SEQUENCES = ("XX", "XpXm", "XY4")
ON_TIMEOUT = ("leave", "cancel")
CHANNELS = ("ibm_quantum_platform", "ibm_cloud")
DEFAULT_SHOTS = 1024
MAX_SHOTS = 10_000_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
REPO_BACKENDS_DIR = Path(__file__).resolve().parents[2] / "backends"


@dataclass(frozen=True)
class DeviceSpec:
    """The device an ``ibm`` profile runs on. Holds no secret."""

    provider: str  # "fake" (local testing mode) or "ibm_cloud" (a real device)
    name: str  # fake: "fake_torino"; ibm_cloud: "ibm_torino"
    channel: str | None = None  # ibm_cloud: default from the saved account / QISKIT_IBM_CHANNEL
    instance: str | None = None  # ibm_cloud: CRN or name; default from the saved account
    account: str | None = None  # ibm_cloud: name of a saved account (QiskitRuntimeService(name=...))

    @property
    def local(self) -> bool:
        return self.provider == "fake"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class RuntimeSettings:
    """How jobs are submitted and watched (``[runtime]``)."""

    mode: str = "job"  # job | batch | session (Qiskit Runtime execution modes)
    timeout_s: float = 3600.0  # qdt's own wall-clock limit per job, cloud and local alike
    poll_interval_s: float = 2.0  # first status poll; grows ×1.5 up to max_poll_interval_s
    max_poll_interval_s: float = 30.0
    retries: int = 6  # transient service errors retried this many times per call
    retry_base_s: float = 1.0  # backoff: base·2^k (capped at 60 s), with jitter
    on_timeout: str = "leave"  # leave the job running (fetch it later) or cancel it
    max_execution_time_s: int | None = None  # the service's own limit (Runtime max_execution_time)


@dataclass(frozen=True)
class ErrorSuppression:
    """Runtime error suppression for SamplerV2 and EstimatorV2 (``[error_suppression]``)."""

    dynamical_decoupling: bool = False
    dd_sequence: str = "XY4"
    twirling_gates: bool = False
    twirling_measure: bool = False


@dataclass(frozen=True)
class EstimatorSettings:
    """EstimatorV2 for the ⟨Z_i⟩ readout (``[estimator]``); probabilities always use SamplerV2."""

    use_for_expval: bool = False
    resilience_level: int = 1  # 0 none, 1 readout mitigation (TREX), 2 + ZNE


@dataclass(frozen=True)
class BackendProfile:
    name: str
    executor: str
    description: str = ""
    source: str = ""  # the file it came from, or "rule:<pattern>" / "executor:<name>"
    shots: int | None = None
    seed: int | None = None
    optimization_level: int = 2
    transpile_seed: int | None = 1234
    device: DeviceSpec | None = None
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    suppression: ErrorSuppression = field(default_factory=ErrorSuppression)
    estimator: EstimatorSettings = field(default_factory=EstimatorSettings)
    noise: NoiseConfig | str | None = None  # inline [noise] table, or a noise profile name

    @property
    def capabilities(self) -> Capabilities:
        """What the executor this profile opens can do (no connection, no import of Runtime)."""
        if self.executor == "statevector":
            return Capabilities(differentiable=True, shots=False, noisy=False, remote=False)
        noisy = self.noise is not None and not (isinstance(self.noise, NoiseConfig) and self.noise.is_trivial)
        if self.executor == "density":
            return Capabilities(
                differentiable=self.shots is None, shots=self.shots is not None, noisy=noisy, remote=False
            )
        if self.executor == "aer":
            return Capabilities(differentiable=False, shots=True, noisy=noisy, remote=False)
        assert self.device is not None
        return Capabilities(differentiable=False, shots=True, noisy=True, remote=not self.device.local)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view (the profile holds no secret, so all of it may be printed)."""
        data: dict[str, Any] = {
            "name": self.name,
            "executor": self.executor,
            "description": self.description,
            "source": self.source,
            "shots": self.shots,
            "seed": self.seed,
            "capabilities": dataclasses.asdict(self.capabilities),
        }
        if self.executor == "ibm":
            assert self.device is not None
            data.update(
                device=self.device.to_dict(),
                optimization_level=self.optimization_level,
                transpile_seed=self.transpile_seed,
                runtime=dataclasses.asdict(self.runtime),
                error_suppression=dataclasses.asdict(self.suppression),
                estimator=dataclasses.asdict(self.estimator),
            )
        if self.noise is not None:
            data["noise"] = self.noise if isinstance(self.noise, str) else dataclasses.asdict(self.noise)
        return data


# ---- loading ---------------------------------------------------------------------------------
def backend_dirs() -> list[Path]:
    """Where profile names are looked up: $QDT_BACKENDS_PATH entries, then the repository's backends/."""
    dirs = [Path(p) for p in os.environ.get("QDT_BACKENDS_PATH", "").split(os.pathsep) if p]
    return [*dirs, REPO_BACKENDS_DIR]


def profile_files() -> dict[str, Path]:
    """Every ``<name>.toml`` on the search path; earlier directories win."""
    found: dict[str, Path] = {}
    for directory in backend_dirs():
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                found.setdefault(path.stem, path)
    return found


def load_backend_profile(spec: str | Path | BackendProfile) -> BackendProfile:
    """A profile by name, by path, by rule (``fake_<device>``, ``ibm_<device>``) or executor name."""
    if isinstance(spec, BackendProfile):
        return spec
    text = str(spec)
    if not text:
        raise QdtInputError("backend", "a profile name or a path to a .toml file", text)
    path = Path(text).expanduser()
    if text.endswith(".toml") or os.sep in text or (os.altsep and os.altsep in text):
        if not path.is_file():
            raise QdtInputError("backend", "an existing profile file", text, "see `qdt backends list`")
        return parse_profile_file(path)
    files = profile_files()
    if text in files:
        return parse_profile_file(files[text])
    ruled = profile_from_rule(text)
    if ruled is not None:
        return ruled
    if text in ("statevector", "density", "aer"):
        return BackendProfile(name=text, executor=text, source=f"executor:{text}")
    if text == "ibm":
        raise QdtInputError(
            "backend",
            "a device for the ibm executor",
            text,
            "name one: fake_<device> (local testing mode, e.g. fake_torino) or ibm_<device> (ibm_torino)",
        )
    names = sorted(files)
    raise QdtInputError(
        "backend",
        "a profile (" + ", ".join(names) + "), fake_<device>, ibm_<device> or a .toml path",
        text,
        "see `qdt backends list`",
    )


def parse_profile_file(path: Path) -> BackendProfile:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise QdtInputError(str(path), "valid TOML", str(error)) from None
    except OSError as error:
        raise QdtInputError(str(path), "a readable file", error.strerror or str(error)) from None
    profile = parse_profile(data, where=str(path))
    if profile.name != path.stem:
        raise QdtInputError(
            f"{path}: name", f"the file's stem {path.stem!r}", profile.name, "rename the file or the profile"
        )
    return profile


_TOP_KEYS = {"schema", "name", "executor", "description", "shots", "seed", "noise"}
_IBM_TABLES = {"device", "transpile", "runtime", "error_suppression", "estimator"}


def parse_profile(data: Mapping[str, Any], where: str = "profile") -> BackendProfile:
    """Validate a profile mapping (parsed TOML); every error names the offending field."""
    reader = _Reader(data, f"{where}: ")
    if reader.get("schema", str) != SCHEMA:
        raise QdtInputError(f"{where}: schema", f"{SCHEMA!r}", data.get("schema"))
    name = reader.require("name", str)
    if not _NAME.match(name):
        raise QdtInputError(f"{where}: name", "letters, digits, '_', '-', '.'", name)
    executor = reader.require("executor", str)
    if executor not in EXECUTORS:
        raise QdtInputError(f"{where}: executor", "one of " + ", ".join(EXECUTORS), executor)
    allowed = _TOP_KEYS | (_IBM_TABLES if executor == "ibm" else set())
    reader.reject_unknown(allowed, "" if executor == "ibm" else f" for executor {executor!r}")
    shots = reader.get("shots", int)
    if shots is not None:
        _check_shots(f"{where}: shots", shots)
    if executor == "aer" and shots is None:
        shots = DEFAULT_SHOTS
    seed = reader.get("seed", int)
    if seed is not None and seed < 0:
        raise QdtInputError(f"{where}: seed", "a non-negative integer", seed)
    noise = _parse_noise(data.get("noise"), where)
    if noise is not None and executor not in ("density", "aer"):
        raise QdtInputError(
            f"{where}: noise", "no noise table for this executor (only density and aer)", "a table"
        )
    common: dict[str, Any] = {
        "name": name,
        "executor": executor,
        "description": reader.get("description", str) or "",
        "source": where,
        "shots": shots,
        "seed": seed,
        "noise": noise,
    }
    if executor != "ibm":
        if executor == "statevector" and shots is not None:
            raise QdtInputError(
                f"{where}: shots", "no shots (statevector is exact)", shots, "use density or aer"
            )
        return BackendProfile(**common)
    device = _parse_device(reader.table("device", required=True), f"{where}: device")
    transpile = reader.table("transpile")
    t_reader = _Reader(transpile, f"{where}: transpile.")
    t_reader.reject_unknown({"optimization_level", "seed"})
    level = t_reader.get("optimization_level", int)
    level = 2 if level is None else level
    if level not in (0, 1, 2, 3):
        raise QdtInputError(f"{where}: transpile.optimization_level", "0, 1, 2 or 3", level)
    transpile_seed = t_reader.get("seed", int) if "seed" in transpile else 1234
    return BackendProfile(
        **{**common, "shots": DEFAULT_SHOTS if shots is None else shots},
        optimization_level=level,
        transpile_seed=transpile_seed,
        device=device,
        runtime=_parse_dataclass(RuntimeSettings, reader.table("runtime"), f"{where}: runtime"),
        suppression=_parse_dataclass(
            ErrorSuppression, reader.table("error_suppression"), f"{where}: error_suppression"
        ),
        estimator=_parse_dataclass(EstimatorSettings, reader.table("estimator"), f"{where}: estimator"),
    )


def _check_shots(field_name: str, shots: int) -> None:
    if not 1 <= shots <= MAX_SHOTS:
        raise QdtInputError(field_name, f"an integer from 1 to {MAX_SHOTS}", shots)


def _parse_device(table: Mapping[str, Any], where: str) -> DeviceSpec:
    reader = _Reader(table, f"{where}.")
    reader.reject_unknown({"provider", "name", "channel", "instance", "account"})
    provider = reader.require("provider", str)
    if provider not in PROVIDERS:
        raise QdtInputError(f"{where}.provider", "'fake' (local testing mode) or 'ibm_cloud'", provider)
    name = reader.require("name", str)
    extra = {k: reader.get(k, str) for k in ("channel", "instance", "account")}
    if provider == "fake":
        given = [k for k, v in extra.items() if v]
        if given:
            raise QdtInputError(f"{where}.{given[0]}", "no account fields for a fake device", extra[given[0]])
        fake_backend_class(name, field_name=f"{where}.name")  # the fake device must exist
    else:
        if not re.match(r"^[a-z][a-z0-9_]*$", name):
            raise QdtInputError(f"{where}.name", "an IBM device name such as 'ibm_torino'", name)
        channel = extra["channel"]
        if channel is not None and channel not in CHANNELS:
            raise QdtInputError(f"{where}.channel", "one of " + ", ".join(CHANNELS), channel)
    return DeviceSpec(provider=provider, name=name, **extra)


def _parse_dataclass(cls: type, table: Mapping[str, Any], where: str) -> Any:
    reader = _Reader(table, f"{where}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    reader.reject_unknown(set(fields))
    values: dict[str, Any] = {}
    for key, spec in fields.items():
        if key not in table:
            continue
        kind = {"bool": bool, "str": str, "int": int, "float": float}[_base_type(spec.type)]
        values[key] = reader.get(key, kind)
    settings = cls(**values)
    _check_settings(settings, where)
    return settings


def _base_type(annotation: object) -> str:
    text = str(annotation)
    for name in ("bool", "str", "float", "int"):
        if text.startswith(name):
            return name
    raise AssertionError(f"unsupported field type {annotation}")


def _check_settings(settings: object, where: str) -> None:
    if isinstance(settings, RuntimeSettings):
        if settings.mode not in MODES:
            raise QdtInputError(f"{where}.mode", "one of " + ", ".join(MODES), settings.mode)
        if settings.on_timeout not in ON_TIMEOUT:
            raise QdtInputError(f"{where}.on_timeout", "'leave' or 'cancel'", settings.on_timeout)
        for key in ("timeout_s", "poll_interval_s", "max_poll_interval_s", "retry_base_s"):
            value = getattr(settings, key)
            if not math.isfinite(value) or value <= 0:
                raise QdtInputError(f"{where}.{key}", "a positive number of seconds", value)
        if settings.max_poll_interval_s < settings.poll_interval_s:
            raise QdtInputError(
                f"{where}.max_poll_interval_s",
                f">= poll_interval_s ({settings.poll_interval_s})",
                settings.max_poll_interval_s,
            )
        if not 0 <= settings.retries <= 20:
            raise QdtInputError(f"{where}.retries", "an integer from 0 to 20", settings.retries)
        if settings.max_execution_time_s is not None and settings.max_execution_time_s < 1:
            raise QdtInputError(
                f"{where}.max_execution_time_s", "a positive number of seconds", settings.max_execution_time_s
            )
    elif isinstance(settings, ErrorSuppression):
        if settings.dd_sequence not in DD_SEQUENCES:
            raise QdtInputError(
                f"{where}.dd_sequence", "one of " + ", ".join(DD_SEQUENCES), settings.dd_sequence
            )
    elif isinstance(settings, EstimatorSettings):
        if settings.resilience_level not in (0, 1, 2):
            raise QdtInputError(f"{where}.resilience_level", "0, 1 or 2", settings.resilience_level)


def _parse_noise(value: object, where: str) -> NoiseConfig | str | None:
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


class _Reader:
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


# ---- rules: fake_<device>, ibm_<device> --------------------------------------------------------
def fake_device_names() -> list[str]:
    """Every ``fake_<device>`` of ``qiskit_ibm_runtime.fake_provider`` (from class names; nothing built)."""
    from qiskit_ibm_runtime import fake_provider
    from qiskit_ibm_runtime.fake_provider.fake_backend import FakeBackendV2

    names = set()
    for attribute in dir(fake_provider):
        cls = getattr(fake_provider, attribute)
        if isinstance(cls, type) and issubclass(cls, FakeBackendV2) and attribute.startswith("Fake"):
            stem = attribute[len("Fake") :]
            stem = stem[:-2] if stem.endswith("V2") else stem
            if stem and stem != "Fractional" + "Backend":
                names.add("fake_" + re.sub(r"(?<!^)(?=[A-Z])", "_", stem).lower())
    return sorted(names)


def fake_backend_class(name: str, field_name: str = "device.name") -> type:
    """The fake backend class of ``fake_<device>`` (fake_torino: FakeTorino, fake_manila: FakeManilaV2)."""
    from qiskit_ibm_runtime import fake_provider
    from qiskit_ibm_runtime.fake_provider.fake_backend import FakeBackendV2

    if not name.startswith("fake_") or len(name) <= len("fake_"):
        raise QdtInputError(field_name, "a fake device name 'fake_<device>' such as 'fake_torino'", name)
    stem = "".join(part.capitalize() for part in name[len("fake_") :].split("_"))
    for candidate in (f"Fake{stem}", f"Fake{stem}V2"):
        cls = getattr(fake_provider, candidate, None)
        if isinstance(cls, type) and issubclass(cls, FakeBackendV2):
            return cls
    raise QdtInputError(
        field_name,
        "a fake device of qiskit_ibm_runtime.fake_provider",
        name,
        "see `qdt backends list --json` (fake_devices)",
    )


def profile_from_rule(name: str) -> BackendProfile | None:
    """``fake_<device>`` and ``ibm_<device>`` with default options, or None if neither rule applies."""
    if name.startswith("fake_") and len(name) > len("fake_"):
        fake_backend_class(name, field_name="backend")
        return BackendProfile(
            name=name,
            executor="ibm",
            description=f"{name} snapshot in qiskit-ibm-runtime local testing mode (rule fake_<device>)",
            source="rule:fake_<device>",
            shots=DEFAULT_SHOTS,
            device=DeviceSpec(provider="fake", name=name),
            runtime=RuntimeSettings(poll_interval_s=0.2, max_poll_interval_s=2.0),
        )
    if re.match(r"^ibm_[a-z][a-z0-9_]*$", name):
        return BackendProfile(
            name=name,
            executor="ibm",
            description=f"IBM Quantum device {name}; account defaults (rule ibm_<device>)",
            source="rule:ibm_<device>",
            shots=DEFAULT_SHOTS,
            device=DeviceSpec(provider="ibm_cloud", name=name),
        )
    return None


def list_backend_profiles() -> list[BackendProfile]:
    """The profiles shipped on the search path (invalid files raise, naming the field)."""
    return [parse_profile_file(path) for path in profile_files().values()]


# ---- opening -----------------------------------------------------------------------------------
def open_backend(
    spec: str | Path | BackendProfile,
    *,
    shots: int | None = None,
    seed: int | np.random.SeedSequence | None = None,
    noise: NoiseConfig | str | object | None = None,
    job_dir: Path | None = None,
) -> Executor:
    """An executor for a profile (name, path or profile) or a plain executor name.

    ``shots``, ``seed`` and ``noise`` override the profile's. ``job_dir`` is where an ``ibm``
    executor keeps jobs.jsonl and fetched results (default:
    :func:`qdt.executors.ibm.jobs.default_job_dir`).
    """
    from qdt.executors.registry import executor_factory, get_executor

    profile = load_backend_profile(spec)
    if shots is not None:
        if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)):
            raise QdtInputError("shots", "a positive integer", shots)
        _check_shots("shots", int(shots))
        if profile.executor == "statevector":
            raise QdtInputError(
                "shots", "no shots for the exact statevector executor", shots, "use density or aer"
            )
        profile = dataclasses.replace(profile, shots=int(shots))
    run_seed = seed if seed is not None else profile.seed
    if profile.executor == "ibm":
        if noise is not None:
            raise QdtInputError("noise", "no noise model for an IBM device (its own noise applies)", noise)
        from qdt.executors.ibm.executor import IBMRuntimeExecutor

        return IBMRuntimeExecutor(profile, seed=run_seed, job_dir=job_dir)
    accepted = set(inspect.signature(executor_factory(profile.executor)).parameters)
    options: dict[str, object] = {}
    noise_value = noise if noise is not None else profile.noise
    if noise_value is not None:
        if "noise" not in accepted:
            raise QdtInputError(
                "noise", f"an executor that takes noise, not {profile.executor!r}", noise_value
            )
        options["noise"] = _resolve_noise(noise_value, profile.executor)
    if profile.shots is not None and "shots" in accepted:
        options["shots"] = profile.shots
    if "seed" in accepted:
        options["seed"] = (
            run_seed if isinstance(run_seed, np.random.SeedSequence) else np.random.SeedSequence(run_seed)
        )
    return get_executor(profile.executor, **options)


def _resolve_noise(value: object, executor: str) -> object:
    """A NoiseConfig or noise-profile object for ``executor``; names go through qdt.noise.profiles."""
    if isinstance(value, str):
        try:
            from qdt.noise.profiles import load_noise_profile
        except ImportError:
            raise QdtInputError(
                "noise", "a [noise] table (named noise profiles are not available)", value
            ) from None
        value = load_noise_profile(value)
    if executor == "density" and not isinstance(value, NoiseConfig):
        to_config = getattr(value, "to_noise_config", None)
        if to_config is None:
            raise QdtInputError("noise", "a NoiseConfig or a noise profile", type(value).__name__)
        return to_config()
    return value
