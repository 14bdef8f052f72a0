"""``statevector``: exact, differentiable, batched state-vector simulation in torch.

The circuit's instructions are interpreted as batched torch operations (float64 while the
state is real, complex128 after the first complex gate). Gates shared by the batch at the end
of the circuit are fused into one unitary per call; see :mod:`qdt.sim.program`.
"""

from __future__ import annotations

import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter

from qdt.errors import QdtInputError
from qdt.executors.base import Capabilities, Executor, PreparedCircuit, expval_z
from qdt.executors.profiles import BackendProfile
from qdt.executors.registry import BackendSpec, OpenRequest
from qdt.sim.engine import probabilities
from qdt.sim.gates import compile_circuit
from qdt.sim.kernels.fused import compile_statevector_kernel
from qdt.sim.layout import Space
from qdt.sim.lowering import UnitaryRepresentation
from qdt.sim.multiplex import multiplex_rotations
from qdt.sim.program import Program, build_program


def check_max_qubits(value: object, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise QdtInputError("max_qubits", f"an integer from 1 to {limit}", value)
    return value


def compile_unitary_program(
    circuit: QuantumCircuit,
    angle_params: tuple[Parameter, ...],
    weight_params: tuple[Parameter, ...],
    readout_qubits: tuple[int, ...],
    max_qubits: int,
    fuse: bool = True,
) -> Program:
    compiled = compile_circuit(circuit, angle_params, weight_params, readout_qubits, max_qubits)
    representation = UnitaryRepresentation()
    ops = [representation.lower(op) for op in compiled.ops]
    if fuse:
        ops = multiplex_rotations(ops)
    space = Space(compiled.num_qubits, 2)
    program = build_program(
        ops,
        space,
        representation.qubit_state(),
        compiled.readout,
        heisenberg=False,
        n_angles=len(angle_params),
        n_weights=len(weight_params),
        fuse=fuse,
    )
    if fuse:
        program.kernel = compile_statevector_kernel(
            ops, compiled.num_qubits, compiled.readout, len(angle_params), len(weight_params)
        )
    return program


class StatevectorExecutor(Executor):
    """Exact and differentiable; the fast default for training."""

    name = "statevector"

    def __init__(self, *, max_qubits: int = 16, fuse: bool = True) -> None:
        self.max_qubits = check_max_qubits(max_qubits, 24)
        self.fuse = bool(fuse)

    @classmethod
    def profile_capabilities(cls, profile: BackendProfile) -> Capabilities:
        """Exact, noiseless, local and differentiable, whatever the profile."""
        return Capabilities(differentiable=True, shots=False, noisy=False, remote=False)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(differentiable=True, shots=False, noisy=False, remote=False)

    def _prepare(
        self,
        circuit: QuantumCircuit,
        angle_params: tuple[Parameter, ...],
        weight_params: tuple[Parameter, ...],
        readout_qubits: tuple[int, ...],
    ) -> Program:
        return compile_unitary_program(
            circuit, angle_params, weight_params, readout_qubits, self.max_qubits, self.fuse
        )

    def _run(
        self, prepared: PreparedCircuit, angles: torch.Tensor, weights: torch.Tensor, readout: str
    ) -> torch.Tensor:
        program = prepared.payload
        assert isinstance(program, Program)
        probs = probabilities(program, angles, weights)
        return probs if readout == "probs" else expval_z(probs)


def _open(request: OpenRequest) -> StatevectorExecutor:
    return StatevectorExecutor(**request.options)


BACKEND = BackendSpec(
    name="statevector",
    factory=_open,
    capabilities=StatevectorExecutor.profile_capabilities,
    options=("max_qubits", "fuse"),
    hints={
        "shots": "statevector is exact: use density or aer for shot estimates",
        "noise": "statevector is noiseless: use density or aer for noise",
    },
)
