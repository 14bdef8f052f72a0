"""`qdt describe` and `qdt circuit` contracts."""

import json

import numpy as np
import pytest
from qiskit import qasm2
from qiskit.quantum_info import Statevector

from qdt.cli.main import main
from qdt.problem.generator import paper_instance


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_describe_matches_the_papers_counts(capsys):
    code, out, _ = run(capsys, "describe", "--preset", "paper", "--recipe", "paper", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["actor"]["fc"] == [960, 37056, 37056, 772]
    assert data["critic"]["fc"] == [3264, 37056, 37056, 193]
    assert data["actor"]["quantum_weights"] == {"1": 2, "3": 6, "6": 12}
    assert data["critic"]["quantum_weights"] == {"1": 4, "3": 12, "6": 24}
    assert (data["actor"]["qubits"], data["critic"]["qubits"]) == (2, 4)
    code, out, _ = run(capsys, "describe", "--recipe", "v1")
    assert "37056" in out and "reads 16 probabilities" in out and "for each of the 2 agents" in out


def test_describe_defaults_to_what_train_builds_on_one_instance_the_v5_actor(capsys):
    code, out, _ = run(capsys, "describe", "--preset", "paper", "--json")
    data = json.loads(out)
    assert code == 0 and data["recipe"] == "v5" and data["critic"] is None
    # v5's one actor scores one user on one server from the partial placement (qdt/rl/observations.py,
    # "placement"): 7M + 1 = 15 inputs, 4 qubits, a trained scale and shift each
    assert (data["actor"]["inputs"], data["actor"]["qubits"], data["actor"]["shared"]) == (15, 4, True)
    assert data["actor"]["input_scaling"] == 2 * 15
    code, out, _ = run(capsys, "describe")
    assert "shared by the 2 agents" in out and "input 15 values -> VQC on 4 qubits" in out
    assert "no critic (learner elite)" in out
    # the family default, v2, reads the column of X and the one-hot code: 4 + 2 = 6 inputs
    code, out, _ = run(capsys, "describe", "--recipe", "v2", "--json")
    assert json.loads(out)["actor"]["inputs"] == 6


def test_describe_v3_has_no_critic_so_only_its_actor_limits_the_size(capsys):
    code, out, _ = run(capsys, "describe", "--recipe", "v3", "--users", "300", "--servers", "8", "--json")
    data = json.loads(out)
    assert code == 0 and data["critic"] is None and data["actor"]["qubits"] == 9
    code, out, _ = run(capsys, "describe", "--recipe", "v3")
    assert "no critic (learner ppo" in out and "critic:" not in out
    # v2's critic would read 2·300·8 = 4800 values: 13 qubits, past the limit
    code, _, err = run(capsys, "describe", "--recipe", "v2", "--users", "300", "--servers", "8")
    assert code == 2 and "critic 13 qubits" in err and "describe fewer users or servers" in err


@pytest.mark.parametrize("recipe", ["paper", "v1", "v2", "v4", "v5"])
def test_describe_counts_equal_the_built_networks(capsys, recipe):
    import torch

    from qdt.problem.model import PlacementModel
    from qdt.rl.builders import network_builders
    from qdt.rl.config import TrainConfig

    model = PlacementModel(paper_instance())  # 4 users, 2 servers
    code, out, _ = run(capsys, "describe", "--recipe", recipe, "--layers", "1,6", "--json")
    data = json.loads(out)
    for agent in ("quantum", "classical"):
        for layers in (1, 6):
            config = TrainConfig.from_recipe(recipe, agent=agent, layers=layers)
            actor_builder, critic_builder = network_builders(config, model, np.random.SeedSequence(0))
            actor, critic = actor_builder(0), critic_builder()
            for net, role in ((actor, "actor"), (critic, "critic")):
                if data[role] is None:  # the recipe's learner trains no critic
                    continue
                linear = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
                counts = [sum(p.numel() for p in m.parameters()) for m in linear]
                expected = data[role]["fc" if agent == "quantum" else "fc_classical"]
                assert counts == expected, (recipe, agent, role)
                if agent == "quantum":
                    assert net.front.weight.numel() == data[role]["quantum_weights"][str(layers)]
                    scaling = [p.numel() for n, p in net.named_parameters() if n.startswith("front.input_")]
                    assert sum(scaling) == data[role].get("input_scaling", 0), (recipe, role)


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
        (["--qubits", "2", "--layers", "1", "--backend", "quantum-annealer"], "--backend"),
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


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--layers", "1,300"], "--layers"),
        (["--layers", "2,-1"], "--layers"),
        (["--users", "100000", "--servers", "1000"], "--users/--servers"),
        (["--recipe", "v2", "--users", "1000", "--servers", "10"], "--users/--servers"),  # v2's critic
        (["--users", "4"], "--users/--servers"),
    ],
)
def test_describe_errors_name_the_flag_not_the_field(capsys, argv, flag):
    code, out, err = run(capsys, "describe", *argv)
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith(f"qdt describe: error: {flag}: ")
    assert "n_layers" not in line and "input_width" not in line and "n_qubits" not in line
