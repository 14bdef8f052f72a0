"""``qdt bench scale``: learned placements from 8 to 64 users, against the MILP optimum and greedy.

For every shape N × M of the grid (default 8×2, 16×4, 32×8, 64×8; ``--full``: N ∈ {8, 16, 32,
64} × M ∈ {2, 4, 8}; ``--quick``: 4×2 and 8×2 for CI) one instance is drawn with the generator
(``tight`` by default: ``qdt/problem/generator.py``, "Tight instances"), the first seed from
``instance_seed`` on whose instance the MILP proves an optimum within ``milp_limit_s``. Every
agent (classical, quantum L = 6) is trained on it with ``seeds`` seeds by the chosen recipe
(``qdt/rl/config.py``; default ``qdt train``'s on one instance, v5). Reported per (N, M, agent):

* feasible runs, and the gap of the trained policy's placement to the optimum: median and
  min–max over the seeds, runs within 2%, runs better than greedy-with-repair;
* greedy-with-repair's gap, and the gap of the same decoding fed the untrained (freshly
  initialised) policy's scores: what the learned scores add;
* time per episode (median over seeds) and the runs' wall time (sum);
* per agent, the interquartile mean of the gap over every run of every shape, with a 95%
  stratified-bootstrap interval (:func:`qdt.stats.iqm_interval`, as rliable computes it); an
  infeasible run counts as a gap of :data:`INFEASIBLE_GAP`.

Quantum agents whose critic needs more than ``max_critic_qubits`` qubits are not trained (listed
under the table); ``quantum_episodes`` gives the quantum runs whose critic needs
:data:`SLOW_CRITIC_QUBITS` or more qubits a smaller budget, since they are slow, and the
table says what was run (its episodes column). The runs are cells of a sweep on qdt's Ray
engine in ``runs_dir`` (:mod:`qdt.experiments.bench.runs`): resumed after an interruption,
reused when finished; a run that fails is named under the table.

Outputs in ``out_dir``: scale.csv (one row per run), scale.md (the tables), scale.png (gap
against N).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qdt.circuits.vqc import MAX_QUBITS
from qdt.errors import QdtInputError
from qdt.experiments.bench.paper import AgentSpec
from qdt.experiments.bench.runs import OnRun, TrainedRuns, bench_run, failure_note, train_runs
from qdt.experiments.tables import format_table
from qdt.plots import pyplot, save_figure
from qdt.problem.generator import GeneratorConfig, generate_instance, tight_config
from qdt.problem.instance import Instance
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import solve
from qdt.rl.builders import agent_qubits, check_fits
from qdt.rl.config import DEFAULT_RECIPE, TrainConfig
from qdt.rl.train import SUMMARY_FILE, relative_gap
from qdt.stats import iqm_interval

DEFAULT_SHAPES: tuple[tuple[int, int], ...] = ((8, 2), (16, 4), (32, 8), (64, 8))
FULL_SHAPES: tuple[tuple[int, int], ...] = tuple((n, m) for n in (8, 16, 32, 64) for m in (2, 4, 8))
QUICK_SHAPES: tuple[tuple[int, int], ...] = ((4, 2), (8, 2))
DEFAULT_AGENTS = (AgentSpec("classical", "classical", 0), AgentSpec("quantum L=6", "quantum", 6))
DEFAULT_SEEDS = 5
GENERATORS = ("tight", "default")
DEFAULT_MAX_CRITIC_QUBITS = 10  # the 64 x 8 critic; MAX_QUBITS (12) is the most a VQC may have
MILP_LIMIT_S = 20.0
"""The MILP's time per candidate instance. Tight 32 × 8 instances take it 1–35 s (median 11 s);
on tight 64 × 8 ones it proved no optimum within 40 s (6 of 6 tried), so after
:data:`INSTANCE_TRIES` the bench draws default 64 × 8 instances, which it solves in about 1 s."""
INSTANCE_TRIES = 8
GREEDY_OPTIMAL = 1e-9  # greedy's gap at or below this: greedy found the optimum
WITHIN = 0.02
INFEASIBLE_GAP = 1.0
"""The gap an infeasible run counts as in the IQM (100%, worse than any run measured), so that a
run that ends infeasible weighs against its agent instead of dropping out of the aggregate."""
ROW_FIELDS = [
    "users",
    "servers",
    "instance_seed",
    "agent",
    "seed",
    "recipe",
    "episodes",
    "actor_qubits",
    "critic_qubits",
    "feasible",
    "gap",
    "untrained_feasible",
    "untrained_gap",
    "greedy_gap",
    "optimum_total_latency_s",
    "s_per_episode",
    "wall_s",
]


@dataclass(frozen=True)
class ScaleInstance:
    """One shape's instance, its proven optimum and greedy-with-repair's result on it."""

    users: int
    servers: int
    seed: int
    kind: str  # the generator settings: "tight" or "default"
    instance: Instance
    optimum_s: float
    milp_s: float
    greedy_gap: float | None  # None: greedy found no feasible placement

    @property
    def label(self) -> str:
        return f"{self.users}x{self.servers}"


def check_max_critic_qubits(value: int) -> int:
    """``--max-critic-qubits``: 1 to MAX_QUBITS (qdt/circuits/vqc.py), else one clear error."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_QUBITS:
        raise QdtInputError(
            "--max-critic-qubits",
            f"an integer from 1 to {MAX_QUBITS} (a VQC has at most {MAX_QUBITS} qubits: qdt/circuits/vqc.py)",
            value,
        )
    return value


def scale_instance(
    users: int, servers: int, generator: str, first_seed: int, milp_limit_s: float = MILP_LIMIT_S
) -> ScaleInstance:
    """The first instance (seed ≥ ``first_seed``) whose optimum the MILP proves within the limit
    and that greedy-with-repair misses (a gap above 0, or no placement): the instances this bench
    studies. Tight instances of 64 users and more can defeat the MILP; after ``INSTANCE_TRIES``
    of them the default settings are drawn instead, and the instance table says so."""
    if generator not in GENERATORS:
        raise QdtInputError("--instances", f"one of {', '.join(GENERATORS)}", generator)
    for kind in dict.fromkeys((generator, "default")):
        config = (
            tight_config(users, servers) if kind == "tight" else GeneratorConfig(users=users, servers=servers)
        )
        for seed in range(first_seed, first_seed + INSTANCE_TRIES):
            instance = generate_instance(config, seed)
            model = PlacementModel(instance)
            start = time.perf_counter()
            optimum = solve(model, "milp", time_limit_s=milp_limit_s)
            milp_s = time.perf_counter() - start
            if optimum.status != "optimal" or optimum.total_latency_s is None:
                continue
            greedy = solve(model, "greedy")
            gap = relative_gap(greedy.total_latency_s, optimum.total_latency_s)
            if gap is not None and gap <= GREEDY_OPTIMAL:
                continue
            return ScaleInstance(users, servers, seed, kind, instance, optimum.total_latency_s, milp_s, gap)
    raise RuntimeError(
        f"no {generator} {users}x{servers} instance among seeds {first_seed}.."
        f"{first_seed + INSTANCE_TRIES - 1} has an optimum the MILP proves within {milp_limit_s:g} s "
        "and that greedy misses"
    )


def critic_qubits(recipe: str, users: int, servers: int) -> int:
    """The qubits of the quantum critic ``recipe`` trains at N x M (0: it trains none)."""
    return agent_qubits(TrainConfig.from_recipe(recipe, agent="quantum"), users, servers)[1]


def is_trained(spec: AgentSpec, users: int, servers: int, max_critic_qubits: int, recipe: str) -> bool:
    """Whether the bench trains ``spec`` at N x M by ``recipe``: quantum only where its critic needs
    at most ``max_critic_qubits`` (always, for a recipe that trains no critic)."""
    if spec.agent != "quantum":
        return True
    return critic_qubits(recipe, users, servers) <= max_critic_qubits


SLOW_CRITIC_QUBITS = 10
"""From this many critic qubits (64 × 8) a quantum episode takes tens of seconds on 2 cores with
today's statevector kernel: ``quantum_episodes`` sets those runs' budget."""


def bench_config(
    spec: AgentSpec,
    seed: int,
    recipe: str,
    episodes: int | None,
    quantum_episodes: int | None,
    shape: tuple[int, int],
    **fixed: Any,
) -> TrainConfig:
    """``spec``'s config by ``recipe`` for seed ``seed`` at N x M ``shape``, with ``fixed`` on top
    (``qdt bench generalise``: the family and the features observation); ``quantum_episodes``
    replaces ``episodes`` for a quantum agent whose critic (as ``fixed`` makes it) needs
    :data:`SLOW_CRITIC_QUBITS` or more qubits."""
    changes: dict[str, Any] = {"agent": spec.agent, "seed": seed, **fixed}
    if spec.agent == "quantum":
        changes["layers"] = spec.layers
    budget = episodes
    if quantum_episodes is not None and spec.agent == "quantum":
        if agent_qubits(TrainConfig.from_recipe(recipe, **changes), *shape)[1] >= SLOW_CRITIC_QUBITS:
            budget = quantum_episodes
    if budget is not None:
        changes["episodes"] = budget
    return TrainConfig.from_recipe(recipe, **changes)


def run_scale_bench(
    out_dir: Path,
    runs_dir: Path,
    *,
    shapes: Sequence[tuple[int, int]] = DEFAULT_SHAPES,
    agents: Sequence[AgentSpec] = DEFAULT_AGENTS,
    seeds: int = DEFAULT_SEEDS,
    recipe: str = DEFAULT_RECIPE,
    episodes: int | None = None,
    quantum_episodes: int | None = None,
    ppo_credit: str | None = None,
    generator: str = "tight",
    instance_seed: int = 1,
    max_critic_qubits: int = DEFAULT_MAX_CRITIC_QUBITS,
    milp_limit_s: float = MILP_LIMIT_S,
    workers: int | None = None,
    ray_address: str | None = None,
    retry_failed: bool = False,
    on_result: OnRun | None = None,
) -> dict[str, Any]:
    """Train every (shape, agent, seed) as a sweep cell, then write scale.csv, scale.md, scale.png.
    ``ppo_credit``: the ppo learner's credit (``qdt train --ppo-credit``) on top of the recipe; None
    keeps the recipe's."""
    start = time.perf_counter()
    check_max_critic_qubits(max_critic_qubits)
    credit = credit_changes(ppo_credit)
    runs = []
    skipped: list[str] = []
    instances: dict[tuple[int, int], ScaleInstance] = {}
    for n, m in shapes:
        for spec in agents:  # every config and size is checked before any instance is solved
            if is_trained(spec, n, m, max_critic_qubits, recipe):
                check_fits(
                    bench_config(spec, 0, recipe, episodes, quantum_episodes, (n, m), **credit),
                    n,
                    m,
                    f"{n}x{m}",
                )
    for n, m in shapes:
        drawn = scale_instance(n, m, generator, instance_seed, milp_limit_s)
        instances[(n, m)] = drawn
        for spec in agents:
            if not is_trained(spec, n, m, max_critic_qubits, recipe):
                skipped.append(f"{n}x{m} {spec.label} ({critic_qubits(recipe, n, m)}-qubit critic)")
                continue
            for seed in range(seeds):
                config = bench_config(spec, seed, recipe, episodes, quantum_episodes, (n, m), **credit)
                runs.append(
                    bench_run(
                        ((n, m), spec.label, seed),
                        f"{n}x{m} {spec.label} seed {seed}",
                        config,
                        drawn.instance,
                        f"{drawn.kind}-{n}x{m}-s{drawn.seed}",
                    )
                )
    runs.sort(key=lambda run: -run.key[0][0] * run.key[0][1])  # the long runs first
    trained = train_runs(
        runs,
        runs_dir,
        name="bench-scale",
        workers=workers,
        ray_address=ray_address,
        retry_failed=retry_failed,
        on_result=on_result,
    )
    rows: list[dict[str, Any]] = []
    for run in runs:
        shape, label, seed = run.key
        run_dir = trained.run_dir(run.key)
        if run_dir is None or run.cell.config is None:
            continue  # failed: named under the table
        summary = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))  # all its fields
        config = run.cell.config
        drawn = instances[shape]
        actor_q, critic_q = agent_qubits(config, *shape) if config.agent == "quantum" else (0, 0)
        rows.append(
            {
                "users": shape[0],
                "servers": shape[1],
                "instance_seed": drawn.seed,
                "agent": label,
                "seed": seed,
                "recipe": config.recipe,
                "episodes": summary["episodes"],
                "actor_qubits": actor_q,
                "critic_qubits": critic_q,
                "feasible": summary["feasible"],
                "gap": summary["gap"],
                "untrained_feasible": summary.get("untrained_feasible"),
                "untrained_gap": summary.get("untrained_gap"),
                "greedy_gap": drawn.greedy_gap,
                "optimum_total_latency_s": drawn.optimum_s,
                "s_per_episode": summary["wall_s"] / max(1, summary["episodes"]),
                "wall_s": summary["wall_s"],
            }
        )
    rows.sort(key=lambda r: (r["users"] * r["servers"], r["users"], r["agent"], r["seed"]))
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "scale.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=ROW_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    summary_rows = summarise(rows, instances, agents)
    aggregates = aggregate(rows, agents)
    wall = time.perf_counter() - start
    notes = run_notes(skipped, max_critic_qubits, trained)
    fallback = sorted(f"{n}x{m}" for (n, m), drawn in instances.items() if drawn.kind != generator)
    kinds = f"{generator} instances" + (f" (default at {', '.join(fallback)})" if fallback else "")
    setting = f"{kinds}, {budget_text(recipe, seeds, episodes, quantum_episodes, ppo_credit)}"
    markdown = write_markdown(
        out_dir, summary_rows, aggregates, rows, instances, setting, wall, notes, trained=trained.trained
    )
    if rows:
        plot_scale(out_dir / "scale.png", summary_rows, setting)
    return {
        "wall_s": wall,
        "rows": rows,
        "summary": summary_rows,
        "aggregates": aggregates,
        "markdown": markdown,
        "trained": trained.trained,
        "failures": trained.failures,
        "skipped": skipped,
        "instances": {f"{n}x{m}": (drawn.kind, drawn.seed) for (n, m), drawn in instances.items()},
    }


def run_notes(skipped: Sequence[str], max_critic_qubits: int, trained: TrainedRuns) -> str:
    """The paragraphs under a bench's tables: the quantum runs not trained (critic too wide) and
    the runs that failed; "" when there are none."""
    skip_note = (
        f"Not trained (critic above --max-critic-qubits {max_critic_qubits}): " + ", ".join(skipped) + "."
        if skipped
        else ""
    )
    return "\n\n".join(note for note in (skip_note, failure_note(trained)) if note)


def credit_changes(ppo_credit: str | None) -> dict[str, Any]:
    """The config change ``--ppo-credit`` makes on top of a bench's recipe (none when not given)."""
    return {} if ppo_credit is None else {"ppo_credit": ppo_credit}


def budget_text(
    recipe: str,
    seeds: int,
    episodes: int | None,
    quantum_episodes: int | None,
    ppo_credit: str | None = None,
) -> str:
    """What a bench trained, for its tables and figure: recipe, seeds and the episode budgets."""
    return (
        f"recipe {recipe}"
        + (f" with --ppo-credit {ppo_credit}" if ppo_credit is not None else "")
        + f", {seeds} seeds per agent"
        + (f", {episodes} episodes" if episodes is not None else "")
        + (
            f" ({quantum_episodes} for quantum runs with a critic of {SLOW_CRITIC_QUBITS}+ qubits)"
            if quantum_episodes is not None
            else ""
        )
    )


def summarise(
    rows: list[dict[str, Any]], instances: dict[tuple[int, int], ScaleInstance], agents: Sequence[AgentSpec]
) -> list[dict[str, Any]]:
    """One line per (shape, agent) that has runs."""
    out = []
    for shape, drawn in instances.items():
        for spec in agents:
            mine = [r for r in rows if (r["users"], r["servers"]) == shape and r["agent"] == spec.label]
            if not mine:
                continue
            gaps = [r["gap"] for r in mine if r["feasible"] and r["gap"] is not None]
            untrained = [r["untrained_gap"] if r["untrained_feasible"] else math.inf for r in mine]
            greedy = drawn.greedy_gap
            out.append(
                {
                    "users": shape[0],
                    "servers": shape[1],
                    "instance_seed": drawn.seed,
                    "agent": spec.label,
                    "runs": len(mine),
                    "episodes": sorted({r["episodes"] for r in mine}),
                    "feasible": sum(bool(r["feasible"]) for r in mine),
                    "gap_median": float(np.median(gaps)) if gaps else None,
                    "gap_min": min(gaps) if gaps else None,
                    "gap_max": max(gaps) if gaps else None,
                    "within": sum(g <= WITHIN for g in gaps),
                    "beat_greedy": sum(greedy is None or g < greedy - 1e-12 for g in gaps),
                    "greedy_gap": greedy,
                    "untrained_gap_median": float(np.median(untrained)),
                    "s_per_episode": float(np.median([r["s_per_episode"] for r in mine])),
                    "wall_s": float(sum(r["wall_s"] for r in mine)),
                    "optimum_s": drawn.optimum_s,
                    "milp_s": drawn.milp_s,
                }
            )
    return out


def aggregate(
    rows: list[dict[str, Any]], agents: Sequence[AgentSpec]
) -> dict[str, tuple[float, float, float]]:
    """Per agent: IQM of the gap over all its runs, shapes as strata, with a 95% bootstrap interval."""
    out = {}
    for spec in agents:
        by_shape: dict[tuple[int, int], list[float]] = {}
        for r in rows:
            if r["agent"] == spec.label:
                gap = r["gap"] if r["feasible"] and r["gap"] is not None else INFEASIBLE_GAP
                by_shape.setdefault((r["users"], r["servers"]), []).append(gap)
        if by_shape:
            out[spec.label] = iqm_interval(list(by_shape.values()))
    return out


def _percent(value: float | None, missing: str = "infeasible") -> str:
    if value is None:
        return missing
    if math.isinf(value):
        return "infeasible"
    return f"{100 * value:.2f}%"


def write_markdown(
    out_dir: Path,
    summary_rows: list[dict[str, Any]],
    aggregates: dict[str, tuple[float, float, float]],
    rows: list[dict[str, Any]],
    instances: dict[tuple[int, int], ScaleInstance],
    setting: str,
    wall: float,
    notes: str = "",
    trained: int | None = None,
) -> str:
    """scale.md; ``trained``: how many of the runs this call trained (the others were reused)."""
    header = [
        "N×M",
        "agent",
        "episodes",
        "feasible",
        "gap median [min, max]",
        "within 2%",
        "beat greedy",
        "greedy gap",
        "untrained gap",
        "ms/episode",
        "wall (s)",
    ]
    table = [
        [
            f"{r['users']}×{r['servers']}",
            r["agent"],
            "/".join(str(e) for e in r["episodes"]),
            f"{r['feasible']}/{r['runs']}",
            "-"
            if r["gap_median"] is None
            else f"{_percent(r['gap_median'])} [{_percent(r['gap_min'])}, {_percent(r['gap_max'])}]",
            f"{r['within']}/{r['runs']}",
            f"{r['beat_greedy']}/{r['runs']}",
            _percent(r["greedy_gap"], "no placement"),
            _percent(r["untrained_gap_median"]),
            f"{1e3 * r['s_per_episode']:.0f}",
            f"{r['wall_s']:.0f}",
        ]
        for r in summary_rows
    ]
    iqm_rows = [
        [agent, f"{100 * point:.2f}% [{100 * low:.2f}, {100 * high:.2f}]"]
        for agent, (point, low, high) in aggregates.items()
    ]
    instance_rows = [
        [f"{n}×{m}", drawn.kind, drawn.seed, f"{drawn.optimum_s:.3f}", f"{1e3 * drawn.milp_s:.0f}"]
        for (n, m), drawn in instances.items()
    ]
    seed_rows = [
        [
            f"{r['users']}×{r['servers']}",
            r["agent"],
            r["seed"],
            r["episodes"],
            _percent(r["gap"] if r["feasible"] else None),
            _percent(r["untrained_gap"] if r["untrained_feasible"] else None),
            f"{1e3 * r['s_per_episode']:.0f}",
        ]
        for r in rows
    ]
    note = (
        f"{setting}. Gap: the trained policy's placement to the MILP optimum (runs that end "
        f"feasible); greedy: greedy-with-repair; untrained: the same decoding fed the freshly "
        f"initialised policy's scores (median over seeds). "
        + (
            f"Wall time of the bench {wall:.0f} s."
            if trained is None or trained == len(rows)
            else f"Wall time of this call {wall:.0f} s, which trained {trained} of the {len(rows)} runs (the "
            f"others were finished in the runs folder already); a row's wall time is its runs' own."
        )
    )
    text = "\n\n".join(
        [
            note,
            format_table(header, table, markdown=True),
            "Interquartile mean of the gap over every run of every shape (an infeasible run counts "
            f"as {100 * INFEASIBLE_GAP:.0f}%), 95% stratified-bootstrap interval (shapes as strata):",
            format_table(["agent", "IQM gap [95% interval]"], iqm_rows, markdown=True),
            "Instances (the first generator seed whose optimum the MILP proves and greedy misses):",
            format_table(
                ["N×M", "settings", "seed", "optimum (s)", "MILP (ms)"], instance_rows, markdown=True
            ),
            "Per seed:",
            format_table(
                ["N×M", "agent", "seed", "episodes", "gap", "untrained gap", "ms/episode"],
                seed_rows,
                markdown=True,
            ),
        ]
    )
    (out_dir / "scale.md").write_text(text + "\n" + (f"\n{notes}\n" if notes else ""))
    return format_table(header, table) + "\n\n" + format_table(["agent", "IQM gap [95% interval]"], iqm_rows)


def plot_scale(path: Path, summary_rows: list[dict[str, Any]], setting: str) -> None:
    """Gap to the optimum against N: each agent's median with its min–max over seeds, greedy's gap
    (noted where it found no placement) and the untrained decoding's median, one colour per M."""
    fig, ax = pyplot().subplots(figsize=(8, 4.6))
    markers = {"classical": "s", "quantum L=6": "o"}
    servers = sorted({r["servers"] for r in summary_rows})
    colors = {m: f"C{k}" for k, m in enumerate(servers)}
    for agent in sorted({r["agent"] for r in summary_rows}):
        for m in servers:
            pts = sorted(
                (r["users"], r["gap_median"], r["gap_min"], r["gap_max"])
                for r in summary_rows
                if r["agent"] == agent and r["servers"] == m and r["gap_median"] is not None
            )
            if not pts:
                continue
            n = np.array([p[0] for p in pts], dtype=float) * (1.04 if agent == "classical" else 0.96)
            mid = np.array([100 * p[1] for p in pts])
            err = np.array([[100 * (p[1] - p[2]) for p in pts], [100 * (p[3] - p[1]) for p in pts]])
            ax.errorbar(
                n,
                mid,
                yerr=err,
                marker=markers.get(agent, "^"),
                color=colors[m],
                capsize=3,
                linestyle="-" if agent != "classical" else "--",
                label=f"{agent}, M={m}",
            )
    for m in servers:
        greedy = sorted(
            (r["users"], 100 * r["greedy_gap"])
            for r in summary_rows
            if r["servers"] == m and r["greedy_gap"] is not None and r["agent"] == summary_rows[0]["agent"]
        )
        if greedy:
            ax.plot(*zip(*greedy), "x", color=colors[m], ms=9, mew=2, label=f"greedy, M={m}")
        untrained = sorted(
            (r["users"], 100 * r["untrained_gap_median"])
            for r in summary_rows
            if r["servers"] == m and math.isfinite(r["untrained_gap_median"])
        )
        if untrained:
            ax.plot(*zip(*untrained), "v", mfc="none", color=colors[m], label=f"untrained decoding, M={m}")
    missing = sorted({r["users"] for r in summary_rows if r["greedy_gap"] is None})
    if missing:  # in the title: a note inside the axes would sit under the legend
        setting += "; greedy found no feasible placement at N = " + ", ".join(map(str, missing))
    users = sorted({r["users"] for r in summary_rows})
    ax.set_xscale("log")
    ax.set_xticks(users, [str(n) for n in users])
    ax.minorticks_off()
    ax.set_xlim(users[0] / 1.3, users[-1] * 1.3)
    ax.axhline(100 * WITHIN, color="0.5", lw=0.8, ls=":", label="2%")
    ax.set(xlabel="users N", ylabel="gap to the MILP optimum (%)")
    ax.set_title(f"trained policies: median and min–max over seeds\n{setting}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    save_figure(fig, path)
