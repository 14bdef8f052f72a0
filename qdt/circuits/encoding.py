"""Amplitude encoding as a tree of RY rotations and CNOTs whose angles torch computes.

**Feature map.** An input x ∈ R^d (d ≤ 2**n) is first mapped to a real vector of 2**n
amplitudes, then normalised by the state preparation itself:

    φ(x)_i = 2·x_i − 1 + ½·[i = 0]      for i < d,
    φ(x)_1 = 1                          if d = 1 (a fixed reference amplitude),
    φ(x)_i = 0                          for the remaining (padding) components.

*Claim:* distinct binary inputs x ≠ y ∈ {0,1}^d give distinct quantum states, i.e. φ(x) is
not a real multiple λ·φ(y) (real amplitude vectors are the same state exactly when they are
equal up to a non-zero real factor; the normalisation removes |λ|, the global phase its sign).
*Proof.* φ(x) ≠ 0 since φ(x)_0 ∈ {−½, 3/2}. If d ≥ 2, the components 1 … d−1 of φ(x) and φ(y)
are ±1, so φ(x) = λ·φ(y) forces |λ| = 1. λ = 1 gives 2x_i − 1 = 2y_i − 1 for all i, so x = y.
λ = −1 would need φ(x)_0 = −φ(y)_0, but φ(x)_0 ∈ {−½, 3/2} and −φ(y)_0 ∈ {½, −3/2} are
disjoint. If d = 1, the reference amplitude φ_1 = 1 forces λ = 1, so again x = y. ∎
(The plain map x ↦ x/|x| fails: the all-zero input has no direction, and 2x ~ x.) For real,
non-binary inputs (e.g. the actor's actions fed to the critic) φ is affine and injective, but
normalisation identifies rays, which no map R^d → states can avoid; φ(x) = 0 only at
x = (¼, ½, …, ½), where the encoding falls back to |0…0⟩ with zero gradient.

**State preparation** (Möttönen et al., quant-ph/0407010, for real amplitudes). Level ℓ =
0 … n−1 rotates qubit t = n−1−ℓ, uniformly controlled by the qubits above it: for control value
j (qubit t+1+m is bit m of j) the rotation is RY(α_j) with α_j = 2·atan2(‖right‖, ‖left‖), the
norms of the two halves (bit t = 0, 1) of the amplitude block k >> (t+1) = j; on the last level
(t = 0) the signed amplitudes are used, α_j = 2·atan2(a_{2j+1}, a_{2j}), so the state is
exactly φ(x)/|φ(x)| with its signs. A uniformly controlled RY with ℓ controls is 2**ℓ plain
RY(θ_i) interleaved with CNOTs whose controls follow the Gray code; θ = α·M/2**ℓ with
M[j, i] = (−1)^{popcount(j & gray(i))}. Encoding angle index 2**ℓ − 1 + i holds θ_i of level
ℓ: 2**n − 1 angles and 2**n − 2 CNOTs in all.

**Computing the angles** costs O(B·2**n·n) per call, forward and backward, and nothing
of size 4**n is ever built (a dense formulation takes 1 s per pass and 6 s to prepare at 12
qubits). The squared norms of all subtrees come from n − 1 pairwise sums (blocks of 2, 4, …
amplitudes); the half-angles are h = atan2(‖right‖, ‖left‖), signed amplitudes on the last level;
θ_ℓ = 2·h_ℓ·M_ℓ/2**ℓ is a Walsh–Hadamard transform of h_ℓ read in Gray order (M[j, i] =
H[j, gray(i)], H the Sylvester Hadamard matrix), done by :class:`TreeTransform`: one small dense
matrix for the levels below ``DENSE_LEVELS``, the fast transform (a Kronecker product of
2**g × 2**g Hadamard blocks, :func:`apply_group`) above. The simulator's kernels use the same
transform backwards (θ → h, ``qdt/sim/kernels/product.py``) to prepare the state in closed form.

**Small registers** (n ≤ ``SMALL_QUBITS``) take :class:`DenseEncoding` instead: the same
values and gradients from a handful of dense tables (O(4**n) entries), batch first, so that a call
is about 10 torch operations forward and 20 backward, not the per-level loops above (at these
widths each operation's fixed cost, not its arithmetic, is the price).

Zero norms make atan2(0, 0) and √0 non-differentiable; both are evaluated through masks so
that values are 0 and gradients finite (zero) there, never NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from scipy.linalg import hadamard
from torch.autograd.function import once_differentiable

from qdt.errors import QdtInputError

FEATURE_OFFSET = 0.5
FEATURE_SCALE = 2.0  # φ(x)_i = FEATURE_SCALE·x_i + bias_i (module docstring)
# Largest qubit group applied as one dense matrix, here (Hadamard blocks) and in the simulator's
# layers: groups of ≤ 4 measured best or within 5% of the best at 8–12 qubits (at 12: 155 ms
# forward + backward of the VQC, L = 6, B = 128, vs 177 with groups of 5 and 215 with 3).
GROUP_QUBITS = 4
DENSE_LEVELS = 7  # tree levels 0 … 6 (angles 0 … 126) go through one dense block-diagonal matrix
# Up to this width the encoder takes the dense path (DenseEncoding). Forward + backward of a batch
# of 128, one thread, interleaved medians (load 3), dense vs level by level: 0.84 vs 0.99 ms at 5
# qubits, 1.13 vs 1.26 at 6, 1.86 vs 1.94 at 7 (where its O(4**n) tables stop paying).
SMALL_QUBITS = 6


def qubits_for_width(width: int) -> int:
    """n = max(1, ceil(log2(width))): the fewest qubits whose 2**n amplitudes hold the input."""
    return max(1, math.ceil(math.log2(width))) if width > 1 else 1


def gray(i: int) -> int:
    return i ^ (i >> 1)


def gray_control_bit(i: int, controls: int) -> int:
    """Control bit of the CNOT after rotation i in a uniformly controlled rotation."""
    return (gray(i) ^ gray((i + 1) % 2**controls)).bit_length() - 1


def gray_walsh_matrix(controls: int) -> np.ndarray:
    """T with θ = α @ T: M[j, i] = (−1)^{popcount(j & gray(i))} / 2**controls."""
    size = 2**controls
    index = np.arange(size, dtype=np.int64)
    bits = index[:, None] & (index ^ (index >> 1))[None, :]  # j & gray(i), every pair at once
    parity = np.zeros((size, size), dtype=np.int64)
    for bit in range(controls):
        parity ^= (bits >> bit) & 1
    return np.where(parity == 1, -1.0, 1.0) / size


def append_amplitude_encoding(circuit: QuantumCircuit, angles: ParameterVector, n_qubits: int) -> None:
    """Append the RY/CNOT tree (see the module docstring) on qubits 0 … n_qubits−1."""
    if len(angles) != 2**n_qubits - 1:
        raise ValueError(f"need {2**n_qubits - 1} encoding angles, got {len(angles)}")
    for level in range(n_qubits):
        target = n_qubits - 1 - level
        offset = 2**level - 1
        for i in range(2**level):
            circuit.ry(angles[offset + i], target)
            if level > 0:
                circuit.cx(target + 1 + gray_control_bit(i, level), target)


def qubit_groups(n_qubits: int, group_qubits: int = GROUP_QUBITS) -> tuple[tuple[int, int], ...]:
    """(first qubit, size) of ⌈n/g⌉ groups covering qubits 0 … n−1, sizes as equal as possible."""
    count = max(1, math.ceil(n_qubits / group_qubits))
    base, extra = divmod(n_qubits, count)
    sizes = [base + 1] * extra + [base] * (count - extra)  # the larger groups on the low qubits
    starts = np.cumsum([0, *sizes[:-1]]).tolist()
    return tuple((int(s), int(g)) for s, g in zip(starts, sizes))


def apply_group(
    matrix: torch.Tensor, state: torch.Tensor, start: int, size: int, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``matrix`` [2**size, 2**size] applied to bits start … start+size−1 of the row index of
    every column of ``state`` [2**n, columns] (bit q of the row index is qubit q); written into
    ``out`` (same shape, not ``state``) when given.

    Basis index first, batch last: the group's axis is the middle of a [2**(n−start−size),
    2**size, 2**start·columns] view, so every call is a GEMM (or a few) whose inner dimension is
    at least the batch — the fast shape for BLAS, whatever the group's position. The simulator's
    kernels (``qdt/sim/kernels/``) apply their layers with it too; ``out`` lets them reuse buffers
    (a fresh 64 MiB tensor costs more in page faults than the product itself).
    """
    dim, columns = state.shape
    block = 1 << size
    view = state.view(-1, block, (1 << start) * columns)
    if out is None:
        if view.shape[0] == 1:
            return (matrix @ view[0]).view(dim, columns)
        return torch.matmul(matrix, view).view(dim, columns)
    target = out.view(view.shape)
    if view.shape[0] == 1:
        torch.mm(matrix, view[0], out=target[0])
    else:
        torch.matmul(matrix, view, out=target)
    return out


@dataclass(frozen=True, eq=False)
class WalshLevel:
    """One level ℓ of the tree whose angles go through the fast Walsh–Hadamard transform.

    With H the 2**ℓ × 2**ℓ Sylvester Hadamard matrix (H[x, y] = (−1)^{popcount(x & y)}, H H =
    2**ℓ I) and P the Gray permutation ((Pθ)[g] = θ[gray⁻¹(g)]): θ_ℓ = (2/2**ℓ)·P⁻¹ H h_ℓ and
    h_ℓ = ½·H P θ_ℓ. H is applied as a Kronecker product of small Hadamard blocks
    (:func:`apply_group`), O(2**ℓ·ℓ) per column.
    """

    offset: int  # first angle of the level in the level-ordered angle vector
    size: int  # 2**ℓ angles
    from_gray: torch.Tensor  # [2**ℓ] gray⁻¹: (Pθ) = θ[from_gray]
    to_gray: torch.Tensor  # [2**ℓ] gray: P⁻¹
    groups: tuple[tuple[int, int], ...]
    hadamards: tuple[torch.Tensor, ...]  # one per group

    @classmethod
    def create(cls, level: int, group_qubits: int = GROUP_QUBITS) -> WalshLevel:
        size = 1 << level
        to_gray = np.arange(size) ^ (np.arange(size) >> 1)
        groups = qubit_groups(level, group_qubits)
        return cls(
            offset=size - 1,
            size=size,
            from_gray=torch.as_tensor(np.argsort(to_gray), device="cpu"),
            to_gray=torch.as_tensor(to_gray, device="cpu"),
            groups=groups,
            hadamards=tuple(
                torch.as_tensor(hadamard(1 << g), dtype=torch.float64, device="cpu") for _, g in groups
            ),
        )

    def hadamard(self, values: torch.Tensor) -> torch.Tensor:
        """H·values for values [2**ℓ, B] (H is symmetric: also the transpose)."""
        for (start, size), matrix in zip(self.groups, self.hadamards):
            values = apply_group(matrix, values, start, size)
        return values

    def hadamard_then_gray(self, values: torch.Tensor, scale: float) -> torch.Tensor:
        """scale·P⁻¹ H values (this level's rows of a level-ordered [2**n − 1, B] tensor)."""
        return (
            self.hadamard(values[self.offset : self.offset + self.size]).index_select(0, self.to_gray) * scale
        )

    def gray_then_hadamard(self, values: torch.Tensor, scale: float) -> torch.Tensor:
        """scale·H P values, the transpose of :meth:`hadamard_then_gray` (same rows)."""
        block = values[self.offset : self.offset + self.size]
        return self.hadamard(block.index_select(0, self.from_gray)).mul_(scale)


def level_transform(levels: int, inverse: bool) -> np.ndarray:
    """Block-diagonal [2**levels − 1]² matrix of the tree's first ``levels`` levels, acting on
    level-ordered row vectors: half-angles h → circuit angles θ = h·E (E = 2·blockdiag of
    ``gray_walsh_matrix``), or with ``inverse`` θ → h = θ·E⁻¹ (E⁻¹'s block ℓ is
    2**ℓ/2 · gray_walsh_matrix(ℓ)ᵀ, since M Mᵀ = 2**ℓ I)."""
    size = (1 << levels) - 1
    matrix = np.zeros((size, size))
    for level in range(levels):
        start, count = (1 << level) - 1, 1 << level
        block = gray_walsh_matrix(level)
        matrix[start : start + count, start : start + count] = (
            0.5 * count * block.T if inverse else 2.0 * block
        )
    return matrix


@dataclass(frozen=True, eq=False)
class TreeTransform:
    """θ_ℓ = 2·h_ℓ·gray_walsh_matrix(ℓ), level by level, and its inverse and transposes.

    Values are basis index first, batch last: [2**n − 1, B], angles in level order (the circuit's
    ``enc`` order). Levels below ``DENSE_LEVELS`` share one dense block-diagonal matrix (at most
    127 × 127); each level above goes through its :class:`WalshLevel`.
    """

    n_qubits: int
    dense_angles: int  # angles of the dense levels: 2**min(n, DENSE_LEVELS) − 1
    to_angles_dense: torch.Tensor  # [dense, dense]: θᵀ = to_angles_dense @ hᵀ
    to_half_dense: torch.Tensor  # [dense, dense]: hᵀ = to_half_dense @ θᵀ
    levels: tuple[WalshLevel, ...]  # levels >= DENSE_LEVELS

    @classmethod
    def create(cls, n_qubits: int, group_qubits: int = GROUP_QUBITS) -> TreeTransform:
        dense_levels = min(n_qubits, DENSE_LEVELS)
        return cls(
            n_qubits=n_qubits,
            dense_angles=(1 << dense_levels) - 1,
            to_angles_dense=torch.as_tensor(
                level_transform(dense_levels, inverse=False).T.copy(), device="cpu"
            ),
            to_half_dense=torch.as_tensor(level_transform(dense_levels, inverse=True).T.copy(), device="cpu"),
            levels=tuple(WalshLevel.create(level, group_qubits) for level in range(dense_levels, n_qubits)),
        )

    def _combine(self, values: torch.Tensor, dense: torch.Tensor, rest: list[torch.Tensor]) -> torch.Tensor:
        first = dense @ (values if not self.levels else values[: self.dense_angles])
        return torch.cat([first, *rest], dim=0) if rest else first

    def angles(self, half: torch.Tensor) -> torch.Tensor:
        """θ from the half-angles h."""
        rest = [level.hadamard_then_gray(half, 2.0 / level.size) for level in self.levels]
        return self._combine(half, self.to_angles_dense, rest)

    def angles_transposed(self, grad: torch.Tensor) -> torch.Tensor:
        """∂L/∂h from ∂L/∂θ (the transpose of :meth:`angles`)."""
        rest = [level.gray_then_hadamard(grad, 2.0 / level.size) for level in self.levels]
        return self._combine(grad, self.to_angles_dense.T, rest)

    def half_angles(self, angles: torch.Tensor) -> torch.Tensor:
        """h from the circuit angles θ (the inverse of :meth:`angles`)."""
        rest = [level.gray_then_hadamard(angles, 0.5) for level in self.levels]
        return self._combine(angles, self.to_half_dense, rest)

    def half_angles_transposed(self, grad: torch.Tensor) -> torch.Tensor:
        """∂L/∂θ from ∂L/∂h (the transpose of :meth:`half_angles`)."""
        rest = [level.hadamard_then_gray(grad, 0.5) for level in self.levels]
        return self._combine(grad, self.to_half_dense.T, rest)


@dataclass(frozen=True, eq=False)
class AmplitudeEncoder:
    """Batched, differentiable map inputs [B, d] → encoding angles [B, 2**n − 1] (float64).

    Built in O(2**n) (0.01 s at 12 qubits); a call costs O(B·2**n·n), see the module docstring.
    Its tables are made on the CPU; a run on another device reads them through
    ``qdt.sim.device.on_device`` (``qdt/rl/quantum_layer.py``).
    """

    input_width: int
    n_qubits: int
    bias: torch.Tensor  # [2**n, 1]: φ(x) = 2·x (zero-padded) + bias
    transform: TreeTransform
    dense: DenseEncoding | None  # the small-register path (n ≤ SMALL_QUBITS), None above

    @classmethod
    def create(cls, input_width: int, n_qubits: int, small_qubits: int = SMALL_QUBITS) -> AmplitudeEncoder:
        """The encoder of ``input_width`` features on ``n_qubits`` qubits; registers of at most
        ``small_qubits`` qubits take the dense path (:class:`DenseEncoding`)."""
        if isinstance(n_qubits, bool) or not isinstance(n_qubits, int) or n_qubits < 1:
            raise QdtInputError("n_qubits", "an integer >= 1", n_qubits)
        size = 1 << n_qubits
        if isinstance(input_width, bool) or not isinstance(input_width, int) or not 1 <= input_width <= size:
            raise QdtInputError("input_width", f"an integer from 1 to 2**{n_qubits} = {size}", input_width)
        bias = np.zeros(size)
        bias[:input_width] = -1.0
        bias[0] += FEATURE_OFFSET
        if input_width == 1:
            bias[1] = 1.0
        return cls(
            input_width=input_width,
            n_qubits=n_qubits,
            bias=torch.as_tensor(bias, device="cpu")[:, None],
            transform=TreeTransform.create(n_qubits),
            dense=DenseEncoding.create(bias, input_width, n_qubits) if n_qubits <= small_qubits else None,
        )

    def validated(self, inputs: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``inputs`` as a float64 tensor [B, input_width] of finite values, or one clear error."""
        if isinstance(inputs, torch.Tensor):
            if inputs.is_complex():
                raise QdtInputError("inputs", "real numbers", f"a {inputs.dtype} tensor")
            x = inputs if inputs.dtype == torch.float64 else inputs.to(torch.float64)
        else:
            try:
                x = torch.as_tensor(np.asarray(inputs, dtype=np.float64), device="cpu")
            except (TypeError, ValueError):
                raise QdtInputError("inputs", "a tensor of real numbers", inputs) from None
        if x.dim() != 2 or x.shape[1] != self.input_width or x.shape[0] < 1:
            raise QdtInputError(
                "inputs",
                f"a 2-D tensor [batch, {self.input_width}]",
                f"shape {tuple(x.shape)}",
                "one row per sample; use x.unsqueeze(0) for a single sample",
            )
        # One reduction: the sum of finite values is finite unless it overflows, which the full
        # check then tells apart (3× cheaper than torch.isfinite on a small batch).
        if not math.isfinite(float(x.detach().sum())):
            bad = (~torch.isfinite(x.detach())).nonzero()
            if bad.shape[0]:
                row, column = (int(i) for i in bad[0])
                raise QdtInputError(
                    "inputs",
                    "finite values",
                    f"{x[row, column].item()} at row {row}, column {column}",
                    "the encoding cannot represent NaN or infinity; check what produced the inputs",
                )
        return x

    def feature_map(self, inputs: torch.Tensor | np.ndarray) -> torch.Tensor:
        """φ(x) [B, 2**n] (unnormalised amplitudes; see the module docstring)."""
        x = self.validated(inputs)
        return (
            torch.nn.functional.pad(FEATURE_SCALE * x, (0, (1 << self.n_qubits) - self.input_width))
            + self.bias.T
        )

    def state(self, inputs: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The state [B, 2**n] the encoding's angles prepare, computed directly: φ(x)/|φ(x)|, and
        |0…0⟩ where φ(x) = 0 (module docstring). For exact simulation without gradients
        (``StatevectorExecutor.run_encoded``), where it spares the angles and the tree."""
        amplitudes = self.feature_map(inputs)
        norms = torch.linalg.vector_norm(amplitudes, dim=1, keepdim=True)
        empty = norms == 0
        state = amplitudes / torch.where(empty, torch.ones_like(norms), norms)
        if bool(empty.any()):
            state[:, :1] = torch.where(empty, torch.ones_like(norms), state[:, :1])
        return state

    def __call__(self, inputs: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Encoding angles [B, 2**n − 1] for the circuit's ``enc`` parameters."""
        if self.dense is not None:
            return _DenseAngles.apply(self.validated(inputs), self.dense)
        return _EncodingAngles.apply(self.validated(inputs), self)


@dataclass(eq=False)
class _Saved:
    amplitudes: torch.Tensor  # φᵀ [D, B]
    pairs: torch.Tensor  # [A, 2, B]: (left, right) of every node; norms above the leaves
    inner: int  # nodes above the leaf level (2**(n−1) − 1)


def atan2_gradient(
    grad: torch.Tensor, left: torch.Tensor, right: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(∂L/∂left, ∂L/∂right) of h = atan2(right, left) from ∂L/∂h (all the same shape): −r/(l² + r²)
    and l/(l² + r²) times ∂L/∂h, and at l = r = 0 the gradient at the denominator 1 (0 and ∂L/∂h),
    as autograd through atan2(r, where(l = r = 0, 1, l)) gives."""
    denominator = torch.addcmul(left * left, right, right)
    zero = denominator == 0
    scaled = grad / denominator.masked_fill_(zero, 1.0)
    return torch.mul(scaled, right).neg_(), scaled * left.masked_fill(zero, 1.0)


class _EncodingAngles(torch.autograd.Function):
    """inputs → angles with the backward pass written out, basis index first ([D, B]).

    The forward pass needs no masks: √0 = 0 and atan2(±0, +0) = ±0 (adding +0.0 turns a −0
    denominator into +0, so atan2 never returns ±π at a zero norm). The backward pass applies
    the masks: zero gradient through a zero norm, and atan2's gradient at (0, 0) evaluated at the
    denominator 1 (:func:`atan2_gradient`; tests/test_circuits.py checks values and gradients
    against plain autograd through the definition).

    Where a whole branch of φ(x) is 0 these angles are not differentiable, though the state
    φ(x)/|φ(x)| they prepare is: a derivative that would move that branch off 0 is lost (the
    actor's 57 inputs at x₅₆ = ½, half the users unplaced, give ∂/∂x₅₆ = 0 instead of the true
    value). The statevector executor's training path up to 6 qubits differentiates the state
    instead (``StatevectorExecutor.run_encoded``, tests/test_encoded_state.py); wider circuits and
    the other executors still take these angles.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, encoder: AmplitudeEncoder) -> torch.Tensor:  # type: ignore[override]
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
        norms = [torch.sqrt(torch.cat(sums[::-1], dim=0))] if sums else []
        pairs = torch.cat([*norms, leaves], dim=0)
        half = torch.atan2(pairs[:, 1], pairs[:, 0] + 0.0)
        ctx.encoder = encoder
        ctx.saved = _Saved(amplitudes, pairs, dim // 2 - 1)
        return encoder.transform.angles(half).T

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:  # type: ignore[override]
        if not ctx.needs_input_grad[0]:
            return None, None
        encoder: AmplitudeEncoder = ctx.encoder
        saved: _Saved = ctx.saved
        batch, dim, inner = grad.shape[0], 1 << encoder.n_qubits, saved.inner
        grad_half = encoder.transform.angles_transposed(grad.T.contiguous())
        grad_pairs = torch.stack(atan2_gradient(grad_half, saved.pairs[:, 0], saved.pairs[:, 1]), 1)
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


@dataclass(frozen=True, eq=False)
class DenseEncoding:
    """The encoder's small-register path: the angles of :class:`AmplitudeEncoder` from dense tables,
    batch first, in a handful of torch operations (see the module docstring).

    With A = 2**n − 1 tree nodes in level order, the I = 2**(n−1) − 1 above the leaves first:
    a = bias + 2·x (zero-padded) [B, D]; the inner nodes' half norms √((a ⊙ a)·sums) [B, D] (left
    halves, right halves, then two zero columns that make the halves of v equal); with the
    amplitudes they make v = [norms | a] [B, 2D], which one gather (``to_pairs``) turns into
    (left of every node | right of every node); h = atan2(right, left) and θ = h·transform. The
    backward pass runs the same tables transposed, ``from_pairs`` being the inverse gather (the
    two padding columns gather anything: their zero norms stop it). Tables: O(4**n) entries, built
    on the CPU.
    """

    n_qubits: int
    input_width: int
    scale: torch.Tensor | None  # [d, D]: 2·[I | 0], None when d = D (a = bias + 2·x)
    bias: torch.Tensor  # [D]
    sums: torch.Tensor  # [D, D]: 0/1, squared amplitudes → squared norms of the inner halves
    sums_t: torch.Tensor  # [D, D]
    to_pairs: torch.Tensor  # [2A]: column of v feeding (left | right)
    from_pairs: torch.Tensor  # [2D]: column of (left | right) feeding each column of v
    transform: torch.Tensor  # [A, A]: θ = h·transform (block diagonal, level by level)
    transform_t: torch.Tensor  # [A, A]: 2·transformᵀ (the 2 of ∂a/∂x, applied first)

    @classmethod
    def create(cls, bias: np.ndarray, input_width: int, n_qubits: int) -> DenseEncoding:
        n, size = n_qubits, 1 << n_qubits
        inner = size // 2 - 1
        k = np.arange(size)
        sums = np.zeros((size, size))
        for side in (0, 1):
            for level in range(n - 1):
                for j in range(1 << level):
                    sums[:, side * inner + (1 << level) - 1 + j] = (k >> (n - 1 - level)) == 2 * j + side
        columns = size if n > 1 else 0  # v = [norms | a]; one qubit: v = a
        leaves = columns + 2 * np.arange(size // 2)  # column of v holding a_{2m}, the left of leaf m
        to_pairs = np.concatenate([np.arange(inner), leaves, inner + np.arange(inner), leaves + 1])
        from_pairs = np.zeros(columns + size, dtype=np.int64)
        from_pairs[to_pairs] = np.arange(to_pairs.size)
        scale = np.zeros((input_width, size))
        scale[np.arange(input_width), np.arange(input_width)] = 2.0
        transform = level_transform(n, inverse=False)

        def table(values: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(values), dtype=dtype, device="cpu")

        return cls(
            n_qubits=n,
            input_width=input_width,
            scale=None if input_width == size else table(scale),
            bias=table(bias),
            sums=table(sums),
            sums_t=table(sums.T),
            to_pairs=table(to_pairs, torch.int64),
            from_pairs=table(from_pairs, torch.int64),
            transform=table(transform),
            transform_t=table(2.0 * transform.T),
        )


@dataclass(eq=False)
class _DenseSaved:
    amplitudes: torch.Tensor  # a [B, D]
    norms: torch.Tensor | None  # [B, D] (None: one qubit, no inner node)
    left: torch.Tensor  # [B, A]
    right: torch.Tensor  # [B, A]


class _DenseAngles(torch.autograd.Function):
    """inputs → angles on :class:`DenseEncoding`'s tables; masks as :class:`_EncodingAngles`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, dense: DenseEncoding) -> torch.Tensor:  # type: ignore[override]
        if dense.scale is None:
            amplitudes = torch.add(dense.bias, x, alpha=2.0)
        else:
            amplitudes = torch.addmm(dense.bias, x, dense.scale)
        norms = None
        values = amplitudes
        if dense.n_qubits > 1:
            norms = torch.mm(amplitudes * amplitudes, dense.sums).sqrt_()
            values = torch.cat([norms, amplitudes], 1)
        left, right = values.index_select(1, dense.to_pairs).chunk(2, 1)
        ctx.dense = dense
        ctx.saved = _DenseSaved(amplitudes, norms, left, right)
        # no −0 to guard against (see _EncodingAngles): a = bias + 2·x is +0 where it cancels (the
        # bias is never −0), the norms are √ of sums of squares
        return torch.mm(torch.atan2(right, left), dense.transform)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:  # type: ignore[override]
        if not ctx.needs_input_grad[0]:
            return None, None
        dense: DenseEncoding = ctx.dense
        saved: _DenseSaved = ctx.saved
        # 2·∂L/∂h (transform_t holds the 2), so everything below is 2·∂L/∂·, and 2·∂L/∂a = ∂L/∂x
        grad_pairs = atan2_gradient(torch.mm(grad, dense.transform_t), saved.left, saved.right)
        grad_values = torch.cat(grad_pairs, 1).index_select(1, dense.from_pairs)
        if saved.norms is None:
            grad_amplitudes = grad_values
        else:
            grad_norms, grad_amplitudes = grad_values.chunk(2, 1)
            # ∂norm/∂a = a/norm on the norm's half (zero through a zero norm)
            through = (grad_norms / saved.norms).masked_fill_(saved.norms == 0, 0.0)
            grad_amplitudes = torch.addcmul(
                grad_amplitudes, saved.amplitudes, torch.mm(through, dense.sums_t)
            )
        if dense.scale is None:
            return grad_amplitudes, None
        return grad_amplitudes[:, : dense.input_width], None
