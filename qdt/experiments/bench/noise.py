"""``qdt bench noise`` and ``qdt bench shots``: what NISQ noise and finite shots do to trained policies.

Policies: quantum agents (L = 6 by default) trained on the paper preset with several seeds, both
noiselessly (statevector) and noise-aware (density executor under a depolarizing profile).

``noise``: every policy is evaluated on the density executor under depolarizing noise with
2-qubit probability p2 in {0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1} (1-qubit p2/10) and readout
error in {0, 1e-2, 5e-2} (exact probabilities: no shot noise mixed in), on Aer under
device-derived noise models of fake IBM devices (sampled, 1024 shots, repeats), and on IBM
Runtime fake devices through the ``ibm`` executor in local testing mode, the code path of a real
device (:mod:`qdt.experiments.bench.runtime_devices`): per (policy, device) ONE job carries every
actor on all its observations and M3's two readout-calibration rows, and its counts are scored
raw and mitigated through mthree (calibrated by those rows). A device with fractional gates
(fake_fractional) is run with them on and off. fake_torino costs about 20 s a job (Aer simulates
the 133-qubit device's noise), the 5-qubit fake_fractional about 1 s.

``shots``: every noiseless-trained policy is evaluated with the readout sampled from
8, 16, ..., 8192 shots and exactly; the sampled readout (multinomial) next to the Gaussian
emulation of shot noise, to show whether the common Gaussian shortcut predicts the real effect.

Metrics (qdt.rl.evaluation): gap of the reached placement to the exact optimum, feasibility
rate, action agreement with the noiseless policy (mean over agents), decision agreement; on the
Runtime devices also the actors' ISA depth and the mean total variation distance (TVD) of their
probabilities to the exact ones.

The policies are trained as cells of a sweep on qdt's Ray engine in the runs folder
(:mod:`qdt.experiments.bench.runs`), and loaded from the run folders their result rows name. A policy whose
training failed is named under the study's table and left out of it.
"""

from __future__ import annotations

import csv
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qdt.experiments.bench.runs import TrainedRuns, bench_run, failure_note, train_runs
from qdt.experiments.bench.runtime_devices import MITIGATED, DeviceVariant, device_variants, score_on_device
from qdt.experiments.tables import format_table
from qdt.plots import plot_interval_line, pyplot, save_figure
from qdt.problem.generator import paper_instance
from qdt.rl.config import TrainConfig
from qdt.stats import format_interval, mean_interval

DEPOLARIZING_2Q = (0.0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
READOUT = (0.0, 1e-2, 5e-2)
DEVICES = ("fake_brisbane", "fake_torino", "fake_sherbrooke")
RUNTIME_DEVICES = ("fake_torino", "fake_fractional")  # through the ibm executor (local testing mode)
READOUTS = {"raw": "raw", MITIGATED: "mthree"}  # how the Runtime rows read a job's counts → CSV name
SHOTS = tuple(2**k for k in range(3, 14))  # 8 ... 8192
TRAINING_NOISE = "depol-1e-3"


@dataclass(frozen=True)
class PolicyRun:
    label: str  # "noiseless-trained" or "noise-aware"
    seed: int
    run_dir: Path


def train_policies(
    runs_dir: Path,
    *,
    seeds: int,
    episodes: int,
    layers: int,
    noise_aware: bool,
    workers: int | None,
    ray_address: str | None = None,
    retry_failed: bool = False,
    on_done: Callable[[str], None] | None = None,
) -> tuple[list[PolicyRun], TrainedRuns]:
    """Train (or reuse, or resume) the policies the studies evaluate, as sweep cells in ``runs_dir``.

    Returns the policies that finished (their run folders are the rows' ``run_dir``) and every
    run's outcome, failures included.
    """
    instance = paper_instance()
    runs = []
    for seed in range(seeds):
        base = TrainConfig.from_recipe("v1", agent="quantum", layers=layers, episodes=episodes, seed=seed)
        runs.append(
            bench_run(("noiseless-trained", seed), f"noiseless-trained seed {seed}", base, instance, "paper")
        )
        if noise_aware:
            aware = base.replace(backend="density", noise=TRAINING_NOISE)
            runs.append(
                bench_run(("noise-aware", seed), f"noise-aware seed {seed}", aware, instance, "paper")
            )

    def report(label: str, row: Mapping[str, Any]) -> None:
        if on_done is not None:
            on_done(f"trained {label}" if row["status"] == "ok" else f"FAILED {label}")

    trained = train_runs(
        runs,
        runs_dir,
        name="bench-noise",
        workers=workers,
        ray_address=ray_address,
        retry_failed=retry_failed,
        on_result=report,
    )
    policies = []
    for run in runs:
        folder = trained.run_dir(run.key)
        if folder is not None:
            label, seed = run.key
            policies.append(PolicyRun(label, seed, folder))
    return policies, trained


METRIC_FIELDS = ["gap", "feasible_rate", "action_agreement", "decision_agreement", "per_decision_s"]


def _metrics(result: dict[str, Any]) -> dict[str, Any]:
    placement = result["placement"]
    return {
        "gap": None if placement["gap"] is None else placement["gap"]["mean"],
        "feasible_rate": placement["feasible_rate"],
        "action_agreement": float(np.mean([a["action_agreement"]["mean"] for a in result["agents"]])),
        "decision_agreement": result["decision_agreement"]["mean"],
        "per_decision_s": result["decision_latency"]["per_decision_s"],
    }


def _evaluate(run: PolicyRun, executor: Any, repeats: int, seed: int) -> dict[str, Any]:
    from qdt.executors import open_backend
    from qdt.rl.evaluation import evaluate_policy
    from qdt.rl.policy import load_policy

    reference = load_policy(run.run_dir, executor=open_backend("statevector"))
    target = load_policy(run.run_dir, executor=executor)
    return _metrics(evaluate_policy(reference, target, repeats=repeats, seed=seed))


def noise_study(
    runs: Sequence[PolicyRun],
    *,
    devices: Sequence[str] = DEVICES,
    device_shots: int = 1024,
    repeats: int = 3,
    seed: int = 0,
    on_done: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    from qdt.executors import open_backend
    from qdt.noise.config import NoiseConfig

    seeds = iter(np.random.SeedSequence([seed, 11]).spawn(100_000))
    rows = []
    for run in runs:
        for p2 in DEPOLARIZING_2Q:
            for readout in READOUT:
                noise = NoiseConfig(
                    depolarizing_1q=p2 / 10,
                    depolarizing_2q=p2,
                    readout=[[[1 - readout, readout], [readout, 1 - readout]]] if readout else [],
                )
                executor = open_backend("executor:density", noise=noise)
                metrics = _evaluate(run, executor, 1, seed)
                rows.append(
                    {
                        "policy": run.label,
                        "seed": run.seed,
                        "model": "parametric",
                        "executor": "density",
                        "p2": p2,
                        "readout": readout,
                    }
                    | metrics
                )
        if on_done is not None:
            on_done(f"parametric grid, {run.label} seed {run.seed}")
        for device in devices:
            executor = open_backend("aer", seed=next(seeds), noise=f"device:{device}", shots=device_shots)
            metrics = _evaluate(run, executor, repeats, seed)
            rows.append(
                {
                    "policy": run.label,
                    "seed": run.seed,
                    "model": device,
                    "executor": "aer",
                    "p2": None,
                    "readout": None,
                }
                | metrics
            )
            if on_done is not None:
                on_done(f"{device}, {run.label} seed {run.seed}")
    return rows


def runtime_study(
    runs: Sequence[PolicyRun],
    variants: Sequence[DeviceVariant],
    job_dir: Path,
    *,
    seed: int = 0,
    on_done: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Per policy and Runtime device variant, ONE job (every actor on all its observations plus the
    readout-calibration rows), scored raw and mitigated through mthree from the same counts: two
    rows, ``mitigation`` "raw" and "mthree" (see :mod:`qdt.experiments.bench.runtime_devices`)."""
    seeds = iter(np.random.SeedSequence([seed, 17]).spawn(100_000))
    rows = []
    for run in runs:
        for variant in variants:
            results, scorer = score_on_device(
                run.run_dir, variant.profile, sources=tuple(READOUTS), seed=next(seeds), job_dir=job_dir
            )
            for source, mitigation in READOUTS.items():
                result = results[source]
                rows.append(
                    {
                        "policy": run.label,
                        "seed": run.seed,
                        "model": variant.label,
                        "executor": "ibm",
                        "p2": None,
                        "readout": None,
                        "mitigation": mitigation,
                        "fractional_gates": variant.fractional_gates,
                        "isa_depth": max(isa["depth"] for isa in scorer.isa),
                        "tvd": result["tvd"]["mean"],
                    }
                    | _metrics(result)
                )
            if on_done is not None:
                on_done(f"Runtime {variant.label}, {run.label} seed {run.seed}")
    return rows


def shots_study(
    runs: Sequence[PolicyRun],
    *,
    shots: Sequence[int] = SHOTS,
    repeats: int = 5,
    seed: int = 0,
    on_done: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    seeds = iter(np.random.SeedSequence([seed, 13]).spawn(100_000))
    rows = []
    for run in runs:
        if run.label != "noiseless-trained":
            continue
        # Exact Aer probabilities (the "aer" profile alone would sample 1024 shots).
        exact = _evaluate(run, make_aer(next(seeds), None, "exact"), 1, seed)
        rows.append({"seed": run.seed, "mode": "exact", "shots": None} | exact)
        for count in shots:
            for mode in ("sampled", "gaussian"):
                executor = make_aer(next(seeds), count, mode)
                rows.append(
                    {"seed": run.seed, "mode": mode, "shots": count} | _evaluate(run, executor, repeats, seed)
                )
        if on_done is not None:
            on_done(f"shots, seed {run.seed}")
    return rows


def make_aer(seed: np.random.SeedSequence, shots: int | None, mode: str) -> Any:
    from qdt.executors import open_backend

    return open_backend("executor:aer", shots=shots, mode=mode, seed=seed)


# ---- outputs -------------------------------------------------------------------------------
NOISE_FIELDS = [
    "policy",
    "seed",
    "model",
    "executor",
    "p2",
    "readout",
    "mitigation",
    "fractional_gates",
    "isa_depth",
    *METRIC_FIELDS,
    "tvd",
]
SHOTS_FIELDS = ["seed", "mode", "shots", *METRIC_FIELDS]


def write_rows(path: Path, rows: list[dict[str, Any]], fields: Sequence[str] | None = None) -> None:
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(fields or rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def clipped_interval(values: Sequence[float], upper: float | None = 1.0) -> tuple[float, float, float]:
    """Mean and 95% t-interval of a metric in [0, upper] (see mean_interval)."""
    return mean_interval(values, (0.0, upper))


def _summary(values: list[float | None], upper: float | None = 1.0) -> str:
    """Mean [95% t-interval] in percent (see clipped_interval)."""
    data = [v for v in values if v is not None]
    if not data:
        return "-"
    return format_interval(*clipped_interval(data, upper), scale=100)


def _intervals(samples: list[list[float | None]], key: str) -> list[tuple[float, float, float]]:
    """Per x, the interval of the values present (see clipped_interval; gaps have no upper
    bound); NaNs where every value is missing, so the line has a hole there."""
    upper = None if key == "gap" else 1.0
    intervals = []
    for values in samples:
        data = [v for v in values if v is not None]
        intervals.append(clipped_interval(data, upper) if data else (np.nan, np.nan, np.nan))
    return intervals


def _policies(rows: list[dict[str, Any]]) -> list[str]:
    """The policy labels, noiseless-trained first."""
    return sorted({r["policy"] for r in rows}, reverse=True)


def _quality(group: list[dict[str, Any]]) -> list[str]:
    """Gap, feasibility, action and decision agreement of a group of rows (one per seed)."""
    return [
        _summary([r["gap"] for r in group], upper=None),
        _summary([r["feasible_rate"] for r in group]),
        _summary([r["action_agreement"] for r in group]),
        _summary([r["decision_agreement"] for r in group]),
    ]


QUALITY = ["gap to optimum (%)", "feasible (%)", "action agreement (%)", "decision agreement (%)"]


def noise_markdown(rows: list[dict[str, Any]], seeds: int) -> tuple[list[str], list[list[Any]]]:
    """The simulated noise models (density and Aer rows); the Runtime rows: :func:`runtime_markdown`."""
    header = ["policy", "noise model", *QUALITY]
    rows = [r for r in rows if r.get("executor") != "ibm"]
    table = []
    settings: list[tuple[str, Any, Any]] = []
    for row in rows:
        key = (row["model"], row["p2"], row["readout"])
        if key not in settings:
            settings.append(key)
    for policy in _policies(rows):
        for model, p2, readout in settings:
            group = [
                r
                for r in rows
                if r["policy"] == policy and (r["model"], r["p2"], r["readout"]) == (model, p2, readout)
            ]
            if model == "parametric" and readout not in (0.0,) and p2 not in (0.0, 1e-3, 1e-2):
                continue  # the full grid is in the CSV; the table keeps a readable subset
            name = model if model != "parametric" else f"depolarizing p2={p2:g}, readout {readout:g}"
            table.append([policy, name, *_quality(group)])
    return header, table


def runtime_markdown(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """The Runtime rows: per policy, device variant and readout (raw, mthree), over seeds."""
    header = ["policy", "device (ibm executor)", "actor ISA depth", "readout", *QUALITY, "TVD to exact"]
    rows = [r for r in rows if r.get("executor") == "ibm"]
    variants = list(dict.fromkeys(r["model"] for r in rows))
    table = []
    for policy in _policies(rows):
        for variant in variants:
            for mitigation in READOUTS.values():
                group = [
                    r
                    for r in rows
                    if (r["policy"], r["model"], r["mitigation"]) == (policy, variant, mitigation)
                ]
                if not group:
                    continue
                depths = sorted({r["isa_depth"] for r in group})
                tvd = format_interval(*clipped_interval([r["tvd"] for r in group]), spec=".4f")
                readout = "raw" if mitigation == "raw" else "M3, calibrated in the job"
                table.append([policy, variant, "/".join(map(str, depths)), readout, *_quality(group), tvd])
    return header, table


def plot_noise(path: Path, rows: list[dict[str, Any]]) -> None:
    metrics = (
        ("gap", "gap to optimum (%)"),
        ("feasible_rate", "feasible (%)"),
        ("action_agreement", "action agreement (%)"),
    )
    runtime = [r for r in rows if r.get("executor") == "ibm"]
    fig, axes = pyplot().subplots(1, 4 if runtime else 3, figsize=(19 if runtime else 14, 4.2))
    parametric = [r for r in rows if r["model"] == "parametric"]
    x_values = sorted({r["p2"] for r in parametric})
    x_plot = [max(p, 3e-5) for p in x_values]  # p2 = 0 drawn at the left edge of the log axis
    for axis, (key, label) in zip(axes, metrics):
        for policy in sorted({r["policy"] for r in rows}, reverse=True):
            for readout in READOUT:
                samples = [
                    [
                        r[key]
                        for r in parametric
                        if r["policy"] == policy and r["p2"] == p2 and r["readout"] == readout
                    ]
                    for p2 in x_values
                ]
                style = "-" if policy == "noiseless-trained" else "--"
                legend = f"{policy}, readout {readout:g}"
                intervals = _intervals(samples, key)
                plot_interval_line(axis, x_plot, intervals, style, legend, band_alpha=0.12, ms=3)
        devices = [r for r in rows if r.get("executor") == "aer"]
        for k, device in enumerate(sorted({r["model"] for r in devices})):
            vals = [r[key] for r in devices if r["model"] == device and r[key] is not None]
            if vals:
                axis.axhline(100 * float(np.mean(vals)), color=f"C{7 + k % 3}", ls=":", lw=1.2, label=device)
        axis.set_xscale("log")
        axis.set_xlim(min(x_plot) / 1.5, max(x_plot) * 1.5)  # also when every value is missing
        axis.set(xlabel="2-qubit depolarizing probability p2 (1-qubit: p2/10)", ylabel=label)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    if runtime:
        plot_runtime(axes[3], runtime)
    fig.suptitle("Trained quantum policies (L = 6) under noise; dotted: fake-device noise models (Aer)")
    save_figure(fig, path)


def plot_runtime(axis: Any, rows: list[dict[str, Any]]) -> None:
    """Action and decision agreement per Runtime device variant, raw against mthree, every policy
    pooled (mean and 95% t-interval)."""
    variants = list(dict.fromkeys(r["model"] for r in rows))
    bars = [
        (key, mitigation)
        for key in ("action_agreement", "decision_agreement")
        for mitigation in READOUTS.values()
    ]
    width = 0.8 / len(bars)
    for k, (key, mitigation) in enumerate(bars):
        intervals = [
            clipped_interval([r[key] for r in rows if r["model"] == v and r["mitigation"] == mitigation])
            for v in variants
        ]
        means = np.array([100 * m for m, _, _ in intervals])
        errors = np.array([[100 * (m - lo), 100 * (hi - m)] for m, lo, hi in intervals]).T
        label = f"{key.split('_')[0]} agreement, {mitigation}"
        axis.bar(
            np.arange(len(variants)) + (k - (len(bars) - 1) / 2) * width,
            means,
            width,
            yerr=errors,
            capsize=2,
            color=f"C{k // 2}",
            alpha=0.55 if mitigation == "raw" else 1.0,
            hatch="" if mitigation == "raw" else "//",
            label=label,
        )
    axis.set_xticks(np.arange(len(variants)), variants, fontsize=7)
    low = max(0.0, 100 * min(min((r[key] for r in rows), default=1.0) for key, _ in bars) - 5)
    axis.set_ylim(low, 100 + 0.5 * (100 - low))  # room above the bars for the legend
    axis.set(
        ylabel="agreement with the noiseless policy (%)", title="IBM Runtime fake devices (ibm executor)"
    )
    axis.grid(alpha=0.3, axis="y")
    axis.legend(fontsize=6, loc="upper center", ncol=2)


def plot_shots(path: Path, rows: list[dict[str, Any]]) -> None:
    metrics = (
        ("gap", "gap to optimum (%)"),
        ("feasible_rate", "feasible (%)"),
        ("decision_agreement", "decision agreement (%)"),
    )
    fig, axes = pyplot().subplots(1, 3, figsize=(14, 4.2))
    shots = sorted({r["shots"] for r in rows if r["shots"] is not None})
    for axis, (key, label) in zip(axes, metrics):
        for mode, style in (("sampled", "-"), ("gaussian", "--")):
            samples = [[r[key] for r in rows if r["mode"] == mode and r["shots"] == count] for count in shots]
            legend = f"{mode} shot noise"
            plot_interval_line(axis, shots, _intervals(samples, key), style, legend, band_alpha=0.15, ms=3)
        exact = [r[key] for r in rows if r["mode"] == "exact" and r[key] is not None]
        if exact:
            axis.axhline(100 * float(np.mean(exact)), color="k", ls=":", label="exact")
        axis.set_xscale("log", base=2)
        if shots:
            axis.set_xlim(min(shots) / 1.5, max(shots) * 1.5)  # also when every value is missing
        axis.set(xlabel="shots", ylabel=label)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Noiseless-trained quantum policies (L = 6): sampled shot noise vs Gaussian emulation")
    save_figure(fig, path)


def shots_markdown(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    header = ["shots", "mode", "gap to optimum (%)", "feasible (%)", "decision agreement (%)"]
    table = []
    keys: list[tuple[Any, str]] = []
    for row in rows:
        if (row["shots"], row["mode"]) not in keys:
            keys.append((row["shots"], row["mode"]))
    keys.sort(key=lambda k: (k[0] is None, k[0] or 0, k[1]))
    for count, mode in keys:
        group = [r for r in rows if r["shots"] == count and r["mode"] == mode]
        table.append(
            [
                "exact" if count is None else count,
                mode,
                _summary([r["gap"] for r in group], upper=None),
                _summary([r["feasible_rate"] for r in group]),
                _summary([r["decision_agreement"] for r in group]),
            ]
        )
    return header, table


def write_study(
    out_dir: Path,
    name: str,
    rows: list[dict[str, Any]],
    note: str,
    table: tuple[list[str], list[list[Any]]],
    failures: str = "",
    fields: Sequence[str] | None = None,
    more: Sequence[tuple[str, tuple[list[str], list[list[Any]]]]] = (),
) -> str:
    """``name``.csv (every row) and ``name``.md (the note, the table, then each ``more`` table
    under its paragraph, then the failures); returns the tables as plain text."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_rows(out_dir / f"{name}.csv", rows, fields)
    header, body = table
    text = note + "\n\n" + format_table(header, body, markdown=True) + "\n"
    printed = format_table(header, body)
    for paragraph, (more_header, more_body) in more:
        text += "\n" + paragraph + "\n\n" + format_table(more_header, more_body, markdown=True) + "\n"
        printed += "\n\n" + format_table(more_header, more_body)
    (out_dir / f"{name}.md").write_text(text + (f"\n{failures}\n" if failures else ""))
    return printed


def run_noise_bench(
    out_dir: Path,
    runs_dir: Path,
    *,
    seeds: int = 3,
    episodes: int = 2000,
    layers: int = 6,
    devices: Sequence[str] = DEVICES,
    runtime_devices: Sequence[str] = RUNTIME_DEVICES,
    workers: int | None = None,
    ray_address: str | None = None,
    retry_failed: bool = False,
    on_done: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    start = time.perf_counter()
    variants = device_variants(runtime_devices)  # refused before any training
    runs, trained = train_policies(
        runs_dir,
        seeds=seeds,
        episodes=episodes,
        layers=layers,
        noise_aware=True,
        workers=workers,
        ray_address=ray_address,
        retry_failed=retry_failed,
        on_done=on_done,
    )
    rows = noise_study(runs, devices=devices, on_done=on_done)
    runtime_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="qdt-bench-noise-jobs-") as job_dir:
        rows += runtime_study(runs, variants, Path(job_dir), on_done=on_done)
    runtime_wall = time.perf_counter() - runtime_start
    wall = time.perf_counter() - start
    note = (
        f"Quantum policies (L = {layers}) trained {episodes} episodes on the paper preset, "
        f"{seeds} seeds each, "
        f"noiselessly and noise-aware (density executor, profile {TRAINING_NOISE}); evaluated under "
        "depolarizing noise (density executor, exact probabilities) and fake-device noise models (Aer, "
        "1024 shots, 3 draws). Mean [95% t-interval, clipped to 0–100%] over seeds. Full grid in noise.csv. "
        f"Wall time {wall:.0f} s."
    )
    more = []
    if variants:
        shots = sorted({v.profile.shots for v in variants if v.profile.shots is not None})
        more.append(
            (
                "IBM Runtime fake devices through the `ibm` executor in local testing mode (the code "
                f"path of a real device): per policy and device ONE job ({'/'.join(map(str, shots))} "
                f"shots) with every actor on all {2 ** paper_instance().n_users} observations and M3's "
                "two readout-calibration rows; its counts read raw and corrected through mthree "
                "calibrated by those rows. "
                "`(rx)`/`(no rx)`: the device's fractional gates on/off (native RX(θ)); ISA depth of "
                "the deepest actor circuit. TVD: mean total variation distance of the actors' "
                "probabilities to the exact ones. Mean [95% t-interval] over seeds. "
                f"{len(runs) * len(variants)} jobs, {runtime_wall:.0f} s.",
                runtime_markdown(rows),
            )
        )
    text = write_study(
        out_dir,
        "noise",
        rows,
        note,
        noise_markdown(rows, seeds),
        failure_note(trained),
        NOISE_FIELDS,
        more,
    )
    if rows:
        plot_noise(out_dir / "noise.png", rows)
    return {"wall_s": wall, "markdown": text, "trained": trained.trained, "failures": trained.failures}


def run_shots_bench(
    out_dir: Path,
    runs_dir: Path,
    *,
    seeds: int = 3,
    episodes: int = 2000,
    layers: int = 6,
    shots: Sequence[int] = SHOTS,
    repeats: int = 5,
    workers: int | None = None,
    ray_address: str | None = None,
    retry_failed: bool = False,
    on_done: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    start = time.perf_counter()
    runs, trained = train_policies(
        runs_dir,
        seeds=seeds,
        episodes=episodes,
        layers=layers,
        noise_aware=False,
        workers=workers,
        ray_address=ray_address,
        retry_failed=retry_failed,
        on_done=on_done,
    )
    rows = shots_study(runs, shots=shots, repeats=repeats, on_done=on_done)
    wall = time.perf_counter() - start
    note = (
        f"Noiseless-trained quantum policies (L = {layers}), {episodes} episodes, {seeds} seeds; readout "
        f"sampled on Aer with S shots (multinomial) or emulated as Gaussian noise, {repeats} draws per "
        f"seed. Mean [95% t-interval, clipped to 0–100%] over seeds and draws. Wall time {wall:.0f} s."
    )
    text = write_study(
        out_dir, "shots", rows, note, shots_markdown(rows), failure_note(trained), SHOTS_FIELDS
    )
    if rows:
        plot_shots(out_dir / "shots.png", rows)
    return {"wall_s": wall, "markdown": text, "trained": trained.trained, "failures": trained.failures}
