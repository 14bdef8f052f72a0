"""Device-derived noise: fake backends, calibration snapshots, and compact noise models.

A device is described by a qiskit ``Target`` (gate errors and durations, readout errors, T1,
T2). qiskit-aer's ``NoiseModel.from_backend`` turns it into a depolarizing error followed by
thermal relaxation after every gate, and a readout error on every measurement. Aer's errors are
local to the qubits of each gate, so a circuit that touches k physical qubits sees only their
errors: :func:`compact_device_noise` builds the model for just those qubits, renumbered
0 … k−1, with the same qiskit-aer functions ``from_backend`` uses (identical channels, a
fraction of the cost on a 127-qubit device).

Snapshots (``qdt noise snapshot``) pin a benchmark to one calibration: JSON with
``"format": "qdt-noise-snapshot/1"``::

    {"format": "qdt-noise-snapshot/1", "name": ..., "backend": "fake_brisbane",
     "calibrated_at": "2025-02-26T14:33:06-05:00" | null, "created_at": ...,
     "num_qubits": 127, "dt_s": 5e-10,
     "qubits": [{"t1_s": ..., "t2_s": ..., "frequency_hz": ...}, ...],   # qubit i at index i
     "t2_truncated": [102, 119],     # qubits whose T2 was cut to 2·T1, as qiskit-aer does
     "instructions": [{"name": "ecr", "qubits": [1, 0], "error": 0.0074, "duration_s": 6.6e-7}, ...],
     "readout": [{"qubit": 0, "p1_given_0": 0.028, "p0_given_1": 0.028, "duration_s": 1.3e-6}, ...]}

Times are in seconds, frequencies in hertz; ``error`` and ``duration_s`` may be null.
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from qiskit.circuit import Measure
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.providers import BackendV2, QubitProperties
from qiskit.transpiler import InstructionProperties, Target

from qdt.errors import QdtInputError

SNAPSHOT_FORMAT = "qdt-noise-snapshot/1"
_ROW_TOLERANCE = 1e-9


# ---- fake backends -------------------------------------------------------------------------
# One naming rule for every fake device qdt accepts (noise profiles ``device:NAME``, backend
# profiles ``fake_<device>``, ``qdt noise snapshot``): a device's canonical name is its
# ``backend_name`` in ``qiskit_ibm_runtime.fake_provider`` (``fake_brisbane``, ``fake_manila``).
# Aliases: the bare device name (``brisbane``), the class name (``FakeBrisbane``,
# ``FakeManilaV2``) and the class name without ``V2`` (``FakeManila``); case is ignored.
_FAKE_INSTANCES: dict[str, BackendV2] = {}
_FAKE_LOCK = threading.Lock()


def fake_backend_classes() -> dict[str, type]:
    """Canonical name (e.g. ``"fake_brisbane"``) -> class, for every fake device shipped."""
    return dict(_fake_classes())


@lru_cache(maxsize=1)
def _fake_classes() -> dict[str, type]:
    from qiskit_ibm_runtime import fake_provider
    from qiskit_ibm_runtime.fake_provider.fake_backend import FakeBackendV2

    classes: dict[str, type] = {}
    for attribute in sorted(dir(fake_provider)):
        cls = getattr(fake_provider, attribute)
        name = getattr(cls, "backend_name", None)
        if attribute.startswith("Fake") and isinstance(cls, type) and issubclass(cls, FakeBackendV2):
            if isinstance(name, str) and name.startswith("fake_"):
                classes[name] = cls
    return dict(sorted(classes.items()))


def fake_device_names() -> list[str]:
    """Every fake device's canonical name, sorted."""
    return list(_fake_classes())


def fake_device_name(name: str, field: str = "backend") -> str:
    """The canonical name of a fake device given by its name or an alias (see above)."""
    classes = _fake_classes()
    wanted = name.strip() if isinstance(name, str) else ""
    for canonical, cls in classes.items():
        if wanted in (cls.__name__, cls.__name__.removesuffix("V2")):
            return canonical
    key = wanted.lower()
    key = key.removeprefix("fake_") if key.startswith("fake_") else key.removeprefix("fake")
    key = "fake_" + key.removesuffix("v2")
    if key in classes and key != "fake_":
        return key
    raise QdtInputError(
        field,
        "a fake device of qiskit_ibm_runtime.fake_provider: " + ", ".join(classes),
        name,
        "see `qdt backends list` (fake_devices) or `qdt noise list --devices`",
    )


def fake_backend_class(name: str, field: str = "backend") -> type:
    """The class of a fake device (``fake_torino``: FakeTorino, ``fake_manila``: FakeManilaV2)."""
    return _fake_classes()[fake_device_name(name, field)]


def fake_backend(name: str, field: str = "backend") -> BackendV2:
    """The fake device by name or alias; one instance per device per process (its calibration
    JSON is parsed once and shared by noise profiles and local testing mode)."""
    canonical = fake_device_name(name, field)
    with _FAKE_LOCK:
        if canonical not in _FAKE_INSTANCES:
            backend = _fake_classes()[canonical]()
            assert isinstance(backend, BackendV2)
            _FAKE_INSTANCES[canonical] = backend
        return _FAKE_INSTANCES[canonical]


# ---- calibration data ----------------------------------------------------------------------
@dataclass(frozen=True)
class QubitCalibration:
    t1_s: float | None
    t2_s: float | None
    frequency_hz: float | None


@dataclass(frozen=True)
class InstructionCalibration:
    name: str
    qubits: tuple[int, ...]
    error: float | None
    duration_s: float | None


@dataclass(frozen=True)
class ReadoutCalibration:
    qubit: int
    p1_given_0: float
    p0_given_1: float
    duration_s: float | None


@dataclass(frozen=True)
class DeviceCalibration:
    """Everything qiskit-aer's device noise model reads from a Target, as plain data."""

    name: str
    backend: str
    num_qubits: int
    dt_s: float | None
    qubits: tuple[QubitCalibration, ...]
    instructions: tuple[InstructionCalibration, ...]
    readout: tuple[ReadoutCalibration, ...]
    calibrated_at: str | None = None
    t2_truncated: tuple[int, ...] = ()

    @classmethod
    def from_backend(cls, backend: BackendV2, name: str | None = None) -> DeviceCalibration:
        calibrated_at = None
        properties = getattr(backend, "properties", None)
        if callable(properties):
            try:
                props = properties()
                stamp = getattr(props, "last_update_date", None)
                calibrated_at = stamp.isoformat() if stamp is not None else None
            except Exception:  # some backends have no BackendProperties
                calibrated_at = None
        return cls.from_target(backend.target, backend.name, name or backend.name, calibrated_at)

    @classmethod
    def from_target(
        cls, target: Target, backend: str, name: str, calibrated_at: str | None = None
    ) -> DeviceCalibration:
        qubits: list[QubitCalibration] = []
        truncated: list[int] = []
        for index in range(target.num_qubits):
            props = target.qubit_properties[index] if target.qubit_properties else None
            t1 = getattr(props, "t1", None)
            t2 = getattr(props, "t2", None)
            if t1 is not None and t2 is not None and t2 > 2 * t1:
                t2 = 2 * t1  # qiskit-aer's own truncation: the model is unchanged
                truncated.append(index)
            qubits.append(QubitCalibration(t1, t2, getattr(props, "frequency", None)))
        instructions: list[InstructionCalibration] = []
        readout: list[ReadoutCalibration] = []
        standard = get_standard_gate_name_mapping()
        for name_ in target.operation_names:
            props_by_qubits = target[name_]
            if props_by_qubits is None or name_ not in standard:
                continue
            for qargs, prop in props_by_qubits.items():
                if qargs is None or prop is None:
                    continue
                if name_ == "measure":
                    p10 = getattr(prop, "prob_meas1_prep0", prop.error) or 0.0
                    p01 = getattr(prop, "prob_meas0_prep1", prop.error) or 0.0
                    readout.append(ReadoutCalibration(qargs[0], float(p10), float(p01), prop.duration))
                    continue
                instructions.append(InstructionCalibration(name_, tuple(qargs), prop.error, prop.duration))
        return cls(
            name=name,
            backend=backend,
            num_qubits=target.num_qubits,
            dt_s=target.dt,
            qubits=tuple(qubits),
            instructions=tuple(instructions),
            readout=tuple(sorted(readout, key=lambda r: r.qubit)),
            calibrated_at=calibrated_at,
            t2_truncated=tuple(truncated),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": SNAPSHOT_FORMAT,
            "name": self.name,
            "backend": self.backend,
            "calibrated_at": self.calibrated_at,
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "num_qubits": self.num_qubits,
            "dt_s": self.dt_s,
            "qubits": [{"t1_s": q.t1_s, "t2_s": q.t2_s, "frequency_hz": q.frequency_hz} for q in self.qubits],
            "t2_truncated": list(self.t2_truncated),
            "instructions": [
                {"name": i.name, "qubits": list(i.qubits), "error": i.error, "duration_s": i.duration_s}
                for i in self.instructions
            ],
            "readout": [
                {
                    "qubit": r.qubit,
                    "p1_given_0": r.p1_given_0,
                    "p0_given_1": r.p0_given_1,
                    "duration_s": r.duration_s,
                }
                for r in self.readout
            ],
        }

    @classmethod
    def from_json(cls, data: object, source: str) -> DeviceCalibration:
        """Parse and validate a snapshot; every error names the offending field."""
        return _SnapshotReader(source).read(data)

    def target(self) -> Target:
        """A qiskit Target with this calibration (for transpiling and for the noise model)."""
        qubit_properties = [
            QubitProperties(t1=q.t1_s, t2=q.t2_s, frequency=q.frequency_hz) for q in self.qubits
        ]
        target = Target(num_qubits=self.num_qubits, dt=self.dt_s, qubit_properties=qubit_properties)
        standard = get_standard_gate_name_mapping()
        grouped: dict[str, dict[tuple[int, ...], InstructionProperties]] = {}
        for inst in self.instructions:
            grouped.setdefault(inst.name, {})[inst.qubits] = InstructionProperties(
                duration=inst.duration_s, error=inst.error
            )
        for name, props in grouped.items():
            target.add_instruction(standard[name], props, name=name)
        if self.readout:
            target.add_instruction(
                Measure(), {(r.qubit,): _measure_properties(r) for r in self.readout}, name="measure"
            )
        return target


class _MeasureProperties(InstructionProperties):
    """Measure properties with asymmetric flip probabilities (read by qiskit-aer)."""

    prob_meas1_prep0: float
    prob_meas0_prep1: float


def _measure_properties(readout: ReadoutCalibration) -> InstructionProperties:
    if readout.p1_given_0 == readout.p0_given_1:
        return InstructionProperties(duration=readout.duration_s, error=readout.p1_given_0)
    props = _MeasureProperties(
        duration=readout.duration_s, error=(readout.p1_given_0 + readout.p0_given_1) / 2
    )
    props.prob_meas1_prep0 = readout.p1_given_0
    props.prob_meas0_prep1 = readout.p0_given_1
    return props


class _SnapshotReader:
    """Validation of a snapshot's JSON, field by field."""

    TOP_KEYS = frozenset(
        {
            "format",
            "name",
            "backend",
            "calibrated_at",
            "created_at",
            "num_qubits",
            "dt_s",
            "qubits",
            "t2_truncated",
            "instructions",
            "readout",
        }
    )

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, field: str, expected: str, got: object, fix: str | None = None) -> QdtInputError:
        return QdtInputError(f"{self.source}: {field}", expected, got, fix)

    def keys(self, field: str, data: object, allowed: set[str] | frozenset[str]) -> Mapping[str, Any]:
        if not isinstance(data, Mapping):
            raise self.error(field or "snapshot", "a JSON object", type(data).__name__)
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            where = f"{field}.{unknown[0]}" if field else unknown[0]
            raise self.error(where, "a known key: " + ", ".join(sorted(allowed)), unknown[0])
        return data

    def number(self, field: str, value: object, *, optional: bool, positive: bool = False) -> float | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(field, "a finite number" + (" or null" if optional else ""), value)
        if value < 0 or (positive and value == 0):
            raise self.error(field, "a positive number" if positive else "a number >= 0", value)
        return float(value)

    def probability(self, field: str, value: object, optional: bool = False) -> float | None:
        number = self.number(field, value, optional=optional)
        if number is not None and number > 1:
            raise self.error(field, "a probability in [0, 1]", value)
        return number

    def read(self, data: object) -> DeviceCalibration:
        top = self.keys("", data, self.TOP_KEYS)
        if top.get("format") != SNAPSHOT_FORMAT:
            raise self.error("format", repr(SNAPSHOT_FORMAT), top.get("format"))
        n = top.get("num_qubits")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise self.error("num_qubits", "a positive integer", n)
        qubits_data = top.get("qubits")
        if not isinstance(qubits_data, list) or len(qubits_data) != n:
            raise self.error("qubits", f"a list of {n} qubit entries", qubits_data)
        qubits = [self.qubit(i, q) for i, q in enumerate(qubits_data)]
        instructions = [self.instruction(i, d, n) for i, d in enumerate(self.list("instructions", top))]
        readout = [self.readout(i, d, n) for i, d in enumerate(self.list("readout", top))]
        truncated = top.get("t2_truncated", [])
        if not isinstance(truncated, list) or not all(isinstance(q, int) for q in truncated):
            raise self.error("t2_truncated", "a list of qubit indices", truncated)
        name = top.get("name")
        backend = top.get("backend")
        for field, value in (("name", name), ("backend", backend)):
            if not isinstance(value, str) or not value:
                raise self.error(field, "a non-empty string", value)
        calibrated_at = top.get("calibrated_at")
        if calibrated_at is not None and not isinstance(calibrated_at, str):
            raise self.error("calibrated_at", "an ISO date string or null", calibrated_at)
        return DeviceCalibration(
            name=str(name),
            backend=str(backend),
            num_qubits=n,
            dt_s=self.number("dt_s", top.get("dt_s"), optional=True, positive=True),
            qubits=tuple(qubits),
            instructions=tuple(instructions),
            readout=tuple(readout),
            calibrated_at=calibrated_at,
            t2_truncated=tuple(truncated),
        )

    def list(self, field: str, top: Mapping[str, Any]) -> list[Any]:
        value = top.get(field)
        if not isinstance(value, list):
            raise self.error(field, "a list", value)
        return value

    def qubit(self, index: int, data: object) -> QubitCalibration:
        field = f"qubits[{index}]"
        entry = self.keys(field, data, {"t1_s", "t2_s", "frequency_hz"})
        t1 = self.number(f"{field}.t1_s", entry.get("t1_s"), optional=True, positive=True)
        t2 = self.number(f"{field}.t2_s", entry.get("t2_s"), optional=True, positive=True)
        if t1 is not None and t2 is not None and t2 > 2 * t1 * (1 + 1e-12):
            raise self.error(
                f"{field}.t2_s", f"T2 <= 2·T1 = {2 * t1:g} s", t2, "a physical qubit has T2 <= 2·T1"
            )
        frequency = self.number(f"{field}.frequency_hz", entry.get("frequency_hz"), optional=True)
        return QubitCalibration(t1, t2, frequency)

    def instruction(self, index: int, data: object, n: int) -> InstructionCalibration:
        field = f"instructions[{index}]"
        entry = self.keys(field, data, {"name", "qubits", "error", "duration_s"})
        name = entry.get("name")
        standard = get_standard_gate_name_mapping()
        if name not in standard or name == "measure":
            raise self.error(f"{field}.name", "a standard gate or instruction name (not measure)", name)
        qubits = self.qubit_list(f"{field}.qubits", entry.get("qubits"), n)
        operation = standard[name]
        if operation.num_qubits != len(qubits):
            raise self.error(f"{field}.qubits", f"{operation.num_qubits} qubit indices for {name}", qubits)
        return InstructionCalibration(
            str(name),
            qubits,
            self.probability(f"{field}.error", entry.get("error"), optional=True),
            self.number(f"{field}.duration_s", entry.get("duration_s"), optional=True),
        )

    def readout(self, index: int, data: object, n: int) -> ReadoutCalibration:
        field = f"readout[{index}]"
        entry = self.keys(field, data, {"qubit", "p1_given_0", "p0_given_1", "duration_s"})
        (qubit,) = self.qubit_list(f"{field}.qubit", [entry.get("qubit")], n)
        p10 = self.probability(f"{field}.p1_given_0", entry.get("p1_given_0"))
        p01 = self.probability(f"{field}.p0_given_1", entry.get("p0_given_1"))
        assert p10 is not None and p01 is not None
        duration = self.number(f"{field}.duration_s", entry.get("duration_s"), optional=True)
        return ReadoutCalibration(qubit, p10, p01, duration)

    def qubit_list(self, field: str, value: object, n: int) -> tuple[int, ...]:
        if not isinstance(value, list) or not all(
            isinstance(q, int) and not isinstance(q, bool) and 0 <= q < n for q in value
        ):
            raise self.error(field, f"qubit indices in [0, {n})", value)
        return tuple(value)


# ---- compact noise model -------------------------------------------------------------------
def _sub_target(target: Target, physical: Sequence[int]) -> Target:
    """The part of ``target`` on ``physical`` qubits, renumbered 0 … k−1 in the given order."""
    index = {q: i for i, q in enumerate(physical)}
    all_props = target.qubit_properties
    qubit_properties = [all_props[q] for q in physical] if all_props else None
    sub = Target(num_qubits=len(physical), dt=target.dt, qubit_properties=qubit_properties)
    for name in target.operation_names:
        props = target[name]
        if props is None:
            continue
        kept = {
            tuple(index[q] for q in qargs): prop
            for qargs, prop in props.items()
            if qargs is not None and all(q in index for q in qargs)
        }
        if kept:
            sub.add_instruction(target.operation_from_name(name), kept, name=name)
    return sub


@dataclass(frozen=True, eq=False)
class CompactDeviceNoise:
    """Gate errors (a NoiseModel on compact qubits) and readout errors per compact qubit."""

    model: Any  # qiskit_aer.noise.NoiseModel, gate errors only
    readout: dict[int, tuple[tuple[float, float], tuple[float, float]]]  # compact qubit -> matrix
    gate_errors: dict[tuple[str, tuple[int, ...]], Any]  # (gate, compact qubits) -> QuantumError


def compact_device_noise(target: Target, physical: Sequence[int]) -> CompactDeviceNoise:
    """qiskit-aer's ``NoiseModel.from_backend`` restricted to ``physical`` qubits, renumbered.

    Built by the same qiskit-aer functions with the same defaults (gate error and thermal
    relaxation on, temperature 0), on the sub-target: every channel equals the full model's.
    """
    from qiskit_aer.noise import NoiseModel
    from qiskit_aer.noise.device.models import basic_device_gate_errors, basic_device_readout_errors

    sub = _sub_target(target, physical)
    model = NoiseModel(basis_gates=list(target.operation_names))
    gate_errors = basic_device_gate_errors(target=sub)
    readout_errors = basic_device_readout_errors(target=sub)
    errors: dict[tuple[str, tuple[int, ...]], Any] = {}
    for name, qubits, error in gate_errors:
        model.add_quantum_error(error, name, qubits, warnings=False)
        errors[(name, tuple(int(q) for q in qubits))] = error
    readout: dict[int, tuple[tuple[float, float], tuple[float, float]]] = {}
    for qubits, error in readout_errors:
        p = error.probabilities
        readout[int(qubits[0])] = ((float(p[0][0]), float(p[0][1])), (float(p[1][0]), float(p[1][1])))
    return CompactDeviceNoise(model, readout, errors)
