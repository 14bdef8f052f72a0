"""Accounts and secrets: where the token comes from, the two failure messages, a canary that never leaks.

The network is replaced at the lowest level qiskit-ibm-runtime uses (``requests``' HTTPAdapter.send):
"no network" raises a connection error, "invalid token" answers HTTP 400 as IBM Cloud IAM does.
Everything above it (QiskitRuntimeService, its account discovery, its exceptions) is real.
Tests that need a real account are marked ``ibm_token`` and skipped without QISKIT_IBM_TOKEN.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from test_ibm_scripted_service import ScriptedServer, install, isolate_accounts, scripted_profile, tiny_run

from qdt.cli.main import build_parser, main
from qdt.executors import load_backend_profile
from qdt.executors.ibm.connect import (
    InvalidTokenError,
    NoAccountError,
    NoNetworkError,
    connect_device,
    warn_if_saved_account_readable,
)
from qdt.executors.ibm.settings import ibm_options

CANARY = "qdt-canary-7f3a9c1e5b2d4068a1b9"


def _no_network(self: Any, request: Any, **kwargs: Any) -> Any:
    raise requests.exceptions.ConnectionError(f"Failed to establish a new connection to {request.url}")


def _iam_rejects_the_key(self: Any, request: Any, **kwargs: Any) -> Any:
    response = requests.Response()
    response.status_code = 400
    response._content = json.dumps(
        {"errorCode": "BXNIM0415E", "errorMessage": "Provided API key could not be found."}
    ).encode()
    response.headers["Content-Type"] = "application/json"
    response.url, response.request = request.url, request
    return response


@pytest.fixture()
def account_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No saved account (Qiskit's account file moved to a fresh folder) and the canary as QISKIT_IBM_TOKEN."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    isolate_accounts(monkeypatch, home / ".qiskit")
    monkeypatch.setenv("QISKIT_IBM_TOKEN", CANARY)
    return home


def test_no_network_and_invalid_token_get_two_different_messages(
    account_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = ibm_options(load_backend_profile("ibm_torino")).device
    monkeypatch.setattr(HTTPAdapter, "send", _no_network)
    with pytest.raises(NoNetworkError) as offline:
        connect_device(spec)
    monkeypatch.setattr(HTTPAdapter, "send", _iam_rejects_the_key)
    with pytest.raises(InvalidTokenError) as rejected:
        connect_device(spec)
    assert "network problem, not a token problem" in str(offline.value)
    assert "rejected the API key" in str(rejected.value) and "HTTP 400" in str(rejected.value)
    assert str(offline.value) != str(rejected.value)


def test_without_token_or_saved_account_the_message_says_how_to_provide_one(
    account_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("QISKIT_IBM_TOKEN")
    monkeypatch.setattr(HTTPAdapter, "send", _no_network)
    spec = ibm_options(load_backend_profile("ibm_torino")).device
    with pytest.raises(NoAccountError):
        connect_device(spec)
    run = tiny_run(tmp_path)
    assert main(["infer", "--run", str(run), "--backend", "ibm_torino"]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "QISKIT_IBM_TOKEN" in err
        and "never takes a token on the command line" in err
    )


def test_no_command_accepts_a_token_on_the_command_line() -> None:
    parser = build_parser()
    options: list[str] = []

    def walk(p: Any) -> None:
        for action in p._actions:
            options.extend(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)

    walk(parser)
    assert "--run" in options  # the walk reached the subcommands
    assert not [o for o in options if "token" in o.lower() or "api-key" in o.lower()]


def test_a_saved_account_readable_by_others_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "qiskit-ibm.json"
    path.write_text('{"default-ibm-quantum-platform": {"channel": "ibm_quantum_platform"}}')
    path.chmod(0o644)
    assert warn_if_saved_account_readable(path)
    assert "chmod 600" in capsys.readouterr().err
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert not warn_if_saved_account_readable(path)
    assert warn_if_saved_account_readable(tmp_path / "missing.json") is False
    path.write_text("{}")  # what Qiskit creates when it merely looks for an account: nothing to protect
    path.chmod(0o644)
    assert not warn_if_saved_account_readable(path)


def test_canary_token_never_appears_in_output_logs_or_run_folders(
    account_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    from qdt.executors.ibm import jobs as ibm_jobs

    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(ibm_jobs, "_sleep", lambda seconds: None)
    run = tiny_run(tmp_path)
    server = ScriptedServer()
    cloud = str(scripted_profile(tmp_path))
    codes = []
    commands = [
        ["backends", "list"],
        ["backends", "list", "--json"],
        ["backends", "show", "ibm_torino", "--json"],
        ["backends", "show", "fake_manila"],
        ["infer", "--run", str(run), "--backend", "fake_manila", "--shots", "64", "--json"],
        ["infer", "--run", str(run), "--backend", "fake_manila", "--shots", "64", "--mitigate", "readout"],
    ]
    for command in commands:
        codes.append(main(command))
    monkeypatch.setattr(HTTPAdapter, "send", _no_network)
    codes.append(main(["infer", "--run", str(run), "--backend", "ibm_torino"]))
    monkeypatch.setattr(HTTPAdapter, "send", _iam_rejects_the_key)
    codes.append(main(["infer", "--run", str(run), "--backend", "ibm_torino", "--json"]))
    install(monkeypatch, server)
    for command in (
        ["infer", "--run", str(run), "--backend", cloud, "--json"],
        ["jobs", "list", "--run", str(run)],
        ["jobs", "list", "--run", str(run), "--json"],
        ["jobs", "status", "--run", str(run)],
        ["jobs", "fetch", "--run", str(run), "--json"],
    ):
        codes.append(main(command))
    assert codes == [0] * 6 + [2, 2] + [0] * 5
    captured = capsys.readouterr()
    texts = {"stdout": captured.out, "stderr": captured.err, "logs": caplog.text}
    for path in tmp_path.rglob("*"):
        if path.is_file():  # the run folder, the job store, the (isolated) Qiskit account folder
            texts[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    assert len(texts) > 5 and "jobs.jsonl" in " ".join(texts)
    leaks = [where for where, text in texts.items() if CANARY in text]
    assert leaks == []
    assert "cannot reach the service" in captured.err and "rejected the API key" in captured.err


@pytest.mark.ibm_token
@pytest.mark.skipif(
    not os.environ.get("QISKIT_IBM_TOKEN"), reason="needs a real IBM Quantum account: QISKIT_IBM_TOKEN"
)
def test_real_device_runs_a_small_batch(tmp_path: Path) -> None:
    """On a real device (QDT_IBM_BACKEND, default ibm_torino): one job, recorded, fetched, consistent."""
    import torch

    from qdt.circuits import build_vqc
    from qdt.executors import open_backend
    from qdt.executors.ibm.jobs import JobStore, fetch_job

    backend = os.environ.get("QDT_IBM_BACKEND", "ibm_torino")
    executor = open_backend(backend, shots=256, job_dir=tmp_path)
    vqc = build_vqc(input_width=4, n_layers=1)
    x = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    probs = executor.run(executor.prepare_vqc(vqc), vqc.angles(x), torch.zeros(vqc.n_weights))
    job_id = executor.jobs[-1].job_id
    assert torch.allclose(probs.sum(dim=1), torch.ones(2, dtype=torch.float64))
    assert probs[0, 0] > 0.5 and probs[1, 3] > 0.5  # zero weights: the encoded basis states
    assert fetch_job(JobStore(tmp_path), job_id).saved
