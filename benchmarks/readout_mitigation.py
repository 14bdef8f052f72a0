"""Readout mitigation through mthree on fake devices: raw against mitigated, by calibration source.

    .venv/bin/python benchmarks/readout_mitigation.py [--jobs 10] [--torino-jobs 5] [--shots 1024]

Trains two quantum policies on the paper's instance (recipe v1: 2-qubit actors, L = 6, 300
episodes, seeds 0 and 1), then on each fake device runs jobs as ``qdt infer --mitigate readout``
does: every agent's actor on all 2^N observations plus the two readout-calibration rows (every
qubit in |0>, in |1>) in ONE job. From the same counts it scores the actors raw and mitigated
through mthree with each calibration source of :mod:`qdt.executors.ibm.mitigation`:
``properties`` (the device's reported prob_meas1_prep0 / prob_meas0_prep1) and ``circuits``
(the calibration rows of that job). Per (policy, device, source), means over the jobs:

* action agreement: share of (agent, observation) whose binary action equals the noiseless
  policy's; decision agreement: share of (joint state, user) whose decoded server does
  (``qdt.rl.evaluation``: all 2^(N·M) joint states);
* TVD: mean total variation distance of the actors' probabilities to the exact ones.

The job and its scoring are :mod:`qdt.experiments.bench.runtime_devices`, which ``qdt bench noise``
and ``qdt demo`` use as well.

Devices: fake_manila (Falcon, CX), fake_fractional (5 qubits, fractional gates on: native rx),
the same device with fractional gates off, and fake_torino (Heron r1, CZ; slow: Aer simulates the
133-qubit device's noise, about 20 s a job). Writes benchmarks/results/readout_mitigation.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path
from typing import Any

from qdt.cli.main import main as qdt_main
from qdt.experiments.bench.runtime_devices import SOURCES, device_variants, score_on_device
from qdt.experiments.tables import format_table

RESULTS = Path(__file__).resolve().parent / "results"


def train_policies(folder: Path, seeds: tuple[int, ...]) -> list[Path]:
    runs = []
    for seed in seeds:
        run = folder / f"q6-seed{seed}"
        args = ["train", "--preset", "paper", "--agent", "quantum", "--layers", "6", "--recipe", "v1"]
        args += ["--episodes", "300", "--seed", str(seed), "--out", str(run)]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert qdt_main(args) == 0, f"training {run} failed"
        runs.append(run)
    return runs


def measure(run: Path, device: Any, jobs: int, shots: int, seed: int, job_dir: Path) -> tuple[dict, int]:
    """Means over ``jobs`` jobs per readout source (qdt.experiments.bench.runtime_devices: one job
    per draw, every actor and the calibration rows in it), and the first actor's ISA depth."""
    results, scorer = score_on_device(
        run, device, jobs=jobs, sources=SOURCES, seed=seed, shots=shots, job_dir=job_dir
    )
    summary = {}
    for source, result in results.items():
        action = [agent["action_agreement"]["mean"] for agent in result["agents"]]
        summary[source] = {
            "action": sum(action) / len(action),
            "decision": result["decision_agreement"]["mean"],
            "tvd": result["tvd"]["mean"],
        }
    return summary, scorer.isa[0]["depth"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs", type=int, default=10, help="jobs per (policy, device) on the 5-qubit devices"
    )
    parser.add_argument("--torino-jobs", type=int, default=5, help="jobs per policy on fake_torino (0: skip)")
    parser.add_argument("--shots", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=RESULTS / "readout_mitigation.md")
    args = parser.parse_args()
    started = time.time()
    rx, no_rx = device_variants(["fake_fractional"], "fake_fractional")  # fractional gates on, off
    devices: list[tuple[str, Any, int]] = [
        ("fake_manila", "fake_manila", args.jobs),
        ("fake_fractional (fractional gates on)", rx.profile, args.jobs),
        ("fake_fractional, fractional gates off", no_rx.profile, args.jobs),
    ]
    if args.torino_jobs > 0:
        devices.append(("fake_torino", "fake_torino", args.torino_jobs))
    rows = []
    with tempfile.TemporaryDirectory(prefix="qdt-mitigation-") as folder:
        runs = train_policies(Path(folder), (0, 1))
        for label, device, jobs in devices:
            for seed, run in enumerate(runs):
                summary, depth = measure(run, device, jobs, args.shots, 11, Path(folder))
                for source in SOURCES:
                    m = summary[source]
                    rows.append(
                        [label, f"seed {seed}", depth, jobs, source]
                        + [f"{100 * m['action']:.2f}%", f"{100 * m['decision']:.2f}%", f"{m['tvd']:.4f}"]
                    )
                print(
                    label,
                    f"seed {seed}",
                    {s: {k: round(v, 4) for k, v in m.items()} for s, m in summary.items()},
                )
    headers = [
        "device",
        "policy",
        "actor ISA depth",
        "jobs",
        "readout",
        "action agreement",
        "decision agreement",
        "TVD",
    ]
    table = format_table(headers, rows, markdown=True)
    text = (
        "# Readout mitigation through mthree on fake devices\n\n"
        f"`python benchmarks/readout_mitigation.py --jobs {args.jobs} --torino-jobs {args.torino_jobs} "
        f"--shots {args.shots}` ({time.time() - started:.0f} s). Two policies (recipe v1, 2-qubit actors, "
        "L = 6, 300 episodes); every job carries both actors on all 16 observations and the two "
        "calibration rows; agreement with the noiseless policy and TVD to the exact probabilities are "
        "means over the jobs (see the script's docstring).\n\n" + table + "\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(table)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
