"""Jobs that survive: the ibm executor against the scripted Runtime service (no network).

Each test drives the real executor, the real qiskit-ibm-runtime client (its Sampler, Session,
Batch, RuntimeJobV2, QiskitRuntimeService.job/jobs) and a scripted server that walks jobs through
queued, running, done, failed, cancelled and timed out, and injects transient faults.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from qiskit_ibm_runtime.api.exceptions import RequestsApiError
from test_ibm_scripted_service import (
    ScriptedServer,
    install,
    isolate_accounts,
    scripted_profile,
    step,
    tiny_run,
)

from qdt.circuits import build_vqc
from qdt.cli.main import main
from qdt.executors import open_backend
from qdt.executors.ibm.jobs import (
    JobCancelledError,
    JobFailedError,
    JobStore,
    JobTimeoutError,
    ServiceUnavailableError,
)


class SimulatedCrash(BaseException):
    """qdt (or the machine) dying: not an Exception, so nothing in qdt catches it."""


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ScriptedServer]:
    isolate_accounts(monkeypatch, tmp_path / "account")
    server = ScriptedServer()
    install(monkeypatch, server)
    yield server
    server.release.set()


def _vqc_batch(rows: int = 3) -> tuple[Any, torch.Tensor, torch.Tensor]:
    vqc = build_vqc(input_width=4, n_layers=2)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(rows, 4, generator=generator, dtype=torch.float64)
    weights = torch.rand(vqc.n_weights, generator=generator, dtype=torch.float64) * 6.28
    return vqc, vqc.angles(x), weights


def _exact(vqc: Any, angles: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    executor = open_backend("statevector")
    return executor.run(executor.prepare_vqc(vqc), angles, weights)


def _events(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (directory / "jobs.jsonl").read_text().splitlines()]


def test_cloud_job_id_is_on_disk_before_waiting_and_the_walk_is_recorded(
    server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qdt.executors.ibm import jobs as ibm_jobs

    server.script_next("Queued", "Queued", "Queued", "Running", "Completed")
    on_disk_at_first_wait: list[list[str]] = []

    def sleep(seconds: float) -> None:
        if not on_disk_at_first_wait:
            on_disk_at_first_wait.append(
                [e["job_id"] for e in _events(tmp_path) if e["event"] == "submitted"]
            )

    monkeypatch.setattr(ibm_jobs, "_sleep", sleep)
    executor = open_backend(scripted_profile(tmp_path), seed=1, job_dir=tmp_path)
    vqc, angles, weights = _vqc_batch()
    prepared = executor.prepare_vqc(vqc)
    probs = executor.run(prepared, angles, weights)
    (job_id,) = server.jobs
    assert on_disk_at_first_wait == [[job_id]]  # written before qdt waited
    assert server.submissions == 1 and len(server.jobs[job_id].tags) == 1
    # noiseless server, 4000 shots: sampling error only (5 sigma of a binomial)
    assert torch.allclose(probs, _exact(vqc, angles, weights), atol=5 * 0.5 / np.sqrt(4000))
    statuses = [e.get("status") for e in _events(tmp_path) if e["event"] == "status"]
    assert statuses == ["QUEUED", "RUNNING", "DONE"]
    saved = JobStore(tmp_path).load_result(job_id)
    assert saved is not None and np.asarray(saved["pubs"][0]["counts"]).sum() == 3 * 4000
    run = executor.jobs[-1]
    assert run.service_timing == {"queue_s": 12.5, "execution_s": 3.25, "quantum_seconds": 2.0}
    assert [s for s, _ in run.statuses] == ["QUEUED", "RUNNING", "DONE"]


@pytest.mark.parametrize(
    ("script", "error", "status"),
    [
        (("Queued", step("Failed", 1517, "Error code 1517; circuit too deep")), JobFailedError, "ERROR"),
        (("Queued", "Running", "Cancelled"), JobCancelledError, "CANCELLED"),
        (("Running", step("Cancelled", 1305, "Ran too long")), JobTimeoutError, "ERROR"),
    ],
    ids=["failed", "cancelled", "service-timeout"],
)
def test_failed_cancelled_and_too_long_jobs_raise_typed_errors_naming_the_job(
    server: ScriptedServer, tmp_path: Path, script: tuple[Any, ...], error: type, status: str
) -> None:
    server.script_next(*script)
    executor = open_backend(scripted_profile(tmp_path), job_dir=tmp_path)
    vqc, angles, weights = _vqc_batch()
    with pytest.raises(error) as caught:
        executor.run(executor.prepare_vqc(vqc), angles, weights)
    (job_id,) = server.jobs
    assert caught.value.job_id == job_id and job_id in str(caught.value)
    assert JobStore(tmp_path).get(job_id).status == status
    if error is JobTimeoutError:
        assert caught.value.where == "service"
    if error is JobFailedError:
        assert "circuit too deep" in str(caught.value)


@pytest.mark.parametrize("on_timeout", ["leave", "cancel"])
def test_qdt_timeout_names_the_job_and_leaves_or_cancels_it(
    server: ScriptedServer, tmp_path: Path, on_timeout: str
) -> None:
    server.script_next(*(["Queued"] * 100_000))
    profile = scripted_profile(tmp_path, timeout_s=0.3, on_timeout=on_timeout)
    executor = open_backend(profile, job_dir=tmp_path)
    vqc, angles, weights = _vqc_batch()
    with pytest.raises(JobTimeoutError) as caught:
        executor.run(executor.prepare_vqc(vqc), angles, weights)
    (job_id,) = server.jobs
    assert caught.value.where == "qdt" and job_id in str(caught.value)
    assert JobStore(tmp_path).get(job_id).status == "TIMED_OUT"
    assert server.calls.get("job_cancel", 0) == (1 if on_timeout == "cancel" else 0)
    assert server.jobs[job_id].status == ("Cancelled" if on_timeout == "cancel" else "Queued")


def test_a_status_poll_that_never_answers_cannot_outlast_qdt_timeout(
    server: ScriptedServer, tmp_path: Path
) -> None:
    import time

    server.script_next("Queued", "Queued", "Running", "Completed")
    executor = open_backend(scripted_profile(tmp_path, timeout_s=0.5), job_dir=tmp_path)
    vqc, angles, weights = _vqc_batch()
    prepared = executor.prepare_vqc(vqc)
    server.fail("job_get", "hang")  # the first status poll hangs on a dead connection
    started = time.monotonic()
    with pytest.raises(JobTimeoutError) as caught:
        executor.run(prepared, angles, weights)
    assert time.monotonic() - started < 5 and caught.value.where == "qdt"
    (job_id,) = server.jobs
    assert JobStore(tmp_path).get(job_id).status == "TIMED_OUT" and server.submissions == 1


def test_transient_errors_are_retried_without_a_second_submission(
    server: ScriptedServer, tmp_path: Path
) -> None:
    server.fail(
        "job_get",
        RequestsApiError("Service Unavailable", status_code=503),
        RequestsApiError("x", status_code=502),
    )
    server.fail("job_metadata", RequestsApiError("Too Many Requests", status_code=429))
    server.fail("job_results", RequestsApiError("Bad Gateway", status_code=502))
    executor = open_backend(scripted_profile(tmp_path), job_dir=tmp_path)
    vqc, angles, weights = _vqc_batch()
    executor.run(executor.prepare_vqc(vqc), angles, weights)
    assert server.submissions == 1
    assert executor.jobs[-1].service_timing["queue_s"] == 12.5  # metrics arrived after the 429


def test_a_lost_submission_reply_is_found_by_tag_not_submitted_again(
    server: ScriptedServer, tmp_path: Path
) -> None:
    server.fail("program_run", "after")  # the service creates the job, the reply never arrives
    executor = open_backend(scripted_profile(tmp_path), job_dir=tmp_path)
    vqc, angles, weights = _vqc_batch()
    executor.run(executor.prepare_vqc(vqc), angles, weights)
    assert server.submissions == 1 and server.calls["jobs_get"] >= 1
    (job_id,) = server.jobs
    assert executor.jobs[-1].job_id == job_id


def test_a_submission_refused_transiently_is_repeated_once_the_service_has_no_such_job(
    server: ScriptedServer, tmp_path: Path
) -> None:
    server.fail("program_run", RequestsApiError("Service Unavailable", status_code=503))
    executor = open_backend(scripted_profile(tmp_path), job_dir=tmp_path)
    vqc, angles, weights = _vqc_batch()
    executor.run(executor.prepare_vqc(vqc), angles, weights)
    assert server.calls["program_run"] == 2 and server.submissions == 1


def test_non_transient_and_persistent_errors_stop_with_a_clear_error(
    server: ScriptedServer, tmp_path: Path
) -> None:
    executor = open_backend(scripted_profile(tmp_path, retries=2), job_dir=tmp_path)
    vqc, angles, weights = _vqc_batch()
    prepared = executor.prepare_vqc(vqc)
    server.fail("job_get", *[RequestsApiError("Service Unavailable", status_code=503)] * 3)
    with pytest.raises(ServiceUnavailableError) as caught:
        executor.run(prepared, angles, weights)
    (job_id,) = server.jobs
    assert job_id in str(caught.value) and "qdt jobs fetch" in str(caught.value)
    assert server.submissions == 1


def test_crash_after_submission_then_jobs_fetch_submits_exactly_once(
    server: ScriptedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from qdt.executors.ibm import jobs as ibm_jobs

    run = tiny_run(tmp_path)
    profile = scripted_profile(tmp_path)
    server.script_next("Queued", "Queued", "Running", "Completed")

    def crash(seconds: float) -> None:
        raise SimulatedCrash()

    monkeypatch.setattr(ibm_jobs, "_sleep", crash)
    with pytest.raises(SimulatedCrash):
        main(["infer", "--run", str(run), "--backend", str(profile)])
    monkeypatch.setattr(ibm_jobs, "_sleep", lambda seconds: None)
    (job_id,) = server.jobs
    assert server.submissions == 1

    assert main(["jobs", "list", "--run", str(run), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["jobs"]
    assert [(j["job_id"], j["saved"]) for j in listed] == [(job_id, False)]
    assert main(["jobs", "status", "--run", str(run), "--json"]) == 0
    live = json.loads(capsys.readouterr().out)["jobs"][0]
    assert live["status"] in ("QUEUED", "RUNNING") and not live["saved"]  # asked the service, still pending
    assert main(["jobs", "fetch", "--run", str(run), "--wait", "--json"]) == 0
    fetched = json.loads(capsys.readouterr().out)["jobs"]
    assert fetched[0]["job_id"] == job_id and fetched[0]["status"] == "DONE" and fetched[0]["saved"]
    assert (run / "jobs" / f"{job_id}.json").is_file()
    assert server.submissions == 1

    # the interrupted inference resumes from the fetched result: still one submission
    assert main(["infer", "--run", str(run), "--backend", str(profile), "--resume", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert server.submissions == 1
    assert [(j["job_id"], j["reused"]) for j in report["jobs"]] == [(job_id, True)]
    assert report["decisions"]["raw"]["assignment"] is not None or not report["decisions"]["raw"]["feasible"]


def test_fetch_of_a_failed_cloud_job_raises_and_records_it(
    server: ScriptedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from qdt.executors.ibm import jobs as ibm_jobs

    run = tiny_run(tmp_path)
    server.script_next("Queued", step("Failed", 1517, "Error code 1517; boom"))
    monkeypatch.setattr(ibm_jobs, "_sleep", lambda seconds: (_ for _ in ()).throw(SimulatedCrash()))
    with pytest.raises(SimulatedCrash):
        main(["infer", "--run", str(run), "--backend", str(scripted_profile(tmp_path))])
    monkeypatch.setattr(ibm_jobs, "_sleep", lambda seconds: None)
    (job_id,) = server.jobs
    assert main(["jobs", "fetch", "--run", str(run), job_id]) == 1  # a run that failed
    err = capsys.readouterr().err
    assert err.startswith("qdt jobs fetch: error: job ") and job_id in err and "boom" in err
    assert JobStore(run).get(job_id).status == "ERROR" and server.submissions == 1


@pytest.mark.parametrize("mode", ["batch", "session"])
def test_batch_and_session_modes_open_once_and_close(
    server: ScriptedServer, tmp_path: Path, mode: str
) -> None:
    executor = open_backend(scripted_profile(tmp_path, mode=mode), job_dir=tmp_path)
    vqc, angles, weights = _vqc_batch(2)
    with executor:
        prepared = executor.prepare_vqc(vqc)
        executor.run(prepared, angles, weights)
        executor.run(prepared, angles, weights)
    assert server.calls["create_session"] == 1 and server.calls["close_session"] == 1
    (session_id,) = server.sessions
    assert {job.session_id for job in server.jobs.values()} == {session_id}
    submitted = [e for e in _events(tmp_path) if e["event"] == "submitted"]
    assert [e["session_id"] for e in submitted] == [session_id, session_id]


def test_one_job_carries_every_agent_and_the_whole_batch(server: ScriptedServer, tmp_path: Path) -> None:
    executor = open_backend(scripted_profile(tmp_path), job_dir=tmp_path)
    vqc_a, angles_a, weights_a = _vqc_batch(5)
    vqc_b = build_vqc(input_width=4, n_layers=2)
    prepared_a, prepared_b = executor.prepare_vqc(vqc_a), executor.prepare_vqc(vqc_b)
    assert executor.isa_report(prepared_b)["transpile_cached"]  # same structure: transpiled once
    outputs = executor.run_many([(prepared_a, angles_a, weights_a), (prepared_b, angles_a[:2], weights_a)])
    assert server.submissions == 1 and [tuple(o.shape) for o in outputs] == [(5, 4), (2, 4)]
    job = next(iter(server.jobs.values()))
    assert server.pubs_of(job) == [5, 2]  # one PUB per circuit, each with its parameter array


def test_readout_calibration_circuits_ride_in_the_same_cloud_job(
    server: ScriptedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a real device --mitigate readout measures its calibration with the job it corrects: two
    one-row PUBs more in the one job (the scripted server is noiseless, so every flip is 0)."""
    run = tiny_run(tmp_path)
    args = ["infer", "--run", str(run), "--backend", str(scripted_profile(tmp_path)), "--mitigate", "readout"]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (job,) = server.jobs.values()
    assert server.submissions == 1 and server.pubs_of(job) == [16, 16, 1, 1]
    mitigation = report["mitigation"]
    assert mitigation["calibration"] == "circuits" and mitigation["calibration_job_id"] == job.job_id
    for matrix in mitigation["matrices"].values():
        assert np.allclose(matrix, np.eye(2))
    assert report["decisions"]["mitigated"]["assignment"] == report["decisions"]["raw"]["assignment"]


def test_crash_while_the_submission_reply_is_lost_is_recovered_by_tag(
    server: ScriptedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from qdt.executors.ibm import jobs as ibm_jobs

    server.fail("program_run", "after")  # the job exists; qdt never learns its id...
    monkeypatch.setattr(ibm_jobs, "_sleep", lambda seconds: (_ for _ in ()).throw(SimulatedCrash()))
    executor = open_backend(scripted_profile(tmp_path), job_dir=tmp_path)
    vqc, angles, weights = _vqc_batch()
    prepared = executor.prepare_vqc(vqc)
    with pytest.raises(SimulatedCrash):  # ...because it dies while backing off
        executor.run(prepared, angles, weights)
    monkeypatch.setattr(ibm_jobs, "_sleep", lambda seconds: None)
    (job_id,) = server.jobs
    assert main(["jobs", "list", "--run", str(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["jobs"] == [] and len(listed["unresolved_submissions"]) == 1
    assert main(["jobs", "fetch", "--run", str(tmp_path), "--json"]) == 0  # adopted; still running
    fetched = json.loads(capsys.readouterr().out)["jobs"]
    assert [(j["job_id"], j["saved"]) for j in fetched] == [(job_id, False)]
    assert main(["jobs", "fetch", "--run", str(tmp_path), "--wait", "--json"]) == 0
    fetched = json.loads(capsys.readouterr().out)["jobs"]
    assert [(j["job_id"], j["status"]) for j in fetched] == [(job_id, "DONE")]
    assert server.submissions == 1 and JobStore(tmp_path).pending_tags() == []


def test_every_runtime_option_qdt_sets_reaches_the_service_without_a_deprecated_call(
    server: ScriptedServer, tmp_path: Path
) -> None:
    """Dynamical decoupling, gate twirling and the service's own time limit, through the Sampler
    the installed qiskit-ibm-runtime recommends. pyproject.toml turns a DeprecationWarning raised
    by qdt's calls into an error, so a deprecated option or primitive fails this test."""
    profile = tmp_path / "scripted_options.toml"
    profile.write_text(
        'schema = "qdt-backend/1"\nname = "scripted_options"\nexecutor = "ibm"\nshots = 512\n'
        '[device]\nprovider = "ibm_cloud"\nname = "ibm_manila"\n'
        "[runtime]\npoll_interval_s = 0.01\nmax_poll_interval_s = 0.02\nmax_execution_time_s = 60\n"
        '[error_suppression]\ndynamical_decoupling = true\ndd_sequence = "XpXm"\ntwirling_gates = true\n'
    )
    executor = open_backend(profile, seed=3, job_dir=tmp_path)
    vqc, angles, weights = _vqc_batch(2)
    probs = executor.run(executor.prepare_vqc(vqc), angles, weights)
    assert probs.shape == (2, 4) and (probs - _exact(vqc, angles, weights)).abs().max() < 0.15
    (job,) = server.jobs.values()
    assert job.max_execution_time == 60
    submitted = next(e for e in _events(tmp_path) if e["event"] == "submitted")
    assert submitted["options"]["dynamical_decoupling"] == {"enable": True, "sequence_type": "XpXm"}
    assert submitted["options"]["twirling"] == {"enable_gates": True, "enable_measure": False}
