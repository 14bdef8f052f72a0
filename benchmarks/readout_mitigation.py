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

import numpy as np
import torch

from qdt.cli.main import main as qdt_main
from qdt.executors import open_backend, parse_profile
from qdt.executors.ibm.mitigation import (
    m3_mitigate,
    m3_mitigator,
    matrices_from_calibration,
    readout_assignment_matrices,
)
from qdt.experiments.tables import format_table
from qdt.rl.evaluation import decisions_from_tables, joint_states
from qdt.rl.maddpg import all_observations
from qdt.rl.policy import load_policy

RESULTS = Path(__file__).resolve().parent / "results"
SOURCES = ("raw", "properties", "circuits")
FRACTIONAL_OFF = {
    "schema": "qdt-backend/1",
    "name": "fake_fractional_off",
    "executor": "ibm",
    "description": "fake_fractional with fractional gates off",
    "shots": 1024,
    "device": {"provider": "fake", "name": "fake_fractional", "fractional_gates": False},
    "runtime": {"poll_interval_s": 0.05, "max_poll_interval_s": 0.5},
}


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


def measure(
    run: Path, device: Any, jobs: int, shots: int, seed: int
) -> tuple[dict[str, dict[str, float]], Any]:
    reference = load_policy(run, executor=open_backend("statevector"))
    observations = all_observations(reference.n_users)
    reference_tables = np.stack(
        [reference.actor_scores(j, observations).numpy() for j in range(reference.n_servers)]
    )
    states = joint_states(reference.n_users, reference.n_servers, np.random.default_rng(0))
    reference_decisions = decisions_from_tables(reference_tables, states, reference.decode)
    executor = open_backend(device, shots=shots, seed=seed, job_dir=Path(tempfile.mkdtemp()))
    policy = load_policy(run, executor=executor)
    exact_executor = open_backend("statevector")
    physical = [executor.isa_report(actor.front.prepared)["physical_readout"] for actor in policy.actors]
    qubits = sorted({q for agent in physical for q in agent})
    calibration = executor.prepare_readout_calibration(qubits)
    reported = dict(zip(qubits, readout_assignment_matrices(executor.device.backend, qubits)))
    items, exact = [], []
    for j, actor in enumerate(policy.actors):
        x = actor.inputs(torch.as_tensor(observations, dtype=torch.float64), j)
        items.append((actor.front.prepared, actor.front.vqc.angles(x), actor.front.weight.detach()))
        exact.append(
            exact_executor.run(exact_executor.prepare_vqc(actor.front.vqc), items[-1][1], items[-1][2])
        )
    empty = (torch.zeros(1, 0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64))
    values: dict[str, dict[str, list[float]]] = {
        s: {"action": [], "decision": [], "tvd": []} for s in SOURCES
    }
    for _ in range(jobs):
        with torch.no_grad():
            results = [r.numpy() for r in executor.run_many(items + [(c, *empty) for c in calibration])]
            probs, (zeros, ones) = results[: len(items)], results[len(items) :]
            measured = dict(zip(qubits, matrices_from_calibration(zeros, ones, qubits)))
            variants = {"raw": probs}
            for source, matrices in (("properties", reported), ("circuits", measured)):
                variants[source] = [
                    m3_mitigate(p, shots, q, m3_mitigator(q, [matrices[i] for i in q]))
                    for p, q in zip(probs, physical)
                ]
            for source, per_agent in variants.items():
                tables = np.stack(
                    [
                        torch.sigmoid(a.body(torch.as_tensor(p))).numpy()
                        for a, p in zip(policy.actors, per_agent)
                    ]
                )
                same = (tables > 0.5) == (reference_tables > 0.5)
                decisions = decisions_from_tables(tables, states, policy.decode)
                values[source]["action"].append(float(same.all(axis=2).mean()))
                values[source]["decision"].append(float((decisions == reference_decisions).mean()))
                tvd = [0.5 * np.abs(p - e.numpy()).sum(axis=1).mean() for p, e in zip(per_agent, exact)]
                values[source]["tvd"].append(float(np.mean(tvd)))
    return {s: {k: float(np.mean(v)) for k, v in m.items()} for s, m in values.items()}, executor


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
    devices: list[tuple[str, Any, int]] = [
        ("fake_manila", "fake_manila", args.jobs),
        ("fake_fractional (fractional gates on)", "fake_fractional", args.jobs),
        ("fake_fractional, fractional gates off", parse_profile(FRACTIONAL_OFF), args.jobs),
    ]
    if args.torino_jobs > 0:
        devices.append(("fake_torino", "fake_torino", args.torino_jobs))
    rows = []
    with tempfile.TemporaryDirectory(prefix="qdt-mitigation-") as folder:
        runs = train_policies(Path(folder), (0, 1))
        for label, device, jobs in devices:
            for seed, run in enumerate(runs):
                summary, executor = measure(run, device, jobs, args.shots, seed=11)
                depth = executor.isa_report(load_policy(run, executor=executor).actors[0].front.prepared)[
                    "depth"
                ]
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
