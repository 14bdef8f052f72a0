"""Speed of the paper's circuits: qdt's executors side by side with PennyLane and qiskit-ml.

    .venv/bin/python benchmarks/speed_circuits.py [--repeats 200] [--quick] [--cases actor:1,critic:6]
        [--stacks qdt-statevector,pennylane,...] [--qml-limit 60] [--threads 1] [--out DIR]

What is timed, per case (actor: 2 qubits, input width 4; critic: 4 qubits, input width 16; L = 1
and 6 layers; a batch of 128 real inputs in [0, 1)):

- ``forward``: inputs → the layer's outputs, no autograd graph;
- ``forward+backward``: outputs, then the gradients of a fixed random projection ⟨g, out⟩ with
  respect to the layer's weights AND its inputs (torch.autograd.grad; nothing accumulates).

Every stack starts from the raw inputs: qdt's layers (``QuantumLayer``: the amplitude-encoding
angles computed in torch, then one executor call); PennyLane ``default.qubit`` with backprop
inside ``qml.qnn.TorchLayer`` (the paper's stack: ``AmplitudeEmbedding`` of the same feature
map, probabilities); qiskit-machine-learning ``EstimatorQNN`` + ``TorchConnector`` on the same
``QuantumCircuit`` with qdt's angles as its inputs, exact (``StatevectorEstimator``,
``default_precision=0``; the default 1/64 adds Gaussian noise), reading out ⟨Z_i⟩ (its natural
output; 2^n projectors instead would take ~10× longer), so its ratio is taken against qdt with
the ⟨Z_i⟩ readout. EstimatorQNN is timed only where one call stays under ``--qml-limit``
seconds: its forward pass is timed once, a call with gradients is predicted as
forward × (1 + 2·(angles + weights)) (parameter shift: two shifted circuits per parameter) and
skipped, with a note, when the prediction exceeds the limit.

Timing: all cells are warmed up, then each repeat runs every cell once in a fresh random order
(interleaved, so contention from other processes hits all stacks alike); the tables report the
median (and the interquartile range in the CSV). Torch runs on ``--threads`` threads (default 1:
these tensors are tiny). Writes ``speed_circuits.csv``, ``speed_circuits.md`` and
``speed_circuits.png`` to ``--out`` (default benchmarks/results) and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from qdt.circuits import build_vqc
from qdt.executors import open_backend
from qdt.experiments.tables import format_table
from qdt.noise import NoiseConfig
from qdt.rl.quantum_layer import QuantumLayer

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 128
CASES = {"actor": 4, "critic": 16}  # input width; qubits = ceil(log2(width))
DEFAULT_CASES = "actor:1,actor:6,critic:1,critic:6"
NOISE = NoiseConfig(depolarizing_1q=1e-3, depolarizing_2q=1e-2)
MODES = ("forward", "forward+backward")
REFERENCE = "qdt-statevector"


@dataclass(frozen=True)
class StackSpec:
    name: str
    label: str
    reference: str | None  # stack its ratio is measured against (None: it is a reference)


STACKS = {
    spec.name: spec
    for spec in (
        StackSpec("qdt-statevector", "qdt statevector", None),
        StackSpec("qdt-statevector-z", "qdt statevector, ⟨Z⟩ readout", None),
        StackSpec("qdt-density", "qdt density, noiseless (pure-state path)", REFERENCE),
        StackSpec("qdt-density-pauli", "qdt density, noiseless, density-matrix path", REFERENCE),
        StackSpec("qdt-density-noise", "qdt density, depolarizing 1e-3/1e-2", REFERENCE),
        StackSpec("pennylane", "PennyLane default.qubit TorchLayer backprop", REFERENCE),
        StackSpec("qiskit-ml", "qiskit-ml EstimatorQNN+TorchConnector, exact, ⟨Z⟩", "qdt-statevector-z"),
    )
}
DEFAULT_STACKS = ",".join(STACKS)


@dataclass
class Cell:
    case: str
    layers: int
    stack: str
    mode: str
    run: Callable[[], object] | None
    times: list[float] = field(default_factory=list)
    note: str = ""
    max_repeats: int | None = None  # None: every repeat

    @property
    def width(self) -> int:
        return CASES[self.case]

    @property
    def qubits(self) -> int:
        return build_vqc(self.width, 0).n_qubits


@dataclass
class Runner:
    """A built layer: ``forward()`` and ``forward_backward()`` on fixed inputs."""

    forward: Callable[[], object]
    forward_backward: Callable[[], object]
    n_angles: int = 0
    n_weights: int = 0


def _module_runner(module: torch.nn.Module, x: torch.Tensor, g_seed: int, cast: bool = False) -> Runner:
    params = [p for p in module.parameters() if p.requires_grad]
    inputs = x.clone().requires_grad_()
    with torch.no_grad():
        shape = module(x).shape
    g = torch.randn(shape, generator=torch.Generator().manual_seed(g_seed), dtype=torch.float64)
    if cast:
        g = g.float()

    def forward() -> object:
        with torch.no_grad():
            return module(x)

    def forward_backward() -> object:
        out = module(inputs)
        return torch.autograd.grad((out * g).sum(), [inputs, *params])

    return Runner(forward, forward_backward)


def build_qdt(stack: str, width: int, layers: int, x: torch.Tensor) -> Runner:
    vqc = build_vqc(width, layers)
    readout = "probs"
    if stack in ("qdt-statevector", "qdt-statevector-z"):
        executor = open_backend("executor:statevector")
        readout = "expval_z" if stack == "qdt-statevector-z" else "probs"
    elif stack == "qdt-density":
        executor = open_backend("executor:density")
    elif stack == "qdt-density-pauli":
        executor = open_backend("executor:density", method="pauli")
    elif stack == "qdt-density-noise":
        executor = open_backend("executor:density", noise=NOISE)
    else:  # pragma: no cover - guarded by the parser
        raise ValueError(stack)
    torch.manual_seed(width * 100 + layers)
    layer = QuantumLayer(vqc, executor, readout=readout)
    return _module_runner(layer, x, g_seed=layers)


def build_pennylane(width: int, layers: int, x: torch.Tensor) -> Runner:
    from qdt.experiments.pennylane_front import PennyLaneFront

    torch.manual_seed(width * 100 + layers)
    return _module_runner(PennyLaneFront(width, layers), x, g_seed=layers)


class _QmlLayer(torch.nn.Module):
    """qdt's angles (torch) → EstimatorQNN + TorchConnector (float32) → ⟨Z_i⟩."""

    def __init__(self, width: int, layers: int) -> None:
        super().__init__()
        from qiskit.primitives import StatevectorEstimator
        from qiskit.quantum_info import SparsePauliOp
        from qiskit_machine_learning.connectors import TorchConnector
        from qiskit_machine_learning.neural_networks import EstimatorQNN

        self.vqc = build_vqc(width, layers)
        n = self.vqc.n_qubits
        observables = [SparsePauliOp("I" * (n - 1 - i) + "Z" + "I" * i) for i in range(n)]
        qnn = EstimatorQNN(
            circuit=self.vqc.circuit,
            estimator=StatevectorEstimator(),
            observables=observables,
            input_params=list(self.vqc.encoding_params),
            weight_params=list(self.vqc.weight_params),
            input_gradients=True,
            default_precision=0.0,
        )
        generator = np.random.default_rng(width * 100 + layers)
        initial = generator.uniform(0.0, 2 * math.pi, self.vqc.n_weights)
        self.connector = TorchConnector(qnn, initial_weights=initial)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.connector(self.vqc.angles(x).float())


def build_qml(width: int, layers: int, x: torch.Tensor) -> Runner:
    module = _QmlLayer(width, layers)
    runner = _module_runner(module, x, g_seed=layers, cast=True)
    runner.n_angles, runner.n_weights = module.vqc.n_encoding, module.vqc.n_weights
    return runner


def build_runner(stack: str, width: int, layers: int, x: torch.Tensor) -> Runner:
    if stack == "pennylane":
        return build_pennylane(width, layers, x)
    if stack == "qiskit-ml":
        return build_qml(width, layers, x)
    return build_qdt(stack, width, layers, x)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def parse_cases(text: str) -> list[tuple[str, int]]:
    cases = []
    for item in text.split(","):
        name, _, layers = item.strip().partition(":")
        if name not in CASES or not layers.isdigit():
            raise ValueError(
                f"--cases: expected items like actor:1 or critic:6 (cases {sorted(CASES)}, layers >= 0), "
                f"got {item!r}"
            )
        cases.append((name, int(layers)))
    return cases


def parse_stacks(text: str) -> list[str]:
    stacks = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in stacks if s not in STACKS]
    if unknown or not stacks:
        raise ValueError(f"--stacks: expected names among {', '.join(STACKS)}, got {unknown or text!r}")
    needed = {STACKS[s].reference for s in stacks} - {None} - set(stacks)
    return [s for s in STACKS if s in set(stacks) | needed]


def build_cells(
    cases: list[tuple[str, int]], stacks: list[str], qml_limit: float, qml_repeats: int
) -> list[Cell]:
    cells: list[Cell] = []
    for case, layers in cases:
        width = CASES[case]
        x = torch.rand(
            BATCH, width, generator=torch.Generator().manual_seed(7 * width + layers), dtype=torch.float64
        )
        for stack in stacks:
            runner = build_runner(stack, width, layers, x)
            if stack != "qiskit-ml":
                for mode in MODES:
                    fn = runner.forward if mode == "forward" else runner.forward_backward
                    for _ in range(3):  # warm-up: caches, allocator, lazy imports
                        fn()
                    cells.append(Cell(case, layers, stack, mode, fn))
                continue
            first_forward = timed(runner.forward)
            predicted = first_forward * (1 + 2 * (runner.n_angles + runner.n_weights))
            if first_forward > qml_limit:
                note = f"not timed: one forward call took {first_forward:.0f} s > {qml_limit:g} s"
                cells.append(Cell(case, layers, stack, "forward", None, note=note))
                cells.append(Cell(case, layers, stack, "forward+backward", None, note=note))
                continue
            cells.append(Cell(case, layers, stack, "forward", runner.forward, max_repeats=qml_repeats))
            if predicted > qml_limit:
                note = (
                    f"not timed: one call estimated at {predicted:.0f} s > {qml_limit:g} s "
                    f"(forward {first_forward:.1f} s × (1 + 2·{runner.n_angles + runner.n_weights} shifts))"
                )
                cells.append(Cell(case, layers, stack, "forward+backward", None, note=note))
            else:
                cells.append(
                    Cell(
                        case,
                        layers,
                        stack,
                        "forward+backward",
                        runner.forward_backward,
                        max_repeats=qml_repeats,
                    )
                )
    return cells


def measure(cells: list[Cell], repeats: int, seed: int, progress: bool) -> None:
    from tqdm import tqdm

    order_rng = np.random.default_rng(seed)
    for repeat in tqdm(range(repeats), desc="repeats", disable=not progress, file=sys.stderr):
        active = [c for c in cells if c.run is not None and (c.max_repeats is None or repeat < c.max_repeats)]
        for index in order_rng.permutation(len(active)):
            cell = active[index]
            assert cell.run is not None
            cell.times.append(timed(cell.run))


def summarise(cells: list[Cell]) -> list[dict[str, object]]:
    medians = {(c.case, c.layers, c.stack, c.mode): statistics.median(c.times) for c in cells if c.times}
    rows = []
    for c in cells:
        row: dict[str, object] = {
            "case": c.case,
            "qubits": c.qubits,
            "input_width": c.width,
            "layers": c.layers,
            "batch": BATCH,
            "stack": c.stack,
            "mode": c.mode,
            "samples": len(c.times),
            "median_ms": None,
            "q1_ms": None,
            "q3_ms": None,
            "reference": STACKS[c.stack].reference or "",
            "ratio": None,
            "note": c.note,
        }
        if c.times:
            q1, _, q3 = statistics.quantiles(c.times, n=4) if len(c.times) > 1 else (c.times[0],) * 3
            row.update(
                median_ms=1e3 * medians[(c.case, c.layers, c.stack, c.mode)], q1_ms=1e3 * q1, q3_ms=1e3 * q3
            )
            reference = STACKS[c.stack].reference
            base = medians.get((c.case, c.layers, reference, c.mode)) if reference else None
            if base:
                row["ratio"] = medians[(c.case, c.layers, c.stack, c.mode)] / base
        rows.append(row)
    return rows


FIELDS = [
    "case",
    "qubits",
    "input_width",
    "layers",
    "batch",
    "stack",
    "mode",
    "samples",
    "median_ms",
    "q1_ms",
    "q3_ms",
    "reference",
    "ratio",
    "note",
]


def _cell_text(row: dict[str, object]) -> str:
    if row["median_ms"] is None:
        return "not timed"
    text = f"{row['median_ms']:.3g} ms"
    if row["ratio"] is not None:
        text += f" ({row['ratio']:.3g}×)"
    return text


def tables(
    rows: list[dict[str, object]], stacks: list[str]
) -> dict[str, tuple[list[str], list[list[object]]]]:
    out = {}
    for mode in MODES:
        headers = ["case", "qubits", "L", *stacks]
        body = []
        keys = sorted({(r["case"], r["layers"]) for r in rows}, key=lambda k: (list(CASES).index(k[0]), k[1]))
        for case, layers in keys:
            qubits = next(r["qubits"] for r in rows if (r["case"], r["layers"]) == (case, layers))
            line: list[object] = [case, qubits, layers]
            for stack in stacks:
                match = [
                    r
                    for r in rows
                    if (r["case"], r["layers"], r["stack"], r["mode"]) == (case, layers, stack, mode)
                ]
                line.append(_cell_text(match[0]) if match else "-")
            body.append(line)
        out[mode] = (headers, body)
    return out


def target_lines(rows: list[dict[str, object]]) -> list[str]:
    """The issue's targets, evaluated on this run's medians (critic, L = 6, forward+backward)."""

    def ratio(stack: str, case: str = "critic", layers: int = 6) -> float | None:
        for r in rows:
            if (r["stack"], r["case"], r["layers"], r["mode"]) == (stack, case, layers, "forward+backward"):
                return r["ratio"]  # type: ignore[return-value]
        return None

    lines = []
    pennylane = ratio("pennylane")
    if pennylane is not None:
        verdict = "met" if pennylane >= 10 else "NOT met"
        lines.append(
            f"- PennyLane TorchLayer / qdt statevector, critic L=6 fwd+bwd: {pennylane:.1f}× "
            f"(target ≥ 10×: {verdict})"
        )
    qml = [r for r in rows if r["stack"] == "qiskit-ml" and r["mode"] == "forward+backward"]
    for r in qml:
        if r["ratio"] is not None:
            verdict = "met" if r["ratio"] >= 1000 else "NOT met"
            lines.append(
                f"- EstimatorQNN / qdt (⟨Z⟩), {r['case']} L={r['layers']} fwd+bwd: {r['ratio']:.0f}× "
                f"(target ≥ 1000×: {verdict})"
            )
        else:
            lines.append(f"- EstimatorQNN, {r['case']} L={r['layers']} fwd+bwd: {r['note']}")
    for r in rows:
        if r["stack"] == "qdt-density-noise" and r["ratio"] is not None:
            verdict = "met" if r["ratio"] <= 5 else "NOT met"
            lines.append(
                f"- density with noise / statevector, {r['case']} L={r['layers']} {r['mode']}: "
                f"{r['ratio']:.2f}× (target ≤ 5×: {verdict})"
            )
    return lines


def write_outputs(
    rows: list[dict[str, object]], stacks: list[str], out: Path, args: argparse.Namespace
) -> str:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "speed_circuits.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    rendered = tables(rows, stacks)
    versions = _versions()
    md = [
        "# Circuit speed: qdt executors vs PennyLane and qiskit-machine-learning",
        "",
        f"Command: `{' '.join(['.venv/bin/python', 'benchmarks/speed_circuits.py', *args.argv])}`  ",
        f"Batch {BATCH}, median of up to {args.repeats} interleaved repeats, torch threads {args.threads}, "
        f"{platform.machine()} ({_cpu_count()} cores); {versions}.  ",
        "Cells: median time and, in parentheses, the ratio to the reference stack (qdt statevector; "
        "for qiskit-ml, qdt statevector with the ⟨Z⟩ readout). Ratios > 1: qdt is faster "
        "(for the density rows: the cost relative to the state vector).",
        "",
    ]
    for mode in MODES:
        headers, body = rendered[mode]
        md += [f"## {mode}", "", format_table(headers, body, markdown=True), ""]
    notes = sorted(
        {f"- {r['stack']} {r['case']} L={r['layers']} {r['mode']}: {r['note']}" for r in rows if r["note"]}
    )
    targets = target_lines(rows)
    if targets:
        md += ["## Targets (critic L = 6 unless stated)", "", *targets, ""]
    if notes:
        md += ["## Notes", "", *notes, ""]
    md += ["Stacks:", "", *(f"- `{s}`: {STACKS[s].label}" for s in stacks), ""]
    (out / "speed_circuits.md").write_text("\n".join(md))
    _plot(rows, stacks, out / "speed_circuits.png")
    text = []
    for mode in MODES:
        headers, body = rendered[mode]
        text += [f"[{mode}]", format_table(headers, body), ""]
    return "\n".join(text + targets)


def _versions() -> str:
    parts = [f"torch {torch.__version__}"]
    for name in ("pennylane", "qiskit", "qiskit_machine_learning"):
        module = sys.modules.get(name)
        if module is not None:
            parts.append(f"{name.replace('_', '-')} {getattr(module, '__version__', '?')}")
    return ", ".join(parts)


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1


def _plot(rows: list[dict[str, object]], stacks: list[str], path: Path) -> None:
    from qdt.plots import pyplot, save_figure

    fig, axes = pyplot().subplots(1, 2, figsize=(12, 4.6), sharey=True)
    keys = sorted({(r["case"], r["layers"]) for r in rows}, key=lambda k: (list(CASES).index(k[0]), k[1]))
    width = 0.8 / max(1, len(stacks))
    for axis, mode in zip(axes, MODES):
        for i, stack in enumerate(stacks):
            values = []
            for case, layers in keys:
                match = [
                    r["median_ms"]
                    for r in rows
                    if (r["case"], r["layers"], r["stack"], r["mode"]) == (case, layers, stack, mode)
                ]
                values.append(match[0] if match and match[0] is not None else np.nan)
            positions = np.arange(len(keys)) + (i - (len(stacks) - 1) / 2) * width
            axis.bar(positions, values, width, label=stack)
        axis.set_yscale("log")
        axis.set_xticks(np.arange(len(keys)), [f"{c} L={layer}" for c, layer in keys])
        axis.set_title(f"{mode}, batch {BATCH}")
        axis.grid(True, axis="y", which="both", alpha=0.3)
    axes[0].set_ylabel("median time per call (ms, log scale)")
    axes[1].legend(fontsize=8, loc="upper left")
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=200, help="interleaved repeats per cell (default 200)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 5 repeats, qiskit-ml limit 5 s, 1 repeat"
    )
    parser.add_argument("--cases", default=DEFAULT_CASES, help=f"case:layers list (default {DEFAULT_CASES})")
    parser.add_argument(
        "--stacks", default=DEFAULT_STACKS, help=f"stacks to time (default all: {DEFAULT_STACKS})"
    )
    parser.add_argument(
        "--qml-limit", type=float, default=60.0, help="seconds one qiskit-ml call may take (default 60)"
    )
    parser.add_argument("--qml-repeats", type=int, default=3, help="repeats for qiskit-ml cells (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the interleaving order")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="results folder (default benchmarks/results)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    args.argv = raw
    if args.quick:
        args.repeats = min(args.repeats, 5)
        args.qml_limit = min(args.qml_limit, 5.0)
        args.qml_repeats = 1
    for name in ("repeats", "qml_repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(
                f"--{name.replace('_', '-')}: expected a positive integer, got {getattr(args, name)}"
            )
    try:
        cases = parse_cases(args.cases)
        stacks = parse_stacks(args.stacks)
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(args.threads)
    cells = build_cells(cases, stacks, args.qml_limit, args.qml_repeats)
    measure(cells, args.repeats, args.seed, progress=not args.no_progress)
    rows = summarise(cells)
    print(write_outputs(rows, stacks, args.out, args))
    print(f"wrote {args.out}/speed_circuits.csv, speed_circuits.md, speed_circuits.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
