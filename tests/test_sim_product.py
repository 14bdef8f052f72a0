"""The product kernel (qdt/sim/kernels/product*.py) against qiskit and an independent torch
simulation: values to 1e-10, gradients (gate-by-gate autograd, finite differences at 12 qubits),
the dense and grouped paths, readout marginals, the circuit-shape recognition, preparation time,
the width limit and peak memory. The statevector executor's every-width conformance (1 … 12
qubits against qiskit's Statevector) is in tests/test_execution_conformance.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.quantum_info import Statevector

from qdt.circuits import VQC, build_vqc
from qdt.errors import QdtInputError
from qdt.sim.kernels.product import MAX_QUBITS, ProductKernel, compile_product_kernel, product_kernel


def vqc_of(n: int, layers: int) -> VQC:
    return build_vqc(2**n, layers)


def compiled(vqc: VQC, **options: int) -> ProductKernel:
    kernel = compile_product_kernel(vqc.circuit, vqc.encoding_params, vqc.weight_params, **options)
    assert kernel is not None
    return kernel


def qiskit_probabilities(vqc: VQC, angles: torch.Tensor, weights: torch.Tensor) -> np.ndarray:
    rows = [vqc.bound_circuit(row.tolist(), weights.tolist()) for row in angles]
    return np.array([Statevector(circuit).probabilities() for circuit in rows])


@pytest.mark.parametrize("n", range(1, 9))
def test_matches_qiskit_statevector_with_and_without_layers(n: int) -> None:
    generator = torch.Generator().manual_seed(n)
    for layers in (0, 2):
        vqc = vqc_of(n, layers)
        kernel = compiled(vqc)
        angles = torch.rand(2, vqc.n_encoding, generator=generator, dtype=torch.float64) * 8 - 4
        weights = torch.rand(vqc.n_weights, generator=generator, dtype=torch.float64) * 8 - 4
        probs = kernel(angles, weights)
        assert probs.shape == (2, 2**n)
        np.testing.assert_allclose(
            probs.numpy(), qiskit_probabilities(vqc, angles, weights), rtol=0, atol=1e-10
        )


@pytest.mark.parametrize(("n", "readout"), [(3, (2, 0)), (4, (3, 2, 1, 0)), (7, (6, 1, 3))])
def test_readout_qubits_reorder_and_marginalise(n: int, readout: tuple[int, ...]) -> None:
    """Any readout_qubits: bit i of the outcome is qubit readout[i] (qiskit's probabilities(qargs))."""
    vqc = vqc_of(n, 2)
    kernel = compile_product_kernel(
        vqc.circuit, vqc.encoding_params, vqc.weight_params, readout_qubits=readout
    )
    assert kernel is not None and kernel.io.n_outcomes == 2 ** len(readout)
    generator = torch.Generator().manual_seed(n)
    angles = (
        torch.rand(2, vqc.n_encoding, generator=generator, dtype=torch.float64) * 6 - 3
    ).requires_grad_()
    weights = (torch.rand(vqc.n_weights, generator=generator, dtype=torch.float64) * 6 - 3).requires_grad_()
    probs = kernel(angles, weights)
    rows = [vqc.bound_circuit(row.tolist(), weights.tolist()) for row in angles.detach()]
    expected = np.array([Statevector(circuit).probabilities(list(readout)) for circuit in rows])
    np.testing.assert_allclose(probs.detach().numpy(), expected, rtol=0, atol=1e-10)
    full = compiled(vqc)
    g = torch.randn(probs.shape, generator=generator, dtype=torch.float64)
    grads = torch.autograd.grad((probs * g).sum(), [angles, weights])
    outcome = kernel.io.outcomes
    assert outcome is not None
    reference = torch.autograd.grad((full(angles, weights) * g[:, outcome]).sum(), [angles, weights])
    for ours, theirs in zip(grads, reference):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- gradients


def reference_probabilities(circuit: QuantumCircuit, vqc: VQC, angles: torch.Tensor, weights: torch.Tensor):
    """Gate-by-gate complex torch simulation of ``circuit`` (autograd through every gate)."""
    n, batch = circuit.num_qubits, angles.shape[0]
    column = {p: i for i, p in enumerate(vqc.encoding_params)}
    slot = {p: i for i, p in enumerate(vqc.weight_params)}
    state = torch.zeros(batch, 2**n, dtype=torch.complex128)
    state[:, 0] = 1.0
    k = torch.arange(2**n)
    for inst in circuit.data:
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        bit = (k >> qubits[-1]) & 1
        partner = k ^ (1 << qubits[-1])
        if inst.name in ("ry", "rx"):
            p = inst.params[0]
            theta = angles[:, column[p]][:, None] if inst.name == "ry" else weights[slot[p]].expand(batch, 1)
            c, s = torch.cos(theta / 2), torch.sin(theta / 2)
            if inst.name == "ry":  # RY = [[c, −s], [s, c]]
                sign = torch.where(bit == 1, 1.0, -1.0).to(torch.float64)
                state = c * state + (s * sign) * state[:, partner]
            else:  # RX = [[c, −is], [−is, c]]
                state = c * state - 1j * s * state[:, partner]
        elif inst.name == "cx":
            control = (k >> qubits[0]) & 1
            state = state[:, torch.where(control == 1, partner, k)]
        elif inst.name == "cz":
            both = ((k >> qubits[0]) & 1) & ((k >> qubits[1]) & 1)
            state = state * (1.0 - 2.0 * both).to(torch.complex128)
        else:  # pragma: no cover - the VQC has no other gates
            raise AssertionError(inst.name)
    return state.abs().square()


def assert_matches_gate_by_gate(
    kernel, vqc: VQC, angles: torch.Tensor, weights: torch.Tensor, g: torch.Tensor
) -> None:
    """The kernel's probabilities and the gradients of ⟨g, probs⟩ equal (1e-10) and are finite as
    those of the gate-by-gate autograd simulation."""
    results = []
    for run in (kernel, lambda a, w: reference_probabilities(vqc.circuit, vqc, a, w)):
        a, w = angles.clone().requires_grad_(), weights.clone().requires_grad_()
        probs = run(a, w)
        results.append((probs.detach(), *torch.autograd.grad((probs * g).sum(), [a, w])))
    for ours, reference in zip(*results):
        assert torch.isfinite(ours).all()
        torch.testing.assert_close(ours, reference, rtol=0, atol=1e-10)


@pytest.mark.parametrize("unitary_qubits", [0, 99], ids=["grouped", "dense"])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 6])
def test_gradients_match_gate_by_gate_autograd(n: int, unitary_qubits: int) -> None:
    generator = torch.Generator().manual_seed(10 + n)
    vqc = vqc_of(n, 3)
    kernel = compiled(vqc, unitary_qubits=unitary_qubits, group_qubits=2)
    angles = torch.rand(3, vqc.n_encoding, generator=generator, dtype=torch.float64) * 8 - 4
    weights = torch.rand(vqc.n_weights, generator=generator, dtype=torch.float64) * 8 - 4
    g = torch.randn(3, 2**n, generator=generator, dtype=torch.float64)
    assert_matches_gate_by_gate(kernel, vqc, angles, weights, g)


@pytest.mark.parametrize("unitary_qubits", [0, 99], ids=["grouped", "dense"])
def test_gradcheck_small_registers(unitary_qubits: int) -> None:
    for n, layers in ((1, 1), (2, 2), (3, 1), (3, 0)):
        kernel = product_kernel(n, layers, unitary_qubits=unitary_qubits, group_qubits=2)
        angles = torch.rand(2, 2**n - 1, dtype=torch.float64, requires_grad=True)
        weights = torch.rand(n * layers, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda a, w, k=kernel: k(a, w), (angles, weights))


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_dense_gradients_where_tree_factors_vanish(n: int) -> None:
    """The dense path's angle gradient multiplies f·∂L/∂f by tan of each tree factor's argument
    instead of gathering the other factors: exact also where a factor is cos(±π/2) ≈ 6e-17 (half
    angles 0 and π/2, the encoding of zero subtrees and of one-hot inputs) and tan is ±1.6e16."""
    generator = torch.Generator().manual_seed(30 + n)
    vqc = vqc_of(n, 2)
    kernel = compiled(vqc, unitary_qubits=99)
    assert kernel.unitary is not None
    special = torch.tensor([0.0, np.pi, -np.pi, 2 * np.pi, 0.5], dtype=torch.float64)
    pick = torch.randint(0, 5, (6, vqc.n_encoding), generator=generator)
    angles = special[pick]
    angles[0] = 0.0  # every half angle 0: ψ₀ = |0…0⟩, all sin factors vanish
    angles[1] = np.pi  # every angle π: the root's half angle is π/2, its cos factor vanishes
    weights = torch.rand(vqc.n_weights, generator=generator, dtype=torch.float64) * 8 - 4
    g = torch.randn(6, 2**n, generator=generator, dtype=torch.float64)
    assert_matches_gate_by_gate(kernel, vqc, angles, weights, g)


def assert_gradient_matches_a_finite_difference(kernel, angles: torch.Tensor, weights: torch.Tensor) -> None:
    """The kernel's gradient of ⟨g, probs⟩ along a random direction of (angles, weights) against a
    five-point finite difference (truncation error O(step**4)). Shared with test_sim_density.py."""
    generator = torch.Generator().manual_seed(angles.shape[1])
    g = torch.randn(angles.shape[0], 2**kernel.n_qubits, generator=generator, dtype=torch.float64)
    direction = (
        torch.randn(angles.shape, generator=generator, dtype=torch.float64),
        torch.randn(weights.shape, generator=generator, dtype=torch.float64),
    )
    a, w = angles.clone().requires_grad_(), weights.clone().requires_grad_()
    grad_a, grad_w = torch.autograd.grad((kernel(a, w) * g).sum(), [a, w])
    analytic = float((grad_a * direction[0]).sum() + (grad_w * direction[1]).sum())

    def loss(t: float) -> float:
        return float((kernel(angles + t * direction[0], weights + t * direction[1]) * g).sum())

    step = 1e-4
    numeric = (8 * (loss(step) - loss(-step)) - (loss(2 * step) - loss(-2 * step))) / (12 * step)
    assert abs(numeric - analytic) <= 1e-7 * max(1.0, abs(analytic))


def test_gradient_at_twelve_qubits_matches_a_finite_difference() -> None:
    generator = torch.Generator().manual_seed(12)
    angles = torch.rand(2, 4095, generator=generator, dtype=torch.float64) * 6 - 3
    weights = torch.rand(24, generator=generator, dtype=torch.float64) * 6 - 3
    assert_gradient_matches_a_finite_difference(product_kernel(12, 2), angles, weights)


def test_grouped_and_dense_paths_agree() -> None:
    for n in range(1, 8):
        generator = torch.Generator().manual_seed(20 + n)
        angles = torch.rand(4, 2**n - 1, generator=generator, dtype=torch.float64) * 8 - 4
        weights = torch.rand(3 * n, generator=generator, dtype=torch.float64) * 8 - 4
        dense = product_kernel(n, 3, unitary_qubits=99)(angles, weights)
        for group in (1, 3, 4):
            grouped = product_kernel(n, 3, unitary_qubits=0, group_qubits=group)(angles, weights)
            torch.testing.assert_close(grouped, dense, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- encoder


def test_encoder_and_kernel_prepare_the_normalised_feature_map() -> None:
    n = 10
    vqc = vqc_of(n, 0)
    x = torch.rand(3, 2**n, dtype=torch.float64)
    phi = 2 * x - 1
    phi[:, 0] += 0.5
    expected = (phi / phi.norm(dim=1, keepdim=True)).square()
    torch.testing.assert_close(compiled(vqc)(vqc.angles(x), torch.zeros(0)), expected)


# ----------------------------------------------------------------------------- shape and limits


def test_parameters_in_any_order_map_to_their_columns() -> None:
    vqc = vqc_of(3, 2)
    angle_params, weight_params = list(vqc.encoding_params)[::-1], list(vqc.weight_params)
    weight_params = weight_params[1:] + weight_params[:1]
    kernel = compile_product_kernel(vqc.circuit, angle_params, weight_params)
    assert kernel is not None and kernel.io.angle_columns is not None and kernel.io.weight_columns is not None
    angles = torch.rand(2, 7, dtype=torch.float64)
    weights = torch.rand(6, dtype=torch.float64)
    direct = compiled(vqc)(angles, weights)
    shuffled = kernel(angles.flip(1), torch.cat([weights[1:], weights[:1]]))
    torch.testing.assert_close(shuffled, direct, rtol=0, atol=1e-14)


def test_other_circuits_are_not_taken() -> None:
    vqc = vqc_of(3, 1)
    params = (vqc.encoding_params, vqc.weight_params)
    extra = vqc.circuit.copy()
    extra.h(0)
    assert compile_product_kernel(extra, *params) is None
    swapped = QuantumCircuit(3)
    for inst in vqc.circuit.data:
        if inst.name == "rx":
            swapped.rz(inst.params[0], inst.qubits[0])
        else:
            swapped.append(inst)
    assert compile_product_kernel(swapped, *params) is None
    reused = vqc.circuit.assign_parameters({vqc.weight_params[1]: vqc.weight_params[0]})
    assert compile_product_kernel(reused, vqc.encoding_params, vqc.weight_params[:1]) is None


def test_preparation_stays_fast_at_twelve_qubits() -> None:
    """build_vqc (circuit and encoder) and the statevector executor's prepare (validation and the
    kernel): 0.2 s measured at 12 qubits, L = 6."""
    from qdt.executors import open_backend

    start = time.perf_counter()
    vqc = vqc_of(12, 6)
    prepared = open_backend("statevector").prepare_vqc(vqc)
    elapsed = time.perf_counter() - start
    assert isinstance(prepared.payload, ProductKernel)
    # target 0.2 s; the bound leaves room for a loaded machine but catches any O(4**n) table or
    # quadratic check (the dense encoder alone took 6 s here, the parameter check 17 s)
    assert elapsed < 1.0, elapsed


def test_widths_past_the_limit_are_refused_before_allocating() -> None:
    with pytest.raises(QdtInputError) as caught:
        product_kernel(MAX_QUBITS + 1, 6)
    message = str(caught.value)
    assert caught.value.field == "circuit" and f"{MAX_QUBITS + 1} qubits" in message
    assert "GiB" in message and "aer" in message and f"at most {MAX_QUBITS}" in message


_PROBE = """
import json, torch
from qdt.sim.kernels.product import product_kernel
torch.set_num_threads(1)
warm = product_kernel(8, 6)  # library buffers (BLAS, allocator) outside the measured pass
small = torch.rand(128, 255, dtype=torch.float64, requires_grad=True)
torch.autograd.grad(warm(small, torch.rand(48, dtype=torch.float64)).sum(), [small])
kernel = product_kernel(12, 6)
angles = torch.rand(128, 4095, dtype=torch.float64, requires_grad=True)
weights = torch.rand(72, dtype=torch.float64, requires_grad=True)
g = torch.randn(128, 4096, dtype=torch.float64)
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS: earlier peaks (imports) do not hide the pass
before = status("VmRSS")
torch.autograd.grad((kernel(angles, weights) * g).sum(), [angles, weights])
after = status("VmHWM")
print(json.dumps({"growth_mib": (after - before) / 1024, "estimate_mib": kernel.memory_bytes(128) / 2**20}))
"""


@pytest.mark.slow
def test_twelve_qubit_forward_backward_stays_below_one_gigabyte() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert 0 < result["growth_mib"] < 1024
    assert result["growth_mib"] <= result["estimate_mib"]  # the refusal message's estimate is an upper bound
