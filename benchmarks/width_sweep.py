"""Width sweep of the paper's VQC, n = 2 … 12 qubits: qdt's executors, a plain torch loop, PennyLane.

    .venv/bin/python benchmarks/width_sweep.py                  # the full sweep (about an hour)
    .venv/bin/python benchmarks/width_sweep.py --quick          # smoke run: critic, 2–4 qubits, 2 min
        [--widths 2-12] [--layers 1,6] [--shapes actor,critic] [--stacks qdt-statevector,plain,...]
        [--repeats 15] [--slow-seconds 1.5] [--slow-repeats 3] [--give-up-seconds 60]
        [--memory-widths 2-12] [--threads 1] [--out benchmarks/results/width] [--no-progress]

Per width n, layer count L and shape, a batch of 128 inputs of width 2**n goes forward and
backward: the outputs' projection on a fixed random tensor, differentiated with respect to the
inputs and the circuit's weights, torch on one thread. Shapes: ``actor`` (binary inputs, an
agent's column of the placement) and ``critic`` (half binary states, half actions in [0, 1)).
Stacks, all from the same raw inputs:

- ``qdt-statevector``: ``open_backend("statevector")`` through qdt's ``QuantumLayer`` (encoding
  angles in torch, then the executor: the product kernel);
- ``qdt-density``: ``open_backend("executor:density", noise="depol-1e-3")``, noise after every gate
  (the encoding tree included; the executor refuses past its limit, noted in the table);
- ``qdt-density-layers``: the same noise on the trainable layers only (``depol-1e-3-layers``:
  ``noiseless_gates`` ry, cx; the density kernel, to 9 qubits);
- ``plain``: a plain gate-by-gate torch loop (issue 14): the amplitude state φ(x)/|φ(x)| as
  complex128, per layer one RX einsum per qubit and the CZ ring as a ±1 sign vector, autograd;
- ``pennylane``: PennyLane ``default.qubit`` in a TorchLayer with backprop
  (``qdt/experiments/pennylane_front.py``);
- ``lightning``: PennyLane ``lightning.qubit`` with the adjoint method in a TorchLayer; it reads
  out ⟨Z_i⟩ (adjoint differentiation takes expectation values only) and expands the batch into 128
  circuits, so it runs only while one call stays under ``--give-up-seconds``.

With a GPU (``torch.cuda.is_available()``) every stack that accepts CUDA tensors gets a second
column ``<stack>@cuda``; a stack that fails there is noted. A stack goes to the GPU as any torch
module does: ``module.to("cuda")`` and its inputs on the GPU; qdt's executors then compute there
(their compiled tables are copied to the GPU on the first call, ``qdt/sim/device.py``), and so does
the density executor (``--torch-device``, ``tests/test_torch_device.py``).

Timing: every cell is built (its preparation time: building the VQC and the stack's layer) and
called once (the first call); a cell whose first call took more than ``--slow-seconds`` runs
only ``--slow-repeats`` times, and a stack whose first call took more than ``--give-up-seconds``
is not run at larger widths. Then each repeat runs every active cell once in a fresh random order
(interleaved, so load from other processes hits all stacks alike); medians are reported, and
ratios to ``qdt-statevector`` within this one run. Peak memory: for ``--memory-widths`` each
stack that was timed runs once more (critic shape, largest L) in a fresh process, and the growth
of its peak resident set over one forward + backward pass is reported (Linux: the peak is reset
just before the pass). The machine's load average is recorded at the start and the end.

Writes ``width.csv``, ``width.md`` and the log-scale figure ``width.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from qdt.circuits import VQC, build_vqc, ring_pairs
from qdt.errors import QdtInputError
from qdt.executors import open_backend
from qdt.experiments.tables import format_table
from qdt.files import atomic_path, atomic_write_text
from qdt.rl.quantum_layer import QuantumLayer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_circuits import _versions, measure, timed  # noqa: E402  (the sibling benchmark's helpers)

RESULTS = Path(__file__).resolve().parent / "results" / "width"
BATCH = 128
REFERENCE = "qdt-statevector"
SHAPES = ("actor", "critic")
NOISE_PROFILE = "depol-1e-3"
LAYER_NOISE_PROFILE = "depol-1e-3-layers"  # the same, with the encoding's gates (ry, cx) noiseless


@dataclass(frozen=True)
class StackSpec:
    name: str
    label: str
    cuda: bool  # accepts CUDA tensors (a <stack>@cuda column when a GPU is present)


STACKS = {
    spec.name: spec
    for spec in (
        StackSpec("qdt-statevector", "qdt statevector (product kernel)", True),
        StackSpec("qdt-density", f"qdt density, {NOISE_PROFILE} after every gate", True),
        StackSpec(
            "qdt-density-layers", f"qdt density, {NOISE_PROFILE} on the layers (ry, cx noiseless)", True
        ),
        StackSpec("plain", "plain gate-by-gate torch loop, autograd", True),
        StackSpec("pennylane", "PennyLane default.qubit TorchLayer, backprop", True),
        StackSpec("lightning", "PennyLane lightning.qubit TorchLayer, adjoint, ⟨Z_i⟩", False),
    )
}


# ----------------------------------------------------------------------------- stacks


class PlainLoop(nn.Module):
    """The plain gate-by-gate torch simulation (complex128, autograd through every gate)."""

    def __init__(self, vqc: VQC) -> None:
        super().__init__()
        n = vqc.n_qubits
        self.vqc = vqc
        self.n, self.layers = n, vqc.n_layers
        letters = "abcdefghijklmnop"[:n]  # axis 0 of a state view is qubit n − 1
        self.equations = []
        for q in range(n):
            axis = n - 1 - q
            source = letters[:axis] + "y" + letters[axis + 1 :]
            target = letters[:axis] + "x" + letters[axis + 1 :]
            self.equations.append(f"xy,z{source}->z{target}")
        k = np.arange(2**n)
        parity = np.zeros_like(k)
        for a, b in ring_pairs(n):
            parity ^= ((k >> a) & 1) & ((k >> b) & 1)
        self.register_buffer("signs", torch.as_tensor(1.0 - 2.0 * parity).to(torch.complex128))
        self.weight = nn.Parameter(torch.rand(vqc.n_weights, dtype=torch.float64) * (2 * math.pi))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        amplitudes = 2.0 * torch.nn.functional.pad(inputs, (0, 2**self.n - inputs.shape[1]))
        amplitudes = amplitudes + self.vqc.encoder.bias.T.to(inputs.device)  # φ(x), as qdt's encoding
        state = (amplitudes / amplitudes.norm(dim=1, keepdim=True)).to(torch.complex128)
        batch, n = state.shape[0], self.n
        cos, sin = torch.cos(self.weight / 2), torch.sin(self.weight / 2)
        for layer in range(self.layers):
            for q in range(n):
                i = layer * n + q
                c, s = cos[i].to(torch.complex128), (-1j * sin[i]).to(torch.complex128)
                rx = torch.stack([torch.stack([c, s]), torch.stack([s, c])])
                state = torch.einsum(self.equations[q], rx, state.view(batch, *[2] * n)).reshape(batch, -1)
            if n > 1:
                state = state * self.signs
        return state.real.square() + state.imag.square()


def build_stack(stack: str, vqc: VQC) -> nn.Module:
    """The stack's layer for ``vqc`` (PennyLane's builds its own copy, for qdt's feature map)."""
    if stack in ("pennylane", "lightning"):
        from qdt.experiments.pennylane_front import PennyLaneFront

        if stack == "lightning":
            return PennyLaneFront(vqc.input_width, vqc.n_layers, "lightning.qubit", "adjoint", "expval_z")
        return PennyLaneFront(vqc.input_width, vqc.n_layers)
    if stack == "qdt-statevector":
        return QuantumLayer(vqc, open_backend("statevector"))
    if stack == "qdt-density":
        return QuantumLayer(vqc, open_backend("executor:density", noise=NOISE_PROFILE))
    if stack == "qdt-density-layers":
        return QuantumLayer(vqc, open_backend("executor:density", noise=LAYER_NOISE_PROFILE))
    if stack == "plain":
        return PlainLoop(vqc)
    raise ValueError(stack)


def inputs_for(shape: str, n: int, layers: int) -> torch.Tensor:
    """A batch of inputs of width 2**n: binary (actor) or half binary, half in [0, 1) (critic)."""
    generator = torch.Generator().manual_seed(1000 * n + 10 * layers + SHAPES.index(shape))
    x = torch.rand(BATCH, 2**n, generator=generator, dtype=torch.float64)
    half = 2**n // 2 if shape == "critic" else 2**n
    x[:, :half] = x[:, :half].round()
    return x


def forward_backward(module: nn.Module, x: torch.Tensor, device: str) -> Callable[[], object]:
    """One call: outputs, then the gradients of ⟨g, outputs⟩ w.r.t. the inputs and the weights."""
    module = module.to(device)
    params = [p for p in module.parameters() if p.requires_grad]
    inputs = x.to(device).clone().requires_grad_()
    projection: list[torch.Tensor] = []

    def run() -> object:
        out = module(inputs)
        if not projection:
            generator = torch.Generator().manual_seed(out.shape[1])
            projection.append(torch.randn(out.shape, generator=generator, dtype=out.dtype).to(device))
        grads = torch.autograd.grad((out * projection[0]).sum(), [inputs, *params])
        if device != "cpu":
            torch.cuda.synchronize()
        return grads

    return run


# ----------------------------------------------------------------------------- cells


@dataclass
class Cell:
    shape: str
    n: int
    layers: int
    stack: str
    device: str
    run: Callable[[], object] | None = None
    build_vqc_s: float | None = None  # qiskit circuit and encoder, once per width and L
    prepare_s: float | None = None  # the stack's layer from the VQC (qdt: open_backend and prepare)
    first_s: float | None = None
    times: list[float] = field(default_factory=list)
    max_repeats: int | None = None  # None: every repeat
    note: str = ""
    peak_mib: float | None = None

    @property
    def column(self) -> str:
        return self.stack if self.device == "cpu" else f"{self.stack}@{self.device}"


def build_cells(args: argparse.Namespace, devices: list[str], progress: bool) -> list[Cell]:
    from tqdm import tqdm

    plan = [
        (shape, n, layers, stack, device)
        for n in args.widths
        for layers in args.layers
        for shape in args.shapes
        for stack in args.stacks
        for device in devices
        if device == "cpu" or STACKS[stack].cuda
    ]
    cells: list[Cell] = []
    given_up: dict[tuple[str, str, int], str] = {}  # (stack, device, layers) → why
    circuits: dict[tuple[int, int], tuple[VQC, float]] = {}
    for shape, n, layers, stack, device in tqdm(plan, desc="build", disable=not progress, file=sys.stderr):
        cell = Cell(shape, n, layers, stack, device)
        cells.append(cell)
        if (n, layers) not in circuits:
            start = time.perf_counter()
            circuits[(n, layers)] = build_vqc(2**n, layers), time.perf_counter() - start
        vqc, cell.build_vqc_s = circuits[(n, layers)]
        if (stack, device, layers) in given_up:
            cell.note = given_up[(stack, device, layers)]
            continue
        torch.manual_seed(n * 100 + layers)
        try:
            start = time.perf_counter()
            module = build_stack(stack, vqc)
            cell.prepare_s = time.perf_counter() - start
            run = forward_backward(module, inputs_for(shape, n, layers), device)
            cell.first_s = timed(run)
        except QdtInputError as error:  # a width the executor refuses: its own message
            cell.note = f"refused: {error}"
            given_up[(stack, device, layers)] = f"not run past {n - 1} qubits (refused at {n})"
            continue
        except Exception as error:  # noqa: BLE001 - a peer stack failing is a result, not a crash
            cell.note = f"failed: {type(error).__name__}: {str(error)[:120]}"
            given_up[(stack, device, layers)] = f"not run past {n - 1} qubits (failed at {n})"
            continue
        if cell.first_s > args.give_up_seconds:
            given_up[(stack, device, layers)] = (
                f"not run past {n} qubits (a call took {cell.first_s:.0f} s > {args.give_up_seconds:g} s)"
            )
        if cell.first_s > args.slow_seconds:
            cell.max_repeats = args.slow_repeats
        else:
            run()  # a second warm-up: caches and the allocator
        cell.run = run
    return cells


# ----------------------------------------------------------------------------- memory


def _status_mib(key: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def memory_probe(stack: str, shape: str, n: int, layers: int) -> dict[str, float]:
    """In a fresh process: the peak resident memory growth over one forward + backward pass (MiB).

    Writing 5 to /proc/self/clear_refs resets the peak (VmHWM), so imports and the first call (which
    builds caches) do not hide the measured pass."""
    torch.set_num_threads(1)
    run = forward_backward(build_stack(stack, build_vqc(2**n, layers)), inputs_for(shape, n, layers), "cpu")
    run()
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")
    before = _status_mib("VmRSS")
    run()
    return {"growth_mib": _status_mib("VmHWM") - before}


def measure_memory(cells: list[Cell], args: argparse.Namespace, progress: bool) -> None:
    from tqdm import tqdm

    layers, shape = max(args.layers), args.shapes[-1]
    targets = [
        c
        for c in cells
        if c.run is not None
        and c.device == "cpu"
        and c.layers == layers
        and c.shape == shape
        and c.n in args.memory_widths
    ]
    for cell in tqdm(targets, desc="memory", disable=not progress, file=sys.stderr):
        command = [sys.executable, __file__, "--memory-probe", f"{cell.stack}:{shape}:{cell.n}:{layers}"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            cell.peak_mib = max(0.0, json.loads(done.stdout.strip().splitlines()[-1])["growth_mib"])
        else:
            cell.note = (cell.note + "; " if cell.note else "") + "memory probe failed"


# ----------------------------------------------------------------------------- report

FIELDS = [
    "shape", "qubits", "input_width", "layers", "batch", "stack", "device", "build_vqc_s", "prepare_s",
    "first_call_s",
    "samples", "median_ms", "min_ms", "q1_ms", "q3_ms", "ratio", "min_ratio", "peak_mib", "note",
]  # fmt: skip


def summarise(cells: list[Cell]) -> list[dict[str, object]]:
    medians = {(c.shape, c.n, c.layers, c.column): statistics.median(c.times) for c in cells if c.times}
    minima = {(c.shape, c.n, c.layers, c.column): min(c.times) for c in cells if c.times}
    rows = []
    for c in cells:
        median = medians.get((c.shape, c.n, c.layers, c.column))
        base = medians.get((c.shape, c.n, c.layers, REFERENCE))
        fastest = minima.get((c.shape, c.n, c.layers, c.column))
        fastest_base = minima.get((c.shape, c.n, c.layers, REFERENCE))
        quartiles = statistics.quantiles(c.times, n=4) if len(c.times) > 1 else c.times * 3
        rows.append(
            {
                "shape": c.shape,
                "qubits": c.n,
                "input_width": 2**c.n,
                "layers": c.layers,
                "batch": BATCH,
                "stack": c.stack,
                "device": c.device,
                "build_vqc_s": c.build_vqc_s,
                "prepare_s": c.prepare_s,
                "first_call_s": c.first_s,
                "samples": len(c.times),
                "median_ms": None if median is None else 1e3 * median,
                "min_ms": None if fastest is None else 1e3 * fastest,
                "q1_ms": 1e3 * quartiles[0] if c.times else None,
                "q3_ms": 1e3 * quartiles[2] if c.times else None,
                "ratio": median / base if median is not None and base else None,
                "min_ratio": fastest / fastest_base if fastest is not None and fastest_base else None,
                "peak_mib": c.peak_mib,
                "note": c.note,
            }
        )
    return rows


def _lookup(rows: list[dict[str, object]], **keys: object) -> dict[str, object] | None:
    for row in rows:
        if all(row[k] == v for k, v in keys.items()):
            return row
    return None


def _time_text(row: dict[str, object] | None) -> str:
    if row is None:
        return "-"
    if row["median_ms"] is None:
        note = str(row["note"])
        return (
            "refused" if note.startswith("refused") else "failed" if note.startswith("failed") else "not run"
        )
    text = f"{row['median_ms']:.3g}"
    if row["ratio"] is not None and row["stack"] != REFERENCE:
        text += f" ({row['ratio']:.2g}×)"
    return text


def target_lines(rows: list[dict[str, object]], widths: list[int]) -> list[str]:
    """Issue 14's targets on this run's medians (L = 6, critic shape, forward + backward)."""
    lines = []
    for n in widths:
        parts = []
        need_pennylane = 7.0 if n == 2 else 10.0 if n == 4 else 5.0
        for stack, need in (("plain", 2.0), ("pennylane", need_pennylane)):
            row = _lookup(rows, shape="critic", qubits=n, layers=6, stack=stack, device="cpu")
            if row is not None and row["ratio"] is not None:
                ratio = float(row["ratio"])  # type: ignore[arg-type]
                parts.append(f"{stack} {ratio:.1f}× (≥ {need:g}×: {'met' if ratio >= need else 'NOT met'})")
        reference = _lookup(rows, shape="critic", qubits=n, layers=6, stack=REFERENCE, device="cpu")
        if reference is not None and reference["prepare_s"] is not None:
            prepare = float(reference["prepare_s"])  # type: ignore[arg-type]
            parts.append(f"preparation {prepare:.3f} s (≤ 0.2 s: {'met' if prepare <= 0.2 else 'NOT met'})")
        if reference is not None and reference["peak_mib"] is not None:
            peak = float(reference["peak_mib"])  # type: ignore[arg-type]
            parts.append(f"peak {peak:.0f} MiB (< 1 GiB: {'met' if peak < 1024 else 'NOT met'})")
        if parts:
            lines.append(f"- n = {n}: " + "; ".join(parts))
    return lines


def write_outputs(rows: list[dict[str, object]], args: argparse.Namespace, loads: tuple[str, str]) -> str:
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "width.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    columns = sorted(
        {(str(r["stack"]), str(r["device"])) for r in rows}, key=lambda s: (list(STACKS).index(s[0]), s[1])
    )
    names = [s if d == "cpu" else f"{s}@{d}" for s, d in columns]
    md = [
        "# Width sweep: the paper's VQC from 2 to 12 qubits",
        "",
        f"Command: `{' '.join(['.venv/bin/python', 'benchmarks/width_sweep.py', *args.argv])}`  ",
        f"Batch {BATCH}, forward + backward (gradients of the inputs and the weights), torch threads "
        f"{args.threads}, {platform.machine()} ({os.cpu_count()} cores), {_versions()}; load average "
        f"at the start {loads[0]}, at the end {loads[1]}. Medians of up to {args.repeats} interleaved "
        f"repeats (ms); in parentheses the ratio to `{REFERENCE}` in this run (> 1: qdt is faster; for the "
        "density rows, the cost of the noise).",
        "",
    ]
    for layers in args.layers:
        for shape in args.shapes:
            body = []
            for n in args.widths:
                line: list[object] = [n]
                for stack, device in columns:
                    line.append(
                        _time_text(
                            _lookup(rows, shape=shape, qubits=n, layers=layers, stack=stack, device=device)
                        )
                    )
                body.append(line)
            md += [
                f"## {shape}, L = {layers}: forward + backward, ms",
                "",
                format_table(["n", *names], body, markdown=True),
                "",
            ]
    shape, layers = args.shapes[-1], max(args.layers)

    def field_table(widths: list[int], key: str, digits: str, extra: str | None = None) -> str:
        body = []
        for n in widths:
            line: list[object] = [n]
            if extra is not None:
                row = _lookup(rows, shape=shape, qubits=n, layers=layers)
                line.append("-" if row is None or row[extra] is None else format(row[extra], digits))
            for stack, device in columns:
                row = _lookup(rows, shape=shape, qubits=n, layers=layers, stack=stack, device=device)
                line.append("-" if row is None or row[key] is None else format(row[key], digits))
            body.append(line)
        headers = ["n", *([] if extra is None else ["build_vqc"]), *names]
        return format_table(headers, body, markdown=True)

    md += [
        f"## Preparation, s ({shape}, L = {layers})",
        "",
        "The stack's layer from the VQC (qdt: open_backend and prepare; PennyLane builds its own copy of "
        "the VQC, for the feature map); building the VQC itself (qiskit's circuit and the encoder) is "
        "the column `build_vqc`.",
        "",
        field_table(args.widths, "prepare_s", ".3f", extra="build_vqc_s"),
        "",
    ]
    if any(r["peak_mib"] is not None for r in rows):
        md += [
            f"## Peak memory growth of one forward + backward pass, MiB ({shape}, L = {layers})",
            "",
            field_table(args.memory_widths, "peak_mib", ".0f"),
            "",
        ]
    targets = target_lines(rows, args.widths) if 6 in args.layers and "critic" in args.shapes else []
    if targets:
        md += ["## Targets (critic, L = 6, ratios in this run)", "", *targets, ""]
    notes = sorted(
        {
            f"- {r['stack']}@{r['device']}, n = {r['qubits']}, L = {r['layers']}: {r['note']}"
            for r in rows
            if r["note"] and not str(r["note"]).startswith("not run past")
        }
    )
    if notes:
        md += ["## Notes", "", *notes, ""]
    md += [
        "Stacks:",
        "",
        *(f"- `{s}`: {STACKS[s].label}" for s in args.stacks),
        "",
        "![width](width.png)",
        "",
    ]
    atomic_write_text(args.out / "width.md", "\n".join(md))
    plot(rows, args, columns, args.out / "width.png")
    return "\n".join(md[:4] + targets)


def plot(
    rows: list[dict[str, object]], args: argparse.Namespace, columns: list[tuple[str, str]], path: Path
) -> None:
    from qdt.plots import pyplot, save_figure

    fig, axes = pyplot().subplots(
        1, len(args.layers), figsize=(6.2 * len(args.layers), 4.6), squeeze=False, sharey=True
    )
    colors = pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, layers in zip(axes[0], args.layers):
        for i, (stack, device) in enumerate(columns):
            for shape, style in zip(args.shapes, ("--", "-")[-len(args.shapes) :]):
                points = [
                    (r["qubits"], r["median_ms"])
                    for r in rows
                    if (r["stack"], r["device"], r["shape"], r["layers"]) == (stack, device, shape, layers)
                    and r["median_ms"] is not None
                ]
                if not points:
                    continue
                xs, ys = zip(*points)
                name = stack if device == "cpu" else f"{stack}@{device}"
                label = name if shape == args.shapes[-1] else None
                axis.plot(xs, ys, style, marker="o", markersize=3, color=colors[i % len(colors)], label=label)
        axis.set_yscale("log")
        axis.set_xticks(args.widths)
        axis.set_xlabel("qubits n (input width 2^n)")
        axis.set_title(
            f"L = {layers}, batch {BATCH}, forward + backward"
            + (" (dashed: actor)" if len(args.shapes) > 1 else "")
        )
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("median time per call (ms, log scale)")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    save_figure(fig, path)


# ----------------------------------------------------------------------------- main


def _load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def parse_widths(text: str) -> list[int]:
    values: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        values += list(range(int(low), int(high or low) + 1))
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--widths", type=parse_widths, default=parse_widths("2-12"), help="qubits (default 2-12)"
    )
    parser.add_argument(
        "--layers", type=lambda t: [int(v) for v in t.split(",")], default=[1, 6], help="default 1,6"
    )
    parser.add_argument("--shapes", type=lambda t: t.split(","), default=list(SHAPES), help="actor,critic")
    parser.add_argument("--stacks", type=lambda t: t.split(","), default=list(STACKS), help=", ".join(STACKS))
    parser.add_argument("--repeats", type=int, default=15, help="interleaved repeats per cell (default 15)")
    parser.add_argument(
        "--slow-seconds", type=float, default=1.5, help="first call above this: fewer repeats"
    )
    parser.add_argument("--slow-repeats", type=int, default=3, help="repeats of a slow cell (default 3)")
    parser.add_argument(
        "--give-up-seconds", type=float, default=60.0, help="first call above this: no wider run"
    )
    parser.add_argument("--memory-widths", type=parse_widths, default=None, help="default: every width")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the interleaving order")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="results folder (default benchmarks/results/width)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2, 4, 6 qubits, 3 repeats, memory at 4"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    args.argv = raw
    if args.memory_probe:
        stack, shape, n, layers = args.memory_probe.split(":")
        print(json.dumps(memory_probe(stack, shape, int(n), int(layers))))
        return 0
    if args.quick:
        args.widths = [n for n in args.widths if n in (2, 3, 4)] or [2]
        args.shapes = ["critic"]
        args.repeats = min(args.repeats, 3)
        args.slow_seconds, args.slow_repeats = min(args.slow_seconds, 0.5), 1
        args.give_up_seconds = min(args.give_up_seconds, 2.0)
        args.memory_widths = [3] if args.memory_widths is None else args.memory_widths
    if args.memory_widths is None:
        args.memory_widths = list(args.widths)
    bad = [s for s in args.stacks if s not in STACKS] + [s for s in args.shapes if s not in SHAPES]
    if bad or REFERENCE not in args.stacks:
        parser.error(
            f"--stacks among {', '.join(STACKS)} (with {REFERENCE}), --shapes among {SHAPES}; got {bad}"
        )
    if min(args.widths) < 1 or max(args.widths) > 12 or args.repeats < 1 or args.threads < 1:
        parser.error("--widths from 1 to 12, --repeats and --threads >= 1")
    torch.set_num_threads(args.threads)
    progress = not args.no_progress
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    start_load = _load_average()
    cells = build_cells(args, devices, progress)
    measure(cells, args.repeats, args.seed, progress)  # type: ignore[arg-type]
    if args.memory_widths:
        measure_memory(cells, args, progress)
    text = write_outputs(summarise(cells), args, (start_load, _load_average()))
    print(text)
    print(f"wrote {args.out}/width.csv, width.md, width.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
