"""Rotation trees: the state prepared by rotations on fresh qubits, as one product formula.

A batch prefix in which every gate is a real one-parameter rotation (plain or multiplexed, see
:mod:`qdt.sim.multiplex`) whose *target* is still in |0⟩ and whose controls were prepared
before — the amplitude encoding's uniformly controlled RY tree — prepares

    ψ[k] = Π_j E_j(k),    E_j(k) = Σ_t c_{j,t}(k) · g_{f(j,t,k)}(h_{v(j,t,k)}),

where level j's factor depends only on the target's bit and the controls' configuration in k
(the target is fresh, so only its |0⟩ column is ever used, and the gate is block-diagonal in
the controls). With every qubit the target of exactly one level this replaces the gate-by-gate
simulation by: one affine map to half-angles, cos/sin, one gather and one product — and a
backward pass written out by hand (see :func:`tree_backward`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from qdt.sim.affine import AffineValue
from qdt.sim.lowering import LocalOp
from qdt.sim.trig import function_frequency

MAX_FREQUENCY = 2  # cos/sin of h and 2h: everything a one-parameter gate matrix needs


@dataclass(frozen=True, eq=False)
class RotationTree:
    """Compiled product formula (see the module docstring); features are laid out as
    [B, 2·len(frequencies)·V]: cos(k·h) block then sin(k·h) block for each frequency k."""

    levels: int
    dim: int
    terms: int
    n_values: int
    frequencies: tuple[int, ...]
    # Feature columns are cos(argument): argument = k·h − φ (φ = π/2 for the sine blocks), with
    # h = half-angles affine in the angles and weights, so all arguments come from one addmm.
    argument_constant: torch.Tensor  # [F·V]
    argument_angles: torch.Tensor | None  # [n_angles, F·V]
    argument_weights: torch.Tensor | None  # [F·V, n_weights]
    index: torch.Tensor  # [levels·terms·dim] feature column of every factor term
    coefficients: torch.Tensor | None  # [levels·terms·dim], None when all are 1
    others: torch.Tensor | None  # [levels·(levels−1)]: for each level, the other levels

    @property
    def n_features(self) -> int:
        return 2 * len(self.frequencies) * self.n_values


@dataclass(eq=False)
class TreeSaved:
    arguments: torch.Tensor  # [B, F·V]
    factors: torch.Tensor  # [B, levels, D]


def _local_index(k: np.ndarray, qubits: tuple[int, ...]) -> np.ndarray:
    local = np.zeros_like(k)
    for j, q in enumerate(qubits):
        local |= ((k >> q) & 1) << j
    return local


def compile_rotation_tree(
    ops: list[LocalOp], num_qubits: int, n_angles: int, n_weights: int
) -> RotationTree | None:
    """The product formula for ``ops`` (a batch prefix), or None if they are not a rotation tree."""
    if not ops:
        return None
    dim = 2**num_qubits
    k = np.arange(dim)
    touched: set[int] = set()
    values: dict[AffineValue, int] = {}
    level_entries: list[list[dict[tuple[int, int], float]]] = []  # level → k → {(f, v): coef}
    for op in ops:
        if not op.parts:
            return None
        fresh = [q for q in op.qubits if q not in touched]
        if len(fresh) != 1:
            return None
        target = fresh[0]
        position = op.qubits.index(target)
        m = 2 ** len(op.qubits)
        local = np.arange(m)
        target_bit = (local >> position) & 1
        config = local & ~(1 << position)
        entries: list[dict[tuple[int, int], float]] = [{} for _ in range(m)]
        for value, fit in op.parts:
            if np.iscomplexobj(fit.coefficients):
                return None
            for i, f in enumerate(fit.functions):
                block = fit.coefficients[i]
                rows, columns = np.nonzero(block)
                for a, column in zip(rows.tolist(), columns.tolist()):
                    if target_bit[column]:  # the target is fresh: its |1⟩ column is never used
                        continue
                    if config[column] != config[a] or f == 0 or function_frequency(f) > MAX_FREQUENCY:
                        return None
                    v = values.setdefault(value, len(values))
                    key = (f, v)
                    entries[a][key] = entries[a].get(key, 0.0) + float(block[a, column])
        touched.add(target)
        level_local = _local_index(k, op.qubits)
        level_entries.append([entries[a] for a in level_local.tolist()])
    if touched != set(range(num_qubits)):
        return None
    frequencies = tuple(
        sorted({function_frequency(f) for level in level_entries for e in level for f, _ in e})
    )
    n_values = len(values)
    terms = max(1, max(len(e) for level in level_entries for e in level))
    levels = len(level_entries)
    index = np.zeros((levels, terms, dim), dtype=np.int64)
    coefficients = np.zeros((levels, terms, dim))
    for j, level in enumerate(level_entries):
        for kk, entry in enumerate(level):
            for t, ((f, v), coefficient) in enumerate(sorted(entry.items())):
                frequency = function_frequency(f)
                is_sine = f == 2 * frequency
                block = 2 * frequencies.index(frequency) + int(is_sine)
                index[j, t, kk] = block * n_values + v
                coefficients[j, t, kk] = coefficient
    ordered = sorted(values, key=values.__getitem__)
    half_constant = np.array([value.constant / 2 for value in ordered])
    half_angles = np.zeros((n_angles, n_values))
    half_weights = np.zeros((n_values, n_weights))
    for v, value in enumerate(ordered):
        for i, c in value.angle_terms:
            half_angles[i, v] += c / 2
        for i, c in value.weight_terms:
            half_weights[v, i] += c / 2
    blocks = [(k, phase) for k in frequencies for phase in (0.0, np.pi / 2)]
    scale = np.repeat([k for k, _ in blocks], n_values).astype(np.float64)
    shift = np.repeat([phase for _, phase in blocks], n_values)
    argument_constant = np.tile(half_constant, len(blocks)) * scale - shift
    argument_angles = np.tile(half_angles, (1, len(blocks))) * scale[None, :]
    argument_weights = np.tile(half_weights, (len(blocks), 1)) * scale[:, None]
    others = None
    if levels > 1:
        others = np.array([i for j in range(levels) for i in range(levels) if i != j], dtype=np.int64)
    return RotationTree(
        levels=levels,
        dim=dim,
        terms=terms,
        n_values=n_values,
        frequencies=frequencies,
        argument_constant=torch.as_tensor(argument_constant),
        argument_angles=torch.as_tensor(argument_angles) if argument_angles.any() else None,
        argument_weights=torch.as_tensor(argument_weights) if argument_weights.any() else None,
        index=torch.as_tensor(index.reshape(-1)),
        coefficients=None if np.all(coefficients == 1.0) else torch.as_tensor(coefficients.reshape(-1)),
        others=None if others is None else torch.as_tensor(others),
    )


def tree_forward(
    tree: RotationTree, angles: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, TreeSaved]:
    """ψ [B, D] (real) for a batch of angles and the shared weights."""
    batch = angles.shape[0]
    constant = tree.argument_constant
    if tree.argument_weights is not None:
        constant = torch.addmv(constant, tree.argument_weights, weights)
    if tree.argument_angles is not None:
        arguments = torch.addmm(constant, angles, tree.argument_angles)
    else:
        arguments = constant.expand(batch, -1)
    picked = torch.cos(arguments).index_select(1, tree.index)
    if tree.coefficients is not None:
        picked = picked * tree.coefficients
    factors = picked.view(batch, tree.levels, tree.terms, tree.dim)
    factors = factors.sum(2) if tree.terms > 1 else factors.view(batch, tree.levels, tree.dim)
    psi = factors.prod(1) if tree.levels > 1 else factors[:, 0]
    return psi, TreeSaved(arguments, factors)


def tree_backward(
    tree: RotationTree, saved: TreeSaved, grad_psi: torch.Tensor, need_angles: bool, need_weights: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(∂L/∂angles [B, A], ∂L/∂weights [W]) from ∂L/∂ψ [B, D]."""
    batch = grad_psi.shape[0]
    factors = saved.factors
    if tree.others is not None:
        rest = factors.index_select(1, tree.others).view(batch, tree.levels, tree.levels - 1, tree.dim)
        grad_factors = rest.prod(2) * grad_psi[:, None, :]
    else:
        grad_factors = grad_psi[:, None, :]
    grad_picked = grad_factors.unsqueeze(2).expand(batch, tree.levels, tree.terms, tree.dim)
    grad_picked = grad_picked.reshape(batch, -1)
    if tree.coefficients is not None:
        grad_picked = grad_picked * tree.coefficients
    grad_features = grad_picked.new_zeros(batch, tree.n_features).index_add_(1, tree.index, grad_picked)
    grad_arguments = torch.sin(saved.arguments).mul_(grad_features).neg_()  # d cos(a) = −sin(a) da
    grad_angles = None
    if need_angles and tree.argument_angles is not None:
        grad_angles = grad_arguments @ tree.argument_angles.T
    grad_weights = None
    if need_weights and tree.argument_weights is not None:
        grad_weights = grad_arguments.sum(0) @ tree.argument_weights
    return grad_angles, grad_weights
