"""Local search on a feasible placement: single-user moves and two-user swaps, each the best one
of the whole neighbourhood, until none lowers the total latency (``--local-search`` of ``qdt place``
and ``qdt bench generalise``).

**The moves.** From an assignment (one server per user):

* *move* user i from its server j to another server k: Δ = T_ik − T_ij; allowed when k meets i's
  deadline, has a free slot (count_k < M_k) and room for i's twin (load_k + c_ik ≤ C_k);
* *swap* users i (on j) and i' (on k ≠ j): Δ = T_ik + T_i'j − T_ij − T_i'k; allowed when each meets
  its deadline on the other's server and both servers keep their capacity (the counts do not change).

Every step scans all N·(M − 1) moves and N(N − 1)/2 swaps and takes the one of most negative Δ
(ties: moves before swaps, then the lower user, then the lower server or partner), and stops when no Δ
is below −:data:`LEAST_IMPROVEMENT`. Each step lowers the objective of (21), so it ends, at a
placement no single move or swap improves (a local optimum of this neighbourhood). Feasibility is
kept at every step; capacity is checked with the model's tolerance
(:data:`qdt.problem.model.RELATIVE_TOLERANCE`), on loads updated move by move, and the result is
checked again by :meth:`qdt.problem.model.PlacementModel.feasible_batch` (a result that round-off
made infeasible, never seen, gives back the placement it started from). An infeasible placement is
returned as it is: the search only moves within the feasible set.

**Why.** It is the classic improvement step of the generalised assignment problem, which (21)–(26)
is: a constructed placement is a few percent from the optimum, mostly by users that a swap would
place better. A step costs O(N·M + N²) compiled arithmetic, so a whole search on a tight 64 × 8
instance takes about 0.1 ms, against 30–60 ms for one construction (README, "Local search").

Compiled with numba on first use (:func:`qdt.compiled.compiled`).
"""

from __future__ import annotations

import numpy as np

from qdt.compiled import compiled
from qdt.problem.model import RELATIVE_TOLERANCE, PlacementModel

__all__ = ["LEAST_IMPROVEMENT", "improve_placements"]

LEAST_IMPROVEMENT = 1e-12
"""Seconds of total latency a step must save at least (so round-off never makes it cycle)."""


def improve_placements(model: PlacementModel, placements: np.ndarray) -> np.ndarray:
    """The placements [N, M] or [B, N, M] (binary, of ``model``'s instance) after the local search
    (module docstring); infeasible ones unchanged. A new array of the input's shape, int8."""
    x = model.check_matrix(placements)
    out = x.reshape(-1, model.n_users, model.n_servers).copy()
    rows = np.flatnonzero(model.feasible_batch(out))  # feasible: one server per user, every row
    if not rows.size:
        return out.reshape(x.shape)
    searched = np.ascontiguousarray(out[rows].argmax(axis=2).astype(np.int64))
    _improve_rows()(
        np.ascontiguousarray(model.latency, dtype=np.float64),
        np.ascontiguousarray(model.compute_rate, dtype=np.float64),
        np.ascontiguousarray(model.capacity, dtype=np.float64),
        np.ascontiguousarray(model.max_users, dtype=np.int64),
        np.ascontiguousarray(model.deadline_ok, dtype=np.bool_),
        searched,
    )
    improved = np.eye(model.n_servers, dtype=np.int8)[searched]
    kept = model.feasible_batch(improved)  # round-off guard (module docstring)
    out[rows[kept]] = improved[kept]
    return out.reshape(x.shape)


def _search_rows(
    latency: np.ndarray,
    rate: np.ndarray,
    capacity: np.ndarray,
    max_users: np.ndarray,
    deadline_ok: np.ndarray,
    assignments: np.ndarray,
) -> None:  # pragma: no cover - runs compiled (numba does not report coverage)
    """The local search on every row of ``assignments`` [B, N] (feasible ones) in place."""
    batch, n = assignments.shape
    m = latency.shape[1]
    room = capacity * (1.0 + RELATIVE_TOLERANCE)
    for b in range(batch):
        a = assignments[b]
        load = np.zeros(m)
        count = np.zeros(m, dtype=np.int64)
        for i in range(n):
            load[a[i]] += rate[i, a[i]]
            count[a[i]] += 1
        while True:
            best = -LEAST_IMPROVEMENT
            user = -1
            target = -1
            partner = -1
            for i in range(n):
                j = a[i]
                for k in range(m):
                    if k == j or not deadline_ok[i, k] or count[k] >= max_users[k]:
                        continue
                    delta = latency[i, k] - latency[i, j]
                    if delta < best and load[k] + rate[i, k] <= room[k]:
                        best, user, target, partner = delta, i, k, -1
            for i in range(n):
                j = a[i]
                for other in range(i + 1, n):
                    k = a[other]
                    if k == j or not deadline_ok[i, k] or not deadline_ok[other, j]:
                        continue
                    delta = latency[i, k] + latency[other, j] - latency[i, j] - latency[other, k]
                    if (
                        delta < best
                        and load[k] - rate[other, k] + rate[i, k] <= room[k]
                        and load[j] - rate[i, j] + rate[other, j] <= room[j]
                    ):
                        best, user, target, partner = delta, i, k, other
            if user < 0:
                break
            j = a[user]
            if partner < 0:
                load[j] -= rate[user, j]
                load[target] += rate[user, target]
                count[j] -= 1
                count[target] += 1
            else:
                load[j] += rate[partner, j] - rate[user, j]
                load[target] += rate[user, target] - rate[partner, target]
                a[partner] = j
            a[user] = target


_improve_rows = compiled(_search_rows)
""":func:`_search_rows` compiled (on first use, cached where it can be)."""
