"""The ``construct`` decoding (qdt/rl/construct.py): what its actor reads of a partial placement,
that scores singling out the optimum construct exactly the optimum, the MILP completions its
imitation labels come from (checked against enumeration), that its update learns, that a run
resumes bit-identically, the settings it refuses, and ``qdt place`` with a constructing run on
every executor kind (statevector exactly, aer with shots, a fake IBM device in local testing mode)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from helpers import SMALL_CONSTRUCT
from qdt.cli.main import main
from qdt.cli.problem import load_instance_file
from qdt.errors import QdtInputError
from qdt.problem.family import Family
from qdt.problem.local_search import improve_placements
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import _Clock, _enumerate, solve, solve_completion
from qdt.rl.checkpoint import load_checkpoint
from qdt.rl.config import TrainConfig
from qdt.rl.construct import (
    NO_LOGIT,
    Completions,
    construct,
    construct_imitation_update,
    construction_logits,
    finish_placement,
    label_optima,
    smoothed_cross_entropy,
)
from qdt.rl.observations import context_of, observation_width
from qdt.rl.placement_observation import placement_inputs
from qdt.rl.policy import load_policy
from qdt.rl.share_completion import ShareRule, smallest_share_completion
from qdt.rl.train import Trainer, family_instance, train

SMALL = SMALL_CONSTRUCT


def _models(users: int, servers: int, count: int, tight: bool = True) -> list[PlacementModel]:
    family = Family(users, servers, tight=tight, seed=7)
    return [PlacementModel(family.held_out(0, k)) for k in range(count)]


def _solved(models: list[PlacementModel]) -> list[tuple[PlacementModel, np.ndarray]]:
    out = []
    for model in models:
        result = solve(model, "milp")
        if result.status == "optimal":
            out.append((model, np.asarray(result.assignment)))
    return out


def test_the_actor_reads_the_partial_placement_of_every_server():
    model = _models(5, 3, 1)[0]
    context = context_of([model])
    assignment = torch.tensor([[0, -1, 2, -1, -1]])
    inputs, fits, unplaced = placement_inputs(context, assignment)
    n, m = 5, 3
    assert inputs.shape == (1, n, m, observation_width("placement", n, m, True)) == (1, 5, 3, 22)
    assert unplaced.tolist() == [[False, True, False, True, True]]
    assert not fits[0, 0].any() and not fits[0, 2].any()  # placed users fit nowhere
    share = model.compute_rate / model.capacity[None, :]
    remaining = 1.0 - np.array([share[0, 0], 0.0, share[2, 2]])
    slots = 1.0 - np.array([1, 0, 1]) / model.max_users
    expected = (
        model.deadline_ok
        & (share <= remaining[None, :] + 1e-9)
        & (slots[None, :] >= 1 / model.max_users - 1e-9)
    )
    expected[[0, 2]] = False
    assert np.array_equal(fits[0].numpy(), expected)
    # row (i, j) lists the servers from j on: its first latency value is L_ij, its capacity block
    # starts with server j's remaining capacity
    latency = context.latency[0].numpy()
    for j in range(m):
        assert np.allclose(inputs[0, :, j, 0].numpy(), latency[:, j])
        assert np.allclose(inputs[0, :, j, 3 * m].numpy(), remaining[j])
    assert np.allclose(inputs[0, :, :, -1].numpy(), 3 / 5)  # share of users unplaced


@pytest.mark.parametrize("order", ["sure", "constrained"])
@pytest.mark.parametrize("shape", [(8, 2), (16, 4)])
def test_scores_singling_out_the_optimum_construct_exactly_the_optimum(shape, order):
    """Every user's best server among those it still fits on is its optimal one (the partial
    placement is part of the optimum), so the construction returns the optimum in either order, on
    tight instances where greedy-with-repair mostly fails."""
    for model, optimum in _solved(_models(*shape, 6)):
        context = context_of([model])
        logits = torch.nn.functional.one_hot(torch.as_tensor(optimum), shape[1]).to(torch.float64)[None] * 5.0
        assignment, stuck = construct(lambda _inputs, _unplaced, z=logits: z, context, order=order)
        assert not bool(stuck[0])
        assert np.array_equal(assignment[0].numpy(), optimum)


def test_the_constrained_order_places_a_user_with_the_fewest_fitting_servers_next():
    """At every step of a ``constrained`` construction the user placed had no more servers left
    that fit it than any other unplaced user that fits somewhere; the ``sure`` order, fed the same
    logits, breaks this on some step (so the check can fail)."""
    models = _models(16, 4, 6)
    context = context_of(models)
    logits = torch.rand((len(models), 16, 4), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    broken = {}
    for order in ("constrained", "sure"):
        trace: list[torch.Tensor] = []
        final, _ = construct(lambda _inputs, _unplaced: logits, context, trace, order=order)
        after = [*trace[1:], final]
        broken[order] = 0
        for before, now in zip(trace, after):
            _, fits, _ = placement_inputs(context, before)
            counts = fits.sum(dim=2)
            for k in range(len(models)):
                user = int(torch.nonzero(now[k] != before[k])[0, 0])
                fitting = counts[k][counts[k] > 0]
                if len(fitting) and counts[k, user] > fitting.min():
                    broken[order] += 1
    assert broken["constrained"] == 0 and broken["sure"] > 0


def test_a_smallest_share_completion_keeps_the_partial_placement_and_fits_when_it_says_so():
    """Every completion keeps the users already placed where they are, and one reported to fit is
    feasible; on tight 8 × 2 draws, checked by enumeration, it fits some partial placements and
    finds some without a feasible completion (so both answers are exercised), and it never
    reports a fit where enumeration finds no feasible completion."""
    models = _models(8, 2, 12)
    context = context_of(models)
    generator = torch.Generator().manual_seed(11)
    partial = torch.randint(0, 2, (len(models), 8), generator=generator)
    partial[torch.rand((len(models), 8), generator=generator) < 0.6] = -1
    completed, fits = smallest_share_completion(context, partial)
    outcomes = set()
    for k, model in enumerate(models):
        kept = partial[k] >= 0
        assert torch.equal(completed[k][kept], partial[k][kept])
        exists = solve_completion(model, partial[k].numpy()) is not None
        if bool(fits[k]):
            assert model.evaluate(np.eye(2, dtype=np.int8)[completed[k].numpy()]).feasible and exists
        outcomes.add((bool(fits[k]), exists))
    assert (True, True) in outcomes and (False, False) in outcomes


def _smallest_share_rule(model: PlacementModel, partial: np.ndarray) -> tuple[np.ndarray, bool]:
    """The completion rule user by user in plain Python (the reference): among the unplaced users
    that still fit somewhere, the one whose softmax of −c_ij / C_j over the servers it fits on has
    the largest top value goes to its smallest-share server; no user left without room."""
    share = model.compute_rate / model.capacity[None, :]
    servers = partial.copy()
    room = 1.0 - np.array([share[servers == j, j].sum() for j in range(model.n_servers)])
    users = np.array([(servers == j).sum() for j in range(model.n_servers)])
    fits_all = bool(
        (room >= -1e-9).all()
        and (users <= model.max_users).all()
        and all(model.deadline_ok[i, servers[i]] for i in np.flatnonzero(servers >= 0))
    )
    while fits_all and (servers < 0).any():
        best, best_sure = None, -1.0
        for i in np.flatnonzero(servers < 0):
            fit = [
                j
                for j in range(model.n_servers)
                if model.deadline_ok[i, j] and share[i, j] <= room[j] + 1e-9 and users[j] < model.max_users[j]
            ]
            if not fit:
                return servers, False
            sure = 1.0 / np.exp(share[i, fit].min() - share[i, fit]).sum()
            if sure > best_sure:
                best, best_sure = (i, fit[int(np.argmin(share[i, fit]))]), sure
        assert best is not None
        i, j = best
        servers[i] = j
        room[j] -= share[i, j]
        users[j] += 1
    return servers, fits_all


def test_the_smallest_share_completion_follows_its_rule_user_by_user():
    """The batched completion places every user where the rule, applied one user at a time in plain
    Python, places it, from random partial placements of tight and default draws (some of which
    have no room left for a user, so both outcomes are compared)."""
    generator = np.random.default_rng(4)
    compared = {True: 0, False: 0}
    for users, servers, tight in ((8, 2, True), (16, 4, True), (32, 8, True), (64, 8, True), (16, 4, False)):
        models = _models(users, servers, 6, tight)
        for model in models:
            partial = np.full((10, users), -1)
            for row in partial:
                chosen = generator.choice(users, generator.integers(0, users), replace=False)
                share = model.compute_rate[chosen] / model.capacity[None, :]
                row[chosen] = np.where(
                    generator.random(chosen.size) < 0.7,
                    share.argmin(1),
                    generator.integers(0, servers, chosen.size),
                )
            completed, fits = smallest_share_completion(context_of([model] * 10), torch.from_numpy(partial))
            for k in range(10):
                expected, expected_fits = _smallest_share_rule(model, partial[k])
                assert bool(fits[k]) == expected_fits
                if expected_fits:
                    assert completed[k].tolist() == expected.tolist()
                compared[expected_fits] += 1
    assert compared[True] >= 20 and compared[False] >= 20


@pytest.mark.parametrize("order", ["sure", "constrained"])
def test_a_guarded_construction_ends_feasible_whenever_its_first_completion_fits(order):
    """Fed random logits on tight 16 × 4 draws, the unguarded construction leaves some instances
    infeasible (so the check can fail); guarded, every instance whose completion from the empty
    placement fits ends feasible with no user left without room, and the others are reported."""
    models = _models(16, 4, 24)
    context = context_of(models)
    logits = torch.rand((len(models), 16, 4), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    _, first_fits = smallest_share_completion(context, torch.full((len(models), 16), -1))
    feasible = {}
    for guard in ("none", "completion"):
        assignment, stuck = construct(lambda _inputs, _unplaced: logits, context, order=order, guard=guard)
        feasible[guard] = []
        for k, model in enumerate(models):
            placement = finish_placement(model, assignment[k].numpy(), bool(stuck[k]))
            evaluation = model.evaluate(placement)
            assert evaluation.feasible or any(evaluation.violations.values())
            feasible[guard].append(evaluation.feasible)
            if guard == "completion" and bool(first_fits[k]):
                assert evaluation.feasible and not bool(stuck[k])
    assert sum(first_fits.tolist()) >= 20
    assert sum(feasible["none"]) < sum(feasible["completion"])


def test_a_construction_meets_every_deadline_or_reports_what_it_breaks():
    models = _models(8, 2, 8)
    context = context_of(models)
    rng = torch.Generator().manual_seed(3)
    random_logits = torch.rand((len(models), 8, 2), generator=rng, dtype=torch.float64)
    assignment, stuck = construct(lambda _inputs, _unplaced: random_logits, context)
    for k, model in enumerate(models):
        servers = assignment[k].numpy()
        assert model.deadline_ok[np.arange(8), servers].all() or not model.deadline_ok.any(axis=1).all()
        evaluation = model.evaluate(finish_placement(model, servers, bool(stuck[k])))
        assert evaluation.feasible or any(evaluation.violations.values())  # infeasible: named


def test_completions_agree_with_enumeration():
    """solve_completion's optimum equals the best enumerated placement that keeps the placed users."""
    checked = 0
    for model in _models(6, 2, 6):
        everything = _enumerate(model, _Clock(0.0, None))
        if everything.status != "optimal":
            continue
        optimum = np.asarray(everything.assignment)
        rng = np.random.default_rng(checked)
        for _ in range(3):
            partial = np.where(rng.random(6) < 0.5, rng.integers(0, 2, 6), -1)
            found = solve_completion(model, partial)
            grid = np.array(np.meshgrid(*[[0, 1]] * 6, indexing="ij")).reshape(6, -1).T
            keeps = grid[np.all((partial < 0) | (grid == partial), axis=1)]
            matrices = np.eye(2, dtype=np.int8)[keeps]
            feasible = model.feasible_batch(matrices)
            if not feasible.any():
                assert found is None
                continue
            best = (matrices[feasible] * model.latency).sum(axis=(1, 2)).min()
            assert found is not None and np.all(found[partial >= 0] == partial[partial >= 0])
            assert (np.eye(2)[found] * model.latency).sum() == pytest.approx(best, rel=1e-9)
        unconstrained = solve_completion(model, np.full(6, -1))
        assert unconstrained is not None
        assert (np.eye(2)[unconstrained] * model.latency).sum() == pytest.approx(
            (np.eye(2)[optimum] * model.latency).sum(), rel=1e-9
        )
        checked += 1
    assert checked >= 3
    with pytest.raises(QdtInputError, match="partial"):
        solve_completion(_models(6, 2, 1)[0], np.array([0, 1, 2, -1, -1, -1]))


def test_completions_within_a_label_gap_keep_the_placed_users_and_stay_within_it():
    """With a relative gap, a completion keeps the placed users and is within that share of the best
    enumerated one; label_optima labels every user of an instance with a placement, none without."""
    gap, checked = 0.05, 0
    rng = np.random.default_rng(2)
    for model in _models(8, 2, 6):
        matrices = np.stack([np.eye(2, dtype=np.int8)[list(bits)] for bits in np.ndindex(*(2,) * 8)])
        feasible = model.feasible_batch(matrices)
        for partial in (np.full(8, -1), np.where(rng.random(8) < 0.4, rng.integers(0, 2, 8), -1)):
            keeps = np.all((partial < 0) | (matrices.argmax(axis=2) == partial), axis=1)
            found = solve_completion(model, partial, 20.0, rel_gap=gap)
            if not (feasible & keeps).any():
                assert found is None
                continue
            best = (matrices[feasible & keeps] * model.latency).sum(axis=(1, 2)).min()
            assert found is not None and np.all(found[partial >= 0] == partial[partial >= 0])
            assert model.evaluate(np.eye(2, dtype=np.int8)[found]).feasible
            assert (np.eye(2)[found] * model.latency).sum() <= best * (1 + gap) + 1e-9
            checked += 1
    assert checked >= 6
    models = _models(8, 2, 6)
    labels = label_optima(models, 20.0, gap)
    for model, row in zip(models, labels):
        assert (row >= 0).all() == (solve(model, "milp").assignment is not None)
    with pytest.raises(QdtInputError, match="rel_gap"):
        solve_completion(models[0], np.full(8, -1), rel_gap=1.5)


def test_the_last_completable_state_is_found_by_bisection():
    """Bisection finds the same state as a scan along a construction from random logits."""
    for model in _models(8, 2, 6):
        context = context_of([model])
        trace: list[torch.Tensor] = []
        logits = torch.rand((1, 8, 2), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        construct(lambda _inputs, _unplaced, z=logits: z, context, trace)
        path = [step[0].numpy() for step in trace]
        scan = [k for k, state in enumerate(path) if solve_completion(model, state) is not None]
        assert Completions(model, path, 20.0).last_completable() == (scan[-1] if scan else None)
        assert scan == list(range(len(scan)))  # once without a completion, never again


def test_a_construction_that_ends_feasible_is_completable_all_along_without_a_solve(monkeypatch):
    """Given its feasible final placement, a construction's last completable state is its last one,
    and no MILP is solved to find it; a final placement that is infeasible, or that does not extend
    the path, changes nothing: the bisection runs and agrees with the scan."""
    solved = _solved(_models(8, 2, 6))
    model, optimum = solved[0]
    order = np.random.default_rng(2).permutation(8)
    path = []
    for k in range(8):  # the optimum's users placed one by one in a random order
        state = np.full(8, -1, dtype=np.int64)
        state[order[:k]] = optimum[order[:k]]
        path.append(state)
    calls: list[int] = []
    real = Completions.of
    monkeypatch.setattr(Completions, "of", lambda self, step: calls.append(step) or real(self, step))
    assert Completions(model, path, 20.0, final=optimum).last_completable() == 7 and calls == []
    other = optimum.copy()
    other[order[0]] = 1 - other[order[0]]  # disagrees with the path from its second state on
    for final in (None, other):
        calls.clear()
        assert Completions(model, path, 20.0, final=final).last_completable() == 7 and calls
    stuffed = np.zeros(8, dtype=np.int64)  # every user on server 0: infeasible on the tight family
    assert not model.feasible_batch(model.assignment_to_matrix(stuffed)[None])[0]
    prefix = [np.where(step >= 0, 0, -1) for step in path]
    scan = [k for k, state in enumerate(prefix) if solve_completion(model, state) is not None]
    calls.clear()
    assert Completions(model, prefix, 20.0, final=stuffed).last_completable() == (scan[-1] if scan else None)
    assert calls


def test_the_imitation_update_learns_the_labels():
    config = TrainConfig(**{**SMALL, "lr_actor": 1e-2})
    trainer = Trainer(config, family_instance(config))
    solved = _solved(_models(6, 2, 8))
    models = [model for model, _ in solved]
    labels = np.stack([optimum for _, optimum in solved])
    states = np.where(np.random.default_rng(0).random(labels.shape) < 0.3, labels, -1)
    context = context_of(models)
    first = construct_imitation_update(trainer.agents[0], context, states, labels, 1)
    last = construct_imitation_update(trainer.agents[0], context, states, labels, 200)
    assert first is not None and last is not None and last < 0.5 * first
    assert construct_imitation_update(trainer.agents[0], context, labels, labels, 1) is None  # all placed


@pytest.mark.parametrize("agent", ["classical", "quantum"])
def test_the_imitation_update_scores_only_the_taught_users(agent):
    """The update scores only the unplaced users with a label, and its loss and step are those of
    the cross-entropy over every row scored and the taught ones read (to round-off)."""
    config = TrainConfig(**{**SMALL, "agent": agent, "layers": 2, "label_smoothing": 0.1})
    trainer = Trainer(config, family_instance(config))
    solved = _solved(_models(6, 2, 8))
    models = [model for model, _ in solved]
    labels = np.stack([optimum for _, optimum in solved])
    rng = np.random.default_rng(0)
    states = np.where(rng.random(labels.shape) < 0.3, labels, -1)
    labels = np.where(rng.random(labels.shape) < 0.2, -1, labels)  # some unplaced users unlabelled
    context = context_of(models)
    nets = trainer.agents[0]
    before = copy.deepcopy((nets.actor.state_dict(), nets.actor_optimizer.state_dict()))
    assignment, target = torch.as_tensor(states), torch.as_tensor(labels)
    taught = (assignment < 0) & (target >= 0)
    assert 0 < int(taught.sum()) < int((assignment < 0).sum())
    inputs, _, _ = placement_inputs(context, assignment)
    allowed = context.latency > 0
    z = torch.where(
        allowed,
        construction_logits(nets.actor)(inputs.flatten(0, 1), torch.ones_like(taught)),  # every user's rows
        torch.tensor(NO_LOGIT, dtype=torch.float64),
    )
    expected = smoothed_cross_entropy(z[taught], allowed[taught], target[taught], 0.1)
    nets.actor_optimizer.zero_grad(set_to_none=True)
    expected.backward()
    nets.actor_optimizer.step()
    stepped = copy.deepcopy(nets.actor.state_dict())
    # a direction the loss does not depend on (the last bias shifts every server's logit alike) has a
    # gradient of round-off, which Adam scales up to a step of noise: compared only where it is not
    moved = {
        name: float(param.grad.abs().max()) > 1e-9
        for name, param in nets.actor.named_parameters()
        if param.grad is not None
    }
    nets.actor.load_state_dict(before[0])
    nets.actor_optimizer.load_state_dict(before[1])
    scored: list[int] = []
    hook = nets.actor.front.register_forward_pre_hook(lambda _module, args: scored.append(args[0].shape[0]))
    loss = construct_imitation_update(nets, context, states, labels, 1, 0.1)
    hook.remove()
    assert loss == pytest.approx(float(expected.detach()), rel=1e-12)
    assert scored == [int(taught.sum()) * 2]  # one call, M = 2 rows per taught user
    assert sum(moved.values()) >= 3
    for name, value in nets.actor.named_parameters():
        if moved.get(name):
            assert torch.allclose(value, stepped[name], rtol=0, atol=1e-12), name
    assert not torch.equal(stepped["body.0.weight"], before[0]["body.0.weight"])  # a step was taken


@pytest.mark.parametrize("agent", ["classical", "quantum"])
def test_a_constructing_run_resumes_bit_identically(tmp_path, agent):
    config = TrainConfig(**{**SMALL, "agent": agent, "layers": 2}, seed=3)
    instance = family_instance(config)
    full = train(config, instance, tmp_path / "full", progress=False)
    partial = train(config, instance, tmp_path / "part", progress=False, stop_after=3)
    assert partial["stopped_early"]
    train(config, instance, tmp_path / "part", resume=True, progress=False)
    weights = [load_checkpoint(tmp_path / name)["agents"][0]["actor"] for name in ("full", "part")]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    metrics = [
        [
            {k: v for k, v in json.loads(line).items() if k != "wall_s"}
            for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        ]
        for name in ("full", "part")
    ]
    assert metrics[0] == metrics[1] and all(m["imitation"] for m in metrics[0])
    assert full["family"]["feasible_share"] > 0
    policy = load_policy(tmp_path / "full")
    assert policy.constructs and policy.placement().shape == (6, 2)
    with pytest.raises(QdtInputError, match="construct decoding"):
        policy.scores(np.zeros((6, 2)))


def test_a_constrained_guarded_run_records_its_order_and_guard_and_places_with_them(tmp_path):
    changes = {
        "episodes": 2,
        "checkpoint_every": 2,
        "construct_order": "constrained",
        "construct_guard": "completion",
    }
    config = TrainConfig(**{**SMALL, **changes})
    train(config, family_instance(config), tmp_path / "run", progress=False)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert (recorded["construct_order"], recorded["construct_guard"]) == ("constrained", "completion")
    policy = load_policy(tmp_path / "run")
    context = context_of([policy.placement_model])
    logits = construction_logits(policy.actors[0])
    assignment, stuck = construct(logits, context, order="constrained", guard="completion")
    expected = finish_placement(policy.placement_model, assignment[0].numpy(), bool(stuck[0]))
    assert np.array_equal(policy.placement(), expected)
    # the warm-up before a timed decision (qdt place) runs the compiled loops with no actor call
    # (on an IBM device that would be a job) and leaves the decision as it was
    policy.local_search = True
    searched = policy.placement()
    scored = policy.actors[0].logits

    def refused(*_args, **_kwargs):
        raise AssertionError("the warm-up called the actor")

    policy.actors[0].logits = refused  # type: ignore[method-assign]
    try:
        policy.warm_up()
    finally:
        policy.actors[0].logits = scored  # type: ignore[method-assign]
    assert np.array_equal(policy.placement(), searched)


def _every_row(logits_of):
    """Logits scoring a row for every user of every instance in one call: the unplaced users' rows,
    the placed users' as zeros."""

    def logits(rows, unplaced):
        batch, n = unplaced.shape
        full = torch.zeros((batch, n, *rows.shape[1:]), dtype=rows.dtype)
        full[unplaced] = rows
        return logits_of(full.reshape(1, -1, rows.shape[2])).reshape(batch, n, rows.shape[1])

    return logits


@pytest.mark.parametrize("agent", ["classical", "quantum"])
def test_a_construction_scores_only_its_unplaced_users_and_places_as_if_it_scored_all(agent):
    """construction_logits runs the actor on the U·M rows of the U unplaced users (B·M·N(N+1)/2 rows
    over a construction's N calls, not B·M·N²), and the placements equal those of logits computed
    on a row for every user in one call (the placed users' as zeros)."""
    config = TrainConfig(**{**SMALL, "agent": agent, "layers": 2, "family": "users=12,servers=3,tight=true"})
    actor = Trainer(config, family_instance(config)).agents[0].actor
    models = _models(12, 3, 6)
    context = context_of(models)
    scored: list[int] = []
    logits_of = actor.logits

    def counted(state, *args, **kwargs):
        scored.append(state.shape[0] * state.shape[1])
        return logits_of(state, *args, **kwargs)

    actor.logits = counted  # type: ignore[method-assign]
    try:
        placed = [
            construct(construction_logits(actor), context, guard=guard)[0] for guard in ("none", "completion")
        ]
        scored_by_unplaced = sum(scored[:12])
        everyone = [
            construct(_every_row(logits_of), context, guard=guard)[0] for guard in ("none", "completion")
        ]
    finally:
        del actor.logits
    assert scored_by_unplaced == 6 * 3 * 12 * 13 // 2
    assert all(torch.equal(a, b) for a, b in zip(placed, everyone))


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"observation": "user"}, "--observation placement"),
        ({"decode": "feasible"}, "--decode construct"),
        ({"family": None}, "--family"),
        ({"imitation_episodes": 3}, "drop --imitation-episodes"),
        ({"start": "greedy"}, "--start empty"),
        ({"sharing": "none"}, "--sharing shared"),
        ({"label_gap": 0.2}, "--label-gap"),
        ({"label_gap": -0.01}, "--label-gap"),
        ({"label_gap": 0.01, "decode": "feasible", "observation": "user"}, "--decode construct"),
        (
            {"construct_order": "constrained", "decode": "feasible", "observation": "user"},
            "--construct-order",
        ),
        ({"construct_order": "fewest"}, "--construct-order: expected one of sure, constrained"),
        (
            {"construct_guard": "completion", "decode": "feasible", "observation": "user"},
            "--construct-guard: expected none unless --decode construct",
        ),
        ({"construct_guard": "lookahead"}, "--construct-guard: expected one of none, completion"),
    ],
)
def test_settings_a_construction_cannot_run_with_are_refused(changes, words):
    with pytest.raises(QdtInputError, match=words):
        TrainConfig(**{**SMALL, **changes})
    assert not TrainConfig(**SMALL).trains_critic  # imitation only: no critic is built
    # a label gap is recorded only when set, so older run folders and sweep cells read the same
    assert "label_gap" not in TrainConfig(**SMALL).to_dict()
    assert "construct_guard" not in TrainConfig(**SMALL).to_dict()
    assert TrainConfig.from_dict(TrainConfig(**SMALL, label_gap=0.01).to_dict()).label_gap == 0.01


def test_cli_construct_defaults_and_qdt_place_on_every_executor_kind(tmp_path, capsys):
    """`qdt train --family ... --decode construct` reads the whole partial placement by default, and
    `qdt place` constructs on statevector (the policy's own placement), aer with shots and a fake IBM
    device (one job per user placed, each ISA-transpiled)."""
    run = tmp_path / "run"
    args = [
        "train",
        "--family",
        "users=4,servers=2,tight=true",
        "--decode",
        "construct",
        "--agent",
        "quantum",
    ]
    args += ["--layers", "2", "--episodes", "3", "--no-progress", "--out", str(run)]
    assert main(args) == 0
    saved = json.loads((run / "config.json").read_text())["config"]
    assert (saved["observation"], saved["hidden"], saved.get("start", "empty")) == ("placement", 64, "empty")
    capsys.readouterr()
    instance = tmp_path / "unseen.json"
    assert (
        main(
            [
                "instance",
                "generate",
                "--users",
                "4",
                "--servers",
                "2",
                "--tight",
                "--seed",
                "11",
                "--out",
                str(instance),
            ]
        )
        == 0
    )
    capsys.readouterr()
    own = load_policy(run, instance=load_instance_file(instance, "INSTANCE"))
    expected = own.placement().argmax(axis=1).tolist()
    reports = {}
    for backend in (
        ["--backend", "statevector"],
        ["--backend", "aer", "--shots", "4096"],
        ["--backend", "fake_manila", "--shots", "256"],
    ):
        assert main(["place", "--run", str(run), str(instance), *backend, "--json"]) == 0
        reports[backend[1]] = json.loads(capsys.readouterr().out)
    assert reports["statevector"]["assignment"] == expected
    assert not reports["statevector"]["local_search"]
    # --local-search: the same construction, then the local search, inside the timed decision
    assert main(["place", "--run", str(run), str(instance), "--local-search", "--json"]) == 0
    searched = json.loads(capsys.readouterr().out)
    improved = improve_placements(own.placement_model, own.placement())
    assert searched["local_search"] and searched["assignment"] == improved.argmax(axis=1).tolist()
    for report in reports.values():
        assert report["strategy"] == "construct" and report["steps"] == 4
        assert len(report["assignment"]) == 4 and set(report["assignment"]) <= {0, 1}
        assert report["feasible"] in (True, False) and report["decision_ms"] > 0
    assert main(["infer", "--run", str(run), "--backend", "statevector", "--json"]) == 0
    inferred = json.loads(capsys.readouterr().out)
    assert inferred["strategy"] == "construct" and inferred["steps"] == 4
    assert main(["evaluate", "--run", str(run), "--backend", "statevector"]) == 2
    assert "construct" in capsys.readouterr().err
    device = reports["fake_manila"]
    assert len(device["jobs"]) == 4  # one job per user placed
    assert device["circuits"][0]["device"] == "fake_manila" and device["circuits"][0]["two_qubit_gates"] > 0


def test_a_share_rule_refuses_assignments_of_another_shape():
    """The compiled completion reads the instances' arrays by index: an assignment of another batch or
    size is refused with both shapes named, before the loop runs."""
    rule = ShareRule.of(context_of(_models(8, 2, 3)))
    with pytest.raises(ValueError, match=r"expected assignments of shape \(3, 8\).*got \(3, 9\)"):
        rule.complete(torch.full((3, 9), -1))
    with pytest.raises(ValueError, match=r"got \(2, 8\)"):
        rule.complete(torch.full((2, 8), -1))
