"""``qdt bench scale``: how qdt grows past the paper's 4 users.

For users N in {4, 8, 16, 32, 64} and servers M in {2, 4, 8}: one generated instance each
(`qdt instance generate --users N --servers M --seed S`), its MILP optimum, and the classical and
quantum (L = 6) agents trained with a fixed episode budget. Reported: qubits per actor and per
critic, the time per training episode, the gap of the trained policy to the MILP optimum, and
the growth exponent of time per episode in N (least squares on log-log, per M and agent).
The runs are cells of a sweep on qdt's Ray engine in ``runs_dir`` (:mod:`qdt.experiments.bench.runs`):
resumed after an interruption, reused when finished; a run that fails is named under the table.

Outputs in ``out_dir``: scale.csv, scale.md, scale.png (time per episode and gap against N).
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qdt.circuits import qubits_for_width
from qdt.experiments.bench.paper import AgentSpec
from qdt.experiments.bench.runs import OnRun, bench_run, failure_note, train_runs
from qdt.experiments.tables import format_table
from qdt.plots import pyplot, save_figure
from qdt.problem.generator import GeneratorConfig, generate_instance
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import solve
from qdt.rl.config import TrainConfig

DEFAULT_USERS = (4, 8, 16, 32, 64)
DEFAULT_SERVERS = (2, 4, 8)
DEFAULT_AGENTS = (AgentSpec("classical", "classical", 0), AgentSpec("quantum L=6", "quantum", 6))
# Quantum runs whose critic needs more qubits are listed as skipped, not trained: on 2 cores a
# 10-qubit critic (64 users x 8 servers) makes one episode take tens of seconds.
DEFAULT_MAX_CRITIC_QUBITS = 9
ROW_FIELDS = [
    "users",
    "servers",
    "agent",
    "actor_qubits",
    "critic_qubits",
    "episodes",
    "s_per_episode",
    "feasible",
    "gap",
    "optimum_status",
    "optimum_total_latency_s",
    "milp_s",
]


def is_trained(spec: AgentSpec, users: int, servers: int, max_critic_qubits: int) -> bool:
    """Whether the bench trains ``spec`` at N x M: quantum only up to ``max_critic_qubits``."""
    return spec.agent != "quantum" or qubits_for_width(2 * users * servers) <= max_critic_qubits


def run_scale_bench(
    out_dir: Path,
    runs_dir: Path,
    *,
    users: Sequence[int] = DEFAULT_USERS,
    servers: Sequence[int] = DEFAULT_SERVERS,
    agents: Sequence[AgentSpec] = DEFAULT_AGENTS,
    episodes: int = 200,
    instance_seed: int = 1,
    max_critic_qubits: int = DEFAULT_MAX_CRITIC_QUBITS,
    workers: int | None = None,
    ray_address: str | None = None,
    retry_failed: bool = False,
    on_result: OnRun | None = None,
) -> dict[str, Any]:
    start = time.perf_counter()
    optima: dict[tuple[int, int], dict[str, Any]] = {}
    runs = []
    skipped: list[str] = []
    for n in users:
        for m in servers:
            instance = generate_instance(GeneratorConfig(users=n, servers=m), instance_seed)
            t0 = time.perf_counter()
            optimum = solve(PlacementModel(instance), "milp")
            optima[(n, m)] = {
                "status": optimum.status,
                "total_latency_s": optimum.total_latency_s,
                "milp_s": time.perf_counter() - t0,
            }
            for spec in agents:
                if not is_trained(spec, n, m, max_critic_qubits):
                    skipped.append(f"{n}x{m} {spec.label} ({qubits_for_width(2 * n * m)}-qubit critic)")
                    continue
                config = TrainConfig(agent=spec.agent, layers=spec.layers, episodes=episodes, seed=0)
                label = f"{n}x{m} {spec.label}"
                runs.append(bench_run(((n, m), spec), label, config, instance, f"{n}x{m}-s{instance_seed}"))
    # biggest first, so the long runs do not end up alone at the tail of the sweep
    runs.sort(key=lambda run: -run.key[0][0] * run.key[0][1])
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
        (n, m), spec = run.key
        summary = trained.ok(run.key)
        if summary is None:
            continue  # failed: named under the table
        quantum = spec.agent == "quantum"
        rows.append(
            {
                "users": n,
                "servers": m,
                "agent": spec.label,
                "actor_qubits": qubits_for_width(n) if quantum else 0,
                "critic_qubits": qubits_for_width(2 * n * m) if quantum else 0,
                "episodes": episodes,
                "s_per_episode": summary["wall_s"] / episodes,
                "feasible": summary["feasible"],
                "gap": summary["gap"],
                "optimum_status": optima[(n, m)]["status"],
                "optimum_total_latency_s": optima[(n, m)]["total_latency_s"],
                "milp_s": optima[(n, m)]["milp_s"],
            }
        )
    rows.sort(key=lambda r: (r["agent"], r["servers"], r["users"]))
    wall = time.perf_counter() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "scale.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=ROW_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    growth = growth_exponents(rows)
    skip_note = (
        f"Not trained (critic above --max-critic-qubits {max_critic_qubits}): " + ", ".join(skipped) + "."
        if skipped
        else ""
    )
    notes = "\n\n".join(note for note in (skip_note, failure_note(trained)) if note)
    markdown = write_markdown(out_dir, rows, growth, episodes, wall, notes)
    if rows:  # nothing to draw when every run failed
        plot_scale(out_dir / "scale.png", rows, episodes)
    return {
        "wall_s": wall,
        "rows": rows,
        "growth": growth,
        "markdown": markdown,
        "trained": trained.trained,
        "failures": trained.failures,
        "skipped": skipped,
    }


def growth_exponents(rows: list[dict[str, Any]]) -> dict[tuple[str, int], float]:
    """Slope of log(time per episode) against log(N), per agent and M."""
    out = {}
    for key in sorted({(r["agent"], r["servers"]) for r in rows}):
        pts = [(r["users"], r["s_per_episode"]) for r in rows if (r["agent"], r["servers"]) == key]
        if len(pts) >= 2:
            x = np.log([p[0] for p in pts])
            y = np.log([p[1] for p in pts])
            out[key] = float(np.polyfit(x, y, 1)[0])
    return out


def _gap(row: dict[str, Any]) -> str:
    if row["optimum_status"] != "optimal":
        return "no feasible placement"
    if not row["feasible"] or row["gap"] is None:
        return "infeasible"
    return f"{100 * row['gap']:.2f}%"


def write_markdown(
    out_dir: Path,
    rows: list[dict[str, Any]],
    growth: dict[tuple[str, int], float],
    episodes: int,
    wall: float,
    failures: str = "",
) -> str:
    header = ["agent", "N", "M", "qubits actor/critic", "ms per episode", "gap to MILP", "MILP (ms)"]
    table = [
        [
            r["agent"],
            r["users"],
            r["servers"],
            "-" if r["actor_qubits"] == 0 else f"{r['actor_qubits']}/{r['critic_qubits']}",
            f"{1e3 * r['s_per_episode']:.1f}",
            _gap(r),
            f"{1e3 * r['milp_s']:.1f}",
        ]
        for r in rows
    ]
    growth_rows = [[agent, m, f"N^{slope:.2f}"] for (agent, m), slope in growth.items()]
    note = (
        f"Generated instances, each agent trained {episodes} episodes (seed 0), time per episode "
        f"including its training update, gap of the trained greedy placement to the MILP optimum. "
        f"Wall time {wall:.0f} s."
    )
    text = (
        note
        + "\n\n"
        + format_table(header, table, markdown=True)
        + "\n\nTime per episode grows with N as (least squares on log-log):\n\n"
        + format_table(["agent", "M", "growth"], growth_rows, markdown=True)
        + "\n"
        + (f"\n{failures}\n" if failures else "")
    )
    (out_dir / "scale.md").write_text(text)
    return format_table(header, table) + "\n\n" + format_table(["agent", "M", "growth"], growth_rows)


def plot_scale(path: Path, rows: list[dict[str, Any]], episodes: int) -> None:
    fig, (left, right) = pyplot().subplots(1, 2, figsize=(11, 4.2))
    styles = {"classical": "--", "quantum L=6": "-"}
    for agent in sorted({r["agent"] for r in rows}):
        for m in sorted({r["servers"] for r in rows}):
            pts = sorted(
                (r["users"], r["s_per_episode"], r["gap"] if r["feasible"] else math.nan)
                for r in rows
                if r["agent"] == agent and r["servers"] == m
            )
            n_values = [p[0] for p in pts]
            label = f"{agent}, M={m}"
            left.plot(n_values, [1e3 * p[1] for p in pts], styles.get(agent, "-"), marker="o", label=label)
            gaps = [100 * p[2] if p[2] is not None else math.nan for p in pts]
            right.plot(n_values, gaps, styles.get(agent, "-"), marker="o", label=label)
    left.set(xscale="log", yscale="log", xlabel="users N", ylabel="ms per training episode")
    left.set_title("time per episode")
    right.set(xscale="log", xlabel="users N", ylabel="gap to MILP optimum (%)")
    right.set_title(f"gap after {episodes} episodes (missing = infeasible)")
    users = sorted({r["users"] for r in rows})
    for axis in (left, right):
        axis.set_xscale("log")
        axis.set_xticks(users, [str(n) for n in users])
        axis.minorticks_off()
        axis.set_xlim(users[0] / 1.3, users[-1] * 1.3)  # the same N axis, also where gaps are missing
        axis.grid(alpha=0.3)
    right.legend(fontsize=7)
    save_figure(fig, path)
