"""Conformance suite every registered executor must pass, plus the density executor's noise and shots.

Every backend ``executor_names()`` lists has a case in ``EXECUTORS`` (a test fails otherwise):
statevector and density (fused and generic), aer exact and sampled, ibm on a fake device in
qiskit-ibm-runtime's local testing mode, and parameter shift around aer. The tolerance of a
comparison comes from the executor's capabilities: exact executors must match
qiskit.quantum_info to 1e-10; shot estimates without noise lie within 5 sigma of the exact
value (sigma <= 0.5/sqrt(shots) per probability); a noisy device stays within a total variation
distance of 0.15 per row (its noise moves the distribution, bit order and readout mapping must
still show). The same bad input must raise the same QdtInputError from every executor before any
simulation.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import ParameterVector
from qiskit.circuit.library import GlobalPhaseGate
from qiskit.providers.fake_provider import GenericBackendV2
from qiskit.quantum_info import DensityMatrix, Statevector
from qiskit_aer.noise import (
    ReadoutError,
    amplitude_damping_error,
    depolarizing_error,
    phase_damping_error,
)

from qdt.circuits import build_vqc
from qdt.errors import QdtInputError
from qdt.executors import (
    Capabilities,
    Executor,
    PreparedCircuit,
    executor_names,
    load_backend_profile,
    open_backend,
    profile_capabilities,
)
from qdt.executors.parameter_shift import differentiable
from qdt.noise import NoiseConfig, readout_matrix
from qdt.sim.program import Program

TOL = 1e-10
SIGMAS = 5.0
NOISY_TVD = 0.15


@dataclass(frozen=True)
class Case:
    """One executor under test: a backend (profile or executor:<name>) and its options."""

    id: str
    backend: str
    options: dict[str, Any] = field(default_factory=dict)
    parameter_shift: bool = False  # wrapped by qdt.executors.parameter_shift.differentiable
    affine_only: bool = False  # evaluates gate angles itself: non-affine expressions are refused

    @property
    def shots(self) -> int | None:
        return self.options.get("shots")

    @property
    def executor_name(self) -> str:
        return load_backend_profile(self.backend).executor

    @property
    def capabilities(self) -> Capabilities:
        """Declared by the backend for the profile (nothing opened), as the executor will run it."""
        profile = load_backend_profile(self.backend)
        overrides = {k: self.options[k] for k in ("shots", "noise") if k in self.options}
        caps = profile_capabilities(dataclasses.replace(profile, **overrides))
        return dataclasses.replace(caps, differentiable=True) if self.parameter_shift else caps


EXECUTORS = [
    Case("statevector", "executor:statevector", affine_only=True),
    Case("statevector-unfused", "executor:statevector", {"fuse": False}, affine_only=True),
    Case("density", "executor:density", affine_only=True),
    Case("density-pauli", "executor:density", {"method": "pauli", "noise": NoiseConfig()}, affine_only=True),
    Case(
        "density-pauli-unfused",
        "executor:density",
        {"method": "pauli", "noise": NoiseConfig(), "fuse": False},
        affine_only=True,
    ),
    Case("aer", "executor:aer"),
    Case("aer-sampled", "executor:aer", {"shots": 20_000, "seed": 5}),
    Case("ibm-fake_manila", "fake_manila", {"shots": 4000, "seed": 3}),
    Case("parameter-shift-aer", "executor:aer", parameter_shift=True, affine_only=True),
]
EXACT = [c for c in EXECUTORS if not c.capabilities.shots and not c.capabilities.noisy]
SAMPLED = [c for c in EXECUTORS if c.capabilities.shots and not c.capabilities.noisy]
NOISY = [c for c in EXECUTORS if c.capabilities.noisy]
VALUES = EXACT + SAMPLED  # compared value by value with qiskit.quantum_info
DIFFERENTIABLE = [c for c in EXECUTORS if c.capabilities.differentiable]

_JOB_DIR: list[Any] = []


@pytest.fixture(autouse=True, scope="module")
def _job_dir(tmp_path_factory):
    """Where the device cases keep their jobs (local testing mode writes jobs.jsonl)."""
    _JOB_DIR.append(tmp_path_factory.mktemp("jobs"))
    yield
    _JOB_DIR.pop()


def make(case: Case) -> Executor:
    executor = open_backend(case.backend, job_dir=_JOB_DIR[-1] if _JOB_DIR else None, **case.options)
    return differentiable(executor) if case.parameter_shift else executor


def by_id(cases):
    return pytest.mark.parametrize("entry", cases, ids=[c.id for c in cases])


def assert_matches(case: Case, got: np.ndarray, reference: np.ndarray, readout: str = "probs") -> None:
    """``got`` [B, K] against the exact ``reference``, with the tolerance the capabilities imply."""
    caps = case.capabilities
    got, reference = np.asarray(got), np.asarray(reference)
    assert got.shape == reference.shape
    if caps.noisy:
        if readout == "probs":
            assert np.max(0.5 * np.abs(got - reference).sum(axis=-1)) < NOISY_TVD
        else:  # |sum_k s_k (p_k - q_k)| <= 2 TVD
            assert np.max(np.abs(got - reference)) < 2 * NOISY_TVD
    elif caps.shots:
        assert case.shots is not None
        sigma = (0.5 if readout == "probs" else 1.0) / math.sqrt(case.shots)
        assert np.max(np.abs(got - reference)) <= SIGMAS * sigma
    else:
        assert np.max(np.abs(got - reference)) < TOL


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These tensors are tiny: one thread is faster, and immune to OpenMP spin-waits when
    other processes hold the machine's cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_every_registered_executor_is_in_the_suite():
    assert set(executor_names()) <= {case.executor_name for case in EXECUTORS}
    assert {"aer", "ibm"} <= {c.executor_name for c in SAMPLED + NOISY} and any(
        c.parameter_shift for c in EXACT
    )


@by_id(EXECUTORS)
def test_declared_capabilities_are_the_opened_executors(entry):
    """What a backend declares for a profile (qdt backends list) is what its executor reports."""
    executor = make(entry)
    assert executor.capabilities == entry.capabilities
    assert executor.last_run_info == {}


# ----------------------------------------------------------------------------- random circuits

ONE_QUBIT_FIXED = ["h", "x", "y", "z", "s", "sdg", "sx", "t", "id"]
ONE_QUBIT_PARAM = ["rx", "ry", "rz", "p"]
TWO_QUBIT_FIXED = ["cx", "cz", "ecr", "swap"]
TWO_QUBIT_PARAM = ["rzz", "rxx", "crx", "cp"]


PAULI_TWO_QUBIT_PARAM = ["rzz", "rxx"]


def random_circuit(
    n_qubits: int, n_gates: int, seed: int, extras: bool = True, pauli_only: bool = False
) -> tuple[QuantumCircuit, ParameterVector, ParameterVector]:
    """Random circuit over the whole gate set; parameters are angles, weights, numbers and
    affine expressions (a·enc + b, enc + w, w/2 …). ``pauli_only``: parameterised gates are
    rotations about one Pauli string (what the parameter-shift rule differentiates)."""
    rng = np.random.default_rng(seed)
    angles = ParameterVector("a", 4)
    weights = ParameterVector("w", 3)

    def parameter():
        kind = rng.integers(6)
        a = angles[int(rng.integers(len(angles)))]
        w = weights[int(rng.integers(len(weights)))]
        if kind == 0:
            return float(rng.uniform(-4, 4))
        if kind == 1:
            return a
        if kind == 2:
            return w
        if kind == 3:
            return float(rng.uniform(-2, 2)) * a + float(rng.uniform(-1, 1))
        if kind == 4:
            return a + w - 0.25
        return w / 2 + math.pi / 2

    circuit = QuantumCircuit(n_qubits)
    for _ in range(n_gates):
        two = n_qubits > 1 and rng.random() < 0.4
        qubits = [int(q) for q in rng.choice(n_qubits, size=2 if two else 1, replace=False)]
        if two:
            two_param = PAULI_TWO_QUBIT_PARAM if pauli_only else TWO_QUBIT_PARAM
            name = str(rng.choice(TWO_QUBIT_FIXED + two_param))
        else:
            u = ["u"] if extras and not pauli_only else []
            name = str(rng.choice(ONE_QUBIT_FIXED + ONE_QUBIT_PARAM + u))
        method = getattr(circuit, name)
        if name == "u":
            method(parameter(), parameter(), parameter(), *qubits)
        elif name in ONE_QUBIT_PARAM + TWO_QUBIT_PARAM + PAULI_TWO_QUBIT_PARAM:
            method(parameter(), *qubits)
        else:
            method(*qubits)
        if extras and rng.random() < 0.1:
            circuit.barrier()
    if extras:
        circuit.append(GlobalPhaseGate(0.3), [])
    return circuit, angles, weights


def random_values(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    angles = torch.rand(batch, 4, generator=generator, dtype=torch.float64) * 8 - 4
    weights = torch.rand(3, generator=generator, dtype=torch.float64) * 8 - 4
    return angles, weights


def bind(circuit, angle_params, weight_params, angles_row, weights) -> QuantumCircuit:
    values = dict(zip(angle_params, [float(v) for v in angles_row]))
    values.update(zip(weight_params, [float(v) for v in weights]))
    return circuit.assign_parameters(values, strict=False)


def z_expectations(probs: np.ndarray) -> np.ndarray:
    bits = int(np.log2(probs.shape[-1]))
    k = np.arange(probs.shape[-1])
    signs = 1 - 2 * ((k[:, None] >> np.arange(bits)[None, :]) & 1)
    return probs @ signs


# ----------------------------------------------------------------------------- values


def _random_case(entry: Case, seed: int):
    n_qubits = 1 + seed % 5
    return random_circuit(n_qubits, 6 + 3 * n_qubits, seed, pauli_only=entry.parameter_shift)


@by_id(VALUES)
@pytest.mark.parametrize("seed", range(12))
def test_random_circuits_match_qiskit(entry, seed):
    circuit, angle_params, weight_params = _random_case(entry, seed)
    executor = make(entry)
    prepared = executor.prepare(circuit, angle_params, weight_params)
    angles, weights = random_values(3, seed)
    probs = executor.run(prepared, angles, weights).numpy()
    expval = executor.run(prepared, angles, weights, readout="expval_z").numpy()
    references = []
    for row in range(3):
        bound = bind(circuit, angle_params, weight_params, angles[row], weights)
        references.append(Statevector(bound).probabilities())
        if entry.executor_name == "density":
            reference_dm = DensityMatrix(bound).probabilities()
            assert np.max(np.abs(probs[row] - reference_dm)) < TOL
    assert_matches(entry, probs, np.stack(references))
    assert_matches(entry, expval, z_expectations(np.stack(references)), readout="expval_z")


@by_id(VALUES)
@pytest.mark.parametrize(("width", "layers"), [(1, 2), (2, 3), (4, 1), (4, 6), (5, 2), (16, 6)])
def test_paper_vqc_matches_qiskit(entry, width, layers):
    _paper_vqc_matches_qiskit(entry, width, layers)


@by_id(NOISY)
def test_paper_vqc_on_a_noisy_device_stays_close_to_qiskit(entry):
    _paper_vqc_matches_qiskit(entry, 4, 1)


def _paper_vqc_matches_qiskit(entry, width, layers):
    vqc = build_vqc(width, layers)
    executor = make(entry)
    prepared = executor.prepare_vqc(vqc)
    generator = torch.Generator().manual_seed(width * 10 + layers)
    x = torch.rand(4, width, generator=generator, dtype=torch.float64).round()
    x[0] = 0.0
    weights = torch.rand(vqc.n_weights, generator=generator, dtype=torch.float64) * 2 * math.pi
    angles = vqc.angles(x)
    probs = executor.run(prepared, angles, weights).numpy()
    reference = [
        Statevector(vqc.bound_circuit(angles[row].tolist(), weights.tolist())).probabilities()
        for row in range(4)
    ]
    assert probs.shape == (4, 2**vqc.n_qubits)
    assert_matches(entry, probs, np.stack(reference))


@pytest.mark.parametrize("cap", [2, 3])
def test_trees_wider_than_the_multiplex_cap_keep_their_upper_levels_as_gates(cap, monkeypatch):
    """On the generic program, levels whose multiplexed rotation would span more than
    MAX_MULTIPLEX_QUBITS qubits stay as RY/CNOT gates (memory of a multiplexed op grows as 8**k);
    the result must not change. (A final H makes the circuit more than the paper's VQC, so the
    product kernel leaves it to the generic program.)"""
    import qdt.sim.multiplex as multiplex

    monkeypatch.setattr(multiplex, "MAX_MULTIPLEX_QUBITS", cap)
    vqc = build_vqc(32, 2)  # 5 qubits: levels with up to 4 controls
    circuit = vqc.circuit.copy()
    circuit.h(0)
    executor = open_backend("statevector")
    prepared = executor.prepare(circuit, vqc.encoding_params, vqc.weight_params)
    assert _kernel_of(prepared) is None
    generator = torch.Generator().manual_seed(cap)
    x = torch.rand(3, 32, generator=generator, dtype=torch.float64)
    weights = torch.rand(vqc.n_weights, generator=generator, dtype=torch.float64) * 2 * math.pi
    angles = vqc.angles(x)
    probs = executor.run(prepared, angles, weights).numpy()
    for row in range(3):
        reference = Statevector(bind(circuit, vqc.encoding_params, vqc.weight_params, angles[row], weights))
        assert np.max(np.abs(probs[row] - reference.probabilities())) < TOL


# ----------------------------------------------------------------------------- every width
# The paper's circuit at every width the agents use (actor ⌈log2 N⌉, critic ⌈log2 2NM⌉ qubits:
# 1 … 12 for N·M up to 2048), on the kernels that run it, against qiskit to 1e-10. Few rows at
# large widths: qiskit's reference takes 2 s per 12-qubit row (8 000 gates).

LAYER_NOISE = {  # noise on the trainable layers only: the density kernel's case
    "depolarizing": NoiseConfig(
        depolarizing_1q=0.03, depolarizing_2q=0.07, phase_damping=0.04, noiseless_gates=("ry", "cx")
    ),
    "all-channels": NoiseConfig(
        depolarizing_1q=0.03,
        depolarizing_2q=0.07,
        amplitude_damping=0.05,
        phase_damping=0.04,
        readout=(readout_matrix(0.02, 0.05),),
        noiseless_gates=("ry", "cx"),
    ),
}


def _width_inputs(vqc, rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(rows, vqc.input_width, generator=generator, dtype=torch.float64)
    x[0] = x[0].round()  # a binary row: zero subtrees in the encoding
    weights = torch.rand(vqc.n_weights, generator=generator, dtype=torch.float64) * 2 * math.pi
    return vqc.angles(x), weights


@pytest.mark.parametrize("n", range(1, 13))
def test_statevector_runs_the_paper_circuit_at_every_width(n):
    from qdt.sim.kernels.product import ProductKernel

    vqc = build_vqc(2**n, 2)
    executor = open_backend("statevector")
    prepared = executor.prepare_vqc(vqc)
    assert isinstance(prepared.payload, ProductKernel)
    angles, weights = _width_inputs(vqc, 2 if n <= 10 else 1, seed=n)
    probs = executor.run(prepared, angles, weights).numpy()
    expval = executor.run(prepared, angles, weights, readout="expval_z").numpy()
    reference = np.stack(
        [Statevector(vqc.bound_circuit(row.tolist(), weights.tolist())).probabilities() for row in angles]
    )
    assert np.max(np.abs(probs - reference)) < TOL
    assert np.max(np.abs(expval - z_expectations(reference))) < TOL


@pytest.mark.parametrize("noise", list(LAYER_NOISE), ids=list(LAYER_NOISE))
@pytest.mark.parametrize("n", range(1, 10))
def test_density_runs_the_paper_circuit_with_layer_noise_at_every_width(n, noise):
    """Noise on the trainable layers (noiseless_gates ry, cx) to the density kernel's limit, against
    qiskit's DensityMatrix with qiskit-aer's channels, readout error included."""
    from qdt.sim.kernels.product_density import MAX_QUBITS, DensityKernel

    assert n <= MAX_QUBITS
    config = LAYER_NOISE[noise]
    vqc = build_vqc(2**n, 2 if n <= 7 else 1)
    executor = open_backend("executor:density", noise=config)
    prepared = executor.prepare_vqc(vqc)
    assert isinstance(prepared.payload[0], DensityKernel)
    angles, weights = _width_inputs(vqc, 2 if n <= 6 else 1, seed=10 + n)
    probs = executor.run(prepared, angles, weights).numpy()
    for row in range(angles.shape[0]):
        bound = vqc.bound_circuit(angles[row].tolist(), weights.tolist())
        assert np.max(np.abs(probs[row] - reference_noisy_probabilities(bound, config))) < TOL


@pytest.mark.parametrize("noise", list(LAYER_NOISE), ids=list(LAYER_NOISE))
def test_density_kernel_reads_any_readout_qubits(noise):
    config = dataclasses.replace(LAYER_NOISE[noise], readout=())
    vqc = build_vqc(16, 2)
    executor = open_backend("executor:density", noise=config)
    prepared = executor.prepare(vqc.circuit, vqc.encoding_params, vqc.weight_params, readout_qubits=[3, 0])
    angles, weights = _width_inputs(vqc, 2, seed=4)
    probs = executor.run(prepared, angles, weights).numpy()
    for row in range(2):
        bound = vqc.bound_circuit(angles[row].tolist(), weights.tolist())
        full = reference_noisy_probabilities(bound, config).reshape([2] * 4)  # axes: qubits 3 2 1 0
        expected = full.sum(axis=(1, 2)).T.reshape(-1)  # bit 0 = qubit 3, bit 1 = qubit 0
        assert np.max(np.abs(probs[row] - expected)) < TOL


# ----------------------------------------------------------------------------- widths refused


def _must_not_build(monkeypatch, *targets: tuple[object, str]) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("built state-sized tables for a refused width")

    for module, name in targets:
        monkeypatch.setattr(module, name, fail)


def test_density_refuses_layer_noise_past_its_limit_before_building(monkeypatch):
    import qdt.sim.kernels.product_density as product_density

    _must_not_build(monkeypatch, (product_density, "density_kernel"))
    n = product_density.MAX_QUBITS + 1
    executor = open_backend("executor:density", noise=LAYER_NOISE["depolarizing"])
    with pytest.raises(QdtInputError) as info:
        executor.prepare_vqc(build_vqc(2**n, 6))
    message = str(info.value)
    assert info.value.field == "circuit" and f"{n} qubits" in message
    assert f"at most {product_density.MAX_QUBITS} qubits" in message
    assert "GiB" in message and "statevector" in message and "aer" in message


def test_density_refuses_noise_on_every_gate_past_its_memory_limit_before_building(monkeypatch):
    """Noise on the encoding tree too: the generic program's B·8**n cost; the paper's circuit runs
    to 6 qubits and is refused at 7, naming the memory and the ways out."""
    import qdt.executors.density as density
    from qdt.sim.gates import compile_circuit

    noise = NoiseConfig(depolarizing_1q=1e-3, depolarizing_2q=1e-2)
    executor = open_backend("executor:density", noise=noise)
    six = build_vqc(2**6, 6)
    compiled = compile_circuit(six.circuit, six.encoding_params, six.weight_params, tuple(range(6)), 20)
    assert density.generic_memory_bytes(compiled) <= density.GENERIC_MEMORY_LIMIT
    _must_not_build(monkeypatch, (density, "build_program"))
    with pytest.raises(QdtInputError) as info:
        executor.prepare_vqc(build_vqc(2**7, 6))
    message = str(info.value)
    assert info.value.field == "circuit" and "7 qubits" in message and "GiB" in message
    assert "noiseless_gates" in message and "statevector" in message and "aer" in message


def test_statevector_refuses_past_twenty_qubits_naming_the_memory():
    wide = QuantumCircuit(21)
    wide.h(range(21))
    with pytest.raises(QdtInputError) as info:
        open_backend("statevector").prepare(wide, [], [])
    message = str(info.value)
    assert "21 qubits" in message and "at most 20" in message and "GiB" in message and "aer" in message
    capped = open_backend("executor:statevector", max_qubits=5)
    with pytest.raises(QdtInputError, match="6 qubits"):
        capped.prepare_vqc(build_vqc(64, 1))
    with pytest.raises(QdtInputError, match="max_qubits"):
        open_backend("executor:statevector", max_qubits=21)


@pytest.mark.peers
@pytest.mark.skipif(
    importlib.util.find_spec("pennylane_qiskit") is None,
    reason="needs pennylane-qiskit (qml.from_qiskit), which caps qiskit at 2.3.0: it runs in .venv-peers "
    "(./install.sh --peers; .ci/run runs it there)",
)
def test_paper_vqc_matches_pennylane():
    """The same bound circuit through qml.from_qiskit on default.qubit (wire 0 is PennyLane's
    most significant bit, qiskit's least significant: reverse the bit order)."""
    import pennylane as qml

    vqc = build_vqc(16, 3)
    executor = open_backend("statevector")
    prepared = executor.prepare_vqc(vqc)
    x = torch.tensor([[1.0, 0.0] * 8, [0.0] * 16], dtype=torch.float64)
    weights = torch.linspace(0.2, 2.9, vqc.n_weights, dtype=torch.float64)
    angles = vqc.angles(x)
    probs = executor.run(prepared, angles, weights).numpy()
    device = qml.device("default.qubit", wires=vqc.n_qubits)
    for row in range(2):
        bound = vqc.bound_circuit(angles[row].tolist(), weights.tolist())
        template = qml.from_qiskit(bound)

        @qml.qnode(device)
        def circuit(template=template):
            template(wires=range(vqc.n_qubits))
            return qml.probs(wires=range(vqc.n_qubits))

        pennylane = np.asarray(circuit()).reshape([2] * vqc.n_qubits)
        little_endian = pennylane.transpose(list(reversed(range(vqc.n_qubits)))).reshape(-1)
        assert np.max(np.abs(probs[row] - little_endian)) < TOL


def _generic_backend(basis):
    return lambda: GenericBackendV2(6, basis_gates=basis, seed=11)


def _fake_brisbane():
    from qiskit_ibm_runtime import fake_provider

    return fake_provider.FakeBrisbane()


@by_id(VALUES)
@pytest.mark.parametrize(
    ("backend", "layout", "optimization"),
    [
        (_generic_backend(["rz", "sx", "x", "ecr"]), None, 1),
        (_generic_backend(["rz", "sx", "x", "cz"]), [5, 2, 0, 3], 1),
        (_fake_brisbane, None, 3),
    ],
    ids=["generic6-ecr", "generic6-cz-layout", "fake-brisbane-127"],
)
def test_transpiled_vqc_gives_the_logical_marginals(entry, backend, layout, optimization):
    """The VQC transpiled for an IBM-style device (rz, sx, x, ecr/cz on 6 or 127 qubits): the
    executor simulates only the used qubits, reads the logical ones through the layout and
    matches the logical circuit."""
    vqc = build_vqc(16, 2)
    device = backend()
    isa = transpile(
        vqc.circuit, device, initial_layout=layout, optimization_level=optimization, seed_transpiler=5
    )
    assert isa.num_qubits == device.num_qubits >= 6
    assert set(isa.count_ops()) <= {"rz", "sx", "x", "ecr", "cz", "barrier"}
    executor = make(entry)
    prepared = executor.prepare(isa, vqc.encoding_params, vqc.weight_params)
    assert prepared.readout_qubits == tuple(isa.layout.final_index_layout())
    if layout is not None:
        assert prepared.readout_qubits == tuple(layout)
    x = torch.tensor([[1.0, 0.0, 0.0, 1.0] * 4, [0.0] * 16], dtype=torch.float64)
    weights = torch.linspace(-1.0, 2.5, vqc.n_weights, dtype=torch.float64)
    angles = vqc.angles(x)
    probs = executor.run(prepared, angles, weights).numpy()
    reference = [
        Statevector(vqc.bound_circuit(angles[row].tolist(), weights.tolist())).probabilities()
        for row in range(2)
    ]
    assert_matches(entry, probs, np.stack(reference))


@by_id(VALUES)
def test_explicit_readout_qubits_reorder_and_marginalise(entry):
    circuit, angle_params, weight_params = random_circuit(4, 14, seed=99, pauli_only=entry.parameter_shift)
    executor = make(entry)
    prepared = executor.prepare(circuit, angle_params, weight_params, readout_qubits=[2, 0])
    angles, weights = random_values(2, 7)
    probs = executor.run(prepared, angles, weights).numpy()
    reference = [
        Statevector(bind(circuit, angle_params, weight_params, angles[row], weights)).probabilities([2, 0])
        for row in range(2)
    ]
    assert_matches(entry, probs, np.stack(reference))


@by_id(EXECUTORS)
def test_run_many_gives_each_circuit_its_own_batch(entry):
    """Several circuits in one call (one job on a device): one output per item, in order."""
    executor = make(entry)
    small, large = build_vqc(4, 1), build_vqc(4, 2)
    items, references = [], []
    for vqc, rows in ((small, 2), (large, 3)):
        x = torch.rand(rows, 4, generator=torch.Generator().manual_seed(rows), dtype=torch.float64)
        weights = torch.linspace(0.2, 2.0, vqc.n_weights, dtype=torch.float64)
        angles = vqc.angles(x)
        items.append((executor.prepare_vqc(vqc), angles, weights))
        references.append(
            np.stack(
                [Statevector(vqc.bound_circuit(a.tolist(), weights.tolist())).probabilities() for a in angles]
            )
        )
    outputs = executor.run_many(items)
    assert [tuple(o.shape) for o in outputs] == [(2, 4), (3, 4)]
    for output, reference in zip(outputs, references):
        assert_matches(entry, output.numpy(), reference)
    report = executor.isa_report(items[0][0])
    assert report is None or {"device", "depth", "two_qubit_gates"} <= set(report)
    assert (report is not None) == (entry.executor_name == "ibm")
    with pytest.raises(QdtInputError, match="items"):
        executor.run_many([])


# ----------------------------------------------------------------------------- gradients


@by_id(DIFFERENTIABLE)
def test_gradients_match_finite_differences(entry):
    """gradcheck wrt the weights and the raw inputs (through the input → angles map)."""
    executor = make(entry)
    vqc = build_vqc(5, 2)
    prepared = executor.prepare_vqc(vqc)
    generator = torch.Generator().manual_seed(1)
    x = (torch.rand(3, 5, generator=generator, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    weights = torch.rand(vqc.n_weights, generator=generator, dtype=torch.float64).requires_grad_()
    for readout in ("probs", "expval_z"):

        def f(x, w, readout=readout):
            return executor.run(prepared, vqc.angles(x), w, readout=readout)

        assert torch.autograd.gradcheck(f, (x, weights), eps=1e-6, atol=1e-7)


@by_id(DIFFERENTIABLE)
def test_gradients_on_random_circuits_with_affine_parameters(entry):
    executor = make(entry)
    circuit, angle_params, weight_params = random_circuit(3, 14, seed=5, pauli_only=entry.parameter_shift)
    prepared = executor.prepare(circuit, angle_params, weight_params)
    angles, weights = random_values(2, 5)
    angles.requires_grad_()
    weights.requires_grad_()

    def f(a, w):
        return executor.run(prepared, a, w, readout="expval_z")

    assert torch.autograd.gradcheck(f, (angles, weights), eps=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- fast kernels
# The paper's circuits run through specialised kernels with hand-written backward passes: the
# product kernel (statevector), the density kernel (noise on the layers) and, for noise on every
# gate up to 5 qubits, the fused Pauli kernel (qdt/sim/kernels/); fuse=False runs the generic
# program. Both must agree, and the kernels' gradients must match finite differences.

KERNEL_NOISE = [
    None,
    NoiseConfig(depolarizing_1q=1e-3, depolarizing_2q=1e-2),
    NoiseConfig(depolarizing_1q=0.03, depolarizing_2q=0.07, amplitude_damping=0.05, phase_damping=0.04),
    LAYER_NOISE["depolarizing"],
    dataclasses.replace(LAYER_NOISE["all-channels"], readout=()),
]
KERNEL_NOISE_IDS = [
    "statevector",
    "depolarizing",
    "all-channels",
    "layers-depolarizing",
    "layers-all-channels",
]


def _kernel_executors(noise):
    if noise is None:
        return open_backend("statevector"), open_backend("executor:statevector", fuse=False)
    return (
        open_backend("executor:density", noise=noise, method="pauli"),
        open_backend("executor:density", noise=noise, method="pauli", fuse=False),
    )


def _kernel_of(prepared):
    """The specialised kernel a prepared circuit runs on, or None for the generic program."""
    payload = prepared.payload[0] if isinstance(prepared.payload, tuple) else prepared.payload
    return payload.kernel if isinstance(payload, Program) else payload


@pytest.mark.parametrize("noise", KERNEL_NOISE, ids=KERNEL_NOISE_IDS)
@pytest.mark.parametrize(
    ("width", "layers"), [(1, 0), (1, 2), (2, 3), (4, 1), (4, 6), (5, 2), (16, 6), (32, 1)]
)
def test_kernels_run_the_paper_circuits_and_agree_with_the_generic_program(noise, width, layers):
    fast, generic = _kernel_executors(noise)
    vqc = build_vqc(width, layers)
    prepared_fast, prepared_generic = fast.prepare_vqc(vqc), generic.prepare_vqc(vqc)
    assert _kernel_of(prepared_fast) is not None
    assert _kernel_of(prepared_generic) is None
    generator = torch.Generator().manual_seed(width * 7 + layers)
    x = torch.cat(
        [
            torch.rand(4, width, generator=generator, dtype=torch.float64).round(),
            torch.zeros(1, width, dtype=torch.float64),
            torch.rand(2, width, generator=generator, dtype=torch.float64) * 2 - 0.5,
        ]
    ).requires_grad_()
    weights = (torch.rand(vqc.n_weights, generator=generator, dtype=torch.float64) * 7 - 3).requires_grad_()
    for readout in ("probs", "expval_z"):
        a = fast.run(prepared_fast, vqc.angles(x), weights, readout=readout)
        b = generic.run(prepared_generic, vqc.angles(x), weights, readout=readout)
        assert (a - b).abs().max() < 1e-12
        g = torch.randn(a.shape, generator=generator, dtype=torch.float64)
        grads_a = torch.autograd.grad((a * g).sum(), (x, weights), allow_unused=True)
        grads_b = torch.autograd.grad((b * g).sum(), (x, weights), allow_unused=True)
        for u, v in zip(grads_a, grads_b):
            assert (u is None) == (v is None)
            if u is not None:
                assert (u - v).abs().max() < 1e-11


@pytest.mark.parametrize("noise", KERNEL_NOISE, ids=KERNEL_NOISE_IDS)
@pytest.mark.parametrize(("width", "layers"), [(2, 2), (4, 1), (8, 2)])
def test_kernel_backward_passes_match_finite_differences(noise, width, layers):
    """gradcheck of the hand-written backward passes, w.r.t. the angles and the weights."""
    fast, _ = _kernel_executors(noise)
    vqc = build_vqc(width, layers)
    prepared = fast.prepare_vqc(vqc)
    assert _kernel_of(prepared) is not None
    generator = torch.Generator().manual_seed(width + layers)
    x = torch.rand(3, width, generator=generator, dtype=torch.float64) * 0.8 + 0.1
    angles = vqc.angles(x).detach().requires_grad_()
    weights = (torch.rand(vqc.n_weights, generator=generator, dtype=torch.float64) * 6).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, w: fast.run(prepared, a, w), (angles, weights), eps=1e-6, atol=1e-8
    )


def _tree_circuit_with_weighted_prefix() -> tuple[QuantumCircuit, ParameterVector, ParameterVector]:
    """A rotation tree whose angles mix encoding parameters and weights, a marginal readout,
    constant gates between layers and a phase gate (complex) in the suffix."""
    a = ParameterVector("a", 3)
    w = ParameterVector("w", 4)
    circuit = QuantumCircuit(3)
    circuit.ry(a[0] + w[0], 2)
    circuit.ry(0.5 * a[1] - 0.3, 1)
    circuit.cx(2, 1)
    circuit.ry(a[2], 1)
    circuit.cx(2, 1)
    circuit.ry(a[1] + a[2], 0)
    circuit.rx(w[1], 0)
    circuit.p(w[2] / 2 + 0.1, 1)
    circuit.h(2)
    circuit.cz(0, 2)
    circuit.rz(w[3], 2)
    circuit.swap(0, 1)
    return circuit, a, w


@pytest.mark.parametrize("noise", KERNEL_NOISE[:3], ids=KERNEL_NOISE_IDS[:3])
def test_general_trees_marginals_and_weighted_prefixes(noise):
    """Not the paper's circuit: the statevector runs it on the generic program; the density
    executor's fused Pauli kernel takes such trees (noise on every gate)."""
    fast, generic = _kernel_executors(noise)
    circuit, a, w = _tree_circuit_with_weighted_prefix()
    prepared = fast.prepare(circuit, a, w, readout_qubits=[2, 0])
    reference = generic.prepare(circuit, a, w, readout_qubits=[2, 0])
    assert (_kernel_of(prepared) is None) == (noise is None)
    generator = torch.Generator().manual_seed(11)
    angles = (torch.rand(4, 3, generator=generator, dtype=torch.float64) * 6 - 3).requires_grad_()
    weights = (torch.rand(4, generator=generator, dtype=torch.float64) * 6 - 3).requires_grad_()
    probs = fast.run(prepared, angles, weights)
    assert (probs - generic.run(reference, angles, weights)).abs().max() < 1e-12
    for row in range(4):
        bound = bind(circuit, a, w, angles[row].detach(), weights.detach())
        if noise is None:
            expected = Statevector(bound).probabilities([2, 0])
            assert np.max(np.abs(probs[row].detach().numpy() - expected)) < TOL
    assert torch.autograd.gradcheck(
        lambda x, y: fast.run(prepared, x, y), (angles, weights), eps=1e-6, atol=1e-8
    )


@pytest.mark.parametrize(
    "noise",
    [KERNEL_NOISE[0], KERNEL_NOISE[1], KERNEL_NOISE[3]],
    ids=["statevector", "depolarizing", "layers"],
)
def test_kernels_give_only_the_gradients_asked_for(noise):
    fast, generic = _kernel_executors(noise)
    vqc = build_vqc(8, 2)
    prepared, reference = fast.prepare_vqc(vqc), generic.prepare_vqc(vqc)
    angles = vqc.angles(torch.rand(5, 8, dtype=torch.float64))
    weights = torch.rand(vqc.n_weights, dtype=torch.float64)
    for need_angles, need_weights in [(True, False), (False, True), (False, False)]:
        a = angles.clone().requires_grad_(need_angles)
        w = weights.clone().requires_grad_(need_weights)
        out = fast.run(prepared, a, w)
        assert out.requires_grad == (need_angles or need_weights)
        if not out.requires_grad:
            continue
        wanted = [t for t in (a, w) if t.requires_grad]
        got = torch.autograd.grad(out.sum() + (out[:, 0] ** 2).sum(), wanted)
        a2, w2 = angles.clone().requires_grad_(need_angles), weights.clone().requires_grad_(need_weights)
        ref = generic.run(reference, a2, w2)
        expected = torch.autograd.grad(
            ref.sum() + (ref[:, 0] ** 2).sum(), [t for t in (a2, w2) if t.requires_grad]
        )
        for u, v in zip(got, expected):
            assert (u - v).abs().max() < 1e-12


def test_transpiled_and_parameterised_two_qubit_suffixes_use_the_generic_program():
    """Shapes the kernels do not cover still run (generic program), and correctly."""
    a = ParameterVector("a", 1)
    w = ParameterVector("w", 1)
    circuit = QuantumCircuit(2)
    circuit.ry(a[0], 0)
    circuit.cx(0, 1)
    circuit.rzz(w[0], 0, 1)  # parameterised two-qubit gate in the shared suffix
    for executor in (open_backend("statevector"), open_backend("executor:density", method="pauli")):
        prepared = executor.prepare(circuit, a, w)
        assert _kernel_of(prepared) is None
        probs = executor.run(prepared, torch.tensor([[0.7]], dtype=torch.float64), torch.tensor([0.4]))
        expected = Statevector(bind(circuit, a, w, [0.7], [0.4])).probabilities()
        assert np.max(np.abs(probs[0].numpy() - expected)) < TOL


# ----------------------------------------------------------------------------- bad input

BAD_RUNS = [
    ("nan angle", lambda a, w: (a.index_fill_(1, torch.tensor([2]), float("nan")), w), "angles"),
    ("inf angle", lambda a, w: (a.index_fill_(1, torch.tensor([0]), float("inf")), w), "angles"),
    ("nan weight", lambda a, w: (a, w.index_fill_(0, torch.tensor([3]), float("nan"))), "weights"),
    ("-inf weight", lambda a, w: (a, w.index_fill_(0, torch.tensor([0]), -float("inf"))), "weights"),
    ("short weights", lambda a, w: (a, w[:-1]), "weights"),
    ("2-D weights", lambda a, w: (a, w[None]), "weights"),
    ("narrow angles", lambda a, w: (a[:, :-1], w), "angles"),
    ("1-D angles", lambda a, w: (a[0], w), "angles"),
    ("3-D angles", lambda a, w: (a[None], w), "angles"),
    ("empty batch", lambda a, w: (a[:0], w), "angles"),
    ("complex angles", lambda a, w: (a.to(torch.complex128), w), "angles"),
]


@pytest.mark.parametrize(("label", "corrupt", "field"), BAD_RUNS, ids=[b[0] for b in BAD_RUNS])
def test_bad_input_raises_the_same_error_before_simulation(label, corrupt, field, monkeypatch):
    vqc = build_vqc(4, 3)
    messages = set()
    for entry in EXECUTORS:
        executor = make(entry)
        prepared = executor.prepare_vqc(vqc)

        def must_not_run(*args, **kwargs):
            raise AssertionError("simulated despite bad input")

        monkeypatch.setattr(executor, "_run", must_not_run)
        angles = vqc.angles(torch.ones(2, 4, dtype=torch.float64)).detach().clone()
        weights = torch.ones(vqc.n_weights, dtype=torch.float64)
        bad_angles, bad_weights = corrupt(angles, weights)
        with pytest.raises(QdtInputError) as info:
            executor.run(prepared, bad_angles, bad_weights)
        assert info.value.field == field
        messages.add(str(info.value))
    assert len(messages) == 1


def test_finiteness_check_names_the_first_bad_entry_and_passes_sums_that_overflow():
    """validate_angles/validate_weights sum first (one reduction) and look element-wise only when the
    sum is not finite: finite values whose sum overflows pass, a NaN is reported where it is."""
    from qdt.executors.base import validate_angles, validate_weights

    huge = torch.full((3, 4), 1e308, dtype=torch.float64)
    assert not torch.isfinite(huge.sum())
    assert validate_angles(huge, 4) is not None
    assert validate_weights(torch.tensor([1e308, 1e308, -1.0], dtype=torch.float64), 3) is not None
    bad = huge.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(QdtInputError, match="row 2, column 1"):
        validate_angles(bad, 4)
    with pytest.raises(QdtInputError, match="inf at index 1"):
        validate_weights(torch.tensor([0.0, float("inf"), 0.0], dtype=torch.float64), 3)


@by_id(EXECUTORS)
def test_bad_readout_and_foreign_prepared_circuits(entry):
    vqc = build_vqc(4, 1)
    executor = make(entry)
    prepared = executor.prepare_vqc(vqc)
    angles = vqc.angles(torch.zeros(1, 4, dtype=torch.float64))
    weights = torch.zeros(vqc.n_weights, dtype=torch.float64)
    with pytest.raises(QdtInputError, match="readout"):
        executor.run(prepared, angles, weights, readout="counts")
    other = make(entry)
    with pytest.raises(QdtInputError, match="prepared"):
        other.run(prepared, angles, weights)


@by_id(EXECUTORS)
def test_prepare_rejects_what_it_cannot_run(entry):
    executor = make(entry)
    a = ParameterVector("a", 2)
    loose = QuantumCircuit(2)
    loose.rx(a[0], 0)
    loose.ry(a[1], 1)
    with pytest.raises(QdtInputError, match="unlisted parameters"):
        executor.prepare(loose, [a[0]], [])
    if entry.affine_only:  # aer and devices bind any expression; these evaluate affine ones
        nonlinear = QuantumCircuit(1)
        nonlinear.rx(a[0] * a[1], 0)
        with pytest.raises(QdtInputError, match="affine"):
            executor.prepare(nonlinear, list(a), [])
    mid = QuantumCircuit(1, 1)
    mid.h(0)
    mid.measure(0, 0)
    mid.x(0)
    with pytest.raises(QdtInputError, match="measurements only at the end"):
        executor.prepare(mid, [], [])
    reset = QuantumCircuit(1)
    reset.reset(0)
    with pytest.raises(QdtInputError, match="reset"):
        executor.prepare(reset, [], [])
    with pytest.raises(QdtInputError, match="readout_qubits"):
        executor.prepare(loose, list(a), [], readout_qubits=[0, 2])
    with pytest.raises(QdtInputError, match="not also encoding angles"):
        executor.prepare(loose, list(a), [a[0]])


@by_id(EXECUTORS)
def test_final_measurements_are_ignored_for_the_readout(entry):
    circuit = QuantumCircuit(2, 2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure([0, 1], [0, 1])
    executor = make(entry)
    prepared = executor.prepare(circuit, [], [])
    probs = executor.run(prepared, torch.zeros(1, 0), torch.zeros(0))
    assert_matches(entry, probs.numpy(), np.array([[0.5, 0.0, 0.0, 0.5]]))


def test_registry_names_and_errors():
    assert {"statevector", "density", "aer", "ibm"} <= set(executor_names())
    with pytest.raises(QdtInputError) as info:
        open_backend("executor:qpu")
    assert "'density'" in str(info.value) and "'statevector'" in str(info.value)
    with pytest.raises(QdtInputError) as info:
        open_backend("qpu")
    assert info.value.field == "backend"
    assert "executor:<name> (aer, density, ibm, statevector)" in str(info.value)
    with pytest.raises(QdtInputError, match="options: fuse, job_dir, max_qubits, seed"):
        open_backend("executor:statevector", shots=100)
    exact = open_backend("statevector").capabilities
    assert (exact.differentiable, exact.shots, exact.noisy, exact.remote) == (True, False, False, False)


# ----------------------------------------------------------------------------- noise

NOISE = NoiseConfig(
    depolarizing_1q=0.03,
    depolarizing_2q=0.07,
    amplitude_damping=0.05,
    phase_damping=0.04,
    readout=(readout_matrix(0.02, 0.05), readout_matrix(0.01, 0.03), readout_matrix(0.04, 0.0)),
)


def reference_noisy_probabilities(bound: QuantumCircuit, noise: NoiseConfig) -> np.ndarray:
    """DensityMatrix evolved gate by gate with the same channels built from qiskit_aer.noise (a
    Statevector until the first noisy gate: the same state, 4**n times cheaper)."""
    one = (
        depolarizing_error(noise.depolarizing_1q, 1)
        .compose(amplitude_damping_error(noise.amplitude_damping))
        .compose(phase_damping_error(noise.phase_damping))
        .to_quantumchannel()
    )
    local = amplitude_damping_error(noise.amplitude_damping).compose(phase_damping_error(noise.phase_damping))
    two = depolarizing_error(noise.depolarizing_2q, 2).compose(local.tensor(local))
    two = two.to_quantumchannel()
    state: Statevector | DensityMatrix = Statevector.from_label("0" * bound.num_qubits)  # pure until noise
    for instruction in bound.data:
        op = instruction.operation
        if op.name in ("barrier", "measure") or op.num_qubits == 0:
            continue
        qubits = [bound.find_bit(q).index for q in instruction.qubits]
        state = state.evolve(op, qubits)
        if op.name not in noise.noiseless_gates:
            state = DensityMatrix(state).evolve(one if len(qubits) == 1 else two, qubits)
    probs = state.probabilities()
    if not noise.readout:
        return probs
    assignment = np.ones((1, 1))
    readout = noise.readout * bound.num_qubits if len(noise.readout) == 1 else noise.readout
    for matrix in readout:
        assignment = np.kron(ReadoutError(matrix).probabilities, assignment)
    return probs @ assignment


@pytest.mark.parametrize("seed", range(6))
def test_noisy_random_circuits_match_density_matrix_with_aer_channels(seed):
    circuit, angle_params, weight_params = random_circuit(3, 14, seed, extras=False)
    executor = open_backend("executor:density", noise=NOISE)
    prepared = executor.prepare(circuit, angle_params, weight_params)
    angles, weights = random_values(2, seed)
    probs = executor.run(prepared, angles, weights).numpy()
    for row in range(2):
        bound = bind(circuit, angle_params, weight_params, angles[row], weights)
        reference = reference_noisy_probabilities(bound, NOISE)
        assert np.max(np.abs(probs[row] - reference)) < TOL


def test_noisy_vqc_matches_aer_density_matrix_simulator():
    """The noise model built the way a qiskit-aer executor would builds it, run by Aer."""
    import qiskit_aer as aer
    from qiskit_aer.noise import NoiseModel

    noise = NoiseConfig(
        depolarizing_1q=0.02,
        depolarizing_2q=0.05,
        amplitude_damping=0.03,
        phase_damping=0.01,
        noiseless_gates=("rz",),
    )
    vqc = build_vqc(8, 2)
    isa = transpile(vqc.circuit, basis_gates=["rz", "sx", "x", "cx", "cz"], optimization_level=0)
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    weights = torch.linspace(0.3, 1.7, vqc.n_weights, dtype=torch.float64)
    angles = vqc.angles(x)
    executor = open_backend("executor:density", noise=noise)
    probs = executor.run(executor.prepare(isa, vqc.encoding_params, vqc.weight_params), angles, weights)
    local = amplitude_damping_error(0.03).compose(phase_damping_error(0.01))
    model = NoiseModel(basis_gates=["rz", "sx", "x", "cx", "cz"])
    model.add_all_qubit_quantum_error(depolarizing_error(0.02, 1).compose(local), ["sx", "x"])
    model.add_all_qubit_quantum_error(depolarizing_error(0.05, 2).compose(local.tensor(local)), ["cx", "cz"])
    bound = bind(isa, vqc.encoding_params, vqc.weight_params, angles[0], weights)
    bound.save_probabilities()
    simulator = aer.AerSimulator(method="density_matrix", noise_model=model)
    result = simulator.run(transpile(bound, simulator, optimization_level=0)).result()
    reference = np.asarray(result.data()["probabilities"])
    assert np.max(np.abs(probs[0].numpy() - reference)) < 1e-9


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
def test_depolarizing_after_x_uses_aer_parameterisation(p):
    """E(ρ) = (1 − p)ρ + p·I/2: after X, P(1) = 1 − p/2 (= 1 − 2q/3 with q = 3p/4)."""
    circuit = QuantumCircuit(1)
    circuit.x(0)
    executor = open_backend("executor:density", noise=NoiseConfig(depolarizing_1q=p))
    probs = executor.run(executor.prepare(circuit, [], []), torch.zeros(1, 0), torch.zeros(0))
    assert probs[0, 1].item() == pytest.approx(1 - p / 2, abs=1e-14)
    aer_state = DensityMatrix.from_label("1").evolve(depolarizing_error(p, 1).to_quantumchannel())
    assert probs[0, 1].item() == pytest.approx(aer_state.probabilities()[1], abs=1e-14)


def test_amplitude_and_phase_damping_analytic():
    circuit = QuantumCircuit(1)
    circuit.x(0)
    executor = open_backend("executor:density", noise=NoiseConfig(amplitude_damping=0.3))
    probs = executor.run(executor.prepare(circuit, [], []), torch.zeros(1, 0), torch.zeros(0))
    assert probs[0, 1].item() == pytest.approx(0.7, abs=1e-14)
    ramsey = QuantumCircuit(1)
    ramsey.h(0)
    ramsey.h(0)
    lam = 0.36
    executor = open_backend("executor:density", noise=NoiseConfig(phase_damping=lam), seed=None)
    probs = executor.run(executor.prepare(ramsey, [], []), torch.zeros(1, 0), torch.zeros(0))
    # Dephasing after the first H shrinks the coherence by √(1 − λ); the second H's own
    # dephasing acts on a diagonal state and changes nothing.
    assert probs[0, 0].item() == pytest.approx((1 + math.sqrt(1 - lam)) / 2, abs=1e-14)


def test_readout_error_alone_multiplies_the_assignment_matrix():
    circuit = QuantumCircuit(2)
    circuit.x(0)
    noise = NoiseConfig(readout=(readout_matrix(0.1, 0.2),))
    executor = open_backend("executor:density", noise=noise)
    assert executor.capabilities.noisy
    probs = executor.run(executor.prepare(circuit, [], []), torch.zeros(1, 0), torch.zeros(0))
    # qubit 0 is |1⟩ (recorded 0 w.p. 0.2), qubit 1 is |0⟩ (recorded 1 w.p. 0.1)
    expected = np.kron([0.9, 0.1], [0.2, 0.8])
    assert np.allclose(probs[0].numpy(), expected, atol=1e-14)


def test_noisy_gradients_match_finite_differences():
    executor = open_backend("executor:density", noise=NOISE)
    vqc = build_vqc(5, 1)
    prepared = executor.prepare_vqc(vqc)
    generator = torch.Generator().manual_seed(2)
    x = (torch.rand(2, 5, generator=generator, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    weights = torch.rand(vqc.n_weights, generator=generator, dtype=torch.float64).requires_grad_()

    def f(x, w):
        return executor.run(prepared, vqc.angles(x), w)

    assert torch.autograd.gradcheck(f, (x, weights), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"depolarizing_1q": 1.5}, "noise.depolarizing_1q"),
        ({"depolarizing_2q": -0.1}, "noise.depolarizing_2q"),
        ({"amplitude_damping": float("nan")}, "noise.amplitude_damping"),
        ({"phase_damping": "0.1"}, "noise.phase_damping"),
        ({"readout": (((0.9, 0.2), (0.1, 0.9)),)}, "noise.readout[0]"),
        ({"readout": (((0.9, 0.1, 0.0), (0.1, 0.9, 0.0)),)}, "noise.readout[0]"),
        ({"readout": (((1.1, -0.1), (0.0, 1.0)),)}, "noise.readout[0]"),
        ({"noiseless_gates": "rz"}, "noise.noiseless_gates"),
    ],
)
def test_noise_config_validation_names_the_field(kwargs, field):
    with pytest.raises(QdtInputError) as info:
        NoiseConfig(**kwargs)
    assert info.value.field == field


def test_readout_matrices_must_fit_the_readout_bits():
    executor = open_backend("executor:density", noise=NoiseConfig(readout=(readout_matrix(0.1, 0.1),) * 2))
    with pytest.raises(QdtInputError, match="noise.readout"):
        executor.prepare_vqc(build_vqc(8, 1))  # 3 readout bits, 2 matrices


def test_density_options_are_validated():
    with pytest.raises(QdtInputError, match="shots"):
        open_backend("executor:density", shots=0)
    with pytest.raises(QdtInputError, match="seed"):
        open_backend("executor:density", seed=-3)
    with pytest.raises(QdtInputError, match="method"):
        open_backend("executor:density", method="statevector", noise=NoiseConfig(depolarizing_1q=0.1))


# ----------------------------------------------------------------------------- shots


def _shot_run(seed, calls=2, shots=2000):
    vqc = build_vqc(4, 2)
    noise = NoiseConfig(depolarizing_1q=0.05)
    executor = open_backend("executor:density", noise=noise, shots=shots, seed=seed)
    prepared = executor.prepare_vqc(vqc)
    x = torch.tensor([[0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    weights = torch.linspace(0.1, 1.2, vqc.n_weights, dtype=torch.float64)
    results = [executor.run(prepared, vqc.angles(x), weights) for _ in range(calls)]
    exact_executor = open_backend("executor:density", noise=NoiseConfig(depolarizing_1q=0.05))
    exact = exact_executor.run(exact_executor.prepare_vqc(vqc), vqc.angles(x), weights)
    return executor, results, exact


def test_shots_are_reproducible_fresh_per_call_and_within_four_sigma():
    executor, first, exact = _shot_run(seed=np.random.SeedSequence(2024))
    _, again, _ = _shot_run(seed=np.random.SeedSequence(2024))
    _, other, _ = _shot_run(seed=np.random.SeedSequence(7))
    caps = executor.capabilities
    assert (caps.shots, caps.differentiable, caps.noisy) == (True, False, True)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], first[1])  # a fresh draw every call
    assert not torch.equal(first[0], other[0])
    shots = 2000
    sigma = torch.sqrt(exact * (1 - exact) / shots)
    for estimate in first:
        assert torch.allclose(estimate.sum(dim=1), torch.ones(2, dtype=torch.float64))
        assert torch.all((estimate - exact).abs() <= 4 * sigma + 1e-12)
        assert torch.all((estimate * shots - (estimate * shots).round()).abs() < 1e-9)


def test_shot_expectations_come_from_the_sampled_counts():
    circuit = QuantumCircuit(1)
    circuit.h(0)
    executor = open_backend("executor:density", shots=1000, seed=3)
    prepared = executor.prepare(circuit, [], [])
    generator_state = executor.generator.bit_generator.state
    probs = executor.run(prepared, torch.zeros(1, 0), torch.zeros(0))
    executor.generator.bit_generator.state = generator_state
    expval = executor.run(prepared, torch.zeros(1, 0), torch.zeros(0), readout="expval_z")
    assert expval[0, 0].item() == pytest.approx(probs[0, 0].item() - probs[0, 1].item(), abs=1e-12)
    assert isinstance(prepared, PreparedCircuit)
