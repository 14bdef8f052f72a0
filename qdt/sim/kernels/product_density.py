"""Density kernel: the paper's VQC with noise on its trainable layers, B·4**n per gate layer.

Used by the ``density`` executor when the circuit has :func:`qdt.circuits.build_vqc`'s shape
and the noise spares the encoding tree (no gate noise on ``ry`` and ``cx``, e.g.
``noiseless_gates = ["ry", "cx"]``): the tree prepares the exact pure state ψ₀ of
:mod:`qdt.sim.kernels.product`, and the L noisy layers act on its density matrix. With noise on
the tree too, every one of its 2**(n+1) − 3 gates would act on a growing register of up to
4**n coordinates per row: B·8**n work in any exact density-matrix method (measured on the
generic program: 3.4 s and 0.9 GB at 6 qubits, 40 s and 5.7 GB at 7, batch 128, L = 6), which
is why the executor runs that case on the generic program and stops at a few qubits.

A state is its 4**n real Pauli coordinates r_P = Tr(P ρ) (``qdt/noise/pauli.py``'s order: base-4
digit q = qubit q, 0 1 2 3 = I X Y Z), basis index first, batch last: [4**n, B]. In these
coordinates every gate and channel is a real matrix (its PTM):

- **Initial state.** ρ₀ = ψ₀ψ₀ᵀ, gathered straight into digit order (digit q holds row bit and
  column bit q: two gathers and a product), then per qubit (ρ00, ρ01, ρ10, ρ11) → (I, X, Y/i, Z)
  by 16 × 16 matrices on two digits at a time, and a sign i**#Y (0 for odd #Y: ρ₀ is real).
- **RX layer.** The layer's RX(w_q) followed by the one-qubit noise N₁ is ⊗_q N₁ R(w_q), applied
  by groups of ``group_qubits`` qubits: one 4**g × 4**g matmul per group
  (:func:`qdt.circuits.encoding.apply_group` on the group's 2g bits).
- **CZ ring.** CZ is a Clifford gate: a signed permutation of Pauli strings. When the noise after
  it is diagonal in the Pauli basis (depolarizing, phase damping) the whole ring with its noise
  is one signed, scaled permutation (one gather and a product, composed at compile time);
  otherwise (amplitude damping, thermal relaxation) each pair's 16 × 16 matrix is applied in turn.
- **Readout.** p(k) = 2**−n Σ_z (−1)^{popcount(z & k)} r_{Z^z}: the 2**n Z-strings, then a
  Walsh–Hadamard transform.

**Backward: the adjoint method**, as in the product kernel: forward keeps the L layer inputs;
backward carries g = ∂L/∂r down through the transposed maps. Since R(w) = exp(w·Ĝ) in the
Pauli basis (a rotation of the Y–Z plane), ∂(N₁R(w))/∂w = N₁R(w)·Ĝ and ∂L/∂w_{l,q} =
⟨g_l, Ĝ_q r_l⟩, g_l the gradient at layer l's input: one correlator per group and a contraction
with constant generators. At the initial state, ∂L/∂ψ₀ = (G + Gᵀ)ψ₀ for G = ∂L/∂ρ₀, then the
tree's backward pass.

Memory: the L saved layer inputs plus at most ten working copies of one [4**n, B] state,
(L + 10)·4**n·B·8 bytes (9 qubits, L = 6, B = 128: 4 GiB; measured 3.6); every other
[4**n, B] tensor of a pass is one of two reused buffers (in a VM, a fresh 64 MiB tensor costs 4×
the matmul that fills it, in page faults). :data:`MAX_QUBITS` is where the executor stops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from scipy.linalg import hadamard
from torch.autograd.function import once_differentiable

from qdt.circuits.encoding import apply_group, qubit_groups
from qdt.circuits.vqc import ring_pairs
from qdt.errors import QdtInputError
from qdt.noise.config import NoiseConfig
from qdt.noise.pauli import ptm_of_unitary
from qdt.sim.device import cpu_tensor, on_device
from qdt.sim.engine import kron_layers
from qdt.sim.kernels import product
from qdt.sim.kernels.product import CircuitIO, ProductTree, vqc_shape
from qdt.sim.kernels.product_tables import group_correlator, weight_gradient
from qdt.sim.trig import clean

# Measured at L = 6, B = 128, forward + backward, one thread, depolarizing noise, on a loaded 2-core
# machine: 0.55 s at 7 qubits, 2.1 s at 8, 17 s and 3.6 GiB of peak memory at 9; 10 qubits would
# need 4**10·128·8 B = 1 GiB per state, about 16 GiB in all.
MAX_QUBITS = 9
GROUP_QUBITS = 2  # qubits per RX-layer group: 16 × 16 matrices on two Pauli digits (4 × 4: 1.5× slower)
# States besides the L saved inputs: two reused buffers, ρ₀ and the allocator's slack (measured
# peak growth: L + 8 states at 8 and 9 qubits).
_WORKING_COPIES = 10
_CZ = np.diag([1.0, 1.0, 1.0, -1.0]).astype(np.complex128)
_LOCAL = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [0, 1, -1, 0], [1, 0, 0, -1]], dtype=np.float64)


def memory_bytes(n_qubits: int, n_layers: int, batch: int) -> int:
    """Working memory of a forward + backward pass (float64), see the module docstring."""
    return (n_layers + _WORKING_COPIES) * 4**n_qubits * batch * 8


def width_error(n_qubits: int, limit: int) -> QdtInputError:
    """The refusal of the paper's circuit past ``limit`` qubits on this kernel (the density
    executor): the width, the memory it would need and the alternatives."""
    layers, batch = product.REFERENCE_LAYERS, product.REFERENCE_BATCH
    needed = memory_bytes(n_qubits, layers, batch)
    return QdtInputError(
        "circuit",
        f"at most {limit} qubits for the paper's circuit with noise on its layers, on the density executor",
        f"{n_qubits} qubits",
        f"a density matrix of {n_qubits} qubits is 4**{n_qubits} coordinates, "
        f"{4**n_qubits * 8 / 2**20:.0f} MiB per batch row, and a forward + backward pass "
        f"(L = {layers}, batch {batch}) needs about {needed / 2**30:.0f} GiB; use statevector (no "
        f"noise, to {product.MAX_QUBITS} qubits) or aer with shots "
        "(open_backend('aer', noise=..., shots=...))",
    )


def encoding_is_noiseless(noise: NoiseConfig | None) -> bool:
    """True when the encoding tree's gates (ry, cx) get no gate noise: this kernel applies."""
    return noise is None or (
        noise.gate_channel_ptm("ry", 1) is None and noise.gate_channel_ptm("cx", 2) is None
    )


def rx_ptm_parts() -> np.ndarray:
    """[3, 4, 4]: PTM(RX(w)) = parts[0] + cos w·parts[1] + sin w·parts[2]."""

    def rx(angle: float) -> np.ndarray:
        c, s = np.cos(angle / 2), np.sin(angle / 2)
        return ptm_of_unitary(np.array([[c, -1j * s], [-1j * s, c]]))

    zero, half, turn = rx(0.0), rx(np.pi / 2), rx(np.pi)
    constant, cosine = (zero + turn) / 2, (zero - turn) / 2
    return np.stack([constant, cosine, half - constant])


def pauli_generators(size: int) -> np.ndarray:
    """[16**size, size]: column t is Ĝ on digit t of a group of ``size`` qubits (identity on the
    others), flattened; Ĝ = dPTM(RX(w))/dw at w = 0."""
    generator = rx_ptm_parts()[2]
    columns = []
    for t in range(size):
        matrix = np.ones((1, 1))
        for q in reversed(range(size)):  # the highest digit is the left Kronecker factor
            matrix = np.kron(matrix, generator if q == t else np.eye(4))
        columns.append(matrix.reshape(-1))
    return np.stack(columns, axis=1)


def _digits_of(index: np.ndarray, n_qubits: int) -> np.ndarray:
    return (index[None, :] >> (2 * np.arange(n_qubits))[:, None]) & 3  # [n, 4**n]


def ring_permutation(n_qubits: int, pair: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The CZ ring with ``pair`` (the 16 × 16 PTM of CZ and its noise) on each ring pair, as one
    signed, scaled permutation: new[k] = scale[k]·state[source[k]]; None unless ``pair`` has
    exactly one non-zero per row and per column (noise diagonal in the Pauli basis)."""
    nonzero = pair != 0
    if not (nonzero.sum(1) == 1).all() or not (nonzero.sum(0) == 1).all():
        return None
    column = nonzero.argmax(1)  # local row → its single column
    value = pair[np.arange(16), column]
    index = np.arange(4**n_qubits)
    source, scale = index.copy(), np.ones(4**n_qubits)
    for a, b in ring_pairs(n_qubits):
        low, high = min(a, b), max(a, b)
        digits = _digits_of(index, n_qubits)
        local = digits[low] + 4 * digits[high]
        target = column[local]
        moved = index + ((target & 3) - digits[low]) * 4**low + ((target >> 2) - digits[high]) * 4**high
        # new[k] = value(k)·old[moved(k)], old[j] = scale[j]·state[source[j]]
        source, scale = source[moved], value[local] * scale[moved]
    return source, scale


def initial_state_tables(n_qubits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row and column of ρ₀ gathered into each Pauli-ordered slot (digit q: local index 2·row
    bit + column bit), and the sign i**#Y of each Pauli string (0 for an odd count of Y)."""
    index = np.arange(4**n_qubits)
    digits = _digits_of(index, n_qubits)
    weights = 1 << np.arange(n_qubits)
    rows = ((digits >> 1) * weights[:, None]).sum(0)
    columns = ((digits & 1) * weights[:, None]).sum(0)
    count_y = (digits == 2).sum(0)
    sign = np.where(count_y % 4 == 2, -1.0, 1.0) * (count_y % 2 == 0)
    return rows, columns, sign


@dataclass(frozen=True, eq=False)
class Ring:
    """The noisy CZ ring of one layer: a permutation, or pairs applied one by one."""

    source: torch.Tensor | None  # [4**n] (permutation path)
    scale: torch.Tensor | None  # [4**n, 1]
    inverse: torch.Tensor | None  # [4**n]: source⁻¹
    pairs: tuple[tuple[int, int], ...]  # (low, high) qubits, in ring order (pair path)
    pair: torch.Tensor | None  # [16, 16]

    def forward(
        self, state: torch.Tensor, spare: tuple[torch.Tensor, torch.Tensor], out: torch.Tensor | None
    ) -> torch.Tensor:
        """The ring on ``state``, into ``out`` (or a ``spare`` buffer that is not ``state``)."""
        if self.source is not None:
            assert self.scale is not None
            target = out if out is not None else spare[0] if state is not spare[0] else spare[1]
            return torch.index_select(state, 0, self.source, out=target).mul_(self.scale)
        assert self.pair is not None
        for low, high in self.pairs:
            state = _apply_pair(self.pair, state, low, high)
        return state

    def backward(self, grad: torch.Tensor, spare: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The transposed ring; ``grad`` may be overwritten."""
        if self.source is not None:
            assert self.inverse is not None and self.scale is not None
            target = spare[0] if grad is not spare[0] else spare[1]
            return torch.index_select(grad.mul_(self.scale), 0, self.inverse, out=target)
        assert self.pair is not None
        transposed = self.pair.T.contiguous()
        for low, high in reversed(self.pairs):
            grad = _apply_pair(transposed, grad, low, high)
        return grad


def _apply_pair(matrix: torch.Tensor, state: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """A 16 × 16 two-qubit PTM (local index digit_low + 4·digit_high) on qubits low < high."""
    if high == low + 1:
        return apply_group(matrix, state, 2 * low, 4)
    rows, columns = state.shape
    n_qubits = (rows.bit_length() - 1) // 2
    view = state.view(4 ** (n_qubits - 1 - high), 4, -1, 4, 4**low * columns)
    pair = matrix.view(4, 4, 4, 4)  # [high out, low out, high in, low in]
    return torch.einsum("xyhl,ahmlc->axmyc", pair, view).reshape(-1, columns)


@dataclass(frozen=True, eq=False)
class DensityKernel:
    """The compiled kernel (see the module docstring); call it as ``kernel(angles, weights)``."""

    n_qubits: int
    n_layers: int
    tree: ProductTree
    rows: torch.Tensor  # [4**n]: ρ₀'s row of each Pauli-ordered slot
    columns: torch.Tensor  # [4**n]
    local_groups: tuple[tuple[int, int], ...]  # groups of one or two qubits
    local: tuple[torch.Tensor, ...]  # per group: (ρ00, ρ01, ρ10, ρ11) → (I, X, Y/i, Z) on each digit
    sign: torch.Tensor  # [4**n, 1]: i**#Y, 0 for odd #Y
    rx_parts: torch.Tensor  # [3, 4, 4]: N₁·(constant, cos, sin) parts of PTM(RX)
    groups: tuple[tuple[int, int], ...]  # RX-layer groups
    generators: tuple[torch.Tensor, ...]  # per group [16**g, g]
    ring: Ring | None  # None without a CZ (one qubit)
    z_strings: torch.Tensor  # [2**n]: Pauli index of Z^z for every bit pattern z
    hadamard_groups: tuple[tuple[int, int], ...]
    hadamards: tuple[torch.Tensor, ...]
    io: CircuitIO

    def memory_bytes(self, batch: int) -> int:
        return memory_bytes(self.n_qubits, self.n_layers, batch)

    def __call__(self, angles: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Probabilities [B, 2**m] before readout error (float64, differentiable in both inputs), on
        the angles' device (the kernel's tables are copied there once, qdt/sim/device.py)."""
        kernel = on_device(self, angles.device)
        angles, weights = kernel.io.inputs(angles, weights)
        return kernel.io.readout(_DensityFunction.apply(angles, weights, kernel))


def density_kernel(
    n_qubits: int,
    n_layers: int,
    noise: NoiseConfig | None,
    angle_columns: Sequence[int] | None = None,
    weight_columns: Sequence[int] | None = None,
    readout_qubits: Sequence[int] | None = None,
    group_qubits: int = GROUP_QUBITS,
) -> DensityKernel:
    """The kernel of ``build_vqc(..., n_layers, n_qubits)`` under ``noise`` (which must spare the
    encoding, :func:`encoding_is_noiseless`); arguments as :func:`qdt.sim.kernels.product.product_kernel`."""
    if not encoding_is_noiseless(noise):
        raise ValueError("the density kernel needs a noiseless encoding tree (no noise on ry and cx)")
    one = None if noise is None else noise.gate_channel_ptm("rx", 1)
    two = None if noise is None else noise.gate_channel_ptm("cz", 2)
    pair = clean(ptm_of_unitary(_CZ) if two is None else two @ ptm_of_unitary(_CZ))  # exact zeros
    ring = None
    if n_qubits > 1:
        permutation = ring_permutation(n_qubits, pair)
        if permutation is not None:
            source, scale = permutation
            ring = Ring(
                cpu_tensor(source),
                cpu_tensor(scale)[:, None],
                cpu_tensor(np.argsort(source)),
                (),
                None,
            )
        else:
            pairs = tuple((min(a, b), max(a, b)) for a, b in ring_pairs(n_qubits))
            ring = Ring(None, None, None, pairs, cpu_tensor(pair))
    rows, columns, sign = initial_state_tables(n_qubits)
    groups = qubit_groups(n_qubits, group_qubits)
    bits = np.arange(1 << n_qubits)
    z_strings = sum(((bits >> q) & 1) * 3 * 4**q for q in range(n_qubits))
    hadamard_groups = qubit_groups(n_qubits)
    local_groups = qubit_groups(n_qubits, 2)

    return DensityKernel(
        n_qubits=n_qubits,
        n_layers=n_layers,
        tree=ProductTree.create(n_qubits),
        rows=cpu_tensor(rows),
        columns=cpu_tensor(columns),
        local_groups=local_groups,
        local=tuple(cpu_tensor(_LOCAL if size == 1 else np.kron(_LOCAL, _LOCAL)) for _, size in local_groups),
        sign=cpu_tensor(sign)[:, None],
        rx_parts=cpu_tensor(np.einsum("ij,pjk->pik", np.eye(4) if one is None else one, rx_ptm_parts())),
        groups=groups,
        generators=tuple(cpu_tensor(pauli_generators(g)) for _, g in groups),
        ring=ring,
        z_strings=cpu_tensor(np.asarray(z_strings, dtype=np.int64)),
        hadamard_groups=hadamard_groups,
        hadamards=tuple(cpu_tensor(hadamard(1 << g), dtype=torch.float64) for _, g in hadamard_groups),
        io=CircuitIO.create(n_qubits, n_layers, angle_columns, weight_columns, readout_qubits),
    )


def compile_density_kernel(
    circuit: QuantumCircuit,
    angle_params: Sequence[Parameter],
    weight_params: Sequence[Parameter],
    noise: NoiseConfig | None,
    readout_qubits: Sequence[int] | None = None,
    max_qubits: int = MAX_QUBITS,
) -> DensityKernel | None:
    """The kernel for ``circuit`` under ``noise`` if the circuit has the VQC's shape
    (:func:`qdt.sim.kernels.product.vqc_shape`) and the noise spares the encoding, else None.
    More than ``max_qubits`` qubits raise :func:`width_error` before any table is built."""
    if not encoding_is_noiseless(noise):
        return None
    shape = vqc_shape(circuit, angle_params, weight_params)
    if shape is None:
        return None
    if shape.n_qubits > max_qubits:
        raise width_error(shape.n_qubits, max_qubits)
    return density_kernel(
        shape.n_qubits, shape.n_layers, noise, shape.angle_columns, shape.weight_columns, readout_qubits
    )


# ----------------------------------------------------------------------------- forward / backward


def _layer_matrices(kernel: DensityKernel, weights: torch.Tensor) -> list[torch.Tensor]:
    """Per group, the layers' group matrices [L, 4**g, 4**g] (Kronecker products of N₁·R(w))."""
    n, layers = kernel.n_qubits, kernel.n_layers
    w = weights.view(layers, n, 1, 1)
    slots = kernel.rx_parts[0] + torch.cos(w) * kernel.rx_parts[1] + torch.sin(w) * kernel.rx_parts[2]
    return [kron_layers(slots[:, start : start + size]) for start, size in kernel.groups]


def _apply_groups(
    state: torch.Tensor,
    groups: tuple[tuple[int, int], ...],
    matrices: Sequence[torch.Tensor],
    spare: tuple[torch.Tensor, torch.Tensor],
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Group matrices on Pauli digits, ping-ponging between the ``spare`` buffers (the last one
    into ``out`` if given); ``state`` itself is never written."""
    for i, ((start, size), matrix) in enumerate(zip(groups, matrices)):
        target = (
            out
            if out is not None and i == len(groups) - 1
            else spare[0]
            if state is not spare[0]
            else spare[1]
        )
        state = apply_group(matrix, state, 2 * start, 2 * size, out=target)
    return state


@dataclass(eq=False)
class _Saved:
    tree: object
    psi: torch.Tensor  # [D, B]
    states: list[torch.Tensor]  # layer inputs r_0 … r_{L−1}, [4**n, B]
    matrices: list[torch.Tensor]  # per group [L, 4**g, 4**g]


class _DensityFunction(torch.autograd.Function):
    """Every [4**n, B] tensor is either a saved layer input (fresh) or one of two reused buffers:
    in a VM a fresh 64 MiB tensor costs 4× the matmul that fills it in page faults."""

    @staticmethod
    def forward(ctx, angles: torch.Tensor, weights: torch.Tensor, kernel: DensityKernel) -> torch.Tensor:  # type: ignore[override]
        psi, tree_saved = kernel.tree.forward(angles)
        shape = (4**kernel.n_qubits, angles.shape[0])
        spare = (psi.new_empty(shape), psi.new_empty(shape))
        first = torch.index_select(psi, 0, kernel.rows, out=spare[0])
        first.mul_(torch.index_select(psi, 0, kernel.columns, out=spare[1]))
        state = _apply_groups(first, kernel.local_groups, kernel.local, spare, out=psi.new_empty(shape))
        state.mul_(kernel.sign)
        matrices = _layer_matrices(kernel, weights) if kernel.n_layers else []
        states = []
        for layer in range(kernel.n_layers):
            states.append(state)
            fresh = layer < kernel.n_layers - 1 and (kernel.ring is None or kernel.ring.source is not None)
            out = None if kernel.ring is not None else psi.new_empty(shape) if fresh else None
            state = _apply_groups(state, kernel.groups, [m[layer] for m in matrices], spare, out=out)
            if kernel.ring is not None:
                state = kernel.ring.forward(state, spare, psi.new_empty(shape) if fresh else None)
        z = state.index_select(0, kernel.z_strings)
        for (start, size), matrix in zip(kernel.hadamard_groups, kernel.hadamards):
            z = apply_group(matrix, z, start, size)
        ctx.kernel = kernel
        ctx.saved = _Saved(tree_saved, psi, states, matrices)
        return (z * (0.5**kernel.n_qubits)).T.contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:  # type: ignore[override]
        kernel: DensityKernel = ctx.kernel
        saved: _Saved = ctx.saved
        need_angles, need_weights = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        layers = kernel.n_layers
        z = grad.T * (0.5**kernel.n_qubits)
        for (start, size), matrix in zip(kernel.hadamard_groups, kernel.hadamards):
            z = apply_group(matrix, z.contiguous(), start, size)
        shape = (4**kernel.n_qubits, z.shape[1])
        spare = (z.new_empty(shape), z.new_empty(shape))
        adjoint = spare[0].zero_().index_copy_(0, kernel.z_strings, z)
        transposed = [m.transpose(1, 2).contiguous() for m in saved.matrices]
        correlators: list[list[torch.Tensor]] = [[] for _ in kernel.groups]
        for layer in reversed(range(layers)):
            if kernel.ring is not None:
                adjoint = kernel.ring.backward(adjoint, spare)
            adjoint = _apply_groups(adjoint, kernel.groups, [m[layer] for m in transposed], spare)
            if need_weights:
                for j, (start, size) in enumerate(kernel.groups):
                    correlators[j].append(group_correlator(adjoint, saved.states[layer], 2 * start, 2 * size))
        grad_weights = None
        if need_weights and layers:  # no layers: no weights, no gradient (as the generic program)
            grad_weights = weight_gradient(correlators, kernel.generators)
        grad_angles = None
        if need_angles:
            local = [matrix.T.contiguous() for matrix in kernel.local]
            back = _apply_groups(adjoint.mul_(kernel.sign), kernel.local_groups, local, spare)
            psi = saved.psi
            gathered = spare[0] if back is not spare[0] else spare[1]
            grad_psi = torch.zeros_like(psi)
            torch.index_select(psi, 0, kernel.columns, out=gathered)
            grad_psi.index_add_(0, kernel.rows, gathered.mul_(back))
            torch.index_select(psi, 0, kernel.rows, out=gathered)
            grad_psi.index_add_(0, kernel.columns, gathered.mul_(back))
            grad_angles = kernel.tree.backward(saved.tree, grad_psi)  # type: ignore[arg-type]
        return grad_angles, grad_weights, None
