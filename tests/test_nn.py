"""Hybrid networks: the quantum layer's gradients, and the PennyLane front computing the same."""

import numpy as np
import pytest
import torch

from qdt.executors import open_backend
from qdt.experiments.pennylane_front import PennyLaneFront
from qdt.rl.quantum_layer import quantum_front


@pytest.mark.peers  # skipped where the peers are not installed: tests/conftest.py
@pytest.mark.parametrize("width, layers", [(4, 1), (16, 6), (3, 2), (8, 3)])
def test_pennylane_front_equals_qdt_executor(width, layers):
    torch.manual_seed(width + layers)
    theirs = PennyLaneFront(width, layers)
    ours = quantum_front(width, layers, open_backend("statevector"))
    with torch.no_grad():
        ours.weight.copy_(theirs.layer.weights.reshape(-1)[: ours.weight.numel()])
    x = torch.randint(0, 2, (9, width)).double()
    x[0] = 0  # the all-zero observation
    np.testing.assert_allclose(theirs(x).detach(), ours(x).detach(), atol=1e-12)


def test_quantum_layer_gradients_reach_weights_and_inputs():
    layer = quantum_front(16, 2, open_backend("statevector"))
    x = torch.rand(5, 16, dtype=torch.float64, requires_grad=True)
    out = layer(x)
    out[:, 3].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0

    def as_function(inputs, weight):
        return layer.executor.run(layer.prepared, layer.vqc.angles(inputs), weight)

    weight = layer.weight.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(as_function, (x.detach().requires_grad_(True), weight))


def test_observation_features_carry_latency_rows_capacity_and_slots():
    from qdt.problem.generator import paper_instance
    from qdt.problem.model import PlacementModel
    from qdt.rl.observations import ObservationFeatures, normalised_latency, observation_width

    model = PlacementModel(paper_instance())  # 4 users, 2 servers
    features = ObservationFeatures("features", model, shared=True)
    column = torch.tensor([[1.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    row = features(column, 1)[0].numpy()
    assert row.size == observation_width("features", 4, 2, shared=True) == 4 + 8 + 2 + 2
    np.testing.assert_array_equal(row[:4], [1, 0, 1, 0])
    latency = normalised_latency(model)
    np.testing.assert_allclose(row[4:12], np.roll(latency, -1, axis=1).ravel())  # server 1's view first
    assert latency.max() == 1.0 and (latency[~model.deadline_ok] == 0).all()
    used = (model.compute_rate[[0, 2], 1] / model.capacity[1]).sum()
    np.testing.assert_allclose(row[12], max(0.0, 1 - used))
    np.testing.assert_allclose(row[13], max(0.0, 1 - 2 / model.max_users[1]))
    np.testing.assert_array_equal(row[14:], [0, 1])  # agent 1's one-hot code
    both = features(torch.cat([column, column]), torch.tensor([0, 1]))
    torch.testing.assert_close(both[1], features(column, 1)[0])
    assert not torch.equal(both[0], both[1])  # the two agents see their own servers


def test_a_quantum_actor_reading_features_trains_and_its_width_sets_its_qubits(tmp_path):
    from qdt.problem.generator import paper_instance
    from qdt.rl.builders import agent_qubits
    from qdt.rl.config import TrainConfig
    from qdt.rl.policy import load_policy
    from qdt.rl.train import train

    config = TrainConfig(
        agent="quantum",
        layers=1,
        observation="features",
        episodes=3,
        steps_per_episode=2,
        envs=2,
        batch_size=8,
        replay_size=64,
        warmup_transitions=8,
        hidden=8,
        gradient_steps=2,
    )
    assert agent_qubits(config, 4, 2) == (4, 4)  # 16 features; the critic reads 16 values
    assert agent_qubits(config, 64, 8) == (10, 10)  # 586 features; 1024 values
    summary = train(config, paper_instance(), tmp_path, progress=False)
    policy = load_policy(tmp_path)
    assert policy.actors[0] is policy.actors[1] and policy.actors[0].front.vqc.n_qubits == 4
    assert policy.placement().argmax(axis=1).tolist() == summary["assignment"]
