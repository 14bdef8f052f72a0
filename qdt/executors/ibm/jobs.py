"""Jobs that survive a crash: the job store, waiting with qdt's own timeout, retries, typed errors.

Store layout (a run folder, or :func:`default_job_dir`):
  jobs.jsonl         append-only events, one JSON object per line, fsynced before qdt waits:
                     ``submitting`` (the idempotency tag, before the service is called),
                     ``submitted`` (the job id: device, profile, PUB shapes), then status changes
                     (``QUEUED``, ``RUNNING``, ``DONE``, ``ERROR``, ``CANCELLED``, ``TIMED_OUT``, ``LOST``)
  jobs/<job_id>.json the finished job's counts (or expectation values), timing and usage

Rules:
* A job id is on disk before qdt waits for it; ``qdt jobs fetch`` reads it back and asks the
  service for the result: nothing is ever submitted twice.
* Transient service errors (no connection, HTTP 408/429/5xx) are retried with exponential
  backoff and jitter. A submission that failed transiently is only repeated after the service,
  asked for jobs carrying this submission's unique tag, says there is none.
* qdt's own wall-clock timeout applies to every job; a job that fails, is cancelled or runs too
  long raises a :class:`JobError` naming the job id (and what finished stays saved).
* Local testing mode has no job service: a local job exists only inside the process that
  submitted it. Its result is saved when it completes (also after qdt's timeout: the simulation
  finishes before the process exits). A local job whose process died before completion is lost;
  ``qdt jobs fetch`` says so and never resubmits.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import numpy as np

from qdt.errors import QdtError, QdtInputError
from qdt.executors.ibm.connect import http_status, is_network_error
from qdt.executors.ibm.program import bool_counts, outcome_counts
from qdt.executors.ibm.settings import DeviceSpec, RuntimeSettings
from qdt.files import write_json_atomic

JOBS_FILE = "jobs.jsonl"
RESULTS_DIR = "jobs"
FINAL_STATUSES = ("DONE", "ERROR", "CANCELLED")
QDT_FINAL_STATUSES = (*FINAL_STATUSES, "TIMED_OUT", "LOST")
TRANSIENT_HTTP = (408, 425, 429, 500, 502, 503, 504)
MAX_BACKOFF_S = 60.0
RUN_TOO_LONG_CODE = 1305  # Runtime's reason code: cancelled after max_execution_time
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

T = TypeVar("T")


def _sleep(seconds: float) -> None:
    """Every wait in this module goes through here (one seam for tests that simulate a crash)."""
    time.sleep(seconds)


# ---- errors ----------------------------------------------------------------------------------
class JobError(QdtError):
    """A Runtime job did not give a result; ``job_id`` names it."""

    def __init__(self, job_id: str, message: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id}: {message}")


class JobFailedError(JobError):
    pass


class JobCancelledError(JobError):
    pass


class JobTimeoutError(JobError):
    """The job ran longer than qdt's timeout (``where="qdt"``) or the service's (``"service"``)."""

    def __init__(self, job_id: str, message: str, where: str) -> None:
        self.where = where
        super().__init__(job_id, message)


class JobLostError(JobError):
    pass


class ServiceUnavailableError(QdtError):
    """Transient errors outlasted every retry."""


def default_job_dir() -> Path:
    """Where jobs go when no run folder is given: $QDT_JOBS_DIR, else $XDG_STATE_HOME/qdt/jobs."""
    if os.environ.get("QDT_JOBS_DIR"):
        return Path(os.environ["QDT_JOBS_DIR"])
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "qdt" / "jobs"


def check_job_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise QdtInputError("JOB_ID", "a Runtime job id (letters, digits, '-', '_', '.')", job_id)
    return job_id


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# ---- the store -------------------------------------------------------------------------------
@dataclass
class JobRecord:
    """One job as the store knows it: its submission and its latest status."""

    job_id: str
    submitted: dict[str, Any]
    status: str = "SUBMITTED"
    message: str | None = None
    updated: str | None = None
    history: list[tuple[str, str]] = field(default_factory=list)

    @property
    def local(self) -> bool:
        return bool(self.submitted.get("local"))

    @property
    def final(self) -> bool:
        return self.status in QDT_FINAL_STATUSES


class JobStore:
    """Append-only ``jobs.jsonl`` plus ``jobs/<id>.json`` results in one folder."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @property
    def jobs_path(self) -> Path:
        return self.directory / JOBS_FILE

    def result_path(self, job_id: str) -> Path:
        return self.directory / RESULTS_DIR / f"{check_job_id(job_id)}.json"

    def append(self, event: dict[str, Any]) -> None:
        """One line, flushed and fsynced before returning (the point of the store)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"time": utc_now(), **event}, allow_nan=False, default=str)
        with open(self.jobs_path, "a", encoding="utf-8") as stream:
            stream.write(line + "\n")
            stream.flush()
            os.fsync(stream.fileno())

    def events(self) -> list[dict[str, Any]]:
        if not self.jobs_path.is_file():
            return []
        events = []
        lines = self.jobs_path.read_text(encoding="utf-8", errors="replace").splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                if number == len(lines):
                    continue  # a line cut short by a crash; the rest is intact
                event = None
            if not isinstance(event, dict):
                raise QdtInputError(
                    f"{self.jobs_path}:{number}",
                    "one JSON object per line",
                    line[:60],
                    "the job store is damaged: restore it, or delete that line",
                )
            events.append(event)
        return events

    def records(self) -> dict[str, JobRecord]:
        records: dict[str, JobRecord] = {}
        for event in self.events():
            job_id = event.get("job_id")
            if not isinstance(job_id, str):
                continue
            if event.get("event") == "submitted":
                records[job_id] = JobRecord(job_id=job_id, submitted=event, updated=event.get("time"))
                records[job_id].history.append(("SUBMITTED", str(event.get("time"))))
            elif event.get("event") == "status" and job_id in records:
                record = records[job_id]
                record.status = str(event.get("status"))
                record.message = event.get("message")
                record.updated = event.get("time")
                record.history.append((record.status, str(event.get("time"))))
        return records

    def pending_tags(self) -> list[dict[str, Any]]:
        """``submitting`` events with no ``submitted`` after them: crashed while the service answered."""
        tagged = {e.get("tag") for e in self.events() if e.get("event") == "submitted"}
        return [e for e in self.events() if e.get("event") == "submitting" and e.get("tag") not in tagged]

    def get(self, job_id: str) -> JobRecord:
        records = self.records()
        if check_job_id(job_id) not in records:
            known = ", ".join(list(records)[-5:]) or "none"
            raise QdtInputError("JOB_ID", f"a job in {self.jobs_path} (latest: {known})", job_id)
        return records[job_id]

    def record_status(self, job_id: str, status: str, message: str | None = None, **extra: Any) -> None:
        event: dict[str, Any] = {"event": "status", "job_id": job_id, "status": status}
        if message:
            event["message"] = message
        self.append({**event, **extra})

    def save_result(self, job_id: str, payload: dict[str, Any]) -> Path:
        path = self.result_path(job_id)
        write_json_atomic(path, {"job_id": job_id, "saved": utc_now(), **payload})
        return path

    def load_result(self, job_id: str) -> dict[str, Any] | None:
        path = self.result_path(job_id)
        if not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def find_reusable(self, fingerprint: str) -> JobRecord | None:
        """The latest job with this fingerprint that finished or may still finish."""
        for record in reversed(list(self.records().values())):
            if record.submitted.get("fingerprint") != fingerprint:
                continue
            if record.status == "DONE" and self.result_path(record.job_id).is_file():
                return record
            if not record.final and not record.local:
                return record
        return None


# ---- statuses, retries -----------------------------------------------------------------------
def normalize_status(status: object) -> str:
    """``JobStatus.DONE`` (local jobs) and ``"DONE"`` (RuntimeJobV2) alike → ``"DONE"``."""
    name = getattr(status, "name", status)
    text = str(name).upper()
    return {"COMPLETED": "DONE", "FAILED": "ERROR", "VALIDATING": "QUEUED", "INITIALIZING": "QUEUED"}.get(
        text, text
    )


def is_transient(error: BaseException) -> bool:
    """Worth retrying: no answer at all, or HTTP 408/425/429/5xx."""
    if is_network_error(error):
        return True
    return http_status(error) in TRANSIENT_HTTP


def backoff_delay(attempt: int, settings: RuntimeSettings) -> float:
    """base·2^attempt seconds, capped at 60 s, with ±25% jitter (spreads out retry storms)."""
    delay = min(MAX_BACKOFF_S, settings.retry_base_s * (2**attempt))
    return delay * random.uniform(0.75, 1.25)


def with_retries(call: Callable[[], T], what: str, settings: RuntimeSettings, job_id: str | None = None) -> T:
    """``call()``, retrying transient errors ``settings.retries`` times with backoff."""
    attempt = 0
    while True:
        try:
            return call()
        except Exception as error:
            if not is_transient(error):
                raise
            if attempt >= settings.retries:
                who = f" for job {job_id}" if job_id else ""
                raise ServiceUnavailableError(
                    f"IBM Quantum: {what}{who} failed {attempt + 1} times with transient errors "
                    f"(last: {type(error).__name__}, HTTP {http_status(error)}); "
                    + (
                        f"the job is safe: `qdt jobs fetch --run DIR {job_id}` later"
                        if job_id
                        else "retry later"
                    )
                ) from None
            _sleep(backoff_delay(attempt, settings))
            attempt += 1


def submit_once(
    submit: Callable[[], T],
    find_by_tag: Callable[[], T | None] | None,
    settings: RuntimeSettings,
    tag: str,
) -> T:
    """Submit; after a transient failure, resubmit only if the service has no job with ``tag``."""
    attempt = 0
    while True:
        try:
            return submit()
        except Exception as error:
            if not is_transient(error) or find_by_tag is None:
                raise
            if attempt >= settings.retries:
                raise ServiceUnavailableError(
                    f"IBM Quantum: submission failed {attempt + 1} times with transient errors; no job "
                    f"carries tag {tag} (retry later)"
                ) from None
            _sleep(backoff_delay(attempt, settings))
            attempt += 1
            existing = with_retries(find_by_tag, "looking up the submission by tag", settings)
            if existing is not None:
                return existing


# ---- waiting ---------------------------------------------------------------------------------
class CallTimedOut(Exception):
    """A service call still had no answer at the deadline."""


def call_before(deadline: float, call: Callable[[], T]) -> T:
    """``call()`` in a daemon thread, abandoned at ``deadline`` (time.monotonic()): CallTimedOut.

    qiskit-ibm-runtime sets no read timeout, so a call can hang on a dead connection; an abandoned
    call's thread is a daemon and cannot keep the process alive.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise CallTimedOut()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as error:  # handed to the caller's thread
            box["error"] = error

    thread = threading.Thread(target=target, name="qdt-runtime-call", daemon=True)
    thread.start()
    thread.join(remaining)
    if thread.is_alive():
        raise CallTimedOut()
    if "error" in box:
        raise box["error"]
    return box["value"]


@dataclass
class WaitOutcome:
    status: str
    waited_s: float
    statuses: list[tuple[str, float]]  # (status, seconds since submission) at each change


def wait_for_job(
    job: Any, job_id: str, store: JobStore, settings: RuntimeSettings, started: float, *, local: bool
) -> WaitOutcome:
    """Poll ``job.status()`` until final or qdt's timeout; record changes; raise typed errors."""
    interval = settings.poll_interval_s
    deadline = started + settings.timeout_s
    last = None
    seen: list[tuple[str, float]] = []
    while True:
        try:  # the Runtime client has no read timeout: a hung poll must not outlast qdt's timeout
            polled = call_before(deadline, lambda: with_retries(job.status, "status poll", settings, job_id))
        except CallTimedOut:
            _time_out(job, job_id, store, settings, local)
        status = normalize_status(polled)
        now = time.monotonic()
        if status != last:
            seen.append((status, now - started))
            if status not in FINAL_STATUSES:
                store.record_status(job_id, status)
            last = status
        if status in FINAL_STATUSES:
            break
        if now >= deadline:
            _time_out(job, job_id, store, settings, local)
        _sleep(min(interval, max(0.0, deadline - now) + 0.01))
        interval = min(settings.max_poll_interval_s, interval * 1.5)
    outcome = WaitOutcome(status=status, waited_s=time.monotonic() - started, statuses=seen)
    if status == "ERROR":
        message = _error_message(job, settings, job_id)
        store.record_status(job_id, "ERROR", message)
        if getattr(job, "_reason_code", None) == RUN_TOO_LONG_CODE or "ran longer than" in message:
            raise JobTimeoutError(job_id, f"the service stopped it: {message}", where="service")
        raise JobFailedError(job_id, f"failed on the service: {message}")
    if status == "CANCELLED":
        store.record_status(job_id, "CANCELLED")
        raise JobCancelledError(job_id, "was cancelled (on the service, or by its owner)")
    return outcome


def _time_out(job: Any, job_id: str, store: JobStore, settings: RuntimeSettings, local: bool) -> NoReturn:
    if local:
        note = (
            "the local simulation keeps running inside this process, which saves its result when "
            "it completes (before exiting); then `qdt jobs fetch` reads it"
        )
    elif settings.on_timeout == "cancel":
        try:
            with_retries(job.cancel, "cancel", settings, job_id)
            note = "qdt cancelled it (runtime.on_timeout = 'cancel')"
        except Exception as error:  # the timeout is what matters; report the failed cancel with it
            note = f"cancelling it failed ({type(error).__name__}); it may still run"
    else:
        note = "it is still on the service: `qdt jobs fetch --run DIR JOB_ID [--wait]` retrieves it later"
    store.record_status(job_id, "TIMED_OUT", f"qdt stopped waiting after {settings.timeout_s:g} s; {note}")
    raise JobTimeoutError(
        job_id, f"no result within qdt's timeout of {settings.timeout_s:g} s; {note}", where="qdt"
    )


def _error_message(job: Any, settings: RuntimeSettings, job_id: str) -> str:
    getter = getattr(job, "error_message", None)
    if getter is None:
        return "no error message"
    try:
        message = with_retries(getter, "error message", settings, job_id)
    except Exception as error:  # the message is a courtesy; the failure itself is certain
        return f"error message unavailable ({type(error).__name__})"
    if not message:
        future = getattr(job, "_future", None)  # local jobs keep the exception in their future
        exception = future.exception() if future is not None and future.done() else None
        message = f"{type(exception).__name__}: {exception}" if exception is not None else ""
    return " ".join(str(message).split())[:500] or "no error message"


# ---- results ---------------------------------------------------------------------------------
def bitarray_counts(bits: Any) -> np.ndarray:
    """Counts per row of a BitArray of shape [B] → int64 [B, 2^num_bits] (vectorised, no row loop)."""
    array = np.asarray(bits.array, dtype=np.uint8)  # [B, shots, bytes], big-endian bytes
    num_bits = int(bits.num_bits)
    values: np.ndarray = np.zeros(array.shape[:-1], dtype=np.int64)
    for byte in range(array.shape[-1]):
        values = (values << 8) | array[..., byte].astype(np.int64)
    values &= (1 << num_bits) - 1
    return outcome_counts(values.reshape(-1, values.shape[-1]), num_bits)  # values: [B, shots]


def result_payload(result: Any, pubs: list[dict[str, Any]]) -> dict[str, Any]:
    """The parts of a result qdt needs, as JSON: counts per PUB, or ⟨Z⟩ and their stds. ``result`` is
    a PrimitiveResult (Sampler, Estimator) or the Executor's QuantumProgramResult (one item per PUB)."""
    results = list(result)
    if len(results) != len(pubs):
        raise QdtError(f"expected {len(pubs)} PUB results, got {len(results)}")
    out = []
    for pub_result, meta in zip(results, pubs):
        if meta["kind"] == "executor":
            counts = bool_counts(pub_result[meta["register"]])
            out.append({"kind": "executor", "counts": counts.tolist(), "shots": int(counts[0].sum())})
        elif meta["kind"] == "sampler":
            bits = getattr(pub_result.data, meta["register"])
            counts = bitarray_counts(bits)
            out.append({"kind": "sampler", "counts": counts.tolist(), "shots": int(bits.num_shots)})
        else:
            evs = np.asarray(pub_result.data.evs, dtype=np.float64)
            stds = np.asarray(pub_result.data.stds, dtype=np.float64)
            out.append({"kind": "estimator", "evs": evs.tolist(), "stds": stds.tolist()})
    metadata = getattr(result, "metadata", {}) or {}
    return {"pubs": out, "result_metadata": json.loads(json.dumps(metadata, default=str))}


def service_timing(metrics: dict[str, Any] | None) -> dict[str, float | None]:
    """Queue and execution time from ``job.metrics()`` timestamps, and the usage it reports."""
    timing: dict[str, float | None] = {"queue_s": None, "execution_s": None, "quantum_seconds": None}
    if not metrics:
        return timing
    stamps = metrics.get("timestamps") or {}
    created, running, finished = (_parse_time(stamps.get(k)) for k in ("created", "running", "finished"))
    if created and running:
        timing["queue_s"] = max(0.0, (running - created).total_seconds())
    if running and finished:
        timing["execution_s"] = max(0.0, (finished - running).total_seconds())
    usage = metrics.get("usage") or {}
    if isinstance(usage.get("quantum_seconds"), (int, float)):
        timing["quantum_seconds"] = float(usage["quantum_seconds"])
    return timing


def _parse_time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def collect_result(
    job: Any,
    job_id: str,
    store: JobStore,
    settings: RuntimeSettings,
    pubs: list[dict[str, Any]],
    *,
    local: bool,
) -> dict[str, Any]:
    """Fetch a DONE job's result and metrics, save them under jobs/<id>.json, return the payload.

    The download gets a fresh ``timeout_s`` of its own (the job is done; only the transfer is left).
    """
    try:
        result = call_before(
            time.monotonic() + settings.timeout_s,
            lambda: with_retries(job.result, "result download", settings, job_id),
        )
    except CallTimedOut:
        raise ServiceUnavailableError(
            f"IBM Quantum: job {job_id} is done but its result did not arrive within "
            f"{settings.timeout_s:g} s; `qdt jobs fetch --run DIR {job_id}` later"
        ) from None
    payload = result_payload(result, pubs)
    metrics = None
    if not local:  # local jobs stamp created = running = finished at submission: nothing to report
        try:
            metrics = json.loads(
                json.dumps(with_retries(job.metrics, "metrics", settings, job_id), default=str)
            )
        except (ServiceUnavailableError, Exception) as error:  # metrics are reported, not required
            metrics = {"error": f"{type(error).__name__}"}
    payload["metrics"] = metrics
    payload["service_timing"] = service_timing(metrics)
    store.save_result(job_id, payload)
    store.record_status(job_id, "DONE")
    return payload


def persist_local_on_completion(job: Any, job_id: str, store: JobStore, pubs: list[dict[str, Any]]) -> bool:
    """For a local job qdt stopped waiting for: save its result when the simulation completes."""
    future = getattr(job, "_future", None)
    if future is None:
        return False

    def save(done: Any) -> None:
        try:
            if done.cancelled() or done.exception() is not None:
                store.record_status(job_id, "ERROR", "the local simulation failed after qdt's timeout")
                return
            # job.result(), not the future's: from qiskit-ibm-runtime 0.50 the future holds the
            # Executor's raw QuantumProgramResult, which job.result() decodes (the future is done)
            payload = result_payload(job.result(), pubs)
            payload.update(metrics=None, service_timing=service_timing(None), completed_after_timeout=True)
            store.save_result(job_id, payload)
            store.record_status(job_id, "DONE", "completed after qdt's timeout")
        except Exception as error:  # runs in a worker thread at exit: report, never raise
            store.record_status(job_id, "LOST", f"saving the late result failed: {type(error).__name__}")

    future.add_done_callback(save)
    return True


# ---- fetching after the fact (`qdt jobs fetch`) --------------------------------------------------
@dataclass
class FetchOutcome:
    job_id: str
    status: str
    saved: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "status": self.status, "saved": self.saved, "message": self.message}


def process_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _settings_of(record: JobRecord, timeout_s: float | None) -> RuntimeSettings:
    known = {f for f in RuntimeSettings.__dataclass_fields__}
    stored = {k: v for k, v in (record.submitted.get("runtime") or {}).items() if k in known}
    settings = RuntimeSettings(**stored)
    if timeout_s is not None:
        settings = RuntimeSettings(**{**stored, "timeout_s": float(timeout_s)})
    return settings


def _connect_for(record: JobRecord) -> Any:
    from qdt.executors.ibm.connect import connect_device

    device = record.submitted.get("device") or {}
    return connect_device(DeviceSpec(**device))


def live_status(store: JobStore, job_id: str) -> FetchOutcome:
    """The service's current status of a cloud job (stored status for local ones); submits nothing."""
    record = store.get(job_id)
    if store.load_result(job_id) is not None:
        return FetchOutcome(job_id, "DONE", True, "result saved")
    if record.local:
        return _local_outcome(store, record)
    settings = _settings_of(record, None)
    device = _connect_for(record)
    job = with_retries(lambda: device.service.job(job_id), "job lookup", settings, job_id)
    status = normalize_status(with_retries(job.status, "status", settings, job_id))
    if status != record.status and status not in ("DONE",):
        store.record_status(job_id, status)
    return FetchOutcome(
        job_id, status, False, "on the service" + ("; `qdt jobs fetch` saves it" if status == "DONE" else "")
    )


def _local_outcome(store: JobStore, record: JobRecord) -> FetchOutcome:
    pid = record.submitted.get("pid")
    if record.status in ("ERROR", "CANCELLED", "LOST"):
        return FetchOutcome(record.job_id, record.status, False, record.message or "no result")
    if process_alive(pid):
        return FetchOutcome(
            record.job_id,
            "RUNNING",
            False,
            f"local job still running inside process {pid}; fetch again later",
        )
    return FetchOutcome(record.job_id, "LOST", False, LOCAL_LOST_MESSAGE)


LOCAL_LOST_MESSAGE = (
    "a local-testing-mode job runs inside the qdt process that submitted it, and that process ended "
    "before the job completed; there is no service to ask, so the result is gone (run `qdt infer` "
    "again; results of local jobs that completed are always saved)"
)


def fetch_job(
    store: JobStore, job_id: str, *, wait: bool = False, timeout_s: float | None = None
) -> FetchOutcome:
    """Save a job's result under jobs/<id>.json without ever submitting; typed errors for failures."""
    record = store.get(job_id)
    if store.load_result(job_id) is not None:
        return FetchOutcome(job_id, "DONE", True, f"already saved: {store.result_path(job_id)}")
    if record.local:
        outcome = _local_outcome(store, record)
        if outcome.status == "LOST":
            if record.status != "LOST":
                store.record_status(job_id, "LOST", LOCAL_LOST_MESSAGE)
            raise JobLostError(job_id, LOCAL_LOST_MESSAGE)
        if outcome.status in ("ERROR", "CANCELLED"):
            raise JobFailedError(job_id, outcome.message)
        return outcome
    settings = _settings_of(record, timeout_s)
    device = _connect_for(record)
    started = time.monotonic()
    job = with_retries(lambda: device.service.job(job_id), "job lookup", settings, job_id)
    status = normalize_status(with_retries(job.status, "status", settings, job_id))
    if status not in FINAL_STATUSES and not wait:
        if status != record.status:
            store.record_status(job_id, status)
        return FetchOutcome(job_id, status, False, "not finished; fetch again later, or add --wait")
    wait_for_job(job, job_id, store, settings, started, local=False)  # raises for ERROR / CANCELLED
    pubs = record.submitted.get("pubs") or []
    collect_result(job, job_id, store, settings, pubs, local=False)
    return FetchOutcome(job_id, "DONE", True, f"saved: {store.result_path(job_id)}")


def _tag_lookup(service: Any, tag: str) -> Callable[[], list[Any]]:
    return lambda: list(service.jobs(job_tags=[tag], limit=1))


def adopt_orphans(store: JobStore) -> list[str]:
    """Jobs whose id never reached the store (crash during submission): found by their tag, recorded."""
    adopted = []
    for event in store.pending_tags():
        spec = event.get("device_spec")
        if not spec or spec.get("provider") == "fake":
            continue
        record = JobRecord(job_id="(pending)", submitted={"device": spec, "runtime": event.get("runtime")})
        settings = _settings_of(record, None)
        device = _connect_for(record)
        tag = str(event.get("tag"))
        found = with_retries(_tag_lookup(device.service, tag), "tag lookup", settings)
        if not found:
            continue
        job_id = str(found[0].job_id())
        store.append(
            {
                **{k: v for k, v in event.items() if k not in ("time", "event")},
                "event": "submitted",
                "job_id": job_id,
                "device": spec,
                "adopted": True,
            }
        )
        adopted.append(job_id)
    return adopted
