"""The local search (qdt/problem/local_search.py): it keeps feasibility, never makes a placement
worse, leaves an infeasible one alone, and ends where no single move or swap improves, checked by
enumerating every move and swap with the model's own evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from qdt.errors import QdtInputError
from qdt.problem.decoding import decode_feasible
from qdt.problem.family import Family
from qdt.problem.local_search import LEAST_IMPROVEMENT, improve_placements
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import _Clock, _enumerate, solve


def _models(users: int, servers: int, count: int, tight: bool) -> list[PlacementModel]:
    family = Family(users, servers, tight=tight, seed=11)
    return [PlacementModel(family.held_out(0, k)) for k in range(count)]


def _latency(model: PlacementModel, x: np.ndarray) -> float:
    return float((x * model.latency).sum())


def _neighbours(model: PlacementModel, x: np.ndarray) -> np.ndarray:
    """Every placement one move or one swap away from ``x`` [N, M], as a batch [K, N, M]."""
    servers = x.argmax(axis=1)
    eye = np.eye(model.n_servers, dtype=np.int8)
    out = []
    for i in range(model.n_users):
        for k in range(model.n_servers):
            if k != servers[i]:
                moved = servers.copy()
                moved[i] = k
                out.append(eye[moved])
        for other in range(i + 1, model.n_users):
            if servers[other] != servers[i]:
                swapped = servers.copy()
                swapped[i], swapped[other] = servers[other], servers[i]
                out.append(eye[swapped])
    return np.stack(out)


def _starts(model: PlacementModel, rng: np.random.Generator) -> list[np.ndarray]:
    """Feasible placements to start from: the feasible decoding of random scores and greedy's."""
    starts = [
        decode_feasible(model, rng.random((model.n_users, model.n_servers))).placement for _ in range(4)
    ]
    greedy = solve(model, "greedy")
    if greedy.assignment is not None:
        starts.append(model.assignment_to_matrix(greedy.assignment))
    return [x for x in starts if model.evaluate(x).feasible]


@pytest.mark.parametrize(
    "shape, tight", [((6, 3), False), ((12, 4), False), ((12, 4), True), ((20, 5), True)]
)
def test_a_local_search_ends_feasible_no_worse_and_where_no_move_or_swap_improves(shape, tight):
    rng = np.random.default_rng(5)
    searched = 0
    for model in _models(*shape, 4, tight):
        for start in _starts(model, rng):
            found = improve_placements(model, start)
            assert found.shape == start.shape and found.dtype == np.int8
            assert model.evaluate(found).feasible
            assert _latency(model, found) <= _latency(model, start) + 1e-12
            neighbours = _neighbours(model, found)
            feasible = model.feasible_batch(neighbours)
            better = (neighbours * model.latency).sum(axis=(1, 2)) < _latency(
                model, found
            ) - LEAST_IMPROVEMENT
            assert not np.any(feasible & better), "a move or swap still improves the searched placement"
            searched += 1
    assert searched >= 8


def test_a_batch_is_searched_row_by_row_and_an_infeasible_placement_is_left_alone():
    model = _models(12, 4, 1, tight=True)[0]
    rng = np.random.default_rng(2)
    starts = _starts(model, rng)
    assert len(starts) >= 2
    broken = np.zeros_like(starts[0])
    broken[:, 0] = 1  # every user on server 0: over its cap
    assert not model.evaluate(broken).feasible
    batch = np.stack([starts[0], broken, starts[1]])
    found = improve_placements(model, batch)
    assert np.array_equal(found[1], broken)
    for row, start in ((0, starts[0]), (2, starts[1])):
        assert np.array_equal(found[row], improve_placements(model, start))
    assert np.array_equal(batch[1], broken)  # the input is not changed in place


def test_a_search_from_the_enumerated_optimum_stays_there():
    checked = 0
    for model in _models(8, 2, 6, tight=True) + _models(6, 3, 4, tight=False):
        everything = _enumerate(model, _Clock(0.0, None))
        if everything.status != "optimal":
            continue
        optimum = model.assignment_to_matrix(everything.assignment)
        assert np.array_equal(improve_placements(model, optimum), optimum)
        checked += 1
    assert checked >= 5


def test_a_placement_of_another_shape_is_refused():
    model = _models(6, 3, 1, tight=False)[0]
    with pytest.raises(QdtInputError, match="6×3"):
        improve_placements(model, np.zeros((5, 3), dtype=np.int8))
