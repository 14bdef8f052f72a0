"""The ibm executor in qiskit-ibm-runtime's local testing mode: fake devices, the real code path.

Same executor class, same SamplerV2, same job store as a real device; only the profile differs
(``[device] provider = "fake"``). Local runs cost about 0.05 s per row on a 5-qubit fake device
and 0.3-0.7 s per row on the 127/133-qubit ones (Aer applies the whole device's noise model per
circuit), so these tests keep batches small; the fake_torino inference is marked slow.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_ibm_scripted_service import tiny_run

from qdt.circuits import build_vqc
from qdt.cli.main import main
from qdt.errors import QdtInputError
from qdt.executors import open_backend
from qdt.executors.ibm.executor import IBMRuntimeExecutor
from qdt.executors.ibm.jobs import JobStore, JobTimeoutError
from qdt.executors.ibm.mitigation import (
    check_m3_calibration,
    m3_mitigate,
    m3_mitigator,
    readout_assignment_matrices,
)


def _batch(rows: int, layers: int = 1, seed: int = 0) -> tuple[Any, torch.Tensor, torch.Tensor]:
    vqc = build_vqc(input_width=4, n_layers=layers)
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(rows, 4, generator=generator, dtype=torch.float64)
    weights = torch.rand(vqc.n_weights, generator=generator, dtype=torch.float64) * 6.28
    return vqc, vqc.angles(x), weights


def _exact(vqc: Any, angles: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    executor = open_backend("statevector")
    return executor.run(executor.prepare_vqc(vqc), angles, weights)


@pytest.mark.parametrize(("device", "rows"), [("fake_manila", 6), ("fake_brisbane", 2)])
def test_fake_devices_run_the_batch_in_one_job_close_to_the_exact_probabilities(
    device: str, rows: int, tmp_path: Path
) -> None:
    executor = open_backend(device, shots=2048, seed=3, job_dir=tmp_path)
    assert isinstance(executor, IBMRuntimeExecutor) and executor.capabilities.noisy
    assert not executor.capabilities.remote and not executor.capabilities.differentiable
    vqc, angles, weights = _batch(rows)
    prepared = executor.prepare_vqc(vqc)
    report = executor.isa_report(prepared)
    assert report["device"] == device and len(report["physical_readout"]) == 2
    assert report["two_qubit_gates"] >= 1 and report["depth"] >= 4
    assert set(report["operations"]) <= set(executor.device.backend.operation_names) | {"barrier"}
    probs = executor.run(prepared, angles, weights)
    exact = _exact(vqc, angles, weights)
    # device noise and 2048 shots: total variation distance per row well under 0.15
    assert (0.5 * (probs - exact).abs().sum(dim=1)).max() < 0.15
    (job,) = executor.jobs
    assert job.rows == rows and job.pubs == 1 and job.shots == 2048
    saved = JobStore(tmp_path).load_result(job.job_id)
    assert saved is not None and np.asarray(saved["pubs"][0]["counts"]).sum(axis=1).tolist() == [2048] * rows
    events = [json.loads(line) for line in (tmp_path / "jobs.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events][:2] == ["submitting", "submitted"] and events[1]["local"] is True


def test_transpiles_once_per_structure_and_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import qiskit.transpiler

    from qdt.executors.transpile_cache import clear_transpile_cache

    calls = []
    original = qiskit.transpiler.generate_preset_pass_manager

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("backend"))
        return original(*args, **kwargs)

    monkeypatch.setattr(qiskit.transpiler, "generate_preset_pass_manager", counting)
    clear_transpile_cache()  # the cache is process-wide; start this test empty
    executor = open_backend("fake_manila", job_dir=tmp_path)
    first, second = build_vqc(input_width=4, n_layers=5), build_vqc(input_width=4, n_layers=5)
    a, b = executor.prepare_vqc(first), executor.prepare_vqc(second)
    assert len(calls) == 1 and executor.isa_report(b)["transpile_cached"]
    assert set(b.payload.circuit.parameters) == set(second.circuit.parameters)  # rebound to its own
    assert executor.isa_report(a)["layout"] == executor.isa_report(b)["layout"]


def test_invalid_input_is_refused_before_anything_is_submitted(tmp_path: Path) -> None:
    from qiskit import QuantumCircuit

    executor = open_backend("fake_manila", job_dir=tmp_path)
    wide = QuantumCircuit(6)
    wide.h(range(6))
    with pytest.raises(QdtInputError, match="at most 5 qubits"):
        executor.prepare(wide, [], [])
    vqc, angles, weights = _batch(3)
    prepared = executor.prepare_vqc(vqc)
    bad_angles = angles.clone()
    bad_angles[1, 0] = float("nan")
    for call, match in (
        (lambda: executor.run(prepared, bad_angles, weights), "finite"),
        (lambda: executor.run(prepared, angles[:, :-1], weights), r"angles: expected a 2-D tensor"),
        (lambda: executor.run(prepared, angles, weights[:-1]), "weights"),
        (lambda: executor.run(prepared, angles, weights, readout="counts"), "readout"),
    ):
        with pytest.raises(QdtInputError, match=match):
            call()
    for shots in (0, -5, 10**8, 2.5):
        with pytest.raises(QdtInputError, match="shots"):
            open_backend("fake_manila", shots=shots, job_dir=tmp_path)  # type: ignore[arg-type]
    too_many = open_backend("fake_manila", shots=200_000, job_dir=tmp_path)  # device max_shots is 100000
    with pytest.raises(QdtInputError, match="at most 100000"):
        too_many.run(too_many.prepare_vqc(vqc), angles, weights)
    assert not (tmp_path / "jobs.jsonl").exists()  # nothing was submitted


def test_same_seed_same_counts_and_every_job_draws_a_fresh_simulator_seed(tmp_path: Path) -> None:
    vqc, angles, weights = _batch(3)
    outputs = []
    for _ in range(2):
        executor = open_backend("fake_manila", shots=256, seed=11, job_dir=tmp_path)
        prepared = executor.prepare_vqc(vqc)
        outputs.append([executor.run(prepared, angles, weights) for _ in range(2)])
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1], outputs[1][1])
    assert not torch.equal(outputs[0][0], outputs[0][1])
    seeds = [
        json.loads(line)["options"]["simulator"]["seed_simulator"]
        for line in (tmp_path / "jobs.jsonl").read_text().splitlines()
        if '"submitted"' in line
    ]
    assert seeds[0] == seeds[2] and seeds[0] != seeds[1]


def test_estimator_profile_gives_z_expectations_through_the_runtime_estimator(tmp_path: Path) -> None:
    profile = tmp_path / "fake_manila_estimator.toml"
    profile.write_text(
        'schema = "qdt-backend/1"\nname = "fake_manila_estimator"\nexecutor = "ibm"\nshots = 4096\n'
        '[device]\nprovider = "fake"\nname = "fake_manila"\n'
        "[estimator]\nuse_for_expval = true\nresilience_level = 1\n"
    )
    executor = open_backend(profile, seed=2, job_dir=tmp_path)
    vqc, angles, weights = _batch(3)
    values = executor.run(executor.prepare_vqc(vqc), angles, weights, readout="expval_z")
    exact = open_backend("statevector")
    reference = exact.run(exact.prepare_vqc(vqc), angles, weights, readout="expval_z")
    assert values.shape == (3, 2) and (values - reference).abs().max() < 0.2
    assert executor.jobs[-1].kind == "estimator"
    (submitted,) = [e for e in JobStore(tmp_path).events() if e["event"] == "submitted"]
    assert submitted["kind"] == "estimator" and submitted["options"]["resilience_level"] == 1


def test_runtime_primitives_are_the_current_ones_and_warnings_are_noted_not_hidden() -> None:
    """Sampler/Estimator are the client-side ones from qiskit-ibm-runtime 0.50 on (SamplerV2 and
    EstimatorV2 are deprecated there); a warning shown during a submission is noted for the job's
    report and still shown, and an ``error`` filter still raises."""
    import warnings

    import qiskit_ibm_runtime

    from qdt.executors.ibm.executor import noting_warnings, primitive_class

    version = tuple(int(part) for part in qiskit_ibm_runtime.__version__.split(".")[:2])
    sampler, estimator = primitive_class("sampler"), primitive_class("estimator")
    if version >= (0, 50):
        assert (sampler.__module__, estimator.__module__) == (
            "qiskit_ibm_runtime.executor_sampler.sampler",
            "qiskit_ibm_runtime.executor_estimator.estimator",
        )
    else:
        assert (sampler.__name__, estimator.__name__) == ("SamplerV2", "EstimatorV2")
    with pytest.warns(UserWarning, match="shown"), noting_warnings() as noted:
        warnings.warn("shown and noted", UserWarning, stacklevel=1)
    assert noted == ["shown and noted"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with pytest.raises(DeprecationWarning), noting_warnings():
            warnings.warn("still an error", DeprecationWarning, stacklevel=1)


def test_local_job_outliving_qdt_timeout_is_saved_at_completion(tmp_path: Path) -> None:
    profile = tmp_path / "fake_brisbane_fast.toml"
    profile.write_text(
        'schema = "qdt-backend/1"\nname = "fake_brisbane_fast"\nexecutor = "ibm"\nshots = 64\n'
        '[device]\nprovider = "fake"\nname = "fake_brisbane"\n'
        "[runtime]\ntimeout_s = 0.05\npoll_interval_s = 0.01\nmax_poll_interval_s = 0.01\n"
    )
    executor = open_backend(profile, job_dir=tmp_path)
    vqc, angles, weights = _batch(3)
    with pytest.raises(JobTimeoutError) as caught:
        executor.run(executor.prepare_vqc(vqc), angles, weights)
    assert caught.value.where == "qdt" and "saves its result when it completes" in str(caught.value)
    store = JobStore(tmp_path)
    job_id = caught.value.job_id
    assert store.get(job_id).status == "TIMED_OUT"
    deadline = time.monotonic() + 120
    while store.load_result(job_id) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store.load_result(job_id)["completed_after_timeout"] is True
    assert store.get(job_id).status == "DONE"


def test_fetch_reports_a_local_job_whose_process_died_as_lost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = JobStore(tmp_path)
    dead = os.getpid()
    while True:  # a pid that is not running
        dead += 7919
        try:
            os.kill(dead, 0)
        except ProcessLookupError:
            break
        except PermissionError:
            continue
    store.append(
        {"event": "submitted", "job_id": "local-job-1", "local": True, "pid": dead, "backend": "fake_manila"}
    )
    store.record_status("local-job-1", "RUNNING")
    assert main(["jobs", "fetch", "--run", str(tmp_path), "local-job-1"]) == 1  # a run that failed
    err = capsys.readouterr().err
    assert "local-job-1" in err and "result is gone" in err and "qdt infer" in err
    assert store.get("local-job-1").status == "LOST"
    assert main(["jobs", "list", "--run", str(tmp_path)]) == 0
    assert "LOST" in capsys.readouterr().out


def test_mthree_inverts_the_assignment_in_qdt_bit_order_and_keeps_probabilities() -> None:
    a0 = np.array([[0.97, 0.03], [0.06, 0.94]])  # qubit 3, readout bit 0: A[i][j] = P(record j | state i)
    a1 = np.array([[0.99, 0.01], [0.02, 0.98]])  # qubit 7, readout bit 1
    full = np.kron(a1, a0)  # outcome index k = bit0 + 2 bit1
    assert np.isclose(full[0, 1], 0.03 * 0.99) and np.isclose(full[0, 2], 0.97 * 0.01)
    mitigator = m3_mitigator([3, 7], [a0, a1])
    true = np.array([[0.7, 0.1, 0.15, 0.05], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    shots = 10**7  # counts rounded from exact measured probabilities: recovery to float32 precision
    recovered = m3_mitigate(true @ full, shots, [3, 7], mitigator)
    assert np.allclose(recovered, true, atol=1e-5)  # a swapped bit order would mix a0 and a1 up
    noisy = np.array([[0.93, 0.0, 0.07, 0.0], [0.5, 0.5, 0.0, 0.0]])  # fewer flips than A predicts
    projected = m3_mitigate(noisy, 1000, [3, 7], mitigator)
    assert np.all(projected >= 0) and np.allclose(projected.sum(axis=1), 1)
    assert projected[0, 0] > noisy[0, 0]  # moved back towards |00>
    with pytest.raises(QdtInputError) as caught:  # a calibration on qubits the layout does not use
        check_m3_calibration(mitigator, [3, 5])
    assert caught.value.field == "--mitigate" and "none for [5]" in str(caught.value)
    with pytest.raises(QdtInputError, match="none for"):
        m3_mitigate(noisy, 1000, [5, 7], mitigator)


def test_readout_calibration_of_a_fake_device_and_mitigation_on_its_counts(tmp_path: Path) -> None:
    executor = open_backend("fake_manila", shots=8192, seed=4, job_dir=tmp_path)
    from qiskit import QuantumCircuit

    circuit = QuantumCircuit(2)  # |11>: readout errors only (plus two X gates)
    circuit.x([0, 1])
    prepared = executor.prepare(circuit, [], [])
    physical = executor.isa_report(prepared)["physical_readout"]
    matrices = readout_assignment_matrices(executor.device.backend, physical)
    properties = executor.device.backend.properties()
    assert matrices[0][0, 1] == pytest.approx(properties.qubit_property(physical[0])["prob_meas1_prep0"][0])
    raw = executor.run(prepared, np.zeros((1, 0)), np.zeros(0)).numpy()
    mitigated = m3_mitigate(raw, 8192, physical, m3_mitigator(physical, matrices))
    assert mitigated[0, 3] > raw[0, 3]  # closer to the ideal 1.0


def test_infer_cli_on_a_fake_device_reports_raw_and_mitigated_side_by_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tiny_run(tmp_path)
    args = [
        "infer",
        "--run",
        str(run),
        "--backend",
        "fake_manila",
        "--shots",
        "256",
        "--mitigate",
        "readout",
        "--json",
    ]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["decisions"]) == {"raw", "mitigated"} and report["strategy"] == "table"
    mitigation = report["mitigation"]
    assert mitigation["method"] == "mthree" and mitigation["calibration"] == "circuits"
    assert mitigation["physical_qubits"] == [c["physical_readout"] for c in report["circuits"]]
    assert set(mitigation["matrices"]) == {str(q) for c in report["circuits"] for q in c["physical_readout"]}
    raw = report["decisions"]["raw"]
    assert len(raw["per_user_latency_s"]) == 4 and isinstance(raw["feasible"], bool)
    assert report["optimum"]["status"] == "optimal" and report["timing"]["jobs"] == 1
    (job,) = report["jobs"]
    # every agent, every observation, and the two readout-calibration rows: one job
    assert job["pubs"] == 2 + 2 and job["rows"] == 2 * 16 + 2
    assert mitigation["calibration_job_id"] == job["job_id"]
    assert [c["agent"] for c in report["circuits"]] == [0, 1] and "two_qubit_gates" in report["circuits"][0]
    assert Path(report["saved"]).is_file()
    assert main(["jobs", "fetch", "--run", str(run), job["job_id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["jobs"][0]["message"].startswith("already saved")
    args = ["infer", "--run", str(run), "--backend", "fake_manila", "--shots", "256", "--mitigate", "readout"]
    assert main([*args, "--strategy", "steps"]) == 0
    out = capsys.readouterr().out
    assert "strategy steps" in out and "2 job(s)" in out  # N_t = 2 steps, one job each
    submitted = [json.loads(line) for line in (run / "jobs.jsonl").read_text().splitlines()]
    pubs = [len(e["pubs"]) for e in submitted if e["event"] == "submitted"][-2:]
    assert pubs == [2 + 2, 2]  # the calibration rides the first step's job only
    assert main([*args, "--readout-calibration", "properties", "--json"]) == 0
    reported = json.loads(capsys.readouterr().out)
    assert reported["mitigation"]["calibration"] == "properties" and reported["jobs"][0]["pubs"] == 2


@pytest.mark.parametrize("source", ["circuits", "properties"])
def test_infer_refuses_an_mthree_calibration_of_other_qubits_before_any_job(
    source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from qdt.executors.ibm import mitigation

    run = tiny_run(tmp_path)
    if source == "circuits":  # calibration circuits measured one qubit off the layout
        prepare = IBMRuntimeExecutor.prepare_readout_calibration

        def elsewhere(self: Any, physical_qubits: Any) -> Any:  # fake_manila has 5 qubits
            return prepare(self, [(q + 1) % 5 for q in physical_qubits])

        monkeypatch.setattr(IBMRuntimeExecutor, "prepare_readout_calibration", elsewhere)
    else:  # reported calibration loaded for other qubits
        calibrate = mitigation.m3_mitigator

        def elsewhere(physical_qubits: Any, matrices: Any) -> Any:  # type: ignore[misc]
            return calibrate([q + 1 for q in physical_qubits], matrices)

        monkeypatch.setattr(mitigation, "m3_mitigator", elsewhere)
    args = ["infer", "--run", str(run), "--backend", "fake_manila", "--mitigate", "readout"]
    assert main([*args, "--readout-calibration", source]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--mitigate: expected an mthree calibration" in err
    assert not (run / "jobs.jsonl").exists()  # refused before anything was submitted


def test_readout_calibration_circuits_measure_what_the_fake_device_simulates(tmp_path: Path) -> None:
    """Local testing mode simulates each qubit's readout with the target's symmetric measure
    error (qiskit-aer's noise model of a BackendV2), not the asymmetric prob_meas* properties:
    the calibration circuits find the former, within 4 sigma of 8192 shots."""
    from qdt.executors.ibm.mitigation import matrices_from_calibration

    executor = open_backend("fake_manila", shots=8192, seed=5, job_dir=tmp_path)
    qubits = [3, 4]
    zeros, ones = executor.run_many(
        [(c, torch.zeros(1, 0), torch.zeros(0)) for c in executor.prepare_readout_calibration(qubits)]
    )
    assert executor.isa_report(executor.prepare_readout_calibration(qubits)[1])["operations"] == {
        "x": 2,
        "measure": 2,
    }
    measured = matrices_from_calibration(zeros.numpy(), ones.numpy(), qubits)
    target = executor.device.backend.target
    for qubit, matrix in zip(qubits, measured):
        error = target["measure"][(qubit,)].error
        sigma = np.sqrt(error * (1 - error) / 8192)
        assert abs(matrix[0, 1] - error) < 4 * sigma and abs(matrix[1, 0] - error) < 4 * sigma
    reported = readout_assignment_matrices(executor.device.backend, qubits)
    assert abs(reported[0][0, 1] - reported[0][1, 0]) > 0.01  # the properties are asymmetric
    assert len(executor.jobs) == 1 and executor.jobs[0].pubs == 2  # both rows in one job


def test_infer_refuses_what_it_cannot_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tiny_run(tmp_path)
    assert main(["infer", "--run", str(run), "--backend", "statevector", "--mitigate", "readout"]) == 2
    assert "--mitigate: expected an ibm profile" in capsys.readouterr().err
    assert main(["infer", "--run", str(tmp_path / "missing"), "--backend", "fake_manila"]) == 2
    assert main(["infer", "--run", str(run), "--backend", "fake_nosuchdevice"]) == 2
    assert "fake device of qiskit_ibm_runtime.fake_provider" in capsys.readouterr().err


@pytest.mark.slow
def test_infer_on_fake_torino(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tiny_run(tmp_path)
    assert (
        main(["infer", "--run", str(run), "--backend", "fake_torino", "--mitigate", "readout", "--json"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["backend"]["device"] == "fake_torino" and report["backend"]["num_qubits"] == 133
    assert report["circuits"][0]["two_qubit_gates"] >= 1
    assert report["noiseless"]["assignment"] is None or isinstance(
        report["noiseless"]["agrees_with_raw"], bool
    )
