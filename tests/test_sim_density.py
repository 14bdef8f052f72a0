"""The density kernel (qdt/sim/kernels/product_density.py) on its own: the composed CZ ring, the
hand-written backward pass on both ring paths, when the kernel applies, its width refusal and
its memory bound. Its values against qiskit at every width 1 … 9 are in
tests/test_execution_conformance.py."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from test_sim_product import assert_gradient_matches_a_finite_difference

from qdt.circuits import build_vqc, ring_pairs
from qdt.errors import QdtInputError
from qdt.noise import NoiseConfig
from qdt.noise.pauli import ptm_of_unitary
from qdt.sim.kernels.product_density import (
    MAX_QUBITS,
    compile_density_kernel,
    density_kernel,
    encoding_is_noiseless,
    ring_permutation,
)

DIAGONAL = NoiseConfig(
    depolarizing_1q=0.02, depolarizing_2q=0.05, phase_damping=0.03, noiseless_gates=("ry", "cx")
)
GENERAL = NoiseConfig(
    depolarizing_1q=0.02, depolarizing_2q=0.05, amplitude_damping=0.04, noiseless_gates=("ry", "cx")
)
CZ = np.diag([1.0, 1.0, 1.0, -1.0]).astype(np.complex128)


def _apply_pair_dense(state: np.ndarray, pair: np.ndarray, a: int, b: int, n: int) -> np.ndarray:
    """The 16 × 16 pair matrix on digits (low, high) of a [4**n] vector, by explicit indexing."""
    low, high = min(a, b), max(a, b)
    out = np.zeros_like(state)
    for k in range(4**n):
        d_low, d_high = (k >> (2 * low)) & 3, (k >> (2 * high)) & 3
        row = d_low + 4 * d_high
        base = k - d_low * 4**low - d_high * 4**high
        for column in range(16):
            source = base + (column & 3) * 4**low + (column >> 2) * 4**high
            out[k] += pair[row, column] * state[source]
    return out


@pytest.mark.parametrize("n", [2, 3, 4])
def test_the_composed_ring_is_the_pairs_one_after_the_other(n):
    pair = DIAGONAL.gate_channel_ptm("cz", 2) @ ptm_of_unitary(CZ)
    permutation = ring_permutation(n, np.where(np.abs(pair) < 1e-12, 0.0, pair))
    assert permutation is not None
    source, scale = permutation
    assert sorted(source.tolist()) == list(range(4**n))  # a permutation of the Pauli strings
    state = np.random.default_rng(n).normal(size=4**n)
    expected = state
    for a, b in ring_pairs(n):
        expected = _apply_pair_dense(expected, pair, a, b, n)
    np.testing.assert_allclose(scale * state[source], expected, rtol=0, atol=1e-14)
    general = GENERAL.gate_channel_ptm("cz", 2) @ ptm_of_unitary(CZ)
    assert ring_permutation(n, general) is None  # amplitude damping: not one entry per row


@pytest.mark.parametrize("noise", [DIAGONAL, GENERAL], ids=["permutation", "pairs"])
@pytest.mark.parametrize(("n", "layers"), [(1, 2), (2, 1), (3, 2), (4, 1), (3, 0)])
def test_backward_pass_matches_finite_differences(noise, n, layers):
    kernel = density_kernel(n, layers, noise)
    assert (kernel.ring is None) == (n == 1)
    if kernel.ring is not None:
        assert (kernel.ring.source is not None) == (noise is DIAGONAL)
    generator = torch.Generator().manual_seed(n + 10 * layers)
    angles = (torch.rand(2, 2**n - 1, generator=generator, dtype=torch.float64) * 6 - 3).requires_grad_()
    weights = (torch.rand(n * layers, generator=generator, dtype=torch.float64) * 6 - 3).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, w: kernel(a, w), (angles, weights), eps=1e-6, atol=1e-8)


def test_gradient_at_seven_qubits_matches_a_finite_difference():
    generator = torch.Generator().manual_seed(7)
    angles = torch.rand(3, 127, generator=generator, dtype=torch.float64) * 6 - 3
    weights = torch.rand(14, generator=generator, dtype=torch.float64) * 6 - 3
    assert_gradient_matches_a_finite_difference(density_kernel(7, 2, GENERAL), angles, weights)


def test_probabilities_stay_a_distribution_under_strong_noise():
    kernel = density_kernel(
        5, 3, NoiseConfig(depolarizing_1q=0.5, depolarizing_2q=1.0, noiseless_gates=("ry", "cx"))
    )
    probs = kernel(torch.rand(4, 31, dtype=torch.float64) * 6, torch.rand(15, dtype=torch.float64) * 6)
    assert torch.all(probs > -1e-12)
    torch.testing.assert_close(probs.sum(1), torch.ones(4, dtype=torch.float64), rtol=0, atol=1e-12)
    # full two-qubit depolarizing after every CZ of the ring: every qubit ends maximally mixed
    torch.testing.assert_close(probs, torch.full_like(probs, 1 / 32), rtol=0, atol=1e-12)


def test_the_kernel_applies_only_to_a_noiseless_encoding_of_the_paper_circuit():
    vqc = build_vqc(8, 2)
    params = (vqc.encoding_params, vqc.weight_params)
    assert encoding_is_noiseless(None) and encoding_is_noiseless(DIAGONAL)
    noisy_tree = NoiseConfig(depolarizing_1q=0.01, depolarizing_2q=0.02)
    only_ry = NoiseConfig(depolarizing_2q=0.02, noiseless_gates=("ry",))  # cx still noisy
    for noise in (noisy_tree, only_ry):
        assert not encoding_is_noiseless(noise)
        assert compile_density_kernel(vqc.circuit, *params, noise) is None
    assert compile_density_kernel(vqc.circuit, *params, DIAGONAL) is not None
    extra = vqc.circuit.copy()
    extra.h(0)
    assert compile_density_kernel(extra, *params, DIAGONAL) is None
    assert compile_density_kernel(QuantumCircuit(3), [], [], DIAGONAL) is None


def test_widths_past_the_limit_are_refused_naming_memory_and_alternatives():
    vqc = build_vqc(2 ** (MAX_QUBITS + 1), 1)
    with pytest.raises(QdtInputError) as caught:
        compile_density_kernel(vqc.circuit, vqc.encoding_params, vqc.weight_params, DIAGONAL)
    message = str(caught.value)
    assert caught.value.field == "circuit" and f"{MAX_QUBITS + 1} qubits" in message
    assert "GiB" in message and "statevector" in message and "aer" in message


_PROBE = """
import json, torch
from qdt.noise import NoiseConfig
from qdt.sim.kernels.product_density import density_kernel
torch.set_num_threads(1)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
noise = NoiseConfig(depolarizing_1q=1e-3, depolarizing_2q=1e-2, noiseless_gates=("ry", "cx"))
kernel = density_kernel(8, 6, noise)
angles = torch.rand(128, 255, dtype=torch.float64, requires_grad=True)
weights = torch.rand(48, dtype=torch.float64, requires_grad=True)
g = torch.randn(128, 256, dtype=torch.float64)
kernel(angles[:2], weights)  # library buffers outside the measured pass
open("/proc/self/clear_refs", "w").write("5")
before = status("VmRSS")
torch.autograd.grad((kernel(angles, weights) * g).sum(), [angles, weights])
growth = status("VmHWM") - before
print(json.dumps({"growth_mib": growth, "estimate_mib": kernel.memory_bytes(128) / 2**20}))
"""


@pytest.mark.slow
def test_eight_qubit_forward_backward_stays_within_the_memory_estimate():
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert 0 < result["growth_mib"] <= result["estimate_mib"]  # the refusal's estimate is an upper bound
