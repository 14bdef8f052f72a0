"""``density``: batched density-matrix simulation with noise channels, in torch, with autograd.

States are kept as real Pauli coordinates (see :mod:`qdt.noise.pauli`); every gate is its
Pauli transfer matrix followed by the configured noise (:class:`~qdt.noise.NoiseConfig`).
Without gate noise the density matrix stays pure, so the executor takes the state-vector path
(same probabilities, much faster); readout error then multiplies the probabilities by the
assignment matrix. With ``shots`` the probabilities are replaced by multinomial estimates
(not differentiable) drawn from one generator per executor, advanced on every call.
"""

from __future__ import annotations

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter

from qdt.errors import QdtInputError
from qdt.executors.base import Capabilities, Executor, PreparedCircuit, expval_z
from qdt.sim.engine import probabilities
from qdt.sim.gates import compile_circuit
from qdt.sim.kernels.fused import compile_pauli_kernel
from qdt.sim.layout import Space
from qdt.sim.lowering import PauliRepresentation
from qdt.sim.program import Program, build_program
from qdt.executors.statevector import check_max_qubits, compile_unitary_program
from qdt.noise.config import NoiseConfig

METHODS = ("auto", "pauli", "statevector")


def make_generator(seed: object) -> np.random.Generator:
    """A numpy Generator from None (fresh entropy), an int, a SeedSequence or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return np.random.default_rng(np.random.SeedSequence(int(seed)))
    raise QdtInputError("seed", "None, a non-negative int, a numpy SeedSequence or a numpy Generator", seed)


def sample_probabilities(probs: torch.Tensor, shots: int, generator: np.random.Generator) -> torch.Tensor:
    """Multinomial estimates counts/shots of each row of ``probs`` (one draw per row)."""
    p = np.clip(probs.detach().cpu().numpy(), 0.0, None)
    p = p / p.sum(axis=1, keepdims=True)
    counts = generator.multinomial(shots, p)
    return torch.as_tensor(counts / shots, dtype=torch.float64)


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
        if shots is not None and (
            isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1
        ):
            raise QdtInputError("shots", "None (exact) or a positive integer", shots)
        if method not in METHODS:
            raise QdtInputError("method", f"one of {METHODS}", method)
        if method == "statevector" and noise is not None and noise.has_gate_noise:
            raise QdtInputError("method", "'auto' or 'pauli' when gate noise is configured", method)
        self.noise = noise
        self.shots = None if shots is None else int(shots)
        self.method = method
        self.max_qubits = check_max_qubits(max_qubits, 10)
        self.fuse = bool(fuse)
        self.generator = make_generator(seed)

    @property
    def capabilities(self) -> Capabilities:
        noisy = self.noise is not None and not self.noise.is_trivial
        return Capabilities(
            differentiable=self.shots is None,
            shots=self.shots is not None,
            noisy=noisy,
            remote=False,
        )

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
