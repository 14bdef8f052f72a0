"""A constructive policy on the tight family: one user placed at a time, each decision reading the
whole partial placement, trained by imitation of the MILP's completions of the states it visits.

    .venv/bin/python benchmarks/constructive_policy.py --shapes 16x4 --tight --workers 2 \\
        --out benchmarks/results/constructive-tight-16x4

A prototype measured against `qdt bench generalise --tight` on the same unseen instances
(`unseen_instances`), not yet a `qdt train` recipe. `benchmarks/tight_decoding.py` found why the
trained family policies miss feasible placements on tight instances: an actor scoring server j for
user i reads j's remaining capacity and the servers' static pressure, never where the other users
went, so the one-pass decoding of its scores packs the users onto their fastest servers and runs
out of room. This policy instead:

- **decides user by user** (N decisions per placement, from the empty one). Before each, every
  unplaced user i and server j get a logit from one small network (shared by every user and
  server, so it does not depend on their order) reading, for the servers from j on: user i's
  normalised latency row L_i·, its twin's share c_ik / C_k and whether it still fits on k
  (deadline, a free slot, the capacity); every server's remaining capacity and slots; and the
  load and slots the unplaced users would take if each went to its fastest server that still
  fits them; and the share of users still unplaced (7M + 1 values). A softmax over the servers
  that fit gives each user's choice; the user whose choice is most confident goes to its best
  server. A user that fits nowhere goes to its best allowed server and greedy's repair
  (`repair_overloads`) resolves the overload at the end, as in the feasible decoding; a
  placement it cannot repair counts as infeasible. No search: one pass, N network calls.
- **learns by imitation with DAgger labels**: training instances are the family's own training
  draws for the seed (`Family.draw`), each labelled with its MILP optimum. A training state is
  either a random part of an optimum (each user placed with probability p ~ U(0, 1)) labelled
  with the optimum's servers for the unplaced users, or, after every DAgger round, a state the
  policy itself reached while constructing a training instance, labelled with the MILP's optimum
  *completion* of that partial placement (a state with no feasible completion teaches nothing).
  The loss is the cross-entropy of the unplaced users' logits (over the servers meeting their
  deadline) against the label.

Reported per shape, on the unseen instances with a proven optimum: feasible share and median gap
(an infeasible placement counts as an infinite gap, as the bench counts it) for greedy with repair,
the same construction fed uniform random logits, fed the untrained network (each seed's
initialisation) and fed the trained one; the decision time (one instance at a time, construction
and repair) beside the MILP's. Writes constructive.md and constructive.json to --out.
Randomness: one SeedSequence per seed (`CONSTRUCTIVE_SEED`, seed), spawned for the network's
initialisation, the training states and the DAgger draws; the random-logit baseline has its own.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from qdt.cli.bench import parse_shapes
from qdt.errors import QdtInputError
from qdt.experiments.bench.generalise import unseen_instances
from qdt.problem.family import Family
from qdt.problem.model import RELATIVE_TOLERANCE, PlacementModel
from qdt.problem.solvers import repair_overloads, solve

CONSTRUCTIVE_SEED = 0x636F_6E73  # "cons"
MILP_LIMIT_S = 20.0
HIDDEN = 64
BATCH = 128
LEARNING_RATE = 3e-3
DAGGER_STATES_PER_INSTANCE = 3
NO_LOGIT = -1e9


@dataclass(frozen=True)
class Settings:
    train_instances: int = 1000
    steps: int = 16000
    dagger_rounds: int = 8
    dagger_instances: int = 400
    critical: bool = True


# ---- what the network reads ---------------------------------------------------------------
def instance_tensors(models: list[PlacementModel]) -> dict[str, torch.Tensor]:
    """Per instance: L [B, N, M] (fastest latency over T_ij where the deadline holds, else 0),
    c_ij / C_j [B, N, M], 1 / M_j [B, M], deadline met [B, N, M]."""
    latency = [np.where(m.deadline_ok, m.latency.min(axis=1, keepdims=True) / m.latency, 0.0) for m in models]
    as_float = lambda arrays: torch.tensor(np.stack(arrays), dtype=torch.float32)  # noqa: E731
    return {
        "latency": as_float(latency),
        "share": as_float([m.compute_rate / m.capacity[None, :] for m in models]),
        "slot": as_float([1.0 / m.max_users for m in models]),
        "allowed": torch.tensor(np.stack([m.deadline_ok for m in models])),
    }


def features(tensors: dict[str, torch.Tensor], assign: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The network's input [B, N, M, 7M + 1] for partial placements ``assign`` [B, N] (−1: not
    placed), which servers each unplaced user fits on [B, N, M], and which users are unplaced [B, N]."""
    latency, share, slot, allowed = (tensors[k] for k in ("latency", "share", "slot", "allowed"))
    batch, n, m = latency.shape
    placed = assign >= 0
    hosts = torch.nn.functional.one_hot(assign.clamp(min=0), m).float() * placed[:, :, None]
    capacity = 1.0 - (hosts * share).sum(1)  # [B, M]
    slots = 1.0 - hosts.sum(1) * slot
    fits = (
        allowed
        & (share <= capacity[:, None, :] + RELATIVE_TOLERANCE)
        & (slots[:, None, :] >= slot[:, None, :] - 1e-6)
        & ~placed[:, :, None]
    )
    waiting = (~placed).float()[:, :, None]
    reachable = torch.where(fits, latency, torch.zeros(()))
    fastest = torch.nn.functional.one_hot(reachable.argmax(2), m).float() * (
        reachable.amax(2, keepdim=True) > 0
    )
    pressure_load = (fastest * share * waiting).sum(1)
    pressure_slots = (fastest * waiting).sum(1) * slot
    servers = torch.stack([capacity, slots, pressure_load, pressure_slots], 2)  # [B, M, 4]
    users = torch.stack([latency, share, fits.float()], 3)  # [B, N, M, 3]
    order = (torch.arange(m)[:, None] + torch.arange(m)[None, :]) % m  # row j: servers from j on
    per_user = users[:, :, order, :].reshape(batch, n, m, 3 * m)
    per_server = servers[:, order, :].reshape(batch, 1, m, 4 * m).expand(batch, n, m, 4 * m)
    unplaced = (~placed).float().mean(1)[:, None, None, None].expand(batch, n, m, 1)
    return torch.cat([per_user, per_server, unplaced], 3), fits, ~placed


def feature_width(m: int) -> int:
    return 7 * m + 1


class ScoreNet(torch.nn.Module):
    """One logit per (user, server) row of :func:`features`."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(width, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.Tanh(),
            torch.nn.Linear(HIDDEN, 1),
        )  # fmt: skip

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(inputs)[..., 0]


# ---- constructing a placement -------------------------------------------------------------
def construct(
    net: ScoreNet | None,
    tensors: dict[str, torch.Tensor],
    rng: np.random.Generator | None = None,
    trace: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every instance's user-by-user placement [B, N] and whether a user found no room [B];
    ``net`` None: uniform random logits from ``rng``. ``trace`` collects the N partial states."""
    batch, n, m = tensors["latency"].shape
    assign = torch.full((batch, n), -1, dtype=torch.long)
    overloaded = torch.zeros(batch, dtype=torch.bool)
    rows = torch.arange(batch)
    with torch.no_grad():
        for _ in range(n):
            inputs, fits, unplaced = features(tensors, assign)
            if net is None:
                assert rng is not None
                logits = torch.from_numpy(rng.random((batch, n, m))).float()
            else:
                logits = net(inputs)
            fitting = torch.where(fits, logits, torch.tensor(NO_LOGIT))
            confidence = torch.softmax(fitting, 2).amax(2)
            confidence = torch.where(fits.any(2), confidence, torch.tensor(-1.0))
            confidence = torch.where(unplaced, confidence, torch.tensor(-2.0))
            user = confidence.argmax(1)
            server = fitting[rows, user].argmax(1)
            stuck = confidence[rows, user] < 0  # no unplaced user fits anywhere
            best_allowed = torch.where(
                tensors["allowed"][rows, user], logits[rows, user], torch.tensor(NO_LOGIT)
            )
            server = torch.where(stuck, best_allowed.argmax(1), server)
            overloaded |= stuck
            if trace is not None:
                trace.append(assign.clone())
            assign[rows, user] = server
    return assign, overloaded


def finish(model: PlacementModel, assign: np.ndarray, overloaded: bool) -> float | None:
    """The placement's total latency, after greedy's repair when a user found no room; None when
    it is infeasible."""
    assignment = assign.astype(np.int64).copy()
    if overloaded:
        repaired = repair_overloads(model, assignment)
        if repaired.assignment is None:
            return None
        assignment = np.asarray(repaired.assignment)
    evaluation = model.evaluate_assignment(assignment)
    return float(evaluation.total_latency_s) if evaluation.feasible else None


def completion(model: PlacementModel, assign: np.ndarray) -> np.ndarray | None:
    """The MILP's optimum with the placed users (``assign`` ≥ 0) kept where they are, or None.
    Solved in this process with no time limit (training instances of up to 32 × 8 take
    milliseconds; the limit's child process would cost more than the solve)."""
    fixed = assign >= 0
    allowed = model.deadline_ok.copy()
    allowed[fixed] = False
    allowed[np.flatnonzero(fixed), assign[fixed]] = True
    restricted = copy.copy(model)
    restricted.deadline_ok = allowed
    result = solve(restricted, "milp")
    return None if result.status != "optimal" else np.asarray(result.assignment, dtype=np.int64)


# ---- training -----------------------------------------------------------------------------
def train(
    shape: tuple[int, int], tight: bool, seed: int, settings: Settings
) -> tuple[ScoreNet, ScoreNet, float]:
    """(the untrained network, the trained one, training wall time in s) for one seed."""
    start = time.perf_counter()
    n, m = shape
    init, states_seed, dagger_seed = np.random.SeedSequence([CONSTRUCTIVE_SEED, seed]).spawn(3)
    torch.manual_seed(int(init.generate_state(1)[0]))
    net = ScoreNet(feature_width(m))
    untrained = copy.deepcopy(net)
    family = Family(n, m, tight=tight)
    models, targets = [], []
    for episode in range(settings.train_instances):
        model = PlacementModel(family.draw(seed, episode, 0))
        optimum = completion(model, np.full(n, -1))
        if optimum is not None:
            models.append(model)
            targets.append(optimum)
    tensors = instance_tensors(models)
    target = torch.from_numpy(np.stack(targets))
    rng, dagger_rng = np.random.default_rng(states_seed), np.random.default_rng(dagger_seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    visited: list[tuple[int, np.ndarray, np.ndarray]] = []  # (instance, state, completion)
    every = max(1, settings.steps // (settings.dagger_rounds + 1))
    for step in range(1, settings.steps + 1):
        if step % every == 0 and step // every <= settings.dagger_rounds:
            visited += dagger_states(
                net, models, tensors, settings.dagger_instances, dagger_rng, settings.critical
            )
        if visited and rng.random() < 0.5:
            picks = rng.integers(0, len(visited), BATCH)
            index = torch.tensor([visited[q][0] for q in picks])
            assign = torch.from_numpy(np.stack([visited[q][1] for q in picks]))
            labels = torch.from_numpy(np.stack([visited[q][2] for q in picks]))
        else:
            index = torch.from_numpy(rng.integers(0, len(models), BATCH))
            labels = target[index]
            keep = torch.from_numpy(rng.random((BATCH, n)) < rng.random((BATCH, 1)))
            assign = torch.where(keep, labels, torch.full_like(labels, -1))
        batch = {k: v[index] for k, v in tensors.items()}
        inputs, _, unplaced = features(batch, assign)
        logits = torch.where(batch["allowed"], net(inputs), torch.tensor(NO_LOGIT))
        loss = torch.nn.functional.cross_entropy(logits[unplaced], labels[unplaced])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return untrained, net, time.perf_counter() - start


def dagger_states(
    net: ScoreNet,
    models: list[PlacementModel],
    tensors: dict[str, torch.Tensor],
    count: int,
    rng: np.random.Generator,
    critical: bool,
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """States the policy reaches while constructing ``count`` training instances, with the MILP's
    completions (states without a feasible completion are dropped): :data:`DAGGER_STATES_PER_INSTANCE`
    drawn along each construction, and with ``critical`` the last state of it that still has a
    feasible completion (found by bisection: once a partial placement has none, every later one
    has none), where a construction that ends infeasible made its fatal choice."""
    picks = rng.choice(len(models), size=min(count, len(models)), replace=False)
    trace: list[torch.Tensor] = []
    construct(net, {k: v[torch.from_numpy(picks)] for k, v in tensors.items()}, trace=trace)
    n = len(trace)
    labelled = []
    for row, k in enumerate(picks.tolist()):
        states = [trace[step][row].numpy() for step in range(n)]
        for step in rng.choice(n, size=min(DAGGER_STATES_PER_INSTANCE, n), replace=False).tolist():
            label = completion(models[k], states[step])
            if label is not None:
                labelled.append((k, states[step], label))
        if critical:
            found = last_completable(models[k], states)
            if found is not None:
                labelled.append((k, states[found[0]], found[1]))
    return labelled


def last_completable(model: PlacementModel, states: list[np.ndarray]) -> tuple[int, np.ndarray] | None:
    """(the index of the last of ``states`` with a feasible completion, that completion), or None."""
    low, high, best = 0, len(states) - 1, None
    while low <= high:
        middle = (low + high) // 2
        label = completion(model, states[middle])
        if label is None:
            high = middle - 1
        else:
            best, low = (middle, label), middle + 1
    return best


# ---- measuring ----------------------------------------------------------------------------
@dataclass
class Outcome:
    """Per unseen instance with a proven optimum: total latency (None: infeasible); decisions' ms."""

    latency: list[float | None]
    decision_ms: list[float]


def place_all(
    net: ScoreNet | None, models: list[PlacementModel], rng: np.random.Generator | None = None
) -> Outcome:
    """Every instance placed one at a time (as a decision is timed), construction and repair."""
    latency, times = [], []
    for model in models:
        tensors = instance_tensors([model])
        start = time.perf_counter()
        assign, overloaded = construct(net, tensors, rng)
        total = finish(model, assign[0].numpy(), bool(overloaded[0]))
        times.append(1e3 * (time.perf_counter() - start))
        latency.append(total)
    return Outcome(latency, times)


def seed_outcomes(job: tuple[tuple[int, int], bool, int, Settings, list[int]]) -> dict[str, object]:
    shape, tight, seed, settings, solved = job
    torch.set_num_threads(1)
    models = [PlacementModel(unseen_instances(shape, max(solved) + 1, tight)[k]) for k in solved]
    untrained, trained, wall = train(shape, tight, seed, settings)
    return {
        "seed": seed,
        "train_s": wall,
        "untrained": asdict(place_all(untrained, models)),
        "trained": asdict(place_all(trained, models)),
    }


def milp_time_ms(model: PlacementModel) -> float:
    """The MILP timed in this process (as `qdt bench generalise` times it: the limited solve runs
    in a child process whose start is not the solver's time)."""
    start = time.perf_counter()
    solve(model, "milp")
    return 1e3 * (time.perf_counter() - start)


def summary(latency: list[float | None], optimum: list[float]) -> tuple[float, float]:
    """(feasible share in %, median gap in % with an infeasible placement an infinite gap)."""
    gaps = [100.0 * (v / o - 1.0) if v is not None else float("inf") for v, o in zip(latency, optimum)]
    return 100.0 * float(np.mean([v is not None for v in latency])), float(np.median(gaps))


def gap_text(value: float) -> str:
    return "infeasible" if not np.isfinite(value) else f"{value:.2f}%"


def measure_shape(
    shape: tuple[int, int], tight: bool, seeds: list[int], settings: Settings, unseen: int, workers: int
) -> tuple[list[str], dict[str, object]]:
    instances = unseen_instances(shape, unseen, tight)
    models = [PlacementModel(instance) for instance in instances]
    optima = [solve(model, "milp", time_limit_s=MILP_LIMIT_S) for model in models]
    solved = [k for k, result in enumerate(optima) if result.status == "optimal"]
    models = [models[k] for k in solved]
    optimum = [float(optima[k].total_latency_s) for k in solved]  # type: ignore[arg-type]
    milp_ms = [milp_time_ms(model) for model in models]
    greedy = [solve(model, "greedy").total_latency_s for model in models]
    random = place_all(
        None, models, np.random.default_rng(np.random.SeedSequence([CONSTRUCTIVE_SEED, 10**6]))
    )
    jobs = [(shape, tight, seed, settings, solved) for seed in seeds]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        per_seed = list(pool.map(seed_outcomes, jobs))
    n, m = shape
    lines = [
        f"### {n} users × {m} servers{' (tight)' if tight else ''}: {len(solved)} of {unseen} unseen "
        "instances with a proven optimum",
        "",
        "| placement | feasible | median gap | decision (median) |",
        "| --- | ---: | ---: | ---: |",
        f"| MILP | 100% | 0.00% | {statistics.median(milp_ms):.1f} ms |",
    ]
    for name, values in (("greedy with repair", greedy), ("construction, random logits", random.latency)):
        share, gap = summary(values, optimum)
        timing = f"{statistics.median(random.decision_ms):.2f} ms" if values is random.latency else "-"
        lines.append(f"| {name} | {share:.0f}% | {gap_text(gap)} | {timing} |")
    for kind in ("untrained", "trained"):
        for run in per_seed:
            outcome = run[kind]
            share, gap = summary(outcome["latency"], optimum)  # type: ignore[index]
            ms = statistics.median(outcome["decision_ms"])  # type: ignore[index]
            extra = f" (trained in {run['train_s']:.0f} s)" if kind == "trained" else ""
            name = f"construction, {kind} seed {run['seed']}{extra}"
            lines.append(f"| {name} | {share:.0f}% | {gap_text(gap)} | {ms:.2f} ms |")
    data = {
        "shape": list(shape),
        "tight": tight,
        "solved": solved,
        "optimum_s": optimum,
        "milp_ms": milp_ms,
        "greedy_s": greedy,
        "random": asdict(random),
        "seeds": per_seed,
    }
    return lines, data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", default="16x4", help="NxM,... (default 16x4)")
    parser.add_argument("--tight", action="store_true", help="the tight family (default: the default family)")
    parser.add_argument("--seeds", type=int, default=5, help="training seeds 0..S-1 (default 5)")
    parser.add_argument("--unseen", type=int, default=100, help="unseen instances per shape (default 100)")
    parser.add_argument(
        "--train-instances", type=int, default=Settings.train_instances, help="training draws per seed"
    )
    parser.add_argument(
        "--steps", type=int, default=Settings.steps, help="gradient steps of 128 states per seed"
    )
    parser.add_argument(
        "--dagger-rounds", type=int, default=Settings.dagger_rounds, help="DAgger rounds per seed"
    )
    parser.add_argument(
        "--dagger-instances",
        type=int,
        default=Settings.dagger_instances,
        help="training instances per DAgger round",
    )
    parser.add_argument(
        "--no-critical",
        action="store_true",
        help="DAgger labels random states only, not each construction's last completable state",
    )
    parser.add_argument("--workers", type=int, default=1, help="seeds trained at once (default 1)")
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for constructive.md and constructive.json"
    )
    args = parser.parse_args(argv)
    try:
        shapes = parse_shapes(args.shapes, max_users=64)
    except QdtInputError as error:
        raise SystemExit(str(error)) from None
    counts = {
        name: getattr(args, name) for name in ("seeds", "unseen", "train_instances", "steps", "workers")
    }
    counts["dagger_instances"] = args.dagger_instances
    if any(value < 1 for value in counts.values()) or args.dagger_rounds < 0:
        raise SystemExit(
            f"expected positive counts (--dagger-rounds may be 0), got {counts}, {args.dagger_rounds}"
        )
    settings = Settings(
        args.train_instances, args.steps, args.dagger_rounds, args.dagger_instances, not args.no_critical
    )
    started = time.perf_counter()
    lines = [
        "A constructive policy (benchmarks/constructive_policy.py: user by user, reading the whole partial "
        "placement, imitation with DAgger completions) on the unseen instances of `qdt bench generalise"
        f"{' --tight' if args.tight else ''}`. Settings: {asdict(settings)}, seeds 0-{args.seeds - 1}.",
        "",
    ]
    report = []
    for shape in shapes:
        shape_lines, data = measure_shape(
            shape, args.tight, list(range(args.seeds)), settings, args.unseen, args.workers
        )
        lines += shape_lines + [""]
        report.append(data)
        print("\n".join(shape_lines), flush=True)
    lines.append(f"Wall time {time.perf_counter() - started:.0f} s with --workers {args.workers}.")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "constructive.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (args.out / "constructive.json").write_text(json.dumps(report), encoding="utf-8")
    print(lines[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
