"""Decodings of the agents' scores (qdt/problem/decoding.py): the feasible one meets every
constraint or says which it breaks, reaches any feasible placement the scores single out, and
misses a feasible placement rarely (measured by enumeration, bound asserted)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qdt.errors import QdtInputError
from qdt.problem.decoding import (
    DECODINGS,
    MISS_RATE_BOUND,
    check_decoding,
    decode,
    decode_argmax,
    decode_feasible,
)
from qdt.problem.generator import GeneratorConfig, generate_instance, paper_instance, tight_config
from qdt.problem.model import CONSTRAINTS, PlacementModel
from qdt.problem.solvers import solve
from qdt.rl.config import DECODES


def _model(users: int, servers: int, seed: int, tight: bool) -> PlacementModel:
    config = tight_config(users, servers) if tight else GeneratorConfig(users=users, servers=servers)
    return PlacementModel(generate_instance(config, seed))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    users=st.integers(1, 9),
    servers=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    tight=st.booleans(),
    scores_seed=st.integers(0, 2**32 - 1),
    ties=st.booleans(),
)
def test_every_placement_meets_every_constraint_or_names_what_it_breaks(
    users, servers, seed, tight, scores_seed, ties
):
    model = _model(users, servers, seed, tight)
    rng = np.random.default_rng(scores_seed)
    scores = rng.random((users, servers))
    if ties:
        scores = np.round(scores)  # many equal scores: the order falls back to indices
    decoded = decode_feasible(model, scores)
    evaluation = model.evaluate(decoded.placement)
    assert (decoded.placement.sum(axis=1) == 1).all()  # (22) holds by construction
    assert set(decoded.violations) == set(CONSTRAINTS)
    if decoded.feasible:
        assert evaluation.feasible and not decoded.violated
    else:
        assert not evaluation.feasible
        assert decoded.violations == evaluation.violations and decoded.violated
        assert set(decoded.violated) <= {"max_users", "capacity", "deadline"}
    assert np.array_equal(decode("feasible", scores, model), decoded.placement)


def test_scores_that_single_out_the_optimum_decode_to_it():
    found = 0
    for users, servers in ((4, 2), (5, 3), (6, 2), (8, 3)):
        for seed in range(15):
            for tight in (False, True):
                model = _model(users, servers, seed, tight)
                optimum = solve(model, "auto")
                if optimum.status != "optimal":
                    continue
                one_hot = np.zeros((users, servers))
                one_hot[np.arange(users), optimum.assignment] = 1.0
                decoded = decode_feasible(model, one_hot)
                assert decoded.feasible and decoded.placement.argmax(axis=1).tolist() == optimum.assignment
                found += 1
    assert found > 80


def test_a_user_with_no_server_meeting_its_deadline_is_reported():
    model = _model(4, 2, 106, False)
    model.deadline_ok[2] = False  # user 2 now meets its deadline nowhere: no feasible placement
    decoded = decode_feasible(model, np.full((4, 2), 0.5))
    assert not decoded.feasible and 2 in decoded.violations["deadline"] and "deadline" in decoded.violated


def test_how_often_it_misses_a_feasible_placement_is_within_the_stated_bound():
    """The measurement of the module docstring, on a fifth of its instances (enumeration)."""
    rng = np.random.default_rng(0)
    rates = {}
    for tight in (False, True):
        draws = misses = 0
        for users in range(2, 7):
            for servers in (2, 3):
                for seed in range(8):
                    model = _model(users, servers, seed, tight)
                    if solve(model, "enumerate").status != "optimal":
                        continue
                    for _ in range(20):
                        draws += 1
                        misses += not decode_feasible(model, rng.random((users, servers))).feasible
        rates[tight] = misses / draws
    assert rates[False] <= MISS_RATE_BOUND and rates[True] <= MISS_RATE_BOUND, rates


def test_argmax_round_and_names():
    scores = np.array([[0.2, 0.9], [0.7, 0.7], [0.6, 0.1]])
    assert decode_argmax(scores).tolist() == [[0, 1], [1, 0], [1, 0]]  # a tie goes to server 0
    assert decode("round", scores).tolist() == [[0, 1], [1, 1], [1, 0]]
    assert decode_argmax(np.stack([scores, scores[::-1]])).shape == (2, 3, 2)
    assert DECODES == DECODINGS  # TrainConfig's choices are the decodings that exist
    with pytest.raises(QdtInputError, match="--decode: expected one of round, argmax, feasible"):
        check_decoding("nearest")
    with pytest.raises(QdtInputError, match="model"):
        decode("feasible", scores)
    with pytest.raises(QdtInputError, match="scores"):
        decode_feasible(_model(3, 2, 0, False), np.full((3, 2), np.nan))


def test_start_placements():
    """empty: nothing placed; greedy: greedy-with-repair's placement, else every user on its fastest
    server; another name is refused."""
    from qdt.problem.decoding import start_placement

    model = PlacementModel(paper_instance())
    assert not start_placement(model, "empty").any()
    greedy = solve(model, "greedy")
    placed = start_placement(model, "greedy")
    assert placed.dtype == np.int8 and placed.argmax(axis=1).tolist() == list(greedy.assignment)
    misses = 0
    for seed in range(40):
        tight = PlacementModel(generate_instance(tight_config(6, 2), seed=seed))
        placed = start_placement(tight, "greedy")
        assert (placed.sum(axis=1) == 1).all()
        if solve(tight, "greedy").assignment is None:
            misses += 1
            assert placed.argmax(axis=1).tolist() == tight.latency.argmin(axis=1).tolist()
    assert misses  # the fallback is exercised
    with pytest.raises(QdtInputError, match="start"):
        start_placement(model, "optimum")
