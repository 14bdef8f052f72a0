"""Builders of the actor and critic networks for a training config (classical or hybrid), and the
check that an instance fits the chosen agent, made before anything is built or written.

A network is built on the CPU (its initial weights drawn from torch's CPU generator, the same on
every device) and then moved to ``config.torch_device``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from qdt.circuits import qubits_for_width
from qdt.circuits.vqc import MAX_QUBITS
from qdt.errors import QdtInputError
from qdt.executors import Executor, open_backend
from qdt.problem.model import PlacementModel
from qdt.rl.config import TrainConfig
from qdt.rl.networks import Actor, Critic
from qdt.rl.observations import ObservationFeatures, context_width, observation_width
from qdt.rl.quantum_layer import quantum_front

MAX_CLASSICAL_INPUTS = 1 << 16
"""Most inputs of a classical critic (2·N·M): its first layer has 2NM × hidden weights, 12.6
million (about 300 MB with Adam's moments and the target copy) at 65,536 inputs and hidden 192."""


MAX_USER_INPUTS = 1 << 20
"""Most values a user-by-user actor (``observation = "user"``) reads per joint state, N·M·(3M + 4):
its ppo step reads an episode's 80 joint states at once (640 MB of float64 inputs at the limit,
and as much again per hidden layer); 64 × 8 reads 14,336."""


def actor_width(config: TrainConfig, n_users: int, n_servers: int) -> int:
    return observation_width(config.observation, n_users, n_servers, config.sharing == "shared")


def critic_width(config: TrainConfig, n_users: int, n_servers: int) -> int:
    """What a critic reads: the joint state and action (2·N·M), and, trained on a family, each
    instance's L and c_ij / C_j (2·N·M more, :func:`qdt.rl.observations.context_vector`)."""
    joint = 2 * n_users * n_servers
    return joint + (context_width(n_users, n_servers) if config.family is not None else 0)


def agent_qubits(config: TrainConfig, n_users: int, n_servers: int) -> tuple[int, int]:
    """(actor, critic) qubits of a quantum agent: ⌈log2⌉ of what each reads (docs/design.md §2);
    the critic's are 0 when the learner trains none (``ppo``: no critic is built)."""
    return (
        qubits_for_width(actor_width(config, n_users, n_servers)),
        qubits_for_width(critic_width(config, n_users, n_servers)) if config.trains_critic else 0,
    )


def check_fits(config: TrainConfig, n_users: int, n_servers: int, field: str = "--instance") -> None:
    """Refuse, with one clear error, an N × M instance too large for the config's agent."""
    if config.agent == "quantum":
        actor, critic = agent_qubits(config, n_users, n_servers)
        if max(actor, critic) > MAX_QUBITS:
            raise QdtInputError(
                field,
                f"an instance whose quantum actor and critic need at most {MAX_QUBITS} qubits "
                "(qdt/circuits/vqc.py: MAX_QUBITS)",
                f"{n_users} users x {n_servers} servers: actor {actor} qubits, "
                + (
                    f"critic {critic} qubits"
                    if config.trains_critic
                    else f"no critic ({'construct' if config.decode == 'construct' else config.learner})"
                ),
                "use --agent classical"
                + (", --observation column" if actor > MAX_QUBITS >= critic else "")
                + ", or fewer users or servers",
            )
    if config.observation in ("user", "placement"):
        values = n_users * n_servers * actor_width(config, n_users, n_servers)
        formula = "N·M·(3M + 4)" if config.observation == "user" else "N·M·(7M + 1)"
        if values > MAX_USER_INPUTS:
            raise QdtInputError(
                field,
                f"an instance whose user-by-user actor reads at most {MAX_USER_INPUTS:,} values per joint "
                f"state ({formula})",
                f"{n_users} users x {n_servers} servers ({values:,} values)",
                "use fewer users or servers; why this limit: qdt/rl/builders.py",
            )
    if (
        config.agent == "classical"
        and config.trains_critic
        and critic_width(config, n_users, n_servers) > MAX_CLASSICAL_INPUTS
    ):
        raise QdtInputError(
            field,
            f"an instance whose classical critic reads at most {MAX_CLASSICAL_INPUTS:,} values (2·N·M, "
            "4·N·M on a family)",
            f"{n_users} users x {n_servers} servers ({critic_width(config, n_users, n_servers):,} values)",
            "use fewer users or servers; why this limit: qdt/rl/builders.py",
        )


def open_executor(config: TrainConfig, seed: np.random.SeedSequence) -> Executor | None:
    """The executor of a quantum agent's circuits (None for the classical agent), differentiable."""
    if config.agent == "classical":
        return None
    executor = open_backend(config.backend, seed=seed, noise=config.noise, shots=config.shots)
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
    return executor


def actor_builder(
    config: TrainConfig, model: PlacementModel, executor: Executor | None
) -> Callable[[int], Actor]:
    """``build(j)``: a fresh actor for agent j (a shared actor is built once, for agent 0)."""
    n, m = model.n_users, model.n_servers
    shared = config.sharing == "shared"
    width = actor_width(config, n, m)
    # a placement actor reads the rows qdt/rl/construct.py builds (no tables of its own)
    plain = (config.observation == "column" and not shared) or config.observation == "placement"
    outputs = 1 if config.observation in ("user", "placement") else n  # one score per row
    device = torch.device(config.torch_device)

    def build(agent: int) -> Actor:
        features = None if plain else ObservationFeatures(config.observation, model, shared)
        if executor is None:
            return Actor(None, width, outputs, config.hidden, features=features, agent=agent).to(device)
        front = quantum_front(width, config.layers, executor, config.input_scaling == "affine")
        return Actor(front, front.output_width, outputs, config.hidden, features=features, agent=agent).to(
            device
        )

    return build


def critic_builder(
    config: TrainConfig, model: PlacementModel, executor: Executor | None
) -> Callable[[], Critic]:
    joint_width = critic_width(config, model.n_users, model.n_servers)
    device = torch.device(config.torch_device)

    def build() -> Critic:
        if executor is None:
            return Critic(None, joint_width, config.hidden).to(device)
        front = quantum_front(joint_width, config.layers, executor)
        return Critic(front, front.output_width, config.hidden).to(device)

    return build


def network_builders(
    config: TrainConfig, model: PlacementModel, executor_seed: np.random.SeedSequence
) -> tuple[Callable[[int], Actor], Callable[[], Critic]]:
    """Both builders on one executor (opened here, for a quantum agent, from ``executor_seed``)."""
    executor = open_executor(config, executor_seed)
    return actor_builder(config, model, executor), critic_builder(config, model, executor)
