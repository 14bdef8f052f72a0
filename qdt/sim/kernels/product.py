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

**Readout.** Every qubit in order gives the 2**n probabilities; any other ``readout_qubits``
(a subset, or a permutation) sums them onto the readout bits with one ``index_add``.

Memory of a forward + backward pass: the L + 1 saved states of 2B·2**n reals plus working
copies, at most (L + 41)·2B·2**n·8 bytes (12 qubits, L = 6, B = 128: 376 MiB; measured
228–283). :func:`width_error` is the refusal past ``MAX_QUBITS`` (or an executor's own
``max_qubits``), raised before anything is allocated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from torch.autograd.function import once_differentiable

from qdt.circuits.encoding import GROUP_QUBITS, TreeTransform, apply_group, gray_control_bit, qubit_groups
from qdt.circuits.vqc import ring_pairs
from qdt.errors import QdtInputError
from qdt.sim.device import cpu_tensor, on_device
from qdt.sim.engine import kron_layers
from qdt.sim.kernels.product_tables import (
    group_correlator,
    half_generators,
    ring_signs,
    twist_signs,
    weight_gradient,
)
from qdt.sim.kernels.product_unitary import (
    SLOT_PHASE,
    TRIG_PHASE,
    UNITARY_QUBITS,
    UnitaryTables,
    unitary_tables,
)

MAX_QUBITS = 20  # 2**20 amplitudes × 2 parts × batch: past this a state does not fit in memory
REFERENCE_BATCH = 128  # the batch a refusal message sizes its memory estimate for (training's)
REFERENCE_LAYERS = 6  # and the paper's deepest circuit
# Working memory besides the L + 1 saved layer inputs, in copies of one [2**n, 2B] state: the tree's
# tables (trig 1, products 1), the backward's adjoint, tree gradients and the allocator's slack.
# Measured at 12 qubits, L = 6, B = 128: 228–283 MiB of peak RSS growth = 28–35 copies of 8 MiB;
# the bound leaves room for the allocator.
_WORKING_COPIES = 40


def memory_bytes(n_qubits: int, n_layers: int, batch: int) -> int:
    """Upper bound of a forward + backward pass's working memory (float64), see the module docstring."""
    return (n_layers + 1 + _WORKING_COPIES) * 2 * batch * (1 << n_qubits) * 8


def width_error(n_qubits: int, limit: int, executor: str = "statevector") -> QdtInputError:
    """The refusal of a ``n_qubits``-qubit circuit by a state-vector simulation capped at ``limit``
    qubits: the width, the memory it would need and the alternatives."""
    needed = memory_bytes(n_qubits, REFERENCE_LAYERS, REFERENCE_BATCH)
    row = 2 * (1 << n_qubits) * 8
    return QdtInputError(
        "circuit",
        f"at most {limit} qubits that carry gates or are read out, on the {executor} executor",
        f"{n_qubits} qubits",
        f"a state of {n_qubits} qubits is {_size(row)} per batch row, and a forward + backward pass of "
        f"the paper's circuit (L = {REFERENCE_LAYERS}, batch {REFERENCE_BATCH}) needs about {_size(needed)}; "
        "use fewer qubits (a narrower input), or aer with shots (open_backend('aer', shots=...))",
    )


def _size(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"


@dataclass(frozen=True, eq=False)
class ProductTree:
    """The rotation tree in closed form: angles [B, 2**n − 1] → ψ₀ [2**n, B] (real), and back."""

    n_qubits: int
    transform: TreeTransform  # θ → α/2 (``half_angles``) and its transpose
    trig_phase: torch.Tensor  # [2, 1]: cos(h − phase) = cos h, sin h

    @classmethod
    def create(cls, n_qubits: int, group_qubits: int = GROUP_QUBITS) -> ProductTree:
        return cls(
            n_qubits=n_qubits,
            transform=TreeTransform.create(n_qubits, group_qubits),
            trig_phase=cpu_tensor(TRIG_PHASE, dtype=torch.float64)[:, None],
        )

    def forward(self, angles: torch.Tensor) -> tuple[torch.Tensor, TreeSaved]:
        """ψ₀ [2**n, B] and what :meth:`backward` needs."""
        batch = angles.shape[0]
        half = self.transform.half_angles(angles.T)
        trig = torch.sub(half.unsqueeze(1), self.trig_phase).cos_()  # [A, 2, B]: cos h, sin h
        products = []
        psi = trig[0]
        for level in range(1, self.n_qubits):
            products.append(psi)
            start = (1 << level) - 1
            psi = (psi.unsqueeze(1) * trig[start : start + (1 << level)]).view(-1, batch)
        return psi, TreeSaved(trig, products)

    def backward(self, saved: TreeSaved, grad_psi: torch.Tensor) -> torch.Tensor:
        """∂L/∂angles [B, 2**n − 1] from ∂L/∂ψ₀ [2**n, B]: the product formula level by level,
        then the transposed Walsh transform."""
        batch = grad_psi.shape[1]
        trig = saved.trig
        grad_pairs = torch.empty_like(trig)  # [A, 2, B]: ∂L/∂cos h, ∂L/∂sin h, level by level
        for level in reversed(range(1, self.n_qubits)):
            start, stop = (1 << level) - 1, (1 << (level + 1)) - 1
            pairs = grad_psi.view(1 << level, 2, batch)
            torch.mul(pairs, saved.products[level - 1].unsqueeze(1), out=grad_pairs[start:stop])
            grad_psi = (pairs * trig[start:stop]).sum(1)
        grad_pairs[0] = grad_psi.view(2, batch)
        # d cos h = −sin h dh, d sin h = cos h dh
        grad_half = torch.addcmul(grad_pairs[:, 1] * trig[:, 0], grad_pairs[:, 0], trig[:, 1], value=-1.0)
        return self.transform.half_angles_transposed(grad_half).T


@dataclass(eq=False)
class TreeSaved:
    trig: torch.Tensor  # [A, 2, B]: cos h, sin h
    products: list[torch.Tensor]  # ψ_ℓ [2**(ℓ+1), B] for ℓ < n − 1


@dataclass(frozen=True, eq=False)
class ProductKernel:
    """The compiled kernel (see the module docstring); call it as ``kernel(angles, weights)``."""

    n_qubits: int
    n_layers: int
    tree: ProductTree
    twist: torch.Tensor  # [2**n, 2, 1]
    signs: torch.Tensor | None  # [2**n, 1], None without a CZ
    groups: tuple[tuple[int, int], ...]
    generators: tuple[torch.Tensor, ...]  # per group [4**g, g]
    slot_phase: torch.Tensor  # [4]: RY entries [[c, −s], [s, c]] as cos(w/2 − phase)
    unitary: UnitaryTables | None  # the dense path (small registers), see product_unitary
    io: CircuitIO

    @property
    def dim(self) -> int:
        return 1 << self.n_qubits

    @property
    def n_angles(self) -> int:
        return self.dim - 1

    def memory_bytes(self, batch: int) -> int:
        """Peak working memory of a forward + backward pass (float64), see the module docstring."""
        return memory_bytes(self.n_qubits, self.n_layers, batch)

    def __call__(self, angles: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Probabilities [B, 2**m] of the readout bits (float64, differentiable in both inputs), on
        the angles' device (the kernel's tables are copied there once, qdt/sim/device.py)."""
        kernel = on_device(self, angles.device)
        angles, weights = kernel.io.inputs(angles, weights)
        if kernel.unitary is not None:
            return kernel.io.readout(kernel.unitary(angles, weights))
        return kernel.io.readout(_ProductFunction.apply(angles, weights, kernel))

    @property
    def reads_tree_in_order(self) -> bool:
        """Whether the tree reads the circuit's angles in order, so the state those angles prepare
        is the encoding's state (:meth:`state_probabilities` may stand for a call)."""
        return self.io.angle_columns is None

    @property
    def differentiable_states(self) -> bool:
        """Whether :meth:`state_probabilities` gives gradients: on the dense path (up to
        ``UNITARY_QUBITS``), where autograd through the layers' D × D matrices is cheap."""
        return self.unitary is not None

    def state_probabilities(self, psi: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Probabilities [B, 2**m] of the readout bits after the layers act on prepared states
        ψ₀ [B, 2**n] (real, unit norm) given directly rather than as the tree's angles: what a call
        on the angles that prepare ψ₀ gives, to rounding, with no tree to compute
        (``StatevectorExecutor.run_encoded``). With gradients to ψ₀ and the weights where
        :attr:`differentiable_states` and gradients are on, else without."""
        kernel = on_device(self, psi.device)
        weights = kernel.io.weights(weights)
        if kernel.differentiable_states and torch.is_grad_enabled():
            assert kernel.unitary is not None  # the dense path
            return kernel.io.readout(kernel.unitary.differentiable_state_probabilities(psi, weights))
        with torch.no_grad():
            if kernel.unitary is not None:
                return kernel.io.readout(kernel.unitary.state_probabilities(psi, weights))
            matrices = _layer_matrices(kernel, weights) if kernel.n_layers else []
            return kernel.io.readout(_probabilities(kernel, _evolve(kernel, psi.T, matrices)[-1]))

    @property
    def folds_encoding(self) -> bool:
        """Whether :meth:`affine_probabilities` is available: on the dense path (up to
        ``UNITARY_QUBITS``), where the circuit is one matrix to fold an affine encoding into."""
        return self.unitary is not None

    def affine_probabilities(
        self, x: torch.Tensor, weights: torch.Tensor, scale: float, bias: torch.Tensor
    ) -> torch.Tensor:
        """Probabilities [B, 2**m] of the readout bits after the layers act on φ = scale·[x, 0] + bias
        (inputs x [B, W], ``bias`` 2**n values) as it is, not normalised: each row sums to |φ|², and
        divided by that sum it is what :meth:`state_probabilities` gives for φ/|φ|, to rounding
        (:meth:`UnitaryTables.affine_probabilities`: one addmm on x). Without gradient; only where
        :attr:`folds_encoding`."""
        kernel = on_device(self, x.device)
        if kernel.unitary is None:
            raise ValueError("affine_probabilities: only on the dense path (folds_encoding)")
        with torch.no_grad():
            probs = kernel.unitary.affine_probabilities(x, kernel.io.weights(weights), scale, bias)
            return kernel.io.readout(probs)


@dataclass(frozen=True, eq=False)
class CircuitIO:
    """Where a kernel's inputs come from and where its outputs go, for a circuit whose parameters
    and readout qubits may be in any order: the columns of the angles and weights each rotation
    reads, and the readout outcome of every basis state (None: in order, nothing to do)."""

    angle_columns: torch.Tensor | None  # tree angle i ← angles[:, angle_columns[i]]
    weight_columns: torch.Tensor | None  # layer slot l·n + q ← weights[weight_columns[l·n + q]]
    outcomes: torch.Tensor | None  # [2**n]: bit i of basis state k's outcome is bit readout[i] of k
    n_outcomes: int

    @classmethod
    def create(
        cls,
        n_qubits: int,
        n_layers: int,
        angle_columns: Sequence[int] | None = None,
        weight_columns: Sequence[int] | None = None,
        readout_qubits: Sequence[int] | None = None,
    ) -> CircuitIO:
        readout = tuple(range(n_qubits)) if readout_qubits is None else tuple(readout_qubits)
        outcomes = None
        if readout != tuple(range(n_qubits)):
            k = np.arange(1 << n_qubits)
            outcome = np.zeros_like(k)
            for i, q in enumerate(readout):
                outcome |= ((k >> q) & 1) << i
            outcomes = cpu_tensor(outcome, dtype=torch.int64)
        return cls(
            angle_columns=_index(angle_columns, (1 << n_qubits) - 1),
            weight_columns=_index(weight_columns, n_qubits * n_layers),
            outcomes=outcomes,
            n_outcomes=1 << len(readout),
        )

    def inputs(self, angles: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Angles and weights in the order the kernel reads them."""
        if self.angle_columns is not None:
            angles = angles.index_select(1, self.angle_columns)
        return angles, self.weights(weights)

    def weights(self, weights: torch.Tensor) -> torch.Tensor:
        """The weights in the order the kernel reads them."""
        return weights if self.weight_columns is None else weights.index_select(0, self.weight_columns)

    def readout(self, probs: torch.Tensor) -> torch.Tensor:
        """Probabilities of every basis state [B, 2**n] → of the readout bits [B, 2**m]."""
        if self.outcomes is None:
            return probs
        return probs.new_zeros(probs.shape[0], self.n_outcomes).index_add_(1, self.outcomes, probs)


def _index(values: Sequence[int] | None, count: int) -> torch.Tensor | None:
    if values is None or list(values) == list(range(count)):
        return None
    return cpu_tensor(list(values), dtype=torch.int64)


def product_kernel(
    n_qubits: int,
    n_layers: int,
    angle_columns: Sequence[int] | None = None,
    weight_columns: Sequence[int] | None = None,
    group_qubits: int = GROUP_QUBITS,
    unitary_qubits: int = UNITARY_QUBITS,
    readout_qubits: Sequence[int] | None = None,
) -> ProductKernel:
    """The kernel of ``build_vqc(..., n_layers, n_qubits)`` (angles and weights in circuit order
    unless ``angle_columns``/``weight_columns`` say which input column feeds each; every qubit
    read out in order unless ``readout_qubits`` says otherwise). Registers of at most
    ``unitary_qubits`` qubits take the dense path (:mod:`qdt.sim.kernels.product_unitary`),
    larger ones the grouped one; ``group_qubits`` is the largest group."""
    if n_qubits > MAX_QUBITS:
        raise width_error(n_qubits, MAX_QUBITS)
    groups = qubit_groups(n_qubits, group_qubits)
    signs = ring_signs(n_qubits)
    return ProductKernel(
        n_qubits=n_qubits,
        n_layers=n_layers,
        tree=ProductTree.create(n_qubits, group_qubits),
        twist=cpu_tensor(twist_signs(n_qubits)).T[:, :, None].contiguous(),
        signs=None if signs is None else cpu_tensor(signs)[:, None],
        groups=groups,
        generators=tuple(cpu_tensor(half_generators(g)) for _, g in groups),
        slot_phase=cpu_tensor(SLOT_PHASE, dtype=torch.float64),
        unitary=unitary_tables(n_qubits, n_layers) if n_qubits <= unitary_qubits else None,
        io=CircuitIO.create(n_qubits, n_layers, angle_columns, weight_columns, readout_qubits),
    )


@dataclass(frozen=True)
class VqcShape:
    """What :func:`vqc_shape` reads from a circuit of :func:`qdt.circuits.build_vqc`'s shape."""

    n_qubits: int
    n_layers: int
    angle_columns: list[int]  # tree rotation i (circuit order) ← angle parameter angle_columns[i]
    weight_columns: list[int]  # layer rotation l·n + q ← weight parameter weight_columns[l·n + q]
    gate_names: tuple[str, ...]  # the circuit's gate names (barriers left out), in order


def vqc_shape(
    circuit: QuantumCircuit, angle_params: Sequence[Parameter], weight_params: Sequence[Parameter]
) -> VqcShape | None:
    """The shape of ``circuit`` if it is exactly :func:`qdt.circuits.build_vqc`'s (rotation tree,
    then L layers of RX on every qubit and the CZ ring, every rotation angle a bare parameter),
    else None. Every RY of the tree must be a distinct parameter of ``angle_params`` and every
    RX a distinct parameter of ``weight_params``; they may be listed in any order."""
    n = circuit.num_qubits
    if n < 1 or n > MAX_QUBITS:
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
        wires += [(q,) for q in range(n)]
        wires += ring
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
    return VqcShape(n, n_layers, angle_columns, weight_columns, tuple(names))


def compile_product_kernel(
    circuit: QuantumCircuit,
    angle_params: Sequence[Parameter],
    weight_params: Sequence[Parameter],
    readout_qubits: Sequence[int] | None = None,
    group_qubits: int = GROUP_QUBITS,
    unitary_qubits: int = UNITARY_QUBITS,
) -> ProductKernel | None:
    """The kernel for ``circuit`` if :func:`vqc_shape` recognises it, else None (the generic
    program runs it). ``readout_qubits``: as :meth:`qdt.executors.base.Executor.prepare`."""
    shape = vqc_shape(circuit, angle_params, weight_params)
    if shape is None:
        return None
    return product_kernel(
        shape.n_qubits,
        shape.n_layers,
        shape.angle_columns,
        shape.weight_columns,
        group_qubits,
        unitary_qubits,
        readout_qubits,
    )


def _columns(used: list[object], params: Sequence[Parameter]) -> list[int] | None:
    """Column of ``params`` of each rotation's parameter; None unless each is a distinct one of them."""
    index = {p: i for i, p in enumerate(params)}
    if not all(isinstance(p, Parameter) and p in index for p in used):
        return None
    columns = [index[p] for p in used]  # type: ignore[index]
    return columns if len(set(columns)) == len(columns) else None


# ----------------------------------------------------------------------------- forward / backward


def _layer_matrices(kernel: ProductKernel, weights: torch.Tensor) -> list[torch.Tensor]:
    """Per group, the layers' group matrices [L, 2**g, 2**g] (Kronecker products of RY)."""
    n, layers = kernel.n_qubits, kernel.n_layers
    slots = torch.cos(weights.view(layers, n, 1) * 0.5 - kernel.slot_phase).view(layers, n, 2, 2)
    matrices = []
    for start, size in kernel.groups:
        matrices.append(kron_layers(slots[:, start : start + size]))
    return matrices


def _evolve(kernel: ProductKernel, psi: torch.Tensor, matrices: list[torch.Tensor]) -> list[torch.Tensor]:
    """The layers' inputs χ_0 … χ_{L−1} and output χ_L [D, 2B] from the prepared states ψ₀ [D, B]."""
    batch, dim = psi.shape[1], kernel.dim
    state = (psi.unsqueeze(1) * kernel.twist).view(dim, 2 * batch)
    states = [state]
    for layer in range(kernel.n_layers):
        for (start, size), group in zip(kernel.groups, matrices):
            state = apply_group(group[layer], state, start, size)
        if kernel.signs is not None:
            state = state * kernel.signs
        states.append(state)
    return states


def _probabilities(kernel: ProductKernel, state: torch.Tensor) -> torch.Tensor:
    """Probabilities [B, D] of final states [D, 2B] (real and imaginary parts as column blocks)."""
    return state.view(kernel.dim, 2, state.shape[1] // 2).square().sum(1).T.contiguous()


@dataclass(eq=False)
class _Saved:
    tree: TreeSaved
    states: list[torch.Tensor]  # layer inputs χ_0 … χ_{L−1} and the output χ_L, [D, 2B]
    matrices: list[torch.Tensor]  # per group [L, 2**g, 2**g]


class _ProductFunction(torch.autograd.Function):
    """Layout: basis index first, batch last ([D, B] and [D, 2B] with the parts re, im as
    column blocks), see :func:`apply_group`."""

    @staticmethod
    def forward(ctx, angles: torch.Tensor, weights: torch.Tensor, kernel: ProductKernel) -> torch.Tensor:  # type: ignore[override]
        psi, tree_saved = kernel.tree.forward(angles)
        matrices = _layer_matrices(kernel, weights) if kernel.n_layers else []
        states = _evolve(kernel, psi, matrices)
        ctx.kernel = kernel
        ctx.saved = _Saved(tree_saved, states, matrices)
        return _probabilities(kernel, states[-1])

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
        if need_weights and layers:  # no layers: no weights, no gradient (as the generic program)
            grad_weights = weight_gradient(correlators, kernel.generators)
        grad_angles = None
        if need_angles:
            grad_psi = adjoint.view(dim, 2, batch).mul(kernel.twist).sum(1)
            grad_angles = kernel.tree.backward(saved.tree, grad_psi)
        return grad_angles, grad_weights, None
