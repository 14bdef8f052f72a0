"""The product kernel's small-register path: the whole circuit as one real 2**n × 2**n matrix.

Up to ``UNITARY_QUBITS`` qubits the arithmetic is negligible and the cost of a call is the
number of torch operations, so (same algebra as :mod:`qdt.sim.kernels.product`, real by the
twist T = diag(i**popcount(k))):

- the tree: α/2 = θ·E⁻¹ and its cos and sin as one addmm and one cos, then
  ψ₀[k] = Π_ℓ (cos or sin)(α_{ℓ, k>>(t+1)}/2) as one gather and one product over the n levels,
  batch first ([B, 2**n]);
- the layers: F_l[x, y] = s[x]·Π_q RY(w[l·n + q])[x_q, y_q] for all layers at once (one addmm,
  one cos, one gather, one product: s[x] = ±1 is cos(0) or cos(π)), the prefixes
  P_l = F_{l−1} ⋯ F_0 (L small matmuls), U = P_L;
- the readout: R = [U·diag(t_re); U·diag(t_im)] (T's real and imaginary parts), amplitudes
  a = ψ₀ Rᵀ [B, 2·2**n], p = a_re² + a_im².

Backward, with g = ∂L/∂a = 2 (∂L/∂p) ⊙ a: ∂L/∂ψ₀ = g R; for the weights the correlator at
layer l's input is C_l = P_l N P_lᵀ with N = Uᵀ Σ_parts g_partᵀ (t_part ⊙ ψ₀) (all layers in
two batched matmuls), and ∂L/∂w_{l,q} = ⟨C_l, ½J_q⟩ (one matmul with the constant generators);
the tree's factors get ∂L/∂ψ₀ times the product of the other levels (one gather).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from qdt.circuits.encoding import level_transform
from qdt.sim.device import CPU, cpu_tensor, on_device
from qdt.sim.kernels.product_tables import half_generators, ring_signs, twist_signs

# Up to this width the kernel takes the dense path: forward + backward at L = 6, B = 128 measured
# 1.2 vs 1.5 ms at 5 qubits, 2.8 vs 2.2 ms at 6 (dense vs grouped), as the D³ products take over.
UNITARY_QUBITS = 5
TRIG_PHASE = (0.0, math.pi / 2)  # cos(h − φ) = cos h, sin h: the tree's factors
SLOT_PHASE = (0.0, -math.pi / 2, math.pi / 2, 0.0)  # RY(w) = [[c, −s], [s, c]] as cos(w/2 − φ)


@dataclass(frozen=True, eq=False)
class UnitaryTables:
    """Everything the dense path needs, built once per (n, L)."""

    n_qubits: int
    n_layers: int
    # tree: arguments [B, 2A] = θ·tree_matrix + tree_constant, cos of them = (cos h_a, sin h_a) pairs
    tree_matrix: torch.Tensor  # [A, 2A]: θ → α/2, each column twice
    tree_constant: torch.Tensor  # [2A]: 0 and −π/2
    tree_index: torch.Tensor  # [n·D]: column of level ℓ's factor of amplitude k
    others: torch.Tensor | None  # [n·(n−1)]: for each level, the other levels
    # layers: arguments [L, 4n + 2] = w.view(L, n)·slot_matrix + slot_constant; cos of them are the
    # RY entries [[c, −s], [s, c]] of every qubit, then +1 and −1 (the ring's signs)
    slot_matrix: torch.Tensor  # [n, 4n + 2]
    slot_constant: torch.Tensor  # [4n + 2]
    layer_index: torch.Tensor  # [D·D·(n + 1)]: F_l[x, y] = Π of these entries
    twist: torch.Tensor  # [2, 1, D]: T's real and imaginary parts, scaling U's columns
    generators: torch.Tensor  # [D², n]: ½J_q flattened
    identity: torch.Tensor  # [D, D]

    @property
    def dim(self) -> int:
        return 1 << self.n_qubits

    def __call__(self, angles: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return _UnitaryFunction.apply(angles, weights, on_device(self, angles.device))


def unitary_tables(n_qubits: int, n_layers: int) -> UnitaryTables:
    n, dim = n_qubits, 1 << n_qubits
    k = np.arange(dim)
    tree_index = np.empty((n, dim), dtype=np.int64)
    for level in range(n):
        target = n - 1 - level
        node = (1 << level) - 1 + (k >> (target + 1))
        tree_index[level] = 2 * node + ((k >> target) & 1)  # column 2a: cos h_a, 2a + 1: sin h_a
    half = level_transform(n, inverse=True)
    slot_matrix = np.zeros((n, 4 * n + 2))
    for q in range(n):
        slot_matrix[q, 4 * q : 4 * q + 4] = 0.5
    slot_constant = np.concatenate([-np.tile(SLOT_PHASE, n), [0.0, math.pi]])
    x, y = k[:, None], k[None, :]
    layer_index = np.empty((dim, dim, n + 1), dtype=np.int64)
    for q in range(n):
        layer_index[..., q] = 4 * q + 2 * ((x >> q) & 1) + ((y >> q) & 1)
    signs = ring_signs(n)
    negative = np.zeros(dim, dtype=np.int64) if signs is None else (signs < 0).astype(np.int64)
    layer_index[..., n] = 4 * n + negative[:, None]
    others = [m for level in range(n) for m in range(n) if m != level]
    return UnitaryTables(
        n_qubits=n,
        n_layers=n_layers,
        tree_matrix=cpu_tensor(np.repeat(half, 2, axis=1)),
        tree_constant=cpu_tensor(-np.tile(TRIG_PHASE, dim - 1)),
        tree_index=cpu_tensor(tree_index.reshape(-1)),
        others=cpu_tensor(others, dtype=torch.int64) if others else None,
        slot_matrix=cpu_tensor(slot_matrix),
        slot_constant=cpu_tensor(slot_constant),
        layer_index=cpu_tensor(layer_index.reshape(-1)),
        twist=cpu_tensor(twist_signs(n))[:, None, :],
        generators=cpu_tensor(half_generators(n)),
        identity=torch.eye(dim, dtype=torch.float64, device=CPU),
    )


@dataclass(eq=False)
class _Saved:
    arguments: torch.Tensor  # [B, 2A]
    factors: torch.Tensor  # [B, n, D]
    psi: torch.Tensor  # [B, D]
    prefixes: torch.Tensor  # [L + 1, D, D]: P_0 = I, P_1, …, P_L = U
    readout: torch.Tensor  # [2D, D]
    amplitudes: torch.Tensor  # [B, 2D]


class _UnitaryFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, angles: torch.Tensor, weights: torch.Tensor, tables: UnitaryTables) -> torch.Tensor:  # type: ignore[override]
        batch, n, layers, dim = angles.shape[0], tables.n_qubits, tables.n_layers, tables.dim
        arguments = torch.addmm(tables.tree_constant, angles, tables.tree_matrix)
        factors = torch.cos(arguments).index_select(1, tables.tree_index).view(batch, n, dim)
        psi = factors.prod(1) if n > 1 else factors[:, 0]
        prefixes = torch.empty(layers + 1, dim, dim, dtype=psi.dtype, device=psi.device)
        prefixes[0] = tables.identity
        if layers:
            entries = torch.cos(
                torch.addmm(tables.slot_constant, weights.view(layers, n), tables.slot_matrix)
            )
            steps = entries.index_select(1, tables.layer_index).view(layers, dim, dim, n + 1).prod(3)
            for layer in range(layers):
                torch.mm(steps[layer], prefixes[layer], out=prefixes[layer + 1])
        readout = (prefixes[layers] * tables.twist).view(2 * dim, dim)
        amplitudes = psi @ readout.T
        ctx.tables = tables
        ctx.saved = _Saved(arguments, factors, psi, prefixes, readout, amplitudes)
        return amplitudes.view(batch, 2, dim).square().sum(1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:  # type: ignore[override]
        tables: UnitaryTables = ctx.tables
        saved: _Saved = ctx.saved
        batch, n, layers, dim = grad.shape[0], tables.n_qubits, tables.n_layers, tables.dim
        grad_amplitudes = ((2.0 * grad).unsqueeze(1) * saved.amplitudes.view(batch, 2, dim)).view(batch, -1)
        grad_weights = None
        if ctx.needs_input_grad[1] and layers:  # no layers: no weights, no gradient
            parts = (grad_amplitudes.T @ saved.psi).view(2, dim, dim)
            correlator = saved.prefixes[layers].T @ (parts * tables.twist).sum(0)
            before = saved.prefixes[:layers]
            per_layer = before @ correlator @ before.transpose(1, 2)
            grad_weights = (per_layer.view(layers, -1) @ tables.generators).view(-1)
        grad_angles = None
        if ctx.needs_input_grad[0]:
            grad_psi = grad_amplitudes @ saved.readout
            if tables.others is not None:
                rest = saved.factors.index_select(1, tables.others).view(batch, n, n - 1, dim).prod(2)
                grad_factors = (rest * grad_psi.unsqueeze(1)).view(batch, -1)
            else:
                grad_factors = grad_psi
            arguments = saved.arguments
            grad_cos = arguments.new_zeros(arguments.shape).index_add_(1, tables.tree_index, grad_factors)
            grad_arguments = torch.sin(arguments).mul_(grad_cos).neg_()  # d cos(a) = −sin(a) da
            grad_angles = grad_arguments @ tables.tree_matrix.T
        return grad_angles, grad_weights, None
