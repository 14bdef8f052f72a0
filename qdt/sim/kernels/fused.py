"""Fast density-matrix kernel for small registers: sparse prefix, Heisenberg suffix, one contraction.

For a circuit whose batch-dependent prefix is sparse in Pauli coordinates (the rotation tree of
the paper's VQC with noise on every gate, :mod:`qdt.sim.kernels.sparse_prefix`) and whose
batch-shared suffix is layered (:mod:`qdt.sim.kernels.heisenberg`), on up to ``PAULI_MAX_QUBITS``
qubits: the prefix runs on the batch over the state's support, the suffix on the 2**m readout
functionals (Heisenberg picture), and the two meet in one matmul, with the backward pass written
out. The density executor takes it when the noise reaches the encoding tree; with a noiseless
tree, :mod:`qdt.sim.kernels.product_density` runs the paper's circuit at any width up to its
limit. Circuits of any other shape use the generic program (:mod:`qdt.sim.engine`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.autograd.function import once_differentiable

from qdt.noise.pauli import zero_state_coordinates
from qdt.sim.device import on_device
from qdt.sim.kernels.heisenberg import (
    HeisenbergSaved,
    HeisenbergSuffix,
    compile_heisenberg_suffix,
    heisenberg_backward,
    heisenberg_forward,
)
from qdt.sim.kernels.sparse_prefix import (
    PrefixSaved,
    SparsePrefix,
    compile_sparse_prefix,
    prefix_backward,
    prefix_forward,
)
from qdt.sim.lowering import LocalOp
from qdt.sim.program import partition, pauli_readout_functional


def _sum_present(first: torch.Tensor | None, second: torch.Tensor | None) -> torch.Tensor | None:
    """The weight gradient from the two parts of a kernel; a part that needs none gives None."""
    if first is None or second is None:
        return second if first is None else first
    return first + second


PAULI_MAX_QUBITS = 5  # 4**5 Pauli coordinates; larger registers use the generic program


@dataclass(frozen=True, eq=False)
class PauliKernel:
    """Probabilities [B, 2**m] of a density-matrix program: sparse prefix on the state's
    support, suffix on the readout functional (Heisenberg picture), one contraction."""

    prefix: SparsePrefix
    suffix: HeisenbergSuffix

    def __call__(self, angles: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return _PauliFunction.apply(angles, weights, on_device(self, angles.device))


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
