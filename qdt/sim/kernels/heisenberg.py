"""The batch-shared suffix of a density-matrix program, run backwards on the readout functional.

In Pauli coordinates the readout probabilities are p = Φᵀ r for the final state r, with the
functional Φ [4**n, 2**m] (see :func:`qdt.sim.program.pauli_readout_functional`). The
suffix — gates shared by the batch — is applied to Φ in the Heisenberg picture (transposed
channels, last gate first), once per call instead of once per batch row.

The suffix is grouped into layers (:func:`group_factors`): a layer is one noisy
one-qubit channel per qubit (its 4×4 transfer matrix R_q, constant or a trigonometric
polynomial of a weight) followed by a constant block P (the noisy CZ ring …, a sparse matrix;
a signed, scaled permutation for Pauli-diagonal noise). Φ ← Kᵀ (Pᵀ Φ) with K = ⊗ R_q:
Pᵀ as a gather, then Kᵀ one *chunk* of ≤ 2 neighbouring qubits at a time (a 16×16 matrix
R_{q+1}ᵀ ⊗ R_qᵀ on a view of Φ, one matmul). The backward pass is written out: for a chunk
Y = G ×_axis X, ∂X = Gᵀ ×_axis ∂Y and ∂G = Σ ∂Y Xᵀ over the other axes; ∂G splits into its
two Kronecker factors by contracting with the other one; ∂h_s = Σ ∂R_s ⊙ dR_s/dh.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import sparse

from qdt.sim.affine import AffineValue
from qdt.sim.device import cpu_tensor
from qdt.sim.engine import kron_pair
from qdt.sim.kernels.sparse_prefix import embed_sparse
from qdt.sim.layout import Space
from qdt.sim.lowering import CONST, LocalOp
from qdt.sim.trig import TrigFit, function_frequency


@dataclass(eq=False)
class LayerFactor:
    slots: dict[int, LocalOp]
    post: Any = None  # dense or sparse matrix of the constant gates after the layer


@dataclass(eq=False)
class ConstFactor:
    matrix: Any


Slot = tuple[AffineValue, TrigFit, int, int]  # value, fit, layer, qubit


def group_factors(
    ops: list[LocalOp], embed: Callable[[LocalOp], Any | None]
) -> list[LayerFactor | ConstFactor] | None:
    """The shared suffix ``ops`` (circuit order) as layers of one-qubit slots, each followed by
    the constant gates after it (``embed`` gives a constant multi-qubit gate's full matrix, or
    None to refuse it). None if a parameterised gate acts on more than one qubit."""
    factors: list[LayerFactor | ConstFactor] = []
    for op in ops:
        last = factors[-1] if factors else None
        if len(op.qubits) == 1:
            if len(op.parts) > 1:
                return None
            q = op.qubits[0]
            if isinstance(last, LayerFactor) and last.post is None and q not in last.slots:
                last.slots[q] = op
            else:
                factors.append(LayerFactor({q: op}))
        elif op.kind == CONST:
            assert op.matrix is not None
            matrix = embed(op)
            if matrix is None:
                return None
            if isinstance(last, LayerFactor):
                last.post = matrix if last.post is None else matrix @ last.post
            elif isinstance(last, ConstFactor):
                last.matrix = matrix @ last.matrix
            else:
                factors.append(ConstFactor(matrix))
        else:
            return None
    return factors


def collect_slots(
    layers: list[LayerFactor],
    num_qubits: int,
    identity: np.ndarray,
    accept_matrix: Callable[[np.ndarray], bool],
    accept_part: Callable[[AffineValue, TrigFit], bool],
) -> tuple[list[np.ndarray], list[Slot], np.ndarray] | None:
    """Constant one-qubit matrices (a pool that starts with ``identity``), parameterised slots,
    and every (layer, qubit)'s index into pool + slots; None if ``accept_*`` refuses a gate."""
    pool: list[np.ndarray] = [identity]
    parametric: list[Slot] = []
    slot_refs = np.zeros((len(layers), num_qubits), dtype=np.int64)
    for i, layer in enumerate(layers):
        for q, op in layer.slots.items():
            if op.matrix is not None:
                if not accept_matrix(op.matrix):
                    return None
                pool.append(op.matrix)
                slot_refs[i, q] = len(pool) - 1
            else:
                value, fit = op.parts[0]
                if not accept_part(value, fit):
                    return None
                parametric.append((value, fit, i, q))
                slot_refs[i, q] = -len(parametric)  # resolved below
    slot_refs = np.where(slot_refs < 0, len(pool) + (-slot_refs - 1), slot_refs)
    return pool, parametric, slot_refs


def half_angle_maps(parametric: list[Slot], n_weights: int) -> tuple[np.ndarray, np.ndarray]:
    """Every slot's half-angle as constant [S] + weights [S, n_weights] @ w."""
    half_constant = np.zeros(len(parametric))
    half_weights = np.zeros((len(parametric), n_weights))
    for s, (value, _, _, _) in enumerate(parametric):
        half_constant[s] = value.constant / 2
        for index, c in value.weight_terms:
            half_weights[s, index] += c / 2
    return half_constant, half_weights


def slot_features(half: torch.Tensor, functions: tuple[int, ...], derivative: bool) -> torch.Tensor:
    """[S, F]: g_f(h) (or g_f'(h)) for every slot."""
    columns = []
    cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for f in functions:
        if f == 0:
            columns.append(torch.zeros_like(half) if derivative else torch.ones_like(half))
            continue
        k = function_frequency(f)
        if k not in cache:
            scaled = half if k == 1 else half * k
            cache[k] = (torch.cos(scaled), torch.sin(scaled))
        cos, sin = cache[k]
        is_sine = f == 2 * k
        if not derivative:
            columns.append(sin if is_sine else cos)
        else:
            column = cos if is_sine else -sin
            columns.append(column if k == 1 else column * k)
    return torch.stack(columns, dim=1)


@dataclass(frozen=True, eq=False)
class Gather:
    """y[k] = Σ_t scale[t, k] · x[src[t, k]] for a constant sparse matrix (and its transpose)."""

    terms: int
    src: torch.Tensor  # [T·D]
    scale: torch.Tensor | None  # [T·D, 1], None when all ones
    dim: int

    @classmethod
    def of(cls, matrix: sparse.csr_matrix) -> Gather:
        matrix = sparse.csr_matrix(matrix)
        matrix.eliminate_zeros()
        dim = matrix.shape[0]
        counts = np.diff(matrix.indptr)
        terms = max(1, int(counts.max()) if dim else 1)
        src = np.zeros((terms, dim), dtype=np.int64)
        scale = np.zeros((terms, dim))
        for k in range(dim):
            start, stop = matrix.indptr[k], matrix.indptr[k + 1]
            src[: stop - start, k] = matrix.indices[start:stop]
            scale[: stop - start, k] = matrix.data[start:stop]
        all_ones = terms == 1 and np.all(scale == 1.0)
        return cls(
            terms,
            cpu_tensor(src.reshape(-1)),
            None if all_ones else cpu_tensor(scale.reshape(-1, 1)),
            dim,
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        picked = x.index_select(0, self.src)
        if self.scale is not None:
            picked = picked * self.scale
        if self.terms > 1:
            picked = picked.view(self.terms, self.dim, -1).sum(0)
        return picked


@dataclass(frozen=True, eq=False)
class Chunk:
    """Qubits lo … lo+size−1 (pairs from qubit 0 up; with odd n the last chunk is one qubit)."""

    lo: int
    size: int


@dataclass(frozen=True, eq=False)
class HeisenbergSuffix:
    dim: int
    num_qubits: int
    readout: torch.Tensor  # [D, R] functional Φ before the suffix
    order: tuple[tuple[str, int], ...]  # ("layer", i) / ("const", j) in circuit order
    n_layers: int
    chunks: tuple[Chunk, ...]
    application: tuple[int, ...]  # chunk indices, most significant first (see _apply)
    pairs: int  # the first ``pairs`` chunks have 2 qubits (0-1, 2-3, …); a last one may have 1
    pool: torch.Tensor  # [P, 4, 4] constant transfer matrices, pool[0] = identity
    slot_index: torch.Tensor  # [n_layers, n] into cat(pool, parametric)
    post: tuple[tuple[Gather, Gather] | None, ...]  # per layer: (Pᵀ, P) gathers
    consts: tuple[tuple[Gather, Gather], ...]
    n_slots: int
    functions: tuple[int, ...]
    coefficients: torch.Tensor  # [S, F, 4, 4]
    half_constant: torch.Tensor  # [S]
    half_weights: torch.Tensor | None  # [S, W]
    slot_layer: torch.Tensor  # [S]
    slot_qubit: torch.Tensor  # [S]
    last_weighted_layer: int  # the last layer with a slot (the backward pass ends there)


@dataclass(eq=False)
class HeisenbergSaved:
    half: torch.Tensor | None
    slots_t: torch.Tensor | None  # [n_layers, n, 4, 4] transposed transfer matrices
    pairs: torch.Tensor | None  # [n_layers, pairs, 16, 16]: chunk matrices of qubit pairs
    single: torch.Tensor | None  # [n_layers, 4, 4]: the last qubit's chunk (odd n)
    inputs: dict[tuple[int, int], torch.Tensor]  # (layer, chunk) → Φ before that chunk


def compile_heisenberg_suffix(
    ops: list[LocalOp], num_qubits: int, readout: np.ndarray, n_weights: int
) -> HeisenbergSuffix | None:
    """Group the shared suffix ``ops`` (circuit order, Pauli representation) into layers, or
    None if it has parameterised multi-qubit gates or complex matrices."""
    n = num_qubits
    space = Space(n, 4)

    def embed(op: LocalOp) -> sparse.csr_matrix | None:
        assert op.matrix is not None
        return None if np.iscomplexobj(op.matrix) else embed_sparse(op.matrix, op.qubits, space)

    factors = group_factors(ops, embed)
    if factors is None:
        return None
    layers = [f for f in factors if isinstance(f, LayerFactor)]
    collected = collect_slots(
        layers,
        n,
        np.eye(4),
        lambda matrix: not np.iscomplexobj(matrix),
        lambda value, fit: not np.iscomplexobj(fit.coefficients) and not value.uses_angles,
    )
    if collected is None:
        return None
    pool, parametric, slot_refs = collected
    functions = tuple(sorted({f for _, fit, _, _ in parametric for f in fit.functions}))
    coefficients = np.zeros((len(parametric), len(functions), 4, 4))
    for s, (_, fit, _, _) in enumerate(parametric):
        for i, f in enumerate(fit.functions):
            coefficients[s, functions.index(f)] = fit.coefficients[i]
    half_constant, half_weights = half_angle_maps(parametric, n_weights)
    chunks = []
    for lo in range(0, n, 2):
        size = min(2, n - lo)
        chunks.append(Chunk(lo, size))
    order: list[tuple[str, int]] = []
    counts = {"layer": 0, "const": 0}
    for factor in factors:
        kind = "layer" if isinstance(factor, LayerFactor) else "const"
        order.append((kind, counts[kind]))
        counts[kind] += 1

    def gathers(matrix: sparse.csr_matrix) -> tuple[Gather, Gather]:
        return Gather.of(matrix.T.tocsr()), Gather.of(matrix)

    return HeisenbergSuffix(
        dim=space.dim,
        num_qubits=n,
        readout=cpu_tensor(np.ascontiguousarray(readout)),
        order=tuple(order),
        n_layers=len(layers),
        chunks=tuple(chunks),
        application=tuple(range(len(chunks) - 1, -1, -1)),
        pairs=n // 2,
        pool=cpu_tensor(np.stack(pool)),
        slot_index=cpu_tensor(slot_refs),
        post=tuple(None if layer.post is None else gathers(layer.post) for layer in layers),
        consts=tuple(gathers(f.matrix) for f in factors if isinstance(f, ConstFactor)),
        n_slots=len(parametric),
        functions=functions,
        coefficients=cpu_tensor(coefficients),
        half_constant=cpu_tensor(half_constant),
        half_weights=cpu_tensor(half_weights) if half_weights.any() else None,
        slot_layer=cpu_tensor(np.array([p[2] for p in parametric], dtype=np.int64)),
        slot_qubit=cpu_tensor(np.array([p[3] for p in parametric], dtype=np.int64)),
        last_weighted_layer=max((int(p[2]) for p in parametric), default=0),
    )


def _chunk_matrices(suffix: HeisenbergSuffix, slots_t: torch.Tensor) -> torch.Tensor:
    """[n_layers, n_chunks, 16, 16] (pairs) — single-qubit last chunk handled by the caller."""
    layers = slots_t.shape[0]
    pair_part = slots_t[:, : 2 * suffix.pairs].reshape(layers, suffix.pairs, 2, 4, 4)
    low, high = pair_part.unbind(2)
    return kron_pair(high, low)


def _apply(matrix: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Apply ``matrix`` to the leading axis of Φ [D, R] and rotate that axis to the back of the
    state axes (before R): after every chunk of a layer, Φ is in its standard layout again."""
    m = matrix.shape[0]
    applied = matrix @ phi.view(m, -1)
    return applied.view(m, -1, phi.shape[1]).transpose(0, 1).reshape(phi.shape)


def _unapply(
    matrix: torch.Tensor, x: torch.Tensor, grad: torch.Tensor, need_input: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Backward of :func:`_apply`: (∂L/∂matrix, ∂L/∂Φ or None)."""
    m = matrix.shape[0]
    unrotated = grad.view(-1, m, grad.shape[1]).transpose(0, 1).reshape(m, -1)
    grad_matrix = unrotated @ x.view(m, -1).T
    if not need_input:
        return grad_matrix, None
    return grad_matrix, (matrix.T @ unrotated).view(x.shape)


def heisenberg_forward(
    suffix: HeisenbergSuffix, weights: torch.Tensor
) -> tuple[torch.Tensor, HeisenbergSaved]:
    """The functional Φ [D, R] after the suffix (in the Heisenberg picture)."""
    half = None
    slots_t = None
    pairs = single = None
    if suffix.n_layers:
        pool = suffix.pool
        if suffix.n_slots:
            half = suffix.half_constant
            if suffix.half_weights is not None:
                half = half + suffix.half_weights @ weights
            features = slot_features(half, suffix.functions, derivative=False)
            pool = torch.cat([pool, torch.einsum("sf,sfij->sij", features, suffix.coefficients)])
        slots_t = (
            pool.index_select(0, suffix.slot_index.view(-1)).view(suffix.n_layers, -1, 4, 4).transpose(-1, -2)
        )
        if suffix.pairs:
            pairs = _chunk_matrices(suffix, slots_t)
        if suffix.num_qubits % 2:
            single = slots_t[:, -1]
    phi = suffix.readout
    inputs: dict[tuple[int, int], torch.Tensor] = {}
    for kind, i in reversed(suffix.order):
        if kind == "const":
            phi = suffix.consts[i][0](phi)
            continue
        post = suffix.post[i]
        if post is not None:
            phi = post[0](phi)
        for c in suffix.application:
            inputs[(i, c)] = phi
            matrix = pairs[i, c] if suffix.chunks[c].size == 2 else single[i]  # type: ignore[index]
            phi = _apply(matrix, phi)
    return phi, HeisenbergSaved(half, slots_t, pairs, single, inputs)


def heisenberg_backward(
    suffix: HeisenbergSuffix, saved: HeisenbergSaved, grad_phi: torch.Tensor
) -> torch.Tensor | None:
    """∂L/∂weights [W] from ∂L/∂Φ [D, R] (None if no weight enters the suffix)."""
    if not suffix.n_slots or suffix.half_weights is None:
        return None
    assert saved.half is not None and saved.slots_t is not None
    pairs, single = saved.pairs, saved.single
    grad_pairs = torch.zeros_like(pairs) if pairs is not None else None
    grad_single = torch.zeros_like(single) if single is not None else None
    last_layer = suffix.last_weighted_layer  # a Python int: no device synchronisation
    grad = grad_phi
    for kind, i in suffix.order:  # circuit order = reverse of application
        if kind == "const":
            grad = suffix.consts[i][1](grad)
            continue
        for position in range(len(suffix.application) - 1, -1, -1):
            c = suffix.application[position]
            chunk = suffix.chunks[c]
            matrix = pairs[i, c] if chunk.size == 2 else single[i]  # type: ignore[index]
            done = i == last_layer and position == 0
            grad_matrix, grad_input = _unapply(matrix, saved.inputs[(i, c)], grad, not done)
            if chunk.size == 2:
                grad_pairs[i, c] = grad_matrix  # type: ignore[index]
            else:
                grad_single[i] = grad_matrix  # type: ignore[index]
            if grad_input is not None:
                grad = grad_input
        if i == last_layer:
            break
        post = suffix.post[i]
        if post is not None:
            grad = post[1](grad)
    slots_t = saved.slots_t
    grad_slots_t = torch.zeros_like(slots_t)
    if grad_pairs is not None:
        layers = slots_t.shape[0]
        pair_part = slots_t[:, : 2 * suffix.pairs].reshape(layers, suffix.pairs, 2, 4, 4)
        low, high = pair_part.unbind(2)
        blocks = grad_pairs.view(layers, suffix.pairs, 4, 4, 4, 4)  # [a, c, b, d]
        grad_high = torch.einsum("lpacbd,lpcd->lpab", blocks, low)
        grad_low = torch.einsum("lpacbd,lpab->lpcd", blocks, high)
        grad_slots_t[:, : 2 * suffix.pairs] = torch.stack([grad_low, grad_high], dim=2).view(layers, -1, 4, 4)
    if grad_single is not None:
        grad_slots_t[:, -1] = grad_single
    flat = suffix.slot_layer * suffix.num_qubits + suffix.slot_qubit
    grad_slots = grad_slots_t.view(-1, 4, 4).index_select(0, flat).transpose(-1, -2)  # [S, 4, 4]
    derivative = slot_features(saved.half, suffix.functions, derivative=True)  # [S, F]
    grad_half = (torch.einsum("sij,sfij->sf", grad_slots, suffix.coefficients) * derivative).sum(1)
    return grad_half @ suffix.half_weights
