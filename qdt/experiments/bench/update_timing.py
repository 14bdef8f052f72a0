"""Time one training update (critic step + actor step of one agent, batch 128) with qdt's
networks and with the same networks whose VQCs run on PennyLane default.qubit + TorchLayer."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from qdt.experiments.pennylane_front import PennyLaneFront
from qdt.problem.generator import GeneratorConfig, generate_instance
from qdt.problem.model import PlacementModel
from qdt.rl.builders import network_builders
from qdt.rl.config import TrainConfig
from qdt.rl.maddpg import AgentNets, make_agents, update_agent
from qdt.rl.networks import Actor, Critic


def pennylane_builders(
    config: TrainConfig, n_users: int, n_servers: int
) -> tuple[Callable[[int], Actor], Callable[[], Critic]]:
    joint = 2 * n_users * n_servers

    def actor(_agent: int = 0) -> Actor:
        front = PennyLaneFront(n_users, config.layers)
        return Actor(front, front.output_width, n_users, config.hidden)

    def critic() -> Critic:
        front = PennyLaneFront(joint, config.layers)
        return Critic(front, front.output_width, config.hidden)

    return actor, critic


def time_update(agents: list[AgentNets], n_users: int, batch: int, repeats: int, seed: int = 0) -> float:
    """Median seconds of one ``update_agent`` call on random binary batches."""
    rng = np.random.default_rng(seed)
    m = len(agents)
    times = []
    for k in range(repeats + 2):
        states = torch.from_numpy(rng.integers(0, 2, (batch, n_users, m)).astype(np.float64))
        actions = torch.from_numpy(rng.random((batch, n_users, m)))
        next_states = torch.from_numpy(rng.integers(0, 2, (batch, n_users, m)).astype(np.float64))
        rewards = torch.from_numpy(-rng.random(batch))
        start = time.perf_counter()
        update_agent(agents, k % m, states, actions, rewards, next_states, 0.99)
        if k >= 2:  # the first calls warm caches up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare_update_time(
    layers: int = 6, n_users: int = 4, n_servers: int = 2, repeats: int = 30
) -> dict[str, str]:
    config = TrainConfig.from_recipe("v1", agent="quantum", layers=layers)
    model = PlacementModel(generate_instance(GeneratorConfig(users=n_users, servers=n_servers), 0))
    torch.manual_seed(0)
    ours = make_agents(config, n_servers, *network_builders(config, model, np.random.SeedSequence(0)))
    theirs = make_agents(config, n_servers, *pennylane_builders(config, n_users, n_servers))
    ours_s = time_update(ours, n_users, config.batch_size, repeats)
    theirs_s = time_update(theirs, n_users, config.batch_size, repeats)
    ours_label = f"one training update, quantum L={layers}, batch {config.batch_size} (qdt statevector)"
    return {
        ours_label: f"{ours_s * 1e3:.2f} ms",
        "the same update on PennyLane default.qubit + TorchLayer": f"{theirs_s * 1e3:.2f} ms",
        "speed-up of qdt": f"{theirs_s / ours_s:.1f}x",
    }
