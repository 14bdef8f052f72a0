"""The compiled parts of a construction: the ``placement`` observation
(qdt/rl/placement_observation.py) and the choice of the next user and server
(qdt/rl/construct_step.py), each checked against a torch reference written from their definitions
(the form they had before they were compiled) on random partial placements of tight and loose
family draws, in both orders, with and without users that fit nowhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qdt.problem.family import Family
from qdt.problem.model import RELATIVE_TOLERANCE, PlacementModel
from qdt.rl.construct import NO_LOGIT
from qdt.rl.construct_step import choose_users
from qdt.rl.observations import SLOT_EPSILON, InstanceContext, context_of
from qdt.rl.placement_observation import PlacementArrays, placement_inputs, placement_rows


def _context(users: int, servers: int, count: int, tight: bool) -> InstanceContext:
    family = Family(users, servers, tight=tight, seed=11)
    return context_of([PlacementModel(family.held_out(0, k)) for k in range(count)])


def _partial(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Random partial placements [B, N]: each user placed on a random server with a probability
    drawn per row (some rows nearly empty, some nearly full; they may break constraints)."""
    batch, n, m = shape
    keep = rng.random((batch, n)) < rng.random((batch, 1))
    return np.where(keep, rng.integers(0, m, (batch, n)), -1)


def _reference(context: InstanceContext, assignment: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The observation [B, N, M, 7M + 1] and fits [B, N, M] from the definitions, in torch."""
    latency, share, slot = context.latency, context.load, context.slot
    batch, n, m = latency.shape
    placed = assignment >= 0
    hosts = torch.nn.functional.one_hot(assignment.clamp(min=0), m).to(latency.dtype) * placed[:, :, None]
    capacity = 1.0 - (hosts * share).sum(dim=1)
    slots = 1.0 - hosts.sum(dim=1) * slot
    fits = (
        (latency > 0)
        & (share <= capacity[:, None, :] + RELATIVE_TOLERANCE)
        & (slots[:, None, :] >= slot[:, None, :] - SLOT_EPSILON)
        & ~placed[:, :, None]
    )
    waiting = (~placed).to(latency.dtype)[:, :, None]
    reachable = torch.where(fits, latency, torch.zeros((), dtype=latency.dtype))
    fastest = torch.nn.functional.one_hot(reachable.argmax(dim=2), m).to(latency.dtype)
    fastest = fastest * (reachable.amax(dim=2, keepdim=True) > 0)
    servers = torch.stack(
        [capacity, slots, (fastest * share * waiting).sum(dim=1), (fastest * waiting).sum(dim=1) * slot],
        dim=2,
    )
    users = torch.stack([latency, share, fits.to(latency.dtype)], dim=3)
    order = (torch.arange(m)[:, None] + torch.arange(m)) % m  # row j: the servers from j on
    per_user = users[:, :, order, :].reshape(batch, n, m, 3 * m)
    per_server = servers[:, order, :].reshape(batch, 1, m, 4 * m).expand(batch, n, m, 4 * m)
    left = waiting.mean(dim=1)[:, :, None, None].expand(batch, n, m, 1)
    return torch.cat([per_user, per_server, left], dim=3), fits


@pytest.mark.parametrize("shape, tight", [((8, 2), True), ((16, 4), False), ((64, 8), True)])
def test_the_observation_is_its_definition(shape, tight):
    """Every value of every row (placed users' too) to 1e-14, the same fits, and the rows of the
    users asked for are those users' rows, in row-major order."""
    context = _context(*shape, 5, tight)
    rng = np.random.default_rng(shape[0])
    for _ in range(8):
        assignment = _partial((5, *shape), rng)
        expected, expected_fits = _reference(context, torch.as_tensor(assignment))
        inputs, fits, unplaced = placement_inputs(context, torch.as_tensor(assignment))
        assert inputs.shape == expected.shape
        torch.testing.assert_close(inputs, expected, rtol=0, atol=1e-14)
        assert torch.equal(fits, expected_fits)
        assert np.array_equal(unplaced.numpy(), assignment < 0)
        which = rng.random(assignment.shape) < 0.5
        rows, _, _ = placement_rows(PlacementArrays.of(context), assignment, which)
        assert np.array_equal(rows, inputs.numpy()[which])
        rows, _, _ = placement_rows(PlacementArrays.of(context), assignment)
        assert np.array_equal(rows, inputs.numpy()[assignment < 0])


def test_the_observation_refuses_assignments_of_another_shape():
    with pytest.raises(ValueError, match=r"expected assignments of shape \(2, 8\)"):
        placement_rows(PlacementArrays.of(_context(8, 2, 2, True)), np.full((2, 7), -1))


def _reference_choice(z, fits, unplaced, latency, constrained):
    """User, server and stuck [B] of one step from the definitions, in torch."""
    batch, _, m = z.shape
    rows = torch.arange(batch)
    masked = torch.tensor(NO_LOGIT, dtype=z.dtype)
    fitting = torch.where(fits, z, masked)
    sure = torch.softmax(fitting, dim=2).amax(dim=2)
    if constrained:
        sure = sure - fits.sum(dim=2).to(sure.dtype)
    low = -float(m) - 1.0
    sure = torch.where(fits.any(dim=2), sure, torch.full_like(sure, low))
    sure = torch.where(unplaced, sure, torch.full_like(sure, low - 1.0))
    user = sure.argmax(dim=1)
    stuck = sure[rows, user] <= low
    allowed = torch.where(latency[rows, user] > 0, z[rows, user], masked)
    server = torch.where(stuck, allowed.argmax(dim=1), fitting[rows, user].argmax(dim=1))
    return user, server, stuck


@pytest.mark.parametrize("constrained", [False, True])
def test_the_compiled_step_chooses_as_its_definition(constrained):
    """On random logits (ties included: some are rounded to one decimal) over random partial
    placements of tight draws, a quarter of the rows with no user that fits anywhere (stuck), the same
    user, server and stuck flag as the torch definition, row by row."""
    shape = (24, 4)
    context = _context(*shape, 16, True)
    arrays = PlacementArrays.of(context)
    rng = np.random.default_rng(3 + constrained)
    stuck_rows = 0
    for trial in range(12):
        assignment = _partial((16, *shape), rng)
        assignment[:, 0] = -1  # at least one unplaced user per row
        _, fits, unplaced = placement_rows(arrays, assignment)
        fits[trial % 4 :: 4] = False  # these rows are stuck: no unplaced user fits anywhere
        z = rng.normal(size=(16, *shape))
        if trial % 2:
            z = np.round(z, 1)
        user, server, stuck = choose_users(z, fits, unplaced, arrays.latency > 0, constrained)
        expected = _reference_choice(
            torch.as_tensor(z), torch.as_tensor(fits), torch.as_tensor(unplaced), context.latency, constrained
        )
        assert np.array_equal(user, expected[0].numpy())
        assert np.array_equal(server, expected[1].numpy())
        assert np.array_equal(stuck, expected[2].numpy())
        stuck_rows += int(stuck.sum())
    assert stuck_rows > 0  # the stuck branch was exercised
