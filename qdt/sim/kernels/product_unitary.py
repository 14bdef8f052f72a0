"""The product kernel's small-register path: the whole circuit as one real 2**n × 2**n matrix.

Up to ``UNITARY_QUBITS`` qubits the arithmetic is negligible and the cost of a call is the
number of torch operations (about 20 forward and 20 backward here), so (same algebra as
:mod:`qdt.sim.kernels.product`, real by the twist T = diag(i**popcount(k))):

- the tree: α/2 = θ·E⁻¹ and its cos and sin as one addmm and one cos, then
  ψ₀[k] = Π_ℓ (cos or sin)(α_{ℓ, k>>(t+1)}/2) as one gather and one product over the n levels,
  batch first ([B, 2**n]);
- the layers: F_l[x, y] = s[x]·Π_q RY(w[l·n + q])[x_q, y_q] for all layers at once (one addmm,
  one cos, one gather, one product: s[x] = ±1 is cos(0) or cos(π)), the prefixes
  P_l = F_{l−1} ⋯ F_0 (L − 1 small matmuls), U = P_L; nothing per batch row is dense;
- the readout: R = [U·diag(t_re); U·diag(t_im)] (T's real and imaginary parts), amplitudes
  a = ψ₀ Rᵀ [B, 2·2**n], p = (a ⊙ a)·[I; I].

Backward, with g = ∂L/∂a = 2 (∂L/∂p) ⊙ a (one matmul with 2·[I | I], one product): for the weights
the correlator at layer l's input is C_l = P_l N P_lᵀ with N = Uᵀ Σ_parts (gᵀψ₀)_part·diag(t_part)
(all layers in two batched matmuls), and ∂L/∂w_{l,q} = ⟨C_l, ½J_q⟩ (one matmul with the constant
generators); for the angles ∂L/∂ψ₀ = g R, and a tree factor f = cos(u), u = α/2 − φ, has
f·∂L/∂f = Σ_k ∂L/∂ψ₀[k]·ψ₀[k] over the amplitudes k it is a factor of (one matmul with a 0/1
table), so ∂L/∂u = −sin(u)·∂L/∂f = −tan(u)·(f·∂L/∂f): no gather of the other levels' factors,
no division (tan u is finite: the cosine of a float64 is never 0; ψ₀[k]·tan u is the other
factors times sin u to a few ulps).

Given ψ₀ itself rather than the angles (the encoded state, ``StatevectorExecutor.run_encoded``):
p = ((ψ₀ Rᵀ) ⊙ (ψ₀ Rᵀ))·[I; I] with R from :meth:`UnitaryTables.layers`, without gradients through
the kept R of :meth:`UnitaryTables.readout`, with them by autograd through the layers' D × D
products (:meth:`UnitaryTables.differentiable_state_probabilities`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from qdt.circuits.encoding import level_transform
from qdt.sim.device import cpu_tensor, on_device
from qdt.sim.kernels.product_tables import half_generators, ring_signs, twist_signs

# Up to this width the kernel takes the dense path: forward + backward at L = 6, B = 128, one thread,
# interleaved medians (load 3), dense vs grouped: 1.18 vs 2.26 ms at 5 qubits, 2.68 vs 2.96 at 6,
# 9.7 vs 4.7 at 7, as the D³ products take over.
UNITARY_QUBITS = 6
TRIG_PHASE = (0.0, math.pi / 2)  # cos(h − φ) = cos h, sin h: the tree's factors
SLOT_PHASE = (0.0, -math.pi / 2, math.pi / 2, 0.0)  # RY(w) = [[c, −s], [s, c]] as cos(w/2 − φ)


@dataclass(frozen=True, eq=False)
class UnitaryTables:
    """Everything the dense path needs, built once per (n, L)."""

    n_qubits: int
    n_layers: int
    # tree: arguments [B, 2A] = θ·tree_matrix + tree_constant, cos of them = (cos h_a, sin h_a) pairs
    tree_matrix: torch.Tensor  # [A, 2A]: θ → α/2, each column twice
    tree_matrix_t: torch.Tensor  # [2A, A]: its transpose, negated (f' = −sin)
    tree_constant: torch.Tensor  # [2A]: 0 and −π/2
    tree_index: torch.Tensor  # [n·D]: column of level ℓ's factor of amplitude k
    tree_sums: torch.Tensor  # [D, 2A]: 0/1, amplitude k → the n factor columns it is the product of
    # layers: arguments [L, 4n + 2] = w.view(L, n)·slot_matrix + slot_constant; cos of them are the
    # RY entries [[c, −s], [s, c]] of every qubit, then +1 and −1 (the ring's signs)
    slot_matrix: torch.Tensor  # [n, 4n + 2]
    slot_constant: torch.Tensor  # [4n + 2]
    layer_index: torch.Tensor  # [D·D·(n + 1)]: F_l[x, y] = Π of these entries
    twist: torch.Tensor  # [2, 1, D]: T's real and imaginary parts, scaling U's columns
    doubled: torch.Tensor  # [D, 2D]: 2·[I | I], ∂L/∂p → 2·∂L/∂p on both parts
    parts: torch.Tensor  # [2D, D]: [I; I], a² → p
    generators: torch.Tensor  # [D², n]: ½J_q flattened
    identity: torch.Tensor  # [D, D]
    # [(the last weights given to :meth:`readout`, their R)], empty before the first call
    last_readout: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list, repr=False)
    # [((scale, W), R, bias of the last :meth:`affine_probabilities` call, its folded matrix, offset)]
    last_folded: list[tuple[tuple[float, int], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = (
        field(default_factory=list, repr=False)
    )

    @property
    def dim(self) -> int:
        return 1 << self.n_qubits

    def __call__(self, angles: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return _UnitaryFunction.apply(angles, weights, on_device(self, angles.device))

    def layers(self, weights: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The prefixes P_0 = I, P_1, …, P_L = U [D, D] of the weights' layers and the readout
        R = [U·diag(t_re); U·diag(t_im)] [2D, D] (module docstring)."""
        n, layers, dim = self.n_qubits, self.n_layers, self.dim
        prefixes = [self.identity]
        if layers:
            entries = torch.addmm(self.slot_constant, weights.view(layers, n), self.slot_matrix).cos()
            gathered = entries.t().contiguous().index_select(0, self.layer_index)  # [D·D·(n + 1), L]
            steps = gathered.view(dim, dim, n + 1, layers).prod(2).permute(2, 0, 1)
            for step in steps.unbind(0):
                prefixes.append(step if len(prefixes) == 1 else torch.mm(step, prefixes[-1]))
        return prefixes, (prefixes[-1] * self.twist).view(2 * dim, dim)

    def state_probabilities(self, psi: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Probabilities [B, D] of the layers acting on prepared states ψ₀ [B, D] (real, unit norm)
        given directly instead of as the tree's angles: no tree, no gradient."""
        tables = on_device(self, psi.device)
        return self._state_probabilities(psi, tables.readout(weights))

    def differentiable_state_probabilities(self, psi: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """:meth:`state_probabilities` with gradients to ψ₀ and the weights, by autograd through
        :meth:`layers` and one product with R: the same function as a call on the angles that
        prepare ψ₀, so the same values and gradients to rounding, without the angles, the tree or
        the correlators of the custom backward (training's actor calls, qdt/rl/construct.py)."""
        tables = on_device(self, psi.device)
        return self._state_probabilities(psi, tables.layers(weights)[1])

    def _state_probabilities(self, psi: torch.Tensor, readout: torch.Tensor) -> torch.Tensor:
        """p = ((ψ₀ Rᵀ) ⊙ (ψ₀ Rᵀ))·[I; I] [B, D] for states ψ₀ [B, D] and the readout R [2D, D]."""
        amplitudes = torch.nn.functional.linear(psi, readout)  # [B, 2D]: real parts, imaginary parts
        return amplitudes.square().view(-1, 2, self.dim).sum(1)

    def affine_probabilities(
        self, x: torch.Tensor, weights: torch.Tensor, scale: float, bias: torch.Tensor
    ) -> torch.Tensor:
        """|R φ|² [B, D] (real and imaginary parts summed) for φ = scale·[x, 0] + ``bias`` (x [B, W],
        W ≤ D, ``bias`` D values), without gradient and not normalised: R preserves norms, so the row
        sums are |φ|², and divided by them these are the probabilities of the state φ/|φ|
        (:meth:`state_probabilities`). φ is affine in x, so R φ = x (scale·R[:, :W])ᵀ + R·bias is
        one addmm on the inputs, the folded matrix and offset made once per weights (with R, by
        :meth:`readout`): no φ, no norm, no normalised state per call (a construction's N calls,
        qdt/rl/construct.py)."""
        readout = self.readout(weights)
        last = self.last_folded[0] if self.last_folded else None
        key = (float(scale), x.shape[1])  # and R, the same object while the weights are, and the bias
        if last is None or last[0] != key or last[1] is not readout or last[2] is not bias:
            with torch.no_grad():
                matrix = (scale * readout[:, : x.shape[1]]).t().contiguous()  # [W, 2D]
                offset = torch.mv(readout, bias.reshape(-1).to(readout.dtype))  # [2D]
            last = (key, readout, bias, matrix, offset)
            self.last_folded[:] = [last]
        amplitudes = torch.addmm(last[4], x, last[3])  # [B, 2D]: real parts, imaginary parts
        real, imaginary = amplitudes[:, : self.dim], amplitudes[:, self.dim :]
        return torch.addcmul(imaginary.square(), real, real)

    def readout(self, weights: torch.Tensor) -> torch.Tensor:
        """The readout R of :meth:`layers` for ``weights``, without gradient: computed again only
        when the weights' values differ from the last call's (a construction calls the circuit N
        times with the same weights: the L − 1 products of D × D matrices and the gather behind R
        were a fifth of a tight 64 × 8 quantum decision). The same R as :meth:`layers` gives, bit for
        bit: the same operations on the same values."""
        last = self.last_readout[0] if self.last_readout else None  # one read: (weights, R) together
        if (
            last is not None
            and last[0].shape == weights.shape
            and last[0].dtype == weights.dtype
            and last[0].device == weights.device
            and torch.equal(last[0], weights)
        ):
            return last[1]
        with torch.no_grad():
            readout = self.layers(weights)[1]
        self.last_readout[:] = [(weights.detach().clone(), readout)]
        return readout


def unitary_tables(n_qubits: int, n_layers: int) -> UnitaryTables:
    n, dim = n_qubits, 1 << n_qubits
    k = np.arange(dim)
    tree_index = np.empty((n, dim), dtype=np.int64)
    for level in range(n):
        target = n - 1 - level
        node = (1 << level) - 1 + (k >> (target + 1))
        tree_index[level] = 2 * node + ((k >> target) & 1)  # column 2a: cos h_a, 2a + 1: sin h_a
    tree_sums = np.zeros((dim, 2 * (dim - 1)))
    for level in range(n):
        tree_sums[k, tree_index[level]] = 1.0
    tree_matrix = np.repeat(level_transform(n, inverse=True), 2, axis=1)
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
    identity = np.eye(dim)
    return UnitaryTables(
        n_qubits=n,
        n_layers=n_layers,
        tree_matrix=cpu_tensor(tree_matrix),
        tree_matrix_t=cpu_tensor(-tree_matrix.T),
        tree_constant=cpu_tensor(-np.tile(TRIG_PHASE, dim - 1)),
        tree_index=cpu_tensor(tree_index.reshape(-1)),
        tree_sums=cpu_tensor(tree_sums),
        slot_matrix=cpu_tensor(slot_matrix),
        slot_constant=cpu_tensor(slot_constant),
        layer_index=cpu_tensor(layer_index.reshape(-1)),
        twist=cpu_tensor(twist_signs(n))[:, None, :].contiguous(),
        doubled=cpu_tensor(2.0 * np.hstack([identity, identity])),
        parts=cpu_tensor(np.vstack([identity, identity])),
        generators=cpu_tensor(half_generators(n)),
        identity=cpu_tensor(identity),
    )


@dataclass(eq=False)
class _Saved:
    arguments: torch.Tensor  # [2A, B]
    psi: torch.Tensor  # [B, D]
    prefixes: list[torch.Tensor]  # P_0 = I, P_1, …, P_L = U, each [D, D]
    readout: torch.Tensor  # [2D, D]
    amplitudes: torch.Tensor  # [B, 2D]


class _UnitaryFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, angles: torch.Tensor, weights: torch.Tensor, tables: UnitaryTables) -> torch.Tensor:  # type: ignore[override]
        batch, n, dim = angles.shape[0], tables.n_qubits, tables.dim
        # Batch last for the gathers: index_select picks whole rows (10x faster than columns on CPU).
        arguments = torch.addmm(tables.tree_constant[:, None], tables.tree_matrix.t(), angles.t())  # [2A, B]
        factors = arguments.cos().index_select(0, tables.tree_index)
        psi = (factors.view(n, dim, batch).prod(0) if n > 1 else factors).t()  # [B, D], a view
        prefixes, readout = tables.layers(weights)
        amplitudes = torch.nn.functional.linear(psi, readout)
        ctx.tables = tables
        ctx.saved = _Saved(arguments, psi, prefixes, readout, amplitudes)
        return torch.mm(amplitudes.square(), tables.parts)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:  # type: ignore[override]
        tables: UnitaryTables = ctx.tables
        saved: _Saved = ctx.saved
        layers, dim = tables.n_layers, tables.dim
        grad_amplitudes = torch.mm(grad, tables.doubled).mul_(saved.amplitudes)
        grad_weights = None
        if ctx.needs_input_grad[1] and layers:  # no layers: no weights, no gradient
            grad_readout = torch.mm(grad_amplitudes.t(), saved.psi).view(2, dim, dim)
            correlator = torch.mm(saved.prefixes[-1].t(), (grad_readout * tables.twist).sum(0))
            before = torch.stack(saved.prefixes[:-1])
            per_layer = before @ correlator @ before.mT
            grad_weights = torch.mm(per_layer.view(layers, -1), tables.generators).view(-1)
        grad_angles = None
        if ctx.needs_input_grad[0]:
            grad_psi = torch.mm(grad_amplitudes, saved.readout)
            scaled = torch.mm(grad_psi.mul_(saved.psi), tables.tree_sums)  # f·∂L/∂f per factor
            grad_arguments = saved.arguments.t().tan().mul_(scaled)  # −∂L/∂u (the sign: tree_matrix_t)
            grad_angles = torch.mm(grad_arguments, tables.tree_matrix_t)
        return grad_angles, grad_weights, None
