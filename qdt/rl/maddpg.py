"""The multi-agent actor-critic of Algorithm 1 (eqs. 37–40): one agent per base station, each
with its own actor, its own centralised critic over all agents' states and actions, and targets.

Shapes: a joint state or action is X [B, N, M]; agent j's part is column X[:, :, j]. The
critic's input v stacks the M state columns, then the M action columns: [B, 2MN].

With parameter sharing (``TrainConfig.sharing = "shared"``) there is one actor, which acts for
every agent (it is told which), and one centralised critic: the agents share one reward, so their
critics estimate the same Q(v), and one critic learns it from every agent's experience. One
gradient step (:func:`update_shared`) then moves the critic on (37) and the actor on (38) with
every agent's action taken from the actor at once.

Devices: the networks live on one torch device (``TrainConfig.torch_device``). The environments'
states enter torch through :func:`to_torch` (on the networks' device) and the agents' scores leave
it through :func:`to_numpy` (back on the CPU, as numpy); the replay memory's batches are moved to
the device when sampled (``qdt/rl/replay.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from qdt.rl.config import TrainConfig
from qdt.rl.networks import Actor, Critic
from qdt.rl.observations import InstanceContext, context_vector
from qdt.rl.quantum_layer import QuantumLayer


def network_device(net: nn.Module) -> torch.device:
    """The device a network's parameters are on."""
    return next(net.parameters()).device


def to_torch(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """Observations (numpy, the environments') as float64 on the networks' ``device``."""
    return torch.from_numpy(np.asarray(array, dtype=np.float64)).to(device)


def to_numpy(scores: torch.Tensor) -> np.ndarray:
    """Scores (torch, on the networks' device) as a numpy array on the CPU."""
    return scores.detach().cpu().numpy()


def joint_input(
    states: torch.Tensor, actions: torch.Tensor, context: InstanceContext | None = None
) -> torch.Tensor:
    """v = (s^1, …, s^M, a^1, …, a^M) from X-shaped [B, N, M] states and actions → [B, 2MN], then,
    trained on a family, each row's instance (:func:`qdt.rl.observations.context_vector`, 2MN more)."""
    batch = states.shape[0]
    parts = [states.transpose(1, 2).reshape(batch, -1), actions.transpose(1, 2).reshape(batch, -1)]
    if context is not None:
        parts.append(context_vector(context))
    return torch.cat(parts, dim=1)


@dataclass
class AgentNets:
    """An agent's networks. A learner that trains no critic (``ppo``) has none: its critic,
    target critic and critic optimiser are None (:func:`critic_parts` refuses them)."""

    actor: Actor
    critic: Critic | None
    target_actor: Actor
    target_critic: Critic | None
    actor_optimizer: torch.optim.Adam
    critic_optimizer: torch.optim.Adam | None


def critic_parts(nets: AgentNets) -> tuple[Critic, Critic, torch.optim.Adam]:
    """(critic, target critic, critic optimiser) of an agent that has them (``maddpg``)."""
    if nets.critic is None or nets.target_critic is None or nets.critic_optimizer is None:
        raise ValueError("this agent has no critic: its learner (ppo) trains none; no critic update applies")
    return nets.critic, nets.target_critic, nets.critic_optimizer


@dataclass(frozen=True)
class UpdateStats:
    critic_loss: float
    actor_loss: float


class NonFiniteError(FloatingPointError):
    pass


def make_agents(
    config: TrainConfig,
    n_agents: int,
    build_actor: Callable[[int], Actor],
    build_critic: Callable[[], Critic],
) -> list[AgentNets]:
    """``n_agents`` sets of networks: one per base station, or one shared by all of them. The
    ``ppo`` learner trains no critic, so none is built (no critic circuit is prepared either)."""
    with_critic = config.trains_critic
    agents = []
    for j in range(n_agents):
        actor = build_actor(j)
        critic = build_critic() if with_critic else None
        # Targets come from the same builders (sharing the executor), then take the weights.
        target_actor = build_actor(j)
        target_actor.load_state_dict(actor.state_dict())
        target_critic = None
        if critic is not None:
            target_critic = build_critic()
            target_critic.load_state_dict(critic.state_dict())
            target_critic.requires_grad_(False)
        agents.append(
            AgentNets(
                actor=actor,
                critic=critic,
                target_actor=target_actor.requires_grad_(False),
                target_critic=target_critic,
                actor_optimizer=make_optimizer(actor, config.lr_actor, config.lr_quantum),
                critic_optimizer=(
                    None if critic is None else make_optimizer(critic, config.lr_critic, config.lr_quantum)
                ),
            )
        )
    return agents


def make_optimizer(net: nn.Module, lr: float, lr_quantum: float | None) -> torch.optim.Optimizer:
    """Adam over the network; the circuit weights (the front end's RX angles) get ``lr_quantum`` if
    given, every other weight ``lr`` (the FC layers, and the front end's input scaling, which is
    classical)."""
    circuit = f"front.{QuantumLayer.CIRCUIT_WEIGHT}"
    front = [p for name, p in net.named_parameters() if name == circuit]
    if lr_quantum is None or not front:
        return torch.optim.Adam(net.parameters(), lr=lr, fused=True)
    body = [p for name, p in net.named_parameters() if name != circuit]
    return torch.optim.Adam([{"params": body}, {"params": front, "lr": lr_quantum}], lr=lr, fused=True)


def update_agent(
    agents: list[AgentNets],
    j: int,
    states: torch.Tensor,
    actions: torch.Tensor,
    rewards: torch.Tensor,
    next_states: torch.Tensor,
    gamma: float,
    logit_penalty: float = 0.0,
    context: InstanceContext | None = None,
) -> UpdateStats:
    """One gradient step for agent j: critic on (37), then actor on (38); ``context``: each row's
    instance (family training; the next state is of the same instance).

    ``logit_penalty`` adds c·mean(z²) of the actor's pre-sigmoid outputs to (38), as the
    reference MADDPG implementation does, so that sigmoids do not saturate (a saturated actor
    has no gradient and no exploration noise can move it).
    """
    me = agents[j]
    critic, target_critic, critic_optimizer = critic_parts(me)
    with torch.no_grad():
        next_actions = torch.stack(
            [agent.target_actor(next_states[:, :, k], k, context) for k, agent in enumerate(agents)], dim=2
        )
        target = rewards + gamma * target_critic(joint_input(next_states, next_actions, context))
    critic_loss = torch.mean((target - critic(joint_input(states, actions, context))) ** 2)
    _descend(critic_optimizer, critic_loss, f"critic loss of agent {j}")

    policy_actions = actions.clone()
    logits = me.actor.logits(states[:, :, j], j, context)
    policy_actions[:, :, j] = torch.sigmoid(logits)
    actor_loss = _actor_loss(critic, states, policy_actions, logits, logit_penalty, context)
    _descend(me.actor_optimizer, actor_loss, f"actor loss of agent {j}")
    critic.zero_grad(set_to_none=True)  # the actor step left gradients in the critic
    return UpdateStats(float(critic_loss.detach()), float(actor_loss.detach()))


def _descend(optimizer: torch.optim.Optimizer, loss: torch.Tensor, what: str) -> None:
    """One optimiser step on ``loss`` (refused, naming ``what``, when it is not finite)."""
    _check_finite(loss, what)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _actor_loss(
    critic: Critic,
    states: torch.Tensor,
    policy_actions: torch.Tensor,
    logits: torch.Tensor,
    logit_penalty: float,
    context: InstanceContext | None = None,
) -> torch.Tensor:
    """(38): −mean Q(s, a with the actor's own actions), plus c·mean(z²) of its logits."""
    loss = -torch.mean(critic(joint_input(states, policy_actions, context)))
    if logit_penalty:
        loss = loss + logit_penalty * torch.mean(logits**2)
    return loss


def joint_scores(
    agents: list[AgentNets],
    states: torch.Tensor,
    *,
    target: bool = False,
    context: InstanceContext | None = None,
) -> torch.Tensor:
    """Every agent's â for joint states [B, N, M] → [B, N, M] (gradients flow unless detached);
    ``context``: each state's instance (family training).

    Per-agent actors score their own columns; a shared actor scores all B·M columns in one call.
    """
    if len(agents) == 1 and states.shape[2] > 1:
        return shared_actor_scores(agents[0].target_actor if target else agents[0].actor, states, context)
    nets = [agent.target_actor if target else agent.actor for agent in agents]
    return torch.stack([net(states[:, :, k], k, context) for k, net in enumerate(nets)], dim=2)


def shared_actor_scores(
    actor: Actor, states: torch.Tensor, context: InstanceContext | None = None
) -> torch.Tensor:
    """One shared actor's â for joint states [B, N, M] → [B, N, M], all B·M columns in one call
    (row b·M + j is state b's column j, told it is agent j's)."""
    batch, n, m = states.shape
    return actor(*shared_actor_inputs(states, context)).reshape(batch, m, n).transpose(1, 2)


def shared_actor_inputs(
    states: torch.Tensor, context: InstanceContext | None = None
) -> tuple[torch.Tensor, torch.Tensor, InstanceContext | None]:
    """What a shared actor reads for joint states [B, N, M]: the B·M columns (row b·M + j is state
    b's column j), the agent of each row, and each row's instance context (families)."""
    batch, n, m = states.shape
    columns = states.transpose(1, 2).reshape(batch * m, n)
    who = torch.arange(m, device=states.device).repeat(batch)
    rows = (
        None
        if context is None
        else context.rows(torch.arange(batch, device=states.device).repeat_interleave(m))
    )
    return columns, who, rows


def update_shared(
    nets: AgentNets,
    states: torch.Tensor,
    actions: torch.Tensor,
    rewards: torch.Tensor,
    next_states: torch.Tensor,
    gamma: float,
    logit_penalty: float = 0.0,
    context: InstanceContext | None = None,
) -> UpdateStats:
    """One gradient step of the shared actor and critic (module docstring): critic on (37), actor
    on (38) with all agents' actions from the actor. With γ = 0 the target is the reward alone.
    ``context``: each row's instance (family training)."""
    critic, target_critic, critic_optimizer = critic_parts(nets)
    with torch.no_grad():
        target = rewards
        if gamma:
            next_actions = joint_scores([nets], next_states, target=True, context=context)
            target = rewards + gamma * target_critic(joint_input(next_states, next_actions, context))
    critic_loss = torch.mean((target - critic(joint_input(states, actions, context))) ** 2)
    _descend(critic_optimizer, critic_loss, "critic loss of the shared critic")

    batch, n, m = states.shape
    logits = nets.actor.logits(*shared_actor_inputs(states, context))
    policy_actions = torch.sigmoid(logits).reshape(batch, m, n).transpose(1, 2)
    actor_loss = _actor_loss(critic, states, policy_actions, logits, logit_penalty, context)
    _descend(nets.actor_optimizer, actor_loss, "actor loss of the shared actor")
    critic.zero_grad(set_to_none=True)
    return UpdateStats(float(critic_loss.detach()), float(actor_loss.detach()))


def update_targets(agent: AgentNets, hard: bool, tau: float) -> None:
    """θ_t ← θ (39–40), or θ_t ← τ·θ + (1 − τ)·θ_t when soft."""
    pairs: list[tuple[nn.Module, nn.Module]] = [(agent.actor, agent.target_actor)]
    if agent.critic is not None and agent.target_critic is not None:
        pairs.append((agent.critic, agent.target_critic))
    with torch.no_grad():
        for net, target in pairs:
            for p, tp in zip(net.parameters(), target.parameters()):
                if hard:
                    tp.copy_(p)
                else:
                    tp.mul_(1.0 - tau).add_(p, alpha=tau)


def policy_scores(
    agents: list[AgentNets], states: torch.Tensor, context: InstanceContext | None = None
) -> torch.Tensor:
    """â for every agent from joint states X [N, M] or [B, N, M] (no gradients) → the same shape;
    ``context``: each state's instance (family training)."""
    with torch.no_grad():
        if states.ndim == 2:
            return joint_scores(agents, states[None], context=context)[0]
        return joint_scores(agents, states, context=context)


# Below this many users an agent's whole observation space (2^N columns) is scored in one batch.
MAX_TABLE_USERS = 10


def observation_index(x: np.ndarray) -> np.ndarray:
    """Row of :func:`all_observations` for each column of X [N, M] (user 0 = most significant bit)."""
    n = x.shape[0]
    weights = 1 << np.arange(n - 1, -1, -1, dtype=np.int64)
    return weights @ x.astype(np.int64)


def all_observations(n_users: int) -> np.ndarray:
    """Every binary observation an agent can see, [2^N, N]; row k holds the bits of k, user 0 first."""
    k = np.arange(2**n_users, dtype=np.int64)[:, None]
    return ((k >> np.arange(n_users - 1, -1, -1, dtype=np.int64)) & 1).astype(np.float64)


def policy_score_table(agents: list[AgentNets], n_users: int, n_servers: int) -> np.ndarray:
    """â^j for every observation, [M, 2^N, N]: one batched actor call per agent.

    The policy is fixed for a whole episode (training happens after its steps), so the episode's
    N_t decisions become table look-ups instead of N_t·M single-row actor calls.
    """
    actors = [agents[0 if len(agents) == 1 else j].actor for j in range(n_servers)]
    obs = to_torch(all_observations(n_users), network_device(actors[0]))
    with torch.no_grad():
        return np.stack([to_numpy(actor(obs, j)) for j, actor in enumerate(actors)])


def scores_from_table(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """â for the joint state X [N, M] (or a batch [B, N, M]) from a :func:`policy_score_table`."""
    if x.ndim == 3:
        return np.stack([scores_from_table(table, state) for state in x])
    rows = observation_index(x)
    return np.stack([table[j, rows[j]] for j in range(table.shape[0])], axis=1)


def _check_finite(value: torch.Tensor, where: str) -> None:
    if not torch.isfinite(value).all():
        raise NonFiniteError(f"non-finite {where}: {float(value.detach())}")


def non_finite_parameter(modules: dict[str, nn.Module]) -> str | None:
    """The name of the first parameter holding NaN or inf, or None."""
    for prefix, module in modules.items():
        for name, parameter in module.named_parameters():
            if not torch.isfinite(parameter).all():
                return f"{prefix}.{name}"
    return None
