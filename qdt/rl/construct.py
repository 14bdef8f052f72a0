"""The ``construct`` decoding (``TrainConfig.decode``): a placement built user by user, the shared
actor rescoring every unplaced user after each placement, and how it learns (imitation with DAgger).

**A decision** (:func:`construct`, from the empty placement): N steps; before each, the actor
gives every unplaced user i and server j a logit from the ``placement`` observation
(:func:`qdt.rl.placement_observation.placement_rows`: the whole partial placement, not only server j's
column). A softmax over the servers user i still fits on (deadline, a free slot, the capacity)
says how sure the policy is of that user; the surest user goes to its best server. When no
unplaced user fits anywhere, the surest one goes to its best server that meets its deadline, and
once every user is placed greedy's repair (:func:`qdt.problem.solvers.repair_overloads`, as in the
``feasible`` decoding) moves users off overloaded servers; a placement it cannot repair is
reported infeasible. No search: one pass, N actor calls, each one batch of the B·U·M rows of the U
users still unplaced (:func:`construction_logits`).

**The guard** (``construct_guard = "completion"``, ``qdt train --construct-guard completion``): a
construction also keeps an incumbent, a feasible completion of its partial placement by a fixed rule
(:func:`qdt.rl.share_completion.smallest_share_completion`: the same construction with −c_ij / C_j
for the actor's logits, so each user goes where its twin takes the smallest share of the capacity;
compiled, since the guard runs it up to N times per construction). Where the actor's
server for the chosen user differs from the incumbent's, one more completion is run from the
partial placement with the actor's choice; if it fits, it becomes the incumbent and the choice
stands, else the user goes to its incumbent server. The incumbent stays a feasible completion, so a
construction whose first completion fits ends feasible. Still no search: the actor picks the user
and, wherever that keeps the rest completable, the server; the guard tries nothing else. Why: on
tight instances the optimum puts users on fast servers that take a large share of the capacity,
and a construction that imitates it runs out of room over many steps (the trained classical runs of
``qdt bench generalise --tight --construct`` placed 77–90% of the 16 × 4 instances feasibly, and
37–62% at 32 × 8); the smallest-share rule alone fits 99 of the 100 unseen tight 16 × 4 instances and
all 100 at 32 × 8, 16% and 27% from the optimum on the median. Decoded guarded, two of those 16 × 4
runs (seeds 0–1) placed all 100, at median gaps of 1.42% and 1.46% (1.29% and 1.12% over the
86% and 90% they placed unguarded).

**Sampled decisions** (:class:`Sampling`, ``qdt place --samples K``, ``qdt bench generalise
--samples K``; never in training): the instance constructed K times in one batch, once by the
actor's logits and K − 1 times with τ · Gumbel noise added to them, each construction guarded as the
run trained, and the feasible placement of least total latency kept. Unlike one construction this is
a search, of K candidates. On the 100 unseen instances of the tight 32 × 8 guarded bench, the best of
8 (τ 0.2) takes the median gap from 3.10% to 1.91% (classical) and from 3.04% to 1.94% (quantum, L =
6), over 5 seeds each; the decision takes 92 ms instead of 43 (classical) and 144 ms instead of 78
(quantum), against the MILP's 1.69 s (``benchmarks/sampling_curve.py``: README, "Sampled constructions";
timed before the guard's completion was compiled). On tight 64 × 8 instances, compiled, best of 8 takes
127 ms (classical) and 220 ms (quantum) against the MILP's 459 ms to a placement proven within 1%.

**A local search after it** (``local_search`` of :func:`construct_best`, ``qdt place --local-search``,
``qdt bench generalise --local-search``; never in training): each construction, before the best is
kept, is improved by single-user moves and two-user swaps (:mod:`qdt.problem.local_search`). On the
tight 64 × 8 bench's 100 unseen instances, one construction then the search: 1.57% from the MILP's
bound (classical, 5 seeds; 3.97% without the search) in 28 ms, 15.2× faster than the MILP stopped at
1%, and 2.16% (quantum, L = 6; 4.95% without) in 42 ms (README, "64 × 8 tight").

**Speed.** A decision constructs one instance, so each of its N steps is small (at most N·M rows)
and its cost was the number of torch calls, not their arithmetic: profiled on tight 64 × 8 (this
2-core machine, one construction and the local search), a step was about 70 calls for the
observation, the choice and the guard besides the actor's own, 600 µs of a classical step and 950 µs
of a quantum one. That bookkeeping now runs on numpy arrays in compiled loops: the observation
(:mod:`qdt.rl.placement_observation`, one call for the rows of the unplaced users), the choice of the
next user and server (:mod:`qdt.rl.construct_step`) and the guard's completion; the actor gets each
step's rows as one tensor. The quantum actor's circuit also takes its inputs folded into the circuit's
matrix when no gradient is needed (``StatevectorExecutor.run_encoded``). The decisions are the same:
in ``qdt bench generalise`` on the 100 unseen tight 64 × 8 instances, all 1,000 placements and their
untrained constructions equal the earlier code's, and the decision went from 40.9 to 18.4 ms
(classical) and from 62.8 to 35.9 ms (quantum), the MILP at 523 and 537 ms in the two runs. The
imitation steps of training read the same compiled observation.

**Learning** (every episode of a run with this decoding is imitation): each of the episode's K
training instances is constructed by the current actor; the labelled states below join the run's
replay memory (DAgger's aggregated data set: a state is stored as its partial placement, its labels
as a one-hot action, with its instance's context), and the actor then takes ``gradient_steps``
cross-entropy steps (logits over the servers meeting each unplaced user's deadline, the label that
user's server) on batches of ``batch_size`` states drawn from the memory. A step scores only the
unplaced users with a label (:func:`construct_imitation_update`), whose logits are all the loss
reads. Scoring every user of each state, as the runs published before this change did, gives the
same loss to round-off and took a tight 64 × 8 quantum episode (seed 0, in-process, one thread,
input scaling on) 69 s, 56 of them in these steps; scoring the taught users only, 29 s, 16 of them.
The quantum actor's calls with gradients then took the encoded state straight to the circuit's
layers (``StatevectorExecutor.run_encoded``, up to 6 qubits: no encoding angles, no tree), 24 s,
and a construction that ends feasible no longer bisects for its last completable state
(:meth:`Completions.ends_completed`), about 22 s; that last change took a classical episode from 19 s
to 16 s. The states are

* parts of the instances' MILP optima: each user placed where the optimum puts it with probability
  p ~ U(0, 1) (:data:`OPTIMUM_COPIES` draws per instance), labelled with the optimum's servers of
  the unplaced users;
* states the construction itself reached (DAgger): :data:`DAGGER_STATES` drawn along each
  construction, and the last state of it that still has a feasible completion (where a construction
  that ends infeasible made its fatal choice; found by bisection), each labelled with the MILP's
  optimum completion of that partial placement (:func:`qdt.problem.solvers.solve_completion`). A
  state without a feasible completion teaches nothing.

Every label comes from HiGHS in this process (:func:`label_optima`, :class:`Completions`). With
``label_gap`` > 0 (``qdt train --label-gap``) a label is a placement proven within that share of
the optimum rather than the optimum itself: on tight 32 × 8 instances HiGHS proves an optimum in
about 3 s (median of 10 draws) but one within 1% in about 0.6 s, and those placements were 0–0.6%
from the optimum (8 draws), far closer than the policies get; an episode's labels (8 instances)
then take about 9 s instead of 32 s.

**Self-imitation** (``learner = "elite"``, recipe ``v4``: one instance, no MILP, no critic;
:func:`sampled_placements`): every episode the actor constructs its one instance K = ``envs`` times
in one batch, guarded, the first time by its logits as they are and K − 1 times with τ · Gumbel
noise on them (τ the exploration level, ``explore_start``/``explore_end``). The best feasible
placement found so far (the elite: ``best_seen_*`` of the run, kept in its checkpoints) is then
the label: ``batch_size`` random parts of it (as the optima's parts above), ``gradient_steps``
cross-entropy steps. The elite only improves, and the policy follows it: the cross-entropy method
(Rubinstein) and self-imitation learning (Oh et al., 2018) with an elite of one. The decision
after training is the plain construction, one pass with no search: training explores, deciding
does not, and the report shows what the same construction made of the untrained actor.

Why v4's settings (K = 64, τ = 1, 32 parts, 32 steps at learning rate 3e-3, 100 episodes). Gap of
the final plain construction to the MILP optimum on tight 32 × 8 instances where greedy places
nothing. The first choices were made with a prototype (classical, 16 steps at 1e-3) on the
instances of generator seeds 1 and 2: K = 16 and τ = 0.3 stalled at 3.9% (the imitated logits grew
so sharp that noise of that scale no longer changed a construction); τ = 1 brought that run to
0.50% but left others near 2% (1.72, 1.87, 2.07%), and K = 64 brought most within it (the 2.07%
to 1.36%); τ = 2 and 4 steps did not help. With those fixed, on three other instances (seeds 3, 4,
5; 5 seeds each): 1.72, 2.15, 1.28, 0.51, 1.34%; 0.40, 1.34, 1.08, 2.05, 1.39%; 1.93, 0.24, 1.65,
2.48, 1.07%, every run feasible, against 8.7–18.3% for the untrained construction, about 95 s a run.
The quantum actor (L = 6) fits the elite far more slowly: its FC layers read 64 probabilities that
sum to 1, where the classical ones read the raw inputs. On the seed-3 instance (60 episodes, run
seed 0; the untrained construction 15.9%): 16 steps at 1e-3 ended at 3.63% with a cross-entropy of
1.06 (classical: 0.002); 64 steps at 1e-3 at 6.28%, its elite at 1.32% (a construction that
strayed from an elite it had reproduced ten episodes before); 32 steps at 3e-3 at 2.42% (elite
1.67%, cross-entropy 0.29); 32 steps at 1e-2 at 5.97%. The classical agent is indifferent between
16 steps at 1e-3 and 32 at 3e-3 (100 episodes, seeds 0 and 1: 1.45, 1.40% and 1.43, 1.55%), so v4
takes the quantum agent's. With v4 as it is, 100 episodes, run seeds 0–4 on that instance, the
quantum agent ended at 1.09, 3.82, 1.90, 1.53, 3.31% (elites 0.57, 2.62, 1.47, 0.45, 2.15%); at
200 episodes at 1.09, 5.58, 2.40, 0.45, 3.93% (elites 0.57, 1.66, 0.84, 0.45, 2.15%): the plain
construction does not follow its elite reliably. Tried on top and not kept (run seeds 0 and 1):
the probabilities times 2^6 before the FC layers, so that they average 1 (the cross-entropy
falls to 0.016, yet the plain construction stays about 1% above its elite, and the elites are
worse): 2.81%, 5.93%; labelling also the partial placement where the plain construction left
the elite (DAgger's state, in place of one part): 4.44%, 1.18%; both: 5.17%, 1.12%. Two seeds do
not separate these from v4: the quantum runs' spread is larger than any effect measured.

Why v5 (``V5_SETTINGS``: input scaling and label smoothing 0.1). Where v4's quantum plain
constructions leave their elites (seeds 2–4 on the seed-3 instance, 100 episodes), they leave them
late, 19–24 users in, with 4 of the unplaced users' elite servers at a probability below 0.5, most
near 0; on 400 random parts of its elite, the trained quantum actor's best server is wrong for
3–20% of the unplaced users (depending on how many are unplaced), the classical actor's for
0–3%. The quantum actor underfits. Fitted offline to one fixed label (the instance's
MILP optimum, 1600 steps of batches of 32 parts; wrong share by the same bins; then the gap of its
plain construction), seed 0: v4's settings 21, 30, 35, 7%, 3.86%; the classical actor 0, 0.4, 0.9,
0.3%, 0.00%; circuit learning rate 0.05 instead of 0.01 1.26%; 0.1 with the FC at 1e-3 0.00%, but
2.55% and 2.40% for init seeds 1 and 2 after 2400 steps; FC at 1e-2 2.96%; 192-wide FC 3.08%; the
probabilities ×64 12, 22, 16, 2%, 0.00%; a trained scale and shift of each input before the
encoding (``input_scaling``) 2.4, 1.3, 1.0, 0.1%, 0.00%, cross-entropy 0.001: the encoding of 2x − 1,
normalised, squeezes the small differences in shares and room that the labels turn on, and the
scaling undoes it. With the scaling online (v4 + scaling, seeds 0–4 on the seed-3 instance) the
plain construction is its elite in 4 runs of 5, yet at 1.49, 2.87, 2.01, 1.67, 2.81% (elites 1.49,
2.87, 1.18, 1.67, 2.81%): the fit sharpens the logits within 40 episodes (cross-entropy 0.001)
beyond what Gumbel noise of scale 1 overturns, so the search stalls, as it did for the classical
prototype at τ 0.3. Label smoothing ε (:func:`smoothed_cross_entropy`) bounds the fitted logits (a
label keeps probability 1 − ε + ε/k among k servers, about 4.3 logits above the others at ε 0.1, k
8), and the search goes on. With both (v5), on the seed-3 instance, the quantum agent ended at
0.08, 0.76, 0.12, 1.03, 0.49% (seeds 0–4; each run its elite; v4: 1.09, 3.82, 1.90, 1.53,
3.31%), the classical one at 0.11, 0.23, 0.83% (seeds 0, 2, 4; v4: 1.72, 2.15, 1.28, 0.51,
1.34% for seeds 0–4). On the seed-4 instance, classical only: 1.24, 2.00, 1.04, 0.57, 2.50%
(v4: 0.40, 1.34, 1.08, 2.05, 1.39%); there the elites were at 1.24, 0.58, 1.04, 0.57, 1.40%, and
two plain constructions did not reproduce theirs. The quantum agent there: 0.63, 0.82, 0.73, 2.04,
2.72% (v4: 1.09, 5.58, 2.40, 0.45, 3.93%; its elites all within 0.9%). Other ε, classical: on the
seed-4 instance ε 0.05 1.61, 0.32, 0.54, 1.12, 0.18%, ε 0.2 1.42, 0.42, 1.15, 1.92, 0.38%; on the
seed-5 instance ε 0.05 0.41, 2.40, 1.54, 0.98, 0.35% against ε 0.1's 0.24, 0.31, 0.64, 0.32, 0.86%.
No ε is best on both instances, so v5 keeps 0.1, the value its bench ran (benchmarks/results/scale).
Every miss of the smoothed runs (5) is the plain construction leaving an elite within 2% (0.58–1.40%).

Why (the prototype of this policy, commit 22b4a9e, on the 100 unseen instances of
``qdt bench generalise --tight`` at 16 × 4; benchmarks/results/constructive-tight-16x4 and
constructive-tight-16x4-critical): the score-then-decode policies of the ``user`` observation placed
38% (classical) and 31% (quantum) of them feasibly, their median infeasible; greedy with repair
11%. Constructed user by user with the whole partial placement in view and trained with random
DAgger states only, 70–87% over seeds 0–4, median gaps 1.11–1.73%; the same construction fed its
untrained network 67–91% (gaps 5.7–9.4%), fed random logits 87% (10.1%). With each
construction's last completable state labelled as well (as here), 94% and 95%, median gaps 0.96%
and 1.21% (seeds 0–1).

Measured on the tight 32 × 8 family with the guard and not adopted (classical seed 0 of ``qdt bench
generalise --tight --construct --label-gap 0.01 --construct-guard completion --shapes 32x8 --episodes
60``, 3.07% on its 100 unseen instances): labelling, beside each DAgger state, the later states its
construction reached while it kept to that state's completion (no more MILP solves; about twice the
DAgger states), 3.03%; 256-wide FC layers, 4.10% (a lower cross-entropy, 0.8 against 1.2, so a closer
fit to labels that are themselves ambiguous: placements HiGHS proves within 0.2–1% of a tight
32 × 8 optimum put 4–13 of the 32 users on another server than the optimum); proven optima as
labels (``label_gap = 0``), 3.09%. The run's held-out gap stops improving after 10 episodes, so a
longer budget was not tried. The mean logits of the five classical seeds' actors, one construction,
give 2.55%.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from qdt.errors import QdtInputError
from qdt.problem.decoding import best_placement
from qdt.problem.local_search import improve_placements
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import repair_overloads, solve_completion
from qdt.rl.config import ConstructGuard, ConstructOrder
from qdt.rl.construct_step import choose_users
from qdt.rl.maddpg import AgentNets, _descend
from qdt.rl.networks import Actor
from qdt.rl.observations import InstanceContext, context_of
from qdt.rl.placement_observation import PlacementArrays, placement_rows
from qdt.rl.share_completion import ShareRule

__all__ = [
    "DAGGER_STATES",
    "LEAST_STATES_PER_INSTANCE",
    "MAX_SAMPLES",
    "OPTIMUM_COPIES",
    "PLAIN",
    "SAMPLE_TEMPERATURE",
    "Sampling",
    "as_assignments",
    "as_matrices",
    "check_sampled_decode",
    "construct",
    "construct_best",
    "construct_placements",
    "construction_logits",
    "finish_placement",
    "construct_imitation_update",
    "imitation_targets",
    "label_optima",
    "partial_optima",
    "sampled_placements",
    "smoothed_cross_entropy",
    "warm_up",
]

NO_LOGIT = -1e30
"""Stands for a server a user cannot take (masked out of a softmax or an argmax)."""

OPTIMUM_COPIES = 2
"""Parts of each training instance's optimum per episode (module docstring)."""

DAGGER_STATES = 3
"""States drawn along each construction of an episode and labelled by their optimum completion."""

LEAST_STATES_PER_INSTANCE = OPTIMUM_COPIES
"""States an episode stores per training instance at least (its optimum's parts; the DAgger states
add up to :data:`DAGGER_STATES` + 1 more): what sizes the replay memory's ring of instances."""

Logits = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(the placement rows [R, M, W] of the unplaced users, row-major over (instance, user)
(:func:`qdt.rl.placement_observation.placement_rows`), which users are unplaced [B, N]) → logits
[B, N, M], of which only the unplaced users' count (:func:`construct` reads no other)."""


def construction_logits(actor: Actor) -> Logits:
    """The actor's logits [B, N, M] for the placement rows [R, M, W] of the unplaced users of partial
    placements (:func:`qdt.rl.placement_observation.placement_rows`): one call of its front end on
    those rows (U·M rows for U unplaced users; a placed user's logits are :data:`NO_LOGIT`), so a
    construction's N calls score B·M·N(N + 1)/2 rows in all rather than B·M·N²."""

    def logits(rows: torch.Tensor, unplaced: torch.Tensor) -> torch.Tensor:
        batch, n = unplaced.shape
        m, width = rows.shape[1], rows.shape[2]
        if rows.shape[0] == batch * n:
            return actor.logits(rows.reshape(1, -1, width)).reshape(batch, n, m)
        z = torch.full((batch, n, m), NO_LOGIT, dtype=rows.dtype, device=rows.device)
        if rows.shape[0]:
            z[unplaced] = actor.logits(rows.reshape(1, -1, width)).reshape(-1, m).to(z.dtype)
        return z

    return logits


def construct(
    logits: Logits,
    context: InstanceContext,
    trace: list[torch.Tensor] | None = None,
    order: ConstructOrder = "sure",
    guard: ConstructGuard = "none",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each instance's placement built user by user (module docstring) as an assignment [B, N],
    and whether a user found no room [B] (the placement then needs greedy's repair). ``trace``
    collects the partial placement before each of the N steps. ``order``: which user goes next,
    the surest (``sure``) or, with ``constrained``, one with the fewest servers left that fit it,
    the surest among those (``qdt.rl.config.ConstructOrder``). ``guard="completion"``: each
    construction keeps a feasible completion of its partial placement (the incumbent,
    :func:`qdt.rl.share_completion.smallest_share_completion`), and the chosen user goes to the
    actor's server only if the rest still has one after it, else to its server in the incumbent; so
    a construction whose first completion fits ends feasible.

    The bookkeeping between the actor's calls (the observation, the choice, the guard) runs on numpy
    arrays in compiled loops (:mod:`qdt.rl.placement_observation`, :mod:`qdt.rl.construct_step`,
    :mod:`qdt.rl.share_completion`); the actor gets each step's rows on the context's device."""
    arrays = PlacementArrays.of(context)
    batch, n, _ = arrays.shape
    device = context.latency.device
    rule = ShareRule.of_arrays(arrays) if guard == "completion" else None
    deadline_met = rule.deadline_met if rule is not None else arrays.latency > 0
    assignment = np.full((batch, n), -1, dtype=np.int64)
    stuck_any = np.zeros(batch, dtype=np.bool_)
    rows = np.arange(batch)
    incumbent, completes = rule.complete_array(assignment) if rule is not None else (assignment, None)
    with torch.no_grad():
        for _ in range(n):
            inputs, fits, unplaced = placement_rows(arrays, assignment)
            z = logits(torch.from_numpy(inputs).to(device), torch.from_numpy(unplaced).to(device))
            user, server, stuck = choose_users(
                z.detach().cpu().numpy(), fits, unplaced, deadline_met, order == "constrained"
            )
            if rule is not None and completes is not None:
                server, incumbent, completes = _guarded(rule, assignment, user, server, incumbent, completes)
            stuck_any |= stuck
            if trace is not None:
                trace.append(torch.from_numpy(assignment.copy()).to(device))
            assignment[rows, user] = server
    return torch.from_numpy(assignment).to(device), torch.from_numpy(stuck_any).to(device)


def _guarded(
    rule: ShareRule,
    assignment: np.ndarray,
    user: np.ndarray,
    server: np.ndarray,
    incumbent: np.ndarray,
    completes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One guarded step (:func:`construct`): the servers [B] the chosen users go to, and each row's
    incumbent completion [B, N] with whether it is feasible [B]. A row whose choice differs from its
    incumbent (or that has none) tries a completion after the choice; a row that had a feasible
    incumbent and finds none keeps the incumbent's server."""
    rows = np.arange(server.shape[0])
    differs = ~completes | (server != incumbent[rows, user])
    if not differs.any():
        return server, incumbent, completes
    trial = assignment.copy()
    trial[rows, user] = server
    completion, fits = rule.complete_array(trial)
    better = differs & fits
    server = np.where(completes & differs & ~fits, incumbent[rows, user], server)
    return server, np.where(better[:, None], completion, incumbent), completes | better


def finish_placement(model: PlacementModel, assignment: np.ndarray, stuck: bool) -> np.ndarray:
    """The placement [N, M] of a constructed ``assignment``, after greedy's repair when a user found
    no room (an unrepairable one is returned as constructed: its evaluation names what it breaks)."""
    servers = np.asarray(assignment, dtype=np.int64).copy()
    if stuck:
        repaired = repair_overloads(model, servers.copy())
        if repaired.assignment is not None:
            servers = np.asarray(repaired.assignment, dtype=np.int64)
    placement = np.zeros((servers.size, model.n_servers), dtype=np.int8)
    placement[np.arange(servers.size), servers] = 1
    return placement


def construct_placements(
    actor: Actor,
    models: list[PlacementModel],
    context: InstanceContext,
    trace: list[torch.Tensor] | None = None,
    order: ConstructOrder = "sure",
    guard: ConstructGuard = "none",
) -> np.ndarray:
    """The placements [B, N, M] the actor constructs for ``models`` (``context``: theirs)."""
    assignment, stuck = construct(construction_logits(actor), context, trace, order, guard)
    servers, flags = assignment.cpu().numpy(), stuck.cpu().numpy()
    return np.stack([finish_placement(model, servers[k], bool(flags[k])) for k, model in enumerate(models)])


def warm_up(
    models: list[PlacementModel],
    device: torch.device,
    order: ConstructOrder = "sure",
    guard: ConstructGuard = "none",
    local_search: bool = False,
) -> None:
    """Run a construction's compiled loops once on ``models`` with constant logits (no actor, no
    executor call), then the local search if asked: numba's import and the loops' machine code (about
    0.6 s in a fresh process, even from numba's cache) stay out of the next timed decision
    (``qdt place``'s ``decision_ms``)."""

    def flat(rows: torch.Tensor, unplaced: torch.Tensor) -> torch.Tensor:
        return torch.zeros((*unplaced.shape, rows.shape[1]), dtype=torch.float64, device=rows.device)

    assignment, stuck = construct(flat, context_of(models, device), order=order, guard=guard)
    if local_search:
        servers, flags = assignment.cpu().numpy(), stuck.cpu().numpy()
        improve_placements(models[0], finish_placement(models[0], servers[0], bool(flags[0])))


SAMPLE_TEMPERATURE = 0.2
"""The default τ of :class:`Sampling`: the Gumbel noise's scale against the actor's logits. Chosen
on 40 validation instances of the tight 32 × 8 family (``Family(32, 8, tight=True,
seed=0x76616C69).held_out(0, i)``, not the bench's unseen set), best of 8 guarded constructions by
the five classical and five quantum runs of ``qdt bench generalise --tight --construct --label-gap
0.01 --construct-guard completion --shapes 32x8 --episodes 60``; mean of the runs' median gaps:
classical τ 0.05 2.19%, 0.1 1.97%, 0.15 1.97%, 0.2 1.89%, 0.3 2.13%, 0.5 2.38%; quantum 0.1 2.07%,
0.2 2.09%, 0.3 2.09%."""

MAX_SAMPLES = 256
"""The most constructions :class:`Sampling` runs per instance (one batch, K times the rows per step)."""


@dataclass(frozen=True)
class Sampling:
    """How many constructions decide one instance (``qdt place --samples``, ``qdt bench generalise
    --samples``): with ``samples`` = K > 1, the instance is constructed K times in one batch, the
    first time by the actor's logits as they are, the other K − 1 times by its logits plus
    ``temperature`` · Gumbel noise (each row's choices then follow a softmax of the logits at that
    temperature), and the feasible placement of least total latency is the decision (the first one
    when none is feasible). So the decision is never worse than the plain construction's, and it costs
    K times the rows per actor call; K = 1 is the plain construction. This one is a search: K
    candidates, each scored by the objective. The bench shows K = 1 (no search) beside it."""

    samples: int = 1
    temperature: float = SAMPLE_TEMPERATURE

    def __post_init__(self) -> None:
        if (
            isinstance(self.samples, bool)
            or not isinstance(self.samples, int)
            or not (1 <= self.samples <= MAX_SAMPLES)
        ):
            raise QdtInputError(
                "--samples", f"an integer from 1 (the plain construction) to {MAX_SAMPLES}", self.samples
            )
        if (
            isinstance(self.temperature, bool)
            or not isinstance(self.temperature, (int, float))
            or not math.isfinite(self.temperature)
            or self.temperature <= 0
        ):
            raise QdtInputError(
                "--temperature",
                "a finite number > 0 (the scale of the Gumbel noise on the actor's logits)",
                self.temperature,
                f"the default is {SAMPLE_TEMPERATURE}",
            )

    @property
    def sampled(self) -> bool:
        return self.samples > 1

    def describe(self) -> str:
        if not self.sampled:
            return "one construction"
        return (
            f"best of {self.samples} constructions "
            f"(the plain one and {self.samples - 1} sampled at τ {self.temperature:g})"
        )


PLAIN = Sampling()
"""One construction, no sampling: the default decision."""


def check_sampled_decode(sampling: Sampling, decode: str, fix: str) -> None:
    """Refuse sampled decisions (``samples`` > 1) for a run whose decoding ``decode`` is not
    ``construct``: its actors score columns of X, and a rollout of score tables samples nothing."""
    if sampling.sampled and decode != "construct":
        raise QdtInputError(
            "--samples",
            "1 for a run whose actors score columns of X (only a construction is sampled)",
            sampling.samples,
            fix,
        )


def _perturbed(logits: Logits, copies: int, temperature: float, rng: np.random.Generator) -> Logits:
    """``logits`` with ``temperature`` · Gumbel noise added to every row but the first of each
    instance's ``copies`` consecutive rows (:class:`Sampling`)."""

    def noisy(inputs: torch.Tensor, unplaced: torch.Tensor) -> torch.Tensor:
        z = logits(inputs, unplaced)
        gumbel = torch.from_numpy(rng.gumbel(size=tuple(z.shape))).to(z)
        gumbel.view(-1, copies, *z.shape[1:])[:, 0] = 0
        return z + temperature * gumbel

    return noisy


def construct_best(
    actor: Actor,
    models: list[PlacementModel],
    device: torch.device,
    order: ConstructOrder = "sure",
    guard: ConstructGuard = "none",
    sampling: Sampling = PLAIN,
    rng: np.random.Generator | None = None,
    local_search: bool = False,
) -> np.ndarray:
    """The placements [B, N, M] that decide ``models``: each one's plain construction, or with
    ``sampling`` the best of its constructions (:class:`Sampling`; ``rng`` draws the noise), all
    of them in one batch. With ``local_search`` every construction is first improved by
    :func:`qdt.problem.local_search.improve_placements`, then the best is kept."""
    copies = sampling.samples
    if copies == 1:
        placements = construct_placements(actor, models, context_of(models, device), order=order, guard=guard)
        if local_search:
            placements = np.stack([improve_placements(m, x) for m, x in zip(models, placements)])
        return placements
    if rng is None:
        raise ValueError("construct_best: sampled constructions need an rng")
    context = context_of([model for model in models for _ in range(copies)], device)
    placements = sampled_placements(actor, models, context, copies, sampling.temperature, rng, order, guard)
    candidates = [placements[k * copies : (k + 1) * copies] for k in range(len(models))]
    if local_search:
        candidates = [improve_placements(model, rows) for model, rows in zip(models, candidates)]
    return np.stack([best_placement(model, rows) for model, rows in zip(models, candidates)])


def sampled_placements(
    actor: Actor,
    models: list[PlacementModel],
    context: InstanceContext,
    copies: int,
    temperature: float,
    rng: np.random.Generator,
    order: ConstructOrder = "sure",
    guard: ConstructGuard = "none",
) -> np.ndarray:
    """The placements [B·copies, N, M] of ``copies`` constructions of each of ``models`` in one batch
    (``context``: each model's ``copies`` times in a row), the first of each model's by the actor's
    logits as they are, the others with ``temperature`` · Gumbel noise on them (noise from ``rng``):
    the candidates of a sampled decision (:class:`Sampling`) and of an ``elite`` episode."""
    logits = _perturbed(construction_logits(actor), copies, temperature, rng)
    assignment, stuck = construct(logits, context, order=order, guard=guard)
    servers, flags = assignment.cpu().numpy(), stuck.cpu().numpy()
    return np.stack(
        [
            finish_placement(models[row // copies], servers[row], bool(flags[row]))
            for row in range(len(servers))
        ]
    )


def partial_optima(
    targets: np.ndarray, copies: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(states [copies·K, N], labels [copies·K, N]) from the optima ``targets`` [K, N] (−1: none):
    each user placed on its optimal server with a probability p ~ U(0, 1) drawn per state, else
    unplaced (−1); an instance without an optimum gives an empty state with no labels."""
    labels = np.tile(targets, (copies, 1))
    keep = rng.random(labels.shape) < rng.random((labels.shape[0], 1))
    return np.where(keep, labels, -1), labels


def label_optima(models: list[PlacementModel], time_limit_s: float, rel_gap: float = 0.0) -> np.ndarray:
    """[K, N]: each model's MILP optimum (within ``rel_gap`` of it when > 0) as a server per user, −1
    for every user of a model with none found within ``time_limit_s``: the labels of a construct
    episode's parts of optima, solved in this process (:func:`solve_completion` of nothing placed)."""
    targets = np.full((len(models), models[0].n_users), -1, dtype=np.int64)
    for k, model in enumerate(models):
        found = solve_completion(model, np.full(model.n_users, -1, dtype=np.int64), time_limit_s, rel_gap)
        if found is not None:
            targets[k] = found
    return targets


def imitation_targets(
    models: list[PlacementModel],
    trace: list[np.ndarray],
    rng: np.random.Generator,
    time_limit_s: float,
    rel_gap: float = 0.0,
    finals: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DAgger states of one episode's constructions (``trace``: the N partial placements [K, N]
    before each step; ``finals``, when given, the placements [K, N, M] they ended in): (instance
    index [S], state [S, N], label [S, N]) for :data:`DAGGER_STATES` random states per construction
    and its last completable one (module docstring), each labelled with its optimum completion
    (within ``rel_gap`` of it when > 0); states with none are left out."""
    n = len(trace)
    index, states, labels = [], [], []
    for k, model in enumerate(models):
        final = None if finals is None else np.asarray(finals[k]).argmax(axis=1)
        completions = Completions(model, [step[k] for step in trace], time_limit_s, rel_gap, final)
        picks = set(rng.choice(n, size=min(DAGGER_STATES, n), replace=False).tolist())
        last = completions.last_completable()
        for step in sorted(picks | ({last} if last is not None else set())):
            found = completions.of(step)
            if found is not None:
                index.append(k)
                states.append(completions.path[step])
                labels.append(found)
    if not index:
        empty = np.zeros((0, trace[0].shape[1] if trace else 0), dtype=np.int64)
        return np.zeros(0, dtype=np.int64), empty, empty
    return np.asarray(index, dtype=np.int64), np.stack(states), np.stack(labels)


class Completions:
    """The MILP's optimum completions of one construction's partial placements ``path``, each
    solved once; ``final``, the construction's placement (a server per user), when known."""

    def __init__(
        self,
        model: PlacementModel,
        path: list[np.ndarray],
        time_limit_s: float,
        rel_gap: float = 0.0,
        final: np.ndarray | None = None,
    ) -> None:
        self.model, self.path, self.time_limit_s, self.rel_gap = model, path, time_limit_s, rel_gap
        self.final = final
        self.solved: dict[int, np.ndarray | None] = {}

    def ends_completed(self) -> bool:
        """Whether ``final`` is feasible and extends every state of the path: then each state has
        a feasible completion (``final`` itself), with no MILP solved to show it. A guarded
        construction (``construct_guard = "completion"``) almost always ends so."""
        if self.final is None or not self.path:
            return False
        final = np.asarray(self.final, dtype=np.int64)
        states = np.stack(self.path)
        if not bool(np.all((states < 0) | (states == final))):
            return False
        return bool(self.model.feasible_batch(self.model.assignment_to_matrix(final)[None])[0])

    def of(self, step: int) -> np.ndarray | None:
        """The completion of ``path[step]`` (a server per user), or None when it has none."""
        if step not in self.solved:
            self.solved[step] = solve_completion(self.model, self.path[step], self.time_limit_s, self.rel_gap)
        return self.solved[step]

    def last_completable(self) -> int | None:
        """The last step whose partial placement has a feasible completion, by bisection: once a
        partial placement has none, every later one has none. The last step, unsolved, when the
        construction :meth:`ends_completed` (on tight 64 × 8 a bisection took about 6 solves,
        3.4 s of a 24 s quantum training episode)."""
        if self.ends_completed():
            return len(self.path) - 1
        low, high, last = 0, len(self.path) - 1, None
        while low <= high:
            middle = (low + high) // 2
            if self.of(middle) is None:
                high = middle - 1
            else:
                last, low = middle, middle + 1
        return last


def smoothed_cross_entropy(
    logits: torch.Tensor, allowed: torch.Tensor, target: torch.Tensor, smoothing: float
) -> torch.Tensor:
    """The mean cross-entropy of ``logits`` [R, M] (:data:`NO_LOGIT` where not ``allowed``) against
    the servers ``target`` [R], the label taking weight 1 − ε and ε = ``smoothing`` spread evenly
    over each row's allowed servers (label smoothing, Szegedy et al. 2016, kept off the servers a
    user cannot take); ε = 0 is the plain cross-entropy."""
    if smoothing == 0.0:
        return torch.nn.functional.cross_entropy(logits, target)
    log_p = torch.log_softmax(logits, dim=1)
    hit = log_p.gather(1, target[:, None]).squeeze(1)
    spread = torch.where(allowed, log_p, torch.zeros((), dtype=log_p.dtype)).sum(dim=1) / allowed.sum(dim=1)
    return -((1.0 - smoothing) * hit + smoothing * spread).mean()


def construct_imitation_update(
    nets: AgentNets,
    context: InstanceContext,
    states: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    steps: int,
    smoothing: float = 0.0,
) -> float | None:
    """``steps`` descent steps of the cross-entropy between the shared actor's logits for partial
    placements ``states`` [S, N] (``context``: each row's instance) over the servers meeting each
    unplaced user's deadline and the servers ``labels`` [S, N] (−1: none), with label
    ``smoothing`` (:func:`smoothed_cross_entropy`); the last step's loss, or None (no step) when no
    unplaced user has a label. Only the users the loss reads (unplaced, labelled) are scored: one
    actor call of T·M rows per step for T such users."""
    device = context.latency.device
    assignment = torch.as_tensor(states, dtype=torch.long, device=device)
    target = torch.as_tensor(labels, dtype=torch.long, device=device)
    taught = (assignment < 0) & (target >= 0)
    if not bool(taught.any()):
        return None
    allowed = (context.latency > 0)[taught]  # [T, M]
    found, _, _ = placement_rows(PlacementArrays.of(context), assignment.cpu().numpy(), taught.cpu().numpy())
    rows = torch.from_numpy(found).to(device)  # [T, M, W], the same at every step: the taught users'
    labelled = target[taught]
    masked = torch.tensor(NO_LOGIT, dtype=context.latency.dtype, device=device)
    loss = torch.zeros(())
    for _ in range(steps):
        z = nets.actor.logits(rows.reshape(1, -1, rows.shape[-1])).reshape(rows.shape[:2])
        loss = smoothed_cross_entropy(torch.where(allowed, z, masked), allowed, labelled, smoothing)
        _descend(nets.actor_optimizer, loss, "imitation loss of the constructing actor")
    return float(loss.detach())


def as_matrices(assignments: np.ndarray, m: int) -> np.ndarray:
    """Assignments [S, N] (−1: none) as one-hot matrices [S, N, M] int8 with empty rows for −1: how
    the replay memory stores partial placements and labels."""
    matrices = np.zeros((*assignments.shape, m), dtype=np.int8)
    rows, users = np.nonzero(assignments >= 0)
    matrices[rows, users, assignments[rows, users]] = 1
    return matrices


def as_assignments(matrices: torch.Tensor) -> torch.Tensor:
    """One-hot matrices [S, N, M] (empty rows: none) back to assignments [S, N] with −1 for none."""
    return torch.where(
        matrices.sum(dim=2) > 0, matrices.argmax(dim=2), torch.full_like(matrices[:, :, 0], -1).long()
    )
