"""Parameter-shift gradients agree with autograd; one executor call per backward pass."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector

from qdt.circuits import build_vqc
from qdt.errors import QdtInputError
from qdt.executors import open_backend
from qdt.executors.parameter_shift import ParameterShiftExecutor, differentiable

TOL = 1e-8


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _gradients(executor, circuit_fn, readout, seed=0):
    """Outputs and gradients of a random linear loss wrt inputs and weights."""
    vqc, x0, w0 = circuit_fn(seed)
    x = x0.clone().requires_grad_()
    w = w0.clone().requires_grad_()
    prepared = executor.prepare_vqc(vqc)
    output = executor.run(prepared, vqc.angles(x), w, readout=readout)
    coefficients = torch.randn(
        output.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64
    )
    (output * coefficients).sum().backward()
    return output.detach(), x.grad, w.grad


def _vqc_case(width, layers, rows=4):
    def make(seed):
        vqc = build_vqc(width, layers)
        generator = torch.Generator().manual_seed(seed)
        x = torch.rand(rows, width, generator=generator, dtype=torch.float64) * 0.8 + 0.1
        w = torch.rand(vqc.n_weights, generator=generator, dtype=torch.float64) * 2 * math.pi
        return vqc, x, w

    return make


EXACT_INNER = [("statevector", {}), ("aer", {})]


@pytest.mark.parametrize(("name", "options"), EXACT_INNER, ids=[e[0] for e in EXACT_INNER])
@pytest.mark.parametrize("readout", ["probs", "expval_z"])
@pytest.mark.parametrize(("width", "layers"), [(4, 2), (16, 3), (5, 1)])
def test_parameter_shift_matches_statevector_autograd(name, options, readout, width, layers):
    case = _vqc_case(width, layers)
    reference = _gradients(open_backend("statevector"), case, readout)
    executor = differentiable(open_backend(f"executor:{name}", **options))
    assert executor.capabilities.differentiable
    got = _gradients(executor, case, readout)
    for expected, value in zip(reference, got):
        assert torch.max(torch.abs(expected - value)) < TOL


def test_parameter_shift_under_noise_matches_density_autograd():
    """The rule stays exact when θ-independent noise follows each gate."""
    case = _vqc_case(4, 2, rows=3)
    reference = _gradients(open_backend("executor:density", noise=_noise()), case, "probs")
    got = _gradients(differentiable(open_backend("executor:aer", noise=_noise())), case, "probs")
    for expected, value in zip(reference, got):
        assert torch.max(torch.abs(expected - value)) < TOL


def _noise():
    from qdt.noise.profiles import load_noise_profile

    return load_noise_profile("thermal-ibm-like").to_noise_config()


def test_affine_and_shared_parameters_in_several_pauli_rotations():
    a = ParameterVector("a", 2)
    w = ParameterVector("w", 2)
    circuit = QuantumCircuit(3)
    circuit.h([0, 1, 2])
    circuit.rx(2.0 * a[0] - 0.3, 0)
    circuit.rzz(a[0] + w[1], 0, 1)
    circuit.ry(w[0] / 2 + math.pi / 2, 2)
    circuit.cx(2, 0)
    circuit.rxx(-a[1] + 0.5 * w[0], 1, 2)
    circuit.p(a[1] - w[1], 1)
    circuit.cz(1, 2)
    circuit.rzx(w[1], 2, 0)
    circuit.r(a[0], 0.4, 1)
    circuit.ry(w[0], 0)  # w[0] appears three times
    angles0 = torch.tensor([[0.3, -1.1], [2.0, 0.7], [-0.4, 0.1]], dtype=torch.float64)
    weights0 = torch.tensor([0.9, -2.2], dtype=torch.float64)

    def run(executor):
        angles = angles0.clone().requires_grad_()
        weights = weights0.clone().requires_grad_()
        prepared = executor.prepare(circuit, list(a), list(w))
        output = executor.run(prepared, angles, weights, readout="expval_z")
        (output * torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)).sum().backward()
        return output.detach(), angles.grad, weights.grad

    reference = run(open_backend("statevector"))
    for inner in ("statevector", "aer"):
        got = run(differentiable(open_backend(f"executor:{inner}")))
        for expected, value in zip(reference, got):
            assert torch.max(torch.abs(expected - value)) < TOL


class _CountingExecutor:
    """Wraps an executor's run to count calls and rows."""

    def __init__(self, executor, monkeypatch):
        self.calls: list[int] = []
        original = executor.run

        def counted(prepared, angles, weights, readout="probs"):
            self.calls.append(int(np.asarray(angles.shape)[0]))
            return original(prepared, angles, weights, readout=readout)

        monkeypatch.setattr(executor, "run", counted)


def test_one_wrapped_call_per_forward_and_per_backward(monkeypatch):
    vqc = build_vqc(16, 2)  # 15 encoding angles + 8 weights, each in one gate
    inner = open_backend("executor:aer")
    counter = _CountingExecutor(inner, monkeypatch)
    executor = differentiable(inner)
    prepared = executor.prepare_vqc(vqc)
    x = torch.rand(5, 16, dtype=torch.float64).requires_grad_()
    w = torch.rand(vqc.n_weights, dtype=torch.float64).requires_grad_()
    executor.run(prepared, vqc.angles(x), w).sum().backward()
    assert counter.calls == [5, 2 * (15 + 8) * 5]
    counter.calls.clear()
    executor.run(prepared, vqc.angles(x.detach()), w).sum().backward()  # weights only
    assert counter.calls == [5, 2 * 8 * 5]
    counter.calls.clear()
    with torch.no_grad():
        executor.run(prepared, vqc.angles(x), w)
    assert counter.calls == [5]


def test_shot_based_gradients_are_unbiased_estimates():
    vqc, x, w = _vqc_case(4, 1, rows=2)(3)
    reference = _gradients(open_backend("statevector"), lambda s: (vqc, x, w), "expval_z")
    shots = 20_000
    executor = differentiable(open_backend("executor:aer", shots=shots, seed=np.random.SeedSequence(9)))
    assert executor.capabilities.shots and executor.capabilities.differentiable
    got = _gradients(executor, lambda s: (vqc, x, w), "expval_z")
    # ∂⟨Z_i⟩/∂w is estimated as (Ẑ₊ − Ẑ₋)/2 from two independent draws: sd <= 1/sqrt(2·shots);
    # a row's outputs share shots (|Σ_i c_i d_i| <= Σ_i |c_i| |d_i|), rows are independent.
    coefficients = torch.randn(2, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    sd = math.sqrt(float((coefficients.abs().sum(dim=1) ** 2).sum()) / (2 * shots))
    assert torch.max(torch.abs(reference[2] - got[2])) < 4 * sd
    assert sd < 0.02
    assert executor.last_run_info["mode"] == "sampled"


def test_rejects_gates_that_are_not_single_pauli_rotations():
    a = ParameterVector("a", 3)
    executor = differentiable(open_backend("statevector"))
    for build in (
        lambda c: c.crx(a[0], 0, 1),
        lambda c: c.u(a[0], a[1], a[2], 0),
        lambda c: c.cp(a[0], 0, 1),
    ):
        circuit = QuantumCircuit(2)
        build(circuit)
        with pytest.raises(QdtInputError, match="single Pauli|one Pauli"):
            executor.prepare(circuit, list(circuit.parameters), [])
    nonlinear = QuantumCircuit(1)
    nonlinear.rx(a[0] * a[1], 0)
    with pytest.raises(QdtInputError, match="linearly"):
        executor.prepare(nonlinear, [a[0], a[1]], [])


def test_wrapper_is_idempotent_and_reports_the_inner_capabilities():
    inner = open_backend("executor:aer", shots=10, noise="depol-1e-3")
    wrapped = differentiable(inner)
    assert isinstance(wrapped, ParameterShiftExecutor) and differentiable(wrapped) is wrapped
    caps = wrapped.capabilities
    assert (caps.differentiable, caps.shots, caps.noisy, caps.remote) == (True, True, True, False)
    assert wrapped.name == "aer+parameter-shift"
