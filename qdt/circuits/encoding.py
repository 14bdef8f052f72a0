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
from torch.autograd.function import once_differentiable

from qdt.errors import QdtInputError

FEATURE_OFFSET = 0.5


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


@dataclass(frozen=True, eq=False)
class AmplitudeEncoder:
    """Batched, differentiable map inputs [B, d] → encoding angles [B, 2**n − 1] (float64)."""

    input_width: int
    n_qubits: int
    scale: torch.Tensor  # [d, 2**n]: 2·[I | 0]
    bias: torch.Tensor  # [2**n]
    child_sums: torch.Tensor  # [2**n, 2·(2**(n−1) − 1)]: left then right half of each node
    transform: torch.Tensor  # [2**n − 1, 2**n − 1]: 2 × block-diagonal Gray–Walsh, level order

    @classmethod
    def create(cls, input_width: int, n_qubits: int) -> AmplitudeEncoder:
        size = 2**n_qubits
        scale = np.zeros((input_width, size))
        scale[np.arange(input_width), np.arange(input_width)] = 2.0
        bias = np.zeros(size)
        bias[:input_width] = -1.0
        bias[0] += FEATURE_OFFSET
        if input_width == 1:
            bias[1] = 1.0
        lefts, rights = [], []
        k = np.arange(size)
        for level in range(n_qubits - 1):
            target = n_qubits - 1 - level
            for j in range(2**level):
                lefts.append((k >> target) == 2 * j)
                rights.append((k >> target) == 2 * j + 1)
        child_sums = np.array(lefts + rights, dtype=np.float64).reshape(-1, size).T
        blocks = [gray_walsh_matrix(level) for level in range(n_qubits)]
        transform = np.zeros((size - 1, size - 1))
        for level, block in enumerate(blocks):
            start = 2**level - 1
            transform[start : start + 2**level, start : start + 2**level] = 2.0 * block
        return cls(
            input_width=input_width,
            n_qubits=n_qubits,
            scale=torch.as_tensor(scale),
            bias=torch.as_tensor(bias),
            child_sums=torch.as_tensor(np.ascontiguousarray(child_sums)),
            transform=torch.as_tensor(transform),
        )

    def _validated(self, inputs: torch.Tensor | np.ndarray) -> torch.Tensor:
        if isinstance(inputs, torch.Tensor):
            if inputs.is_complex():
                raise QdtInputError("inputs", "real numbers", f"a {inputs.dtype} tensor")
            x = inputs.to(torch.float64)
        else:
            try:
                x = torch.as_tensor(np.asarray(inputs, dtype=np.float64))
            except (TypeError, ValueError):
                raise QdtInputError("inputs", "a tensor of real numbers", inputs) from None
        if x.dim() != 2 or x.shape[1] != self.input_width or x.shape[0] < 1:
            raise QdtInputError(
                "inputs",
                f"a 2-D tensor [batch, {self.input_width}]",
                f"shape {tuple(x.shape)}",
                "one row per sample; use x.unsqueeze(0) for a single sample",
            )
        bad = ~torch.isfinite(x.detach())
        if bool(bad.any()):
            row, column = (int(i) for i in bad.nonzero()[0])
            raise QdtInputError(
                "inputs",
                "finite values",
                f"{x[row, column].item()} at row {row}, column {column}",
                "the encoding cannot represent NaN or infinity; check what produced the inputs",
            )
        return x

    def feature_map(self, inputs: torch.Tensor | np.ndarray) -> torch.Tensor:
        """φ(x) [B, 2**n] (unnormalised amplitudes; see the module docstring)."""
        return torch.addmm(self.bias, self._validated(inputs), self.scale)

    def __call__(self, inputs: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Encoding angles [B, 2**n − 1] for the circuit's ``enc`` parameters."""
        return _EncodingAngles.apply(self._validated(inputs), self)

    def reference_angles(self, inputs: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The same angles through plain torch autograd (the definition the fast path follows)."""
        amplitudes = self.feature_map(inputs)
        leaves_left, leaves_right = amplitudes[:, 0::2], amplitudes[:, 1::2]
        if self.n_qubits > 1:
            squared = (amplitudes * amplitudes) @ self.child_sums
            positive = squared > 0
            norms = torch.where(positive, torch.sqrt(torch.where(positive, squared, 1.0)), 0.0)
            half = norms.shape[1] // 2
            left = torch.cat([norms[:, :half], leaves_left], dim=1)
            right = torch.cat([norms[:, half:], leaves_right], dim=1)
        else:
            left, right = leaves_left, leaves_right
        both_zero = (left == 0) & (right == 0)
        half_angles = torch.atan2(right, torch.where(both_zero, 1.0, left))
        return half_angles @ self.transform


class _EncodingAngles(torch.autograd.Function):
    """inputs → angles with the backward pass written out (a dozen small tensors instead of an
    autograd graph of ~30 nodes; identical values and gradients to ``reference_angles``).

    The forward pass needs no masks: √0 = 0 and atan2(±0, +0) = ±0 (adding +0.0 turns a −0
    denominator into +0, so atan2 never returns ±π at a zero norm). The backward pass applies
    the masks of ``reference_angles``: zero gradient through a zero norm, and atan2's gradient
    at (0, 0) evaluated at the denominator 1.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, encoder: AmplitudeEncoder) -> torch.Tensor:  # type: ignore[override]
        amplitudes = torch.addmm(encoder.bias, x, encoder.scale)
        leaves_left, leaves_right = amplitudes[:, 0::2], amplitudes[:, 1::2]
        norms = None
        if encoder.n_qubits > 1:
            norms = torch.sqrt((amplitudes * amplitudes) @ encoder.child_sums)
            half = norms.shape[1] // 2
            left = torch.cat([norms[:, :half], leaves_left], dim=1)
            right = torch.cat([norms[:, half:], leaves_right], dim=1)
        else:
            left, right = leaves_left, leaves_right
        half_angles = torch.atan2(right, left + 0.0)
        ctx.encoder = encoder
        ctx.saved = (amplitudes, norms, left, right)
        return half_angles @ encoder.transform

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:  # type: ignore[override]
        if not ctx.needs_input_grad[0]:
            return None, None
        encoder: AmplitudeEncoder = ctx.encoder
        amplitudes, norms, left, right = ctx.saved
        both_zero = (left == 0) & (right == 0)
        safe_left = left.masked_fill(both_zero, 1.0)
        grad_half = grad @ encoder.transform.T
        scaled = grad_half / torch.addcmul(safe_left * safe_left, right, right)
        grad_right = scaled * safe_left
        grad_left = (scaled * right).neg_().masked_fill_(both_zero, 0.0)
        batch = amplitudes.shape[0]
        if norms is None:
            return torch.stack([grad_left, grad_right], dim=2).view(batch, -1) @ encoder.scale.T, None
        half = norms.shape[1] // 2
        zero = norms == 0
        grad_norms = torch.cat([grad_left[:, :half], grad_right[:, :half]], dim=1)
        grad_squared = (grad_norms / (2.0 * norms.masked_fill(zero, 1.0))).masked_fill_(zero, 0.0)
        leaves = torch.stack([grad_left[:, half:], grad_right[:, half:]], dim=2).view(batch, -1)
        grad_amplitudes = torch.addcmul(leaves, amplitudes, grad_squared @ encoder.child_sums.T, value=2.0)
        return grad_amplitudes @ encoder.scale.T, None
