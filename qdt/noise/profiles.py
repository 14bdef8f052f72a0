"""Named noise profiles: ``noise_models/*.toml``, any TOML or snapshot path, or ``device:NAME``.

``load_noise_profile(spec)`` accepts

- a name of a file in ``noise_models/`` (``"depol-1e-3"`` loads ``noise_models/depol-1e-3.toml``;
  more folders can be listed in ``$QDT_NOISE_MODELS``, separated by ``os.pathsep``; the search
  order is :func:`profile_search_path`'s: those folders, then the copy shipped in the installed
  package, then the source checkout's ``noise_models/``);
- a path to a ``.toml`` profile or to a ``.json`` device snapshot (``qdt noise snapshot``);
- ``device:NAME``: the calibration of a fake backend of ``qiskit_ibm_runtime.fake_provider``
  (``device:fake_brisbane``); the circuit is transpiled to that device.

TOML schema ``qdt-noise/1`` (every key optional except ``schema``; unknown keys are errors)::

    schema = "qdt-noise/1"
    description = "free text"
    kind = "parametric"              # or "device"
    noiseless_gates = ["rz"]         # gates without gate noise

    [depolarizing]                   # after every gate of the logical circuit
    one_qubit = 1e-3                 # qiskit-aer depolarizing_error(p, 1)
    two_qubit = 1e-2                 # depolarizing_error(p, 2)

    [damping]                        # per qubit of every gate
    amplitude = 0.0                  # amplitude_damping_error(gamma)
    phase = 0.0                      # phase_damping_error(lambda)

    [thermal_relaxation]             # thermal_relaxation_error(T1, T2, gate time), per qubit
    t1_us = 250.0
    t2_us = 150.0                    # must be <= 2·T1
    gate_time_1q_ns = 60.0
    gate_time_2q_ns = 660.0

    [readout]                        # either the two flip probabilities, for every bit ...
    p1_given_0 = 0.02
    p0_given_1 = 0.03
    # ... or one assignment matrix per readout bit (bit 0 first), rows P(record | state):
    # matrices = [[[0.98, 0.02], [0.03, 0.97]], [[0.99, 0.01], [0.02, 0.98]]]

A device profile file holds ``kind = "device"`` and either ``backend = "fake_brisbane"`` or
``snapshot = "path/to/snapshot.json"`` (relative to the TOML file). Parametric profiles run on
both the ``density`` executor (:meth:`NoiseProfile.to_noise_config`) and ``aer``; device
profiles only on ``aer``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from qdt.errors import QdtInputError
from qdt.noise.config import NoiseConfig
from qdt.noise.device import DeviceCalibration, fake_backend

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SCHEMA = "qdt-noise/1"
DEVICE_PREFIX = "device:"
NOISE_MODELS_ENV = "QDT_NOISE_MODELS"
NOISE_MODELS_FOLDER = "noise_models"
# In a wheel, backends/ and noise_models/ of the repository ship as _profiles/<folder> inside the
# installed qdt package (pyproject.toml, force-include); a checkout reads them in place.
SHIPPED_PROFILES = "_profiles"
CHECKOUT_ROOT = Path(__file__).resolve().parents[2]

_SECTIONS: dict[str, frozenset[str]] = {
    "depolarizing": frozenset({"one_qubit", "two_qubit"}),
    "damping": frozenset({"amplitude", "phase"}),
    "thermal_relaxation": frozenset({"t1_us", "t2_us", "gate_time_1q_ns", "gate_time_2q_ns"}),
    "readout": frozenset({"p1_given_0", "p0_given_1", "matrices"}),
}
_TOP_KEYS = frozenset(
    {"schema", "description", "kind", "noiseless_gates", "backend", "snapshot"} | set(_SECTIONS)
)
_ROW_TOLERANCE = 1e-9


@dataclass(frozen=True)
class NoiseProfile:
    """A loaded, validated noise profile. ``kind`` is ``"parametric"`` or ``"device"``."""

    name: str
    kind: str
    description: str
    source: str

    def to_noise_config(self) -> NoiseConfig:
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "description": self.description, "source": self.source}


@dataclass(frozen=True)
class ParametricNoiseProfile(NoiseProfile):
    """Depolarizing, damping, thermal relaxation and readout error, the same on every qubit."""

    noise: NoiseConfig = field(default_factory=NoiseConfig)

    def to_noise_config(self) -> NoiseConfig:
        return self.noise

    def summary(self) -> dict[str, Any]:
        n = self.noise
        data = super().summary()
        data.update(
            depolarizing_1q=n.depolarizing_1q,
            depolarizing_2q=n.depolarizing_2q,
            amplitude_damping=n.amplitude_damping,
            phase_damping=n.phase_damping,
            thermal_t1_s=n.thermal_t1_s,
            thermal_t2_s=n.thermal_t2_s,
            gate_time_1q_s=n.gate_time_1q_s,
            gate_time_2q_s=n.gate_time_2q_s,
            readout=[list(map(list, m)) for m in n.readout],
            noiseless_gates=list(n.noiseless_gates),
        )
        return data


@dataclass(frozen=True, eq=False)
class DeviceNoiseProfile(NoiseProfile):
    """A device's calibration: the circuit is transpiled to the device and run with
    qiskit-aer's device noise model (``NoiseModel.from_backend``), on ``aer`` only."""

    backend_name: str = ""
    calibration: DeviceCalibration | None = None  # from a snapshot; None: read the fake backend

    @cached_property
    def backend(self) -> Any:
        """The fake backend (None for a snapshot)."""
        return None if self.calibration is not None else fake_backend(self.backend_name)

    @cached_property
    def target(self) -> Any:
        """The qiskit Target: transpilation target and source of the noise model."""
        if self.calibration is not None:
            return self.calibration.target()
        return self.backend.target

    @cached_property
    def cache_key(self) -> tuple[str, ...]:
        """Identifies the calibration (for transpilation caches)."""
        if self.calibration is None:
            return ("fake", self.backend_name)
        data = self.calibration.to_json() | {"created_at": ""}
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
        return ("snapshot", self.calibration.backend, digest)

    def device_calibration(self) -> DeviceCalibration:
        if self.calibration is not None:
            return self.calibration
        return DeviceCalibration.from_backend(self.backend)

    def to_noise_config(self) -> NoiseConfig:
        raise QdtInputError(
            "noise",
            "a parametric noise profile for this executor",
            f"device profile {self.name!r}",
            "device profiles (per-qubit calibration on a transpiled circuit) run on --backend aer only",
        )

    def summary(self) -> dict[str, Any]:
        data = super().summary()
        calibration = self.device_calibration()
        t1 = sorted(q.t1_s for q in calibration.qubits if q.t1_s is not None)
        t2 = sorted(q.t2_s for q in calibration.qubits if q.t2_s is not None)
        two_qubit = sorted(
            i.error for i in calibration.instructions if len(i.qubits) == 2 and i.error is not None
        )
        one_qubit = sorted(
            i.error for i in calibration.instructions if i.name == "sx" and i.error is not None
        )
        readout = sorted((r.p1_given_0 + r.p0_given_1) / 2 for r in calibration.readout)
        data.update(
            backend=calibration.backend,
            calibrated_at=calibration.calibrated_at,
            num_qubits=calibration.num_qubits,
            median_t1_us=_median(t1, 1e6),
            median_t2_us=_median(t2, 1e6),
            median_sx_error=_median(one_qubit),
            median_2q_error=_median(two_qubit),
            median_readout_error=_median(readout),
        )
        return data


def _median(values: list[float], scale: float = 1.0) -> float | None:
    if not values:
        return None
    mid = len(values) // 2
    value = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
    return value * scale


# ---- where profiles live (noise profiles here, backend profiles in qdt.executors.profiles) ------
def profile_search_path(variable: str, folder: str) -> list[Path]:
    """The folders profiles of one kind are looked up in, in order; the first file of a name wins.

    1. the folders listed in ``$variable`` (``os.pathsep``-separated; each must exist);
    2. the copy shipped inside the installed package, ``_profiles/<folder>`` (a wheel has it);
    3. ``<folder>/`` of the source checkout qdt runs from (a clone, or an editable install).

    A wheel and a checkout hold the same files: the wheel's are the repository's folders, copied
    when the wheel is built (``pyproject.toml``), so a user's own folders shadow either alike.
    """
    user: list[Path] = []
    for entry in os.environ.get(variable, "").split(os.pathsep):
        if not entry:
            continue
        path = Path(entry).expanduser()
        if not path.is_dir():
            raise QdtInputError(
                variable,
                f"folders of profiles that exist, separated by {os.pathsep!r}",
                entry,
                f"create the folder or remove it from ${variable}",
            )
        user.append(path)
    found: list[Path] = []
    for path in [*user, *builtin_profile_dirs(folder)]:
        if path.resolve() not in {p.resolve() for p in found}:
            found.append(path)
    return found


def builtin_profile_dirs(folder: str) -> list[Path]:
    """qdt's own ``folder`` (``backends`` or ``noise_models``): the shipped copy, then the checkout's."""
    dirs: list[Path] = []
    shipped = importlib.resources.files("qdt").joinpath(SHIPPED_PROFILES, folder)
    if isinstance(shipped, Path) and shipped.is_dir():  # a zipped install has no folder to list
        dirs.append(shipped)
    checkout = CHECKOUT_ROOT / folder
    if (CHECKOUT_ROOT / "pyproject.toml").is_file() and checkout.is_dir():
        dirs.append(checkout)
    return dirs


# ---- loading -------------------------------------------------------------------------------
def noise_model_dirs() -> list[Path]:
    """Where noise profile names are looked up: $QDT_NOISE_MODELS, shipped, checkout (see above)."""
    return profile_search_path(NOISE_MODELS_ENV, NOISE_MODELS_FOLDER)


def profile_names() -> list[str]:
    """Names of the profiles in the noise-model folders (TOML files and JSON snapshots)."""
    names: set[str] = set()
    for folder in noise_model_dirs():
        if folder.is_dir():
            names.update(p.stem for p in folder.iterdir() if p.suffix in (".toml", ".json"))
    return sorted(names)


def load_noise_profile(spec: str | os.PathLike[str] | NoiseProfile) -> NoiseProfile:
    """A profile by name, path or ``device:NAME`` (see the module docstring); validated."""
    if isinstance(spec, NoiseProfile):
        return spec
    if not isinstance(spec, (str, os.PathLike)) or not str(spec).strip():
        raise QdtInputError("noise", "a profile name, a file path or device:NAME", spec)
    text = str(spec).strip()
    if text.startswith(DEVICE_PREFIX):
        name = text[len(DEVICE_PREFIX) :]
        backend = fake_backend(name)
        profile = DeviceNoiseProfile(
            name=f"{DEVICE_PREFIX}{backend.name}",
            kind="device",
            description=f"calibration of {backend.name} (qiskit_ibm_runtime.fake_provider)",
            source="qiskit_ibm_runtime.fake_provider",
            backend_name=backend.name,
        )
        profile.__dict__["backend"] = backend  # cached_property: keep the instance just made
        return profile
    path = Path(text)
    if path.suffix in (".toml", ".json") or os.sep in text or path.is_file():
        if not path.is_file():
            raise QdtInputError("noise", "an existing profile file", text, "check the path")
        return load_profile_file(path)
    for folder in noise_model_dirs():
        for suffix in (".toml", ".json"):
            candidate = folder / f"{text}{suffix}"
            if candidate.is_file():
                return load_profile_file(candidate)
    raise QdtInputError(
        "noise",
        "a profile name (" + ", ".join(profile_names()) + "), a .toml/.json path, or device:NAME",
        text,
        "see `qdt noise list`",
    )


def load_profile_file(path: Path) -> NoiseProfile:
    source = str(path)
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise QdtInputError(source, "a JSON device snapshot", str(error)) from None
        return _snapshot_profile(path.stem, data, source)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise QdtInputError(source, "a TOML noise profile", str(error)) from None
    return parse_profile(path.stem, data, source, base_dir=path.parent)


def _snapshot_profile(name: str, data: object, source: str) -> DeviceNoiseProfile:
    calibration = DeviceCalibration.from_json(data, source)
    return DeviceNoiseProfile(
        name=name,
        kind="device",
        description=f"snapshot of {calibration.backend} calibrated at {calibration.calibrated_at}",
        source=source,
        backend_name=calibration.backend,
        calibration=calibration,
    )


class _ProfileReader:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, expected: str, got: object, fix: str | None = None) -> QdtInputError:
        return QdtInputError(f"{self.source}: {key}", expected, got, fix)

    def number(self, key: str, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(key, "a finite number", value)
        return float(value)

    def probability(self, key: str, value: object) -> float:
        number = self.number(key, value)
        if not 0.0 <= number <= 1.0:
            raise self.error(key, "a probability in [0, 1]", value)
        return number

    def time(self, key: str, value: object, positive: bool) -> float:
        number = self.number(key, value)
        if number < 0 or (positive and number == 0):
            raise self.error(key, "a positive time" if positive else "a time >= 0", value)
        return number

    def section(self, data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, Mapping):
            raise self.error(name, f"a [{name}] table", value)
        unknown = sorted(set(value) - _SECTIONS[name])
        if unknown:
            raise self.error(
                f"{name}.{unknown[0]}", "one of " + ", ".join(sorted(_SECTIONS[name])), unknown[0]
            )
        return value

    def matrix(self, key: str, value: object) -> tuple[tuple[float, float], tuple[float, float]]:
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(r, list) and len(r) == 2 for r in value)
        ):
            raise self.error(key, "a 2×2 matrix [[P(0|0), P(1|0)], [P(0|1), P(1|1)]]", value)
        rows = tuple(
            tuple(self.probability(f"{key}[{i}][{j}]", v) for j, v in enumerate(row))
            for i, row in enumerate(value)
        )
        for i, row in enumerate(rows):
            if abs(sum(row) - 1.0) > _ROW_TOLERANCE:
                raise self.error(
                    f"{key}[{i}]",
                    "a row that sums to 1 (P(record 0 | state), P(record 1 | state))",
                    list(row),
                )
        return rows  # type: ignore[return-value]

    def readout(self, data: Mapping[str, Any]) -> tuple[tuple[tuple[float, float], tuple[float, float]], ...]:
        section = self.section(data, "readout")
        if "matrices" in section:
            if set(section) & {"p1_given_0", "p0_given_1"}:
                raise self.error("readout", "either matrices or p1_given_0/p0_given_1", sorted(section))
            matrices = section["matrices"]
            if not isinstance(matrices, list) or not matrices:
                raise self.error("readout.matrices", "a non-empty list of 2×2 matrices", matrices)
            return tuple(self.matrix(f"readout.matrices[{i}]", m) for i, m in enumerate(matrices))
        if not section:
            return ()
        p10 = self.probability("readout.p1_given_0", section.get("p1_given_0", 0.0))
        p01 = self.probability("readout.p0_given_1", section.get("p0_given_1", 0.0))
        return (((1.0 - p10, p10), (p01, 1.0 - p01)),)

    def thermal(self, data: Mapping[str, Any]) -> dict[str, float | None]:
        section = self.section(data, "thermal_relaxation")
        if not section:
            return {}
        missing = sorted({"t1_us", "t2_us"} - set(section))
        if missing:
            raise self.error(f"thermal_relaxation.{missing[0]}", "T1 and T2 (microseconds)", None)
        t1 = self.time("thermal_relaxation.t1_us", section["t1_us"], positive=True)
        t2 = self.time("thermal_relaxation.t2_us", section["t2_us"], positive=True)
        if t2 > 2 * t1:
            raise self.error(
                "thermal_relaxation.t2_us",
                f"T2 <= 2·T1 = {2 * t1:g} us",
                t2,
                "a physical qubit has T2 <= 2·T1: lower t2_us or raise t1_us",
            )
        g1 = self.time(
            "thermal_relaxation.gate_time_1q_ns", section.get("gate_time_1q_ns", 0.0), positive=False
        )
        g2 = self.time(
            "thermal_relaxation.gate_time_2q_ns", section.get("gate_time_2q_ns", 0.0), positive=False
        )
        return {
            "thermal_t1_s": t1 * 1e-6,
            "thermal_t2_s": t2 * 1e-6,
            "gate_time_1q_s": g1 * 1e-9,
            "gate_time_2q_s": g2 * 1e-9,
        }


def parse_profile(
    name: str, data: Mapping[str, Any], source: str, base_dir: Path | None = None
) -> NoiseProfile:
    """Validate a profile's TOML table; every error names the offending key."""
    reader = _ProfileReader(source)
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise reader.error(unknown[0], "a known key: " + ", ".join(sorted(_TOP_KEYS)), unknown[0])
    if data.get("schema") != SCHEMA:
        raise reader.error(
            "schema", repr(SCHEMA), data.get("schema"), f'start the file with schema = "{SCHEMA}"'
        )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise reader.error("description", "a string", description)
    kind = data.get("kind", "parametric")
    if kind == "device":
        return _device_profile(reader, name, data, description, base_dir)
    if kind != "parametric":
        raise reader.error("kind", "'parametric' or 'device'", kind)
    for key in ("backend", "snapshot"):
        if key in data:
            raise reader.error(key, 'no device key in a parametric profile (set kind = "device")', data[key])
    depolarizing = reader.section(data, "depolarizing")
    damping = reader.section(data, "damping")
    gates = data.get("noiseless_gates", [])
    if not isinstance(gates, list) or not all(isinstance(g, str) for g in gates):
        raise reader.error("noiseless_gates", 'a list of gate names such as ["rz"]', gates)
    noise = NoiseConfig(
        depolarizing_1q=reader.probability("depolarizing.one_qubit", depolarizing.get("one_qubit", 0.0)),
        depolarizing_2q=reader.probability("depolarizing.two_qubit", depolarizing.get("two_qubit", 0.0)),
        amplitude_damping=reader.probability("damping.amplitude", damping.get("amplitude", 0.0)),
        phase_damping=reader.probability("damping.phase", damping.get("phase", 0.0)),
        readout=reader.readout(data),
        noiseless_gates=tuple(gates),
        **reader.thermal(data),  # type: ignore[arg-type]
    )
    return ParametricNoiseProfile(
        name=name, kind="parametric", description=description, source=source, noise=noise
    )


def _device_profile(
    reader: _ProfileReader, name: str, data: Mapping[str, Any], description: str, base_dir: Path | None
) -> DeviceNoiseProfile:
    extra = sorted(set(data) & (set(_SECTIONS) | {"noiseless_gates"}))
    if extra:
        raise reader.error(extra[0], "no parametric keys in a device profile", extra[0])
    backend, snapshot = data.get("backend"), data.get("snapshot")
    if (backend is None) == (snapshot is None):
        raise reader.error("backend", "exactly one of backend = NAME or snapshot = PATH", [backend, snapshot])
    if backend is not None:
        if not isinstance(backend, str):
            raise reader.error("backend", "a fake backend name such as 'fake_brisbane'", backend)
        device = fake_backend(backend)
        return DeviceNoiseProfile(
            name=name, kind="device", description=description, source=reader.source, backend_name=device.name
        )
    if not isinstance(snapshot, str):
        raise reader.error("snapshot", "a path to a JSON snapshot", snapshot)
    path = Path(snapshot) if base_dir is None else base_dir / snapshot
    if not path.is_file():
        raise reader.error("snapshot", "an existing snapshot file", str(path))
    profile = load_profile_file(path)
    assert isinstance(profile, DeviceNoiseProfile)
    return DeviceNoiseProfile(
        name=name,
        kind="device",
        description=description or profile.description,
        source=reader.source,
        backend_name=profile.backend_name,
        calibration=profile.calibration,
    )
