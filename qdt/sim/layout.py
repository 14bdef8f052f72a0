"""Index arithmetic for a register of n qudits of local dimension d (2 for amplitudes, 4 for
Pauli coordinates), qudit 0 the least significant digit of the state index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Space:
    num_qubits: int
    local_dim: int

    @property
    def dim(self) -> int:
        return int(self.local_dim**self.num_qubits)

    def digits(self, qubits: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(local index, rest) of every state index for an op on ascending ``qubits``."""
        d = self.local_dim
        k = np.arange(self.dim)
        local = np.zeros(self.dim, dtype=np.int64)
        rest = k.copy()
        for j, q in enumerate(qubits):
            digit = (k // d**q) % d
            local += digit * d**j
            rest -= digit * d**q
        return local, rest

    def embed(self, qubits: Sequence[int], rest: np.ndarray, local: np.ndarray) -> np.ndarray:
        """State index with the digits of ``qubits`` set from ``local`` and the others from rest."""
        d = self.local_dim
        index = rest.copy()
        for j, q in enumerate(qubits):
            index = index + ((local // d**j) % d) * d**q
        return index

    def group_shape(self, qubits: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """View of the state with one axis per qudit in ``qubits`` and merged axes between.

        Returns (shape, local_shape): ``shape`` splits the state index (most significant
        first); ``local_shape`` has size d on the qudits' axes and 1 elsewhere, so a local
        quantity of size d**k broadcasts against the view.
        """
        d = self.local_dim
        targets = set(qubits)
        shape: list[int] = []
        local_shape: list[int] = []
        run = 1
        for q in range(self.num_qubits - 1, -1, -1):
            if q in targets:
                if run > 1:
                    shape.append(run)
                    local_shape.append(1)
                    run = 1
                shape.append(d)
                local_shape.append(d)
            else:
                run *= d
        if run > 1:
            shape.append(run)
            local_shape.append(1)
        return tuple(shape), tuple(local_shape)


def embed_matrix(
    matrix: np.ndarray, qubits: Sequence[int], target_qubits: Sequence[int], local_dim: int
) -> np.ndarray:
    """The local ``matrix`` on ``qubits`` as a matrix on the (ascending) ``target_qubits``."""
    positions = [list(target_qubits).index(q) for q in qubits]
    space = Space(len(target_qubits), local_dim)
    local, rest = space.digits(positions)
    same_rest = rest[:, None] == rest[None, :]
    return np.where(same_rest, matrix[local[:, None], local[None, :]], 0.0)


def sparse_rows(pattern: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a sparsity pattern into T "terms": src[t, i] is row i's t-th non-zero column.

    Returns (src [T, m], valid [T, m]); rows with fewer than T non-zeros repeat a column and
    are marked invalid (their coefficient must be zero).
    """
    m = pattern.shape[0]
    counts = pattern.sum(axis=1)
    terms = max(1, int(counts.max()))
    src = np.zeros((terms, m), dtype=np.int64)
    valid = np.zeros((terms, m), dtype=bool)
    for i in range(m):
        columns = np.nonzero(pattern[i])[0]
        if len(columns) == 0:
            columns = np.array([i])
        # The diagonal first: a diagonal-only term needs no gather.
        ordered = sorted(columns.tolist(), key=lambda c: (c != i, c))
        for t in range(terms):
            src[t, i] = ordered[min(t, len(ordered) - 1)]
            valid[t, i] = t < counts[i]
    return src, valid
