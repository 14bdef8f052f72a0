"""Decodings: the agents' scores â ∈ [0, 1]^{N×M} (agent j scores column j) → a placement X.

* ``round``: x_ij = [â_ij > 0.5], the paper's reading. A user can end up on no server or on two.
* ``argmax``: every user on the server that scores it highest (ties to the lowest index), so
  constraint (22) always holds; the others (23, 24, 26) may break.
* ``feasible``: a placement that meets every constraint (22–26) by construction, when the
  scores lead to one. One pass over the users, with no search of its own:

  1. a user's *allowed* servers are those that meet its deadline (26);
  2. users are taken in order of the scores' confidence, the margin between a user's best and
     second-best allowed score (a user with one allowed server first; ties by user index);
  3. each user goes to its best-scored allowed server that still has room: a free user slot
     (23) and the capacity for its twin (24);
  4. a user for which no allowed server has room goes to its best-scored allowed server anyway,
     and once every user is placed, greedy's repair (:func:`qdt.problem.solvers.repair_overloads`,
     the one copy) moves users off overloaded servers, each time the move with the least extra
     latency to a server with room.

  The learned scores do the work: with scores that single out a feasible placement (1 on its
  servers, 0 elsewhere) the decoding returns exactly that placement, the optimum included
  (``tests/test_decoding.py``). It reports ``feasible = False``, naming the violated
  constraints, when some user meets its deadline nowhere (no feasible placement exists), or
  when the repair finds no move.

  **How often it misses a feasible placement** (reports infeasible although one exists),
  measured by enumeration on every generated instance with a feasible placement, 2 ≤ N ≤ 6
  users, 2 ≤ M ≤ 3 servers, seeds 0–39, with 20 draws of uniform random scores each: 29 of
  7,800 draws (0.4%) on default instances, 343 of 7,060 (4.9%) on tight ones
  (``qdt/problem/generator.py``); ``tests/test_decoding.py`` repeats it on seeds 0–7 and asserts
  :data:`MISS_RATE_BOUND`. Fed greedy's preferences (−T_ij as scores) it reports infeasible on 2
  of those 390 default instances and 28 of the 353 tight ones, where greedy-with-repair itself
  finds nothing; fed scores that single out the optimum, never.

The decodings are deterministic; exploration perturbs the scores before they are decoded.

**Where a rollout starts** (:func:`start_placement`, ``TrainConfig.start``): the actors decide
step after step from a start placement, ``empty`` (nothing placed, the paper's) or ``greedy``:
greedy-with-repair's placement of the instance (0.45 ms at 32 × 8), which the actors then
improve, or, when greedy finds none, every user on its fastest server.

**Which placement a search keeps** (:func:`best_placement`): the feasible one of least total
latency among its candidates: a rollout's visited placements (``qdt/rl/rollout.py``) or sampled
constructions (``qdt/rl/construct.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qdt.errors import QdtInputError
from qdt.problem.model import CONSTRAINTS, RELATIVE_TOLERANCE, PlacementModel
from qdt.problem.solvers import repair_overloads, solve

DECODINGS: tuple[str, ...] = ("round", "argmax", "feasible", "construct")
"""``construct`` is not a function of scores: it calls the actor after every user it places
(``qdt/rl/construct.py``); :func:`decode` refuses it."""

STARTS: tuple[str, ...] = ("empty", "greedy")
"""Where a rollout starts (module docstring): :func:`start_placement`'s ``start``."""

MISS_RATE_BOUND = 0.08
"""Most share of random-score draws on which ``feasible`` reports infeasible although a feasible
placement exists, on the small instances of the module docstring (measured: 0.4% default, 4.9%
tight)."""


def check_decoding(name: object, field_name: str = "--decode") -> str:
    """``name`` if it is a decoding qdt knows, else a QdtInputError listing them."""
    if name not in DECODINGS:
        raise QdtInputError(
            field_name,
            f"one of {', '.join(DECODINGS)}",
            name,
            "feasible meets every constraint by construction; see qdt/problem/decoding.py",
        )
    return str(name)


@dataclass(frozen=True)
class Decoded:
    """A decoded placement and what it breaks: ``violations`` maps each constraint of
    :data:`qdt.problem.model.CONSTRAINTS` to the users or servers that break it (all empty when
    ``feasible``); ``repair_moves`` counts the repair's moves (``feasible`` decoding only)."""

    placement: NDArray[np.int8]
    feasible: bool
    violations: dict[str, list[int]] = field(default_factory=dict)
    repair_moves: int = 0

    @property
    def violated(self) -> list[str]:
        """Names of the violated constraints, e.g. ``["capacity", "deadline"]``."""
        return [name for name, where in self.violations.items() if where]


def decode_round(scores: ArrayLike) -> NDArray[np.int8]:
    """x_ij = [â_ij > 0.5] for scores [..., N, M]."""
    return (np.asarray(scores) > 0.5).astype(np.int8)


def decode_argmax(scores: ArrayLike) -> NDArray[np.int8]:
    """Each user (row) to the server (column) with the highest score; ties to the lowest index."""
    values = np.asarray(scores)
    placement = np.zeros(values.shape, dtype=np.int8)
    np.put_along_axis(placement, np.argmax(values, axis=-1)[..., None], 1, axis=-1)
    return placement


def decode(name: str, scores: ArrayLike, model: PlacementModel | None = None) -> NDArray[np.int8]:
    """The placement [N, M] (or a batch [..., N, M]) the decoding ``name`` makes of ``scores``.

    ``feasible`` needs the instance's ``model``; see :func:`decode_feasible` for its report.
    """
    check_decoding(name, "decode")
    if name == "round":
        return decode_round(scores)
    if name == "argmax":
        return decode_argmax(scores)
    if name == "construct":
        raise QdtInputError(
            "decode",
            "a decoding of scores (round, argmax or feasible)",
            name,
            "the construct decoding calls the actor after every user it places: qdt/rl/construct.py",
        )
    if model is None:
        raise QdtInputError("model", "the instance's PlacementModel for the feasible decoding", None)
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim == 2:
        return decode_feasible(model, values).placement
    flat = values.reshape(-1, *values.shape[-2:])
    out = np.stack([decode_feasible(model, row).placement for row in flat])
    return out.reshape(values.shape).astype(np.int8)


def decode_feasible(model: PlacementModel, scores: ArrayLike) -> Decoded:
    """The ``feasible`` decoding of scores [N, M] (module docstring), with its report."""
    n, m = model.n_users, model.n_servers
    values = np.asarray(scores, dtype=np.float64)
    if values.shape != (n, m) or not np.all(np.isfinite(values)):
        raise QdtInputError("scores", f"a finite {n}×{m} array (user × server)", f"shape {values.shape}")
    allowed = model.deadline_ok
    if not allowed.any(axis=1).all():  # no feasible placement exists: report the argmax placement
        return _report(model, decode_argmax(values), 0)
    masked = np.where(allowed, values, -np.inf)
    preference = np.argsort(-masked, axis=1, kind="stable")  # allowed servers first, best first
    best = masked[np.arange(n), preference[:, 0]]
    second = masked[np.arange(n), preference[:, 1]] if m > 1 else np.full(n, -np.inf)
    margin = np.where(np.isfinite(second), best - second, np.inf)
    order = np.argsort(-margin, kind="stable")

    slots = [int(k) for k in model.max_users]
    room = (model.capacity * (1 + RELATIVE_TOLERANCE)).tolist()
    rate = model.compute_rate.tolist()
    allowed_rows = allowed.tolist()
    preference_rows = preference.tolist()
    assignment = np.empty(n, dtype=np.int64)
    overloaded = False
    for i in order.tolist():
        choice = -1
        for j in preference_rows[i]:
            if not allowed_rows[i][j]:
                break  # the rest are not allowed either
            if slots[j] >= 1 and rate[i][j] <= room[j]:
                choice = j
                break
        if choice < 0:  # nowhere with room: its best allowed server, for the repair to resolve
            choice = preference_rows[i][0]
            overloaded = True
        assignment[i] = choice
        slots[choice] -= 1
        room[choice] -= rate[i][choice]
    moves = 0
    if overloaded:
        repaired = repair_overloads(model, assignment)
        moves = repaired.moves
        if repaired.assignment is None:
            return _report(model, _matrix(assignment, m), moves)
    return Decoded(_matrix(assignment, m), True, {name: [] for name in CONSTRAINTS}, moves)


def _matrix(assignment: NDArray[np.int64], m: int) -> NDArray[np.int8]:
    placement = np.zeros((assignment.size, m), dtype=np.int8)
    placement[np.arange(assignment.size), assignment] = 1
    return placement


def _report(model: PlacementModel, placement: NDArray[np.int8], moves: int) -> Decoded:
    evaluation = model.evaluate(placement)
    return Decoded(placement, evaluation.feasible, evaluation.violations, moves)


def start_placement(model: PlacementModel, start: str) -> NDArray[np.int8]:
    """The placement [N, M] a rollout on ``model``'s instance starts from (module docstring):
    ``empty``, or ``greedy`` (greedy-with-repair's, else every user on its fastest server)."""
    if start not in STARTS:
        raise QdtInputError("start", f"one of {', '.join(STARTS)}", start)
    if start == "empty":
        return np.zeros((model.n_users, model.n_servers), dtype=np.int8)
    greedy = solve(model, "greedy")
    fastest = np.asarray(model.latency).argmin(axis=1)
    assignment = fastest if greedy.assignment is None else np.asarray(greedy.assignment, dtype=np.int64)
    return _matrix(assignment, model.n_servers)


def best_placement(model: PlacementModel, placements: np.ndarray) -> NDArray[np.int8]:
    """The feasible placement of least total latency among ``placements`` [K, N, M], the first of
    equals (the first one when none is feasible: its evaluation then names what it breaks)."""
    feasible = model.feasible_batch(placements)
    if not bool(feasible.any()):
        return placements[0]
    latency = (placements * model.latency).sum(axis=(1, 2))
    return placements[int(np.argmin(np.where(feasible, latency, np.inf)))]
