"""Builders of the actor and critic networks for a training config (classical or hybrid)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qdt.errors import QdtInputError
from qdt.marl.config import TrainConfig
from qdt.nn.networks import Actor, Critic


def network_builders(
    config: TrainConfig, n_users: int, n_servers: int, executor_seed: np.random.SeedSequence
) -> tuple[Callable[[], Actor], Callable[[], Critic]]:
    joint_width = 2 * n_users * n_servers
    if config.agent == "classical":
        return (
            lambda: Actor(None, n_users, n_users, config.hidden),
            lambda: Critic(None, joint_width, config.hidden),
        )
    raise QdtInputError("--agent", "classical (quantum agents need qdt.nn.quantum)", config.agent)
