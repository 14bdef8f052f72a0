"""``qdt bench instances``: policy quality on generated instances beyond the paper preset.

For every shape N×M (default 4×2, 6×2, 6×3, 8×3) one instance is drawn with
``qdt instance generate --users N --servers M --seed S`` (the first seed from ``instance_seed``
on whose instance a feasible placement exists), and every agent is trained on it with several
seeds. Reported per (instance, agent): feasible runs, runs within 5% of the exact optimum, and
the mean gap, next to the greedy heuristic's gap. The runs are cells of a sweep on qdt's Ray
engine in ``runs_dir`` (:mod:`qdt.experiments.bench.runs`): resumed after an interruption, reused when
finished; a run that fails is named under the table and counted as not feasible. It trains with
the recipe ``v1``, as its published results were made (``qdt bench scale`` measures ``v2``).

Outputs in ``out_dir``: instances.csv (one row per run) and instances.md (the summary table).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qdt.experiments.bench.paper import AgentSpec
from qdt.experiments.bench.runs import OnRun, bench_run, failure_note, train_runs
from qdt.experiments.tables import format_table
from qdt.problem.generator import GeneratorConfig, generate_instance
from qdt.problem.instance import Instance
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import solve
from qdt.rl.config import TrainConfig

DEFAULT_SHAPES: tuple[tuple[int, int], ...] = ((4, 2), (6, 2), (6, 3), (8, 3))
DEFAULT_AGENTS = (
    AgentSpec("classical", "classical", 0),
    AgentSpec("quantum L=6", "quantum", 6),
)
WITHIN = 0.05
ROW_FIELDS = [
    "users",
    "servers",
    "instance_seed",
    "agent",
    "seed",
    "feasible",
    "gap",
    "total_latency_s",
    "optimum_total_latency_s",
    "wall_s",
]


def feasible_instance(users: int, servers: int, first_seed: int, tries: int = 50) -> tuple[int, Instance]:
    """The first generated instance (seed ≥ ``first_seed``) that has a feasible placement."""
    for seed in range(first_seed, first_seed + tries):
        instance = generate_instance(GeneratorConfig(users=users, servers=servers), seed)
        if solve(PlacementModel(instance), "auto").status == "optimal":
            return seed, instance
    last = first_seed + tries - 1
    raise RuntimeError(f"no feasible {users}x{servers} instance among seeds {first_seed}..{last}")


def run_instances_bench(
    out_dir: Path,
    runs_dir: Path,
    *,
    shapes: Sequence[tuple[int, int]] = DEFAULT_SHAPES,
    agents: Sequence[AgentSpec] = DEFAULT_AGENTS,
    seeds: int = 3,
    episodes: int = 2000,
    instance_seed: int = 1,
    workers: int | None = None,
    ray_address: str | None = None,
    retry_failed: bool = False,
    on_result: OnRun | None = None,
) -> dict[str, Any]:
    start = time.perf_counter()
    instances = {shape: feasible_instance(*shape, instance_seed) for shape in shapes}
    runs = []
    for shape, (seed_used, instance) in instances.items():
        name = f"{shape[0]}x{shape[1]}"
        for spec in agents:
            for seed in range(seeds):
                config = TrainConfig.from_recipe(  # the recipe benchmarks/results/instances was made with
                    "v1", agent=spec.agent, layers=spec.layers, episodes=episodes, seed=seed
                )
                label = f"{name} {spec.label} seed {seed}"
                runs.append(
                    bench_run((shape, spec.label, seed), label, config, instance, f"{name}-s{seed_used}")
                )
    trained = train_runs(
        runs,
        runs_dir,
        name="bench-instances",
        workers=workers,
        ray_address=ray_address,
        retry_failed=retry_failed,
        on_result=on_result,
    )
    rows: list[dict[str, Any]] = []
    for run in runs:
        shape, label, seed = run.key
        summary = trained.ok(run.key)
        if summary is None:
            continue  # failed: named in the summary's note, counted as not feasible
        rows.append(
            {
                "users": shape[0],
                "servers": shape[1],
                "instance_seed": instances[shape][0],
                "agent": label,
                "seed": seed,
                "feasible": summary["feasible"],
                "gap": summary["gap"],
                "total_latency_s": summary["total_latency_s"],
                "optimum_total_latency_s": summary["optimum_total_latency_s"],
                "wall_s": summary["wall_s"],
            }
        )
    wall = time.perf_counter() - start
    rows.sort(key=lambda r: (r["users"], r["servers"], r["agent"], r["seed"]))
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "instances.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=ROW_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    markdown = write_summary(out_dir, instances, agents, seeds, episodes, rows, wall, failure_note(trained))
    return {
        "wall_s": wall,
        "runs": len(runs),
        "trained": trained.trained,
        "failures": trained.failures,
        "markdown": markdown,
    }


def write_summary(
    out_dir: Path,
    instances: dict[tuple[int, int], tuple[int, Instance]],
    agents: Sequence[AgentSpec],
    seeds: int,
    episodes: int,
    rows: list[dict[str, Any]],
    wall: float,
    failures: str = "",
) -> str:
    header = ["instance", "optimum (s)", "greedy gap"]
    for spec in agents:
        header += [f"{spec.label} feasible", f"{spec.label} within 5%", f"{spec.label} mean gap"]
    table = []
    for shape, (seed, instance) in instances.items():
        model = PlacementModel(instance)
        optimum = solve(model, "auto")
        greedy = solve(model, "greedy")
        greedy_gap = (
            "infeasible"
            if greedy.status == "infeasible" or greedy.total_latency_s is None
            else f"{100 * (greedy.total_latency_s / optimum.total_latency_s - 1):.2f}%"
        )
        cells: list[Any] = [
            f"{shape[0]}x{shape[1]} (seed {seed})",
            f"{optimum.total_latency_s:.4f}",
            greedy_gap,
        ]
        for spec in agents:
            runs = [r for r in rows if (r["users"], r["servers"]) == shape and r["agent"] == spec.label]
            gaps = [r["gap"] for r in runs if r["feasible"] and r["gap"] is not None]
            cells += [  # out of every seed: a failed run counts as neither
                f"{sum(bool(r['feasible']) for r in runs)}/{seeds}",
                f"{sum(g <= WITHIN for g in gaps)}/{seeds}",
                "-" if not gaps else f"{100 * float(np.mean(gaps)):.2f}%",
            ]
        table.append(cells)
    note = (
        f"Generated instances (`qdt instance generate --users N --servers M --seed S`), each agent "
        f"trained {episodes} episodes with {seeds} seeds; gap of the trained policy's greedy "
        f"placement to the exact optimum (feasible runs). Wall time {wall:.0f} s."
    )
    markdown = format_table(header, table, markdown=True)
    (out_dir / "instances.md").write_text(
        note + "\n\n" + markdown + "\n" + (f"\n{failures}\n" if failures else "")
    )
    return format_table(header, table)
