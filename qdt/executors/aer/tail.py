"""The batch-shared tail of a noisy circuit, as readout observables evolved backwards.

In a batch, every row has its own encoding angles but the same weights, so everything after the
last angle-dependent gate (the *tail*: the trainable layers) is one fixed channel T per call.
Only the readout distribution is needed, and it is fixed by the 2**m expectation values of the
Z strings Z_S on the m readout qubits. In the Heisenberg picture
⟨Z_S⟩ = Tr(T†(Z_S) ρ): evolving the 2**m observables backwards through T once per call costs far
less than T's superoperator (4**k × 4**k) or than simulating T on every row.

Each noisy gate is its Pauli transfer matrix (PTM, :mod:`qdt.noise.pauli` conventions) followed
by the PTM of its qiskit-aer ``QuantumError`` (as Aer applies it, after the gate). A row vector of
Pauli coordinates v evolves as v ← v·R for each R from the last gate to the first; the operator
O_S = Σ_p v_S[p]·P_p then gives ⟨Z_S⟩ = Tr(O_S ρ) for every row's state ρ before the tail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterExpression

from qdt.noise.pauli import pauli_basis, ptm_of_unitary

# (gate name or unitary label, qubits) -> the qiskit-aer QuantumError applied after it, or None
ErrorLookup = Callable[[str, tuple[int, ...]], Any]


def error_ptm(error: Any) -> np.ndarray:
    """PTM of a qiskit-aer QuantumError (its first qubit is the least significant), from its
    superoperator S (column stacking): R[i, j] = Tr(P_i · unvec(S·vec(P_j))) / 2**n, exactly."""
    superop = np.asarray(error.to_quantumchannel().data, dtype=np.complex128)
    dimension = int(round(np.sqrt(superop.shape[0])))
    n = int(round(np.log2(dimension)))
    basis = pauli_basis(n)
    flat = basis.reshape(4**n, -1)  # row i: P_i row-major = vec(P_iᵀ) in column stacking
    columns = basis.transpose(0, 2, 1).reshape(4**n, -1)  # row j: vec(P_j) in column stacking
    ptm = flat @ superop @ columns.T / dimension
    if np.max(np.abs(ptm.imag)) > 1e-10:
        raise ValueError("the error's PTM has an imaginary part: not a valid channel")
    return np.ascontiguousarray(ptm.real)


def noise_key(operation: Any) -> str:
    """The name a noise model matches: a unitary's label, else the gate's name."""
    if operation.name == "unitary" and operation.label:
        return str(operation.label)
    return str(operation.name)


@dataclass(frozen=True, eq=False)
class _TailOp:
    qubits: tuple[int, ...]
    matrix: np.ndarray | None  # error ∘ gate, when the gate has no free parameter
    operation: Any  # the gate (template when symbolic)
    error: np.ndarray | None


def _is_symbolic(value: object) -> bool:
    return isinstance(value, ParameterExpression) and bool(value.parameters)


class NoisyTail:
    """T†(Z_S) for the tail ``circuit`` (on k compact qubits) and the readout qubits."""

    def __init__(self, circuit: QuantumCircuit, readout: Sequence[int], errors: ErrorLookup) -> None:
        self.num_qubits = circuit.num_qubits
        self.readout = tuple(readout)
        self.parameters = tuple(circuit.parameters)
        error_cache: dict[tuple[str, tuple[int, ...]], np.ndarray | None] = {}
        ops: list[_TailOp] = []
        for instruction in circuit.data:
            op = instruction.operation
            if op.name in ("barrier", "delay") or op.num_qubits == 0:
                continue
            qubits = tuple(circuit.find_bit(q).index for q in instruction.qubits)
            key = (noise_key(op), qubits)
            if key not in error_cache:
                error = errors(*key)
                error_cache[key] = None if error is None else error_ptm(error)
            error_matrix = error_cache[key]
            if any(_is_symbolic(p) for p in op.params):
                ops.append(_TailOp(qubits, None, op, error_matrix))
            else:
                ops.append(_TailOp(qubits, _combine(self._gate_ptm(op), error_matrix), op, error_matrix))
        self.ops = tuple(ops)
        self._cache: dict[tuple[float, ...], np.ndarray] = {}

    @staticmethod
    def _gate_ptm(op: Any) -> np.ndarray:
        return ptm_of_unitary(np.asarray(op.to_matrix(), dtype=np.complex128))

    def observables(self, values: Mapping[Parameter, float]) -> np.ndarray:
        """O_S = T†(Z_S) as matrices [2**m, 2**k, 2**k], S in outcome-bit order; cached."""
        key = tuple(float(values[p]) for p in self.parameters)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        k, m = self.num_qubits, len(self.readout)
        vectors = np.zeros((2**m, 4**k))
        for subset in range(2**m):
            index = sum(3 * 4 ** self.readout[i] for i in range(m) if (subset >> i) & 1)
            vectors[subset, index] = 1.0
        tensor = vectors.reshape([2**m] + [4] * k)  # axis 1 + (k − 1 − q) is qubit q's digit
        for op in reversed(self.ops):
            matrix = op.matrix if op.matrix is not None else self._bound_ptm(op, values)
            tensor = _apply_row(tensor, matrix, op.qubits, k)
        coordinates = tensor.reshape(2**m, 4**k)
        operators = (coordinates @ pauli_basis(k).reshape(4**k, -1)).reshape(2**m, 2**k, 2**k)
        self._cache.clear()  # one entry: weights change between training calls
        self._cache[key] = operators
        return operators

    def _bound_ptm(self, op: _TailOp, values: Mapping[Parameter, float]) -> np.ndarray:
        gate = op.operation.to_mutable()
        gate.params = [
            float(p.bind({q: values[q] for q in p.parameters}).numeric()) if _is_symbolic(p) else p
            for p in op.operation.params
        ]
        return _combine(self._gate_ptm(gate), op.error)

    def probabilities(self, states: np.ndarray, values: Mapping[Parameter, float]) -> np.ndarray:
        """Readout probabilities [B, 2**m] after the tail, from density matrices [B, 2**k, 2**k]."""
        operators = self.observables(values)
        expectations = np.real(np.einsum("sab,nba->ns", operators, states, optimize=True))
        m = len(self.readout)
        outcomes = np.arange(2**m)
        parity = np.array([[bin(s & x).count("1") % 2 for x in outcomes] for s in outcomes])
        return expectations @ (1.0 - 2.0 * parity) / 2**m


def _combine(gate: np.ndarray, error: np.ndarray | None) -> np.ndarray:
    return gate if error is None else error @ gate


def _apply_row(tensor: np.ndarray, matrix: np.ndarray, qubits: tuple[int, ...], k: int) -> np.ndarray:
    """v ← v·R on the digits of ``qubits`` (R's index: first qubit least significant)."""
    n = len(qubits)
    # R[out, in] with out = Σ d_j 4**j: reshaped, the most significant (last) qubit comes first
    blocks = matrix.reshape([4] * (2 * n))
    out_axes = list(range(n))  # blocks axes 0..n-1: out digits of qubits[n-1], ..., qubits[0]
    tensor_axes = [1 + (k - 1 - qubits[n - 1 - j]) for j in range(n)]
    result = np.tensordot(tensor, blocks, axes=(tensor_axes, out_axes))
    # result: remaining tensor axes, then the in digits (qubits[n-1], ..., qubits[0])
    new_positions = list(range(result.ndim - n, result.ndim))
    return np.moveaxis(result, new_positions, tensor_axes)
