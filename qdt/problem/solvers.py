"""Solvers of the placement problem (21)–(26) behind one interface.

* ``enumerate``: every one of the M^N assignments (a server per user), vectorised in chunks;
  exact, practical up to about 10^6 assignments.
* ``milp``: the binary program through ``scipy.optimize.milp`` (HiGHS) with the relative MIP gap
  set to 0, so "optimal" means optimal; capacity rows are scaled by 1/C_j. With ``rel_gap`` > 0 it
  stops at a placement proven within that share of the optimum ("feasible", with HiGHS's lower
  bound on the optimum in ``lower_bound_s``). The solution is
  re-checked with :class:`~qdt.problem.model.PlacementModel`; should HiGHS's feasibility tolerance let a
  capacity row overshoot by more than qdt's 1e-9, the MILP is solved again with that row's bound
  tightened.
* ``greedy``: every user on its fastest server, then a repair step: while a server exceeds its
  user cap or its capacity, move the user whose move to a server with room (cap, capacity and
  deadline all met) costs the least extra latency; if no move exists, give up ("unsolved").
* ``random``: uniformly random assignments, drawn in vectorised batches from a seeded generator,
  until one is feasible ("unsolved" after ``max_draws``).
* ``auto``: ``enumerate`` when M^N ≤ 10^6, otherwise ``milp``.

Statuses: "optimal" (exact solver), "feasible" (a heuristic's placement, or the MILP's within
``rel_gap``), "infeasible" (proven:
no placement meets all constraints), "unsolved" (a heuristic found nothing, or a solver hit its
time limit; nothing is proven). An "unsolved" result says why in ``reason``.

Time limits. ``time_limit_s`` bounds every solver in wall-clock time from the moment
:func:`solve` is called, building the solver's own model included. The enumeration, the greedy
repair and the random draws check the clock between chunks, steps and batches. HiGHS gets the
remaining time as its own limit, but it does not check that limit in every phase: on 100,000
users × 4 servers with a 2 s limit it was still in presolve minutes later (with presolve off, in
the root LP). So with a limit the MILP runs in a child process, which is stopped
:data:`KILL_GRACE_S` after the limit if HiGHS has not returned by then. Without a limit
everything runs in this process, as before.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array

from qdt.errors import QdtInputError
from qdt.problem.model import RELATIVE_TOLERANCE, PlacementModel

if TYPE_CHECKING:  # ForkContext does not exist on Windows
    from multiprocessing.context import ForkContext, SpawnContext

Status = Literal["optimal", "feasible", "infeasible", "unsolved"]
SOLVERS = ("auto", "enumerate", "milp", "greedy", "random")
ENUMERATION_LIMIT = 1_000_000
_CHUNK = 65_536

DEFAULT_TIME_LIMIT_S = 60.0
"""``qdt optimum``'s limit when ``--time-limit`` is not given. The MILP solves every instance of
``qdt bench scale`` (up to 64 users × 8 servers) in under 0.21 s, so the limit never binds on the
sizes qdt trains on; on instances of tens of thousands of users it turns a wait of many minutes
into an answer, or a reason, within a minute."""

KILL_GRACE_S = 1.0
"""How long past its time limit the MILP's child process may take before it is stopped. HiGHS
stops itself at the limit whenever it checks the clock, and then returns its best placement;
the grace lets it do so, and bounds the wait when it does not."""

_RANDOM_BATCH_ELEMENTS = 1 << 23
"""At most this many entries (64 MiB of int64) per batch of random draws: 8,192 draws per batch
up to 1,024 users, as before, and fewer on larger instances instead of gigabytes per batch."""

_POLL_S = 60.0  # the longest single wait on the child process (Connection.poll's timeout must be finite)


@dataclass(frozen=True)
class SolveResult:
    status: Status
    assignment: list[int] | None
    total_latency_s: float | None
    per_user_latency_s: list[float] | None
    solver: str
    wall_s: float
    reason: str | None = None  # why the status is "unsolved" (None when the solver finished)
    lower_bound_s: float | None = None
    """A proven lower bound on the optimum's total latency: the optimum itself when "optimal", the
    MILP's dual bound otherwise (None where no solver proved one: heuristics, "infeasible"). So
    ``(total_latency_s - lower_bound_s) / lower_bound_s`` bounds the placement's gap from above."""

    def to_dict(self) -> dict[str, object]:
        return {
            "status": self.status,
            "assignment": self.assignment,
            "total_latency_s": self.total_latency_s,
            "per_user_latency_s": self.per_user_latency_s,
            "solver": self.solver,
            "wall_s": self.wall_s,
            "reason": self.reason,
            "lower_bound_s": self.lower_bound_s,
        }


class _Outcome(NamedTuple):
    """What one solver found: a status, a placement (or None) and, when unsolved, why."""

    status: Status
    assignment: NDArray[np.int64] | None
    reason: str | None = None
    bound: float | None = None  # the MILP's lower bound on the optimum's total latency (HiGHS's dual bound)


@dataclass(frozen=True)
class _Clock:
    """A wall-clock budget: ``limit_s`` seconds from ``start`` (``time.perf_counter``); None: no limit."""

    start: float
    limit_s: float | None

    def remaining(self) -> float:
        if self.limit_s is None:
            return math.inf
        return self.limit_s - (time.perf_counter() - self.start)

    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def reached(self) -> str:
        return f"time limit of {self.limit_s:g} s reached"


def solve(
    model: PlacementModel,
    solver: str = "auto",
    *,
    seed: int | np.random.SeedSequence | None = None,
    time_limit_s: float | None = None,
    rel_gap: float = 0.0,
) -> SolveResult:
    """Solve with the named solver. ``seed`` drives ``random``.

    ``time_limit_s`` bounds the whole call in wall-clock time (see the module docstring); None
    means no limit. A solver stopped by the limit returns "unsolved" with its reason, and with
    the best placement it had found, if any (and the MILP with its lower bound).

    ``rel_gap`` > 0 (``milp`` only, below 1): HiGHS stops at a placement proven within that share
    of the optimum (its ``mip_rel_gap``: (latency − bound) / latency), returned as "feasible" with
    the bound in ``lower_bound_s``; often found long before an optimum is proven.
    """
    start = time.perf_counter()
    if solver not in SOLVERS:
        raise QdtInputError("--solver", f"one of {', '.join(SOLVERS)}", solver)
    if time_limit_s is not None and (
        isinstance(time_limit_s, bool)
        or not isinstance(time_limit_s, (int, float))
        or not (math.isfinite(time_limit_s) and time_limit_s > 0)
    ):
        raise QdtInputError("--time-limit", "a finite number of seconds > 0", time_limit_s)
    check_rel_gap(rel_gap)
    if rel_gap and solver != "milp":
        raise QdtInputError("rel_gap", "0 unless the solver is milp", f"{rel_gap} with {solver}")
    clock = _Clock(start, None if time_limit_s is None else float(time_limit_s))
    if solver == "auto":
        solver = "enumerate" if _enumerable(model) else "milp"
    if solver == "enumerate":
        outcome = _enumerate(model, clock)
    elif solver == "milp":
        outcome = _milp(model, clock, float(rel_gap))
        if rel_gap and outcome.status == "optimal":  # proven within rel_gap, not optimal
            outcome = outcome._replace(status="feasible")
    elif solver == "greedy":
        outcome = _greedy(model, clock)
    else:
        outcome = _random_feasible(model, np.random.default_rng(seed), clock)
    wall = time.perf_counter() - start
    return _result(model, outcome, solver, wall)


def assignment_count(model: PlacementModel) -> int:
    """M^N, exactly (an integer of N·log2(M) bits: call it only when that is small)."""
    return int(model.n_servers) ** int(model.n_users)


def _enumerable(model: PlacementModel) -> bool:
    """M^N ≤ ENUMERATION_LIMIT, decided without computing M^N for large N."""
    n, m = int(model.n_users), int(model.n_servers)
    if n * math.log2(m) > math.log2(ENUMERATION_LIMIT) + 1:
        return False
    return m**n <= ENUMERATION_LIMIT


def _power_text(m: int, n: int) -> str:
    """M^N for a message: exact when short, else its order of magnitude (never a huge int or float)."""
    exponent = n * math.log10(m)
    return f"{m**n:,}" if exponent < 15 else f"about 10^{exponent:.0f}"


def check_rel_gap(rel_gap: object, name: str = "rel_gap") -> None:
    """A relative MIP gap in [0, 1), or a QdtInputError naming ``name``."""
    if isinstance(rel_gap, bool) or not isinstance(rel_gap, (int, float)) or not 0.0 <= rel_gap < 1.0:
        raise QdtInputError(name, "a relative MIP gap in [0, 1)", rel_gap)


def _result(model: PlacementModel, outcome: _Outcome, solver: str, wall: float) -> SolveResult:
    status, assignment, reason, bound = outcome
    if assignment is None:
        return SolveResult(status, None, None, None, solver, wall, reason, bound)
    evaluation = model.evaluate_assignment(assignment)
    if not evaluation.feasible:  # a solver bug, never a user's fault
        raise AssertionError(f"{solver} returned an infeasible placement {assignment.tolist()}")
    if status == "optimal":
        bound = evaluation.total_latency_s
    return SolveResult(
        status,
        [int(j) for j in assignment],
        evaluation.total_latency_s,
        evaluation.per_user_latency_s,
        solver,
        wall,
        reason,
        bound,
    )


# ---- enumeration -----------------------------------------------------------------------
def _enumerate(model: PlacementModel, clock: _Clock) -> _Outcome:
    n, m = model.n_users, model.n_servers
    if not _enumerable(model):
        raise QdtInputError(
            "--solver enumerate",
            f"at most {ENUMERATION_LIMIT:,} assignments (M^N)",
            f"{m}^{n} = {_power_text(m, n)}",
            "use --solver milp or auto",
        )
    total = assignment_count(model)
    powers = m ** np.arange(n - 1, -1, -1, dtype=np.int64)
    best_latency = np.inf
    best: NDArray[np.int64] | None = None
    users = np.arange(n)
    for start in range(0, total, _CHUNK):
        if clock.expired():
            return _Outcome(
                "unsolved",
                best,
                f"{clock.reached()} after {start:,} of {total:,} assignments"
                + ("; the placement is the best of those" if best is not None else ""),
            )
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
    return _Outcome("infeasible", None) if best is None else _Outcome("optimal", best)


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
@dataclass(frozen=True)
class _MilpProblem:
    """The binary program (21)–(26) over x_ij, flattened row-major (user i, server j → i·M + j)."""

    n: int
    m: int
    cost: NDArray[np.float64]
    upper: NDArray[np.float64]  # x_ij = 0 where T_ij > τ_i (26)
    one_server: csr_array
    per_server: csr_array
    capacity_rows: csr_array  # c_ij / C_j
    max_users: NDArray[np.float64]
    compute_rate: NDArray[np.float64]
    capacity: NDArray[np.float64]


def _milp(model: PlacementModel, clock: _Clock, rel_gap: float = 0.0) -> _Outcome:
    if not model.deadline_ok.any(axis=1).all():
        return _Outcome("infeasible", None)  # some user misses its deadline on every server
    problem = _milp_problem(model)
    if clock.limit_s is None:
        return _solve_milp(problem, clock, rel_gap)
    return _solve_milp_in_child(problem, clock, rel_gap)


def _milp_problem(model: PlacementModel) -> _MilpProblem:
    n, m = model.n_users, model.n_servers
    rows = np.repeat(np.arange(n), m)
    cols = np.arange(n * m)
    server_of = np.tile(np.arange(m), n)
    scaled_rate = (model.compute_rate / model.capacity[None, :]).ravel()
    return _MilpProblem(
        n=n,
        m=m,
        cost=model.latency.ravel(),
        upper=model.deadline_ok.astype(np.float64).ravel(),
        one_server=csr_array((np.ones(n * m), (rows, cols)), shape=(n, n * m)),
        per_server=csr_array((np.ones(n * m), (server_of, cols)), shape=(m, n * m)),
        capacity_rows=csr_array((scaled_rate, (server_of, cols)), shape=(m, n * m)),
        max_users=model.max_users.astype(np.float64),
        compute_rate=np.asarray(model.compute_rate),
        capacity=np.asarray(model.capacity),
    )


def solve_completion(
    model: PlacementModel,
    partial: NDArray[np.int64],
    time_limit_s: float | None = None,
    rel_gap: float = 0.0,
) -> NDArray[np.int64] | None:
    """The MILP's optimum among the placements that keep every placed user of ``partial`` (a server
    per user, −1 for a user not placed) where it is, as a server per user; None when there is none,
    or none proven within ``time_limit_s`` (HiGHS's own limit; solved in this process, its prints
    kept off stdout: a child process per solve, as :func:`solve` starts for a limit, would cost
    more than the solve, several times per training instance). ``rel_gap`` > 0: a completion
    proven within that share of the optimum's latency (HiGHS's ``mip_rel_gap``), often found
    much sooner than the proof of the optimum. The ``construct`` decoding's imitation labels
    (``qdt/rl/construct.py``)."""
    check_rel_gap(rel_gap)
    n, m = model.n_users, model.n_servers
    servers = np.asarray(partial)
    if (
        servers.shape != (n,)
        or not np.issubdtype(servers.dtype, np.integer)
        or np.any((servers < -1) | (servers >= m))
    ):
        raise QdtInputError(
            "partial",
            f"{n} server indices in [-1, {m - 1}] (-1: not placed)",
            f"{servers.dtype} {servers.shape}",
        )
    if not model.deadline_ok.any(axis=1).all():
        return None
    problem = _milp_problem(model)
    upper = problem.upper.reshape(n, m).copy()
    fixed = np.flatnonzero(servers >= 0)
    kept = upper[fixed, servers[fixed]]
    upper[fixed] = 0.0
    upper[fixed, servers[fixed]] = kept  # 0 where the kept server misses the user's deadline
    problem = replace(problem, upper=upper.ravel())
    clock = _Clock(time.perf_counter(), None if time_limit_s is None else float(time_limit_s))
    with _quiet_stdout():
        outcome = _solve_milp(problem, clock, float(rel_gap))
    return outcome.assignment if outcome.status == "optimal" else None


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """File descriptor 1 pointed at the null device for the block (HiGHS prints from C), then back."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w", encoding="utf-8") as quiet:
            os.dup2(quiet.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _solve_milp(problem: _MilpProblem, clock: _Clock, rel_gap: float = 0.0) -> _Outcome:
    """HiGHS on the problem, at most three times (each retry tightens an overshooting capacity row);
    ``rel_gap`` > 0 accepts ("optimal") a placement proven within that share of the optimum. The
    outcome's bound is the first attempt's dual bound (a retry's problem is tighter, so its bound
    need not bound the optimum of this one)."""
    n, m = problem.n, problem.m
    capacity_bound = np.ones(m)
    bound: float | None = None
    for attempt in range(3):
        options: dict[str, object] = {"mip_rel_gap": rel_gap}
        if clock.limit_s is not None:
            remaining = clock.remaining()
            if remaining <= 0:
                return _Outcome("unsolved", None, f"{clock.reached()} before HiGHS could start again", bound)
            options["time_limit"] = remaining
        result = milp(
            problem.cost,
            integrality=np.ones(n * m),
            bounds=Bounds(np.zeros(n * m), problem.upper),
            constraints=[
                LinearConstraint(problem.one_server, 1.0, 1.0),
                LinearConstraint(problem.per_server, -np.inf, problem.max_users),
                LinearConstraint(problem.capacity_rows, -np.inf, capacity_bound),
            ],
            options=options,
        )
        if result.status == 2:
            return _Outcome("infeasible", None)
        dual = getattr(result, "mip_dual_bound", None)
        if attempt == 0 and dual is not None and math.isfinite(dual):
            bound = float(dual)
        stopped = f"HiGHS stopped before proving optimality: {result.message}"
        if result.status == 1 and clock.limit_s is not None:
            stopped = f"{clock.reached()} inside HiGHS"
        if result.x is None:
            return _Outcome("unsolved", None, f"{stopped}; no placement found yet", bound)
        x = np.rint(result.x.reshape(n, m)).astype(np.int64)
        assignment = x.argmax(axis=1)
        load = (
            problem.compute_rate[np.arange(n), assignment][:, None] * (assignment[:, None] == np.arange(m))
        ).sum(axis=0)
        over = load > problem.capacity * (1 + RELATIVE_TOLERANCE)
        if not over.any():
            if result.status == 0:
                return _Outcome("optimal", assignment, None, bound)
            return _Outcome(
                "unsolved", assignment, f"{stopped}; the placement is its best, not proven optimal", bound
            )
        capacity_bound = np.where(over, capacity_bound - 1e-6, capacity_bound)
    return _Outcome(
        "unsolved",
        None,
        "HiGHS's placements overshot a server's capacity by more than 1e-9, three times",
        bound,
    )


def _solve_milp_in_child(problem: _MilpProblem, clock: _Clock, rel_gap: float = 0.0) -> _Outcome:
    """:func:`_solve_milp` in a child process, stopped ``KILL_GRACE_S`` after the time limit."""
    remaining = clock.remaining()
    if remaining <= 0:
        return _Outcome("unsolved", None, f"{clock.reached()} while building the MILP")
    context = _process_context()
    receiver, sender = context.Pipe(duplex=False)
    assert clock.limit_s is not None
    elapsed = clock.limit_s - remaining
    process = context.Process(
        target=_milp_child, args=(sender, problem, clock.limit_s, elapsed, rel_gap), daemon=True
    )
    process.start()
    sender.close()
    message: tuple[str, object] | None = None
    died = False  # the child ended without an answer (killed from outside, out of memory)
    try:
        while (wait := clock.remaining() + KILL_GRACE_S) > 0:
            if receiver.poll(min(wait, _POLL_S)):  # a long limit waits in slices of _POLL_S
                try:
                    message = receiver.recv()
                except EOFError:
                    died = True
                break
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        receiver.close()
    if died:
        return _Outcome(
            "unsolved", None, f"HiGHS's process ended with exit code {process.exitcode} and no answer"
        )
    if message is None:
        return _Outcome(
            "unsolved",
            None,
            f"{clock.reached()}; HiGHS did not stop at it (on a {problem.n:,}×{problem.m} problem it can "
            "spend long in presolve and the root LP, where it does not check the limit) and was stopped "
            "with no placement found; a longer --time-limit gives it more time",
        )
    kind, payload = message
    if kind == "error":
        raise RuntimeError(f"HiGHS failed in its process: {payload}")
    assert isinstance(payload, _Outcome)
    return payload


def _milp_child(
    sender: Connection, problem: _MilpProblem, limit_s: float, elapsed_s: float, rel_gap: float = 0.0
) -> None:
    """Child process: solve within what is left of ``limit_s`` after ``elapsed_s``, and send ("ok",
    outcome) or ("error", text). Ctrl-C is the parent's to handle. HiGHS's own prints (it writes
    lines such as "HighsMipSolverData::transformNewIntegerFeasibleSolution" to stdout from C) go
    nowhere: the answer travels through ``sender``, and a progress bar in the parent stays clean."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with open(os.devnull, "w", encoding="utf-8") as quiet:
        os.dup2(quiet.fileno(), 1)
    try:
        sender.send(("ok", _solve_milp(problem, _Clock(time.perf_counter() - elapsed_s, limit_s), rel_gap)))
    except BaseException as error:  # noqa: BLE001 - reported to the parent, which raises it
        sender.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        sender.close()


def _process_context() -> ForkContext | SpawnContext:
    """``fork`` where the platform has it (no re-import, the arrays are shared), else ``spawn``."""
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


# ---- heuristics ------------------------------------------------------------------------
@dataclass(frozen=True)
class Repair:
    """What :func:`repair_overloads` did: the repaired placement (None when it gave up), its moves."""

    assignment: NDArray[np.int64] | None
    moves: int
    reason: str | None = None  # why it gave up (None when the placement is repaired)


def repair_overloads(
    model: PlacementModel,
    assignment: NDArray[np.int64],
    expired: Callable[[], bool] | None = None,
) -> Repair:
    """Greedy's repair step, shared with the feasible decoding (:mod:`qdt.problem.decoding`).

    ``assignment`` (a server per user, every user on a server that meets its deadline) is
    changed in place: while a server exceeds its user cap or its capacity, the user whose move
    to a server with room (cap, capacity and deadline all met, not itself overloaded) costs the
    least extra latency is moved there. It gives up when no such move exists, after N·M + 1
    moves, or when ``expired()`` says the caller's time is up (checked before every move).
    """
    n, m = model.n_users, model.n_servers
    latency, rate = model.latency, model.compute_rate
    counts = np.bincount(assignment, minlength=m).astype(np.int64)
    load = np.bincount(assignment, weights=rate[np.arange(n), assignment], minlength=m)
    limit = model.capacity * (1 + RELATIVE_TOLERANCE)
    for step in range(n * m + 1):
        overloaded = (counts > model.max_users) | (load > limit)
        if not overloaded.any():
            return Repair(assignment, step)
        movers = np.flatnonzero(overloaded[assignment])
        if expired is not None and expired():
            return Repair(None, step, f"{movers.size:,} users still on overloaded servers")
        # Extra latency of moving user i (on an overloaded server) to server k.
        extra = latency[movers] - latency[movers, assignment[movers]][:, None]
        room = (counts[None, :] + 1 <= model.max_users[None, :]) & (
            load[None, :] + rate[movers] <= limit[None, :]
        )
        allowed = room & model.deadline_ok[movers] & ~overloaded[None, :]
        if not allowed.any():
            return Repair(
                None, step, "the repair found no move: no user of an overloaded server fits elsewhere"
            )
        extra = np.where(allowed, extra, np.inf)
        row, k = np.unravel_index(int(np.argmin(extra)), extra.shape)
        i = int(movers[row])
        j = int(assignment[i])
        counts[j] -= 1
        load[j] -= rate[i, j]
        counts[k] += 1
        load[k] += rate[i, k]
        assignment[i] = k
    return Repair(None, n * m + 1, f"the repair made its {n * m + 1:,} moves (N·M + 1) without ending")


def _greedy(model: PlacementModel, clock: _Clock) -> _Outcome:
    if not model.deadline_ok.any(axis=1).all():
        return _Outcome("infeasible", None)
    assignment = model.latency.argmin(axis=1)  # the fastest server meets the deadline if any does
    repaired = repair_overloads(model, assignment, clock.expired)
    if repaired.assignment is not None:
        return _Outcome("feasible", repaired.assignment)
    if clock.expired():
        return _Outcome(
            "unsolved",
            None,
            f"{clock.reached()} after {repaired.moves:,} repair moves, with {repaired.reason}",
        )
    return _Outcome("unsolved", None, repaired.reason)


def _random_feasible(
    model: PlacementModel,
    rng: np.random.Generator,
    clock: _Clock,
    max_draws: int = 200_000,
    batch: int = 8_192,
) -> _Outcome:
    if not model.deadline_ok.any(axis=1).all():
        return _Outcome("infeasible", None)
    batch = max(1, min(batch, _RANDOM_BATCH_ELEMENTS // model.n_users))
    drawn = 0
    while drawn < max_draws:
        if clock.expired():
            return _Outcome(
                "unsolved", None, f"{clock.reached()} after {drawn:,} random draws, none feasible"
            )
        size = min(batch, max_draws - drawn)
        assignments = rng.integers(0, model.n_servers, size=(size, model.n_users))
        feasible = np.flatnonzero(_feasible_assignments(model, assignments))
        if feasible.size:
            return _Outcome("feasible", assignments[feasible[0]])
        drawn += size
    return _Outcome("unsolved", None, f"none of {max_draws:,} random draws was feasible")
