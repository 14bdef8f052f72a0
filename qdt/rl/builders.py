"""Builders of the actor and critic networks for a training config (classical or hybrid)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qdt.errors import QdtInputError
from qdt.executors import open_backend
from qdt.rl.config import TrainConfig
from qdt.rl.networks import Actor, Critic
from qdt.rl.quantum_layer import quantum_front


def network_builders(
    config: TrainConfig, n_users: int, n_servers: int, executor_seed: np.random.SeedSequence
) -> tuple[Callable[[], Actor], Callable[[], Critic]]:
    joint_width = 2 * n_users * n_servers
    if config.agent == "classical":
        return (
            lambda: Actor(None, n_users, n_users, config.hidden),
            lambda: Critic(None, joint_width, config.hidden),
        )
    executor = open_backend(config.backend, seed=executor_seed, noise=config.noise, shots=config.shots)
    if not executor.capabilities.differentiable:
        if executor.capabilities.remote:
            raise QdtInputError(
                "--backend",
                "a local executor for training",
                config.backend,
                "train on statevector, density or aer; run trained policies on devices with qdt infer",
            )
        from qdt.executors.parameter_shift import differentiable

        executor = differentiable(executor)

    def actor() -> Actor:
        front = quantum_front(n_users, config.layers, executor)
        return Actor(front, front.output_width, n_users, config.hidden)

    def critic() -> Critic:
        front = quantum_front(joint_width, config.layers, executor)
        return Critic(front, front.output_width, config.hidden)

    return actor, critic
