"""qdt evaluate: exact agreement on exact executors, decisions equal the policy's own, CLI contract."""

import json

import numpy as np
import pytest

from qdt.cli.main import main
from qdt.executors import open_backend
from qdt.problem.generator import paper_instance
from qdt.rl.config import TrainConfig
from qdt.rl.evaluation import decisions_from_tables, evaluate_policy, joint_states, score_tables
from qdt.rl.policy import load_policy
from qdt.rl.train import train

TINY = dict(
    episodes=12, steps_per_episode=3, batch_size=8, replay_size=64, warmup_transitions=8, hidden=8, layers=2
)


@pytest.fixture(scope="module")
def quantum_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("q")
    train(TrainConfig(**TINY, agent="quantum", seed=5), paper_instance(), run_dir, progress=False)
    return run_dir


def test_table_decisions_equal_the_policy_decisions_on_every_joint_state(quantum_run):
    policy = load_policy(quantum_run)
    states = joint_states(policy.n_users, policy.n_servers, np.random.default_rng(0))
    assert states.shape == (2 ** (policy.n_users * policy.n_servers), policy.n_users, policy.n_servers)
    tables, _ = score_tables(policy)
    decisions = decisions_from_tables(tables, states, policy.decode)  # the run's own decoding
    for k in range(0, len(states), 17):
        assert decisions[k].tolist() == policy.decide(states[k]).argmax(axis=1).tolist()


def test_exact_executor_agrees_everywhere(quantum_run):
    reference = load_policy(quantum_run, executor=open_backend("statevector"))
    target = load_policy(quantum_run, executor=open_backend("executor:density"))
    result = evaluate_policy(reference, target, repeats=2)
    assert result["decision_agreement"]["mean"] == 1.0
    assert all(a["action_agreement"]["mean"] == 1.0 for a in result["agents"])
    assert result["placement"]["assignments"] == [result["noiseless"]["assignment"]] * 2


def test_each_draw_samples_afresh(quantum_run):
    exact = load_policy(quantum_run, executor=open_backend("statevector"))
    sampled = load_policy(
        quantum_run, executor=open_backend("executor:density", shots=1, seed=np.random.SeedSequence(1))
    )
    first, _ = score_tables(sampled)
    second, _ = score_tables(sampled)
    reference, _ = score_tables(exact)
    assert not np.array_equal(first, second)  # shot noise does not repeat across calls
    assert not np.allclose(first, reference)
    result = evaluate_policy(exact, sampled, repeats=3)
    assert all(0.0 <= a["bit_agreement"]["mean"] <= 1.0 for a in result["agents"])
    assert len(result["placement"]["assignments"]) == 3


def test_cli_json_contract_and_reproducibility(quantum_run, capsys):
    argv = ["evaluate", "--run", str(quantum_run), "--backend", "density", "--shots", "16", "--repeats", "3"]
    outputs = []
    for _ in range(2):
        assert main([*argv, "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        data.pop("decision_latency")
        outputs.append(data)
    assert outputs[0] == outputs[1]
    assert {"agents", "decision_agreement", "placement", "noiseless", "optimum_total_latency_s"} <= set(
        outputs[0]
    )
    assert main(argv) == 0
    assert "decision latency" in capsys.readouterr().out


def test_cli_errors(quantum_run, tmp_path, capsys):
    assert main(["evaluate", "--run", str(quantum_run), "--shots", "0"]) == 2
    assert "--shots" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(quantum_run), "--backend", "nope"]) == 2
    assert "backend" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(tmp_path)]) == 2
    classical = tmp_path / "c"
    train(TrainConfig(**TINY, agent="classical"), paper_instance(), classical, progress=False)
    assert main(["evaluate", "--run", str(classical)]) == 2
    assert "classical" in capsys.readouterr().err
