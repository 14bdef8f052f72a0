"""``qdt demo``: the whole pipeline on the paper preset, ending in a self-contained HTML report.

1. The instance and every solver (exact enumeration, MILP, greedy, random).
2. Training: the classical agent and quantum agents with L = 1, 3, 6 (a sweep on qdt's Ray engine).
3. Each quantum policy evaluated exactly, under a noise profile, and on a fake IBM device
   through qiskit-ibm-runtime's local testing mode (the code path a real device takes): one job
   carries both actors on all their observations and M3's two readout-calibration rows, and its
   counts are scored raw and mitigated through mthree calibrated by those rows, side by side
   (:mod:`qdt.experiments.bench.runtime_devices`).
4. A shot sweep of the L = 6 policy (sampled readout), next to exact.
5. results.json, results.md, figures and report.html in the output folder.

The output folder must be new, empty, or an earlier demo's (only the files listed in
``DEMO_OUTPUTS``: they are refreshed, and the training runs in ``runs/`` are reused); anything
else is refused, naming the files found. The demo holds the folder's lock while it writes it
(qdt/files.py), so a second demo on the same folder is refused with the first one's pid.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qdt.errors import QdtError
from qdt.executors import open_backend
from qdt.experiments.bench.paper import AgentSpec
from qdt.experiments.bench.runs import BenchRun, bench_run, train_runs
from qdt.experiments.bench.runtime_devices import MITIGATED, DeviceScorer
from qdt.experiments.report.html import Section, write_report
from qdt.experiments.sweep import cell_dir, check_sweep_folder, is_sweep_folder
from qdt.experiments.sweep.cell import read_metrics_rewards
from qdt.experiments.tables import format_table
from qdt.files import FolderRule, check_output_folder, claim_output_folder, unexpected_entries
from qdt.plots import REWARD_LABEL, pyplot, reward_band, save_figure
from qdt.problem.generator import paper_instance
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import solve
from qdt.rl.config import TrainConfig
from qdt.rl.evaluation import evaluate_policy
from qdt.rl.policy import load_policy
from qdt.stats import format_interval

RUNS_DIR = "runs"  # the sweep folder of the demo's training runs, inside the output folder
FIGURES = ("rewards", "latency", "shots", "decision_latency")  # <name>.png, from make_figures
DEMO_OUTPUTS = ("results.json", "results.md", "report.html", *(f"{n}.png" for n in FIGURES), RUNS_DIR)


def is_demo_folder(path: Path) -> bool:
    """An earlier demo's output folder: its runs/ is a sweep folder (the demo writes that first)
    and it holds nothing but what the demo writes. A folder of the user's that merely holds files
    named like the demo's (report.html, results.md) is not one, and is refused."""
    return is_sweep_folder(path / RUNS_DIR) and not unexpected_entries(path, frozenset(DEMO_OUTPUTS))


DEMO_FOLDER = FolderRule(
    expected="a new or empty folder, or an earlier `qdt demo` output folder", accept=is_demo_folder
)

DEMO_AGENTS = (
    AgentSpec("classical", "classical", 0),
    AgentSpec("quantum L=1", "quantum", 1),
    AgentSpec("quantum L=3", "quantum", 3),
    AgentSpec("quantum L=6", "quantum", 6),
)


@dataclass(frozen=True)
class DemoConfig:
    episodes: int = 1000
    seed: int = 0
    workers: int | None = None
    noise: str | None = "depol-1e-3"
    device: str | None = "fake_torino"
    device_shots: int = 1024
    shots: tuple[int, ...] = (8, 32, 128, 512, 2048)
    repeats: int = 3


@dataclass
class EvaluationRow:
    agent: str
    setting: str
    backend: str
    noise: str | None
    shots: int | None
    result: dict[str, Any] = field(repr=False)
    mitigation: str | None = None  # "mthree": the device row's counts, readout-mitigated


MITIGATED_SUFFIX = ", mitigated (M3)"  # the setting of a device row's mitigated twin


def demo_runs(config: DemoConfig) -> list[BenchRun]:
    """One training run per agent, the slowest (L = 6) first so it does not run alone at the end."""
    instance = paper_instance()
    runs = [
        bench_run(
            spec.label,
            spec.label,
            TrainConfig.from_recipe(
                "v1", agent=spec.agent, layers=spec.layers, episodes=config.episodes, seed=config.seed
            ),
            instance,
            "paper",
        )
        for spec in DEMO_AGENTS
    ]
    return sorted(runs, key=lambda run: -(run.cell.config.layers if run.cell.config else 0))


def agent_run_dir(runs_dir: Path, spec: AgentSpec, config: DemoConfig) -> Path:
    """The run folder of an agent's training: the cell folder of its sweep in ``runs_dir``."""
    run = next(run for run in demo_runs(config) if run.key == spec.label)
    return cell_dir(runs_dir, run.cell.cell_id)


def train_agents(
    runs_dir: Path, config: DemoConfig, on_done: Callable[[str], None] | None = None
) -> dict[str, dict[str, Any]]:
    """Train the demo's agents as a sweep on qdt's Ray engine in ``runs_dir`` (all cores, or
    ``config.workers`` at once); finished runs are reused, interrupted or failed ones run again.
    Returns each agent's summary.json values and ``run_dir``; a failed run stops the demo."""

    def report(label: str, row: Mapping[str, Any]) -> None:
        if on_done is not None:
            on_done(f"trained {label}" if row["status"] == "ok" else f"FAILED {label}")

    trained = train_runs(
        demo_runs(config), runs_dir, name="demo", workers=config.workers, retry_failed=True, on_result=report
    )
    if trained.failures:
        listed = "; ".join(str(failure) for failure in trained.failures)
        raise QdtError(
            f"training failed: {listed} (traceback in {runs_dir}/cells/<cell>/error.txt; "
            "the same command trains them again)"
        )
    summaries = {}
    for spec in DEMO_AGENTS:
        row = trained.ok(spec.label)
        assert row is not None
        summaries[spec.label] = {**row, "run_dir": str(trained.run_dir(spec.label))}
    return summaries


def evaluation_settings(config: DemoConfig) -> list[tuple[str, str, str | None, int | None]]:
    """(label, backend, noise, shots) for every quantum policy."""
    settings: list[tuple[str, str, str | None, int | None]] = [("exact", "statevector", None, None)]
    if config.noise:
        settings.append((f"noise {config.noise}", "density", config.noise, None))
    if config.device:
        settings.append((f"device {config.device}", config.device, None, config.device_shots))
    return settings


def evaluate_agents(
    runs_dir: Path, config: DemoConfig, on_done: Callable[[str], None] | None = None
) -> list[EvaluationRow]:
    rows = []
    seeds = iter(np.random.SeedSequence([config.seed, 7]).spawn(1000))
    for spec in DEMO_AGENTS:
        if spec.agent != "quantum":
            continue
        run_dir = agent_run_dir(runs_dir, spec, config)
        reference = load_policy(run_dir, executor=open_backend("statevector"))
        for label, backend, noise, shots in evaluation_settings(config):
            executor = open_backend(backend, seed=next(seeds), noise=noise, shots=shots)
            if backend == config.device:
                rows += device_rows(spec.label, label, backend, run_dir, executor)
            else:
                repeats = 1 if shots is None and noise is None else config.repeats
                result = evaluate_policy(reference, load_policy(run_dir, executor=executor), repeats=repeats)
                rows.append(EvaluationRow(spec.label, label, backend, noise, shots, result))
            if on_done is not None:
                on_done(f"evaluated {spec.label}: {label}")
        if spec.layers == max(s.layers for s in DEMO_AGENTS):
            for shots in config.shots:
                executor = open_backend("density", seed=next(seeds), shots=shots)
                target = load_policy(run_dir, executor=executor)
                result = evaluate_policy(reference, target, repeats=config.repeats)
                rows.append(EvaluationRow(spec.label, f"{shots} shots", "density", None, shots, result))
            if on_done is not None:
                on_done(f"shot sweep {spec.label}")
    return rows


def device_rows(agent: str, setting: str, backend: str, run_dir: Path, executor: Any) -> list[EvaluationRow]:
    """The policy on the device in ONE job (both actors on all observations, and the readout-
    calibration rows): a row scored from the raw counts and its twin scored from the same counts
    mitigated through mthree."""
    scorer = DeviceScorer(run_dir, executor, ("raw", MITIGATED))
    try:
        results = scorer.evaluate([scorer.run()])
    finally:
        executor.close()
    shots = scorer.shots
    return [
        EvaluationRow(agent, setting, backend, None, shots, results["raw"]),
        EvaluationRow(agent, setting + MITIGATED_SUFFIX, backend, None, shots, results[MITIGATED], "mthree"),
    ]


def check_demo_folder(out_dir: Path) -> None:
    """Refuse, writing nothing, an output folder :func:`run_demo` would refuse (before any work)."""
    check_sweep_folder(out_dir / RUNS_DIR, "--out")  # first: it names the files inside runs/
    check_output_folder(out_dir, "--out", DEMO_FOLDER)


def run_demo(
    out_dir: Path, config: DemoConfig, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """The whole demo into ``out_dir`` (see the module docstring), holding the folder's lock."""
    with claim_output_folder(out_dir, "--out", DEMO_FOLDER):
        return _run_demo(out_dir, config, progress)


def _run_demo(out_dir: Path, config: DemoConfig, progress: Callable[[str], None] | None) -> dict[str, Any]:
    start = time.perf_counter()
    runs_dir = out_dir / RUNS_DIR
    model = PlacementModel(paper_instance())
    solvers = [solve(model, name, seed=config.seed) for name in ("enumerate", "milp", "greedy", "random")]
    optimum = solvers[0]
    t0 = time.perf_counter()
    summaries = train_agents(runs_dir, config, progress)
    train_wall = time.perf_counter() - t0
    t0 = time.perf_counter()
    evaluations = evaluate_agents(runs_dir, config, progress)
    eval_wall = time.perf_counter() - t0
    figures = make_figures(out_dir, runs_dir, model, optimum.total_latency_s, summaries, evaluations)
    result = {
        "config": asdict(config),
        "optimum": {"assignment": optimum.assignment, "total_latency_s": optimum.total_latency_s},
        "solvers": [
            {
                "solver": s.solver,
                "status": s.status,
                "assignment": s.assignment,
                "total_latency_s": s.total_latency_s,
            }
            for s in solvers
        ],
        "agents": {label: _agent_entry(summary) for label, summary in summaries.items()},
        "evaluations": [
            {k: v for k, v in asdict(row).items() if k != "result"} | {"result": row.result}
            for row in evaluations
        ],
        "wall_s": {"training": train_wall, "evaluation": eval_wall},
    }
    result["wall_s"]["total"] = time.perf_counter() - start
    (out_dir / "results.json").write_text(json.dumps(result, indent=2, allow_nan=False))
    tables = results_tables(result)
    (out_dir / "results.md").write_text(
        "\n\n".join(format_table(h, r, markdown=True) for h, r in tables) + "\n"
    )
    write_report(
        out_dir / "report.html",
        "qdt demo: digital-twin placement on the paper preset",
        (
            f"Paper preset (4 users, 2 servers), exact optimum {optimum.total_latency_s:.4f} s total "
            f"(placement {optimum.assignment}). Agents trained {config.episodes} episodes, seed "
            f"{config.seed}. Total wall time {result['wall_s']['total']:.0f} s."
        ),
        report_sections(tables, figures, config),
    )
    return result


def _agent_entry(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("assignment", "feasible", "total_latency_s", "per_user_latency_s", "gap", "wall_s", "episodes")
    return {k: summary.get(k) for k in keys}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _interval_pct(value: dict[str, float] | None) -> str:
    if value is None:
        return "-"
    return format_interval(value["mean"], value["lo95"], value["hi95"], scale=100, unit="%")


def results_tables(result: dict[str, Any]) -> list[tuple[list[str], list[list[Any]]]]:
    optimum = result["optimum"]["total_latency_s"]
    solver_rows = [
        [
            s["solver"],
            s["status"],
            s["assignment"],
            s["total_latency_s"],
            None if s["total_latency_s"] is None else _pct(s["total_latency_s"] / optimum - 1),
        ]
        for s in result["solvers"]
    ]
    agent_rows = [
        [
            label,
            a["assignment"],
            "yes" if a["feasible"] else "no",
            a["total_latency_s"],
            _pct(a["gap"]),
            a["wall_s"],
        ]
        for label, a in result["agents"].items()
    ]
    eval_rows = []
    for e in result["evaluations"]:
        r = e["result"]
        placement = r["placement"]
        eval_rows.append(
            [
                e["agent"],
                e["setting"],
                _interval_pct(r["decision_agreement"]),
                f"{100 * placement['feasible_rate']:.0f}%",
                _interval_pct(placement["gap"]),
                f"{1e3 * r['decision_latency']['per_decision_s']:.2f}",
            ]
        )
    return [
        (["solver", "status", "assignment", "total latency (s)", "gap"], solver_rows),
        (
            ["agent (trained)", "assignment", "feasible", "total latency (s)", "gap", "training wall (s)"],
            agent_rows,
        ),
        (
            ["agent", "evaluated on", "decision agreement", "feasible draws", "gap", "ms per decision"],
            eval_rows,
        ),
        device_table(result["evaluations"]),
    ]


def device_table(evaluations: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Raw against readout-mitigated on the device, side by side: per agent the row scored from
    the job's raw counts and its twin scored from the same counts mitigated through mthree."""
    header = [
        "agent",
        "device",
        "decision agreement: raw",
        "mitigated (M3)",
        "action agreement: raw",
        "mitigated (M3)",
        "TVD to exact: raw",
        "mitigated (M3)",
        "gap: raw",
        "mitigated (M3)",
        "s per job",
    ]
    rows = []
    for twin in (e for e in evaluations if e.get("mitigation") == "mthree"):
        raw = next(
            e
            for e in evaluations
            if e["agent"] == twin["agent"] and e["setting"] + MITIGATED_SUFFIX == twin["setting"]
        )
        pair = (raw["result"], twin["result"])
        rows.append(
            [
                raw["agent"],
                raw["backend"],
                *(_interval_pct(r["decision_agreement"]) for r in pair),
                *(_pct(_mean_action_agreement(r)) for r in pair),
                *(f"{r['tvd']['mean']:.4f}" for r in pair),
                *(_interval_pct(r["placement"]["gap"]) for r in pair),
                f"{raw['result']['decision_latency']['per_decision_s']:.1f}",
            ]
        )
    return header, rows


def _mean_action_agreement(result: dict[str, Any]) -> float:
    return float(np.mean([agent["action_agreement"]["mean"] for agent in result["agents"]]))


def report_sections(
    tables: list[tuple[list[str], list[list[Any]]]], figures: dict[str, Path], config: DemoConfig
) -> list[Section]:
    solvers, agents, evaluations, device = tables
    sections = [
        Section("Exact optimum and baselines", tables=[solvers]),
        Section(
            "Training",
            paragraphs=["Greedy placement of each trained policy after training, against the exact optimum."],
            tables=[agents],
            images=[figures["rewards"], figures["latency"]],
        ),
        Section(
            "Noise, shots and devices",
            paragraphs=[
                "Each quantum policy's actors run on another executor with the trained weights. "
                "Decision agreement: share of all 256 joint states whose decoded next placement equals "
                "the noiseless policy's. Gap: the placement reached from the empty one, against the optimum "
                f"(intervals over {config.repeats} independent shot draws where shots are sampled)."
            ],
            tables=[evaluations],
            images=[figures["shots"], figures["decision_latency"]],
        ),
    ]
    if device[1]:
        sections.append(
            Section(
                f"On {config.device}: raw against readout-mitigated",
                paragraphs=[
                    f"One job per policy on {config.device} through the ibm executor (qiskit-ibm-runtime's "
                    "local testing mode, the code path of a real device) carries both actors on all "
                    f"{2 ** paper_instance().n_users} observations and two readout-calibration rows (every "
                    "read-out qubit in |0>, in |1>). Raw: the job's counts as measured. Mitigated: the same "
                    "counts corrected through mthree (M3), calibrated by that job's calibration rows, as "
                    "`qdt infer --mitigate readout` does. TVD: mean total variation distance of the actors' "
                    "probabilities to the exact ones."
                ],
                tables=[device],
            )
        )
    return sections


def make_figures(
    out_dir: Path,
    runs_dir: Path,
    model: PlacementModel,
    optimum_total: float | None,
    summaries: dict[str, dict[str, Any]],
    evaluations: list[EvaluationRow],
) -> dict[str, Path]:
    plt = pyplot()
    paths = {name: out_dir / f"{name}.png" for name in FIGURES}

    fig, ax = plt.subplots(figsize=(8, 4.2))
    for spec in DEMO_AGENTS:
        band = reward_band([read_metrics_rewards(Path(summaries[spec.label]["run_dir"]))])
        ax.plot(band.episodes, band.mean, label=spec.label)  # one seed: its moving mean
    ax.set(xlabel="episode", ylabel=REWARD_LABEL, title="Reward versus episode")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, paths["rewards"])

    fig, ax = plt.subplots(figsize=(8, 4.2))
    n = model.n_users
    labels = [*summaries, "optimum"]
    width = 0.8 / len(labels)
    optimum_x = solve(model, "auto")
    for k, label in enumerate(labels):
        per_user = (
            optimum_x.per_user_latency_s if label == "optimum" else summaries[label]["per_user_latency_s"]
        )
        ax.bar(np.arange(n) + k * width, per_user, width, label=label)
    ax.set_xticks(np.arange(n) + 0.4 - width / 2, [f"user {i + 1}" for i in range(n)])
    ax.set(ylabel="latency (s)", title="Per-user latency of the trained placements")
    ax.legend(fontsize=8)
    save_figure(fig, paths["latency"])

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    sweep = [e for e in evaluations if e.backend == "density" and e.noise is None and e.shots is not None]
    exact = next(
        (e for e in evaluations if e.setting == "exact" and e.agent == (sweep[0].agent if sweep else "")),
        None,
    )
    if sweep:
        shots = [e.shots for e in sweep]
        agree = [100 * e.result["decision_agreement"]["mean"] for e in sweep]
        lo = [100 * e.result["decision_agreement"]["lo95"] for e in sweep]
        hi = [100 * e.result["decision_agreement"]["hi95"] for e in sweep]
        left.plot(shots, agree, marker="o", label=f"{sweep[0].agent}, sampled")
        left.fill_between(shots, lo, hi, alpha=0.2)
        feasible = [100 * e.result["placement"]["feasible_rate"] for e in sweep]
        right.plot(shots, feasible, marker="o", label="feasible draws (%)")
        gaps = [
            100 * e.result["placement"]["gap"]["mean"] if e.result["placement"]["gap"] else np.nan
            for e in sweep
        ]
        right.plot(shots, gaps, marker="s", label="mean gap to optimum (%)")
        if exact is not None:
            left.axhline(100, color="k", ls="--", lw=1, label="exact")
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("shots")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    left.set(ylabel="decision agreement with noiseless (%)", title="Decisions against shots")
    right.set(ylabel="%", title="Placement quality against shots")
    save_figure(fig, paths["shots"])

    fig, ax = plt.subplots(figsize=(8, 4.2))
    bars = [  # a mitigated row shares its raw twin's job: drawn once
        e
        for e in evaluations
        if not (e.backend == "density" and e.noise is None and e.shots is not None) and e.mitigation is None
    ]
    names = [f"{e.agent}\n{e.setting}" for e in bars]
    values = [1e3 * e.result["decision_latency"]["per_decision_s"] for e in bars]
    ax.barh(names, values)
    ax.set_xscale("log")
    ax.set(xlabel="ms per decision (all agents, wall time)", title="Decision latency per backend")
    ax.tick_params(axis="y", labelsize=7)
    save_figure(fig, paths["decision_latency"])
    return paths
