"""The amplitude encoding's angles in O(B·2**n·n): the same map as
:class:`qdt.circuits.encoding.AmplitudeEncoder`, without its dense 2**n × 2**n matrices.

``AmplitudeEncoder`` computes the subtree norms with a dense [2**n, 2**n − 2] 0/1 matrix and the
Gray–Walsh transform with a dense [2**n − 1, 2**n − 1] matrix: B·4**n work per call (1 s for a
forward + backward pass at 12 qubits, batch 128) and an O(4**n) Python loop to build them (6 s
at 12 qubits). Here the squared norms of all subtrees come from n − 1 pairwise sums (block
sizes 2, 4, …), and the transform of level ℓ is θ_ℓ = 2·P⁻¹ H h_ℓ / 2**ℓ with the fast
Hadamard of :class:`~qdt.sim.kernels.product.WalshLevel` (levels below ``DENSE_LEVELS`` share
one small dense matrix). Values and gradients equal the encoder's, zero-norm masks included
(``docs/design.md`` §3; tested against it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from qdt.circuits.encoding import FEATURE_OFFSET, AmplitudeEncoder
from qdt.errors import QdtInputError
from qdt.sim.kernels.product import check_width
from qdt.sim.kernels.product_tables import DENSE_LEVELS, GROUP_QUBITS, WalshLevel, level_transform


@dataclass(frozen=True, eq=False)
class FastAmplitudeAngles:
    """inputs [B, d] → encoding angles [B, 2**n − 1], as ``AmplitudeEncoder.__call__``."""

    input_width: int
    n_qubits: int
    bias: torch.Tensor  # [2**n, 1]: φ = 2·x (padded) + bias
    dense_angles: int
    dense_transform: torch.Tensor  # [dense_angles, dense_angles]: θᵀ = T·hᵀ for levels < DENSE_LEVELS
    levels: tuple[WalshLevel, ...]

    @classmethod
    def create(cls, input_width: int, n_qubits: int, group_qubits: int = GROUP_QUBITS) -> FastAmplitudeAngles:
        check_width(n_qubits)
        size = 1 << n_qubits
        if not 1 <= input_width <= size:
            raise QdtInputError("input_width", f"an integer from 1 to 2**{n_qubits} = {size}", input_width)
        bias = np.zeros(size)
        bias[:input_width] = -1.0
        bias[0] += FEATURE_OFFSET
        if input_width == 1:
            bias[1] = 1.0
        dense_levels = min(n_qubits, DENSE_LEVELS)
        dense_angles = (1 << dense_levels) - 1
        return cls(
            input_width=input_width,
            n_qubits=n_qubits,
            bias=torch.as_tensor(bias)[:, None],
            dense_angles=dense_angles,
            dense_transform=torch.as_tensor(level_transform(dense_levels, inverse=False).T.copy()),
            levels=tuple(WalshLevel.create(level, group_qubits) for level in range(dense_levels, n_qubits)),
        )

    def __call__(self, inputs: torch.Tensor | np.ndarray) -> torch.Tensor:
        # the encoder's own checks (shape, real, finite): they read only ``input_width``
        return _AnglesFunction.apply(AmplitudeEncoder._validated(self, inputs), self)  # type: ignore[arg-type]

    def transform(self, half: torch.Tensor) -> torch.Tensor:
        """θᵀ [2**n − 1, B] from the half-angles hᵀ (level order)."""
        dense = half if not self.levels else half[: self.dense_angles]
        parts = [self.dense_transform @ dense]
        for level in self.levels:  # θ_ℓ = 2·P⁻¹·H·h_ℓ / 2**ℓ
            parts.append(
                level.hadamard(level.block(half)).index_select(0, level.to_gray) * (2.0 / level.size)
            )
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)

    def transform_transposed(self, grad: torch.Tensor) -> torch.Tensor:
        """∂L/∂hᵀ from ∂L/∂θᵀ (the transpose of :meth:`transform`)."""
        dense = grad if not self.levels else grad[: self.dense_angles]
        parts = [self.dense_transform.T @ dense]
        for level in self.levels:
            parts.append(
                level.hadamard(level.block(grad).index_select(0, level.from_gray)) * (2.0 / level.size)
            )
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)


@dataclass(eq=False)
class _Saved:
    amplitudes: torch.Tensor  # φᵀ [D, B]
    pairs: torch.Tensor  # [A, 2, B]: (left, right) of every node; norms above the leaves
    inner: int  # nodes above the leaf level (2**(n−1) − 1)


class _AnglesFunction(torch.autograd.Function):
    """Forward and backward of ``AmplitudeEncoder``'s ``_EncodingAngles``, basis index first."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, encoder: FastAmplitudeAngles) -> torch.Tensor:  # type: ignore[override]
        batch, width = x.shape
        dim = 1 << encoder.n_qubits
        amplitudes = encoder.bias.expand(dim, batch).clone()
        amplitudes[:width].add_(x.T.contiguous(), alpha=2.0)  # adding a transposed view is 5× slower
        leaves = amplitudes.view(dim // 2, 2, batch)
        sums = []  # squared norms: level ℓ's children are blocks of 2**(n−1−ℓ) amplitudes
        block = (amplitudes * amplitudes).view(dim // 2, 2, batch).sum(1)
        for _ in range(encoder.n_qubits - 1):
            sums.append(block.view(-1, 2, batch))
            if block.shape[0] > 2:
                block = block.view(-1, 2, batch).sum(1)
        inner = dim // 2 - 1
        norms = [torch.sqrt(torch.cat(sums[::-1], dim=0))] if sums else []
        pairs = torch.cat([*norms, leaves], dim=0)
        half = torch.atan2(pairs[:, 1], pairs[:, 0] + 0.0)
        ctx.encoder = encoder
        ctx.saved = _Saved(amplitudes, pairs, inner)
        return encoder.transform(half).T

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:  # type: ignore[override]
        if not ctx.needs_input_grad[0]:
            return None, None
        encoder: FastAmplitudeAngles = ctx.encoder
        saved: _Saved = ctx.saved
        batch, dim, inner = grad.shape[0], 1 << encoder.n_qubits, saved.inner
        left, right = saved.pairs[:, 0], saved.pairs[:, 1]
        both_zero = (left == 0) & (right == 0)
        safe_left = left.masked_fill(both_zero, 1.0)
        grad_half = encoder.transform_transposed(grad.T.contiguous())
        scaled = grad_half / torch.addcmul(safe_left * safe_left, right, right)
        grad_pairs = torch.stack(
            [(scaled * right).neg_().masked_fill_(both_zero, 0.0), scaled * safe_left], 1
        )
        grad_amplitudes = grad_pairs[inner:].reshape(dim, batch)  # leaves: signed amplitudes
        if inner:
            norms = saved.pairs[:inner]
            zero = norms == 0
            grad_squared = (grad_pairs[:inner] / (2.0 * norms.masked_fill(zero, 1.0))).masked_fill_(zero, 0.0)
            # every amplitude's share: the sum of its enclosing nodes' ∂L/∂(squared norm), top down
            total = grad_squared[0].reshape(2, batch)
            for level in range(1, encoder.n_qubits - 1):
                start = (1 << level) - 1
                node = grad_squared[start : start + (1 << level)].reshape(-1, batch)
                total = total.repeat_interleave(2, dim=0) + node
            total = total.repeat_interleave(dim // total.shape[0], dim=0)
            grad_amplitudes = torch.addcmul(grad_amplitudes, saved.amplitudes, total, value=2.0)
        return 2.0 * grad_amplitudes[: encoder.input_width].T, None
