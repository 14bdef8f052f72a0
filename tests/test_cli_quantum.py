"""`qdt describe` and `qdt circuit` contracts."""

import json

import numpy as np
import pytest
from qiskit import qasm2
from qiskit.quantum_info import Statevector

from qdt.cli.main import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_describe_matches_the_papers_counts(capsys):
    code, out, _ = run(capsys, "describe", "--preset", "paper", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["actor"]["fc"] == [960, 37056, 37056, 772]
    assert data["critic"]["fc"] == [3264, 37056, 37056, 193]
    assert data["actor"]["quantum_weights"] == {"1": 2, "3": 6, "6": 12}
    assert data["critic"]["quantum_weights"] == {"1": 4, "3": 12, "6": 24}
    assert (data["actor"]["qubits"], data["critic"]["qubits"]) == (2, 4)
    code, out, _ = run(capsys, "describe")
    assert "37056" in out and "reads 16 probabilities" in out


def test_describe_counts_equal_the_built_networks():
    import torch

    from qdt.rl.builders import network_builders
    from qdt.rl.config import TrainConfig

    for layers in (1, 6):
        actor_builder, critic_builder = network_builders(
            TrainConfig(agent="quantum", layers=layers), 4, 2, np.random.SeedSequence(0)
        )
        actor, critic = actor_builder(), critic_builder()
        linear = [m for m in actor.modules() if isinstance(m, torch.nn.Linear)]
        assert [sum(p.numel() for p in m.parameters()) for m in linear] == [960, 37056, 37056, 772]
        assert actor.front.weight.numel() == 2 * layers
        assert critic.front.weight.numel() == 4 * layers
        assert sum(p.numel() for p in critic.parameters()) == 3264 + 2 * 37056 + 193 + 4 * layers


def test_circuit_qasm2_round_trips_and_matches_json(capsys):
    argv = ["circuit", "--qubits", "3", "--layers", "2", "--inputs", "1,0,1,1", "--seed", "5"]
    code, qasm, _ = run(capsys, *argv, "--qasm2")
    assert code == 0 and qasm.startswith("OPENQASM 2.0;")
    circuit = qasm2.loads(qasm)
    assert circuit.num_qubits == 3
    assert sum(1 for inst in circuit.data if inst.operation.name == "cz") == 2 * 3
    reference = Statevector(circuit).probabilities()
    for backend in ("statevector", "density"):
        code, out, _ = run(capsys, *argv, "--json", "--backend", backend)
        data = json.loads(out)
        assert code == 0 and len(data["probs"]) == 8 and len(data["expval_z"]) == 3
        np.testing.assert_allclose(data["probs"], reference, atol=1e-10)
        z = [sum(p * (1 - 2 * ((k >> q) & 1)) for k, p in enumerate(reference)) for q in range(3)]
        np.testing.assert_allclose(data["expval_z"], z, atol=1e-10)


def test_circuit_weights_given_and_all_zero_input(capsys):
    code, out, _ = run(capsys, "circuit", "--qubits", "2", "--layers", "1", "--weights", "0.1,0.2", "--json")
    data = json.loads(out)
    assert code == 0 and data["weights"] == [0.1, 0.2]
    assert all(np.isfinite(data["probs"])) and abs(sum(data["probs"]) - 1) < 1e-12


@pytest.mark.parametrize(
    "argv, field",
    [
        (["--qubits", "0", "--layers", "1"], "--qubits"),
        (["--qubits", "2", "--layers", "-1"], "--layers"),
        (["--qubits", "2", "--layers", "1", "--weights", "1,2,3"], "--weights"),
        (["--qubits", "2", "--layers", "1", "--weights", "1,nan"], "--weights"),
        (["--qubits", "2", "--layers", "1", "--inputs", "1,2,3,4,5"], "--inputs"),
        (["--qubits", "2", "--layers", "1", "--inputs", "1,inf"], "--inputs"),
        (["--qubits", "2", "--layers", "1", "--backend", "quantum-annealer"], "backend"),
    ],
)
def test_circuit_bad_input(capsys, argv, field):
    mode = "--json"
    code, out, err = run(capsys, "circuit", *argv, mode)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and f"error: {field}" in err


def test_circuit_runs_on_any_backend_profile(capsys, monkeypatch, tmp_path):
    """A profile name (here a fake device in local testing mode) works like an executor name;
    its shots are the profile's unless --shots says otherwise."""
    monkeypatch.setenv("QDT_JOBS_DIR", str(tmp_path))
    argv = ["circuit", "--qubits", "2", "--layers", "1", "--json", "--backend", "fake_manila"]
    code, out, _ = run(capsys, *argv, "--shots", "100")
    data = json.loads(out)
    assert code == 0 and data["mode"] == "sampled" and data["shots"] == 100
    assert abs(sum(data["probs"]) - 1) < 1e-12 and all(round(100 * p) == 100 * p for p in data["probs"])
    assert data["transpiled"]["device"] == "fake_manila" and len(data["transpiled"]["physical_readout"]) == 2
    assert (tmp_path / "jobs.jsonl").is_file()
    code, out, _ = run(capsys, "circuit", "--qubits", "2", "--layers", "1", "--json", "--backend", "aer")
    assert code == 0 and json.loads(out)["mode"] == "exact"  # the executor's defaults, not the profile's
