"""Builders of the actor and critic networks for a training config (classical or hybrid)."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np

from qdt.errors import QdtInputError
from qdt.executors import Executor
from qdt.executors.registry import executor_factory
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
    executor = make_executor(config.backend, executor_seed, noise=config.noise, shots=config.shots)
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


def make_executor(
    name: str,
    seed: np.random.SeedSequence,
    *,
    noise: str | None = None,
    shots: int | None = None,
) -> Executor:
    """The executor for a backend profile (``backends/``, ``fake_<device>``) or executor name.

    ``noise`` is a noise profile (see ``noise_models/``), ``shots`` a shot count; both override
    the profile's, and executors that take neither reject them with a message naming the option.
    """
    from qdt.executors.profiles import open_backend

    return open_backend(name, shots=shots, seed=seed, noise=noise)


def executor_options(name: str) -> list[str]:
    """Option names the executor's factory accepts (unknown names raise QdtInputError)."""
    return [p for p in inspect.signature(executor_factory(name)).parameters if p != "self"]
