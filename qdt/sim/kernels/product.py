"""Product kernel: the paper's VQC at any width, every step costing O(B·2**n·small).

The circuit (:func:`qdt.circuits.build_vqc`) is a rotation tree that prepares a real state
ψ₀ = φ(x)/|φ(x)|, then L layers of RX(w[l·n + q]) on every qubit q and a CZ ring. This kernel
runs exactly that shape, for a batch of B encoding-angle rows and shared weights, without ever
forming a 2**n × 2**n matrix:

**State preparation in closed form.** Level ℓ of the tree (target t = n−1−ℓ, controls the ℓ
qubits above it, control value j = k >> (t+1)) rotates the fresh target by RY(α_{ℓ,j}), with
α_ℓ = θ_ℓ Mᵀ, M[j, i] = (−1)^{popcount(j & gray(i))} (``docs/design.md`` §3 and
:mod:`qdt.circuits.encoding`), i.e. a Walsh–Hadamard transform of the Gray-ordered angles.
The state is the product formula ψ[k] = Π_ℓ (cos or sin)(α_{ℓ, k>>(t+1)}/2), sin where bit t
of k is 1, built level by level: ψ_ℓ[2m + b] = ψ_{ℓ−1}[m] · (cos, sin)[b](α_{ℓ,m}/2) — one
broadcast product per level, O(B·2**n) in all. Small levels (ℓ < ``DENSE_LEVELS``) share one
block-diagonal matmul θ → α/2; larger ones use the fast transform (a Kronecker product of
Hadamard groups, as for the layers below).

**Real arithmetic.** With S = diag(1, i) on every qubit (T = S^{⊗n}, T[k] = i^{popcount(k)}),
T·RX(w)·T⁻¹ = RY(w) is real and the CZ ring's sign vector commutes with T, so

    p = |T⁻¹ A T ψ₀|² = |A T ψ₀|²,   A = Π_l (s ⊙ K_l),   K_l = ⊗_q RY(w[l·n + q]),

and T ψ₀ = χ_re + i χ_im splits ψ₀ by popcount(k) mod 4 into two real vectors (signs +, −
for popcount 0, 2 mod 4 in χ_re; 1, 3 in χ_im). The batch runs as 2B real columns through the
real orthogonal A: half the arithmetic of a complex state and no complex kernels. States are
laid out basis index first, batch last ([2**n, 2B]), so every group matmul below has the batch
in its inner dimension (:func:`~qdt.sim.kernels.product_tables.apply_group`).

**Layers.** K_l is a Kronecker product over qubit groups of at most ``GROUP_QUBITS`` qubits:
one 2**g × 2**g matrix per group applied to its axis of the state (a [2**(n−s−g), 2**g,
2**s·2B] view, one matmul each), then the ring's ±1 signs s. Cost per layer: 2B·2**n·Σ_groups
2**g multiply-adds in ⌈n/g⌉ torch calls. Up to ``UNITARY_QUBITS`` qubits the cost is the number
of torch calls, not arithmetic, and :mod:`qdt.sim.kernels.product_unitary` multiplies the
layers into one 2**n × 2**n matrix instead.

**Backward: the adjoint method.** Forward keeps the L + 1 layer inputs (each 2B·2**n reals).
Backward carries g = ∂L/∂χ down through (s ⊙ K_l)ᵀ, the same group matmuls with transposed
matrices. Since ∂RY(w)/∂w = RY(w)·J/2, J = [[0, −1], [1, 0]], and the groups commute,
∂L/∂w_{l,q} = ½⟨g_l, J_q χ_l⟩ with g_l, χ_l the gradient and state at layer l's input:
one correlator C = Σ_rows g ⊗ χ per group (a matmul) times a constant [4**g, g] matrix gives
every qubit's weight gradient. The tree's backward is the product formula's, level by level,
then the transposed Walsh transform. Measured (L = 6, B = 128, one thread, forward + backward):
uncomputing the states instead of keeping them (χ_l = K_lᵀ(s ⊙ χ_{l+1})) is 1.4–1.7× slower
at 8–12 qubits, torch autograd through the same operations 2–2.5× slower (and it keeps every
intermediate state); keeping L + 1 states costs 56 MiB at 12 qubits.

Memory of a forward + backward pass: the L + 1 saved states of 2B·2**n reals plus working
copies, at most (L + 41)·2B·2**n·8 bytes (12 qubits, L = 6, B = 128: 376 MiB; measured
228–283). :func:`check_width` refuses widths past ``MAX_QUBITS`` before allocating anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from torch.autograd.function import once_differentiable

from qdt.circuits.encoding import gray_control_bit
from qdt.circuits.vqc import ring_pairs
from qdt.errors import QdtInputError
from qdt.sim.engine import kron_layers
from qdt.sim.kernels.product_tables import (
    DENSE_LEVELS,
    GROUP_QUBITS,
    WalshLevel,
    apply_group,
    group_correlator,
    half_generators,
    level_transform,
    qubit_groups,
    ring_signs,
    twist_signs,
)
from qdt.sim.kernels.product_unitary import (
    SLOT_PHASE,
    TRIG_PHASE,
    UNITARY_QUBITS,
    UnitaryTables,
    unitary_tables,
)

MAX_QUBITS = 20  # 2**20 amplitudes × 2 parts × batch: past this a state does not fit in memory
# Working memory besides the L + 1 saved layer inputs, in copies of one [2**n, 2B] state: the tree's
# tables (trig 1, products 1), the backward's adjoint, tree gradients and the allocator's slack.
# Measured at 12 qubits, L = 6, B = 128: 228–283 MiB of peak RSS growth = 28–35 copies of 8 MiB;
# the bound leaves room for the allocator.
_WORKING_COPIES = 40


@dataclass(frozen=True, eq=False)
class ProductKernel:
    """The compiled kernel (see the module docstring); call it as ``kernel(angles, weights)``."""

    n_qubits: int
    n_layers: int
    dense_angles: int  # angles handled by ``dense_transform`` (levels < DENSE_LEVELS)
    dense_transform: torch.Tensor  # [dense_angles, dense_angles]: θ → α/2
    levels: tuple[WalshLevel, ...]  # tree levels >= DENSE_LEVELS
    trig_phase: torch.Tensor  # [2, 1]: cos(h − phase) = cos h, sin h
    twist: torch.Tensor  # [2**n, 2, 1]
    signs: torch.Tensor | None  # [2**n, 1], None without a CZ
    groups: tuple[tuple[int, int], ...]
    generators: tuple[torch.Tensor, ...]  # per group [4**g, g]
    slot_phase: torch.Tensor  # [4]: RY entries [[c, −s], [s, c]] as cos(w/2 − phase)
    angle_columns: torch.Tensor | None  # tree angle i ← angles[:, angle_columns[i]] (None: in order)
    weight_columns: torch.Tensor | None  # layer slot l·n + q ← weights[weight_columns[l·n + q]]
    unitary: UnitaryTables | None  # the dense path (small registers), see product_unitary

    @property
    def dim(self) -> int:
        return 1 << self.n_qubits

    @property
    def n_angles(self) -> int:
        return self.dim - 1

    def memory_bytes(self, batch: int) -> int:
        """Peak working memory of a forward + backward pass (float64), see the module docstring."""
        return (self.n_layers + 1 + _WORKING_COPIES) * 2 * batch * self.dim * 8

    def __call__(self, angles: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Probabilities [B, 2**n] (float64, differentiable in ``angles`` and ``weights``)."""
        if self.angle_columns is not None:
            angles = angles.index_select(1, self.angle_columns)
        if self.weight_columns is not None:
            weights = weights.index_select(0, self.weight_columns)
        if self.unitary is not None:
            return self.unitary(angles, weights)
        return _ProductFunction.apply(angles, weights, self)


def check_width(n_qubits: int, n_layers: int = 0, batch: int | None = None) -> None:
    """Refuse a width past ``MAX_QUBITS`` before allocating anything, naming the memory needed."""
    if n_qubits <= MAX_QUBITS:
        return
    rows = batch or 1
    needed = (n_layers + 1 + _WORKING_COPIES) * 2 * rows * (1 << n_qubits) * 8
    raise QdtInputError(
        "n_qubits",
        f"at most {MAX_QUBITS} qubits for the state-vector product kernel",
        n_qubits,
        f"{n_qubits} qubits need about {needed / 2**30:.1f} GiB for a batch of {rows}; use fewer "
        "qubits (a narrower input) or a shot-based backend (aer)",
    )


def product_kernel(
    n_qubits: int,
    n_layers: int,
    angle_columns: Sequence[int] | None = None,
    weight_columns: Sequence[int] | None = None,
    group_qubits: int = GROUP_QUBITS,
    unitary_qubits: int = UNITARY_QUBITS,
) -> ProductKernel:
    """The kernel of ``build_vqc(..., n_layers, n_qubits)`` (angles and weights in circuit order
    unless ``angle_columns``/``weight_columns`` say which input column feeds each). Registers of
    at most ``unitary_qubits`` qubits take the dense path (:mod:`qdt.sim.kernels.product_unitary`),
    larger ones the grouped one; ``group_qubits`` is the largest group."""
    check_width(n_qubits, n_layers)
    dense_levels = min(n_qubits, DENSE_LEVELS)
    dense_angles = (1 << dense_levels) - 1
    levels = tuple(WalshLevel.create(level, group_qubits) for level in range(dense_levels, n_qubits))
    groups = qubit_groups(n_qubits, group_qubits)
    signs = ring_signs(n_qubits)

    def columns(values: Sequence[int] | None, count: int) -> torch.Tensor | None:
        if values is None or list(values) == list(range(count)):
            return None
        return torch.as_tensor(list(values), dtype=torch.int64)

    return ProductKernel(
        n_qubits=n_qubits,
        n_layers=n_layers,
        dense_angles=dense_angles,
        dense_transform=torch.as_tensor(level_transform(dense_levels, inverse=True)),
        levels=levels,
        trig_phase=torch.tensor(TRIG_PHASE, dtype=torch.float64)[:, None],
        twist=torch.as_tensor(twist_signs(n_qubits)).T[:, :, None].contiguous(),
        signs=None if signs is None else torch.as_tensor(signs)[:, None],
        groups=groups,
        generators=tuple(torch.as_tensor(half_generators(g)) for _, g in groups),
        slot_phase=torch.tensor(SLOT_PHASE, dtype=torch.float64),
        angle_columns=columns(angle_columns, (1 << n_qubits) - 1),
        weight_columns=columns(weight_columns, n_qubits * n_layers),
        unitary=unitary_tables(n_qubits, n_layers) if n_qubits <= unitary_qubits else None,
    )


def compile_product_kernel(
    circuit: QuantumCircuit,
    angle_params: Sequence[Parameter],
    weight_params: Sequence[Parameter],
    readout_qubits: Sequence[int] | None = None,
    group_qubits: int = GROUP_QUBITS,
    unitary_qubits: int = UNITARY_QUBITS,
) -> ProductKernel | None:
    """The kernel for ``circuit`` if it has exactly the shape of :func:`qdt.circuits.build_vqc`
    (rotation tree, then L layers of RX on every qubit and the CZ ring, every rotation angle a
    bare parameter, all qubits read out in order), else None (use the generic program).

    Every RY of the tree must be a distinct parameter of ``angle_params`` and every RX a
    distinct parameter of ``weight_params``; they may be listed in any order.
    """
    n = circuit.num_qubits
    if n < 1 or n > MAX_QUBITS:
        return None
    if readout_qubits is not None and tuple(readout_qubits) != tuple(range(n)):
        return None
    # CircuitInstruction.name/.params/.qubits avoid building the Python gate objects (20× faster).
    instructions = [inst for inst in circuit.data if inst.name != "barrier"]
    tree_gates = (1 << n) - 1 + (1 << n) - 2
    layer_gates = n + len(ring_pairs(n))
    body = len(instructions) - tree_gates
    if body < 0 or body % layer_gates:
        return None
    n_layers = body // layer_gates
    if len(angle_params) != (1 << n) - 1 or len(weight_params) != n * n_layers:
        return None
    names: list[str] = []
    wires: list[tuple[int, ...]] = []
    for level in range(n):
        target = n - 1 - level
        for i in range(1 << level):
            names.append("ry")
            wires.append((target,))
            if level > 0:
                names.append("cx")
                wires.append((target + 1 + gray_control_bit(i, level), target))
    ring = ring_pairs(n)
    for _ in range(n_layers):
        names += ["rx"] * n + ["cz"] * len(ring)
        wires += [(q,) for q in range(n)] + ring
    # whole-list comparisons: 8 000 instructions at 12 qubits in a few milliseconds
    if [inst.name for inst in instructions] != names:
        return None
    position = {bit: i for i, bit in enumerate(circuit.qubits)}.__getitem__
    if [tuple(map(position, inst.qubits)) for inst in instructions] != wires:
        return None
    angle_columns = _columns([inst.params[0] for inst in instructions if inst.name == "ry"], angle_params)
    weight_columns = _columns([inst.params[0] for inst in instructions if inst.name == "rx"], weight_params)
    if angle_columns is None or weight_columns is None:
        return None
    return product_kernel(n, n_layers, angle_columns, weight_columns, group_qubits, unitary_qubits)


def _columns(used: list[object], params: Sequence[Parameter]) -> list[int] | None:
    """Column of ``params`` of each rotation's parameter; None unless each is a distinct one of them."""
    index = {p: i for i, p in enumerate(params)}
    if not all(isinstance(p, Parameter) and p in index for p in used):
        return None
    columns = [index[p] for p in used]  # type: ignore[index]
    return columns if len(set(columns)) == len(columns) else None


# ----------------------------------------------------------------------------- forward / backward


def _half_alphas(kernel: ProductKernel, angles: torch.Tensor) -> torch.Tensor:
    """α/2 [2**n − 1, B] of every level (level order, control value j within a level)."""
    transposed = angles.T
    dense = transposed if not kernel.levels else transposed[: kernel.dense_angles]
    parts = [kernel.dense_transform.T @ dense]
    for level in kernel.levels:  # α/2 = ½·H·P·θ
        parts.append(level.hadamard(level.block(transposed).index_select(0, level.from_gray)).mul_(0.5))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)


def _angle_gradient(kernel: ProductKernel, grad_half: torch.Tensor) -> torch.Tensor:
    """∂L/∂θ [B, 2**n − 1] from ∂L/∂(α/2) [2**n − 1, B]: the transposes of :func:`_half_alphas`."""
    dense = grad_half if not kernel.levels else grad_half[: kernel.dense_angles]
    parts = [kernel.dense_transform @ dense]
    for level in kernel.levels:  # ∂θ = ½·Pᵀ·H·∂(α/2)
        parts.append(level.hadamard(level.block(grad_half)).index_select(0, level.to_gray).mul_(0.5))
    return (parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)).T


def _layer_matrices(kernel: ProductKernel, weights: torch.Tensor) -> list[torch.Tensor]:
    """Per group, the layers' group matrices [L, 2**g, 2**g] (Kronecker products of RY)."""
    n, layers = kernel.n_qubits, kernel.n_layers
    slots = torch.cos(weights.view(layers, n, 1) * 0.5 - kernel.slot_phase).view(layers, n, 2, 2)
    matrices = []
    for start, size in kernel.groups:
        matrices.append(kron_layers(slots[:, start : start + size]))
    return matrices


@dataclass(eq=False)
class _Saved:
    trig: torch.Tensor  # [A, 2, B]: cos h, sin h
    products: list[torch.Tensor]  # ψ_ℓ [2**(ℓ+1), B] for ℓ < n − 1
    states: list[torch.Tensor]  # layer inputs χ_0 … χ_{L−1} and the output χ_L, [D, 2B]
    matrices: list[torch.Tensor]  # per group [L, 2**g, 2**g]


class _ProductFunction(torch.autograd.Function):
    """Layout: basis index first, batch last ([D, B] and [D, 2B] with the parts re, im as
    column blocks), see :func:`apply_group`."""

    @staticmethod
    def forward(ctx, angles: torch.Tensor, weights: torch.Tensor, kernel: ProductKernel) -> torch.Tensor:  # type: ignore[override]
        batch, dim = angles.shape[0], kernel.dim
        half = _half_alphas(kernel, angles)
        trig = torch.sub(half.unsqueeze(1), kernel.trig_phase).cos_()
        products = []
        psi = trig[0]
        for level in range(1, kernel.n_qubits):
            products.append(psi)
            start = (1 << level) - 1
            psi = (psi.unsqueeze(1) * trig[start : start + (1 << level)]).view(-1, batch)
        state = (psi.unsqueeze(1) * kernel.twist).view(dim, 2 * batch)
        states = [state]
        matrices = _layer_matrices(kernel, weights) if kernel.n_layers else []
        for layer in range(kernel.n_layers):
            for (start, size), group in zip(kernel.groups, matrices):
                state = apply_group(group[layer], state, start, size)
            if kernel.signs is not None:
                state = state * kernel.signs
            states.append(state)
        ctx.kernel = kernel
        ctx.saved = _Saved(trig, products, states, matrices)
        return state.view(dim, 2, batch).square().sum(1).T.contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:  # type: ignore[override]
        kernel: ProductKernel = ctx.kernel
        saved: _Saved = ctx.saved
        need_angles, need_weights = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        batch, dim, layers = grad.shape[0], kernel.dim, kernel.n_layers
        states = saved.states
        grad_columns = grad.T.contiguous()  # a broadcast product with a transposed view is 5× slower
        adjoint = states[-1].view(dim, 2, batch).mul(grad_columns.unsqueeze(1)).mul_(2.0).view(dim, 2 * batch)
        correlators: list[list[torch.Tensor]] = [[] for _ in kernel.groups]
        transposed = [group.transpose(1, 2).contiguous() for group in saved.matrices]
        for layer in reversed(range(layers)):
            if kernel.signs is not None:
                adjoint = adjoint * kernel.signs
            for (start, size), group in zip(reversed(kernel.groups), reversed(transposed)):
                adjoint = apply_group(group[layer], adjoint, start, size)
            if need_weights:
                for j, (start, size) in enumerate(kernel.groups):
                    correlators[j].append(group_correlator(adjoint, states[layer], start, size))
        grad_weights = None
        if need_weights:
            if layers == 0:
                grad_weights = grad.new_zeros(0)
            else:
                parts = [
                    torch.stack(c[::-1]).view(layers, -1) @ generators
                    for c, generators in zip(correlators, kernel.generators)
                ]
                grad_weights = torch.cat(parts, dim=1).reshape(-1)
        grad_angles = None
        if need_angles:
            grad_psi = adjoint.view(dim, 2, batch).mul(kernel.twist).sum(1)
            trig = saved.trig
            grad_pairs = torch.empty_like(trig)  # [A, 2, B]: ∂L/∂cos h, ∂L/∂sin h, level by level
            for level in reversed(range(1, kernel.n_qubits)):
                start, stop = (1 << level) - 1, (1 << (level + 1)) - 1
                pairs = grad_psi.view(1 << level, 2, batch)
                torch.mul(pairs, saved.products[level - 1].unsqueeze(1), out=grad_pairs[start:stop])
                grad_psi = (pairs * trig[start:stop]).sum(1)
            grad_pairs[0] = grad_psi.view(2, batch)
            # d cos h = −sin h dh, d sin h = cos h dh
            grad_half = torch.addcmul(grad_pairs[:, 1] * trig[:, 0], grad_pairs[:, 0], trig[:, 1], value=-1.0)
            grad_angles = _angle_gradient(kernel, grad_half)
        return grad_angles, grad_weights, None
