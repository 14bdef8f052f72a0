"""The ``ppo`` learner (``TrainConfig.learner``): the shared actor learns from the rewards of the
scores it explored, by clipped policy gradient (PPO's clipped surrogate), with no critic.

During an episode the K environments act with Gaussian-explored scores a = μ(s) + ε, ε ~ N(0, σ²I)
(clipped to [0, 1]; σ the episode's exploration level), and each action's placement earns a
reward. The policy is that Gaussian around the actor's scores, so log π(a | s) =
−‖a − μ(s)‖² / (2σ²) + const, and every one of the episode's K·N_t transitions gives the
surrogate min(ρ·A, clip(ρ, 1 − c, 1 + c)·A) with ρ = π_new / π_old and A the reward normalised
over the episode (minus the mean, over the standard deviation: the baseline is the episode's
mean). ``gradient_steps`` ascent steps on it per episode, the old policy being the actor that
acted. Clipping to [0, 1] is ignored in the density (a bias at the bounds only).

Credit (``TrainConfig.ppo_credit``):

* ``episode`` (v3): one advantage per transition, its reward normalised over the episode, and one
  probability ratio per transition (the product over all N·M scores).
* ``user``: one advantage per (transition, user) and one ratio per (transition, user), the
  product over that user's M scores. User i's reward is its own latency plus an equal share of
  any penalty, in percent of its share of the lower bound, u_i = −100·(N·T_i + P)/B
  (:func:`user_rewards`); its advantage is u_i minus user i's mean over the episode, over the
  standard deviation of all of them, but at least :data:`USER_ADVANTAGE_FLOOR` (a spread below
  0.1% of a user's share is noise, not a signal worth a full step). Each user's scores then answer
  for that user's latency, not for the other N − 1 users', which the episode's credit mixes in.
* ``both``: per (transition, user), the sum of the two advantages (:func:`joint_credit`).

Why: the critic of ``maddpg`` must learn the reward of every score matrix, a step function of
the scores through the decoding; its gradient steered the actors within 1.5–5.6% of the optimum
on a tight 16 × 4 instance while their exploration had already found placements within 0.5%
(``qdt/rl/config.py``). The rewards themselves carry that information without a model in between.
"""

from __future__ import annotations

import numpy as np
import torch

from qdt.rl.maddpg import AgentNets, _descend, joint_scores
from qdt.rl.observations import InstanceContext

LOG_RATIO_LIMIT = 20.0  # |log ρ| above this is clipped before exp (ρ is clipped at 1 ± c anyway)

USER_ADVANTAGE_FLOOR = 0.1
"""Least spread (percent of a user's share of the lower bound) a ``user`` advantage is divided by.
Late in a run, when exploration is narrow, the users' latencies hardly differ, and normalising by
their tiny spread turns noise into full steps. Measured with a prototype of the same update on the
tight 32 × 8 instance of ``qdt bench scale`` (classical, 1000 episodes): without a floor 3.90%,
6.69%, 5.05% above the optimum (seeds 0–2), with a floor of about this size 2.07%, 2.45% (seeds
0–1). This module, seeds 0–4: 2.93%, 5.28%, 4.25%, 2.98%, 3.32% (``qdt/rl/config.py``)."""


def gaussian_log_prob(
    nets: AgentNets,
    states: torch.Tensor,
    actions: torch.Tensor,
    sigma: float,
    context: InstanceContext | None = None,
    per_user: bool = False,
) -> torch.Tensor:
    """log π(a | s) up to a constant, per row [B]: −‖a − μ(s)‖² / (2σ²); ``per_user``: per row
    and user [B, N], each user's M scores."""
    mean = joint_scores([nets], states, context=context)
    return -((actions - mean) ** 2).sum(dim=2 if per_user else (1, 2)) / (2.0 * sigma**2)


def episode_advantages(rewards: torch.Tensor) -> torch.Tensor | None:
    """``episode`` credit: rewards [T] normalised over the episode; None when all are equal."""
    spread = rewards.std()
    if not bool(spread > 0):
        return None
    return (rewards - rewards.mean()) / spread


def user_rewards(
    placements: np.ndarray, latency: np.ndarray, rewards: np.ndarray, bound: np.ndarray
) -> np.ndarray:
    """Each user's reward [T, N] (module docstring) from the placements [T, N, M] chosen, each
    row's latency T_ij [T, N, M], rewards R [T] as the environment gave them (minus latency minus
    penalty) and lower bounds B [T]: u_i = −100·(N·T_i + P)/B, P = −R − Σ_i T_i; Σ_i u_i / N is
    the reward in percent of B."""
    own = (placements * latency).sum(axis=2)  # [T, N]
    n = own.shape[1]
    penalty = -rewards - own.sum(axis=1)
    return -100.0 * (n * own + penalty[:, None]) / bound[:, None]


def user_advantages(rewards: torch.Tensor) -> torch.Tensor | None:
    """``user`` credit: each user's rewards [T, N] minus that user's mean, over the spread of all
    (at least :data:`USER_ADVANTAGE_FLOOR`); None when no user's reward varies."""
    centred = rewards - rewards.mean(dim=0, keepdim=True)
    if not bool(centred.abs().max() > 0):
        return None
    return centred / torch.clamp(centred.std(), min=USER_ADVANTAGE_FLOOR)


def joint_credit(
    users: torch.Tensor | None, episode: torch.Tensor | None, n_users: int
) -> torch.Tensor | None:
    """``both`` credit: each user's advantage [T, N] plus its transition's [T] (either may be None)."""
    if episode is None:
        return users
    shared = episode[:, None].expand(-1, n_users)
    return shared if users is None else users + shared


def ppo_update(
    nets: AgentNets,
    states: torch.Tensor,
    actions: torch.Tensor,
    advantages: torch.Tensor | None,
    sigma: float,
    clip: float,
    steps: int,
    context: InstanceContext | None = None,
) -> float:
    """``steps`` ascent steps of the clipped surrogate on one episode's transitions (module
    docstring); the last step's loss. ``advantages``: per transition [T]
    (:func:`episode_advantages`) or per transition and user [T, N] (:func:`user_advantages`);
    None (no signal): no step."""
    if advantages is None:
        return 0.0
    per_user = advantages.ndim == 2
    with torch.no_grad():
        old = gaussian_log_prob(nets, states, actions, sigma, context, per_user)
    loss = torch.zeros(())
    for _ in range(steps):
        new = gaussian_log_prob(nets, states, actions, sigma, context, per_user)
        ratio = torch.exp(torch.clamp(new - old, -LOG_RATIO_LIMIT, LOG_RATIO_LIMIT))
        surrogate = torch.minimum(ratio * advantages, torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * advantages)
        loss = -surrogate.mean()
        _descend(nets.actor_optimizer, loss, "ppo loss of the shared actor")
    return float(loss.detach())
