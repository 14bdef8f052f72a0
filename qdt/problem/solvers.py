"""Solvers of the placement problem (21)–(26) behind one interface.

* ``enumerate``: every one of the M^N assignments (a server per user), vectorised in chunks;
  exact, practical up to about 10^6 assignments.
* ``milp``: the binary program through ``scipy.optimize.milp`` (HiGHS) with the relative MIP gap
  set to 0, so "optimal" means optimal; capacity rows are scaled by 1/C_j. The solution is
  re-checked with :class:`~qdt.problem.model.PlacementModel`; should HiGHS's feasibility tolerance let a
  capacity row overshoot by more than qdt's 1e-9, the MILP is solved again with that row's bound
  tightened.
* ``greedy``: every user on its fastest server, then a repair step: while a server exceeds its
  user cap or its capacity, move the user whose move to a server with room (cap, capacity and
  deadline all met) costs the least extra latency; if no move exists, give up ("unsolved").
* ``random``: uniformly random assignments, drawn in vectorised batches from a seeded generator,
  until one is feasible ("unsolved" after ``max_draws``).
* ``auto``: ``enumerate`` when M^N ≤ 10^6, otherwise ``milp``.

Statuses: "optimal" (exact solver), "feasible" (a heuristic's placement), "infeasible" (proven:
no placement meets all constraints), "unsolved" (a heuristic found nothing, or the MILP hit its
time limit; nothing is proven).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array

from qdt.errors import QdtInputError
from qdt.problem.model import RELATIVE_TOLERANCE, PlacementModel

Status = Literal["optimal", "feasible", "infeasible", "unsolved"]
SOLVERS = ("auto", "enumerate", "milp", "greedy", "random")
ENUMERATION_LIMIT = 1_000_000
_CHUNK = 65_536


@dataclass(frozen=True)
class SolveResult:
    status: Status
    assignment: list[int] | None
    total_latency_s: float | None
    per_user_latency_s: list[float] | None
    solver: str
    wall_s: float

    def to_dict(self) -> dict[str, object]:
        return {
            "status": self.status,
            "assignment": self.assignment,
            "total_latency_s": self.total_latency_s,
            "per_user_latency_s": self.per_user_latency_s,
            "solver": self.solver,
            "wall_s": self.wall_s,
        }


def solve(
    model: PlacementModel,
    solver: str = "auto",
    *,
    seed: int | np.random.SeedSequence | None = None,
    time_limit_s: float | None = None,
) -> SolveResult:
    """Solve with the named solver. ``seed`` drives ``random``; ``time_limit_s`` the MILP."""
    if solver not in SOLVERS:
        raise QdtInputError("--solver", f"one of {', '.join(SOLVERS)}", solver)
    if solver == "auto":
        solver = "enumerate" if assignment_count(model) <= ENUMERATION_LIMIT else "milp"
    start = time.perf_counter()
    if solver == "enumerate":
        status, assignment = _enumerate(model)
    elif solver == "milp":
        status, assignment = _milp(model, time_limit_s)
    elif solver == "greedy":
        status, assignment = _greedy(model)
    else:
        status, assignment = _random_feasible(model, np.random.default_rng(seed))
    wall = time.perf_counter() - start
    return _result(model, status, assignment, solver, wall)


def assignment_count(model: PlacementModel) -> int:
    return int(model.n_servers) ** int(model.n_users)


def _result(
    model: PlacementModel, status: Status, assignment: NDArray[np.int64] | None, solver: str, wall: float
) -> SolveResult:
    if assignment is None:
        return SolveResult(status, None, None, None, solver, wall)
    evaluation = model.evaluate_assignment(assignment)
    if not evaluation.feasible:  # a solver bug, never a user's fault
        raise AssertionError(f"{solver} returned an infeasible placement {assignment.tolist()}")
    return SolveResult(
        status,
        [int(j) for j in assignment],
        evaluation.total_latency_s,
        evaluation.per_user_latency_s,
        solver,
        wall,
    )


# ---- enumeration -----------------------------------------------------------------------
def _enumerate(model: PlacementModel) -> tuple[Status, NDArray[np.int64] | None]:
    n, m = model.n_users, model.n_servers
    total = assignment_count(model)
    if total > ENUMERATION_LIMIT:
        raise QdtInputError(
            "--solver enumerate",
            f"at most {ENUMERATION_LIMIT:,} assignments (M^N)",
            f"{m}^{n} = {total:.3g}",
            "use --solver milp or auto",
        )
    powers = m ** np.arange(n - 1, -1, -1, dtype=np.int64)
    best_latency = np.inf
    best: NDArray[np.int64] | None = None
    users = np.arange(n)
    for start in range(0, total, _CHUNK):
        codes = np.arange(start, min(start + _CHUNK, total), dtype=np.int64)
        assignments = (codes[:, None] // powers[None, :]) % m  # lexicographic order
        feasible = _feasible_assignments(model, assignments)
        if not feasible.any():
            continue
        latency = model.latency[users[None, :], assignments].sum(axis=1)
        latency = np.where(feasible, latency, np.inf)
        k = int(np.argmin(latency))
        if latency[k] < best_latency:
            best_latency, best = float(latency[k]), assignments[k].copy()
    return ("infeasible", None) if best is None else ("optimal", best)


def _feasible_assignments(model: PlacementModel, assignments: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Feasibility of a batch of assignments [K, N] (constraint 22 holds by construction)."""
    k, n = assignments.shape
    m = model.n_servers
    users = np.arange(n)
    ok = model.deadline_ok[users[None, :], assignments].all(axis=1)
    slots = (np.arange(k)[:, None] * m + assignments).ravel()  # (row, server) pairs
    counts = np.bincount(slots, minlength=k * m).reshape(k, m)
    rates = model.compute_rate[users[None, :], assignments].ravel()
    load = np.bincount(slots, weights=rates, minlength=k * m).reshape(k, m)
    ok &= np.all(counts <= model.max_users, axis=1)
    ok &= np.all(load <= model.capacity * (1 + RELATIVE_TOLERANCE), axis=1)
    return ok


# ---- MILP ------------------------------------------------------------------------------
def _milp(model: PlacementModel, time_limit_s: float | None) -> tuple[Status, NDArray[np.int64] | None]:
    n, m = model.n_users, model.n_servers
    if time_limit_s is not None and not (np.isfinite(time_limit_s) and time_limit_s > 0):
        raise QdtInputError("--time-limit", "a number of seconds > 0", time_limit_s)
    if not model.deadline_ok.any(axis=1).all():
        return "infeasible", None  # some user misses its deadline on every server
    cost = model.latency.ravel()
    upper = model.deadline_ok.astype(np.float64).ravel()  # x_ij = 0 where T_ij > τ_i (26)
    rows = np.repeat(np.arange(n), m)
    cols = np.arange(n * m)
    one_server = csr_array((np.ones(n * m), (rows, cols)), shape=(n, n * m))
    server_of = np.tile(np.arange(m), n)
    per_server = csr_array((np.ones(n * m), (server_of, cols)), shape=(m, n * m))
    scaled_rate = (model.compute_rate / model.capacity[None, :]).ravel()
    capacity_rows = csr_array((scaled_rate, (server_of, cols)), shape=(m, n * m))
    capacity_bound = np.ones(m)
    options: dict[str, object] = {"mip_rel_gap": 0.0}
    if time_limit_s is not None:
        options["time_limit"] = float(time_limit_s)
    for _attempt in range(3):
        result = milp(
            cost,
            integrality=np.ones(n * m),
            bounds=Bounds(np.zeros(n * m), upper),
            constraints=[
                LinearConstraint(one_server, 1.0, 1.0),
                LinearConstraint(per_server, -np.inf, model.max_users.astype(np.float64)),
                LinearConstraint(capacity_rows, -np.inf, capacity_bound),
            ],
            options=options,
        )
        if result.status == 2:
            return "infeasible", None
        if result.x is None:
            return "unsolved", None  # time or node limit with no incumbent
        x = np.rint(result.x.reshape(n, m)).astype(np.int64)
        assignment = x.argmax(axis=1)
        load = (
            model.compute_rate[np.arange(n), assignment][:, None] * (assignment[:, None] == np.arange(m))
        ).sum(axis=0)
        over = load > model.capacity * (1 + RELATIVE_TOLERANCE)
        if not over.any():
            return ("optimal" if result.status == 0 else "unsolved"), assignment
        capacity_bound = np.where(over, capacity_bound - 1e-6, capacity_bound)
    return "unsolved", None


# ---- heuristics ------------------------------------------------------------------------
def _greedy(model: PlacementModel) -> tuple[Status, NDArray[np.int64] | None]:
    n, m = model.n_users, model.n_servers
    if not model.deadline_ok.any(axis=1).all():
        return "infeasible", None
    latency, rate = model.latency, model.compute_rate
    assignment = latency.argmin(axis=1)  # the fastest server meets the deadline if any does
    counts = np.bincount(assignment, minlength=m).astype(np.int64)
    load = np.bincount(assignment, weights=rate[np.arange(n), assignment], minlength=m)
    limit = model.capacity * (1 + RELATIVE_TOLERANCE)
    for _step in range(n * m + 1):
        overloaded = (counts > model.max_users) | (load > limit)
        if not overloaded.any():
            return "feasible", assignment
        movers = np.flatnonzero(overloaded[assignment])
        # Extra latency of moving user i (on an overloaded server) to server k.
        extra = latency[movers] - latency[movers, assignment[movers]][:, None]
        room = (counts[None, :] + 1 <= model.max_users[None, :]) & (
            load[None, :] + rate[movers] <= limit[None, :]
        )
        allowed = room & model.deadline_ok[movers] & ~overloaded[None, :]
        if not allowed.any():
            return "unsolved", None
        extra = np.where(allowed, extra, np.inf)
        row, k = np.unravel_index(int(np.argmin(extra)), extra.shape)
        i = int(movers[row])
        j = int(assignment[i])
        counts[j] -= 1
        load[j] -= rate[i, j]
        counts[k] += 1
        load[k] += rate[i, k]
        assignment[i] = k
    return "unsolved", None


def _random_feasible(
    model: PlacementModel, rng: np.random.Generator, max_draws: int = 200_000, batch: int = 8_192
) -> tuple[Status, NDArray[np.int64] | None]:
    if not model.deadline_ok.any(axis=1).all():
        return "infeasible", None
    drawn = 0
    while drawn < max_draws:
        size = min(batch, max_draws - drawn)
        assignments = rng.integers(0, model.n_servers, size=(size, model.n_users))
        feasible = np.flatnonzero(_feasible_assignments(model, assignments))
        if feasible.size:
            return "feasible", assignments[feasible[0]]
        drawn += size
    return "unsolved", None
