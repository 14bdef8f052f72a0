"""Evaluate a trained policy on another executor (noise, shots, devices) against its noiseless self.

One repeat = one independent draw of everything the executor samples:

* per agent, its scores for all 2^N observations it can see, in ONE executor call (batch 2^N);
  its *action agreement* is the share of observations whose binary action (â > 0.5, user by
  user) equals the noiseless policy's, and its *bit agreement* the share of (observation, user)
  bits that do;
* the *decision agreement*: over every joint state X (all 2^(N·M) of them when that is at most
  65 536, else a seeded sample of 4096), the share of (state, user) pairs whose server in the
  decoded next placement (the run's own decoding, as in training) is the noiseless one's;
* the placement the policy reaches from the run's start placement in N_t decisions, each decision a
  fresh call per agent (as a deployed policy would make it): its feasibility, total latency and
  gap to the exact optimum; and the wall time of each decision and of each 2^N batch.

Repeats give means and 95% t-intervals over independent shot draws (:mod:`qdt.stats`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from qdt.errors import QdtInputError
from qdt.problem.decoding import decode_argmax
from qdt.problem.model import PlacementModel, matrix_to_assignment
from qdt.problem.solvers import DEFAULT_TIME_LIMIT_S, solve
from qdt.rl.maddpg import all_observations, scores_from_table
from qdt.rl.policy import TrainedPolicy
from qdt.stats import NON_NEGATIVE, RATE, interval

MAX_ENUMERATED_STATES = 65_536
ROLLOUTS = ("calls", "table")
SAMPLED_STATES = 4096


def joint_states(n_users: int, n_servers: int, rng: np.random.Generator) -> np.ndarray:
    """Joint states X [S, N, M] for the decision agreement: all of them, or a seeded sample."""
    bits = n_users * n_servers
    if 2**bits <= MAX_ENUMERATED_STATES:
        k = np.arange(2**bits, dtype=np.int64)[:, None]
        flat = (k >> np.arange(bits - 1, -1, -1, dtype=np.int64)) & 1
    else:
        flat = rng.integers(0, 2, size=(SAMPLED_STATES, bits))
    return flat.reshape(-1, n_users, n_servers).astype(np.int8)


def decisions_from_tables(
    tables: np.ndarray, states: np.ndarray, decide: Callable[[np.ndarray], np.ndarray] | None = None
) -> np.ndarray:
    """The server of each user in the decoded next placements [S, N] for joint states [S, N, M];
    ``decide`` is the run's decoding of a batch of scores [S, N, M] (default: argmax)."""
    n = states.shape[1]
    weights = 1 << np.arange(n - 1, -1, -1, dtype=np.int64)
    rows = np.einsum("snm,n->sm", states.astype(np.int64), weights)  # [S, M] observation index
    scores = np.stack([tables[j][rows[:, j]] for j in range(tables.shape[0])], axis=2)  # [S, N, M]
    return (decode_argmax(scores) if decide is None else decide(scores)).argmax(axis=2)


def score_tables(policy: TrainedPolicy) -> tuple[np.ndarray, list[float]]:
    """[M, 2^N, N] scores and the wall time of each agent's batched call."""
    obs = all_observations(policy.n_users)
    tables, times = [], []
    for j in range(policy.n_servers):
        start = time.perf_counter()
        tables.append(policy.actor_scores(j, obs).numpy())
        times.append(time.perf_counter() - start)
    return np.stack(tables), times


def evaluate_policy(
    reference: TrainedPolicy,
    target: TrainedPolicy,
    *,
    repeats: int = 1,
    seed: int = 0,
    rollout: str = "calls",
    on_repeat: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Compare ``target`` (the run on the executor under study) with ``reference`` (noiseless).

    ``rollout="calls"`` makes each of the N_t decisions with fresh executor calls, as a deployed
    policy would; ``"table"`` reads them off the repeat's score tables (one call per agent per
    repeat: for slow backends such as fake or real devices, where a job costs seconds).
    """
    if rollout not in ROLLOUTS:
        raise QdtInputError("rollout", f"one of {', '.join(ROLLOUTS)}", rollout)
    model = PlacementModel(reference.instance)
    optimum = solve(model, "auto", time_limit_s=DEFAULT_TIME_LIMIT_S)
    optimum_total = optimum.total_latency_s if optimum.status == "optimal" else None
    states = joint_states(reference.n_users, reference.n_servers, np.random.default_rng(seed))
    reference_tables, _ = score_tables(reference)
    reference_actions = reference_tables > 0.5
    reference_decisions = decisions_from_tables(reference_tables, states, reference.decode)
    reference_placement = reference.placement()

    action_agreement: list[list[float]] = [[] for _ in range(reference.n_servers)]
    bit_agreement: list[list[float]] = [[] for _ in range(reference.n_servers)]
    decision_agreement, batch_times, decision_times = [], [], []
    feasible, totals, gaps, assignments = [], [], [], []
    for r in range(repeats):
        tables, times = score_tables(target)
        batch_times += times
        actions = tables > 0.5
        for j in range(reference.n_servers):
            same = actions[j] == reference_actions[j]
            action_agreement[j].append(float(same.all(axis=1).mean()))
            bit_agreement[j].append(float(same.mean()))
        decisions = decisions_from_tables(tables, states, target.decode)
        decision_agreement.append(float((decisions == reference_decisions).mean()))
        x = target.start_placement()
        for _ in range(target.config.steps_per_episode):
            if rollout == "table":
                x = target.decide(x, scores=scores_from_table(tables, x))
                continue
            start = time.perf_counter()
            x = target.decide(x)
            decision_times.append(time.perf_counter() - start)
        evaluation = model.evaluate(x)
        feasible.append(evaluation.feasible)
        totals.append(evaluation.total_latency_s)
        assignments.append(matrix_to_assignment(x))
        if evaluation.feasible and optimum_total is not None:
            gaps.append(evaluation.total_latency_s / optimum_total - 1.0)
        if on_repeat is not None:
            on_repeat(r)

    reference_eval = model.evaluate(reference_placement)
    return {
        "repeats": repeats,
        "observations_per_agent": 2**reference.n_users,
        "joint_states": int(states.shape[0]),
        "joint_states_enumerated": 2 ** (reference.n_users * reference.n_servers) <= MAX_ENUMERATED_STATES,
        "agents": [
            {
                "agent": j,
                "action_agreement": interval(action_agreement[j], RATE),
                "bit_agreement": interval(bit_agreement[j], RATE),
            }
            for j in range(reference.n_servers)
        ],
        "decision_agreement": interval(decision_agreement, RATE),
        "placement": {
            "assignments": assignments,
            "feasible_rate": float(np.mean(feasible)),
            "total_latency_s": interval(totals, NON_NEGATIVE),
            "gap": interval(gaps, NON_NEGATIVE) if gaps else None,
            "gap_runs": len(gaps),
        },
        "noiseless": {
            "assignment": matrix_to_assignment(reference_placement),
            "feasible": reference_eval.feasible,
            "total_latency_s": reference_eval.total_latency_s,
            "gap": (
                reference_eval.total_latency_s / optimum_total - 1.0
                if reference_eval.feasible and optimum_total is not None
                else None
            ),
        },
        "optimum_total_latency_s": optimum_total,
        "rollout": rollout,
        "decision_latency": {
            # with table roll-outs a decision costs one batched call per agent
            "per_decision_s": float(np.median(decision_times or [sum(batch_times) / repeats])),
            "per_decision_calls": target.n_servers,
            "per_batch_s": float(np.median(batch_times)),
            "batch_size": 2**target.n_users,
        },
    }
