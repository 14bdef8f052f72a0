"""benchmarks/width_sweep.py: its peer stacks compute the same function as qdt's executor (so the
sweep compares like with like), and a minimal run writes the table, CSV and figure (timings
themselves are not checked: this machine is shared)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import width_sweep  # noqa: E402

from qdt.circuits import build_vqc  # noqa: E402
from qdt.executors import open_backend  # noqa: E402

PEERS = [pytest.mark.peers]  # skipped where the peers are not installed: tests/conftest.py


@pytest.mark.parametrize(
    "stack",
    [
        "plain",
        pytest.param("pennylane", marks=PEERS),
        pytest.param("lightning", marks=PEERS),
        "qdt-density-layers",
    ],
)
def test_peer_stacks_compute_the_same_circuit(stack):
    n, layers = 3, 2
    x = width_sweep.inputs_for("critic", n, layers)[:4]
    module = width_sweep.build_stack(stack, build_vqc(2**n, layers))
    weights = torch.linspace(0.3, 2.9, n * layers, dtype=torch.float64)
    with torch.no_grad():
        next(p for p in module.parameters() if p.requires_grad).copy_(weights)
        got = module(x)
    vqc = build_vqc(2**n, layers)
    executor = open_backend("statevector")
    readout = "expval_z" if stack == "lightning" else "probs"
    expected = executor.run(executor.prepare_vqc(vqc), vqc.angles(x), weights, readout=readout)
    if stack == "qdt-density-layers":  # noise moves it a little: a distribution near the exact one
        torch.testing.assert_close(got.sum(1), torch.ones(4, dtype=torch.float64))
        assert 0 < (got - expected).abs().max() < 0.05
    else:  # lightning's state preparation rounds at 1e-8
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-7 if stack == "lightning" else 1e-10)


def test_a_minimal_run_writes_table_csv_and_figure(tmp_path):
    out = tmp_path / "width"
    argv = ["--widths", "2-3", "--layers", "1", "--shapes", "critic", "--stacks", "qdt-statevector,plain"]
    argv += ["--repeats", "2", "--memory-widths", "2", "--no-progress", "--out", str(out)]
    assert width_sweep.main(argv) == 0
    with open(out / "width.csv", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert [(r["qubits"], r["stack"]) for r in rows] == [
        ("2", "qdt-statevector"), ("2", "plain"), ("3", "qdt-statevector"), ("3", "plain")
    ]  # fmt: skip
    assert all(float(r["median_ms"]) > 0 and int(r["samples"]) == 2 for r in rows)
    assert float(rows[1]["ratio"]) > 0 and rows[0]["peak_mib"] != "" and rows[2]["peak_mib"] == ""
    text = (out / "width.md").read_text(encoding="utf-8")
    assert "## critic, L = 1: forward + backward, ms" in text and "load average" in text
    assert (out / "width.png").stat().st_size > 10_000
