"""Tables shared by the product kernels: qubit groups, Kronecker-group products, signs, Walsh levels.

Layout convention of every function here: basis index first, batch last (a state is
[2**n, columns], qubit q is bit q of the row index), see :func:`apply_group`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import hadamard

from qdt.circuits.encoding import gray_walsh_matrix
from qdt.circuits.vqc import ring_pairs

# Largest qubit group applied as one dense matrix: groups of ≤ 4 measured best or within 5% of the
# best at 8–12 qubits (at 12: 155 ms forward + backward, L = 6, vs 177 with 5 and 215 with 3).
GROUP_QUBITS = 4
DENSE_LEVELS = 7  # tree levels 0 … 6 (angles 0 … 126) go through one dense block-diagonal matrix


def qubit_groups(n_qubits: int, group_qubits: int = GROUP_QUBITS) -> tuple[tuple[int, int], ...]:
    """(first qubit, size) of ⌈n/g⌉ groups covering qubits 0 … n−1, sizes as equal as possible."""
    count = max(1, math.ceil(n_qubits / group_qubits))
    base, extra = divmod(n_qubits, count)
    sizes = [base + 1] * extra + [base] * (count - extra)  # the larger groups on the low qubits
    starts = np.cumsum([0, *sizes[:-1]]).tolist()
    return tuple((int(s), int(g)) for s, g in zip(starts, sizes))


def apply_group(matrix: torch.Tensor, state: torch.Tensor, start: int, size: int) -> torch.Tensor:
    """``matrix`` [2**size, 2**size] applied to qubits start … start+size−1 of every column of
    ``state`` [2**n, columns] (qubit q is bit q of the row index).

    Basis index first, batch last: the group's axis is the middle of a [2**(n−start−size),
    2**size, 2**start·columns] view, so every call is a GEMM (or a few) whose inner dimension is
    at least the batch — the fast shape for BLAS, whatever the group's position.
    """
    dim, columns = state.shape
    block = 1 << size
    view = state.view(-1, block, (1 << start) * columns)
    if view.shape[0] == 1:
        return (matrix @ view[0]).view(dim, columns)
    return torch.matmul(matrix, view).view(dim, columns)


def group_correlator(grad: torch.Tensor, state: torch.Tensor, start: int, size: int) -> torch.Tensor:
    """C[x, y] = Σ over columns and the other qubits of grad[x]·state[y] on the group's qubits
    (both [2**n, columns])."""
    block = 1 << size
    columns = (1 << start) * grad.shape[1]
    left, right = grad.view(-1, block, columns), state.view(-1, block, columns)
    if left.shape[0] == 1:
        return left[0] @ right[0].T
    return torch.bmm(left, right.transpose(1, 2)).sum(0)


def _popcount(values: np.ndarray) -> np.ndarray:
    counts = np.zeros_like(values)
    rest = values.copy()
    while rest.any():
        counts += rest & 1
        rest >>= 1
    return counts


def ring_signs(n_qubits: int) -> np.ndarray | None:
    """s[k] = Π over the CZ ring's pairs (a, b) of (−1)^(bit a · bit b); None when all are +1."""
    k = np.arange(1 << n_qubits)
    parity = np.zeros_like(k)
    for a, b in ring_pairs(n_qubits):
        parity ^= ((k >> a) & 1) & ((k >> b) & 1)
    return None if not parity.any() else 1.0 - 2.0 * parity


def twist_signs(n_qubits: int) -> np.ndarray:
    """[2, 2**n]: row 0 the real part, row 1 the imaginary part of i**popcount(k)."""
    phase = _popcount(np.arange(1 << n_qubits)) % 4
    twist = np.zeros((2, 1 << n_qubits))
    twist[0, phase == 0], twist[0, phase == 2] = 1.0, -1.0
    twist[1, phase == 1], twist[1, phase == 3] = 1.0, -1.0
    return twist


def half_generators(size: int) -> np.ndarray:
    """[4**size, size]: column t is ½·J_t flattened, J = [[0, −1], [1, 0]] on bit t of the group."""
    x = np.arange(1 << size)[:, None]
    y = np.arange(1 << size)[None, :]
    generators = np.zeros((1 << size, 1 << size, size))
    for t in range(size):
        same_elsewhere = ((x ^ y) & ~(1 << t)) == 0
        bit_x, bit_y = (x >> t) & 1, (y >> t) & 1
        generators[..., t] = 0.5 * same_elsewhere * ((bit_x > bit_y) * 1.0 - (bit_x < bit_y) * 1.0)
    return generators.reshape(-1, size)


@dataclass(frozen=True, eq=False)
class WalshLevel:
    """One level of the rotation tree whose angles go through a fast Walsh–Hadamard transform.

    With H the 2**ℓ × 2**ℓ Sylvester Hadamard matrix (H[x, y] = (−1)^{popcount(x & y)}) and
    P the Gray permutation ((Pθ)[g] = θ[gray⁻¹(g)]), the tree's control-value angles are
    α = H P θ and, inversely, θ = P⁻¹ H α / 2**ℓ (H H = 2**ℓ I). H is applied as a Kronecker
    product of small Hadamard groups (:func:`apply_group`), O(2**ℓ·ℓ) per column.
    """

    offset: int  # first angle of the level in the level-ordered angle vector
    size: int  # 2**ℓ angles
    from_gray: torch.Tensor  # [2**ℓ] gray⁻¹: (Pθ) = θ[from_gray]
    to_gray: torch.Tensor  # [2**ℓ] gray: P⁻¹
    groups: tuple[tuple[int, int], ...]
    hadamards: tuple[torch.Tensor, ...]  # one per group

    @classmethod
    def create(cls, level: int, group_qubits: int = GROUP_QUBITS) -> WalshLevel:
        size = 1 << level
        to_gray = np.arange(size) ^ (np.arange(size) >> 1)
        groups = qubit_groups(level, group_qubits)
        return cls(
            offset=size - 1,
            size=size,
            from_gray=torch.as_tensor(np.argsort(to_gray)),
            to_gray=torch.as_tensor(to_gray),
            groups=groups,
            hadamards=tuple(torch.as_tensor(hadamard(1 << g), dtype=torch.float64) for _, g in groups),
        )

    def block(self, values: torch.Tensor) -> torch.Tensor:
        """The level's rows of ``values`` [2**n − 1, B] (a view)."""
        return values[self.offset : self.offset + self.size]

    def hadamard(self, values: torch.Tensor) -> torch.Tensor:
        """H·values for values [2**ℓ, B] (H is symmetric: also the transpose)."""
        for (start, size), matrix in zip(self.groups, self.hadamards):
            values = apply_group(matrix, values, start, size)
        return values


def level_transform(levels: int, inverse: bool) -> np.ndarray:
    """Block-diagonal [2**levels − 1]² matrix of the tree's first ``levels`` levels, acting on
    level-ordered row vectors: half-angles h → circuit angles θ = h·E (E = 2·blockdiag of
    ``gray_walsh_matrix``, as ``AmplitudeEncoder.transform``), or with ``inverse`` θ → h = θ·E⁻¹
    (E⁻¹'s block ℓ is 2**ℓ/2 · gray_walsh_matrix(ℓ)ᵀ, since M Mᵀ = 2**ℓ I)."""
    size = (1 << levels) - 1
    matrix = np.zeros((size, size))
    for level in range(levels):
        start, count = (1 << level) - 1, 1 << level
        block = gray_walsh_matrix(level)
        matrix[start : start + count, start : start + count] = (
            0.5 * count * block.T if inverse else 2.0 * block
        )
    return matrix
