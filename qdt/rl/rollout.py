"""The greedy rollout every trained policy decides by: up to N_t decisions from a start placement,
each the actors' scores of the current placement decoded into the next one.

A rollout whose scores are deterministic (classical actors, or quantum actors on an exact executor:
no shots) ends as soon as a decision leaves the placement unchanged: from a fixed point every later
decision would repeat it, so the placement is the one the N_t steps would give, at a fraction of
the decisions (on held-out 32 × 8 instances most rollouts reach theirs in 1–4 steps). Scores
estimated from shots differ from call to call, so such a rollout always makes its N_t decisions.

**Which placement decides** (``keep``, :data:`KEEPS`): ``last``, the rollout's final placement (the
policy's own answer, as Algorithm 1 scores it), or ``best``, the feasible placement of least total
latency among all it visited, its start included (:func:`qdt.problem.decoding.best_placement`; the
last one when none is feasible). ``best`` asks the objective, not the actors, so a rollout from
greedy-with-repair's placement (``start = "greedy"``) never ends worse than greedy, and the actors
still propose every placement it can keep. It costs one evaluation of the visited placements (under
0.1 ms at 32 × 8) and no actor call. Measured on the default 32 × 8 family (40 validation draws,
the five quantum L = 6 runs of ``qdt bench generalise``): the last placement 1.79–2.22% above the
optimum per run (greedy 1.76%), the best visited 1.26–1.47%; the rollouts took 4.0–5.8 steps.
``qdt place`` and ``qdt bench generalise`` decide by ``best`` unless told otherwise; training's
metrics (the greedy policy, the held-out gaps of summary.json), ``qdt infer`` and ``qdt evaluate``
score the last placement, the policy's own answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from qdt.problem.decoding import best_placement
from qdt.problem.model import PlacementModel

__all__ = ["KEEPS", "Keep", "kept_placement", "roll_out"]

Keep = Literal["best", "last"]
KEEPS: tuple[Keep, ...] = ("best", "last")


def roll_out(
    decide: Callable[[np.ndarray], np.ndarray],
    start: np.ndarray,
    steps: int,
    deterministic: bool,
    best_of: PlacementModel | None = None,
) -> tuple[np.ndarray, int]:
    """(the placement after up to ``steps`` calls of ``decide`` from ``start``, the calls made),
    stopped at the first fixed point when ``deterministic`` (module docstring). With ``best_of`` (the
    instance's model) the placement is the best one visited instead of the last (``keep = "best"``)."""
    x = start
    visited = [start]
    made = steps
    for call in range(1, steps + 1):
        following = decide(x)
        if deterministic and np.array_equal(following, x):
            made = call
            break
        x = following
        visited.append(x)
    return kept_placement(visited, best_of), made


def kept_placement(visited: list[np.ndarray], best_of: PlacementModel | None) -> np.ndarray:
    """The placement a rollout that ``visited`` these (start first) decides: its last, or with
    ``best_of`` (the instance's model) the feasible one of least total latency, the newest of equals,
    the last one when none is feasible (``keep = "best"``)."""
    if best_of is None:
        return visited[-1]
    return best_placement(best_of, np.stack(visited[::-1]))  # newest first: the last of equals
