"""Exploration rules turning the actor's output â ∈ [0, 1]^N into a binary action.

* "flip" (default): round(â), then every bit flipped with probability p(episode).
* "gaussian": round(â + N(0, p(episode)²)).
* "paper": rule (31) as printed, round(â + ε) with ε ~ U[0, 1]: biased to 1, no decay.
p decays linearly from ``start`` to ``end`` over the first ``fraction`` of the episodes.
round(x) = 1 if x > 0.5 else 0, as in the paper.

With the argmax and feasible decodings (``decode="argmax"`` or ``"feasible"``,
:mod:`qdt.problem.decoding`) the agents' outputs are scores that the decoding turns into a
placement; exploration then perturbs the scores: "flip" replaces each user's row of scores with
uniform random ones with probability p, "gaussian" adds N(0, p²). Scores of several environments
[K, N, M] are perturbed at once, the first one's draws being those of a single environment.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from qdt.problem.decoding import decode_argmax

__all__ = ["decode_argmax", "exploration_level", "explore", "explore_scores"]


def exploration_level(episode: int, episodes: int, start: float, end: float, fraction: float) -> float:
    horizon = max(1.0, fraction * episodes)
    progress = min(1.0, episode / horizon)
    return start + (end - start) * progress


def explore(
    rule: str, greedy_scores: NDArray[np.float64], level: float, rng: np.random.Generator
) -> NDArray[np.int8]:
    """Binary actions from actor outputs [..., N] under ``rule`` at exploration ``level``."""
    if rule == "flip":
        action = greedy_scores > 0.5
        flips = rng.random(greedy_scores.shape) < level
        return (action ^ flips).astype(np.int8)
    if rule == "gaussian":
        return (greedy_scores + rng.normal(0.0, level, greedy_scores.shape) > 0.5).astype(np.int8)
    if rule == "paper":
        return (greedy_scores + rng.random(greedy_scores.shape) > 0.5).astype(np.int8)
    raise ValueError(f"unknown exploration rule {rule!r}")


def explore_scores(
    rule: str, scores: NDArray[np.float64], level: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Perturbed scores [..., N, M] for score decodings (rows are users, columns agents)."""
    if rule == "flip":
        replace = rng.random(scores.shape[:-1]) < level
        noisy = np.where(replace[..., None], rng.random(scores.shape), scores)
    elif rule == "gaussian":
        noisy = scores + rng.normal(0.0, level, scores.shape)
    elif rule == "paper":
        noisy = scores + rng.random(scores.shape)
    else:
        raise ValueError(f"unknown exploration rule {rule!r}")
    return np.clip(noisy, 0.0, 1.0)
