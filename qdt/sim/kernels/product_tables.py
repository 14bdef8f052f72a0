"""Tables shared by the product kernels: group correlators, the CZ ring's signs, the twist, generators.

Layout convention of every function here: basis index first, batch last (a state is
[2**n, columns], qubit q is bit q of the row index), as :func:`qdt.circuits.encoding.apply_group`,
which applies a matrix to a group of qubits (``qubit_groups``) and is shared with the encoder.
"""

from __future__ import annotations

import numpy as np
import torch

from qdt.circuits.vqc import ring_pairs


def group_correlator(grad: torch.Tensor, state: torch.Tensor, start: int, size: int) -> torch.Tensor:
    """C[x, y] = Σ over columns and the other qubits of grad[x]·state[y] on the group's qubits
    (both [2**n, columns])."""
    block = 1 << size
    columns = (1 << start) * grad.shape[1]
    left, right = grad.view(-1, block, columns), state.view(-1, block, columns)
    if left.shape[0] == 1:
        return left[0] @ right[0].T
    return torch.bmm(left, right.transpose(1, 2)).sum(0)


def weight_gradient(
    correlators: list[list[torch.Tensor]], generators: tuple[torch.Tensor, ...]
) -> torch.Tensor:
    """∂L/∂w [L·n] (layer-major) from each group's correlators (collected from the last layer to
    the first, [4**g] or [16**g] each) and its constant generators ([·, g]): ⟨C, J_q⟩ per qubit."""
    layers = len(correlators[0])
    parts = [torch.stack(c[::-1]).view(layers, -1) @ g for c, g in zip(correlators, generators)]
    return torch.cat(parts, dim=1).reshape(-1)


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
