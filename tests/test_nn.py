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


def test_user_observation_is_each_users_own_row_of_the_features():
    """``user``: row i of agent j's input is x_ij, user i's latency row from j on, c_ij / C_j, j's
    remaining capacity and slots (the numbers ``features`` gives, user by user), then every
    server's pressure from j on: 3M + 4 wide."""
    from qdt.problem.generator import paper_instance
    from qdt.problem.model import PlacementModel
    from qdt.rl.observations import ObservationFeatures, context_of, observation_width, server_pressure

    model = PlacementModel(paper_instance())  # 4 users, 2 servers
    column = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    flat = ObservationFeatures("features", model, shared=False)
    per_user = ObservationFeatures("user", model, shared=True)
    assert (
        observation_width("user", 4, 2, shared=True) == observation_width("user", 64, 2, shared=False) == 10
    )
    context = context_of([model])
    pressure = server_pressure(context.latency, context.load, context.slot)[0]  # [2, M]
    fastest = context.latency[0].argmax(dim=1)
    load = torch.from_numpy(model.compute_rate / model.capacity[None, :])
    expected = [float(load[fastest == j, j].sum()) for j in range(2)]
    torch.testing.assert_close(pressure[0], torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(
        pressure[1],
        torch.bincount(fastest, minlength=2).double() / torch.from_numpy(model.max_users).double(),
    )
    for agent in (0, 1):
        rows, whole = per_user(column, agent), flat(column, agent)
        assert rows.shape == (2, 4, 10)
        torch.testing.assert_close(rows[:, :, 0], whole[:, :4])  # x_ij
        torch.testing.assert_close(rows[:, :, 1:3], whole[:, 4:12].reshape(2, 4, 2))  # L_i from j on
        load = torch.from_numpy(model.compute_rate[:, agent] / model.capacity[agent])
        torch.testing.assert_close(rows[:, :, 3], load.expand(2, 4))
        torch.testing.assert_close(rows[:, :, 4:6], whole[:, None, 12:14].expand(2, 4, 2))  # capacity, slots
        torch.testing.assert_close(
            rows[:, :, 6:], torch.roll(pressure, -agent, dims=1).reshape(1, 1, 4).expand(2, 4, 4)
        )
    both = per_user(torch.cat([column[:1], column[:1]]), torch.tensor([0, 1]))
    torch.testing.assert_close(both[1], per_user(column[:1], 1)[0])


@pytest.mark.parametrize("agent", ["classical", "quantum"])
def test_a_user_actor_scores_each_user_alike_whatever_their_order_or_number(agent):
    """One set of weights scores every user from its own row: reordering the users reorders the
    scores, the actor's size does not grow with N (a quantum one: ⌈log2(3M + 4)⌉ qubits), and the
    same weights score an instance of another N."""
    from qdt.problem.generator import GeneratorConfig, generate_instance
    from qdt.problem.instance import Instance
    from qdt.problem.model import PlacementModel
    from qdt.rl.builders import actor_builder, agent_qubits, open_executor
    from qdt.rl.config import TrainConfig
    from qdt.rl.observations import ObservationFeatures

    config = TrainConfig(agent=agent, layers=2, observation="user", hidden=16)
    assert agent_qubits(config, 8, 4)[0] == agent_qubits(config, 64, 4)[0] == 4  # 16 inputs per user
    instance = generate_instance(GeneratorConfig(users=6, servers=4), 5)
    order = [3, 0, 5, 1, 4, 2]
    data = instance.to_dict()
    shuffled = Instance.from_dict(
        {**data, **{key: [data[key][i] for i in order] for key in ("users", "channel_gain", "compute_rate")}}
    )
    torch.manual_seed(0)
    executor = open_executor(config, np.random.SeedSequence(0))
    actor = actor_builder(config, PlacementModel(instance), executor)(0)
    columns = torch.from_numpy(np.random.default_rng(1).integers(0, 2, (3, 6)).astype(np.float64))
    with torch.no_grad():
        scores = actor(columns, 2)
        assert scores.shape == (3, 6) and torch.unique(scores).numel() > 6
        actor.features = ObservationFeatures("user", PlacementModel(shuffled), True)
        torch.testing.assert_close(actor(columns[:, order], 2), scores[:, order], rtol=0, atol=1e-12)
        bigger = PlacementModel(generate_instance(GeneratorConfig(users=10, servers=4), 6))
        actor.features = ObservationFeatures("user", bigger, True)
        assert actor(torch.ones(2, 10, dtype=torch.float64), 1).shape == (2, 10)
    size = sum(p.numel() for p in actor.parameters())
    assert size == sum(p.numel() for p in actor_builder(config, bigger, executor)(0).parameters())


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
