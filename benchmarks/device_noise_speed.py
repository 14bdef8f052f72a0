"""Device noise on Aer: the naive path against qdt's, same run, same ISA circuit, same shots.

    .venv/bin/python benchmarks/device_noise_speed.py [--device fake_brisbane] [--repeats 5] [--quick]

Naive: qiskit-aer SamplerV2 with ``NoiseModel.from_backend(device)`` (built once, not timed per
call) on the full-width ISA circuit with the logical qubits measured: one PUB of 128 parameter
sets at 1024 shots. qdt: ``open_backend("aer", noise="device:NAME", shots=1024)`` on the same
circuit: noise model restricted to the used physical qubits, circuit remapped to a compact
register, exact noisy probabilities from Aer (density matrix, with the weight-only tail as one
superoperator), multinomial shots drawn from the run's generator. Both are timed per call,
interleaved, median over repeats, fresh weights on every call. The last columns check the
statistics of the naive counts against qdt's exact probabilities: the largest per-outcome |z|
(binomial sigma) and Pearson's chi-square over all rows, outcomes and calls, with its p-value
from 1000 multinomial draws of the same size from qdt's distribution (parametric bootstrap: many
outcomes have expected counts below 1, where the chi-square distribution would be too narrow).

Writes benchmarks/results/device_noise_speed.csv and .md and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from qiskit import ClassicalRegister, QuantumCircuit
from qiskit_aer.noise import NoiseModel
from qiskit_aer.primitives import SamplerV2

from qdt.circuits import build_vqc
from qdt.executors import open_backend
from qdt.experiments.tables import format_table
from qdt.noise.profiles import load_noise_profile

RESULTS = Path(__file__).resolve().parent / "results"
CASES = [("actor", 4, 1), ("actor", 4, 6), ("critic", 16, 1), ("critic", 16, 6)]  # (role, input width, L)


def measured_isa(isa: QuantumCircuit, readout: list[int]) -> QuantumCircuit:
    circuit = isa.copy()
    register = ClassicalRegister(len(readout), "meas")
    circuit.add_register(register)
    circuit.measure(readout, register)
    return circuit


def naive_counts(sampler: SamplerV2, circuit: QuantumCircuit, values: np.ndarray, shots: int) -> np.ndarray:
    result = sampler.run([(circuit, values)], shots=shots).result()
    bits = np.asarray(result[0].data.meas.array)[:, :, -1].astype(np.int64)  # <= 8 readout bits
    outcomes = 2**circuit.num_clbits
    flat = bits + outcomes * np.arange(values.shape[0])[:, None]
    return np.bincount(flat.ravel(), minlength=values.shape[0] * outcomes).reshape(values.shape[0], outcomes)


def pearson(counts: np.ndarray, probs: np.ndarray, shots: int) -> float:
    expected = shots * probs
    positive = expected > 0
    return float(np.sum((counts[positive] - expected[positive]) ** 2 / expected[positive]))


def bootstrap_chi_square(
    counts: np.ndarray, probs: np.ndarray, shots: int, draws: int = 1000
) -> tuple[float, float]:
    """Pearson's chi-square of ``counts`` against ``probs`` and the fraction of multinomial
    samples from ``probs`` (same shots per row) whose chi-square is at least as large."""
    observed = pearson(counts, probs, shots)
    generator = np.random.default_rng(2024)
    p = np.clip(probs, 0.0, None)
    p = p / p.sum(axis=1, keepdims=True)
    simulated = [pearson(generator.multinomial(shots, p), probs, shots) for _ in range(draws)]
    return observed, (1 + sum(s >= observed for s in simulated)) / (1 + draws)


def run_case(
    role: str, width: int, layers: int, device: str, rows: int, shots: int, repeats: int, model: NoiseModel
) -> dict[str, object]:
    vqc = build_vqc(width, layers)
    rng = np.random.default_rng(width * 100 + layers)
    x = torch.tensor(rng.integers(0, 2, (rows, width)), dtype=torch.float64)
    angles = vqc.angles(x)
    executor = open_backend("aer", noise=f"device:{device}", shots=shots, seed=np.random.SeedSequence(1))
    exact_executor = open_backend("executor:aer", noise=f"device:{device}")
    start = time.perf_counter()
    prepared = executor.prepare_vqc(vqc)
    prepare_s = time.perf_counter() - start
    exact_prepared = exact_executor.prepare_vqc(vqc)
    plan = prepared.payload
    isa = plan.transpiled
    readout = [plan.physical_qubits[q] for q in plan.readout]
    circuit = measured_isa(isa, readout)
    order = {p: i for i, p in enumerate(list(vqc.encoding_params) + list(vqc.weight_params))}
    columns = [order[p] for p in isa.parameters]
    seeds = np.random.default_rng(7)
    naive_s, fresh_s, worst_z = [], [], 0.0
    all_counts, all_exact = [], []
    for _ in range(repeats):
        weights = torch.tensor(rng.uniform(0, 2 * np.pi, vqc.n_weights))
        values = np.concatenate([angles.numpy(), np.tile(weights.numpy(), (rows, 1))], axis=1)[:, columns]
        seed = int(seeds.integers(2**32))  # a fresh seed per call: independent draws
        sampler = SamplerV2(seed=seed, options={"backend_options": {"noise_model": model}})
        start = time.perf_counter()
        counts = naive_counts(sampler, circuit, values, shots)
        naive_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        executor.run(prepared, angles, weights)
        fresh_s.append(time.perf_counter() - start)
        method = executor.last_run_info["method"]
        exact = exact_executor.run(exact_prepared, angles, weights).numpy()
        sigma = np.sqrt(exact * (1 - exact) / shots)
        z = np.abs(counts / shots - exact) / np.where(sigma > 0, sigma, np.inf)
        worst_z = max(worst_z, float(z.max()))
        all_counts.append(counts)
        all_exact.append(exact)
    naive, fresh = statistics.median(naive_s), statistics.median(fresh_s)
    chi_square, p_value = bootstrap_chi_square(np.concatenate(all_counts), np.concatenate(all_exact), shots)
    return {
        "case": f"{role} {vqc.n_qubits}q L{layers}",
        "device": device,
        "rows": rows,
        "shots": shots,
        "isa_2q_gates": plan.two_qubit_gates,
        "isa_gates": sum(1 for inst in isa.data if inst.operation.name not in ("barrier",)),
        "simulated_qubits": plan.num_qubits,
        "method": method,
        "naive_ms": round(1000 * naive, 1),
        "qdt_ms": round(1000 * fresh, 1),
        "speedup": round(naive / fresh, 1),
        "qdt_prepare_ms": round(1000 * prepare_s, 1),
        "max_abs_z": round(worst_z, 2),
        "chi_square": round(chi_square, 1),
        "chi_square_dof": int(np.sum(np.concatenate(all_exact) > 0)) - repeats * rows,
        "chi_square_p": round(p_value, 3),
        "outcomes_compared": repeats * rows * 2**vqc.n_qubits,
        "repeats": repeats,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="fake_brisbane", help="fake backend (default fake_brisbane)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per path and case (default 5)")
    parser.add_argument("--rows", type=int, default=128, help="parameter sets per call (default 128)")
    parser.add_argument("--shots", type=int, default=1024, help="shots per parameter set (default 1024)")
    parser.add_argument("--quick", action="store_true", help="only the critic 4q L6 case, 3 repeats")
    args = parser.parse_args(argv)
    profile = load_noise_profile(f"device:{args.device}")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = NoiseModel.from_backend(profile.backend)
    model_s = time.perf_counter() - start
    cases = CASES[-1:] if args.quick else CASES
    repeats = 3 if args.quick else args.repeats
    rows = []
    for role, width, layers in cases:
        rows.append(run_case(role, width, layers, args.device, args.rows, args.shots, repeats, model))
        print(
            f"{rows[-1]['case']}: naive {rows[-1]['naive_ms']} ms, qdt {rows[-1]['qdt_ms']} ms",
            file=sys.stderr,
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "device_noise_speed.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    headers = [
        "case",
        "ISA 2q gates",
        "simulated qubits",
        "naive (ms)",
        "qdt (ms)",
        "speed-up",
        "max abs z",
        "chi² / dof",
        "p-value",
    ]
    table = [
        [
            r["case"],
            r["isa_2q_gates"],
            r["simulated_qubits"],
            f"{r['naive_ms']:.0f}",
            f"{r['qdt_ms']:.1f}",
            f"{r['speedup']:.1f}x",
            f"{r['max_abs_z']:.2f}",
            f"{r['chi_square']:.0f} / {r['chi_square_dof']}",
            f"{r['chi_square_p']:.3f}",
        ]
        for r in rows
    ]
    note = (
        f"{args.device}, {args.rows} parameter sets x {args.shots} shots per call, median of {repeats} "
        f"interleaved calls per path (2 cores, shared machine). Naive: Aer SamplerV2 + "
        f"NoiseModel.from_backend ({1000 * model_s:.0f} ms to build, once, not counted). qdt: "
        f"`open_backend('aer', noise='device:{args.device}', shots={args.shots})`, fresh weights "
        f"per call. Statistics: naive counts against qdt's exact probabilities, per outcome "
        f"(max abs z, binomial sigma) and over all {repeats} x {args.rows} rows (Pearson chi-square)."
    )
    markdown = format_table(headers, table, markdown=True) + "\n\n" + note + "\n"
    (RESULTS / "device_noise_speed.md").write_text(markdown)
    print(format_table(headers, table))
    print()
    print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
