"""The greedy rollout every trained policy decides by: up to N_t decisions from a start placement,
each the actors' scores of the current placement decoded into the next one.

A rollout whose scores are deterministic (classical actors, or quantum actors on an exact executor:
no shots) ends as soon as a decision leaves the placement unchanged: from a fixed point every later
decision would repeat it, so the placement is the one the N_t steps would give, at a fraction of
the decisions (on held-out 32 × 8 instances most rollouts reach theirs in 1–4 steps). Scores
estimated from shots differ from call to call, so such a rollout always makes its N_t decisions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["roll_out"]


def roll_out(
    decide: Callable[[np.ndarray], np.ndarray],
    start: np.ndarray,
    steps: int,
    deterministic: bool,
) -> tuple[np.ndarray, int]:
    """(the placement after up to ``steps`` calls of ``decide`` from ``start``, the calls made),
    stopped at the first fixed point when ``deterministic`` (module docstring)."""
    x = start
    for made in range(1, steps + 1):
        following = decide(x)
        if deterministic and np.array_equal(following, x):
            return following, made
        x = following
    return x, steps
