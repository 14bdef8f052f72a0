"""Compile lowered gates into a :class:`Program` of batched torch steps (done once, in prepare).

Plan:

1. **Prefix and suffix.** Gates that depend on encoding angles differ per batch row; the rest
   (constants and weights) are shared by the whole batch. Shared gates after the last
   angle-dependent gate on their qubits (commuting past gates on other qubits) form the
   *suffix*; the rest is the *prefix*.
2. **Prefix steps** act on the batch state, stored transposed as [d**n, B] so that every
   gather moves contiguous rows of B numbers; a qubit joins the register at its first gate.
   A local matrix with few non-zeros per row (≤ 4; ≤ 3 for Pauli coordinates: one-qubit
   gates, CNOTs, CZs, multiplexed rotations, their transfer matrices …) is a *gather step*:
   ``new[k, b] = Σ_t coef[t, k, b] · state[src[t, k], b]`` — one index_select, one multiply,
   one sum; no Python loop over the batch. All coefficients of a call come from ONE matrix
   product of trigonometric features of every gate parameter with a constant matrix (a
   *table*). Neighbouring constant gates are merged, and constant signed permutations (CNOT,
   CZ, X, …) are folded into the next step's indices for free. Denser shared matrices on
   neighbouring qubits are applied as one batched matmul on a view of the state.
3. **Suffix.** For state vectors on up to six qubits the suffix is fused into ONE unitary per
   call, built from the weights with autograd (Kronecker products of one-qubit layers,
   constant blocks precomputed, a log-depth product) and applied with a single matmul. For
   Pauli coordinates it runs in the Heisenberg picture on the 2**m readout functionals instead
   of on the batch (transposed gates, reverse order), then meets the batch state in one matmul.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from qdt.sim.affine import AffineValue
from qdt.sim.device import CPU, cpu_tensor
from qdt.sim.layout import Space, embed_matrix, sparse_rows
from qdt.sim.lowering import BATCH, CONST, LocalOp
from qdt.sim.trig import clean

GATHER_MAX_TERMS = {2: 4, 4: 3}  # above this many non-zeros per row a dense step is cheaper
FUSE_MAX_DIM = 64  # fuse the state-vector suffix into one unitary up to 6 qubits
SEQUENTIAL_MAX_DIM = 64  # Pauli suffix as dense layer matrices up to 3 qubits
MERGE_MAX_DIM = {2: 64, 4: 16}
FULL_COEFFICIENTS_MAX = 256  # per-index coefficients up to T·D entries, else broadcast local ones


def to_tensor(array: np.ndarray) -> torch.Tensor:
    array = clean(np.asarray(array))
    dtype = torch.complex128 if np.iscomplexobj(array) else torch.float64
    return cpu_tensor(np.ascontiguousarray(array), dtype=dtype)


# ----------------------------------------------------------------------------- tables


@dataclass(frozen=True, eq=False)
class Table:
    """All parameter-dependent coefficients of a call, as one matrix product.

    Half-angles h = half_constant + half_angles·angles + half_weights·weights ([V, B] or [V]),
    features g_f(h_v) for the functions used, flattened [V·F, ..], and ``coefficients`` [X, V·F]
    times them: [X, B] or [X]. The X rows split into chunks of ``widths``, one per step.
    """

    uses_batch: bool
    functions: tuple[int, ...]
    coefficients: torch.Tensor  # [X, V·F]
    half_constant: torch.Tensor  # [V]
    half_angles: torch.Tensor | None  # [V, n_angles]
    half_weights: torch.Tensor | None  # [V, n_weights]
    widths: tuple[int, ...] = ()


class TableBuilder:
    def __init__(self, uses_batch: bool, n_angles: int, n_weights: int) -> None:
        self.uses_batch = uses_batch
        self.n_angles = n_angles
        self.n_weights = n_weights
        self.values: list[AffineValue] = []
        self.blocks: list[list[tuple[int, tuple[int, ...], np.ndarray]]] = []
        self.width = 0
        self.offsets: list[int] = []

    def add(self, parts: list[tuple[AffineValue, tuple[int, ...], np.ndarray]]) -> int:
        """Add a chunk of columns Σ_parts Σ_f g_f(value/2)·coefficients[f] ([F_p, X] each);
        returns the chunk's index."""
        self.offsets.append(self.width)
        block = []
        for value, functions, coefficients in parts:
            self.values.append(value)
            block.append((len(self.values) - 1, functions, coefficients))
        self.blocks.append(block)
        self.width += parts[0][2].shape[1]
        return len(self.blocks) - 1

    def build(self) -> Table | None:
        if not self.values:
            return None
        functions = tuple(sorted({f for b in self.blocks for _, fs, _ in b for f in fs}))
        n_f = len(functions)
        is_complex = any(np.iscomplexobj(c) for b in self.blocks for _, _, c in b)
        matrix = np.zeros(
            (len(self.values) * n_f, self.width), dtype=np.complex128 if is_complex else np.float64
        )
        offset = 0
        for block in self.blocks:
            width = block[0][2].shape[1]
            for v, fs, coefficients in block:
                for i, f in enumerate(fs):
                    matrix[v * n_f + functions.index(f), offset : offset + width] += coefficients[i]
            offset += width
        constant = np.array([v.constant / 2 for v in self.values])
        angles = np.zeros((self.n_angles, len(self.values)))
        weights = np.zeros((self.n_weights, len(self.values)))
        for v, value in enumerate(self.values):
            for index, coefficient in value.angle_terms:
                angles[index, v] += coefficient / 2
            for index, coefficient in value.weight_terms:
                weights[index, v] += coefficient / 2
        return Table(
            uses_batch=self.uses_batch,
            functions=functions,
            coefficients=to_tensor(matrix.T),
            half_constant=cpu_tensor(constant),
            half_angles=cpu_tensor(angles.T.copy()) if angles.any() else None,
            half_weights=cpu_tensor(weights.T.copy()) if weights.any() else None,
            widths=tuple(b[0][2].shape[1] for b in self.blocks),
        )


# ----------------------------------------------------------------------------- steps


@dataclass(eq=False)
class GatherStep:
    """new[k, b] = Σ_t coef[t, k, b] · state[src[t, k], b] (see the module docstring)."""

    terms: int
    group_shape: tuple[int, ...]  # state view, one axis per target qudit
    local_shape: tuple[int, ...]  # d on target axes, 1 elsewhere
    local_index: np.ndarray  # [D]: local row of every state index
    src: np.ndarray | None  # [T, D]; None: identity (diagonal step)
    scale: np.ndarray | None  # [T, D] constant factors (the whole coefficient if no parts)
    parts: list[tuple[AffineValue, tuple[int, ...], np.ndarray]] = field(default_factory=list)
    kind: str = CONST  # coefficient table: "batch", "shared" or none for constants
    # Filled by finalize():
    full: bool = True  # coefficients per state index [T, D] (else local [T, m], broadcast)
    chunk: int = 0
    width: int = 0
    src_tensor: torch.Tensor | None = None
    scale_tensor: torch.Tensor | None = None
    expand_tensor: torch.Tensor | None = None  # [T·D] local → full coefficient rows

    @property
    def is_constant_monomial(self) -> bool:
        return not self.parts and self.terms == 1

    def finalize(self, tables: dict[str, TableBuilder]) -> None:
        dim = self.local_index.shape[0]
        if self.src is not None:
            self.src_tensor = cpu_tensor(self.src.reshape(-1), dtype=torch.long)
        if not self.parts:
            if self.scale is not None:
                self.scale_tensor = to_tensor(self.scale).reshape(-1, 1)
            return
        self.full = self.terms * dim <= FULL_COEFFICIENTS_MAX
        if self.full:
            columns = []
            for value, functions, local in self.parts:  # local: [F, T, m]
                expanded = local[:, :, self.local_index]
                if self.scale is not None:
                    expanded = expanded * self.scale[None]
                columns.append((value, functions, expanded.reshape(len(functions), -1)))
            self.width = self.terms * dim
        else:
            columns = [
                (value, functions, local.reshape(len(functions), -1))
                for value, functions, local in self.parts
            ]
            self.width = columns[0][2].shape[1]
            m = self.width // self.terms
            expand = (np.arange(self.terms)[:, None] * m + self.local_index[None, :]).reshape(-1)
            self.expand_tensor = cpu_tensor(expand, dtype=torch.long)
            if self.scale is not None:
                self.scale_tensor = to_tensor(self.scale).reshape(-1, 1)
        self.chunk = tables[self.kind].add(columns)


@dataclass(eq=False)
class DenseStep:
    """A dense local matrix (constant, or table columns [m*m]) by einsum or full matmul."""

    qubits: tuple[int, ...]
    dim: int  # local dimension m
    full: bool  # the op spans the whole register
    matrix: torch.Tensor | None = None
    block: tuple[int, int] | None = None  # contiguous qubits: state viewed as [A, m, C·B]
    kind: str = CONST
    chunk: int = 0
    state_shape: tuple[int, ...] = ()
    matrix_shape: tuple[int, ...] = ()
    equation: str = ""


@dataclass(eq=False)
class ActivateStep:
    """Add a qubit, still in its initial state, to the simulated register (at ``position``)."""

    position: int  # its index among the active qubits after activation
    below: int  # d**position: size of the state index below it
    initial: torch.Tensor  # [d]: |0⟩ as amplitudes or as Pauli coordinates


@dataclass(eq=False)
class FusedPlan:
    num_qubits: int
    local_dim: int
    sequential: bool
    pool: torch.Tensor  # [P, 2, 2] constant one-qubit matrices, pool[0] = identity
    chains: torch.Tensor  # [S, K] indices into cat(pool, "fused1" matrices), K = 2**j
    local_factors: torch.Tensor  # [FL, n] indices into cat(identity, chain products)
    const_factors: torch.Tensor  # [FC, D, D], the last one the identity (for padding)
    post_factors: torch.Tensor  # [FL, D, D]: constant block applied right after each layer
    multi: list[tuple[torch.Tensor, torch.Tensor]]  # (index [D, D] into "fusedm", mask [D, D])
    order: torch.Tensor  # indices into cat(local krons, const factors, multi), length 2**j
    sequence: tuple[int, ...]  # the same indices as Python ints (the sequential path: no device read)


@dataclass(eq=False)
class FusedStep:
    """The shared suffix as one unitary per call (state vectors, small registers)."""

    plan: FusedPlan


Step = GatherStep | DenseStep | FusedStep | ActivateStep


@dataclass(eq=False)
class Program:
    """Everything an executor needs to run one prepared circuit, as torch constants."""

    space: Space
    initial: torch.Tensor  # [1, 1]: the empty register; the prefix activates every qubit
    prefix: list[Step]
    suffix: list[Step]
    heisenberg: bool
    readout_matrix: torch.Tensor | None  # state vectors: [2**m, D] marginal or None;
    #                                       Pauli coordinates: readout functional, transposed [D, 2**m]
    tables: dict[str, Table] = field(default_factory=dict)
    # A specialised kernel (angles, weights) -> probabilities [B, 2**m] that replaces the steps
    # above when the circuit has its shape (see qdt.sim.kernels.fused); None: run the steps.
    kernel: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None


# ----------------------------------------------------------------------------- building


def partition(ops: list[LocalOp]) -> tuple[list[LocalOp], list[LocalOp]]:
    """Split into (prefix, suffix); suffix ops are shared and commute past later prefix ops."""
    blocked: set[int] = set()
    prefix: list[LocalOp] = []
    suffix: list[LocalOp] = []
    for op in reversed(ops):
        if op.kind != BATCH and not blocked.intersection(op.qubits):
            suffix.append(op)
        else:
            prefix.append(op)
            blocked.update(op.qubits)
    return prefix[::-1], suffix[::-1]


def _terms(matrix: np.ndarray) -> int:
    return int(max(1, (matrix != 0).sum(axis=1).max()))


@dataclass(eq=False)
class _ConstGroup:
    qubits: tuple[int, ...]
    matrix: np.ndarray
    names: list[str]


def merge_constants(ops: list[LocalOp], space: Space, limit: int | None = None) -> list[LocalOp]:
    """Multiply neighbouring constant gates together (moving them past gates on other qubits)
    while the product stays small (local dimension <= ``limit``) and sparse."""
    limit = MERGE_MAX_DIM[space.local_dim] if limit is None else limit
    d = space.local_dim
    items: list[LocalOp | _ConstGroup] = []
    for op in ops:
        if op.kind != CONST:
            items.append(op)
            continue
        assert op.matrix is not None
        merged = False
        for i in range(len(items) - 1, -1, -1):
            item = items[i]
            if isinstance(item, _ConstGroup):
                union = tuple(sorted(set(item.qubits) | set(op.qubits)))
                if d ** len(union) <= limit:
                    product = clean(
                        embed_matrix(op.matrix, op.qubits, union, d)
                        @ embed_matrix(item.matrix, item.qubits, union, d)
                    )
                    if _terms(product) <= GATHER_MAX_TERMS[d] or len(union) == space.num_qubits:
                        items[i] = _ConstGroup(union, product, item.names + [op.name])
                        merged = True
                        break
            if set(item.qubits) & set(op.qubits):
                break
        if not merged:
            items.append(_ConstGroup(op.qubits, op.matrix, [op.name]))
    return [
        LocalOp("*".join(item.names), item.qubits, matrix=item.matrix)
        if isinstance(item, _ConstGroup)
        else item
        for item in items
    ]


def make_step(op: LocalOp, space: Space, tables: dict[str, TableBuilder]) -> Step:
    """One gather or dense step for a lowered op."""
    d = space.local_dim
    m = d ** len(op.qubits)
    src_local, valid = sparse_rows(op.pattern())
    terms = src_local.shape[0]
    full = tuple(op.qubits) == tuple(range(space.num_qubits))
    contiguous = tuple(op.qubits) == tuple(range(op.qubits[0], op.qubits[0] + len(op.qubits)))
    shared_dense = op.kind != BATCH and terms > 1 and (contiguous or full and m <= FUSE_MAX_DIM)
    if terms > GATHER_MAX_TERMS[d] or shared_dense:
        return _dense_step(op, space, tables, full)
    shape, local_shape = space.group_shape(op.qubits)
    local, rest = space.digits(op.qubits)
    src: np.ndarray | None = np.stack(
        [space.embed(op.qubits, rest, src_local[t][local]) for t in range(terms)]
    )
    if terms == 1 and np.array_equal(src[0], np.arange(space.dim)):  # type: ignore[index]
        src = None
    rows = np.arange(m)
    step = GatherStep(terms, shape, local_shape, local, src, None, kind=op.kind)
    if op.matrix is not None:
        values = np.where(valid, op.matrix[rows[None, :], src_local], 0.0)  # [T, m]
        scale = values[:, local]
        step.scale = None if terms == 1 and np.all(scale == 1.0) else scale
        return step
    for value, fit in op.parts:
        coefficients = fit.coefficients[:, rows[None, :], src_local]  # [F, T, m]
        step.parts.append((value, fit.functions, np.where(valid[None], coefficients, 0.0)))
    return step


def _dense_step(op: LocalOp, space: Space, tables: dict[str, TableBuilder], full: bool) -> DenseStep:
    d = space.local_dim
    k = len(op.qubits)
    m = d**k
    step = DenseStep(op.qubits, m, full, kind=op.kind)
    if op.matrix is not None:
        step.matrix = to_tensor(op.matrix)
    else:
        columns = [
            (value, fit.functions, fit.coefficients.reshape(len(fit.functions), m * m))
            for value, fit in op.parts
        ]
        step.chunk = tables[op.kind].add(columns)
    if full:
        return step
    if op.kind != BATCH and tuple(op.qubits) == tuple(range(op.qubits[0], op.qubits[0] + k)):
        step.block = (space.dim // (m * d ** op.qubits[0]), d ** op.qubits[0])
        return step
    shape, local_shape = space.group_shape(op.qubits)
    letters = iter("abcdefghijklmnopqrstuvwxy")
    state_in, state_out, out_letters, in_letters = [], [], [], []
    for is_target in (size > 1 for size in local_shape):
        letter = next(letters)
        state_in.append(letter)
        if is_target:
            new = next(letters)
            state_out.append(new)
            in_letters.append(letter)
            out_letters.append(new)
        else:
            state_out.append(letter)
    batch = "Z" if op.kind == BATCH else ""
    step.state_shape = shape
    step.matrix_shape = tuple([d] * (2 * k))
    matrix = "".join(out_letters + in_letters)
    step.equation = f"{matrix}{batch},{''.join(state_in)}Z->{''.join(state_out)}Z"
    return step


def fold_monomials(steps: list[Step], space: Space) -> list[Step]:
    """Fold constant signed permutations into the following gather step's indices."""
    out: list[Step] = []
    pending: GatherStep | None = None
    identity = np.arange(space.dim)
    for step in steps:
        if isinstance(step, GatherStep) and pending is not None:
            p_src = pending.src[0] if pending.src is not None else identity
            n_src = step.src if step.src is not None else identity[None, :]
            n_src = np.broadcast_to(n_src, (step.terms, space.dim))
            new_src: np.ndarray | None = np.ascontiguousarray(p_src[n_src])
            scale: np.ndarray | None = np.ones((step.terms, space.dim)) if step.scale is None else step.scale
            if pending.scale is not None:
                scale = scale * pending.scale[0][n_src]
            if (step.parts or step.terms == 1) and np.all(scale == 1.0):
                scale = None
            if step.terms == 1 and np.array_equal(new_src[0], identity):  # type: ignore[index]
                new_src = None
            step.src = new_src
            step.scale = scale
            pending = None
        if pending is not None:
            out.append(pending)
            pending = None
        if isinstance(step, GatherStep) and step.is_constant_monomial:
            pending = step
            continue
        out.append(step)
    if pending is not None:
        out.append(pending)
    return out


def build_steps(
    ops: list[LocalOp],
    space: Space,
    tables: dict[str, TableBuilder],
    merge_limit: int | None = None,
) -> list[Step]:
    merged = merge_constants(ops, space, merge_limit)
    steps = fold_monomials([make_step(op, space, tables) for op in merged], space)
    for step in steps:
        if isinstance(step, GatherStep):
            step.finalize(tables)
    return steps


def build_prefix_steps(
    ops: list[LocalOp], space: Space, qubit_state: np.ndarray, tables: dict[str, TableBuilder]
) -> list[Step]:
    """Prefix steps on a register that grows: a qubit joins (in |0⟩) at its first gate, so
    early gates of the encoding act on a smaller state. All qubits are active at the end."""
    d = space.local_dim
    merged = merge_constants(ops, space)
    steps: list[Step] = []
    active: list[int] = []
    segment: list[LocalOp] = []
    initial = to_tensor(qubit_state)

    def flush() -> None:
        if segment:
            steps.extend(build_steps(segment, Space(len(active), d), tables, merge_limit=1))
            segment.clear()

    def activate(qubits: set[int]) -> None:
        flush()
        for q in sorted(qubits):
            active.append(q)
            active.sort()
            position = active.index(q)
            steps.append(ActivateStep(position, d**position, initial))

    for op in merged:
        new = set(op.qubits) - set(active)
        if new:
            activate(new)
        positions = tuple(active.index(q) for q in op.qubits)
        segment.append(LocalOp(op.name, positions, op.matrix, op.parts, op.gate_qubits))
    activate(set(range(space.num_qubits)) - set(active))
    flush()
    return steps


# ----------------------------------------------------------------------------- fusion


@dataclass(eq=False)
class _LocalFactor:
    """A layer of one-qubit chains (one per qubit), optionally followed by a constant block."""

    slots: dict[int, list[LocalOp]]
    post: np.ndarray | None = None

    def qubits(self) -> set[int]:
        return set(self.slots)


@dataclass(eq=False)
class _ConstFactor:
    touched: set[int]
    matrix: np.ndarray

    def qubits(self) -> set[int]:
        return self.touched


@dataclass(eq=False)
class _MultiFactor:
    op: LocalOp

    def qubits(self) -> set[int]:
        return set(self.op.qubits)


def build_fused_plan(
    ops: list[LocalOp],
    space: Space,
    table: TableBuilder,
    multi_table: TableBuilder,
    sequential: bool = False,
) -> FusedPlan:
    """Group the suffix into factors: one-qubit layers (Kronecker products of per-qubit
    chains), constant blocks (precomputed) and parameterised multi-qubit gates. The unitary is
    their product, taken as a balanced tree at run time; with ``sequential`` the factors are
    instead applied one by one to the state (for Pauli coordinates, where D = 4**n is too
    large for D×D products but the Heisenberg suffix has only 2**m columns)."""
    n = space.num_qubits
    dim = space.dim
    d = space.local_dim
    factors: list[_LocalFactor | _ConstFactor | _MultiFactor] = []
    for op in ops:
        qubits = set(op.qubits)
        last = max((i for i, f in enumerate(factors) if f.qubits() & qubits), default=-1)
        if len(op.qubits) == 1:
            q = op.qubits[0]
            previous = factors[last] if last >= 0 else None
            if isinstance(previous, _LocalFactor):
                previous.slots[q].append(op)
                continue
            for factor in factors[last + 1 :]:
                if isinstance(factor, _LocalFactor):
                    factor.slots[q] = [op]
                    break
            else:
                factors.append(_LocalFactor({q: [op]}))
        elif op.kind == CONST:
            assert op.matrix is not None
            matrix = embed_matrix(op.matrix, op.qubits, range(n), d)
            for factor in reversed(factors[max(last, 0) :]):
                if isinstance(factor, _ConstFactor):
                    factor.matrix = matrix @ factor.matrix
                    factor.touched |= qubits
                    break
            else:
                factors.append(_ConstFactor(qubits, matrix))
        else:
            factors.append(_MultiFactor(op))

    # A constant block right after a one-qubit layer is multiplied onto it (one bmm for all).
    merged: list[_LocalFactor | _ConstFactor | _MultiFactor] = []
    for factor in factors:
        previous = merged[-1] if merged else None
        if (
            not sequential
            and isinstance(factor, _ConstFactor)
            and isinstance(previous, _LocalFactor)
            and previous.post is None
        ):
            previous.post = factor.matrix
        else:
            merged.append(factor)
    pool: list[np.ndarray] = [np.eye(d)]
    chains: list[list[int]] = []
    local_rows: list[list[int]] = []
    post: list[np.ndarray] = []
    consts: list[np.ndarray] = []
    multi: list[tuple[torch.Tensor, torch.Tensor]] = []
    order: list[tuple[str, int]] = []
    for factor in merged:
        if isinstance(factor, _LocalFactor):
            row = [0] * n
            for q, chain_ops in factor.slots.items():
                chain: list[int] = []
                for op in chain_ops:
                    if op.matrix is not None:
                        pool.append(op.matrix)
                        chain.append(len(pool) - 1)
                    else:
                        columns = [
                            (v, f.functions, f.coefficients.reshape(len(f.functions), d * d))
                            for v, f in op.parts
                        ]
                        chain.append(-1 - table.add(columns))
                chains.append(chain)
                row[q] = len(chains)  # 0 is the identity
            local_rows.append(row)
            if not sequential:
                post.append(factor.post if factor.post is not None else np.eye(dim))
            order.append(("local", len(local_rows) - 1))
        elif isinstance(factor, _ConstFactor):
            consts.append(factor.matrix)
            order.append(("const", len(consts) - 1))
        else:
            op = factor.op
            m = d ** len(op.qubits)
            columns = [(v, f.functions, f.coefficients.reshape(len(f.functions), m * m)) for v, f in op.parts]
            offset = multi_table.offsets[multi_table.add(columns)]
            local, rest = space.digits(op.qubits)
            index = cpu_tensor(offset + local[:, None] * m + local[None, :], dtype=torch.long)
            mask = cpu_tensor(rest[:, None] == rest[None, :], dtype=torch.float64)
            multi.append((index, mask))
            order.append(("multi", len(multi) - 1))
    depth = max((len(c) for c in chains), default=1)
    width = 1 << (depth - 1).bit_length()
    chain_index = np.zeros((len(chains), width), dtype=np.int64)
    for s, chain in enumerate(chains):
        for j, ref in enumerate(chain):
            chain_index[s, j] = ref if ref >= 0 else len(pool) + (-1 - ref)
    if not sequential:
        consts.append(np.eye(dim))
    n_local, n_const = len(local_rows), len(consts)
    offsets = {"local": 0, "const": n_local, "multi": n_local + n_const}
    flat = [offsets[kind] + i for kind, i in order]
    if not sequential:
        padded = 1 << max(0, (len(flat) - 1).bit_length())
        flat += [n_local + n_const - 1] * (padded - len(flat))
    pool_array = clean(np.stack(pool))
    const_array = clean(np.stack(consts)) if consts else np.zeros((0, dim, dim))
    post_array = clean(np.stack(post)) if post else np.zeros((0, dim, dim))
    is_complex = (
        np.iscomplexobj(pool_array)
        or np.iscomplexobj(const_array)
        or np.iscomplexobj(post_array)
        or any(np.iscomplexobj(c) for b in table.blocks + multi_table.blocks for _, _, c in b)
    )
    ctype = torch.complex128 if is_complex else torch.float64
    return FusedPlan(
        num_qubits=n,
        local_dim=d,
        sequential=sequential,
        pool=cpu_tensor(pool_array, dtype=ctype),
        chains=cpu_tensor(chain_index),
        local_factors=cpu_tensor(np.array(local_rows, dtype=np.int64).reshape(-1, n)),
        const_factors=cpu_tensor(const_array, dtype=ctype),
        post_factors=cpu_tensor(post_array, dtype=ctype),
        multi=multi,
        order=cpu_tensor(flat, dtype=torch.long),
        sequence=tuple(flat),
    )


# ----------------------------------------------------------------------------- programs


def marginal_matrix(num_qubits: int, readout: tuple[int, ...]) -> np.ndarray | None:
    """[2**n, 2**m] 0/1 matrix summing probabilities onto the readout bits (None: identity)."""
    if readout == tuple(range(num_qubits)):
        return None
    k = np.arange(2**num_qubits)
    outcome = np.zeros_like(k)
    for i, q in enumerate(readout):
        outcome |= ((k >> q) & 1) << i
    matrix = np.zeros((2**num_qubits, 2 ** len(readout)))
    matrix[k, outcome] = 1.0
    return matrix


def pauli_readout_functional(num_qubits: int, readout: tuple[int, ...]) -> np.ndarray:
    """[2**m, 4**n]: probabilities of the readout bits from Pauli coordinates.

    p(r) = 2**-m Σ_{z ⊆ readout} (−1)^{popcount(z & r)} r_{Z^z}, where Z^z has Z on the
    readout qubits selected by z and I elsewhere.
    """
    m = len(readout)
    functional = np.zeros((2**m, 4**num_qubits))
    outcomes = np.arange(2**m)
    for z in range(2**m):
        index = sum(3 * 4 ** readout[i] for i in range(m) if (z >> i) & 1)
        parity = np.array([bin(z & r).count("1") % 2 for r in outcomes])
        functional[:, index] = (1.0 - 2.0 * parity) / 2**m
    return functional


def build_program(
    ops: list[LocalOp],
    space: Space,
    qubit_state: np.ndarray,
    readout: tuple[int, ...],
    heisenberg: bool,
    n_angles: int,
    n_weights: int,
    fuse: bool = True,
) -> Program:
    tables = {
        name: TableBuilder(name == BATCH, n_angles, n_weights)
        for name in ("batch", "shared", "fused1", "fusedm")
    }
    prefix_ops, suffix_ops = partition(ops)
    prefix = build_prefix_steps(prefix_ops, space, qubit_state, tables)
    if heisenberg:
        transposed = [op.transposed() for op in reversed(suffix_ops)]
        if fuse and any(op.kind != CONST for op in transposed) and space.dim <= SEQUENTIAL_MAX_DIM:
            plan = build_fused_plan(transposed, space, tables["fused1"], tables["fusedm"], sequential=True)
            suffix: list[Step] = [FusedStep(plan)]
        else:
            suffix = build_steps(transposed, space, tables)
        readout_tensor: torch.Tensor | None = to_tensor(pauli_readout_functional(space.num_qubits, readout).T)
    else:
        has_parameters = any(op.kind != CONST for op in suffix_ops)
        if fuse and has_parameters and space.dim <= FUSE_MAX_DIM:
            plan = build_fused_plan(suffix_ops, space, tables["fused1"], tables["fusedm"])
            suffix = [FusedStep(plan)]
        else:
            suffix = build_steps(suffix_ops, space, tables)
        marginal = marginal_matrix(space.num_qubits, readout)
        readout_tensor = None if marginal is None else to_tensor(marginal.T)
    built = {name: builder.build() for name, builder in tables.items()}
    return Program(
        space=space,
        initial=torch.ones(1, 1, dtype=torch.float64, device=CPU),
        prefix=prefix,
        suffix=suffix,
        heisenberg=heisenberg,
        readout_matrix=readout_tensor,
        tables={name: table for name, table in built.items() if table is not None},
    )
