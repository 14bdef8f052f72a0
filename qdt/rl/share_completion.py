"""The guard's completion rule (:mod:`qdt.rl.construct`, ``construct_guard = "completion"``): partial
placements completed user by user, each next user the one surest of its smallest-share server, as one
loop compiled with numba.

**The rule.** Among the unplaced users that still fit on some server (its deadline, a free slot,
room for its twin), the one whose softmax of −c_ij / C_j over the servers it fits on has the largest
top value goes to its smallest-share server (ties: the lower user, then the lower server). A
completion that leaves a user without room stops there, and its row is not feasible; so is a row
whose partial placement already breaks a constraint. The room left is kept as
:mod:`qdt.rl.placement_observation` keeps it: capacity 1 − Σ c_ij / C_j over the users placed
(summed in user order), slots 1 − count / M_j.

**Why compiled.** The guard runs a completion at each of a construction's N steps where the actor's
server differs from the incumbent's, each up to N steps, and a step in numpy was about 40 calls on
arrays of B·N·M values: per-call overhead, not arithmetic. On tight 64 × 8 instances that was half
of a best-of-8 decision (classical; 39% quantum). Compiled, each row is its own loop: a completion of
8 rows from the empty placement takes 0.30 ms where numpy took 2.8 ms (tight 64 × 8, torch on one
thread), and in ``qdt bench generalise`` on 100 unseen tight 64 × 8 instances a best-of-8 decision
takes 127 ms where it took 220 ms (classical) and 220 ms where it took 311 ms (quantum, L = 6); the
completions are now about 8% (classical) and 5% (quantum) of it (README, "64 × 8 tight").

**The same completions.** The loop does numpy's arithmetic in numpy's order: the capacity sums run
over the users in index order, and a user's softmax is 1 / Σ_j exp(−c_ij / C_j + min_k c_ik / C_k)
over the servers it fits on in server order, with every exp computed by numpy once per batch
(:attr:`ShareRule.spread_terms`), so the decisions of runs trained with the numpy version are the
same: the 1,000 placements of that bench (and its plain and untrained constructions) are the same,
bit for bit, as before.

Compiled on first use (about 1 s) and cached where it can be (:func:`qdt.compiled.compiled`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from qdt.compiled import compiled
from qdt.problem.model import RELATIVE_TOLERANCE
from qdt.rl.observations import SLOT_EPSILON, InstanceContext
from qdt.rl.placement_observation import PlacementArrays

__all__ = ["ShareRule", "smallest_share_completion"]


@dataclass(frozen=True)
class ShareRule:
    """A batch of instances as the completion reads them, in numpy: c_ij / C_j ``share`` [B, N, M],
    ``deadline_met`` [B, N, M], 1 / M_j ``slot`` [B, M], and ``spread_terms`` [B, N, M, M], at
    [b, i, k, j] exp(c_ik / C_k − c_ij / C_j): the terms of user i's softmax when k is its
    smallest-share server (module docstring). Built once per construction (:meth:`of`), used by
    every completion of it."""

    share: np.ndarray
    deadline_met: np.ndarray
    slot: np.ndarray
    spread_terms: np.ndarray

    @classmethod
    def of(cls, context: InstanceContext) -> ShareRule:
        return cls.of_arrays(PlacementArrays.of(context))

    @classmethod
    def of_arrays(cls, arrays: PlacementArrays) -> ShareRule:
        """The rule for instances already in numpy (a construction's :class:`PlacementArrays`)."""
        smallest = -arrays.share  # the rule's logits
        return cls(
            share=arrays.share,
            deadline_met=arrays.latency > 0,
            slot=arrays.slot,
            spread_terms=np.exp(smallest[:, :, None, :] - smallest[:, :, :, None]),
        )

    def complete(self, assignment: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The partial placements ``assignment`` [B, N] (−1: not placed) completed by the rule, and
        whether each completion fits [B] (both on ``assignment``'s device)."""
        completed, feasible = self.complete_array(assignment.detach().cpu().numpy())
        device = assignment.device
        return torch.from_numpy(completed).to(device), torch.from_numpy(feasible).to(device)

    def complete_array(self, assignment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`complete` on numpy arrays: the completions [B, N] (a new array) and whether each
        fits [B]."""
        if tuple(assignment.shape) != self.share.shape[:2]:
            raise ValueError(
                f"ShareRule.complete: expected assignments of shape {self.share.shape[:2]} (B, N), "
                f"got {tuple(assignment.shape)}"
            )
        completed = np.array(assignment, dtype=np.int64, copy=True)
        feasible = np.zeros(completed.shape[0], dtype=np.bool_)
        _compiled()(self.share, self.deadline_met, self.slot, self.spread_terms, completed, feasible)
        return completed, feasible


def smallest_share_completion(
    context: InstanceContext, assignment: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The partial placements ``assignment`` [B, N] (−1: not placed) of the instances ``context``
    completed by the rule (module docstring), and whether each completion fits [B] (never where the
    partial placement itself breaks a constraint). On the 100 unseen tight instances of ``qdt bench
    generalise --tight``, from the empty placement it fits 99 of 100 at 16 × 4 and 100 of 100 at
    32 × 8, where greedy-with-repair fits 11 and 0."""
    return ShareRule.of(context).complete(assignment)


def _complete_rows(
    share: np.ndarray,
    deadline_met: np.ndarray,
    slot: np.ndarray,
    spread_terms: np.ndarray,
    completed: np.ndarray,
    feasible: np.ndarray,
) -> None:  # pragma: no cover - runs compiled (numba does not report coverage)
    """The rule on every row of ``completed`` [B, N] in place; ``feasible`` [B] set to whether the
    row ends complete and within every constraint."""
    batch, n, m = share.shape
    fits = np.zeros(m, dtype=np.bool_)
    for b in range(batch):
        placed = completed[b] >= 0
        used = np.zeros(m)
        count = np.zeros(m)
        ok = True
        for i in range(n):
            if placed[i]:
                j = completed[b, i]
                used[j] += share[b, i, j]
                count[j] += 1.0
                if not deadline_met[b, i, j]:
                    ok = False
        for j in range(m):
            if not (1.0 - used[j] >= -RELATIVE_TOLERANCE) or not (
                1.0 - count[j] * slot[b, j] >= -SLOT_EPSILON
            ):
                ok = False
        while ok:
            user = -1
            user_server = -1
            user_sure = -1.0
            for i in range(n):
                if placed[i]:
                    continue
                smallest = -1
                for j in range(m):
                    fits[j] = (
                        deadline_met[b, i, j]
                        and share[b, i, j] <= (1.0 - used[j]) + RELATIVE_TOLERANCE
                        and 1.0 - count[j] * slot[b, j] >= slot[b, j] - SLOT_EPSILON
                    )
                    if fits[j] and (smallest < 0 or share[b, i, j] < share[b, i, smallest]):
                        smallest = j
                if smallest < 0:  # a user left without room: this row has no completion by the rule
                    ok = False
                    break
                spread = 0.0
                for j in range(m):
                    if fits[j]:
                        spread += spread_terms[b, i, smallest, j]
                sure = 1.0 / spread
                if sure > user_sure:
                    user, user_server, user_sure = i, smallest, sure
            if not ok or user < 0:
                break
            completed[b, user] = user_server
            placed[user] = True
            total = 0.0  # the server's load summed in user order, as numpy sums it
            for i in range(n):
                if placed[i] and completed[b, i] == user_server:
                    total += share[b, i, user_server]
            used[user_server] = total
            count[user_server] += 1.0
        feasible[b] = ok and bool(placed.all())


_compiled = compiled(_complete_rows)
""":func:`_complete_rows` compiled (module docstring: on first use, cached where it can be)."""
