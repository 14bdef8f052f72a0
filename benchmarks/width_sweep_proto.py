"""Width sweep of the paper's VQC, n = 2 … 12 qubits: the product kernel against today's stacks.

    .venv/bin/python benchmarks/width_sweep_proto.py [--widths 2-12] [--layers 1,6] [--repeats 15]
        [--stacks product,product-oldenc,qdt,plain,pennylane] [--qdt-max-qubits 10]
        [--slow-seconds 1.5] [--slow-repeats 5] [--memory-widths 12] [--out DIR]

Per width n and layer count L: a batch of 128 inputs of width 2**n in [0, 1), forward + backward
(the outputs' projection on a fixed random tensor, differentiated with respect to the inputs and
the circuit's weights), torch on 1 thread. Stacks, all starting from the same raw inputs:

- ``product``: inputs → encoding angles by :class:`~qdt.sim.kernels.product_encoding.FastAmplitudeAngles`
  from 5 qubits (the same values as ``AmplitudeEncoder``, which is used below 5 qubits, where its
  dense matrices take fewer torch calls), then :class:`~qdt.sim.kernels.product.ProductKernel`
  compiled from the VQC's circuit;
- ``product-oldenc``: today's ``vqc.angles`` (``AmplitudeEncoder``, dense 2**n × 2**n matrices)
  then the product kernel: what the kernel gains if the encoder is left as it is;
- ``qdt``: today's ``statevector`` executor (``open_backend("executor:statevector")``, or
  ``get_executor`` on older trees) on ``vqc.angles``; its preparation takes seconds past 9 qubits,
  so it runs up to ``--qdt-max-qubits``;
- ``plain``: a plain gate-by-gate torch loop: the amplitude state φ(x)/|φ(x)| (complex128), per
  layer one RX einsum per qubit and the CZ ring as a ±1 sign vector, autograd;
- ``pennylane``: PennyLane ``default.qubit`` in a TorchLayer with backprop
  (:class:`qdt.experiments.pennylane_front.PennyLaneFront`).

Timing: every cell is warmed up, then each repeat runs every active cell once in a fresh random
order (interleaved, so load from other processes hits all stacks alike); a cell whose warm-up
call took more than ``--slow-seconds`` runs only ``--slow-repeats`` times. Medians are reported,
and ratios to ``product`` within this one run. Preparation: the time to build what a stack needs
from the circuit (``build_vqc`` itself is reported apart: its ``AmplitudeEncoder`` is O(4**n)).
Peak memory: for ``--memory-widths`` each stack runs once more in a fresh subprocess, and the
growth of its peak resident set size over one forward + backward pass is reported (Linux:
the peak is reset just before the pass, see :func:`peak_growth`).

``--density-widths 3-9`` adds the density prototype (:mod:`qdt.sim.kernels.product_density`):
L noisy layers (depolarizing 1e-3 after RX, 1e-2 after CZ) on the exact prepared state, B×4**n
Pauli coordinates, forward and forward + backward (autograd) timed per width with the same
interleaving, each run in a fresh subprocess for its peak memory; forward + backward is skipped
past ``--density-backward-max``. The noisy rotation tree, which this prototype leaves out, is
projected from a measured one-gate cost: level ℓ has 2**(ℓ+1) − 1 noisy gates on a
4**(ℓ+1)-coordinate register.
"""

from __future__ import annotations

import argparse
import json
import math
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
from qdt.sim.kernels.product import ProductKernel, compile_product_kernel
from qdt.sim.kernels.product_encoding import FastAmplitudeAngles

BATCH = 128
STACKS = ("product", "product-oldenc", "qdt", "plain", "pennylane")
REFERENCE = "product"


# ----------------------------------------------------------------------------- stacks


FAST_ENCODER_MIN_QUBITS = 5  # below, today's dense AmplitudeEncoder takes fewer torch calls (measured)


class ProductLayer(nn.Module):
    """inputs → probabilities through the product kernel. ``fast_encoder``: None picks the faster
    encoder for the width (FastAmplitudeAngles from 5 qubits, today's below), False today's."""

    def __init__(self, vqc: VQC, fast_encoder: bool | None = None) -> None:
        super().__init__()
        kernel = compile_product_kernel(vqc.circuit, vqc.encoding_params, vqc.weight_params)
        assert isinstance(kernel, ProductKernel), "the VQC must compile to the product kernel"
        self.kernel = kernel
        if fast_encoder is None:
            fast_encoder = vqc.n_qubits >= FAST_ENCODER_MIN_QUBITS
        self.encode = (
            FastAmplitudeAngles.create(vqc.input_width, vqc.n_qubits) if fast_encoder else vqc.angles
        )
        self.weight = nn.Parameter(torch.rand(vqc.n_weights, dtype=torch.float64) * (2 * math.pi))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.kernel(self.encode(inputs), self.weight)


def open_statevector() -> object:
    """Today's statevector executor, through whichever entry point this tree has."""
    try:
        from qdt.executors import open_backend  # type: ignore[attr-defined]

        return open_backend("executor:statevector")
    except ImportError:
        from qdt.executors import get_executor  # type: ignore[attr-defined]

        return get_executor("statevector")


class QdtLayer(nn.Module):
    """vqc.angles → today's statevector executor (prepare once, run the batch)."""

    def __init__(self, vqc: VQC) -> None:
        super().__init__()
        self.vqc = vqc
        self.executor = open_statevector()
        self.prepared = self.executor.prepare_vqc(vqc)  # type: ignore[attr-defined]
        self.weight = nn.Parameter(torch.rand(vqc.n_weights, dtype=torch.float64) * (2 * math.pi))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.executor.run(self.prepared, self.vqc.angles(inputs), self.weight)  # type: ignore[attr-defined]


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
        self.signs = torch.as_tensor(1.0 - 2.0 * parity).to(torch.complex128)
        self.weight = nn.Parameter(torch.rand(vqc.n_weights, dtype=torch.float64) * (2 * math.pi))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        amplitudes = self.vqc.feature_map(inputs)
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
    if stack == "product":
        return ProductLayer(vqc)
    if stack == "product-oldenc":
        return ProductLayer(vqc, fast_encoder=False)
    if stack == "qdt":
        return QdtLayer(vqc)
    if stack == "plain":
        return PlainLoop(vqc)
    if stack == "pennylane":
        from qdt.experiments.pennylane_front import PennyLaneFront

        return PennyLaneFront(vqc.input_width, vqc.n_layers)
    raise ValueError(stack)


def forward_backward(module: nn.Module, x: torch.Tensor, g: torch.Tensor) -> Callable[[], object]:
    params = [p for p in module.parameters() if p.requires_grad]
    inputs = x.clone().requires_grad_()

    def run() -> object:
        return torch.autograd.grad((module(inputs) * g).sum(), [inputs, *params])

    return run


def inputs_for(n: int, layers: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1000 * n + layers)
    x = torch.rand(BATCH, 2**n, generator=generator, dtype=torch.float64)
    g = torch.randn(BATCH, 2**n, generator=generator, dtype=torch.float64)
    return x, g


# ----------------------------------------------------------------------------- timing


@dataclass
class Cell:
    n: int
    layers: int
    stack: str
    run: Callable[[], object] | None
    prepare_s: float = float("nan")
    times: list[float] = field(default_factory=list)
    max_repeats: int | None = None
    note: str = ""


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def build_cells(args: argparse.Namespace) -> tuple[list[Cell], dict[tuple[int, int], float]]:
    cells: list[Cell] = []
    vqc_seconds: dict[tuple[int, int], float] = {}
    for n in args.widths:
        for layers in args.layers:
            start = time.perf_counter()
            vqc = build_vqc(2**n, layers)
            vqc_seconds[(n, layers)] = time.perf_counter() - start
            x, g = inputs_for(n, layers)
            for stack in args.stacks:
                limit = {"qdt": args.qdt_max_qubits, "pennylane": args.pennylane_max_qubits}.get(stack, 99)
                if n > limit:
                    cells.append(Cell(n, layers, stack, None, note=f"not run past {limit} qubits"))
                    continue
                torch.manual_seed(n * 100 + layers)
                start = time.perf_counter()
                module = build_stack(stack, vqc)
                prepare = time.perf_counter() - start
                run = forward_backward(module, x, g)
                first = timed(run)
                cell = Cell(n, layers, stack, run, prepare)
                if first > args.slow_seconds:
                    cell.max_repeats = args.slow_repeats
                else:
                    run()
                print(
                    f"  built n={n} L={layers} {stack}: prepare {prepare:.3f} s, first call {first:.3f} s",
                    file=sys.stderr,
                )
                cells.append(cell)
    return cells, vqc_seconds


def measure(cells: list[Cell], repeats: int, seed: int) -> None:
    if not cells:
        return
    order = np.random.default_rng(seed)
    for repeat in range(repeats):
        active = [c for c in cells if c.run is not None and (c.max_repeats is None or repeat < c.max_repeats)]
        for index in order.permutation(len(active)):
            cell = active[index]
            assert cell.run is not None
            cell.times.append(timed(cell.run))
        print(f"  repeat {repeat + 1}/{repeats}", file=sys.stderr)


# ----------------------------------------------------------------------------- memory


def _status_mib(key: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def peak_growth(run: Callable[[], object]) -> dict[str, float]:
    """Peak resident memory during ``run()`` above the resident memory before it (MiB).

    Linux only: writing 5 to /proc/self/clear_refs resets the peak (VmHWM), so what the process
    allocated before (building the VQC at 12 qubits peaks at ~6 GB) does not hide the pass."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")
    before = _status_mib("VmRSS")
    run()
    peak = _status_mib("VmHWM")
    return {"before_mib": before, "peak_mib": peak, "growth_mib": peak - before}


def memory_probe(stack: str, n: int, layers: int) -> dict[str, float]:
    """Run in a fresh process: the peak memory growth over one forward + backward pass (MiB)."""
    vqc = build_vqc(2**n, layers)
    x, g = inputs_for(n, layers)
    module = build_stack(stack, vqc)
    run = forward_backward(module, x, g)
    torch.set_num_threads(1)
    with torch.no_grad():
        module(x[:1])  # lazy imports and caches, outside the measured pass
    return peak_growth(run)


def measure_memory(args: argparse.Namespace) -> list[dict[str, object]]:
    rows = []
    for n in args.memory_widths:
        layers = max(args.layers)
        for stack in args.stacks:
            limit = {"qdt": args.qdt_max_qubits, "pennylane": args.pennylane_max_qubits}.get(stack, 99)
            if n > limit:
                continue
            command = [sys.executable, __file__, "--memory-probe", f"{stack}:{n}:{layers}"]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode:
                rows.append({"stack": stack, "n": n, "layers": layers, "error": done.stderr.strip()[-300:]})
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append({"stack": stack, "n": n, "layers": layers, **result})
            print(f"  memory n={n} L={layers} {stack}: {result}", file=sys.stderr)
    return rows


# ----------------------------------------------------------------------------- density prototype

DENSITY_NOISE = {"depolarizing_1q": 1e-3, "depolarizing_2q": 1e-2}


def density_probe(n: int, layers: int, backward: bool, repeats: int) -> dict[str, float]:
    """Fresh process: median forward (+ backward) time and maxrss growth of the noisy layers."""
    from qdt.noise.config import NoiseConfig
    from qdt.sim.kernels.product_density import NoisyLayers
    from qdt.sim.kernels.product_tables import apply_group

    torch.set_num_threads(1)
    model = NoisyLayers.create(n, layers, NoiseConfig(**DENSITY_NOISE))
    generator = torch.Generator().manual_seed(n)
    psi = torch.randn(BATCH, 2**n, generator=generator, dtype=torch.float64)
    psi = (psi / psi.norm(dim=1, keepdim=True)).requires_grad_(backward)
    weights = torch.rand(n * layers, generator=generator, dtype=torch.float64).requires_grad_(backward)
    g = torch.randn(BATCH, 2**n, generator=generator, dtype=torch.float64)

    def run() -> object:
        if not backward:
            with torch.no_grad():
                return model(psi, weights)
        return torch.autograd.grad((model(psi, weights) * g).sum(), [psi, weights])

    growth = peak_growth(run)["growth_mib"]
    times = [timed(run) for _ in range(repeats)]
    # one noisy tree gate (a 16×16 matrix on two digits, as a CX and its two-qubit noise) on the full register
    state = torch.randn(4**n, BATCH, dtype=torch.float64)
    gate = torch.randn(16, 16, dtype=torch.float64)
    gate_s = statistics.median(timed(lambda: apply_group(gate, state, 2, 4)) for _ in range(3))
    return {"median_s": statistics.median(times), "growth_mib": growth, "gate_s": gate_s}


def measure_density(args: argparse.Namespace) -> list[dict[str, object]]:
    rows = []
    for n in args.density_widths:
        for backward in (False, True):
            if backward and n > args.density_backward_max:
                rows.append({"n": n, "backward": True, "note": f"not run past {args.density_backward_max}"})
                continue
            repeats = 5 if n <= 7 else 2
            command = [
                sys.executable,
                __file__,
                "--density-probe",
                f"{n}:{max(args.layers)}:{int(backward)}:{repeats}",
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode:
                rows.append({"n": n, "backward": backward, "note": done.stderr.strip()[-300:]})
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            # noisy tree: Σ_ℓ (2**(ℓ+1) − 1) gates on 4**(ℓ+1) coordinates, scaled from one full-register gate
            gates = sum((2 ** (level + 1) - 1) * 4 ** (level + 1 - n) for level in range(n))
            rows.append(
                {"n": n, "backward": backward, **result, "tree_projection_s": gates * result["gate_s"]}
            )
            print(f"  density n={n} backward={backward}: {result}", file=sys.stderr)
    return rows


def density_lines(rows: list[dict[str, object]], layers: int) -> list[str]:
    lines = [
        "",
        f"## Density prototype: {layers} noisy layers on B × 4**n Pauli coordinates (B = {BATCH})",
        "",
        "Depolarizing 1e-3 after each RX, 1e-2 after each CZ; exact state preparation; one run per",
        "cell in a fresh process (median of 5, or 2 past 7 qubits). Noisy tree: projected (see above).",
        "",
        "| n | one state MiB | forward s | forward + backward s | peak growth MiB (fwd / fwd+bwd) |"
        " noisy tree, projected forward s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    by_key = {(r["n"], r["backward"]): r for r in rows}
    for n in sorted({r["n"] for r in rows}):
        forward, both = by_key.get((n, False), {}), by_key.get((n, True), {})

        def seconds(row: dict[str, object]) -> str:
            return f"{row['median_s']:.3g}" if "median_s" in row else str(row.get("note", "-"))

        growth = " / ".join(
            f"{row['growth_mib']:.0f}" if "growth_mib" in row else "-" for row in (forward, both)
        )
        tree = f"{forward['tree_projection_s']:.3g}" if "tree_projection_s" in forward else "-"
        state_mib = 4**n * BATCH * 8 / 2**20
        lines.append(f"| {n} | {state_mib:.3g} | {seconds(forward)} | {seconds(both)} | {growth} | {tree} |")
    return lines


# ----------------------------------------------------------------------------- report


def report(
    args: argparse.Namespace,
    cells: list[Cell],
    vqc_seconds: dict[tuple[int, int], float],
    memory: list[dict[str, object]],
    density: list[dict[str, object]],
) -> str:
    median = {(c.n, c.layers, c.stack): statistics.median(c.times) for c in cells if c.times}
    prepare = {(c.n, c.layers, c.stack): c.prepare_s for c in cells if c.run is not None}
    lines = [
        "# Width sweep (prototype): product kernel vs today's stacks",
        "",
        f"Command: `{' '.join(sys.argv)}`  ",
        f"Batch {BATCH}, input width 2**n, forward + backward (grads of inputs and weights), torch threads "
        f"{torch.get_num_threads()}, {platform.machine()} ({platform.processor() or 'cpu'}), torch "
        f"{torch.__version__}. Medians of up to {args.repeats} interleaved repeats; ratios are the "
        "stack's median over `product`'s in this run (> 1: product is faster).",
        "",
    ]
    others = [s for s in args.stacks if s != REFERENCE]
    for layers in args.layers if cells else []:
        lines += [f"## L = {layers}", ""]
        header = ["n", "build_vqc s", "product prep s", "product ms"]
        for stack in others:
            header += [f"{stack} prep s", f"{stack} ms (×)"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
        for n in args.widths:
            base = median.get((n, layers, REFERENCE))
            row = [
                str(n),
                f"{vqc_seconds[(n, layers)]:.3f}",
                f"{prepare.get((n, layers, REFERENCE), float('nan')):.3f}",
                f"{1e3 * base:.3g}" if base else "-",
            ]
            for stack in others:
                value = median.get((n, layers, stack))
                prep = prepare.get((n, layers, stack))
                row.append(f"{prep:.3f}" if prep is not None else "-")
                if value is None:
                    row.append("not run")
                else:
                    ratio = f" ({value / base:.2f}×)" if base else ""
                    row.append(f"{1e3 * value:.3g}{ratio}")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    if cells:
        lines += ["## Targets (L = 6, ratios in this run)", ""]
    layers = 6 if 6 in args.layers else max(args.layers)
    for n in args.widths if cells else []:
        base = median.get((n, layers, REFERENCE))
        if not base:
            continue
        parts = []
        for stack, need in (("plain", 2.0), ("pennylane", 10.0 if n == 4 else 7.0 if n == 2 else 5.0)):
            value = median.get((n, layers, stack))
            if value is not None:
                ratio = value / base
                parts.append(f"{stack} {ratio:.1f}× (≥ {need:g}×: {'met' if ratio >= need else 'NOT met'})")
        lines.append(f"- n = {n}: " + "; ".join(parts))
    if memory:
        lines += [
            "",
            f"## Peak memory, L = {max(args.layers)} (peak RSS growth over one forward + backward)",
            "",
        ]
        lines += ["| n | stack | growth MiB | peak MiB |", "|---:|---|---:|---:|"]
        for row in memory:
            if "error" in row:
                lines.append(f"| {row['n']} | {row['stack']} | error | {row['error']} |")
            else:
                lines.append(
                    f"| {row['n']} | {row['stack']} | {row['growth_mib']:.0f} | {row['peak_mib']:.0f} |"
                )
    if density:
        lines += density_lines(density, max(args.layers))
    notes = [c for c in cells if c.note]
    if notes:
        lines += ["", "Notes: " + "; ".join(sorted({f"{c.stack}: {c.note}" for c in notes}))]
    return "\n".join(lines) + "\n"


def parse_widths(text: str) -> list[int]:
    if "-" in text:
        low, high = (int(v) for v in text.split("-"))
        return list(range(low, high + 1))
    return [int(v) for v in text.split(",")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--widths", type=parse_widths, default=parse_widths("2-12"))
    parser.add_argument("--layers", type=lambda t: [int(v) for v in t.split(",")], default=[1, 6])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--stacks", type=lambda t: t.split(","), default=list(STACKS))
    parser.add_argument("--qdt-max-qubits", type=int, default=10)
    parser.add_argument("--pennylane-max-qubits", type=int, default=12)
    parser.add_argument("--slow-seconds", type=float, default=1.5)
    parser.add_argument("--slow-repeats", type=int, default=5)
    parser.add_argument("--memory-widths", type=parse_widths, default=[12])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write width_sweep_proto.md/.json here")
    parser.add_argument("--density-widths", type=parse_widths, default=[])
    parser.add_argument("--density-backward-max", type=int, default=7)
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--density-probe", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_probe:
        stack, n, layers = args.memory_probe.split(":")
        print(json.dumps(memory_probe(stack, int(n), int(layers))))
        return
    if args.density_probe:
        n, layers, backward, repeats = (int(v) for v in args.density_probe.split(":"))
        print(json.dumps(density_probe(n, layers, bool(backward), repeats)))
        return
    unknown = [s for s in args.stacks if s not in STACKS]
    if unknown or REFERENCE not in args.stacks:
        parser.error(f"--stacks: names among {', '.join(STACKS)}, including {REFERENCE}; got {unknown}")
    cells, vqc_seconds = build_cells(args) if args.widths != [0] else ([], {})
    measure(cells, args.repeats, args.seed)
    memory = measure_memory(args) if args.memory_widths and args.memory_widths != [0] else []
    density = measure_density(args)
    text = report(args, cells, vqc_seconds, memory, density)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "width_sweep_proto.md").write_text(text, encoding="utf-8")
        raw = [
            {"n": c.n, "layers": c.layers, "stack": c.stack, "prepare_s": c.prepare_s, "times_s": c.times}
            for c in cells
        ]
        (args.out / "width_sweep_proto.json").write_text(
            json.dumps({"cells": raw, "memory": memory, "density": density}, indent=1), encoding="utf-8"
        )


if __name__ == "__main__":
    main()
