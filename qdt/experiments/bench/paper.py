"""``qdt bench paper``: the paper's experiment (§5) over seeds, next to the exact optimum.

Agents: classical, and quantum with L = 1, 3, 6 (Table 3, Fig. 7), on the paper preset, each
trained for ``episodes`` episodes with ``seeds`` seeds. The runs are cells of a sweep on qdt's
Ray engine in ``runs_dir`` (see :mod:`qdt.experiments.bench.runs`): ``runs_dir/results.csv`` holds one row
per run, ``runs_dir/cells/<id>/`` its run folder; an interrupted benchmark run again resumes
unfinished runs from their checkpoints and trains nothing that finished. A run that fails is
counted as failed in Table 3 and left out of Fig. 7.

Outputs in ``out_dir``:
  table3.csv / table3.md   per-user latency per agent: mean and 95% t-interval over seeds, with
                           the optimum, greedy and random baselines, gap and feasibility counts
  fig7.png / rewards.csv   reward versus episode per agent: mean over seeds with a min–max band
  timing.md                wall time, and the time of one training update of qdt's networks next
                           to the same update built on PennyLane default.qubit + TorchLayer
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qdt.experiments.bench.runs import BenchRun, OnRun, bench_run, failure_note, train_runs
from qdt.experiments.sweep.cell import read_metrics_rewards
from qdt.experiments.sweep.table import STATUS_OK
from qdt.experiments.tables import format_table
from qdt.plots import REWARD_LABEL, plot_optimum, plot_reward_band, pyplot, save_figure
from qdt.problem.generator import paper_instance
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import solve
from qdt.rl.config import TrainConfig
from qdt.stats import NON_NEGATIVE, mean_interval


@dataclass(frozen=True)
class AgentSpec:
    label: str
    agent: str
    layers: int


PAPER_AGENTS = (
    AgentSpec("classical", "classical", 0),
    AgentSpec("quantum L=1", "quantum", 1),
    AgentSpec("quantum L=3", "quantum", 3),
    AgentSpec("quantum L=6", "quantum", 6),
)


PAPER_INSTANCE_LABEL = "paper"


def paper_runs(
    agents: Sequence[AgentSpec], seeds: int, episodes: int, base: TrainConfig | None = None
) -> list[BenchRun]:
    """One run per (agent, seed) on the paper preset, keyed ``(agent label, seed)``."""
    base = base or TrainConfig.from_recipe("v1")  # the recipe benchmarks/results/paper was made with
    instance = paper_instance()
    runs = []
    for spec in agents:
        for seed in range(seeds):
            config = base.replace(agent=spec.agent, layers=spec.layers, episodes=episodes, seed=seed)
            runs.append(
                bench_run(
                    (spec.label, seed), f"{spec.label} seed {seed}", config, instance, PAPER_INSTANCE_LABEL
                )
            )
    return runs


def run_bench(
    out_dir: Path,
    runs_dir: Path,
    *,
    seeds: int = 5,
    episodes: int = 2000,
    agents: Sequence[AgentSpec] = PAPER_AGENTS,
    workers: int | None = None,
    ray_address: str | None = None,
    retry_failed: bool = False,
    base_config: TrainConfig | None = None,
    on_result: OnRun | None = None,
    timing: Callable[[], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train every (agent, seed) as a sweep cell in ``runs_dir``, then write Table 3, Fig. 7, timing."""
    start = time.perf_counter()
    trained = train_runs(
        paper_runs(agents, seeds, episodes, base_config),
        runs_dir,
        name="bench-paper",
        workers=workers,
        ray_address=ray_address,
        retry_failed=retry_failed,
        on_result=on_result,
    )
    wall = time.perf_counter() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    table = write_table3(out_dir, agents, seeds, trained.rows, failure_note(trained))
    run_dirs = {
        (spec.label, seed): trained.run_dir((spec.label, seed)) for spec in agents for seed in range(seeds)
    }
    write_fig7(out_dir, run_dirs, agents, seeds, table["optimum_total_latency_s"])
    timing_result = timing() if timing is not None else None
    write_timing(
        out_dir, wall, len(trained.runs), trained.trained, episodes, trained.max_parallel, timing_result
    )
    return {
        "wall_s": wall,
        "runs": len(trained.runs),
        "trained": trained.trained,
        "failures": trained.failures,
        "runs_dir": trained.runs_dir,
        "table": table,
        "timing": timing_result,
    }


# ---- Table 3 -----------------------------------------------------------------------------
def write_table3(
    out_dir: Path,
    agents: Sequence[AgentSpec],
    seeds: int,
    results: Mapping[tuple[str, int], Mapping[str, Any]],
    failures: str = "",
) -> dict[str, Any]:
    """Table 3 from the runs' result rows (status ok: summary.json values; failed: counted as such)."""
    model = PlacementModel(paper_instance())
    n = model.n_users
    optimum = solve(model, "auto")
    greedy = solve(model, "greedy")
    randoms = [solve(model, "random", seed=np.random.SeedSequence([2024, s])) for s in range(max(seeds, 2))]
    columns: list[tuple[str, list[list[float]], int, int]] = []  # label, per-seed per-user, feasible, total
    for spec in agents:
        runs = [results[(spec.label, s)] for s in range(seeds)]
        feasible = [r for r in runs if _finished(r) and r["feasible"]]
        columns.append((spec.label, [r["per_user_latency_s"] for r in feasible], len(feasible), len(runs)))
    rows_csv = []
    header = ["user"]
    for label, _, _, _ in columns:
        header += [f"{label} mean", f"{label} lo95", f"{label} hi95"]
    header += ["optimum", "greedy", "random mean", "random lo95", "random hi95"]
    random_latencies = [r.per_user_latency_s for r in randoms if r.per_user_latency_s is not None]
    for i in range(n + 1):
        label = f"user {i + 1}" if i < n else "average"
        row: list[Any] = [label]
        for _, latencies, _, _ in columns:
            values = [lat[i] if i < n else float(np.mean(lat)) for lat in latencies]
            row += list(mean_interval(values, NON_NEGATIVE)) if values else [None, None, None]
        row.append(optimum.per_user_latency_s[i] if i < n else optimum.total_latency_s / n)
        row.append(greedy.per_user_latency_s[i] if i < n else greedy.total_latency_s / n)
        values = [lat[i] if i < n else float(np.mean(lat)) for lat in random_latencies]
        row += list(mean_interval(values, NON_NEGATIVE))
        rows_csv.append(row)
    with open(out_dir / "table3.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows_csv)

    md_header = ["user", *[c[0] for c in columns], "optimum", "greedy", "random"]
    md_rows = []
    for row in rows_csv:
        cells = [row[0]]
        for k in range(len(columns)):
            mean, lo, hi = row[1 + 3 * k : 4 + 3 * k]
            cells.append("-" if mean is None else f"{mean:.3f} [{lo:.3f}, {hi:.3f}]")
        base = 1 + 3 * len(columns)
        cells += [
            f"{row[base]:.3f}",
            f"{row[base + 1]:.3f}",
            f"{row[base + 2]:.3f} [{row[base + 3]:.3f}, {row[base + 4]:.3f}]",
        ]
        md_rows.append(cells)
    opt_total = optimum.total_latency_s
    gap_cells = ["gap to optimum (mean total)"]
    within = ["within 5% of optimum"]
    feas = ["feasible runs"]
    failed = ["failed runs"]
    for spec, (_, _latencies, n_feasible, n_runs) in zip(agents, columns):
        runs = [results[(spec.label, s)] for s in range(seeds)]
        gaps = [r["gap"] for r in runs if _finished(r) and r["gap"] is not None]
        gap_cells.append("-" if not gaps else f"{100 * float(np.mean(gaps)):.2f}%")
        within.append(f"{sum(g <= 0.05 for g in gaps)}/{n_runs}")
        feas.append(f"{n_feasible}/{n_runs}")
        failed.append(f"{sum(not _finished(r) for r in runs)}/{n_runs}")
    gap_cells += [
        "0.00%",
        f"{100 * (greedy.total_latency_s - opt_total) / opt_total:.2f}%",
        _random_gap(random_latencies, opt_total),
    ]
    within += ["-", "-", "-"]
    feas += ["-", "-", f"{len(random_latencies)}/{len(randoms)}"]
    md_rows += [gap_cells, within, feas]
    if failures:  # runs that crashed count as neither feasible nor within 5%
        md_rows.append([*failed, "-", "-", "-"])
    note = (
        f"Per-user latency (s) of the trained policy's greedy placement, mean [95% t-interval] over "
        f"{seeds} seeds (feasible runs only); paper preset, optimum {opt_total:.4f} s total "
        f"(placement {','.join(map(str, optimum.assignment or []))})."
    )
    text = note + "\n\n" + format_table(md_header, md_rows, markdown=True) + "\n"
    (out_dir / "table3.md").write_text(text + (f"\n{failures}\n" if failures else ""))
    return {"optimum_total_latency_s": opt_total, "markdown": format_table(md_header, md_rows)}


def _finished(row: Mapping[str, Any]) -> bool:
    return row.get("status", STATUS_OK) == STATUS_OK


def _random_gap(latencies: list[list[float]], optimum: float) -> str:
    if not latencies:
        return "-"
    return f"{100 * (float(np.mean([sum(lat) for lat in latencies])) - optimum) / optimum:.2f}%"


# ---- Fig. 7 ------------------------------------------------------------------------------
def write_fig7(
    out_dir: Path,
    run_dirs: Mapping[tuple[str, int], Path | None],
    agents: Sequence[AgentSpec],
    seeds: int,
    optimum: float | None,
) -> None:
    """Reward curves from each finished run's metrics.jsonl (``run_dirs[(agent label, seed)]``,
    None for a run that failed: left out of its agent's mean and band)."""
    fig, ax = pyplot().subplots(figsize=(8, 4.6))
    rows: list[list[Any]] = []
    for spec in agents:
        folders = [run_dirs.get((spec.label, seed)) for seed in range(seeds)]
        curves = [read_metrics_rewards(folder) for folder in folders if folder is not None]
        curves = [curve for curve in curves if curve]
        if not curves:
            continue  # every run of this agent failed
        data = plot_reward_band(ax, curves, spec.label, line_width=1.6, band_alpha=0.18).runs
        for episode in range(data.shape[1]):
            rows.append(
                [
                    spec.label,
                    episode + 1,
                    float(data[:, episode].mean()),
                    float(data[:, episode].min()),
                    float(data[:, episode].max()),
                ]
            )
    if optimum is not None:
        plot_optimum(ax, optimum)
    ax.set_xlabel("episode")
    ax.set_ylabel(REWARD_LABEL)
    ax.set_title(
        f"Paper preset: reward versus episode (analogue of Fig. 7)\nmean over {seeds} seeds, band: min–max",
        fontsize=10,
    )
    ax.set_ylim(bottom=max(-40.0, ax.get_ylim()[0]))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    save_figure(fig, out_dir / "fig7.png")
    with open(out_dir / "rewards.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["agent", "episode", "reward_mean_over_seeds", "min", "max"])
        writer.writerows(rows)


def write_timing(
    out_dir: Path,
    wall: float,
    runs: int,
    trained: int,
    episodes: int,
    workers: int,
    timing: dict[str, Any] | None,
) -> None:
    reused = "" if trained == runs else f"; {trained} trained in this call, the others reused"
    lines = [
        f"- wall time of the whole benchmark: {wall:.1f} s for {runs} runs × {episodes} episodes "
        f"(sweep cells on Ray, at most {workers} at once{reused})",
    ]
    if timing:
        for key, value in timing.items():
            lines.append(f"- {key}: {value}")
    (out_dir / "timing.md").write_text("\n".join(lines) + "\n")
