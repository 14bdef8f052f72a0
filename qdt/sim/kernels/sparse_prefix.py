"""The batch prefix of a density-matrix (Pauli-coordinate) program as sparse steps on a support.

Each parameterised gate of the prefix, with the constant gates before it multiplied in (noisy
CNOTs, …), is ONE step: a sparse matrix whose entries are linear in the trigonometric features
g_f(h_v) of the gate's parameter(s). Only the *support* of the state is stored: the Pauli
coordinates that can be non-zero (structurally) after each step — |0…0⟩ has 2**n of the 4**n,
and a real circuit (RY, CNOT, CZ, real noise) never reaches strings with an odd number of Y —
so early steps act on a few rows and the state never holds rows that are identically zero.

A step with T terms per row computes, for the state S [rows_in, B] (batch last),

    new[i, b] = Σ_t coef[t, i, b] · S[src[t, i], b],     coef = C @ features_v   ([T·rows, B])

(one small matmul, one gather, one multiply, one sum); the first step has the initial state
folded into C, so it is the matmul alone. The backward pass is written out (:func:`prefix_backward`):
∂coef = picked ⊙ ∂new, ∂features_v += Cᵀ ∂coef, ∂S = index_add(src, coef ⊙ ∂new).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import sparse

from qdt.sim.affine import AffineValue
from qdt.sim.device import cpu_tensor
from qdt.sim.layout import Space
from qdt.sim.lowering import CONST, LocalOp
from qdt.sim.trig import function_frequency

MAX_TERMS = 16  # more non-zeros per row than this: leave the circuit to the generic program


@dataclass(frozen=True, eq=False)
class PrefixStep:
    terms: int
    rows: int
    src: torch.Tensor | None  # [T·rows] rows of the input support; None: initial state folded in
    coefficients: torch.Tensor  # [T·rows, P·F]
    feature_rows: slice | torch.Tensor  # rows of the feature table [V·F, B] this step reads
    state_rows: slice = field(default_factory=lambda: slice(0, 0))  # its output in the arena


@dataclass(frozen=True)
class ArenaLayout:
    """One allocation per call instead of dozens: the states of every step are slices of one
    arena, and the per-step temporaries (coefficients, gathered rows, products) reuse three
    scratch blocks that stay in cache; the backward pass recomputes them (one matmul and one
    gather per step) instead of keeping them. Tensors of a few hundred kB are above glibc's
    mmap threshold: allocated one by one they cost a page fault per page on every call."""

    forward_rows: int  # states of every step, then the scratch blocks
    coefficients: slice
    picked: slice
    product: slice
    max_rows: int  # largest state
    max_term_rows: int  # largest T·rows


@dataclass(frozen=True, eq=False)
class SparsePrefix:
    """Compiled prefix (see the module docstring)."""

    n_values: int
    functions: tuple[int, ...]  # feature functions (0: 1, 2k−1: cos kh, 2k: sin kh)
    half_constant: torch.Tensor  # [V]
    half_angles: torch.Tensor | None  # [V, n_angles]
    half_weights: torch.Tensor | None  # [V, n_weights]
    steps: tuple[PrefixStep, ...]
    support: torch.Tensor  # [rows]: full Pauli index of every row of the final state
    constant_state: torch.Tensor | None  # [rows, 1] when there are no steps
    layout: ArenaLayout = ArenaLayout(0, slice(0, 0), slice(0, 0), slice(0, 0), 0, 0)


@dataclass(eq=False)
class PrefixSaved:
    half: torch.Tensor | None
    trig: dict[int, tuple[torch.Tensor, torch.Tensor]]  # frequency → (cos, sin) [V, B]
    table: torch.Tensor | None  # [V·F, B] features
    states: list[torch.Tensor]  # the state after every step (slices of one arena)


def embed_sparse(matrix: np.ndarray, qubits: tuple[int, ...], space: Space) -> sparse.csr_matrix:
    """The local ``matrix`` on ``qubits`` (ascending) as a sparse matrix on the whole register."""
    dim = space.dim
    local, rest = space.digits(qubits)
    columns = np.arange(dim)
    rows, cols, values = [], [], []
    for a in range(matrix.shape[0]):
        entries = matrix[a, local]
        keep = entries != 0
        if not keep.any():
            continue
        target = space.embed(qubits, rest, np.full(dim, a))
        rows.append(target[keep])
        cols.append(columns[keep])
        values.append(entries[keep])
    if not rows:
        return sparse.csr_matrix((dim, dim))
    return sparse.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(dim, dim)
    )


Components = dict[tuple[int, int], sparse.csr_matrix]  # (value, function) → matrix


def _group_ops(
    ops: list[LocalOp], space: Space, values: dict[AffineValue, int]
) -> tuple[list[Components], sparse.csr_matrix | None] | None:
    """Parameterised ops with the constants before them multiplied in; constants after the last
    one are multiplied into it. Returns (groups, leftover constant if there is no group)."""
    groups: list[Components] = []
    pending: sparse.csr_matrix | None = None
    for op in ops:
        if op.kind == CONST:
            assert op.matrix is not None
            if np.iscomplexobj(op.matrix):
                return None
            embedded = embed_sparse(op.matrix, op.qubits, space)
            pending = embedded if pending is None else embedded @ pending
            continue
        components: Components = {}
        for value, fit in op.parts:
            if np.iscomplexobj(fit.coefficients):
                return None
            v = values.setdefault(value, len(values))
            for i, f in enumerate(fit.functions):
                matrix = embed_sparse(fit.coefficients[i], op.qubits, space)
                key = (v, f)
                components[key] = matrix if key not in components else components[key] + matrix
        if pending is not None:
            components = {key: matrix @ pending for key, matrix in components.items()}
            pending = None
        groups.append(components)
    if pending is not None and groups:
        groups[-1] = {key: pending @ matrix for key, matrix in groups[-1].items()}
        pending = None
    return groups, pending


def compile_sparse_prefix(
    ops: list[LocalOp], num_qubits: int, initial: np.ndarray, n_angles: int, n_weights: int
) -> SparsePrefix | None:
    """Compile the batch prefix ``ops`` (Pauli representation); None if it does not fit
    (complex matrices, too many terms per row)."""
    space = Space(num_qubits, 4)
    values: dict[AffineValue, int] = {}
    grouped = _group_ops(ops, space, values)
    if grouped is None:
        return None
    groups, leftover = grouped
    state = initial if leftover is None else leftover @ initial
    support = np.nonzero(np.abs(state) > 1e-15)[0]
    functions = tuple(sorted({f for components in groups for (_, f) in components}))
    n_f = len(functions)
    steps: list[PrefixStep] = []
    for components in groups:
        keys = sorted(components)
        used_values = sorted({v for v, _ in keys})
        columns = {(v, f): j * n_f + functions.index(f) for j, v in enumerate(used_values) for f in functions}
        blocks = {key: components[key][:, support].toarray() for key in keys}
        pattern = np.zeros_like(next(iter(blocks.values())), dtype=bool)
        for block in blocks.values():
            pattern |= np.abs(block) > 1e-15
        out_support = np.nonzero(pattern.any(axis=1))[0]
        rows = len(out_support)
        if not steps:  # the initial state folded in: new = C @ features
            initial_values = state[support]
            coefficients = np.zeros((rows, len(used_values) * n_f))
            for key, block in blocks.items():
                coefficients[:, columns[key]] = block[out_support] @ initial_values
            src = None
            terms = 1
        else:
            counts = pattern[out_support].sum(axis=1)
            terms = int(counts.max())
            if terms > MAX_TERMS:
                return None
            src_array = np.zeros((terms, rows), dtype=np.int64)
            coefficients = np.zeros((terms, rows, len(used_values) * n_f))
            for i, k in enumerate(out_support.tolist()):
                nonzero = np.nonzero(pattern[k])[0]
                src_array[: len(nonzero), i] = nonzero
                for key, block in blocks.items():
                    coefficients[: len(nonzero), i, columns[key]] = block[k, nonzero]
            coefficients = coefficients.reshape(terms * rows, -1)
            src = cpu_tensor(src_array.reshape(-1))
        if len(used_values) == 1:
            feature_rows: slice | torch.Tensor = slice(used_values[0] * n_f, (used_values[0] + 1) * n_f)
        else:
            feature_rows = cpu_tensor([v * n_f + j for v in used_values for j in range(n_f)])
        steps.append(PrefixStep(terms, rows, src, cpu_tensor(coefficients), feature_rows))
        support = out_support
    ordered = sorted(values, key=values.__getitem__)
    half_angles = np.zeros((len(ordered), n_angles))
    half_weights = np.zeros((len(ordered), n_weights))
    for v, value in enumerate(ordered):
        for i, c in value.angle_terms:
            half_angles[v, i] += c / 2
        for i, c in value.weight_terms:
            half_weights[v, i] += c / 2
    steps, layout = _arena_layout(steps)
    return SparsePrefix(
        layout=layout,
        n_values=len(ordered),
        functions=functions,
        half_constant=cpu_tensor(np.array([value.constant / 2 for value in ordered])),
        half_angles=cpu_tensor(half_angles) if half_angles.any() else None,
        half_weights=cpu_tensor(half_weights) if half_weights.any() else None,
        steps=tuple(steps),
        support=cpu_tensor(support),
        constant_state=None if steps else cpu_tensor(state[support])[:, None],
    )


def _arena_layout(steps: list[PrefixStep]) -> tuple[list[PrefixStep], ArenaLayout]:
    offset = 0

    def take(count: int) -> slice:
        nonlocal offset
        region = slice(offset, offset + count)
        offset += count
        return region

    laid_out = [
        PrefixStep(step.terms, step.rows, step.src, step.coefficients, step.feature_rows, take(step.rows))
        for step in steps
    ]
    max_rows = max((step.rows for step in steps), default=0)
    max_term_rows = max((step.terms * step.rows for step in steps), default=0)
    scratch = [take(max_term_rows) for _ in range(3)]
    return laid_out, ArenaLayout(offset, *scratch, max_rows, max_term_rows)


def _feature_table(
    prefix: SparsePrefix, half: torch.Tensor
) -> tuple[torch.Tensor, dict[int, tuple[torch.Tensor, torch.Tensor]]]:
    """[V·F, B] features (value-major) and the cos/sin per frequency for the backward pass."""
    trig: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    columns = []
    for f in prefix.functions:
        if f == 0:
            columns.append(torch.ones_like(half))
            continue
        k = function_frequency(f)
        if k not in trig:
            scaled = half if k == 1 else half * k
            trig[k] = (torch.cos(scaled), torch.sin(scaled))
        columns.append(trig[k][1] if f == 2 * k else trig[k][0])
    table = torch.stack(columns, dim=1) if len(columns) > 1 else columns[0][:, None]
    return table.reshape(-1, half.shape[1]), trig


def prefix_forward(
    prefix: SparsePrefix, angles: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, PrefixSaved]:
    """The state on the final support [rows, B] (or [rows, 1] without steps)."""
    if not prefix.steps:
        assert prefix.constant_state is not None
        return prefix.constant_state, PrefixSaved(None, {}, None, [])
    batch = angles.shape[0]
    constant = prefix.half_constant
    if prefix.half_weights is not None:
        constant = constant + prefix.half_weights @ weights
    if prefix.half_angles is not None:
        half = torch.addmm(constant[:, None], prefix.half_angles, angles.T)
    else:
        half = constant[:, None].expand(-1, batch)
    table, trig = _feature_table(prefix, half)
    layout = prefix.layout
    arena = half.new_empty(layout.forward_rows, batch)
    states: list[torch.Tensor] = []
    state = arena[:0]
    for step in prefix.steps:
        term_rows = step.terms * step.rows
        if step.src is None:
            state = torch.mm(step.coefficients, table[step.feature_rows], out=arena[step.state_rows])
            states.append(state)
            continue
        coefficients = torch.mm(
            step.coefficients, table[step.feature_rows], out=arena[layout.coefficients][:term_rows]
        )
        picked = torch.index_select(state, 0, step.src, out=arena[layout.picked][:term_rows])
        state = arena[step.state_rows]
        if step.terms == 1:
            torch.mul(coefficients, picked, out=state)
        else:
            product = torch.mul(coefficients, picked, out=arena[layout.product][:term_rows])
            torch.add(product[: step.rows], product[step.rows : 2 * step.rows], out=state)
            for t in range(2, step.terms):
                state += product[t * step.rows : (t + 1) * step.rows]
        states.append(state)
    return state, PrefixSaved(half, trig, table, states)


def prefix_backward(
    prefix: SparsePrefix, saved: PrefixSaved, grad_state: torch.Tensor, need_angles: bool, need_weights: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(∂L/∂angles [B, A], ∂L/∂weights [W]) from ∂L/∂state [rows, B]."""
    if not prefix.steps or saved.half is None:
        return None, None
    batch = grad_state.shape[1]
    n_f = len(prefix.functions)
    layout = prefix.layout
    arena = grad_state.new_empty(2 * layout.max_term_rows + 2 * layout.max_rows, batch)
    coefficient_scratch = arena[: layout.max_term_rows]
    picked_scratch = arena[layout.max_term_rows : 2 * layout.max_term_rows]
    ping_pong = arena[2 * layout.max_term_rows :].view(2, layout.max_rows, batch)
    grad_table = grad_state.new_zeros(prefix.n_values * n_f, batch)
    grad = grad_state
    for index in range(len(prefix.steps) - 1, -1, -1):
        step = prefix.steps[index]
        features = saved.table[step.feature_rows]
        if step.src is None:
            grad_features = step.coefficients.T @ grad
        else:
            term_rows = step.terms * step.rows
            shape = (step.terms, step.rows, batch)
            spread = torch.mm(step.coefficients, features, out=coefficient_scratch[:term_rows])
            picked = torch.index_select(saved.states[index - 1], 0, step.src, out=picked_scratch[:term_rows])
            spread.view(shape).mul_(grad)  # ∂picked = coefficients ⊙ ∂new
            picked.view(shape).mul_(grad)  # ∂coefficients = picked ⊙ ∂new
            grad_features = step.coefficients.T @ picked
        if isinstance(step.feature_rows, slice):
            grad_table[step.feature_rows] += grad_features
        else:
            grad_table.index_add_(0, step.feature_rows, grad_features)
        if step.src is None:
            break
        target = ping_pong[index % 2][: prefix.steps[index - 1].rows]
        target.zero_()
        grad = target.index_add_(0, step.src, spread)
    grad_table = grad_table.view(prefix.n_values, n_f, batch)
    grad_half: torch.Tensor | None = None
    for j, f in enumerate(prefix.functions):
        if f == 0:
            continue
        k = function_frequency(f)
        cos, sin = saved.trig[k]
        derivative = cos if f == 2 * k else -sin
        term = grad_table[:, j] * derivative
        if k != 1:
            term = term * k
        grad_half = term if grad_half is None else grad_half + term
    if grad_half is None:
        return None, None
    grad_angles = grad_half.T @ prefix.half_angles if need_angles and prefix.half_angles is not None else None
    grad_weights = None
    if need_weights and prefix.half_weights is not None:
        grad_weights = grad_half.sum(1) @ prefix.half_weights
    return grad_angles, grad_weights
