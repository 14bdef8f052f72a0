"""A scripted Qiskit Runtime service: the real client code on top, a fake server underneath.

qiskit-ibm-runtime tests its own client with a fake ``RuntimeClient`` (the REST layer). This
does the same: :class:`ScriptedRuntimeService` is a real ``QiskitRuntimeService`` whose
constructor skips the account and network, and whose API client is a :class:`ScriptedClient`
answering from a :class:`ScriptedServer`. Everything above the REST layer is qiskit-ibm-runtime's
own code: ``service.backend()`` builds a real ``IBMBackend`` from a device configuration,
the Sampler qdt uses (:func:`qdt.executors.ibm.executor.primitive_class`: the client-side one on
top of the Executor from qiskit-ibm-runtime 0.50, SamplerV2 before) validates the ISA circuit and
options and calls ``service._run`` → ``program_run``, jobs are real ``RuntimeJobV2`` objects
polling ``job_get``, ``service.job(id)`` and ``service.jobs(job_tags=...)`` decode server records.

The server walks each job through a script of API statuses (Queued, Running, Completed, Failed,
Cancelled, Cancelled with reason code 1305 = ran too long), one step per status poll, and can
inject faults (HTTP 503/429, lost responses) into any client call. Results are computed at
completion with qiskit-aer, noiseless, on the decoded PUBs (or Executor program), encoded with the
service's own ``RuntimeEncoder`` (or the Executor's result schema) and decoded by the client.

This module also tests the scripted service itself (so the other tests stand on checked ground).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from qiskit_ibm_runtime import QiskitRuntimeService, RuntimeDecoder, RuntimeEncoder
from qiskit_ibm_runtime.api.exceptions import RequestsApiError

CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/0000:1111::"
DEVICES = {"ibm_brisbane": "fake_brisbane", "ibm_torino": "fake_torino", "ibm_manila": "fake_manila"}
DONE_SCRIPT = ("Queued", "Running", "Completed")


@dataclass
class ScriptedJob:
    job_id: str
    backend: str
    program_id: str
    params: str  # JSON, RuntimeEncoder-encoded: what went over the wire
    tags: list[str]
    session_id: str | None
    script: deque[tuple[str, int | None, str | None]]  # (API status, reason code, reason)
    status: str = "Queued"
    reason_code: int | None = None
    reason: str | None = None
    created: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    result_json: str | None = None
    polls: int = 0
    max_execution_time: int | None = None  # the service's own limit, as program_run received it

    def raw(self) -> dict[str, Any]:
        state: dict[str, Any] = {"status": self.status}
        if self.reason:
            state["reason"] = self.reason
        if self.reason_code:
            state["reason_code"] = self.reason_code
        return {
            "id": self.job_id,
            "backend": self.backend,
            "state": state,
            "program": {"id": self.program_id},
            "created": self.created.isoformat(),
            "session_id": self.session_id,
            "tags": self.tags,
            "private": False,
            "runtime": "",
        }


def step(
    status: str, reason_code: int | None = None, reason: str | None = None
) -> tuple[str, int | None, str | None]:
    return (status, reason_code, reason)


class ScriptedServer:
    """The cloud side: jobs, their scripts, injected faults and a count of submissions."""

    def __init__(self, devices: dict[str, str] | None = None) -> None:
        self.devices = dict(devices or DEVICES)
        self.jobs: dict[str, ScriptedJob] = {}
        self.scripts: deque[list[tuple[str, int | None, str | None]]] = deque()
        self.faults: dict[str, deque[BaseException | str]] = {}
        self.calls: dict[str, int] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.release = threading.Event()  # ends every "hang" fault
        self.seed = 7

    @property
    def submissions(self) -> int:
        return len(self.jobs)

    def script_next(self, *statuses: str | tuple[str, int | None, str | None]) -> None:
        """The status walk of the next submitted job (default: Queued, Running, Completed)."""
        self.scripts.append([s if isinstance(s, tuple) else step(s) for s in statuses])

    def fail(self, method: str, *errors: BaseException | str) -> None:
        """The next calls of ``method`` raise these errors ("after": do the work, then lose the reply;
        "hang": block until ``release`` is set)."""
        self.faults.setdefault(method, deque()).extend(errors)

    def fake(self, device: str) -> Any:
        from qdt.noise.device import fake_backend

        if device not in self.devices:
            raise RequestsApiError(f"backend {device} not found", status_code=404)
        return fake_backend(self.devices[device])

    def compute(self, job: ScriptedJob) -> str:
        """The job's result as the service sends it: noiseless Aer on what came over the wire."""
        if job.program_id == "executor":  # the client-side Sampler/Estimator (qiskit-ibm-runtime >= 0.50)
            return self.compute_executor(json.loads(job.params))
        from qiskit_aer.primitives import SamplerV2 as AerSampler

        params = json.loads(job.params, cls=RuntimeDecoder)
        pubs = params["pubs"]
        shots = params.get("options", {}).get("default_shots")
        result = AerSampler(seed=self.seed).run(pubs, shots=shots).result()
        return json.dumps(result, cls=RuntimeEncoder)

    def pubs_of(self, job: ScriptedJob) -> list[int]:
        """Rows of the parameter array of each PUB (Executor program item) a job carried."""
        params = json.loads(job.params)
        if job.program_id == "executor":  # circuit items: arguments [rows, parameters]
            items = params["quantum_program"]["items"]
            assert all(item["item_type"] == "circuit" for item in items), [i["item_type"] for i in items]
            return [int(np.prod(item["circuit_arguments"]["shape"][:-1])) for item in items]
        decoded = json.loads(job.params, cls=RuntimeDecoder)
        return [int(np.asarray(pub[1]).shape[0]) for pub in decoded["pubs"]]

    def compute_executor(self, params: dict[str, Any]) -> str:
        """An Executor program (a QuantumProgram in the params schema the client chose), run the
        way local testing mode runs it, with the result encoded in the same schema version."""
        import importlib

        from qiskit_aer import AerSimulator
        from qiskit_ibm_runtime.fake_provider.executor.run_quantum_program import run_quantum_program
        from qiskit_ibm_runtime.options_models import SimulatorOptions
        from qiskit_ibm_runtime.quantum_program.params_converters import QUANTUM_PROGRAM_PARAMS_CONVERTERS

        version = params["schema_version"]  # "v2.0" in qiskit-ibm-runtime 0.51
        converter = QUANTUM_PROGRAM_PARAMS_CONVERTERS[version]
        program, _ = converter.decoder(converter.model(**params))
        for item in program.items:  # a twirled PUB arrives as a samplex, finalized by the server
            if getattr(item, "samplex", None) is not None:
                item.samplex.finalize()
        result = run_quantum_program(AerSimulator(), program, SimulatorOptions(seed_simulator=self.seed))
        module = "ibm_quantum_schemas.executor.version_" + version[1:].replace(".", "_")
        schema = importlib.import_module(module)
        tensor = importlib.import_module("ibm_quantum_schemas.common").CompressedTensorModel.from_numpy
        model = schema.QuantumProgramResultModel(
            data=[
                schema.QuantumProgramResultItemModel(
                    results={name: tensor(np.asarray(value)) for name, value in item.items()},
                    metadata=schema.ItemMetadataModel(),
                )
                for item in result
            ],
            metadata=schema.MetadataModel(chunk_timing=[]),
            passthrough_data=params["quantum_program"].get("passthrough_data"),
            semantic_role=params["quantum_program"].get("semantic_role"),
        )
        return model.model_dump_json()


class ScriptedClient:
    """The RuntimeClient calls qiskit-ibm-runtime makes, answered by a ScriptedServer."""

    def __init__(self, server: ScriptedServer, instance: str = CRN) -> None:
        self.server = server
        self._instance = instance

    def _enter(self, method: str) -> BaseException | str | None:
        server = self.server
        with server.lock:
            server.calls[method] = server.calls.get(method, 0) + 1
            queue = server.faults.get(method)
            fault = queue.popleft() if queue else None
        if isinstance(fault, BaseException):
            raise fault
        if fault == "hang":  # a connection that never answers (the client has no read timeout)
            server.release.wait(timeout=60)
        return fault

    # backends
    def list_backends(self, include_mocks: bool = False) -> list[dict[str, Any]]:
        self._enter("list_backends")
        return [{"name": name} for name in self.server.devices]

    def backend_configuration(
        self, backend_name: str, refresh: bool = False, calibration_id: str | None = None
    ) -> dict[str, Any]:
        self._enter("backend_configuration")
        fake = self.server.fake(backend_name)
        config = fake._load_json(fake.conf_filename)  # the snapshot is the server's raw JSON
        config["backend_name"] = backend_name
        return config

    def backend_properties(
        self, backend_name: str, datetime: Any = None, calibration_id: Any = None
    ) -> dict[str, Any]:
        self._enter("backend_properties")
        fake = self.server.fake(backend_name)
        props = fake._load_json(fake.props_filename)
        props["backend_name"] = backend_name
        return props

    def backend_status(self, backend_name: str) -> dict[str, Any]:
        self._enter("backend_status")
        return {
            "backend_name": backend_name,
            "backend_version": "1.0.0",
            "operational": True,
            "pending_jobs": len([j for j in self.server.jobs.values() if j.status in ("Queued", "Running")]),
            "status_msg": "active",
        }

    def cloud_usage(self) -> dict[str, Any]:
        self._enter("cloud_usage")
        return {"usage_limit_reached": False}

    # sessions and batches
    def create_session(
        self, backend: Any = None, instance: Any = None, max_time: Any = None, mode: Any = None, **kwargs: Any
    ) -> dict[str, Any]:
        self._enter("create_session")
        session_id = f"session-{uuid.uuid4().hex[:12]}"
        self.server.sessions[session_id] = {"mode": mode, "state": "open"}
        return {"id": session_id}

    def close_session(self, session_id: str) -> None:
        self._enter("close_session")
        self.server.sessions[session_id]["state"] = "closed"

    def cancel_session(self, session_id: str) -> None:
        self._enter("cancel_session")
        self.server.sessions[session_id]["state"] = "cancelled"

    def session_details(self, session_id: str) -> dict[str, Any]:
        self._enter("session_details")
        return {"id": session_id, **self.server.sessions.get(session_id, {})}

    # jobs
    def program_run(
        self, program_id: str, backend_name: str | None, params: dict[str, Any], **kwargs: Any
    ) -> dict[str, Any]:
        fault = self._enter("program_run")
        encoded = json.dumps(params, cls=RuntimeEncoder)  # what the REST layer sends
        server = self.server
        with server.lock:
            script = server.scripts.popleft() if server.scripts else [step(s) for s in DONE_SCRIPT]
            job = ScriptedJob(
                job_id=f"d{uuid.uuid4().hex[:19]}",
                backend=str(backend_name),
                program_id=program_id,
                params=encoded,
                tags=list(kwargs.get("job_tags") or []),
                session_id=kwargs.get("session_id"),
                script=deque(script),
                max_execution_time=kwargs.get("max_execution_time"),
            )
            server.jobs[job.job_id] = job
        if fault == "after":  # the job exists, the reply is lost on the way back
            raise RequestsApiError(
                "Connection aborted: reply lost", status_code=-1
            ) from ConnectionResetError("connection reset by peer")
        return {"id": job.job_id, "backend": backend_name}

    def _job(self, job_id: str) -> ScriptedJob:
        job = self.server.jobs.get(job_id)
        if job is None:
            raise RequestsApiError(f"Job not found: {job_id}", status_code=404)
        return job

    def job_get(self, job_id: str, exclude_params: bool = True) -> dict[str, Any]:
        self._enter("job_get")
        job = self._job(job_id)
        with self.server.lock:
            job.polls += 1
            if job.script and job.status not in ("Completed", "Failed", "Cancelled"):
                job.status, job.reason_code, job.reason = job.script.popleft()
            if job.status == "Completed" and job.result_json is None:
                job.result_json = self.server.compute(job)
        return job.raw()

    def jobs_get(
        self,
        limit: int | None = None,
        skip: int | None = None,
        job_tags: list[str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        self._enter("jobs_get")
        found = [j for j in self.server.jobs.values() if not job_tags or set(job_tags) <= set(j.tags)]
        found = sorted(found, key=lambda j: j.created, reverse=True)
        page = found[(skip or 0) : (skip or 0) + (limit or len(found))]
        return {"jobs": [j.raw() for j in page], "count": len(found)}

    def job_results(self, job_id: str) -> str:
        self._enter("job_results")
        job = self._job(job_id)
        if job.status == "Completed":
            assert job.result_json is not None
            return job.result_json
        return f"Traceback (most recent call last):\nRuntimeError: {job.reason or 'job failed'}"

    def job_metadata(self, job_id: str) -> dict[str, Any]:
        self._enter("job_metadata")
        job = self._job(job_id)
        running = job.created + timedelta(seconds=12.5)
        finished = running + timedelta(seconds=3.25)
        return {
            "timestamps": {
                "created": job.created.isoformat(),
                "running": running.isoformat(),
                "finished": finished.isoformat(),
            },
            "usage": {"quantum_seconds": 2.0, "seconds": 2.0},
            "bss": {"seconds": 2.0},
        }

    def job_cancel(self, job_id: str) -> None:
        self._enter("job_cancel")
        job = self._job(job_id)
        with self.server.lock:
            job.status, job.script = "Cancelled", deque()


class ScriptedRuntimeService(QiskitRuntimeService):
    """A real QiskitRuntimeService, built by its own constructor from documented arguments
    (channel, token, instance CRN), with the REST client underneath scripted.

    qiskit-ibm-runtime has no public seam below the service: its own tests substitute the
    ``RuntimeClient`` class in ``qiskit_ibm_runtime.qiskit_runtime_service``, and so does this.
    ``instances()`` (public: the account's instances, which the real one asks IBM Cloud's search
    service for) is overridden. :func:`test_the_seams_under_the_scripted_service_are_where_it_expects`
    fails, naming the installed version, when either seam moves.
    """

    def __new__(cls, server: ScriptedServer, **options: Any) -> ScriptedRuntimeService:
        return super().__new__(cls, channel="ibm_quantum_platform")

    def __init__(self, server: ScriptedServer, **options: Any) -> None:
        from unittest import mock

        from qiskit_ibm_runtime import qiskit_runtime_service

        self.constructed_with = dict(options)
        with mock.patch.object(
            qiskit_runtime_service, "RuntimeClient", lambda params: ScriptedClient(server, params.instance)
        ):
            super().__init__(channel="ibm_quantum_platform", token="scripted", instance=CRN)

    def instances(self) -> list[dict[str, Any]]:
        return [{"crn": CRN, "plan": "open", "name": "scripted", "tags": [], "pricing_type": "free"}]


def install(monkeypatch: pytest.MonkeyPatch, server: ScriptedServer) -> list[ScriptedRuntimeService]:
    """Make qdt connect to ``server``: every QiskitRuntimeService(...) qdt builds is scripted."""
    from qdt.executors.ibm import connect as ibm_connect

    made: list[ScriptedRuntimeService] = []

    def factory(**options: Any) -> ScriptedRuntimeService:
        service = ScriptedRuntimeService(server, **options)
        made.append(service)
        return service

    monkeypatch.setattr(ibm_connect, "service_class", lambda: factory)
    return made


# ---- tests of the scripted service itself ---------------------------------------------------------
def _isa_bell(backend: Any) -> Any:
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter
    from qiskit.transpiler import generate_preset_pass_manager

    theta = Parameter("theta")
    circuit = QuantumCircuit(2)
    circuit.ry(theta, 0)
    circuit.cx(0, 1)
    circuit.measure_all()
    return generate_preset_pass_manager(backend=backend, optimization_level=1, seed_transpiler=1).run(circuit)


def test_the_seams_under_the_scripted_service_are_where_it_expects() -> None:
    """The internals the scripted service stands on, checked by name so that a change in
    qiskit-ibm-runtime fails here, naming its version, instead of quietly changing what the IBM
    tests test: the ``RuntimeClient`` name the service module builds its REST client from, every
    client method the service calls (ScriptedClient must accept each of its parameters), the
    saved-account path qdt and ``isolate_accounts`` read, and the fake backends' raw JSON."""
    import inspect

    import qiskit_ibm_runtime
    from qiskit_ibm_runtime import qiskit_runtime_service
    from qiskit_ibm_runtime.accounts import management

    from qdt.noise.device import fake_backend

    version = f"qiskit-ibm-runtime {qiskit_ibm_runtime.__version__}"
    moved = []
    client = getattr(qiskit_runtime_service, "RuntimeClient", None)
    if not inspect.isclass(client):
        moved.append("qiskit_ibm_runtime.qiskit_runtime_service.RuntimeClient is gone")
    else:
        for name, ours in inspect.getmembers(ScriptedClient, inspect.isfunction):
            if name.startswith("_"):
                continue
            theirs = getattr(client, name, None)
            if theirs is None:
                moved.append(f"RuntimeClient.{name} is gone")
                continue
            accepted = inspect.signature(ours).parameters
            takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
            missing = [k for k in inspect.signature(theirs).parameters if k not in accepted and not takes_any]
            if missing:
                moved.append(f"RuntimeClient.{name} now takes {missing}")
    if not isinstance(getattr(management, "_DEFAULT_ACCOUNT_CONFIG_JSON_FILE", None), str):
        moved.append("accounts.management._DEFAULT_ACCOUNT_CONFIG_JSON_FILE is gone")
    manila = fake_backend("fake_manila")
    for name in ("_load_json", "conf_filename", "props_filename"):
        if not hasattr(manila, name):
            moved.append(f"the fake backends' {name} is gone")
    assert not moved, (
        f"{version} moved what tests/test_ibm_scripted_service.py stands on: "
        + "; ".join(moved)
        + " (update ScriptedClient/ScriptedRuntimeService, and qdt.executors.ibm.connect if the "
        "account file moved)"
    )
    service = ScriptedRuntimeService(ScriptedServer())
    assert isinstance(service._active_api_client, ScriptedClient), (
        f"{version}: QiskitRuntimeService no longer builds its client from RuntimeClient"
    )


def test_scripted_service_runs_the_real_client_through_a_status_walk() -> None:
    from qiskit_ibm_runtime import IBMBackend, RuntimeJobV2

    from qdt.executors.ibm.executor import primitive_class

    sampler = primitive_class("sampler")

    server = ScriptedServer()
    server.script_next("Queued", "Queued", "Running", "Completed")
    service = ScriptedRuntimeService(server)
    backend = service.backend("ibm_manila")
    assert isinstance(backend, IBMBackend) and backend.num_qubits == 5
    job = sampler(mode=backend).run([(_isa_bell(backend), [[0.0], [np.pi]], 200)])
    assert isinstance(job, RuntimeJobV2) and server.submissions == 1
    assert [job.status() for _ in range(4)] == ["QUEUED", "QUEUED", "RUNNING", "DONE"]
    counts = job.result()[0].data.meas.get_counts(1)
    assert counts == {"11": 200}  # RY(pi) then CX, noiseless
    again = service.job(job.job_id())
    assert again.status() == "DONE" and again.result()[0].data.meas.num_shots == 200
    assert service.jobs(job_tags=["nope"]) == []


def test_scripted_failures_cancellations_and_faults_reach_the_client_as_the_service_reports_them() -> None:
    from qiskit_ibm_runtime.exceptions import RuntimeJobFailureError, RuntimeJobMaxTimeoutError

    from qdt.executors.ibm.executor import primitive_class
    from qdt.executors.ibm.jobs import is_transient

    sampler = primitive_class("sampler")

    server = ScriptedServer()
    service = ScriptedRuntimeService(server)
    backend = service.backend("ibm_manila")
    circuit = _isa_bell(backend)
    server.script_next("Queued", step("Failed", 1517, "Error code 1517; circuit too deep"))
    server.script_next("Running", step("Cancelled", 1305, "Ran too long"))
    failed = sampler(mode=backend).run([(circuit, [[0.1]], 10)])
    slow = sampler(mode=backend).run([(circuit, [[0.1]], 10)])
    with pytest.raises(RuntimeJobFailureError):
        failed.result()
    with pytest.raises(RuntimeJobMaxTimeoutError):
        slow.result()
    server.fail("job_get", RequestsApiError("Service Unavailable", status_code=503))
    with pytest.raises(Exception) as caught:
        service.job(slow.job_id())
    assert "503" not in str(caught.value)  # the client hides the status code in its message...
    assert is_transient(caught.value)  # ...qdt finds it in the exception chain
    assert service.job(slow.job_id()).status() == "ERROR"  # the fault was one call only


# ---- shared fixtures for the tests/test_ibm_*.py modules ------------------------------------------
def isolate_accounts(monkeypatch: pytest.MonkeyPatch, directory: Any) -> Any:
    """No real account: no QISKIT_IBM_* variables, and Qiskit's saved-account file moved to ``directory``.

    (qiskit-ibm-runtime fixes that file's path at import, and creates it, empty, when it reads it.)
    """
    from pathlib import Path

    from qiskit_ibm_runtime.accounts import management

    for name in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE", "QISKIT_IBM_CHANNEL", "QISKIT_IBM_URL"):
        monkeypatch.delenv(name, raising=False)
    path = Path(directory) / "qiskit-ibm.json"
    monkeypatch.setattr(management, "_DEFAULT_ACCOUNT_CONFIG_JSON_FILE", str(path))
    return path


_TINY_RUN: dict[str, Any] = {}


def tiny_run(destination: Any) -> Any:
    """A copy of a tiny trained quantum run (trained once per test session, ~5 s) in ``destination``."""
    import shutil
    import tempfile
    from pathlib import Path

    from qdt.problem.generator import paper_instance
    from qdt.rl.config import TrainConfig
    from qdt.rl.train import train

    if "path" not in _TINY_RUN:
        source = Path(tempfile.mkdtemp(prefix="qdt-tiny-run-")) / "run"
        config = TrainConfig(
            episodes=10,
            steps_per_episode=2,
            batch_size=8,
            replay_size=64,
            warmup_transitions=8,
            hidden=8,
            layers=1,
            seed=5,
        )
        train(config, paper_instance(), source, progress=False)
        _TINY_RUN["path"] = source
    target = Path(destination) / "run"
    shutil.copytree(_TINY_RUN["path"], target)
    return target


def scripted_profile(directory: Any, device: str = "ibm_manila", **runtime: Any) -> Any:
    """A TOML profile for ``device`` on the scripted service, with fast polling and retries."""
    from pathlib import Path

    settings = {
        "poll_interval_s": 0.01,
        "max_poll_interval_s": 0.02,
        "retry_base_s": 0.001,
        "timeout_s": 30.0,
    }
    settings.update(runtime)
    lines = [
        'schema = "qdt-backend/1"',
        f'name = "scripted_{device}"',
        'executor = "ibm"',
        "shots = 4000",
        "[device]",
        'provider = "ibm_cloud"',
        f'name = "{device}"',
        "[runtime]",
    ]
    for key, value in settings.items():
        lines.append(f"{key} = {json.dumps(value)}")
    path = Path(directory) / f"scripted_{device}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
