"""Pauli-transfer-matrix (PTM) algebra: unitaries and noise channels as real matrices.

A k-qubit state ρ is described by its real Pauli coordinates r_p = Tr(P_p ρ), where the Pauli
string index is ``p = Σ_q p_q · 4**q`` with digits 0, 1, 2, 3 = I, X, Y, Z and qubit 0 the least
significant digit (Qiskit's little-endian order, one base-4 digit per qubit). A channel E acts as
the real matrix ``R[i, j] = Tr(P_i E(P_j)) / 2**k``. The torch density executor simulates
in these coordinates: everything stays real, Clifford gates become signed permutations and the
depolarizing and dephasing channels become diagonal.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

_PAULI_1Q = np.array(
    [
        [[1, 0], [0, 1]],
        [[0, 1], [1, 0]],
        [[0, -1j], [1j, 0]],
        [[1, 0], [0, -1]],
    ],
    dtype=np.complex128,
)


@lru_cache(maxsize=8)
def pauli_basis(num_qubits: int) -> np.ndarray:
    """All 4**k Pauli strings on k qubits, shape [4**k, 2**k, 2**k], little-endian digits."""
    basis = np.ones((1, 1, 1), dtype=np.complex128)
    for _ in range(num_qubits):
        # The new qubit is the most significant one: it is the left Kronecker factor and its
        # digit the most significant base-4 digit of the string index.
        basis = np.einsum("pab,qcd->pqacbd", _PAULI_1Q, basis).reshape(
            basis.shape[0] * 4, basis.shape[1] * 2, basis.shape[2] * 2
        )
    basis.setflags(write=False)
    return basis


def num_qubits_of(dimension: int) -> int:
    k = int(round(np.log2(dimension)))
    if 2**k != dimension:
        raise ValueError(f"matrix dimension {dimension} is not a power of two")
    return k


def ptm_of_kraus(kraus: Sequence[np.ndarray]) -> np.ndarray:
    """PTM of the channel ρ ↦ Σ K ρ K†."""
    k = num_qubits_of(np.asarray(kraus[0]).shape[0])
    basis = pauli_basis(k)
    total = np.zeros((4**k, 4**k), dtype=np.complex128)
    for op in kraus:
        op = np.asarray(op, dtype=np.complex128)
        # R[i, j] = Tr(P_i K P_j K†) / 2^k
        total += np.einsum("iab,bc,jcd,da->ij", basis, op, basis, op.conj().T, optimize=True)
    ptm = total / 2**k
    if np.max(np.abs(ptm.imag)) > 1e-10:
        raise ValueError("PTM has an imaginary part: the Kraus operators are not a valid channel")
    return np.ascontiguousarray(ptm.real)


def ptm_of_unitary(unitary: np.ndarray) -> np.ndarray:
    """PTM of ρ ↦ U ρ U†."""
    return ptm_of_kraus([unitary])


def depolarizing_ptm(probability: float, num_qubits: int) -> np.ndarray:
    """Depolarizing channel in qiskit-aer's parameterisation (``depolarizing_error(p, k)``).

    E(ρ) = (1 − p) ρ + p · Tr(ρ) · I / 2**k, so every non-identity Pauli coordinate is scaled by
    (1 − p). For one qubit after an X gate, P(1) = 1 − p/2. (In Nielsen & Chuang's
    parameterisation ρ ↦ (1 − q) ρ + q/3 (XρX + YρY + ZρZ), q = 3p/4, i.e. P(1) = 1 − 2q/3.)
    """
    diagonal = np.full(4**num_qubits, 1.0 - probability)
    diagonal[0] = 1.0
    return np.diag(diagonal)


def amplitude_damping_ptm(gamma: float) -> np.ndarray:
    """Amplitude damping to |0⟩ with probability γ (qiskit-aer ``amplitude_damping_error(γ)``)."""
    k0 = np.array([[1.0, 0.0], [0.0, np.sqrt(1.0 - gamma)]])
    k1 = np.array([[0.0, np.sqrt(gamma)], [0.0, 0.0]])
    return ptm_of_kraus([k0, k1])


def phase_damping_ptm(lam: float) -> np.ndarray:
    """Phase damping with parameter λ (qiskit-aer ``phase_damping_error(λ)``)."""
    k0 = np.array([[1.0, 0.0], [0.0, np.sqrt(1.0 - lam)]])
    k1 = np.array([[0.0, 0.0], [0.0, np.sqrt(lam)]])
    return ptm_of_kraus([k0, k1])


def zero_state_coordinates(num_qubits: int) -> np.ndarray:
    """Pauli coordinates of |0…0⟩⟨0…0|: 1 where every digit is I or Z, else 0."""
    single = np.array([1.0, 0.0, 0.0, 1.0])
    state = np.ones(1)
    for _ in range(num_qubits):
        state = np.kron(single, state)
    return state
