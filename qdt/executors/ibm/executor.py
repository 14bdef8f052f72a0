"""``ibm``: the circuit on an IBM device through Qiskit Runtime's Sampler (Estimator for ⟨Z⟩).

One executor class for fake and real devices; the profile alone differs (``[device] provider``):
a fake backend runs in qiskit-ibm-runtime's local testing mode (``Sampler(mode=FakeTorino())``),
a real one through ``QiskitRuntimeService``. Nothing else branches on it except what the service
itself lacks locally (no job lookup by id or tag, no queue timestamps, no simulator seed on hardware).

* prepare: final measurements are dropped, the readout is measured into a ``qdt_readout``
  register and the circuit is transpiled to the device's ISA with
  ``generate_preset_pass_manager(backend=..., optimization_level=...)`` once per circuit
  structure and device (:mod:`qdt.executors.transpile_cache`, so the M actors' identical
  circuits transpile once). Layout, depth and two-qubit gate count are recorded
  (:meth:`IBMRuntimeExecutor.isa_report`). With ``[device] fractional_gates = true`` the ISA
  circuit uses the device's native ``rx`` (:mod:`qdt.executors.ibm.fractional`), and the same
  circuit is transpiled a second time for the device without ``rx``/``rzz``, only to report its
  depth and two-qubit count next to the submitted one's; that second circuit is never submitted.
* run: validation first (qubits, shots, parameter shapes, finite values); then ONE job whose
  PUB carries the whole batch as a parameter array; :meth:`IBMRuntimeExecutor.run_many` puts
  several prepared circuits (e.g. every agent's actor) into one job, one PUB each.
* opened by ``open_backend("fake_torino")`` (or any ibm profile); options ``shots``,
  ``reuse_jobs`` (reuse a finished job with the same inputs) and ``timeout_s`` (the profile's
  ``[runtime] timeout_s``), see :data:`BACKEND`.
* jobs: see :mod:`qdt.executors.ibm.jobs` (job id on disk before waiting, timeout, retries,
  typed errors, results saved for ``qdt jobs fetch``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from qiskit import ClassicalRegister, QuantumCircuit
from qiskit.circuit import Parameter

from qdt.errors import QdtInputError
from qdt.executors.base import (
    MAX_SHOTS,
    Capabilities,
    Executor,
    PreparedCircuit,
    RunItem,
    expval_z,
    strip_final_measurements,
    validate_angles,
    validate_readout,
    validate_shots,
    validate_weights,
)
from qdt.executors.ibm.connect import RuntimeDevice, connect_device
from qdt.executors.ibm.fractional import has_fractional_gates
from qdt.executors.ibm.jobs import (
    JobStore,
    JobTimeoutError,
    collect_result,
    default_job_dir,
    persist_local_on_completion,
    submit_once,
    utc_now,
    wait_for_job,
    with_retries,
)
from qdt.executors.ibm.program import build_program, executor_primitive
from qdt.executors.ibm.settings import RULES, TABLES, IBMOptions, ibm_options, parse_ibm_options
from qdt.executors.profiles import DEFAULT_SHOTS, BackendProfile
from qdt.executors.registry import BackendSpec, OpenRequest
from qdt.executors.sampling import make_generator
from qdt.executors.transpile_cache import cached_transpile

READOUT_REGISTER = "qdt_readout"


@dataclass(frozen=True)
class IsaCircuit:
    """The device-ready circuit of one prepared circuit, and what transpilation did to it."""

    circuit: QuantumCircuit  # ISA circuit, measuring readout bit i into qdt_readout[i]
    sources: np.ndarray  # column of [angles | weights] feeding each of circuit.parameters
    physical_readout: tuple[int, ...]  # physical qubit measured into bit i
    layout: tuple[int, ...]  # physical qubit of each circuit qubit (initial layout)
    depth: int
    two_qubit_gates: int
    operations: dict[str, int]
    transpile_s: float
    cached: bool
    key: str  # structure + device + transpiler settings
    fractional_gates: bool = False  # transpiled with the device's native rx (and rzz)
    without_fractional: dict[str, Any] | None = None  # depth, two_qubit_gates, operations: for comparison

    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "layout": list(self.layout),
            "physical_readout": list(self.physical_readout),
            "depth": self.depth,
            "two_qubit_gates": self.two_qubit_gates,
            "operations": self.operations,
            "transpile_s": round(self.transpile_s, 4),
            "transpile_cached": self.cached,
            "fractional_gates": self.fractional_gates,
        }
        if self.without_fractional is not None:
            data["without_fractional_gates"] = self.without_fractional
        return data

    def sizes(self) -> dict[str, Any]:
        """Depth and two-qubit count, with fractional gates and without them when both were made."""
        data: dict[str, Any] = {
            "depth": self.depth,
            "two_qubit_gates": self.two_qubit_gates,
            "fractional_gates": self.fractional_gates,
        }
        if self.without_fractional is not None:
            data["without_fractional_gates"] = {
                k: self.without_fractional[k] for k in ("depth", "two_qubit_gates")
            }
        return data


@dataclass
class JobRun:
    """One job this executor waited for (or reused), for reports."""

    job_id: str
    device: str
    kind: str
    pubs: int
    rows: int
    shots: int
    reused: bool
    submitted_at: str
    submit_s: float
    wait_s: float
    total_s: float
    statuses: list[tuple[str, float]]
    service_timing: dict[str, float | None]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["statuses"] = [[s, round(t, 3)] for s, t in self.statuses]
        for key in ("submit_s", "wait_s", "total_s"):
            data[key] = round(data[key], 4)
        return data


# ---- transpilation -----------------------------------------------------------------------------
def transpile_for(
    circuit: QuantumCircuit,
    device: RuntimeDevice,
    level: int,
    seed: int | None,
    fractional: bool = False,
    initial_layout: tuple[int, ...] | None = None,
) -> Any:
    """The ISA circuit of ``circuit`` on ``device`` (cached per structure, device and settings).

    ``fractional``: keep the device's fractional gates (rx, rzz). Without, a device whose target
    has them is transpiled for its target minus those (:meth:`RuntimeDevice.standard_target`); the
    backend still supplies its transpiler plugins either way. ``initial_layout``: the physical
    qubit of each circuit qubit (readout calibration circuits); default: the transpiler's choice.
    """
    reduce = not fractional and has_fractional_gates(device.backend.target)

    def compile_fn(logical: QuantumCircuit) -> QuantumCircuit:
        from qiskit.transpiler import generate_preset_pass_manager

        options: dict[str, Any] = {"target": device.standard_target()} if reduce else {}
        if initial_layout is not None:
            options["initial_layout"] = list(initial_layout)
        manager = generate_preset_pass_manager(
            backend=device.backend, optimization_level=level, seed_transpiler=seed, **options
        )
        return manager.run(logical)

    gates = "fractional" if fractional else "standard"
    key = ("ibm", device.name, level, seed, gates, initial_layout)
    return cached_transpile(circuit, key, compile_fn)


def _measured(circuit: QuantumCircuit, readout: tuple[int, ...]) -> QuantumCircuit:
    measured = circuit.copy()
    register = ClassicalRegister(len(readout), READOUT_REGISTER)
    measured.add_register(register)
    for bit, qubit in enumerate(readout):
        measured.measure(qubit, register[bit])
    return measured


def _isa_facts(
    isa: QuantumCircuit, n_virtual: int
) -> tuple[tuple[int, ...], tuple[int, ...], int, dict[str, int]]:
    physical: dict[int, int] = {}
    two_qubit = 0
    for instruction in isa.data:
        name = instruction.operation.name
        if name == "measure":
            physical[isa.find_bit(instruction.clbits[0]).index] = isa.find_bit(instruction.qubits[0]).index
        elif name != "barrier" and len(instruction.qubits) == 2:
            two_qubit += 1
    readout = tuple(physical[i] for i in sorted(physical))
    layout = tuple(isa.layout.initial_index_layout(filter_ancillas=True)[:n_virtual]) if isa.layout else ()
    operations = {str(k): int(v) for k, v in isa.count_ops().items()}
    return readout, layout, two_qubit, operations


# ---- the executor ------------------------------------------------------------------------------
class IBMRuntimeExecutor(Executor):
    """The Runtime Sampler (and Estimator) on the device a profile names; one job per call.

    The primitive classes come from :func:`primitive_class` (client-side Sampler/Estimator from
    qiskit-ibm-runtime 0.50, SamplerV2/EstimatorV2 before). With ``[runtime] primitive =
    "executor"`` the same PUBs go to the Executor primitive as one QuantumProgram instead
    (:mod:`qdt.executors.ibm.program`)."""

    name = "ibm"

    def __init__(
        self,
        profile: BackendProfile,
        *,
        seed: int | np.random.SeedSequence | None = None,
        job_dir: Path | None = None,
        reuse_jobs: bool = False,
        timeout_s: float | None = None,
    ) -> None:
        settings = ibm_options(profile)
        if timeout_s is not None:
            if (
                isinstance(timeout_s, bool)
                or not isinstance(timeout_s, (int, float))
                or not (math.isfinite(timeout_s) and timeout_s > 0)
            ):
                raise QdtInputError("timeout_s", "a positive number of seconds", timeout_s)
            runtime = dataclasses.replace(settings.runtime, timeout_s=float(timeout_s))
            settings = dataclasses.replace(settings, runtime=runtime)
            profile = dataclasses.replace(profile, options=settings)
        self.profile = profile
        self.settings: IBMOptions = settings
        self.shots = validate_shots(DEFAULT_SHOTS if profile.shots is None else profile.shots)
        self.store = JobStore(Path(job_dir) if job_dir is not None else default_job_dir())
        self.reuse_jobs = bool(reuse_jobs)
        self.jobs: list[JobRun] = []
        self._rng = make_generator(seed)
        self._device: RuntimeDevice | None = None
        self._mode: Any = None

    # -- device and capabilities
    @property
    def device(self) -> RuntimeDevice:
        """Connected on first use (a real device needs the account and the network from here on)."""
        if self._device is None:
            source = self.profile.source
            named = source if source and not source.startswith(("rule:", "executor:")) else self.profile.name
            self._device = connect_device(self.settings.device, where=f"{named}: " if named else "")
        return self._device

    @property
    def local(self) -> bool:
        return self.settings.device.local

    @classmethod
    def profile_capabilities(cls, profile: BackendProfile) -> Capabilities:
        """A device: shots and its own noise; remote unless it is a fake device (local testing mode)."""
        local = ibm_options(profile).device.local
        return Capabilities(differentiable=False, shots=True, noisy=True, remote=not local)

    @property
    def capabilities(self) -> Capabilities:
        return self.profile_capabilities(self.profile)

    def close(self) -> None:
        """Close the Batch or Session this executor opened (job mode has none)."""
        if self._mode is not None and hasattr(self._mode, "close"):
            try:
                self._mode.close()
            finally:
                self._mode = None

    # -- prepare
    def prepare_readout_calibration(self, physical_qubits: Sequence[int]) -> list[PreparedCircuit]:
        """M3's "independent" readout calibration of ``physical_qubits``: two circuits, every qubit
        in |0> and every qubit in |1>, each measuring bit i from ``physical_qubits[i]`` (pinned by
        the transpiler's ``initial_layout``). One row each, no parameters; run them in the same
        job as the circuits they calibrate (:meth:`run_many`)."""
        qubits = tuple(int(q) for q in physical_qubits)
        device = self.device
        if (
            not qubits
            or len(set(qubits)) != len(qubits)
            or not all(0 <= q < device.num_qubits for q in qubits)
        ):
            raise QdtInputError(
                "physical_qubits", f"distinct qubits of {device.name} (0 to {device.num_qubits - 1})", qubits
            )
        prepared = []
        for state in (0, 1):
            circuit = QuantumCircuit(len(qubits))
            if state:
                circuit.x(range(len(qubits)))
            readout = tuple(range(len(qubits)))
            payload = self._prepare(circuit, (), (), readout, initial_layout=qubits)
            if payload.physical_readout != qubits:
                raise QdtInputError(
                    "physical_qubits", f"calibration measured on {qubits}", payload.physical_readout
                )
            prepared.append(PreparedCircuit(self.name, circuit, (), (), readout, payload, id(self)))
        return prepared

    def _prepare(
        self,
        circuit: QuantumCircuit,
        angle_params: tuple[Parameter, ...],
        weight_params: tuple[Parameter, ...],
        readout_qubits: tuple[int, ...],
        initial_layout: tuple[int, ...] | None = None,
    ) -> IsaCircuit:
        circuit = strip_final_measurements(circuit)  # qdt measures the readout qubits itself
        device = self.device
        if circuit.num_qubits > device.num_qubits:
            raise QdtInputError(
                "circuit",
                f"at most {device.num_qubits} qubits (the size of {device.name})",
                f"{circuit.num_qubits} qubits",
                "pick a larger device",
            )
        names = [p.name for p in circuit.parameters]
        if len(set(names)) != len(names):
            raise QdtInputError("circuit", "parameters with distinct names", "repeated names")
        measured = _measured(circuit, readout_qubits)
        settings = self.settings
        level, seed = settings.optimization_level, settings.transpile_seed
        fractional = settings.device.fractional_gates
        transpiled = transpile_for(measured, device, level, seed, fractional, initial_layout)
        isa, seconds, cached, key = transpiled.circuit, transpiled.seconds, transpiled.cached, transpiled.key
        without = None
        if fractional:  # the same circuit without rx/rzz: its size is reported, it is never submitted
            standard = transpile_for(measured, device, level, seed, False, initial_layout).circuit
            _, _, standard_two_qubit, standard_operations = _isa_facts(standard, circuit.num_qubits)
            without = {
                "depth": standard.depth(),
                "two_qubit_gates": standard_two_qubit,
                "operations": standard_operations,
            }
        order = {p: k for k, p in enumerate(angle_params + weight_params)}
        sources = np.array([order[p] for p in isa.parameters], dtype=np.int64)
        physical, layout, two_qubit, operations = _isa_facts(isa, circuit.num_qubits)
        if len(physical) != len(readout_qubits):
            raise QdtInputError(
                "circuit", f"{len(readout_qubits)} measured readout bits after transpilation", len(physical)
            )
        return IsaCircuit(
            isa,
            sources,
            physical,
            layout,
            isa.depth(),
            two_qubit,
            operations,
            seconds,
            cached,
            key,
            fractional_gates=fractional,
            without_fractional=without,
        )

    def isa_report(self, prepared: PreparedCircuit) -> dict[str, Any]:
        """Device, optimisation level, layout, physical readout qubits, depth, two-qubit gates,
        operations and transpile time of ``prepared``'s ISA circuit; with fractional gates on,
        also ``without_fractional_gates``: depth, two-qubit gates and operations without them."""
        payload = self._payload(prepared)
        return {
            "device": self.device.name,
            "optimization_level": self.settings.optimization_level,
            **payload.report(),
        }

    def _payload(self, prepared: PreparedCircuit) -> IsaCircuit:
        payload = self.check_prepared(prepared).payload
        assert isinstance(payload, IsaCircuit)
        return payload

    # -- run
    def _run(
        self, prepared: PreparedCircuit, angles: torch.Tensor, weights: torch.Tensor, readout: str
    ) -> torch.Tensor:
        return self.run_many([(prepared, angles, weights)], readout=readout)[0]

    def run_many(self, items: Sequence[RunItem], readout: str = "probs") -> list[torch.Tensor]:
        """Several prepared circuits with their batches in ONE job (one PUB each)."""
        if not items:
            raise QdtInputError("items", "at least one (prepared, angles, weights) triple", "none")
        mode = validate_readout(readout)
        checked = []
        for prepared, angles, weights in items:
            payload = self._payload(prepared)
            a = validate_angles(angles, prepared.n_angles).detach().cpu().numpy()
            w = validate_weights(weights, prepared.n_weights).detach().cpu().numpy()
            values = np.concatenate([a, np.broadcast_to(w, (a.shape[0], w.shape[0]))], axis=1)[
                :, payload.sources
            ]
            checked.append((prepared, payload, np.ascontiguousarray(values)))
        self._check_shots(sum(v.shape[0] for _, _, v in checked))
        use_estimator = mode == "expval_z" and self.settings.estimator.use_for_expval
        kind = "estimator" if use_estimator else self.settings.runtime.primitive  # sampler | executor
        pubs: list[tuple[Any, ...]] = []
        meta: list[dict[str, Any]] = []
        for prepared, payload, values in checked:
            bits = len(prepared.readout_qubits)
            if use_estimator:
                pubs.append((_without_measurements(payload.circuit), _z_observables(payload, bits), values))
            else:
                pubs.append((payload.circuit, values, self.shots))
            meta.append(
                {
                    "kind": kind,
                    "register": READOUT_REGISTER,
                    "bits": bits,
                    "rows": int(values.shape[0]),
                    "layout": list(payload.layout),
                    "physical_readout": list(payload.physical_readout),
                    **payload.sizes(),
                }
            )
        result = self._execute(kind, pubs, meta, [(p.key, v) for _, p, v in checked])
        job = self.jobs[-1]
        self._run_info = {
            "mode": "sampled",
            "shots": self.shots,
            "kind": kind,
            "job_id": job.job_id,
            "device": job.device,
            "pubs": job.pubs,
            "rows": job.rows,
            "reused": job.reused,
            "seconds": job.total_s,
        }
        outputs = []
        for pub in result["pubs"]:
            if pub["kind"] == "estimator":
                outputs.append(torch.as_tensor(np.asarray(pub["evs"], dtype=np.float64).T))
                continue
            counts = np.asarray(pub["counts"], dtype=np.float64)
            probs = torch.as_tensor(counts / counts.sum(axis=1, keepdims=True))
            outputs.append(probs if mode == "probs" else expval_z(probs))
        return outputs

    def _check_shots(self, rows: int) -> None:
        configuration = getattr(self.device.backend, "configuration", None)
        max_shots = getattr(configuration(), "max_shots", None) if callable(configuration) else None
        if isinstance(max_shots, int) and self.shots > max_shots:
            raise QdtInputError("shots", f"at most {max_shots} on {self.device.name}", self.shots)
        if rows * self.shots > MAX_SHOTS:  # IBM Runtime's per-job limit (see validate_shots)
            raise QdtInputError(
                "shots",
                f"batch rows × shots at most {MAX_SHOTS:,} per job",
                f"{rows} × {self.shots}",
                "lower --shots",
            )

    # -- jobs
    def _primitive(self, kind: str, tag: str) -> tuple[Any, dict[str, Any]]:
        if kind == "executor":  # shots travel in the QuantumProgram; no Sampler-side passes
            options: dict[str, Any] = {"environment": {"job_tags": [tag]}}
            if self.settings.runtime.max_execution_time_s is not None:
                options["max_execution_time"] = self.settings.runtime.max_execution_time_s
            if self.local:
                options["simulator"] = {"seed_simulator": int(self._rng.integers(1, 2**31 - 1))}
            return executor_primitive(self._execution_mode(), options), options
        options = {"default_shots": self.shots, "environment": {"job_tags": [tag]}}
        suppression = self.settings.suppression
        if suppression.dynamical_decoupling:
            options["dynamical_decoupling"] = {"enable": True, "sequence_type": suppression.dd_sequence}
        if suppression.twirling_gates or suppression.twirling_measure:
            options["twirling"] = {
                "enable_gates": suppression.twirling_gates,
                "enable_measure": suppression.twirling_measure,
            }
        if self.settings.runtime.max_execution_time_s is not None:
            options["max_execution_time"] = self.settings.runtime.max_execution_time_s
        if self.local:  # the simulator's seed; hardware takes none. Fresh for every job.
            options["simulator"] = {"seed_simulator": int(self._rng.integers(1, 2**31 - 1))}
        if kind == "estimator":
            options["resilience_level"] = self.settings.estimator.resilience_level
        return primitive_class(kind)(mode=self._execution_mode(), options=options), options

    def _execution_mode(self) -> Any:
        mode = self.settings.runtime.mode
        if mode == "job":
            return self.device.backend
        if self._mode is None:
            from qiskit_ibm_runtime import Batch, Session

            self._mode = (Batch if mode == "batch" else Session)(backend=self.device.backend)
        return self._mode

    def _fingerprint(self, kind: str, parts: list[tuple[str, np.ndarray]]) -> str:
        digest = hashlib.sha256()
        profile = dataclasses.replace(self.profile, source="", description="")
        digest.update(repr((kind, self.device.name, self.shots, profile)).encode())
        for key, values in parts:
            digest.update(key.encode())
            digest.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
        return digest.hexdigest()

    def _execute(
        self,
        kind: str,
        pubs: list[tuple[Any, ...]],
        meta: list[dict[str, Any]],
        parts: list[tuple[str, np.ndarray]],
    ) -> dict[str, Any]:
        settings = self.settings.runtime
        fingerprint = self._fingerprint(kind, parts)
        rows = sum(m["rows"] for m in meta)
        started = time.monotonic()
        if self.reuse_jobs:
            reused = self._reuse(fingerprint, meta, started, kind, rows)
            if reused is not None:
                return reused
        tag = f"qdt-{uuid.uuid4().hex[:20]}"
        self.store.append(
            {
                "event": "submitting",
                "tag": tag,
                "fingerprint": fingerprint,
                "profile": self.profile.name,
                "device_spec": self.settings.device.to_dict(),
                "local": self.local,
                "kind": kind,
                "shots": self.shots,
                "pubs": meta,
                "runtime": dataclasses.asdict(settings),
            }
        )
        primitive, options = self._primitive(kind, tag)
        service = self.device.service
        find_by_tag = None
        if service is not None:

            def find_by_tag() -> Any:
                found = service.jobs(job_tags=[tag], limit=1)
                return found[0] if found else None

        with noting_warnings() as noted:
            work = build_program(pubs, self.shots) if kind == "executor" else pubs
            job = submit_once(lambda: primitive.run(work), find_by_tag, settings, tag)
        job_id = str(job.job_id())
        submitted_at = utc_now()
        self.store.append(
            {
                "event": "submitted",
                "job_id": job_id,
                "tag": tag,
                "fingerprint": fingerprint,
                "profile": self.profile.name,
                "profile_source": self.profile.source,
                "device": self.settings.device.to_dict(),
                "backend": self.device.name,
                "local": self.local,
                "pid": os.getpid(),
                "mode": settings.mode,
                "session_id": getattr(self._mode, "session_id", None),
                "kind": kind,
                "shots": self.shots,
                "pubs": meta,
                "options": options,
                "runtime": dataclasses.asdict(settings),
            }
        )
        submit_s = time.monotonic() - started
        try:
            outcome = wait_for_job(job, job_id, self.store, settings, started, local=self.local)
        except JobTimeoutError:
            if self.local:  # the simulation goes on in this process: keep its result when it ends
                persist_local_on_completion(job, job_id, self.store, meta)
            raise
        payload = collect_result(job, job_id, self.store, settings, meta, local=self.local)
        self.jobs.append(
            JobRun(
                job_id=job_id,
                device=self.device.name,
                kind=kind,
                pubs=len(meta),
                rows=rows,
                shots=self.shots,
                reused=False,
                submitted_at=submitted_at,
                submit_s=submit_s,
                wait_s=outcome.waited_s - submit_s,
                total_s=time.monotonic() - started,
                statuses=outcome.statuses,
                service_timing=payload["service_timing"],
                warnings=sorted(set(noted)),
            )
        )
        return payload

    def _reuse(
        self, fingerprint: str, meta: list[dict[str, Any]], started: float, kind: str, rows: int
    ) -> dict[str, Any] | None:
        """A finished (or, on the cloud, still running) job with the same inputs, instead of a new one."""
        record = self.store.find_reusable(fingerprint)
        if record is None:
            return None
        payload = self.store.load_result(record.job_id)
        statuses: list[tuple[str, float]] = [("DONE", 0.0)]
        if payload is None:
            settings = self.settings.runtime
            service = self.device.service
            assert service is not None  # find_reusable only returns pending jobs of a cloud device
            job = with_retries(lambda: service.job(record.job_id), "job lookup", settings, record.job_id)
            outcome = wait_for_job(job, record.job_id, self.store, settings, started, local=False)
            payload = collect_result(job, record.job_id, self.store, settings, meta, local=False)
            statuses = outcome.statuses
        self.jobs.append(
            JobRun(
                job_id=record.job_id,
                device=self.device.name,
                kind=kind,
                pubs=len(meta),
                rows=rows,
                shots=int(record.submitted.get("shots", self.shots)),
                reused=True,
                submitted_at=str(record.submitted.get("time")),
                submit_s=0.0,
                wait_s=time.monotonic() - started,
                total_s=time.monotonic() - started,
                statuses=statuses,
                service_timing=payload.get("service_timing", {}),
            )
        )
        return payload


def primitive_class(kind: str) -> type:
    """The Qiskit Runtime primitive for ``kind`` (``"sampler"`` or ``"estimator"``).

    qiskit-ibm-runtime 0.50 deprecated the server-side ``SamplerV2``/``EstimatorV2`` in favour of
    client-side ones built on its Executor primitive (``qiskit_ibm_runtime.executor_sampler`` and
    ``executor_estimator``): same PUBs, same option names, same ``PrimitiveResult``. Those are used
    where the installed version has them, the V2 classes before. Either runs in local testing mode.
    """
    if kind not in ("sampler", "estimator"):
        raise QdtInputError("kind", "'sampler' or 'estimator'", kind)
    try:
        if kind == "sampler":
            from qiskit_ibm_runtime.executor_sampler import Sampler

            return Sampler
        from qiskit_ibm_runtime.executor_estimator import Estimator

        return Estimator
    except ImportError:  # qiskit-ibm-runtime < 0.50
        from qiskit_ibm_runtime import EstimatorV2, SamplerV2

        return SamplerV2 if kind == "sampler" else EstimatorV2


@contextmanager
def noting_warnings() -> Iterator[list[str]]:
    """The text of every warning shown while the block runs (for the job's report).

    Nothing is filtered, caught or hidden: the filters in force decide what is shown (an
    ``error`` filter still raises), and what is shown is still shown, through the documented
    ``warnings.showwarning`` hook, which is restored afterwards.
    """
    noted: list[str] = []
    show = warnings.showwarning

    def note(
        message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
    ) -> None:
        noted.append(" ".join(str(message).split())[:300])
        show(message, category, filename, lineno, file, line)

    warnings.showwarning = note
    try:
        yield noted
    finally:
        warnings.showwarning = show


def _without_measurements(circuit: QuantumCircuit) -> QuantumCircuit:
    """EstimatorV2 measures for itself: the ISA circuit (same layout) minus qdt's readout measurements."""
    stripped = circuit.copy_empty_like()
    for instruction in circuit.data:
        if instruction.operation.name != "measure":
            stripped.append(instruction)
    return stripped


def _z_observables(payload: IsaCircuit, bits: int) -> np.ndarray:
    """Z on the physical qubit of each readout bit, shaped [bits, 1] to broadcast against [B] rows."""
    from qiskit.quantum_info import SparsePauliOp

    width = payload.circuit.num_qubits
    observables = [
        SparsePauliOp.from_sparse_list([("Z", [payload.physical_readout[i]], 1.0)], width)
        for i in range(bits)
    ]
    array = np.empty((bits, 1), dtype=object)
    for i, observable in enumerate(observables):
        array[i, 0] = observable
    return array


def _open(request: OpenRequest) -> IBMRuntimeExecutor:
    return IBMRuntimeExecutor(request.profile, seed=request.seed, job_dir=request.job_dir, **request.options)  # type: ignore[arg-type]


BACKEND = BackendSpec(
    name="ibm",
    factory=_open,
    capabilities=IBMRuntimeExecutor.profile_capabilities,
    options=("shots", "reuse_jobs", "timeout_s"),
    hints={"noise": "an IBM device applies its own noise; to simulate it, use aer with noise=device:<name>"},
    tables=TABLES,
    parse_options=parse_ibm_options,
    default_shots=DEFAULT_SHOTS,
    rules=RULES,
    needs="name a device: fake_<device> (local testing mode, e.g. fake_torino) or ibm_<device> (ibm_torino)",
)
