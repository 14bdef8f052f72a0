"""Imitation of the exact optimum (``TrainConfig.imitation_episodes``), for a family run's first
episodes: the shared actor learns, for every user of the episode's freshly drawn instances, the
server the MILP's optimum puts it on, from every state the episode visited.

The loss is the cross-entropy of the actor's logits over the M servers (a softmax per user) with
the optimum's server as the label, mean over the states and users; its ``gradient_steps`` steps
per episode replace the learner's update. The states are the episode's K·N_t visited ones (the
policy's own placements, as DAgger takes them) and as many near the optimum: each instance's
optimum with every user moved to a uniformly drawn server with probability
:data:`NEAR_OPTIMUM_MOVES` (:func:`near_optimum_states`), so that the policy also learns to keep an
optimal placement once its rollout reaches one. Measured with a prototype of this update (400
instances of the 32 × 8 family, 1500 steps of 64 states, classical, seed 0; 20 held-out instances):
from the empty placement only 3.41% above the optimum (median), with states near the optimum too
2.24%.

The instances are training draws only (a held-out instance is never solved here), so a policy
placed on unseen instances has learned from the solver's answers to other instances, the way a
learned heuristic is taught, and decides without it. An instance whose optimum the MILP does not
prove within the time limit teaches nothing that episode.

Why (``qdt/rl/config.py`` has the measurements): by rewards alone the ``user`` actor ended 3.5–15%
above the optimum on held-out 32 × 8 instances; fitted to optima, 1.9–2.6% (seeds 0–4).
"""

from __future__ import annotations

import numpy as np
import torch

from qdt.problem.model import PlacementModel
from qdt.problem.solvers import solve
from qdt.rl.maddpg import AgentNets, _descend, shared_actor_inputs
from qdt.rl.observations import InstanceContext

NEAR_OPTIMUM_MOVES = 0.2
"""Probability that a user of a near-optimum state sits on a random server instead of its optimal one."""

IMITATION_TIME_LIMIT_S = 20.0
"""MILP time limit per training instance; an instance not solved to optimality within it is left out."""


def optimal_servers(models: list[PlacementModel], time_limit_s: float = IMITATION_TIME_LIMIT_S) -> np.ndarray:
    """[K, N]: the server of every user in each model's proven optimum, −1 for every user of a model
    whose optimum the MILP does not prove (or that has no feasible placement)."""
    targets = np.full((len(models), models[0].n_users), -1, dtype=np.int64)
    for k, model in enumerate(models):
        result = solve(model, "auto", time_limit_s=time_limit_s)
        if result.status == "optimal" and result.assignment is not None:
            targets[k] = np.asarray(result.assignment, dtype=np.int64)
    return targets


def near_optimum_states(targets: np.ndarray, copies: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """[copies·K, N, M] placements near each instance's optimum ``targets`` [K, N] (row c·K + k is
    instance k's): every user on its optimal server, or with probability
    :data:`NEAR_OPTIMUM_MOVES` on a uniformly drawn one; the empty placement where the optimum is
    unknown (−1)."""
    k, n = targets.shape
    servers = np.tile(targets, (copies, 1))  # [copies·K, N]
    moved = rng.random(servers.shape) < NEAR_OPTIMUM_MOVES
    servers = np.where(moved, rng.integers(0, m, size=servers.shape), servers)
    states = np.zeros((copies * k, n, m), dtype=np.int8)
    labelled = np.tile(targets >= 0, (copies, 1))
    rows, users = np.nonzero(labelled)
    states[rows, users, servers[rows, users]] = 1
    return states


def shared_actor_logits(
    nets: AgentNets, states: torch.Tensor, context: InstanceContext | None = None
) -> torch.Tensor:
    """The shared actor's logits z for joint states [B, N, M] → [B, N, M] (its scores are sigmoid(z))."""
    batch, n, m = states.shape
    return nets.actor.logits(*shared_actor_inputs(states, context)).reshape(batch, m, n).transpose(1, 2)


def imitation_update(
    nets: AgentNets,
    states: torch.Tensor,
    targets: torch.Tensor,
    steps: int,
    context: InstanceContext | None = None,
) -> float | None:
    """``steps`` descent steps of the cross-entropy between the actor's logits over the servers
    (states [B, N, M]) and the optimum's servers ``targets`` [B, N] (−1: no label); the last
    step's loss, or None (no step) when no row has a label."""
    labelled = targets >= 0
    if not bool(labelled.any()):
        return None
    m = states.shape[2]
    loss = torch.zeros(())
    for _ in range(steps):
        logits = shared_actor_logits(nets, states, context)
        loss = torch.nn.functional.cross_entropy(logits[labelled].reshape(-1, m), targets[labelled])
        _descend(nets.actor_optimizer, loss, "imitation loss of the shared actor")
    return float(loss.detach())
