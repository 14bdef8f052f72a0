"""The ``aer`` executor: exact and shot-based agreement with statevector, seeds, modes, checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from test_execution_conformance import BAD_RUNS, z_expectations

from qdt.circuits import build_vqc
from qdt.errors import QdtInputError
from qdt.executors import executor_names, open_backend
from qdt.executors.aer.executor import SPLIT_MIN_ROWS, AerExecutor
from qdt.executors.sampling import gaussian_shot_noise

TOL = 1e-10


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def vqc_batch(width=16, layers=2, rows=6, seed=0):
    vqc = build_vqc(width, layers)
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(rows, width, generator=generator, dtype=torch.float64).round()
    x[0] = 0.0
    weights = torch.rand(vqc.n_weights, generator=generator, dtype=torch.float64) * 2 * math.pi
    return vqc, vqc.angles(x), weights


def statevector_probs(vqc, angles, weights):
    executor = open_backend("statevector")
    return executor.run(executor.prepare_vqc(vqc), angles, weights)


def test_registered_with_declared_capabilities():
    assert "aer" in executor_names()
    exact = open_backend("executor:aer").capabilities
    assert (exact.differentiable, exact.shots, exact.noisy, exact.remote) == (False, False, False, False)
    shots = open_backend("executor:aer", shots=100, noise="depol-1e-3").capabilities
    assert (shots.shots, shots.noisy) == (True, True)


# ----------------------------------------------------------------------------- exact mode


# Exact values, transpiled circuits, explicit readout qubits, final measurements and rejected
# instructions: the conformance suite (tests/test_execution_conformance.py) runs them on aer.


def test_exact_mode_is_recorded_and_float64():
    vqc, angles, weights = vqc_batch(16, 6, rows=5, seed=22)
    executor = open_backend("executor:aer")
    probs = executor.run(executor.prepare_vqc(vqc), angles, weights)
    assert probs.dtype == torch.float64 and probs.shape == (5, 2**vqc.n_qubits)
    assert executor.last_run_info["mode"] == executor.result_mode == "exact"
    assert executor.last_run_info["rows"] == 5 and executor.last_run_info["shots"] is None
    assert torch.max(torch.abs(probs - statevector_probs(vqc, angles, weights))) < TOL


# ----------------------------------------------------------------------------- shots


def _within_sigma(estimate, exact, shots, k=4.0):
    sigma = np.sqrt(exact * (1 - exact) / shots)
    return np.abs(estimate - exact) <= k * sigma + 1e-12


@pytest.mark.parametrize("engine", ["probabilities", "sampler"])
def test_noiseless_shots_agree_with_statevector_within_four_sigma(engine):
    vqc, angles, weights = vqc_batch(16, 2, rows=6, seed=1)
    shots = 4000
    executor = open_backend("executor:aer", shots=shots, seed=np.random.SeedSequence(11), engine=engine)
    prepared = executor.prepare_vqc(vqc)
    estimate = executor.run(prepared, angles, weights).numpy()
    exact = statevector_probs(vqc, angles, weights).numpy()
    assert executor.last_run_info["mode"] == "sampled"
    assert executor.last_run_info["engine"] == engine
    assert np.all(_within_sigma(estimate, exact, shots))
    assert np.allclose(estimate.sum(axis=1), 1.0)
    counts = estimate * shots
    assert np.allclose(counts, counts.round(), atol=1e-9)
    expval = executor.run(prepared, angles, weights, readout="expval_z").numpy()
    z = z_expectations(exact)
    assert np.all(np.abs(expval - z) <= 4 * np.sqrt((1 - z**2) / shots) + 1e-12)


@pytest.mark.parametrize("engine", ["probabilities", "sampler"])
def test_seeds_reproduce_and_calls_differ(engine):
    vqc, angles, weights = vqc_batch(4, 2, rows=3, seed=2)

    def draws(seed):
        executor = open_backend("executor:aer", shots=500, seed=seed, engine=engine)
        prepared = executor.prepare_vqc(vqc)
        return [executor.run(prepared, angles, weights) for _ in range(2)]

    first, again, other = draws(np.random.SeedSequence(5)), draws(np.random.SeedSequence(5)), draws(6)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], first[1])  # fresh randomness on every call
    assert not torch.equal(first[0], other[0])


def test_gaussian_mode_has_the_multinomial_moments():
    vqc, angles, weights = vqc_batch(4, 1, rows=1, seed=3)
    shots = 1000
    rows = 4000
    executor = open_backend("executor:aer", shots=shots, mode="gaussian", seed=8)
    prepared = executor.prepare_vqc(vqc)
    estimate = executor.run(prepared, angles.expand(rows, -1), weights).numpy()
    exact = statevector_probs(vqc, angles, weights).numpy()[0]
    assert executor.result_mode == executor.last_run_info["mode"] == "gaussian"
    assert np.allclose(estimate.sum(axis=1), 1.0, atol=1e-12)
    counts = estimate * shots
    assert not np.allclose(counts, counts.round())  # not counts: a Gaussian
    covariance = np.cov(estimate.T)
    expected = (np.diag(exact) - np.outer(exact, exact)) / shots
    # sample covariance of 4000 draws: relative error about sqrt(2/4000) ≈ 2.2%
    assert np.allclose(covariance, expected, atol=0.15 * np.max(np.abs(expected)))
    assert np.all(np.abs(estimate.mean(axis=0) - exact) <= 4 * np.sqrt(np.diag(expected) / rows) + 1e-12)


def test_gaussian_shot_noise_function_is_centred():
    generator = np.random.default_rng(0)
    p = np.array([[0.5, 0.25, 0.25, 0.0]])
    noisy = gaussian_shot_noise(np.repeat(p, 20000, axis=0), 100, generator)
    assert np.allclose(noisy[:, 3], 0.0)  # zero probability: zero variance
    assert np.allclose(noisy.var(axis=0), p[0] * (1 - p[0]) / 100, rtol=0.05, atol=1e-12)


# ----------------------------------------------------------------------------- noise paths


# Aer's C++ applies a device error whose Kraus/Pauli terms include probabilities down to 1e-8
# within about 5e-11 of the exact channel (checked against qiskit.quantum_info); the tail uses
# the exact channel, so device results agree to about 1e-11 per two-qubit gate.
@pytest.mark.parametrize(("noise", "tol"), [("thermal-ibm-like", 1e-12), ("device:fake_manila", 1e-9)])
def test_shared_tail_path_equals_the_plain_density_matrix(noise, tol):
    vqc, angles, weights = vqc_batch(16, 3, rows=SPLIT_MIN_ROWS + 3, seed=5)
    executor = open_backend("executor:aer", noise=noise)
    prepared = executor.prepare_vqc(vqc)
    batch = executor.run(prepared, angles, weights)
    assert executor.last_run_info["method"] == "density_matrix+tail"
    for row in range(3):
        single = executor.run(prepared, angles[row : row + 1], weights)
        assert executor.last_run_info["method"] == "density_matrix"
        assert torch.max(torch.abs(batch[row] - single[0])) < tol
    again = executor.run(prepared, angles, weights)  # cached tail observables
    assert torch.max(torch.abs(batch - again)) < 1e-15


def test_rows_without_angle_dependence_run_once_and_repeat():
    circuit = QuantumCircuit(2)
    w = ParameterVector("w", 1)
    circuit.h(0)
    circuit.rx(w[0], 1)
    circuit.cz(0, 1)
    executor = open_backend("executor:aer", noise="depol-1e-2")
    prepared = executor.prepare(circuit, [], list(w))
    probs = executor.run(prepared, torch.zeros(5, 0), torch.tensor([0.7]))
    assert torch.max(torch.abs(probs - probs[:1])) == 0.0


def test_transpilation_is_cached_per_circuit_and_target():
    vqc = build_vqc(4, 1)
    first = open_backend("executor:aer", noise="device:fake_manila").prepare_vqc(vqc)
    second = open_backend("executor:aer", noise="device:fake_manila", shots=10).prepare_vqc(vqc)
    assert first.payload.transpiled is second.payload.transpiled
    other = open_backend("executor:aer", noise="device:fake_manila", optimization_level=1).prepare_vqc(vqc)
    assert other.payload.transpiled is not first.payload.transpiled


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("label", "corrupt", "field"), BAD_RUNS, ids=[b[0] for b in BAD_RUNS])
def test_bad_input_raises_the_statevector_error_before_any_aer_call(label, corrupt, field, monkeypatch):
    import qiskit_aer
    import qiskit_aer.primitives

    def must_not_run(*args, **kwargs):
        raise AssertionError("Aer called despite bad input")

    monkeypatch.setattr(qiskit_aer.AerSimulator, "run", must_not_run)
    monkeypatch.setattr(qiskit_aer.primitives.SamplerV2, "run", must_not_run)
    vqc = build_vqc(4, 3)
    messages = set()
    for name, options in (("statevector", {}), ("aer", {}), ("aer", {"shots": 100, "engine": "sampler"})):
        executor = open_backend(f"executor:{name}", **options)
        prepared = executor.prepare_vqc(vqc)
        angles = vqc.angles(torch.ones(2, 4, dtype=torch.float64)).detach().clone()
        weights = torch.ones(vqc.n_weights, dtype=torch.float64)
        bad_angles, bad_weights = corrupt(angles, weights)
        with pytest.raises(QdtInputError) as info:
            executor.run(prepared, bad_angles, bad_weights)
        assert info.value.field == field
        messages.add(str(info.value))
    assert len(messages) == 1


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"shots": 0}, "shots"),
        ({"shots": True}, "shots"),
        ({"shots": 10, "mode": "exact"}, "mode"),
        ({"mode": "sampled"}, "mode"),
        ({"mode": "poisson", "shots": 3}, "mode"),
        ({"engine": "sampler"}, "engine"),
        ({"engine": "gpu"}, "engine"),
        ({"seed": -1}, "seed"),
        ({"noise": 0.01}, "noise"),
        ({"noise": "no-such-profile"}, "noise"),
        ({"optimization_level": 5}, "optimization_level"),
    ],
)
def test_options_are_validated(options, field):
    with pytest.raises(QdtInputError) as info:
        open_backend("executor:aer", **options)
    assert info.value.field == field


def test_foreign_prepared_circuit_and_bad_readout():
    vqc = build_vqc(4, 1)
    executor = open_backend("executor:aer")
    prepared = executor.prepare_vqc(vqc)
    angles = vqc.angles(torch.zeros(1, 4, dtype=torch.float64))
    weights = torch.zeros(vqc.n_weights, dtype=torch.float64)
    with pytest.raises(QdtInputError, match="readout"):
        executor.run(prepared, angles, weights, readout="counts")
    with pytest.raises(QdtInputError, match="prepared"):
        AerExecutor().run(prepared, angles, weights)
