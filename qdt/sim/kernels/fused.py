"""Fast state-vector kernel: rotation-tree prefix, layered suffix, one matmul, hand-written adjoint.

For circuits shaped like the paper's VQC (a rotation tree that prepares the batch states, then
batch-shared layers; see :mod:`qdt.sim.kernels.tree` and :mod:`qdt.sim.kernels.layered`) the whole
batch is: ψ [B, D] from the product formula, U [D, D] from the weights, amplitudes ψ Uᵀ and
probabilities |·|². At these sizes the cost is the number of torch operations, not arithmetic,
so the kernel is ONE :class:`torch.autograd.Function` whose backward is written out:

    a = ψ Uᵀ,  p = |a|² (then the readout marginal),   ∂L/∂a = 2 (∂L/∂p) ⊙ a,
    ∂L/∂ψ = Re(∂L/∂a · conj(U)),  ∂L/∂U = (∂L/∂a)ᵀ ψ  → weights (layered) and angles (tree).

Complex numbers stay inside: U's real and imaginary parts are stacked into one real [D, 2D]
matrix so the batch sees real matmuls only. Circuits of any other shape use the generic
program (:mod:`qdt.sim.engine`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.autograd.function import once_differentiable

from qdt.noise.pauli import zero_state_coordinates
from qdt.sim.kernels.heisenberg import (
    HeisenbergSaved,
    HeisenbergSuffix,
    compile_heisenberg_suffix,
    heisenberg_backward,
    heisenberg_forward,
)
from qdt.sim.kernels.layered import (
    LayeredSaved,
    LayeredUnitary,
    compile_layered_unitary,
    layered_backward,
    layered_forward,
)
from qdt.sim.kernels.sparse_prefix import (
    PrefixSaved,
    SparsePrefix,
    compile_sparse_prefix,
    prefix_backward,
    prefix_forward,
)
from qdt.sim.kernels.tree import RotationTree, TreeSaved, compile_rotation_tree, tree_backward, tree_forward
from qdt.sim.lowering import LocalOp
from qdt.sim.program import (
    FUSE_MAX_DIM,
    marginal_matrix,
    partition,
    pauli_readout_functional,
    to_tensor,
)


@dataclass(frozen=True, eq=False)
class StatevectorKernel:
    """Probabilities [B, 2**m] of a rotation-tree + layered circuit (differentiable)."""

    tree: RotationTree
    suffix: LayeredUnitary
    marginal: torch.Tensor | None  # [D, 2**m] 0/1, None when every qubit is read out in order

    def __call__(self, angles: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return _StatevectorFunction.apply(angles, weights, self)


def compile_statevector_kernel(
    ops: list[LocalOp], num_qubits: int, readout: tuple[int, ...], n_angles: int, n_weights: int
) -> StatevectorKernel | None:
    """The kernel for lowered (and multiplexed) ``ops``, or None if they do not fit its shape."""
    if 2**num_qubits > FUSE_MAX_DIM:
        return None
    prefix, suffix = partition(ops)
    tree = compile_rotation_tree(prefix, num_qubits, n_angles, n_weights)
    if tree is None:
        return None
    layered = compile_layered_unitary(suffix, num_qubits, n_weights)
    if layered is None:
        return None
    marginal = marginal_matrix(num_qubits, readout)
    return StatevectorKernel(tree, layered, None if marginal is None else to_tensor(marginal))


@dataclass(eq=False)
class _Saved:
    psi: torch.Tensor
    tree: TreeSaved
    suffix: LayeredSaved
    readout_map: torch.Tensor  # Uᵀ, or [Re Uᵀ | Im Uᵀ]
    amplitudes: torch.Tensor


class _StatevectorFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, angles: torch.Tensor, weights: torch.Tensor, kernel: StatevectorKernel) -> torch.Tensor:  # type: ignore[override]
        psi, tree_saved = tree_forward(kernel.tree, angles, weights)
        unitary, suffix_saved = layered_forward(kernel.suffix, weights)
        if unitary.is_complex():
            transposed = unitary.mT
            readout_map = torch.cat([transposed.real, transposed.imag], dim=1)
        else:
            readout_map = unitary.mT
        amplitudes = psi @ readout_map
        squares = amplitudes.square()
        dim = kernel.tree.dim
        probs = squares.view(-1, 2, dim).sum(1) if unitary.is_complex() else squares
        if kernel.marginal is not None:
            probs = probs @ kernel.marginal
        ctx.kernel = kernel
        ctx.saved = _Saved(psi, tree_saved, suffix_saved, readout_map, amplitudes)
        return probs

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:  # type: ignore[override]
        kernel: StatevectorKernel = ctx.kernel
        saved: _Saved = ctx.saved
        need_angles, need_weights = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dim = kernel.tree.dim
        if kernel.marginal is not None:
            grad = grad @ kernel.marginal.T
        twice = grad + grad
        amplitudes = saved.amplitudes
        is_complex = amplitudes.shape[1] != dim
        if is_complex:
            grad_amplitudes = (twice[:, None, :] * amplitudes.view(-1, 2, dim)).view(-1, 2 * dim)
        else:
            grad_amplitudes = twice * amplitudes
        grad_angles = tree_weights = suffix_weights = None
        tree_uses_weights = kernel.tree.argument_weights is not None
        if need_angles or (need_weights and tree_uses_weights):
            grad_psi = grad_amplitudes @ saved.readout_map.T
            grad_angles, tree_weights = tree_backward(
                kernel.tree, saved.tree, grad_psi, need_angles, need_weights
            )
        if need_weights and kernel.suffix.half_weights is not None:
            grad_map = saved.psi.T @ grad_amplitudes  # ∂L/∂(readout_map)
            if is_complex:
                grad_transposed = torch.complex(grad_map[:, :dim], grad_map[:, dim:])
            else:
                grad_transposed = grad_map
            suffix_weights = layered_backward(kernel.suffix, saved.suffix, grad_transposed.mT)
        return grad_angles, _sum_present(tree_weights, suffix_weights), None


def _sum_present(first: torch.Tensor | None, second: torch.Tensor | None) -> torch.Tensor | None:
    """The weight gradient from the two parts of a kernel; a part that needs none gives None."""
    if first is None or second is None:
        return second if first is None else first
    return first + second


# ----------------------------------------------------------------------------- density matrices

PAULI_MAX_QUBITS = 5  # 4**5 Pauli coordinates; larger registers use the generic program


@dataclass(frozen=True, eq=False)
class PauliKernel:
    """Probabilities [B, 2**m] of a density-matrix program: sparse prefix on the state's
    support, suffix on the readout functional (Heisenberg picture), one contraction."""

    prefix: SparsePrefix
    suffix: HeisenbergSuffix

    def __call__(self, angles: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return _PauliFunction.apply(angles, weights, self)


def compile_pauli_kernel(
    ops: list[LocalOp], num_qubits: int, readout: tuple[int, ...], n_angles: int, n_weights: int
) -> PauliKernel | None:
    """The kernel for ops lowered to Pauli transfer matrices, or None if they do not fit."""
    if num_qubits > PAULI_MAX_QUBITS:
        return None
    prefix_ops, suffix_ops = partition(ops)
    prefix = compile_sparse_prefix(
        prefix_ops, num_qubits, zero_state_coordinates(num_qubits), n_angles, n_weights
    )
    if prefix is None:
        return None
    functional = pauli_readout_functional(num_qubits, readout).T
    suffix = compile_heisenberg_suffix(suffix_ops, num_qubits, functional, n_weights)
    if suffix is None:
        return None
    return PauliKernel(prefix, suffix)


@dataclass(eq=False)
class _PauliSaved:
    state: torch.Tensor  # [rows, B] or [rows, 1]
    prefix: PrefixSaved
    suffix: HeisenbergSaved
    functional: torch.Tensor  # Φ on the state's support [rows, R]


class _PauliFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, angles: torch.Tensor, weights: torch.Tensor, kernel: PauliKernel) -> torch.Tensor:  # type: ignore[override]
        state, prefix_saved = prefix_forward(kernel.prefix, angles, weights)
        phi, suffix_saved = heisenberg_forward(kernel.suffix, weights)
        functional = phi.index_select(0, kernel.prefix.support)
        probs = state.T @ functional
        if probs.shape[0] != angles.shape[0]:
            probs = probs.expand(angles.shape[0], -1).contiguous()
        ctx.kernel = kernel
        ctx.saved = _PauliSaved(state, prefix_saved, suffix_saved, functional)
        return probs

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:  # type: ignore[override]
        kernel: PauliKernel = ctx.kernel
        saved: _PauliSaved = ctx.saved
        need_angles, need_weights = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_angles = prefix_weights = suffix_weights = None
        prefix = kernel.prefix
        if prefix.steps and (need_angles or (need_weights and prefix.half_weights is not None)):
            grad_state = saved.functional @ grad.T
            grad_angles, prefix_weights = prefix_backward(
                prefix, saved.prefix, grad_state, need_angles, need_weights
            )
        if need_weights and kernel.suffix.half_weights is not None:
            state = saved.state
            grad_functional = (
                state @ grad if state.shape[1] == grad.shape[0] else state @ grad.sum(0, keepdim=True)
            )
            grad_phi = grad_functional.new_zeros(kernel.suffix.dim, grad.shape[1])
            grad_phi.index_copy_(0, prefix.support, grad_functional)
            suffix_weights = heisenberg_backward(kernel.suffix, saved.suffix, grad_phi)
        return grad_angles, _sum_present(prefix_weights, suffix_weights), None
