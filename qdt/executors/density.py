"""``density``: batched density-matrix simulation with noise channels, in torch, with autograd.

States are kept as real Pauli coordinates (see :mod:`qdt.noise.pauli`); every gate is its
Pauli transfer matrix followed by the configured noise (:class:`~qdt.noise.NoiseConfig`).
Without gate noise the density matrix stays pure, so the executor takes the state-vector path
(same probabilities, much faster); readout error then multiplies the probabilities by the
assignment matrix. With ``shots`` the probabilities are replaced by multinomial estimates
(not differentiable) drawn from one generator per executor, advanced on every call
(:mod:`qdt.executors.sampling`).

Opened by ``open_backend("density")`` (the shipped profile, with a mild noise model) or
``open_backend("executor:density")`` (noiseless); options ``shots``, ``noise`` (a NoiseConfig,
a parametric noise profile or its name), ``method``, ``max_qubits``, ``fuse``.
"""

from __future__ import annotations

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter

from qdt.errors import QdtInputError
from qdt.executors.base import Capabilities, Executor, PreparedCircuit, expval_z, validate_shots
from qdt.executors.profiles import BackendProfile
from qdt.executors.registry import BackendSpec, OpenRequest
from qdt.executors.sampling import make_generator, sample_probabilities
from qdt.executors.statevector import check_max_qubits, compile_unitary_program
from qdt.noise.config import NoiseConfig
from qdt.noise.profiles import NoiseProfile, load_noise_profile
from qdt.sim.engine import probabilities
from qdt.sim.gates import compile_circuit
from qdt.sim.kernels.fused import compile_pauli_kernel
from qdt.sim.layout import Space
from qdt.sim.lowering import PauliRepresentation
from qdt.sim.program import Program, build_program

METHODS = ("auto", "pauli", "statevector")


def density_noise(value: object) -> NoiseConfig | None:
    """The NoiseConfig of a noise argument: a NoiseConfig, a noise profile or its name (device
    profiles are refused with the reason: they need a transpiled circuit, on aer)."""
    if value is None or isinstance(value, NoiseConfig):
        return value
    if isinstance(value, (str, NoiseProfile)):
        return load_noise_profile(value).to_noise_config()
    raise QdtInputError("noise", "a NoiseConfig, a noise profile or its name", type(value).__name__)


class DensityExecutor(Executor):
    """Noisy (or exact) density-matrix simulation; optional shot sampling."""

    name = "density"

    def __init__(
        self,
        *,
        noise: NoiseConfig | None = None,
        shots: int | None = None,
        seed: int | np.random.SeedSequence | np.random.Generator | None = None,
        method: str = "auto",
        max_qubits: int = 8,
        fuse: bool = True,
    ) -> None:
        if noise is not None and not isinstance(noise, NoiseConfig):
            raise QdtInputError("noise", "a qdt.noise.NoiseConfig or None", type(noise).__name__)
        shots = None if shots is None else validate_shots(shots)
        if method not in METHODS:
            raise QdtInputError("method", f"one of {METHODS}", method)
        if method == "statevector" and noise is not None and noise.has_gate_noise:
            raise QdtInputError("method", "'auto' or 'pauli' when gate noise is configured", method)
        self.noise = noise
        self.shots = shots
        self.method = method
        self.max_qubits = check_max_qubits(max_qubits, 10)
        self.fuse = bool(fuse)
        self.generator = make_generator(seed)

    @classmethod
    def profile_capabilities(cls, profile: BackendProfile) -> Capabilities:
        """Differentiable without shots; noisy when the profile names a noise model."""
        return _capabilities(profile.shots, profile.has_noise)

    @property
    def capabilities(self) -> Capabilities:
        return _capabilities(self.shots, self.noise is not None and not self.noise.is_trivial)

    def _uses_pauli(self) -> bool:
        if self.method != "auto":
            return self.method == "pauli"
        return self.noise is not None and self.noise.has_gate_noise

    def _prepare(
        self,
        circuit: QuantumCircuit,
        angle_params: tuple[Parameter, ...],
        weight_params: tuple[Parameter, ...],
        readout_qubits: tuple[int, ...],
    ) -> tuple[Program, torch.Tensor | None]:
        assignment = None
        if self.noise is not None:
            matrix = self.noise.assignment_matrix(len(readout_qubits))
            assignment = None if matrix is None else torch.as_tensor(matrix)
        if not self._uses_pauli():
            program = compile_unitary_program(
                circuit, angle_params, weight_params, readout_qubits, self.max_qubits, self.fuse
            )
            return program, assignment
        compiled = compile_circuit(circuit, angle_params, weight_params, readout_qubits, self.max_qubits)
        representation = PauliRepresentation(self.noise)
        ops = [representation.lower(op) for op in compiled.ops]
        program = build_program(
            ops,
            Space(compiled.num_qubits, 4),
            representation.qubit_state(),
            compiled.readout,
            heisenberg=True,
            n_angles=len(angle_params),
            n_weights=len(weight_params),
        )
        if self.fuse:
            program.kernel = compile_pauli_kernel(
                ops, compiled.num_qubits, compiled.readout, len(angle_params), len(weight_params)
            )
        return program, assignment

    def _run(
        self, prepared: PreparedCircuit, angles: torch.Tensor, weights: torch.Tensor, readout: str
    ) -> torch.Tensor:
        payload = prepared.payload
        assert isinstance(payload, tuple)
        program: Program = payload[0]
        assignment: torch.Tensor | None = payload[1]
        probs = probabilities(program, angles, weights)
        if assignment is not None:
            probs = probs @ assignment
        if self.shots is not None:
            probs = sample_probabilities(probs, self.shots, self.generator)
        return probs if readout == "probs" else expval_z(probs)


def _capabilities(shots: int | None, noisy: bool) -> Capabilities:
    return Capabilities(differentiable=shots is None, shots=shots is not None, noisy=noisy, remote=False)


def _open(request: OpenRequest) -> DensityExecutor:
    noise = density_noise(request.noise)
    return DensityExecutor(noise=noise, shots=request.profile.shots, seed=request.seed, **request.options)  # type: ignore[arg-type]


BACKEND = BackendSpec(
    name="density",
    factory=_open,
    capabilities=DensityExecutor.profile_capabilities,
    options=("shots", "noise", "method", "max_qubits", "fuse"),
)
