"""``qdt bench generalise``: policies trained on a family of instances, placing instances they never saw.

For every shape N × M of the grid (default 8×2, 16×4, 32×8, 64×8; ``--quick``: 4×2 and 8×2 for
CI) every agent (classical, quantum L = 6) is trained with ``seeds`` seeds on the family
``users=N,servers=M`` (``tight=true`` with ``tight``: ``qdt/problem/family.py``), a new instance
drawn every episode and environment, with actors that score user by user and improve
greedy-with-repair's placement (:data:`qdt.rl.config.FAMILY_DEFAULTS`: every rollout starts from
it) and, by default, imitating the MILP optimum of each
episode's training draws for the whole run (:data:`GENERALISE_TRAINING`, ``qdt/rl/imitation.py``;
``imitation = 0``: from rewards only, by the recipe's learner). Then
``unseen`` instances of the same family that no run trained on are placed, one at a time, by
every trained run, and the same instances are solved by the MILP, greedy-with-repair, the feasible
decoding fed uniform random scores (``random``: one pass, no search) and the same rollout
(from greedy's placement) fed each seed's freshly initialised actors (``untrained``: what the
learned scores add). A rollout's decision, and the untrained column's, is the best placement it
visited (``keep = "best"``, the default: ``qdt/rl/rollout.py``), its start (greedy's) included, and
its last placement is scored beside it (``plain_gap``, the table's "last placement"); ``keep =
"last"`` decides by the last one. With ``sampling`` (``--samples K``, constructing runs only) a decision, and
the untrained column, is the best of K constructions (:class:`qdt.rl.construct.Sampling`), and each
run's plain construction is scored beside it (``plain_gap``, the table's "one construction").
With ``local_search`` (``--local-search``) every decision ends with the local search of
:mod:`qdt.problem.local_search` (each sampled construction's, before the best is kept; timed as part
of the decision), and so do the untrained decodings and greedy's and random's placements (greedy's
time includes it), so each column is searched alike; the rows say ``local_search``.

The unseen instances. Instance i of shape N × M is
``Family(N, M, tight, seed=UNSEEN_SEED).held_out(0, i)``: spawn key (FAMILY_STREAM, HELD_OUT_KEY,
i) under the entropy :data:`UNSEEN_SEED`. A training draw has the spawn key (FAMILY_STREAM,
TRAIN_KEY, episode, copy): another seed sequence whatever its entropy, so an unseen instance is
never a training draw, of any seed, episode or environment (``qdt/problem/family.py``, Seeding).
They are not a run's own held-out instances either (its validation and summary.json ones, drawn
under the run's seed 0, 1, …), since :data:`UNSEEN_SEED` is far above any seed the bench trains.
Every agent and seed places the same instances.

Timing, in this process, after training, one instance at a time (a decision's latency): the
policy's time is rebinding the loaded actors to the instance (their observation tables,
:meth:`qdt.rl.policy.TrainedPolicy.rebind`, the checkpoint read once per run), then the greedy
rollout: greedy-with-repair's start placement and up to N_t steps of scoring and decoding, ended
at the first fixed point (``qdt/rl/rollout.py``), and with ``keep = "best"`` the evaluation of the
placements it visited; the MILP's is HiGHS on the same PlacementModel, its
own model building included. The MILP first runs with the time limit :data:`MILP_LIMIT_S` (in a
child process, which ``solve`` uses to enforce a limit); where it proves an optimum it is solved
again in this process and that solve is timed, so the child's start (15–25 ms measured here) is
not counted as the MILP's time. Torch runs on one thread while timing, as HiGHS does. Instances
on which the MILP proves no optimum within the limit have no gap and are left out of the shares,
medians and times (their count is reported; leaving them out can only lower the MILP's median).

Gaps to a bound (``milp_gap`` > 0, ``--milp-gap``): where the MILP proves few optima within the
limit (tight 64 × 8), HiGHS instead stops at a placement proven within ``milp_gap`` of the optimum
(its relative MIP gap), and every gap is measured to its lower bound on the optimum (its dual
bound; the optimum itself where HiGHS happens to prove one). A gap to that bound is never below the
gap to the optimum, so a median within the target bounds the true median within it, and an
instance's placements are compared with each other exactly (the same bound divides them). The
MILP's time is then its time to that proof, far below its time to an optimum, and its own
placement's gap to the bound is shown beside the policies'.

Reported per (N × M, agent), over the instances with a proven optimum: feasible share; the gap to
the optimum, median and interquartile range pooled over seeds, each seed's median, and the
interquartile mean of the seeds' medians with its 95% stratified-bootstrap interval
(:func:`qdt.stats.iqm_interval`); greedy's, random's and the untrained decoding's median gap on
the same instances; median decision time against the MILP's median and their ratio; training
episodes and time per episode. An infeasible placement counts as an infinite gap in medians and
quartiles (shown as "infeasible" when one lands there), and a seed whose median is infeasible as
:data:`INFEASIBLE_GAP` in the IQM. Then one line per target of the issue (module constants).

Quantum agents whose critic needs more than ``max_critic_qubits`` qubits are not trained (a family
critic reads 4·N·M values: 11 qubits at 64 × 8; the default recipe, v3, trains none) and are named
under the table; ``quantum_episodes``
gives quantum runs whose critic needs :data:`qdt.experiments.bench.scale.SLOW_CRITIC_QUBITS` (10)
or more qubits their own budget.
The runs are cells of a sweep on qdt's Ray engine in ``runs_dir``
(:mod:`qdt.experiments.bench.runs`): resumed after an interruption, reused when finished; a run
that fails is named under the table.

Outputs in ``out_dir``: generalise.csv (one row per run and unseen instance), generalise.md (the
tables and the targets), generalise.png (gap distributions per shape; decision and MILP times).
"""

from __future__ import annotations

import hashlib
import json
import math
import textwrap
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from qdt.errors import QdtInputError
from qdt.experiments.bench.noise import write_rows
from qdt.experiments.bench.paper import AgentSpec
from qdt.experiments.bench.runs import BenchRun, OnRun, bench_run, train_runs
from qdt.experiments.bench.scale import (
    DEFAULT_AGENTS,
    DEFAULT_SEEDS,
    DEFAULT_SHAPES,
    INFEASIBLE_GAP,
    MILP_LIMIT_S,
    WITHIN,
    bench_config,
    budget_text,
    check_max_critic_qubits,
    credit_changes,
    run_notes,
)
from qdt.experiments.tables import format_table
from qdt.plots import pyplot, save_figure
from qdt.problem.decoding import decode_feasible
from qdt.problem.family import Family
from qdt.problem.instance import Instance
from qdt.problem.local_search import improve_placements
from qdt.problem.model import Evaluation, PlacementModel
from qdt.problem.solvers import solve
from qdt.rl.builders import agent_qubits, check_fits
from qdt.rl.config import (
    CONSTRUCT_DEFAULTS,
    FAMILY_DEFAULTS,
    ConstructGuard,
    ConstructOrder,
    InputScaling,
    TrainConfig,
)
from qdt.rl.construct import PLAIN, Sampling
from qdt.rl.policy import TrainedPolicy, load_policy
from qdt.rl.rollout import KEEPS, Keep
from qdt.rl.train import SUMMARY_FILE, Trainer, family_instance, relative_gap
from qdt.stats import iqm_interval

UNSEEN_SEED = 0x756E_7365  # "unse": the entropy of every unseen test set (module docstring)
RANDOM_SCORES_SEED = 0x726E_6473  # "rnds": the random baseline's scores, one child per instance
SAMPLING_SEED = 0x7361_6D70  # "samp": the noise of sampled constructions, one child per run (sampling_seed)
DEFAULT_UNSEEN = 100
MAX_UNSEEN = 10_000
QUICK_SHAPES: tuple[tuple[int, int], ...] = ((4, 2), (8, 2))  # --quick, with the three below (CI)
QUICK_SEEDS, QUICK_EPISODES, QUICK_UNSEEN = 2, 30, 10
DEFAULT_MAX_CRITIC_QUBITS = 11  # the 64 x 8 family critic (4·N·M = 2048 values)
GENERALISE_RECIPE = "v3"  # a shared actor and no critic (imitation needs none; rewards: ppo)
GENERALISE_CREDIT = "user"  # the ppo credit of any episodes learnt from rewards
GENERALISE_EPISODES = 150
GENERALISE_TRAINING: dict[str, Any] = {**FAMILY_DEFAULTS, "lr_actor": 3e-3}
"""The bench's actors and rate, on top of the recipe. Measured on the 32 × 8 family (20 held-out
instances, classical, seed 0): imitation for all of 150 episodes 2.61% above the optimum; for the
first 150 of 300, then ppo with user credit, 3.84% (rewards made it worse); rewards only (ppo, user
credit, lr 3e-3, 300 episodes) 5.84% and 15.2% over seeds 0–1 (3.55% and 4.01% before the pressure
features). The imitation's held-out gap stopped improving after 10–30 episodes (qdt/rl/config.py
has the rest)."""


CONSTRUCT_LR_QUANTUM = 0.05
"""The circuit weights' learning rate of the quantum runs of the tight 64 × 8 constructing table
(``--lr-quantum 0.05``; the recipe's is 0.01, which the bench keeps unless told). Chosen on 40
validation draws of the tight 64 × 8 family (entropy 0x76616C69, neither training nor unseen draws),
run seeds 0 and 1 trained again with it and nothing else changed (60 episodes, input scaling), one
construction then the local search, median gap to the MILP's bound: 1.81 → 1.69% and 1.89 → 1.44%
(the plain construction 4.17 → 4.09% and 4.12 → 3.81%; the classical seeds 0 and 1: 1.71% and
1.82%). The imitation loss at episode 60 was still falling at 0.01 (1.38–1.43 for four of the five
seeds and 1.32 for seed 4, the classical runs' 1.31–1.34): the circuit learns too slowly. 0.05 is the
rate v5's offline fit of one label found better than 0.01 (qdt/rl/construct.py, "Why v5"); no other
rate was tried here."""

GENERALISE_QUANTUM_SCALING: InputScaling = "affine"
"""How the bench's quantum actors read their inputs when they roll out (not with ``construct``):
a trained scale and shift of each input before the amplitude encoding (``input_scaling``,
qdt/rl/quantum_layer.py; v5's fix for an underfitting quantum actor, qdt/rl/construct.py). Measured
on 40 validation draws of each family (entropy 0x76616C69, neither training nor unseen draws),
against the same seed without it: 64 × 8, seeds 0 and 1, the last placement's median gap 1.40 →
1.27% and 2.43 → 1.45%, the best placement visited 1.29 → 1.17% and 1.18 → 1.15% (greedy 1.35%;
the classical runs' best visited 1.15–1.27%), better than greedy on 45% and 50% of the draws (35%
and 32% without); 32 × 8, seeds 0 and 1: last 1.81 → 1.63% and 2.01 → 1.99%, best 1.26 → 1.25% and
1.42 → 1.38%. Then on the bench's 100 unseen instances per shape
(benchmarks/results/generalise-scaled-32x8-64x8), all 5 seeds: the IQM of the quantum seeds' median
gaps 1.19 → 1.11% at 32 × 8 and 1.61 → 1.40% at 64 × 8 (classical 1.24% and 1.47%).
``--input-scaling none`` trains the quantum runs as the bench did before
(benchmarks/results/generalise-keep-32x8-64x8)."""


CONSTRUCT_TRAINING: dict[str, Any] = {
    **CONSTRUCT_DEFAULTS,
    "decode": "construct",
    "lr_actor": 3e-3,
    "gradient_steps": 64,
}
"""``--construct``: the bench's runs construct their placements user by user (qdt/rl/construct.py)
and learn by imitation with DAgger in every episode, 64 gradient steps of 128 stored states per
episode (9,600 in 150 episodes; the prototype took 16,000). With 32 steps on each episode's own
states only (no aggregated data set), 16 × 4 tight, classical seeds 0–1: 70% and 55% feasible on
the run's 20 held-out instances, against the prototype's 94% and 95% on the bench's 100."""


def bench_credit(recipe: str, ppo_credit: str | None) -> str | None:
    """The ppo credit the bench trains with: ``ppo_credit`` when given, else
    :data:`GENERALISE_CREDIT` for a recipe whose learner is ppo (none for maddpg, which has no
    credit to set)."""
    if ppo_credit is None and TrainConfig.from_recipe(recipe).learner == "ppo":
        return GENERALISE_CREDIT
    return ppo_credit


TARGET_SHAPES: tuple[tuple[int, int], ...] = ((32, 8), (64, 8))
"""The shapes the issue's targets are stated on; a run without them checks its own shapes."""
TARGET_SPEEDUP = 10.0  # the MILP's median decision time over the policy's, at least
_BIG = 1e12  # stands for an infeasible placement's gap inside a quantile (mapped back to inf)

ROW_FIELDS = [
    "users",
    "servers",
    "tight",
    "agent",
    "seed",
    "instance",
    "instance_digest",
    "milp_status",
    "optimum_total_latency_s",
    "lower_bound_total_latency_s",
    "milp_total_latency_s",
    "gap_to_bound",
    "milp_gap",
    "milp_ms",
    "greedy_gap",
    "greedy_ms",
    "random_gap",
    "feasible",
    "total_latency_s",
    "gap",
    "decision_ms",
    "untrained_feasible",
    "untrained_gap",
    "samples",
    "keep",
    "local_search",
    "plain_feasible",
    "plain_gap",
    "episodes",
    "s_per_episode",
]

OnShape = Callable[[str], None]  # (shape label, e.g. "32x8"): its unseen instances are evaluated


# ---- configs and instances ------------------------------------------------------------------
def family_spec(shape: tuple[int, int], tight: bool) -> str:
    """The family a shape's runs train on, as ``qdt train --family`` reads it."""
    n, m = shape
    return f"users={n},servers={m}" + (",tight=true" if tight else "")


@dataclass(frozen=True)
class GeneraliseTraining:
    """How every run of one bench trains: ``recipe`` (with ``ppo_credit`` on top when given) for
    ``episodes`` (``quantum_episodes`` for quantum runs with a slow critic), on the tight family or
    not, with :data:`GENERALISE_TRAINING` (``construct``: :data:`CONSTRUCT_TRAINING`, its labels
    within ``label_gap`` of the optimum, its users placed in ``construct_order``, kept completable
    by ``construct_guard``), imitating the optimum for ``imitation`` episodes (None: all of them;
    0: rewards only), the quantum actors reading their inputs by ``input_scaling`` (None: the
    bench's default, :meth:`quantum_scaling`) and their circuits' weights learning at ``lr_quantum``
    (None: the recipe's)."""

    recipe: str = GENERALISE_RECIPE
    episodes: int | None = GENERALISE_EPISODES
    quantum_episodes: int | None = None
    tight: bool = False
    ppo_credit: str | None = None
    imitation: int | None = None
    construct: bool = False
    label_gap: float = 0.0
    construct_order: ConstructOrder = "sure"
    construct_guard: ConstructGuard = "none"
    input_scaling: InputScaling | None = None
    lr_quantum: float | None = None

    def quantum_scaling(self) -> InputScaling:
        """How the quantum runs' actors read their inputs: ``input_scaling`` when given, else
        :data:`GENERALISE_QUANTUM_SCALING` for rollouts and none for constructions (as measured in
        qdt/rl/construct.py's bench figures)."""
        if self.input_scaling is not None:
            return self.input_scaling
        return "none" if self.construct else GENERALISE_QUANTUM_SCALING

    def settings(self) -> dict[str, Any]:
        """The actors' settings on top of the recipe: :data:`GENERALISE_TRAINING` or
        :data:`CONSTRUCT_TRAINING`, with the label gap, the construct order and its guard only when
        set (so the cells of a bench without them keep their ids)."""
        settings = dict(CONSTRUCT_TRAINING if self.construct else GENERALISE_TRAINING)
        if self.construct_order != "sure":
            settings["construct_order"] = self.construct_order
        if self.construct_guard != "none":
            settings["construct_guard"] = self.construct_guard
        if self.label_gap:
            settings["label_gap"] = self.label_gap
        return settings

    def config(self, spec: AgentSpec, seed: int, shape: tuple[int, int]) -> TrainConfig:
        """One run's config: agent ``spec`` with ``seed`` on the shape's family."""
        fixed = {
            "family": family_spec(shape, self.tight),
            **self.settings(),
            **credit_changes(self.ppo_credit),
        }
        if spec.agent == "quantum":  # the classical actor has no circuit (and keeps its cell id)
            fixed["input_scaling"] = self.quantum_scaling()
            if self.lr_quantum is not None:  # only when set: the other benches' quantum cells keep their ids
                fixed["lr_quantum"] = self.lr_quantum
        config = bench_config(spec, seed, self.recipe, self.episodes, self.quantum_episodes, shape, **fixed)
        return config.replace(
            imitation_episodes=config.episodes if self.imitation is None else self.imitation
        )


def critic_qubits(config: TrainConfig, shape: tuple[int, int]) -> int:
    return agent_qubits(config, *shape)[1]


def trains(config: TrainConfig, shape: tuple[int, int], max_critic_qubits: int) -> bool:
    """Whether the bench trains ``config`` at ``shape``: a quantum agent only up to
    ``max_critic_qubits`` qubits in its family critic (none for a learner without a critic)."""
    return config.agent != "quantum" or critic_qubits(config, shape) <= max_critic_qubits


MAX_MILP_GAP = 0.1  # --milp-gap: at most this share (the targets are stated at 2%)


def check_milp_gap(value: float) -> float:
    """``--milp-gap``: 0 (proven optima) or a share in (0, MAX_MILP_GAP], else a QdtInputError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= MAX_MILP_GAP:
        raise QdtInputError(
            "--milp-gap", f"a share in [0, {MAX_MILP_GAP:g}] (0: proven optima; 0.01: within 1%)", value
        )
    return float(value)


def check_lr_quantum(value: float | None) -> float | None:
    """``--lr-quantum``: None (the recipe's) or a finite rate > 0, else a QdtInputError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
        raise QdtInputError(
            "--lr-quantum",
            "a finite learning rate > 0 for the quantum runs' circuit weights",
            value,
            f"leave it out for the recipe's; the tight 64x8 constructing table uses {CONSTRUCT_LR_QUANTUM:g}",
        )
    return float(value)


def check_unseen(value: int) -> int:
    """``--unseen``: 1 to :data:`MAX_UNSEEN`, else one clear error."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_UNSEEN:
        raise QdtInputError("--unseen", f"an integer from 1 to {MAX_UNSEEN:,}", value)
    return value


def check_configs(
    shapes: Sequence[tuple[int, int]],
    agents: Sequence[AgentSpec],
    training: GeneraliseTraining,
    max_critic_qubits: int,
) -> list[str]:
    """Refuse, before anything is trained, a shape too large for an agent (the error names the
    shape) or settings a run would refuse; returns the (shape, agent) pairs not trained, as the
    table lists them."""
    check_max_critic_qubits(max_critic_qubits)
    for flag, value, unset, needed in (
        (
            "--label-gap",
            training.label_gap,
            0.0,
            "0 unless --construct (only a construction's labels have a gap)",
        ),
        (
            "--construct-order",
            training.construct_order,
            "sure",
            "sure unless --construct (only a construction places users in an order)",
        ),
        (
            "--construct-guard",
            training.construct_guard,
            "none",
            "none unless --construct (only a construction is guarded)",
        ),
    ):
        if value != unset and not training.construct:
            raise QdtInputError(flag, needed, value, f"add --construct, or drop {flag}")
    skipped = []
    for shape in shapes:
        n, m = shape
        for spec in agents:
            config = training.config(spec, 0, shape)
            if not trains(config, shape, max_critic_qubits):
                skipped.append(f"{n}x{m} {spec.label} ({critic_qubits(config, shape)}-qubit critic)")
                continue
            check_fits(config, n, m, f"--shapes {n}x{m}")
    return skipped


def searched_decision(sampling: Sampling, keep: Keep, constructs: bool) -> bool:
    """Whether a decision searches (the best of sampled constructions, or the best placement a
    rollout visited), so that its plain counterpart (``plain_gap``) is worth a column of its own."""
    return sampling.sampled if constructs else keep == "best"


def check_sampling(sampling: Sampling, training: GeneraliseTraining) -> None:
    """Refuse sampled decisions (``--samples`` > 1) for a bench whose runs do not construct."""
    if sampling.sampled and not training.construct:
        raise QdtInputError(
            "--samples",
            "1 without --construct (only a construction is sampled)",
            sampling.samples,
            "add --construct, or drop --samples",
        )


def sampling_seed(run: BenchRun, untrained: bool) -> np.random.SeedSequence:
    """The seed sequence of one run's sampled constructions (its trained actors, or with
    ``untrained`` its freshly initialised ones): a child of :data:`SAMPLING_SEED` keyed by the
    run's shape, agent and seed, so every run draws its own noise and a rerun draws the same."""
    (n, m), agent, seed = _key(run)
    return np.random.SeedSequence(
        SAMPLING_SEED, spawn_key=(n, m, zlib.crc32(agent.encode("utf-8")), seed, int(untrained))
    )


def unseen_instances(shape: tuple[int, int], count: int, tight: bool) -> list[Instance]:
    """The shape's unseen test set: ``count`` held-out draws under :data:`UNSEEN_SEED`."""
    family = Family(shape[0], shape[1], tight=tight, seed=UNSEEN_SEED)
    return [family.held_out(0, index) for index in range(count)]


def instance_digest(instance: Instance) -> str:
    """12 hex digits of the instance's numbers (its name and provenance left out), so that two
    instances with the same digest place alike whatever they are called."""
    data = {k: v for k, v in instance.to_dict().items() if k not in ("name", "meta")}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


# ---- the bench ------------------------------------------------------------------------------
def run_generalise_bench(
    out_dir: Path,
    runs_dir: Path,
    *,
    shapes: Sequence[tuple[int, int]] = DEFAULT_SHAPES,
    agents: Sequence[AgentSpec] = DEFAULT_AGENTS,
    seeds: int = DEFAULT_SEEDS,
    training: GeneraliseTraining = GeneraliseTraining(),
    unseen: int = DEFAULT_UNSEEN,
    max_critic_qubits: int = DEFAULT_MAX_CRITIC_QUBITS,
    milp_limit_s: float = MILP_LIMIT_S,
    milp_gap: float = 0.0,
    sampling: Sampling = PLAIN,
    keep: Keep = "best",
    local_search: bool = False,
    workers: int | None = None,
    ray_address: str | None = None,
    retry_failed: bool = False,
    on_result: OnRun | None = None,
    on_shape: OnShape | None = None,
) -> dict[str, Any]:
    """Train every (shape, agent, seed) as a sweep cell as ``training`` says, place the unseen
    instances with every finished run beside the baselines (a constructing run's decision as
    ``sampling`` says, a rollout's as ``keep`` does; with ``local_search`` each decision and
    baseline then improved by the local search, module docstring), then write generalise.csv,
    generalise.md, generalise.png. ``milp_gap`` > 0: gaps to the MILP's lower bound (module
    docstring)."""
    start = time.perf_counter()
    check_unseen(unseen)
    check_milp_gap(milp_gap)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise QdtInputError("--seeds", "an integer >= 1", seeds)
    training = replace(training, ppo_credit=bench_credit(training.recipe, training.ppo_credit))
    tight, construct = training.tight, training.construct
    check_sampling(sampling, training)
    if keep not in KEEPS:
        raise QdtInputError("--keep", f"one of {', '.join(KEEPS)}", keep)
    keep = "last" if construct else keep  # a construction visits no placement to keep
    skipped = check_configs(shapes, agents, training, max_critic_qubits)
    runs: list[BenchRun] = []
    for shape in shapes:
        n, m = shape
        for spec in agents:
            for seed in range(seeds):
                config = training.config(spec, seed, shape)
                if not trains(config, shape, max_critic_qubits):
                    break
                runs.append(
                    bench_run(
                        (shape, spec.label, seed),
                        f"{n}x{m} {spec.label} seed {seed}",
                        config,
                        family_instance(config),
                        f"family {config.family}",
                    )
                )
    runs.sort(key=lambda run: -math.prod(_key(run)[0]))  # the long runs first
    trained = train_runs(
        runs,
        runs_dir,
        name="bench-generalise",
        workers=workers,
        ray_address=ray_address,
        retry_failed=retry_failed,
        on_result=on_result,
    )
    rows: list[dict[str, Any]] = []
    baselines: dict[tuple[int, int], list[Baseline]] = {}
    with _torch_threads(1):
        for shape in shapes:
            finished = [
                (run, run_dir)
                for run in runs
                if _key(run)[0] == shape and (run_dir := trained.run_dir(run.key)) is not None
            ]
            shape_rows, baselines[shape] = evaluate_shape(
                shape,
                unseen_instances(shape, unseen, tight),
                finished,
                tight,
                milp_limit_s,
                sampling,
                keep,
                milp_gap,
                local_search,
            )
            rows.extend(shape_rows)
            if on_shape is not None:
                on_shape(f"{shape[0]}x{shape[1]}")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_rows(out_dir / "generalise.csv", rows, ROW_FIELDS)
    summary = summarise(rows, baselines, agents)
    targets = check_targets(summary, tight, bounded=milp_gap > 0)
    wall = time.perf_counter() - start
    notes = run_notes(skipped, max_critic_qubits, trained)
    credit = None if construct else training.ppo_credit  # a construction never runs the learner
    setting = (
        f"{'tight ' if tight else ''}families users=N,servers=M, "
        f"{budget_text(training.recipe, seeds, training.episodes, training.quantum_episodes, credit)}, "
        f"{training_text(training)}, "
        f"{unseen} unseen instances per shape, MILP limit {milp_limit_s:g} s"
        + (
            f", gaps to its lower bound where it proved a placement within {100 * milp_gap:g}%"
            if milp_gap
            else ""
        )
        + (f", a decision the {sampling.describe()}" if sampling.sampled else "")
        + (f", a decision {KEEP_TEXT}" if not construct and keep == "best" else "")
        + (f", {LOCAL_SEARCH_SETTING}" if local_search else "")
    )
    markdown = write_markdown(
        out_dir,
        summary,
        baselines,
        targets,
        setting,
        wall,
        notes,
        construct,
        training.construct_guard,
        sampling,
        keep,
        milp_gap,
        local_search,
    )
    plot_generalise(out_dir / "generalise.png", rows, baselines, summary, setting, bounded=milp_gap > 0)
    return {
        "wall_s": wall,
        "rows": rows,
        "summary": summary,
        "targets": targets,
        "markdown": markdown,
        "trained": trained.trained,
        "failures": trained.failures,
        "skipped": skipped,
    }


UNTRAINED_TEXT = {
    False: "the same rollout fed the freshly initialised actors' scores",
    True: "the same construction by the freshly initialised actors",
}
"""What the ``untrained`` column measures, for score-then-decode runs (False) and constructing ones."""

DECISION_TEXT = {
    False: "the actors rebound to the instance, the start placement, up to N_t steps of scoring and "
    "decoding, ended at a fixed point",
    True: "the actor rebound to the instance, N steps from the empty placement, each one actor call "
    "scoring every unplaced user on every server, then greedy's repair if a user fitted nowhere",
}
"""What a decision's time covers, for score-then-decode runs (False) and constructing ones."""

GUARD_TEXT = (
    "; each step kept completable: where the actor's server differs from the last feasible "
    "smallest-share completion's, one more completion checks it"
)
"""What a decision of a guarded construction (``construct_guard = "completion"``) adds."""

KEEP_TEXT = "the best placement its rollout visited, greedy-with-repair's start included"
"""What a rollout's decision is with ``keep = "best"`` (qdt/rl/rollout.py)."""

SAMPLING_TEXT = (
    "; all the constructions in one batch, K times the rows per actor call, the feasible one of "
    "least total latency kept"
)
"""What a sampled decision (``--samples`` > 1) adds."""

KEEP_TIME_TEXT = "; every placement visited evaluated, the best feasible one kept"
"""What a rollout's decision with ``keep = "best"`` adds to its time."""

LOCAL_SEARCH_SETTING = (
    "every decision, untrained decoding, greedy's and random's placement ended with the local search "
    "(the best single-user move or two-user swap until none lowers the total latency: "
    "qdt/problem/local_search.py)"
)
"""What ``local_search`` (``--local-search``) changes, for the bench's setting line."""

LOCAL_SEARCH_TIME_TEXT = "; then the local search (of every construction, before the best is kept)"
"""What the local search adds to a decision's time."""


def training_text(training: GeneraliseTraining) -> str:
    """How the bench's runs learnt, for its setting line."""
    imitation, construct = training.imitation, training.construct
    settings = {**training.settings(), "quantum input_scaling": training.quantum_scaling()}
    if training.lr_quantum is not None:
        settings["quantum lr_quantum"] = training.lr_quantum
    actors = ", ".join(f"{key} {value}" for key, value in settings.items())
    if construct:
        how = (
            "constructing user by user, imitating the MILP's optima and completions (DAgger) in every episode"
        )
    elif imitation is None:
        how = "imitating the MILP optimum of every episode's training draws"
    elif imitation == 0:
        how = "from rewards only"
    else:
        how = f"imitating the MILP optimum for the first {imitation} episodes, then from rewards"
    return f"{how} ({actors})"


def _key(run: BenchRun) -> tuple[tuple[int, int], str, int]:
    """This bench's key of a run: (shape, agent label, seed)."""
    return cast(tuple[tuple[int, int], str, int], run.key)


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---- one shape's unseen instances -----------------------------------------------------------
@dataclass(frozen=True)
class Baseline:
    """One unseen instance: the MILP's result and time, greedy's and random's gaps."""

    index: int
    digest: str
    milp_status: str
    optimum_s: float | None  # None: no optimum proven within the limit
    milp_ms: float | None  # the in-process solve (module docstring); None without an optimum (bound)
    greedy_gap: float | None  # None: greedy found no placement (or no optimum to compare with)
    greedy_ms: float
    random_gap: float | None  # None: the decoding of random scores is infeasible (or no optimum)
    bound_s: float | None = None  # the MILP's proven lower bound on the optimum (the optimum, if proven)
    milp_latency_s: float | None = None  # the MILP's placement's total latency (None: it found none)
    bounded: bool = False  # gaps are to bound_s: HiGHS proved a placement within milp_gap

    @property
    def reference_s(self) -> float | None:
        """What this instance's gaps are measured to: the optimum, or with ``bounded`` HiGHS's
        lower bound on it; None when the MILP proved neither within the limit."""
        return self.bound_s if self.bounded else self.optimum_s

    @property
    def solved(self) -> bool:
        return self.reference_s is not None

    @property
    def milp_gap(self) -> float | None:
        """The MILP's own placement's gap to the reference (0 at a proven optimum)."""
        return relative_gap(self.milp_latency_s, self.reference_s)


def solve_baselines(
    model: PlacementModel,
    index: int,
    digest: str,
    milp_limit_s: float,
    milp_gap: float = 0.0,
    local_search: bool = False,
) -> Baseline:
    """The MILP (limited, then timed in this process where it proved an optimum, or with
    ``milp_gap`` > 0 a placement within that share of it), greedy (timed) and one pass of the
    feasible decoding over uniform random scores, on one unseen instance; with ``local_search``
    greedy's and random's placements then improved by the local search (greedy's time includes it)."""
    limited = solve(model, "milp", time_limit_s=milp_limit_s, rel_gap=milp_gap)
    proven = "feasible" if milp_gap else "optimal"  # what HiGHS returns when it finished in time
    optimum = limited.total_latency_s if limited.status == "optimal" else None
    bounded = milp_gap > 0 and limited.status == proven and limited.lower_bound_s is not None
    reference = limited.lower_bound_s if bounded else optimum
    milp_ms = None
    if reference is not None:  # the same problem again, in this process: timed without the child
        begin = time.perf_counter()
        again = solve(model, "milp", rel_gap=milp_gap)
        elapsed = time.perf_counter() - begin
        milp_ms = 1e3 * elapsed if again.status == proven else None
    begin = time.perf_counter()
    greedy = solve(model, "greedy")
    greedy_latency = greedy.total_latency_s if greedy.status == "feasible" else None
    if local_search and greedy.assignment is not None and greedy_latency is not None:
        improved = improve_placements(model, model.assignment_to_matrix(greedy.assignment))
        greedy_latency = float((improved * model.latency).sum())
    greedy_ms = 1e3 * (time.perf_counter() - begin)
    rng = np.random.default_rng(np.random.SeedSequence(RANDOM_SCORES_SEED, spawn_key=(index,)))
    placed = decode_feasible(model, rng.random((model.n_users, model.n_servers))).placement
    if local_search:
        placed = improve_placements(model, placed)
    return Baseline(
        index=index,
        digest=digest,
        milp_status=limited.status,
        optimum_s=optimum,
        milp_ms=milp_ms,
        greedy_gap=relative_gap(greedy_latency, reference),
        greedy_ms=greedy_ms,
        random_gap=_gap(model.evaluate(placed), reference),
        bound_s=limited.lower_bound_s,
        milp_latency_s=limited.total_latency_s,
        bounded=bounded,
    )


def _gap(evaluation: Evaluation, reference: float | None) -> float | None:
    """An evaluated placement's gap to ``reference`` (the optimum, or a lower bound on it); None when
    it is infeasible or there is no reference."""
    return relative_gap(evaluation.total_latency_s if evaluation.feasible else None, reference)


def evaluate_shape(
    shape: tuple[int, int],
    instances: Sequence[Instance],
    finished: Sequence[tuple[BenchRun, Path]],
    tight: bool,
    milp_limit_s: float,
    sampling: Sampling = PLAIN,
    keep: Keep = "last",
    milp_gap: float = 0.0,
    local_search: bool = False,
) -> tuple[list[dict[str, Any]], list[Baseline]]:
    """Rows (one per finished run and unseen instance) and the instances' baselines.

    Per instance, in turn: the baselines, then each run's decision (timed); so a change of load on
    the machine falls on the MILP and the policies alike. Each policy is loaded once and warmed up
    by one untimed decision; the untrained decodings (not timed) come after, one run at a time, and
    with sampled decisions (``sampling``) also each run's plain construction (``plain_gap``, not timed),
    with a rollout's best visited placement (``keep = "best"``) its last one. ``local_search``:
    every decision and baseline then improved by the local search (:func:`solve_baselines`,
    :attr:`TrainedPolicy.local_search`).
    """
    models = [PlacementModel(instance) for instance in instances]
    policies: list[tuple[BenchRun, Path, TrainedPolicy]] = []
    for run, run_dir in finished:
        policy = load_policy(run_dir, instance=instances[0])
        policy.sample(sampling, sampling_seed(run, untrained=False))
        policy.keep = keep
        policy.local_search = local_search
        policy.placement()  # warm-up: lazy initialisation stays out of the first timed decision
        policies.append((run, run_dir, policy))
    baselines: list[Baseline] = []
    decisions: dict[Any, list[tuple[np.ndarray, float]]] = {run.key: [] for run, _, _ in policies}
    for index, (instance, model) in enumerate(zip(instances, models)):
        baselines.append(
            solve_baselines(model, index, instance_digest(instance), milp_limit_s, milp_gap, local_search)
        )
        for run, _, policy in policies:
            begin = time.perf_counter()
            policy.rebind(instance, model)
            placement = policy.placement()
            decisions[run.key].append((placement, 1e3 * (time.perf_counter() - begin)))
    rows = []
    for run, run_dir, policy in policies:
        assert run.cell.config is not None  # a finished run has its config
        config = run.cell.config
        summary = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
        untrained = Trainer(config, family_instance(config))  # never trained: its initial actors
        untrained_rng = np.random.default_rng(sampling_seed(run, untrained=True))
        searched = searched_decision(sampling, keep, policy.constructs)
        if sampling.sampled:
            policy.sample(PLAIN, sampling_seed(run, untrained=False))  # the plain construction
        policy.keep = "last"  # a rollout's plain decision: its last placement
        for instance, base, model, (placement, decision_ms) in zip(
            instances, baselines, models, decisions[run.key]
        ):
            evaluation = model.evaluate(placement)
            untrained_eval = model.evaluate(
                untrained.greedy_placement(model, sampling, untrained_rng, keep, local_search)
            )
            plain_eval = evaluation
            if searched:
                policy.rebind(instance, model)
                plain_eval = model.evaluate(policy.placement())
            rows.append(
                {
                    "users": shape[0],
                    "servers": shape[1],
                    "tight": tight,
                    "agent": _key(run)[1],
                    "seed": _key(run)[2],
                    "instance": base.index,
                    "instance_digest": base.digest,
                    "milp_status": base.milp_status,
                    "optimum_total_latency_s": base.optimum_s,
                    "lower_bound_total_latency_s": base.bound_s,
                    "milp_total_latency_s": base.milp_latency_s,
                    "gap_to_bound": base.bounded,
                    "milp_gap": base.milp_gap,
                    "milp_ms": base.milp_ms,
                    "greedy_gap": base.greedy_gap,
                    "greedy_ms": base.greedy_ms,
                    "random_gap": base.random_gap,
                    "feasible": bool(evaluation.feasible),
                    "total_latency_s": evaluation.total_latency_s,
                    "gap": _gap(evaluation, base.reference_s),
                    "decision_ms": decision_ms,
                    "untrained_feasible": bool(untrained_eval.feasible),
                    "untrained_gap": _gap(untrained_eval, base.reference_s),
                    "samples": sampling.samples,
                    "keep": None if policy.constructs else keep,
                    "local_search": local_search,
                    "plain_feasible": bool(plain_eval.feasible),
                    "plain_gap": _gap(plain_eval, base.reference_s),
                    "episodes": summary["episodes"],
                    "s_per_episode": summary["wall_s"] / max(1, summary["episodes"]),
                }
            )
        del untrained
        if policy.executor is not None:
            policy.executor.close()
    return rows, baselines


# ---- the summary ----------------------------------------------------------------------------
def _scored(gap: float | None) -> float:
    """A gap as the medians count it: an infeasible placement (None) as infinitely far."""
    return math.inf if gap is None else float(gap)


def quantiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(25%, 50%, 75%) of gaps that may be infinite (infeasible), linear between neighbours, a
    quantile that reaches an infeasible one infinite."""
    data = np.asarray(values, dtype=np.float64)
    q = [
        math.inf if v > _BIG / 1e3 else float(v)
        for v in np.percentile(np.where(np.isinf(data), _BIG, data), [25, 50, 75])
    ]
    return q[0], q[1], q[2]


def _median(values: Sequence[float]) -> float | None:
    return quantiles(values)[1] if len(values) else None


def summarise(
    rows: list[dict[str, Any]], baselines: dict[tuple[int, int], list[Baseline]], agents: Sequence[AgentSpec]
) -> list[dict[str, Any]]:
    """One entry per (shape, agent) with runs: the module docstring's numbers, over the instances
    with a proven optimum (or a proven bound: module docstring, Gaps to a bound)."""
    out = []
    for shape, bases in baselines.items():
        solved = [b for b in bases if b.solved]
        solved_ids = {b.index for b in solved}
        milp_ms = [b.milp_ms for b in solved if b.milp_ms is not None]
        for spec in agents:
            runs = [r for r in rows if (r["users"], r["servers"]) == shape and r["agent"] == spec.label]
            if not runs:
                continue
            seeds = sorted({r["seed"] for r in runs})
            mine = [r for r in runs if r["instance"] in solved_ids]
            per_seed = {
                seed: _median([_scored(r["gap"]) for r in mine if r["seed"] == seed]) for seed in seeds
            }
            seed_medians = [v for v in per_seed.values() if v is not None]
            q1, median, q3 = quantiles([_scored(r["gap"]) for r in mine]) if mine else (None, None, None)
            # over the instances the MILP solved; over all of them when it solved none
            decision_ms = [r["decision_ms"] for r in (mine or runs)]
            entry: dict[str, Any] = {
                "users": shape[0],
                "servers": shape[1],
                "agent": spec.label,
                "seeds": len(seeds),
                "instances": len(bases),
                "solved": len(solved),
                "episodes": sorted({r["episodes"] for r in runs}),
                "s_per_episode": float(
                    np.median([next(r["s_per_episode"] for r in runs if r["seed"] == s) for s in seeds])
                ),
                "feasible_share": float(np.mean([r["feasible"] for r in mine])) if mine else None,
                "gap_median": median,
                "gap_q1": q1,
                "gap_q3": q3,
                "seed_medians": per_seed,
                "iqm": iqm_interval([[INFEASIBLE_GAP if math.isinf(v) else v for v in seed_medians]])
                if seed_medians
                else None,
                "greedy_gap_median": _median([_scored(b.greedy_gap) for b in solved]),
                "random_gap_median": _median([_scored(b.random_gap) for b in solved]),
                "untrained_gap_median": _median([_scored(r["untrained_gap"]) for r in mine]),
                "plain_gap_median": _median([_scored(r.get("plain_gap", r["gap"])) for r in mine]),
                "decision_ms_median": float(np.median(decision_ms)) if decision_ms else None,
                "milp_ms_median": float(np.median(milp_ms)) if milp_ms else None,
            }
            dec, milp = entry["decision_ms_median"], entry["milp_ms_median"]
            entry["speedup"] = milp / dec if dec and milp is not None else None
            out.append(entry)
    return out


def check_targets(summary: list[dict[str, Any]], tight: bool, bounded: bool = False) -> list[dict[str, Any]]:
    """The issue's targets, one entry per (shape, agent, target): ``met`` and the numbers behind it.

    On :data:`TARGET_SHAPES` (every shape run when none of them is): median gap within 2%, no worse
    than greedy's median, 100% feasible where the MILP proved an optimum, median decision at least
    :data:`TARGET_SPEEDUP` times faster than the MILP's; on a tight family also better than greedy
    and than the untrained decoding; and the quantum agent's IQM within the classical agent's
    interval or better. With ``bounded`` every gap is to the MILP's lower bound (module docstring),
    so a met median-gap target holds for the gap to the optimum, and a missed one is not decided."""
    shapes = {(e["users"], e["servers"]) for e in summary}
    checked = [e for e in summary if (e["users"], e["servers"]) in TARGET_SHAPES] or (
        summary if not shapes & set(TARGET_SHAPES) else []
    )
    out: list[dict[str, Any]] = []

    def add(entry: dict[str, Any], target: str, met: bool | None, numbers: str) -> None:
        out.append(
            {
                "shape": f"{entry['users']}×{entry['servers']}",
                "agent": entry["agent"],
                "target": target,
                "met": met,
                "numbers": numbers,
            }
        )

    to = " to the MILP's lower bound" if bounded else ""
    proved = "a bound" if bounded else "an optimum"
    for e in checked:
        gap, greedy, untrained = e["gap_median"], e["greedy_gap_median"], e["untrained_gap_median"]
        add(e, f"median gap{to} ≤ {100 * WITHIN:g}%", None if gap is None else gap <= WITHIN, _percent(gap))
        add(
            e,
            "median gap no worse than greedy's",
            None if gap is None or greedy is None else gap <= greedy,
            f"{_percent(gap)} vs greedy {_percent(greedy)}",
        )
        share = e["feasible_share"]
        add(
            e,
            f"100% feasible where the MILP proved {proved}",
            None if share is None else share == 1.0,
            "-" if share is None else f"{100 * share:.1f}% of {e['solved']} instances × {e['seeds']} seeds",
        )
        if tight:
            add(
                e,
                "better than greedy (tight family)",
                None if gap is None or greedy is None else gap < greedy,
                f"{_percent(gap)} vs greedy {_percent(greedy)}",
            )
            add(
                e,
                "better than the untrained decoding (tight family)",
                None if gap is None or untrained is None else gap < untrained,
                f"{_percent(gap)} vs untrained {_percent(untrained)}",
            )
        speedup = e["speedup"]
        add(
            e,
            f"median decision ≥ {TARGET_SPEEDUP:g}× faster than the MILP's",
            None if speedup is None else speedup >= TARGET_SPEEDUP,
            "-"
            if speedup is None
            else f"{speedup:.1f}× ({_ms(e['decision_ms_median'])} vs MILP {_ms(e['milp_ms_median'])})",
        )
    by_key = {(e["users"], e["servers"], e["agent"]): e for e in checked}
    for (n, m, agent), e in by_key.items():
        classical = by_key.get((n, m, "classical"))
        if agent == "classical" or classical is None or e["iqm"] is None or classical["iqm"] is None:
            continue
        point, (c_point, c_low, c_high) = e["iqm"][0], classical["iqm"]
        add(
            e,
            "IQM within the classical agent's interval or better",
            point <= c_high,
            f"{_percent(point)} vs classical {_percent(c_point)} [{_percent(c_low)}, {_percent(c_high)}]",
        )
    return out


# ---- tables ---------------------------------------------------------------------------------
def _percent(value: float | None, missing: str = "-") -> str:
    if value is None:
        return missing
    if math.isinf(value):
        return "infeasible"
    return f"{100 * value:.2f}%"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g} ms" if value < 100 else f"{value:.0f} ms"


def _verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("**met**" if met else "**not met**")


def write_markdown(
    out_dir: Path,
    summary: list[dict[str, Any]],
    baselines: dict[tuple[int, int], list[Baseline]],
    targets: list[dict[str, Any]],
    setting: str,
    wall: float,
    notes: str = "",
    construct: bool = False,
    guard: ConstructGuard = "none",
    sampling: Sampling = PLAIN,
    keep: Keep = "last",
    milp_gap: float = 0.0,
    local_search: bool = False,
) -> str:
    sampled = searched_decision(sampling, keep, construct)
    bounded = milp_gap > 0
    plain_name = "one construction" if construct else "last placement"
    header = [
        "N×M",
        "agent",
        "episodes",
        "ms/episode",
        "feasible",
        "gap to bound median [IQR]" if bounded else "gap median [IQR]",
        *([plain_name] if sampled else []),
        "IQM of seed medians [95%]",
        "greedy",
        "random",
        "untrained",
        "decision",
        "MILP",
        "MILP/decision",
    ]
    table = []
    for e in summary:
        iqm = e["iqm"]
        table.append(
            [
                f"{e['users']}×{e['servers']}",
                e["agent"],
                "/".join(str(v) for v in e["episodes"]),
                f"{1e3 * e['s_per_episode']:.0f}",
                "-" if e["feasible_share"] is None else f"{100 * e['feasible_share']:.1f}%",
                "-"
                if e["gap_median"] is None
                else f"{_percent(e['gap_median'])} [{_percent(e['gap_q1'])}, {_percent(e['gap_q3'])}]",
                *([_percent(e["plain_gap_median"])] if sampled else []),
                "-" if iqm is None else f"{_percent(iqm[0])} [{_percent(iqm[1])}, {_percent(iqm[2])}]",
                _percent(e["greedy_gap_median"]),
                _percent(e["random_gap_median"]),
                _percent(e["untrained_gap_median"]),
                _ms(e["decision_ms_median"]),
                _ms(e["milp_ms_median"]),
                "-" if e["speedup"] is None else f"{e['speedup']:.1f}×",
            ]
        )
    seed_rows = [
        [
            f"{e['users']}×{e['servers']}",
            e["agent"],
            ", ".join(f"{s}: {_percent(v)}" for s, v in e["seed_medians"].items()),
        ]
        for e in summary
    ]
    instance_rows = []
    for (n, m), bases in baselines.items():
        solved = [b for b in bases if b.solved]
        greedy_ok = sum(b.greedy_gap is not None for b in solved)
        instance_rows.append(
            [
                f"{n}×{m}",
                len(bases),
                len(solved),
                *([_percent(_median([_scored(b.milp_gap) for b in solved]))] if bounded else []),
                f"{greedy_ok}/{len(solved)}",
                _percent(_median([_scored(b.greedy_gap) for b in solved])),
                _ms(float(np.median([b.greedy_ms for b in solved])) if solved else None),
                _ms(
                    float(np.median([b.milp_ms for b in solved if b.milp_ms is not None])) if solved else None
                ),
            ]
        )
    target_lines = [
        f"- {t['shape']} {t['agent']}: {t['target']}: {_verdict(t['met'])} ({t['numbers']})" for t in targets
    ]
    shapes_run = {(e["users"], e["servers"]) for e in summary}
    target_intro = (
        "Targets (issue 17) on the shapes 32×8 and 64×8:"
        if shapes_run & set(TARGET_SHAPES)
        else "Targets (issue 17; stated on 32×8 and 64×8, not in this run, so checked on its own shapes):"
    )
    over = (
        f"Over the unseen instances where the MILP proved a placement within {100 * milp_gap:g}% of the "
        "optimum: feasible share; gap of the trained policy's placement to the MILP's lower bound on the "
        "optimum (HiGHS's dual bound; never below the gap to the optimum, so an upper bound on it)"
        if bounded
        else "Over the unseen instances with a proven optimum: feasible share; gap of the trained "
        "policy's placement to the optimum"
    )
    note = (
        f"{setting}. {over}, median and interquartile range pooled over seeds (an infeasible "
        "placement counts as infinitely far); the interquartile mean of the seeds' median gaps with its 95% "
        f"bootstrap interval (a seed whose median is infeasible counts as {100 * INFEASIBLE_GAP:.0f}%); "
        "greedy: greedy-with-repair; random: the feasible decoding fed uniform random scores, one pass; "
        f"untrained: {UNTRAINED_TEXT[construct]} (pooled over seeds); "
        + (
            "one construction: the median gap of each run's plain construction (no sampling, not timed); "
            f"the decision and the untrained column are the {sampling.describe()}; "
            if sampled and construct
            else ""
        )
        + (
            "last placement: the median gap of each run's rollout's last placement, the policy's own "
            f"answer (not timed); the decision and the untrained column are {KEEP_TEXT}; "
            if sampled and not construct
            else ""
        )
        + f"decision: median time of one placement ({DECISION_TEXT[construct]}"
        f"{GUARD_TEXT if guard != 'none' else ''}"
        f"{SAMPLING_TEXT if sampling.sampled else ''}"
        f"{KEEP_TIME_TEXT if sampled and not construct else ''}"
        f"{LOCAL_SEARCH_TIME_TEXT if local_search else ''}), MILP: median time of HiGHS on "
        + (
            f"the same instances to a placement proven within {100 * milp_gap:g}%"
            if bounded
            else "the same instances"
        )
        + ", both timed in this run, one "
        f"instance at a time. Wall time of the bench {wall:.0f} s."
    )
    text = "\n\n".join(
        [
            note,
            format_table(header, table, markdown=True),
            "Per seed: median gap over the unseen instances:",
            format_table(["N×M", "agent", "seed: median gap"], seed_rows, markdown=True),
            "Unseen instances (the same for every agent and seed; never a training draw):",
            format_table(
                [
                    "N×M",
                    "instances",
                    f"MILP within {100 * milp_gap:g}% proven" if bounded else "MILP optimum proven",
                    *(["MILP's placement gap to bound"] if bounded else []),
                    "greedy feasible",
                    "greedy gap",
                    "greedy",
                    "MILP",
                ],
                instance_rows,
                markdown=True,
            ),
            target_intro,
            "\n".join(target_lines) if target_lines else "(no trained run to check)",
        ]
    )
    (out_dir / "generalise.md").write_text(text + "\n" + (f"\n{notes}\n" if notes else ""))
    return (
        format_table(header, table)
        + "\n\n"
        + target_intro
        + "\n"
        + "\n".join(line.replace("**", "") for line in target_lines)
    )


# ---- the figure -----------------------------------------------------------------------------
def plot_generalise(
    path: Path,
    rows: list[dict[str, Any]],
    baselines: dict[tuple[int, int], list[Baseline]],
    summary: list[dict[str, Any]],
    setting: str,
    bounded: bool = False,
) -> None:
    """Left: per shape, the gap distributions (pooled over seeds) of each trained agent, greedy and
    random on the instances with a proven optimum (the share of infeasible placements in the
    legend's counts; with ``bounded``, the gaps to the MILP's lower bound, and the MILP's own
    placement beside them). Right: median decision time of each agent and the MILP's, log scale."""
    plt = pyplot()
    from matplotlib.ticker import FuncFormatter  # matplotlib after pyplot() picked its backend

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [3, 2]})
    shapes = list(baselines)
    agents = list(dict.fromkeys(e["agent"] for e in summary))
    series = [*agents, *(["MILP"] if bounded else []), "greedy", "random"]
    width = 0.8 / len(series)
    for k, name in enumerate(series):
        data, positions, infeasible, total = [], [], 0, 0
        for s, shape in enumerate(shapes):
            solved = {b.index: b for b in baselines[shape] if b.solved}
            if name in ("MILP", "greedy", "random"):
                gaps = [getattr(b, f"{name.lower()}_gap") for b in solved.values()]
            else:
                gaps = [
                    r["gap"]
                    for r in rows
                    if (r["users"], r["servers"]) == shape and r["agent"] == name and r["instance"] in solved
                ]
            total += len(gaps)
            infeasible += sum(g is None for g in gaps)
            finite = [100 * g for g in gaps if g is not None]
            if finite:
                data.append(finite)
                positions.append(s - 0.4 + width * (k + 0.5))
        if not data:
            if total:  # nothing feasible to draw: still named, with its count
                left.plot(
                    [], [], "s", color=f"C{k}", alpha=0.6, label=f"{name} ({infeasible}/{total} infeasible)"
                )
            continue
        parts = left.boxplot(
            data,
            positions=positions,
            widths=width * 0.9,
            patch_artist=True,
            showfliers=False,
            manage_ticks=False,
            medianprops={"color": "black"},
        )
        for box in parts["boxes"]:
            box.set(facecolor=f"C{k}", alpha=0.6)
        label = f"{name}" + (f" ({infeasible}/{total} infeasible)" if infeasible else "")
        left.plot([], [], "s", color=f"C{k}", alpha=0.6, label=label)
    left.axhline(100 * WITHIN, color="0.5", lw=0.8, ls=":", label=f"{100 * WITHIN:g}%")
    left.set_xticks(range(len(shapes)), [f"{n}×{m}" for n, m in shapes])
    left.set(
        xlabel="N × M",
        ylabel="gap to the MILP's lower bound (%)" if bounded else "gap to the MILP optimum (%)",
    )
    left.set_title("unseen instances: gap (box: quartiles, whiskers 1.5 IQR)", fontsize=9)
    left.grid(alpha=0.3, axis="y")
    left.legend(fontsize=7)
    for k, agent in enumerate(agents):
        pts = [
            (shapes.index((e["users"], e["servers"])), e["decision_ms_median"])
            for e in summary
            if e["agent"] == agent and e["decision_ms_median"]
        ]
        if pts:
            right.plot(*zip(*pts), "o-", color=f"C{k}", label=f"{agent} decision")
    milp = [
        (s, float(np.median([b.milp_ms for b in baselines[shape] if b.milp_ms is not None])))
        for s, shape in enumerate(shapes)
        if any(b.milp_ms is not None for b in baselines[shape])
    ]
    if milp:
        right.plot(*zip(*milp), "k^--", label="MILP (HiGHS" + (", to its bound)" if bounded else ")"))
    right.set_yscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    right.yaxis.set_major_formatter(plain)
    right.yaxis.set_minor_formatter(plain)
    right.set_xticks(range(len(shapes)), [f"{n}×{m}" for n, m in shapes])
    right.set(xlabel="N × M", ylabel="median time per instance (ms)")
    right.set_title("one placement: policy (scoring + decoding) vs MILP", fontsize=9)
    right.grid(alpha=0.3, which="both")
    right.legend(fontsize=7)
    fig.suptitle(textwrap.fill(setting, 160), fontsize=8)  # the setting line is long: wrapped, not cut
    save_figure(fig, path)
