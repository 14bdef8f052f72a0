"""Prototype: the VQC's layers under gate noise in Pauli coordinates, cost B·4**n per gate layer.

Research code for issue 14 (the density executor at 6–9 qubits), not wired into an executor.
A state of n qubits is its 4**n real Pauli coordinates r_P = Tr(P ρ) (``qdt.noise.pauli``'s
order: base-4 digit q = qubit q, 0 1 2 3 = I X Y Z), basis index first, batch last:
[4**n, B]. In these coordinates every gate and every noise channel is a real matrix (its PTM):

- one layer of RX(w_q) followed by the one-qubit noise of :class:`~qdt.noise.NoiseConfig` is a
  Kronecker product of 4×4 matrices N·R(w_q): applied by groups of ``group_qubits`` qubits, one
  4**g × 4**g matmul per group (:func:`~qdt.sim.kernels.product_tables.apply_group` on the
  group's 2g bits);
- each CZ of the ring and the two-qubit noise after it is one constant 16×16 matrix on the
  pair's two digits (adjacent digits: one matmul; the wrap-around pair (n−1, 0): one einsum);
- the readout p(k) = 2**−n Σ_z (−1)^{popcount(z & k)} r_{Z^z} reads the 2**n Z-strings and
  applies a Walsh–Hadamard transform.

The state preparation is taken as exact (ρ₀ = |ψ₀⟩⟨ψ₀| from the product kernel's tree): with
noise after each of its 2**(n+1) − 3 gates the tree alone costs O(B·8**n) in any exact
density-matrix method (level ℓ has 2**(ℓ+1) gates on a 4**(ℓ+1)-coordinate register), which is
what limits today's density executor; see the issue-14 report for the measured limits. Gradients
here are plain autograd (the prototype measures cost; the adjoint method of
:mod:`qdt.sim.kernels.product` applies unchanged, with PTMs in place of the real rotations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import hadamard

from qdt.circuits.vqc import ring_pairs
from qdt.noise.config import NoiseConfig
from qdt.noise.pauli import ptm_of_unitary
from qdt.sim.kernels.product_tables import apply_group, qubit_groups

_CZ = np.diag([1.0, 1.0, 1.0, -1.0]).astype(np.complex128)


def _rx_ptm(angle: float) -> np.ndarray:
    c, s = np.cos(angle / 2), np.sin(angle / 2)
    return ptm_of_unitary(np.array([[c, -1j * s], [-1j * s, c]]))


def rx_ptm_parts() -> np.ndarray:
    """[3, 4, 4]: PTM(RX(w)) = parts[0] + cos w·parts[1] + sin w·parts[2]."""
    zero, half, turn = _rx_ptm(0.0), _rx_ptm(np.pi / 2), _rx_ptm(np.pi)
    constant, cosine = (zero + turn) / 2, (zero - turn) / 2
    return np.stack([constant, cosine, half - constant])


def pauli_coordinates(psi: torch.Tensor) -> torch.Tensor:
    """r [4**n, B] of ρ = ψψᵀ for real states ψ [B, 2**n] (differentiable)."""
    batch, dim = psi.shape
    n = dim.bit_length() - 1
    rho = (psi[:, :, None] * psi[:, None, :]).view(batch, *[2] * (2 * n))
    # axes: batch, row bits n−1 … 0, column bits n−1 … 0 → digits n−1 … 0 as (row, column), batch last
    order = [axis for q in range(n) for axis in (1 + q, 1 + n + q)] + [0]
    state = rho.permute(*order).reshape(4**n, batch)
    # per qubit (ρ00, ρ01, ρ10, ρ11) → (I, X, −i·Y, Z): real for a real ρ; i**#Y fixed below
    local = torch.tensor([[1, 0, 0, 1], [0, 1, 1, 0], [0, 1, -1, 0], [1, 0, 0, -1]], dtype=psi.dtype)
    for start, size in qubit_groups(n, 2):
        matrix = local
        for _ in range(size - 1):
            matrix = torch.kron(local, matrix)
        state = apply_group(matrix, state, 2 * start, 2 * size)
    digits = np.arange(4**n)
    count_y = sum(((digits >> (2 * q)) & 3) == 2 for q in range(n))
    sign = np.where(count_y % 4 == 2, -1.0, 1.0) * (count_y % 2 == 0)  # odd #Y: Tr(Pρ) = 0
    return state * torch.as_tensor(sign, dtype=psi.dtype)[:, None]


@dataclass(frozen=True, eq=False)
class NoisyLayers:
    """L noisy layers and the readout, for one noise configuration (see the module docstring)."""

    n_qubits: int
    n_layers: int
    groups: tuple[tuple[int, int], ...]
    rx_parts: torch.Tensor  # [3, 4, 4]: N·constant, N·cos, N·sin (N the one-qubit noise)
    pair: torch.Tensor  # [16, 16]: noise after CZ · PTM(CZ)
    z_strings: torch.Tensor  # [2**n] rows of the Z-strings, in the order of their bit pattern
    hadamards: tuple[torch.Tensor, ...]
    readout_groups: tuple[tuple[int, int], ...]

    @classmethod
    def create(cls, n_qubits: int, n_layers: int, noise: NoiseConfig, group_qubits: int = 2) -> NoisyLayers:
        one = noise.gate_channel_ptm("rx", 1)
        one = np.eye(4) if one is None else one
        two = noise.gate_channel_ptm("cz", 2)
        pair = ptm_of_unitary(_CZ) if two is None else two @ ptm_of_unitary(_CZ)
        bits = np.arange(2**n_qubits)
        z_strings = sum(((bits >> q) & 1) * 3 * 4**q for q in range(n_qubits))
        readout_groups = qubit_groups(n_qubits, 4)
        return cls(
            n_qubits=n_qubits,
            n_layers=n_layers,
            groups=qubit_groups(n_qubits, group_qubits),
            rx_parts=torch.as_tensor(np.einsum("ij,pjk->pik", one, rx_ptm_parts())),
            pair=torch.as_tensor(pair),
            z_strings=torch.as_tensor(z_strings, dtype=torch.int64),
            hadamards=tuple(
                torch.as_tensor(hadamard(1 << g), dtype=torch.float64) for _, g in readout_groups
            ),
            readout_groups=readout_groups,
        )

    def memory_bytes(self, batch: int) -> int:
        """One state: 4**n · B float64 (autograd keeps about 2 per group and pair per layer)."""
        return 4**self.n_qubits * batch * 8

    def __call__(self, psi: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Probabilities [B, 2**n] of the noisy layers applied to the pure states ψ₀ [B, 2**n]."""
        n = self.n_qubits
        state = pauli_coordinates(psi)
        angles = weights.view(self.n_layers, n)
        for layer in range(self.n_layers):
            w = angles[layer]
            slots = self.rx_parts[0] + torch.cos(w)[:, None, None] * self.rx_parts[1]
            slots = slots + torch.sin(w)[:, None, None] * self.rx_parts[2]  # [n, 4, 4]
            for start, size in self.groups:
                matrix = slots[start]
                for q in range(start + 1, start + size):
                    matrix = torch.kron(slots[q], matrix)
                state = apply_group(matrix, state, 2 * start, 2 * size)
            for a, b in ring_pairs(n):
                state = self._pair(state, a, b)
        z = state.index_select(0, self.z_strings)
        for (start, size), matrix in zip(self.readout_groups, self.hadamards):
            z = apply_group(matrix, z, start, size)
        return (z / 2**n).T

    def _pair(self, state: torch.Tensor, a: int, b: int) -> torch.Tensor:
        low, high = min(a, b), max(a, b)
        if high == low + 1:
            return apply_group(self.pair, state, 2 * low, 4)
        # the ring's wrap-around pair (0, n−1): digit n−1 is the most significant, digit 0 the least
        columns = state.shape[1]
        view = state.view(4, -1, 4, columns)
        pair = self.pair.view(4, 4, 4, 4)  # [high out, low out, high in, low in] (symmetric in the pair)
        return torch.einsum("xyhl,hmlc->xmyc", pair, view).reshape(-1, columns)
