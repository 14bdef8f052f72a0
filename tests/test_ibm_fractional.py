"""Fractional gates (``[device] fractional_gates = true``): native RX(θ) on devices that have it.

Local testing mode uses ``fake_fractional`` (qiskit-ibm-runtime's 5-qubit FakeFractionalBackend,
the only fake device of 0.51 whose target has ``rx``); the real-device path (``service.backend(...,
use_fractional_gates=True)``) runs against the scripted Runtime service, whose ``ibm_fractional``
serves that device's configuration. The ISA circuit with fractional gates is compared with the same
circuit transpiled for the device without rx/rzz; a device without rx is refused, naming
``device.fractional_gates``, before anything is transpiled or submitted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.quantum_info import Statevector
from test_ibm_local import _batch, _exact
from test_ibm_scripted_service import ScriptedServer, install, isolate_accounts, scripted_profile, tiny_run

from qdt.cli.main import main
from qdt.errors import QdtInputError
from qdt.executors import open_backend, parse_profile
from qdt.executors.ibm.executor import IBMRuntimeExecutor
from qdt.executors.ibm.jobs import JobStore
from qdt.executors.ibm.settings import ibm_options
from qdt.executors.transpile_cache import clear_transpile_cache

# _batch(rows, layers): the paper's actor circuit (4 inputs amplitude-encoded on 2 qubits, L RX
# layers and CZ) with random inputs and weights

K_SIGMA = 4.0  # per probability: |p_hat - p| <= K_SIGMA * sqrt(p (1 - p) / shots)


def _profile(directory: Path, name: str, device: str, fractional: bool) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(
        f'schema = "qdt-backend/1"\nname = "{name}"\nexecutor = "ibm"\nshots = 1024\n'
        f'[device]\nprovider = "fake"\nname = "{device}"\nfractional_gates = {str(fractional).lower()}\n'
        "[runtime]\npoll_interval_s = 0.05\nmax_poll_interval_s = 0.2\n"
    )
    return path


def _isa_probabilities(payload: Any, angles: torch.Tensor, weights: torch.Tensor) -> np.ndarray:
    """The submitted ISA circuit simulated exactly, read out as qdt reads it (bit i: readout qubit i)."""
    values = torch.cat([angles, weights.expand(angles.shape[0], -1)], dim=1).numpy()[:, payload.sources]
    unmeasured = QuantumCircuit(*payload.circuit.qregs)
    for instruction in payload.circuit.data:
        if instruction.operation.name != "measure":
            unmeasured.append(instruction)
    rows = []
    for row in values:
        bound = unmeasured.assign_parameters(dict(zip(payload.circuit.parameters, row)))
        rows.append(Statevector(bound).probabilities(list(payload.physical_readout)))
    return np.array(rows)


def test_profile_option_is_parsed_with_the_device_and_shown() -> None:
    base = {"schema": "qdt-backend/1", "name": "p", "executor": "ibm"}
    on = parse_profile(
        {**base, "device": {"provider": "fake", "name": "fake_fractional", "fractional_gates": True}}
    )
    off = parse_profile({**base, "device": {"provider": "fake", "name": "fake_fractional"}})
    assert ibm_options(on).device.fractional_gates and not ibm_options(off).device.fractional_gates
    assert (
        on.to_dict()["device"]["fractional_gates"] is True
        and "fractional_gates" not in off.to_dict()["device"]
    )
    assert "fractional gates" in on.summary and "fractional gates" not in off.summary
    for bad in ("yes", 1):
        with pytest.raises(QdtInputError) as caught:
            parse_profile(
                {**base, "device": {"provider": "fake", "name": "fake_fractional", "fractional_gates": bad}},
                where="x.toml",
            )
        assert caught.value.field == "x.toml: device.fractional_gates" and caught.value.expected == "a bool"


def test_the_paper_actor_on_fake_fractional_uses_native_rx_and_is_shallower(tmp_path: Path) -> None:
    executor = open_backend("fake_fractional", job_dir=tmp_path)  # the shipped profile: fractional on
    assert isinstance(executor, IBMRuntimeExecutor) and executor.settings.device.fractional_gates
    vqc, angles, weights = _batch(3, layers=6)
    prepared = executor.prepare_vqc(vqc)
    report = executor.isa_report(prepared)
    without = report["without_fractional_gates"]
    assert (
        report["fractional_gates"] is True and report["operations"].get("rx", 0) >= 6
    )  # one per RX at least
    assert set(report["operations"]) <= set(executor.device.backend.operation_names)
    assert "rx" not in without["operations"] and "rzz" not in without["operations"]
    assert without["operations"]["sx"] > 0  # RX as RZ-SX-RZ-SX-RZ without them
    assert report["depth"] < without["depth"]  # the point of fractional gates
    assert report["two_qubit_gates"] <= without["two_qubit_gates"]
    # the submitted circuit computes the logical one exactly (transpilation and parameter mapping)
    assert np.allclose(
        _isa_probabilities(prepared.payload, angles, weights), _exact(vqc, angles, weights).numpy(), atol=1e-9
    )
    assert not (tmp_path / "jobs.jsonl").exists()  # preparing submits nothing

    plain = open_backend(_profile(tmp_path, "frac_off", "fake_fractional", False), job_dir=tmp_path)
    plain_report = plain.isa_report(plain.prepare_vqc(vqc))
    assert plain_report["fractional_gates"] is False and "without_fractional_gates" not in plain_report
    assert "rx" not in plain_report["operations"]  # as a device opened without fractional gates
    assert plain_report["depth"] == without["depth"]  # the comparison is that very transpilation


def test_fractional_results_agree_with_the_exact_probabilities_and_jobs_record_both_sizes(
    tmp_path: Path,
) -> None:
    """Stated bound, per row: total variation distance to the exact probabilities at most
    (sum of the calibrated errors of the ISA circuit's instructions: the device's noise budget)
    + K_SIGMA * 2^m / (4 sqrt(shots)) (shot noise: each of the 2^m probabilities within
    K_SIGMA * 0.5 / sqrt(shots)). Measured: TVD 0.01-0.05 against a bound of about 0.13."""
    shots = 8192  # fake_fractional's max_shots
    executor = open_backend("fake_fractional", shots=shots, seed=3, job_dir=tmp_path)
    vqc, angles, weights = _batch(4, layers=6)
    prepared = executor.prepare_vqc(vqc)
    probs = executor.run(prepared, angles, weights).numpy()
    exact = _exact(vqc, angles, weights).numpy()
    isa, target = prepared.payload.circuit, executor.device.backend.target
    budget = 0.0
    for instruction in isa.data:
        qubits = tuple(isa.find_bit(q).index for q in instruction.qubits)
        properties = target[instruction.operation.name].get(qubits)
        budget += properties.error if properties is not None and properties.error else 0.0
    assert 0 < budget < 0.2
    bound = budget + K_SIGMA * probs.shape[1] / (4 * np.sqrt(shots))
    tvd = 0.5 * np.abs(probs - exact).sum(axis=1)
    assert tvd.max() < bound, (tvd, bound)
    submitted = [e for e in JobStore(tmp_path).events() if e["event"] == "submitted"]
    assert len(submitted) == 1 and submitted[0]["device"]["fractional_gates"] is True
    (pub,) = submitted[0]["pubs"]
    assert pub["fractional_gates"] is True and pub["depth"] < pub["without_fractional_gates"]["depth"]
    assert set(pub["without_fractional_gates"]) == {"depth", "two_qubit_gates"}
    submitting = [e for e in JobStore(tmp_path).events() if e["event"] == "submitting"]
    assert submitting[0]["pubs"][0]["without_fractional_gates"] == pub["without_fractional_gates"]


def test_infer_on_fake_fractional_reports_the_isa_sizes_with_and_without(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tiny_run(tmp_path)
    args = ["infer", "--run", str(run), "--backend", "fake_fractional", "--shots", "256"]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"]["fractional_gates"] is True
    for circuit in report["circuits"]:
        without = circuit["without_fractional_gates"]
        assert circuit["fractional_gates"] and "rx" in circuit["operations"]
        assert circuit["depth"] < without["depth"] and "rx" not in without["operations"]
    for line in (run / "jobs.jsonl").read_text().splitlines():
        event = json.loads(line)
        for pub in event.get("pubs", []):  # submitting and submitted: every agent's PUB
            assert pub["fractional_gates"] and pub["depth"] < pub["without_fractional_gates"]["depth"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "ISA depth (rx)" in out and "depth without rx" in out


def test_fractional_gates_on_a_device_without_rx_fail_before_transpiling_or_submitting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import qiskit.transpiler

    run = tiny_run(tmp_path)
    profile = _profile(tmp_path, "torino_fractional", "fake_torino", True)
    transpiled: list[object] = []
    original = qiskit.transpiler.generate_preset_pass_manager

    def counting(*args: Any, **kwargs: Any) -> Any:
        transpiled.append(kwargs.get("backend"))
        return original(*args, **kwargs)

    monkeypatch.setattr(qiskit.transpiler, "generate_preset_pass_manager", counting)
    clear_transpile_cache()
    assert main(["infer", "--run", str(run), "--backend", str(profile)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{profile}: device.fractional_gates: expected a device whose basis has rx" in err
    assert "fake_torino: basis cz, id, rz, sx, x" in err and "set fractional_gates = false" in err
    assert "fake_fractional" in err  # the fix names a device that has them
    assert transpiled == [] and not (run / "jobs.jsonl").exists()  # nothing transpiled, nothing submitted


@pytest.fixture()
def fractional_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ScriptedServer]:
    isolate_accounts(monkeypatch, tmp_path / "account")
    server = ScriptedServer({"ibm_fractional": "fake_fractional", "ibm_torino": "fake_torino"})
    install(monkeypatch, server)
    yield server
    server.release.set()


def _fractional_profile(directory: Path, device: str) -> Path:
    folder = directory / "fractional"
    folder.mkdir(exist_ok=True)
    path = scripted_profile(folder, device)
    text = path.read_text().replace(f'name = "{device}"\n', f'name = "{device}"\nfractional_gates = true\n')
    path.write_text(text)
    return path


def test_a_real_device_is_opened_with_fractional_gates_and_its_results_match_the_exact_ones(
    fractional_server: ScriptedServer, tmp_path: Path
) -> None:
    """The scripted service computes noiselessly with 4000 shots: only shot noise, K_SIGMA sigmas."""
    executor = open_backend(_fractional_profile(tmp_path, "ibm_fractional"), seed=1, job_dir=tmp_path)
    assert not executor.local and "rx" in executor.device.backend.target.operation_names
    vqc, angles, weights = _batch(3, layers=6)
    prepared = executor.prepare_vqc(vqc)
    report = executor.isa_report(prepared)
    assert "rx" in report["operations"] and report["depth"] < report["without_fractional_gates"]["depth"]
    probs = executor.run(prepared, angles, weights).numpy()
    exact = _exact(vqc, angles, weights).numpy()
    sigma = np.sqrt(np.maximum(exact * (1 - exact), 1 / 4000) / 4000)
    assert np.all(np.abs(probs - exact) <= K_SIGMA * sigma + 1e-12)
    assert fractional_server.submissions == 1  # only the rx circuit went to the device
    plain = open_backend(scripted_profile(tmp_path, "ibm_fractional"), job_dir=tmp_path)
    assert "rx" not in plain.device.backend.target.operation_names  # opened without fractional gates


def test_a_real_device_without_fractional_gates_is_refused_before_any_job(
    fractional_server: ScriptedServer, tmp_path: Path
) -> None:
    executor = open_backend(_fractional_profile(tmp_path, "ibm_torino"), job_dir=tmp_path)
    vqc, _, _ = _batch(1)
    with pytest.raises(QdtInputError) as caught:
        executor.prepare_vqc(vqc)
    assert caught.value.field.endswith("scripted_ibm_torino.toml: device.fractional_gates")
    assert "ibm_torino: basis cz, id, rz, sx, x" in str(caught.value)
    assert fractional_server.submissions == 0 and fractional_server.calls.get("program_run", 0) == 0
