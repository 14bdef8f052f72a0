"""Inference through the paper's VQC with and without the encoded-state path, n = 2 … 12 qubits.

    .venv/bin/python benchmarks/encoded_state.py                 # about 2 minutes
        [--widths 2-12] [--layers 6] [--batches 128,2048] [--repeats 25] [--threads 1]
        [--out benchmarks/results/encoded-state]

Per width n, a batch of real inputs of width 2**n − 7 (the actor's ``placement`` rows are 7M + 1
wide: 57 at M = 8, on 6 qubits; 2**(n−1) + 1 below 4 qubits, the fewest that need n) goes forward
through the statevector executor without gradients, two ways, on one torch thread:

- ``angles``: the encoding's angles (``AmplitudeEncoder.__call__``), then the product kernel on
  them (its tree prepares the state from the angles, then the layers): what every executor runs;
- ``state``: ``StatevectorExecutor.run_encoded`` under ``torch.no_grad()``, the encoded state
  φ(x)/|φ(x)| straight to the layers (``ProductKernel.state_probabilities``): what a trained
  policy's decisions take (``qdt place``, ``qdt bench generalise``).

Each repeat runs both in a fresh random order (interleaved); medians are reported with their
ratio, and the largest absolute difference between the two outputs over the batch.
Writes ``encoded_state.csv``, ``encoded_state.md`` and ``encoded_state.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import statistics
import time
from pathlib import Path

import torch

from qdt.circuits import build_vqc
from qdt.executors.statevector import StatevectorExecutor

FIELDS = ("qubits", "inputs", "layers", "batch", "angles_ms", "state_ms", "speedup", "max_abs_diff")


def _widths(text: str) -> list[int]:
    low, _, high = text.partition("-")
    widths = list(range(int(low), int(high or low) + 1))
    if not widths or widths[0] < 2 or widths[-1] > 12:
        raise SystemExit(f"--widths: expected a range within 2-12 such as 2-12, got {text!r}")
    return widths


def _positive_ints(flag: str, text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise SystemExit(f"{flag}: expected positive integers separated by commas, got {text!r}")
    return values


def measure(qubits: int, layers: int, batch: int, repeats: int, seed: int) -> dict[str, float]:
    """One cell: both ways' median milliseconds and their largest difference."""
    width = max((1 << (qubits - 1)) + 1, (1 << qubits) - 7)  # the fewest inputs that need n qubits
    vqc = build_vqc(width, layers)
    if vqc.n_qubits != qubits:
        raise RuntimeError(f"{width} inputs: expected a {qubits}-qubit circuit, got {vqc.n_qubits} qubits")
    executor = StatevectorExecutor()
    prepared = executor.prepare_vqc(vqc)
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.rand(batch, width, generator=generator, dtype=torch.float64)
    weights = torch.rand(vqc.n_weights, generator=generator, dtype=torch.float64) * 6.3

    def angles() -> torch.Tensor:
        return executor.run(prepared, vqc.encoder(inputs), weights)

    def state() -> torch.Tensor:
        return executor.run_encoded(prepared, vqc.encoder, inputs, weights)

    ways = {"angles": angles, "state": state}
    times: dict[str, list[float]] = {name: [] for name in ways}
    order = random.Random(seed)
    with torch.no_grad():
        difference = float((angles() - state()).abs().max())
        for _ in range(repeats):
            names = list(ways)
            order.shuffle(names)
            for name in names:
                start = time.perf_counter()
                ways[name]()
                times[name].append(time.perf_counter() - start)
    angles_ms, state_ms = (1000 * statistics.median(times[name]) for name in ("angles", "state"))
    return {
        "qubits": qubits,
        "inputs": width,
        "layers": layers,
        "batch": batch,
        "angles_ms": angles_ms,
        "state_ms": state_ms,
        "speedup": angles_ms / state_ms,
        "max_abs_diff": difference,
    }


def write(rows: list[dict[str, float]], out: Path, header: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "encoded_state.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# Inference through the VQC: encoding angles vs the encoded state",
        "",
        header,
        "",
        "| qubits | inputs | L | batch | angles (ms) | state (ms) | speed-up | max abs diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['qubits']} | {row['inputs']} | {row['layers']} | {row['batch']} "
            f"| {row['angles_ms']:.3f} | {row['state_ms']:.3f} | {row['speedup']:.2f}× "
            f"| {row['max_abs_diff']:.1e} |"
        )
    (out / "encoded_state.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.0))
    for batch in sorted({int(row["batch"]) for row in rows}):
        cells = [row for row in rows if row["batch"] == batch]
        qubits = [row["qubits"] for row in cells]
        axis.plot(qubits, [row["angles_ms"] for row in cells], "o--", label=f"angles, batch {batch}")
        axis.plot(qubits, [row["state_ms"] for row in cells], "s-", label=f"encoded state, batch {batch}")
    axis.set_yscale("log")
    axis.set_xlabel("qubits")
    axis.set_ylabel("forward, no gradient (ms, median)")
    axis.set_title(f"Statevector inference through the VQC (L = {int(rows[0]['layers'])})")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "encoded_state.png", dpi=130)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--widths", default="2-12", help="qubit range, within 2-12 (default 2-12)")
    parser.add_argument("--layers", type=int, default=6, help="variational layers L (default 6)")
    parser.add_argument(
        "--batches", default="128,2048", help="batch sizes, comma-separated (default 128,2048)"
    )
    parser.add_argument("--repeats", type=int, default=25, help="interleaved repeats per cell (default 25)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/encoded-state"), help="output folder"
    )
    args = parser.parse_args(argv)
    widths = _widths(args.widths)
    batches = _positive_ints("--batches", args.batches)
    if args.layers < 0 or args.repeats < 1 or args.threads < 1:
        raise SystemExit("--layers must be >= 0, --repeats and --threads >= 1")
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    rows = []
    for batch in batches:
        for qubits in widths:
            row = measure(qubits, args.layers, batch, args.repeats, seed=1000 * qubits + batch)
            rows.append(row)
            print(
                f"{qubits:2d} qubits, batch {batch}: angles {row['angles_ms']:.2f} ms, "
                f"state {row['state_ms']:.2f} ms ({row['speedup']:.2f}×), max diff {row['max_abs_diff']:.1e}",
                flush=True,
            )
    header = (
        f"`python benchmarks/encoded_state.py --widths {args.widths} --layers {args.layers} --batches "
        f"{args.batches} --repeats {args.repeats} --threads {args.threads}`; "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, load average {load:.2f} "
        f"at the start and {os.getloadavg()[0]:.2f} at the end. "
        "Medians of interleaved repeats, forward only, no gradient."
    )
    write(rows, args.out, header)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
