"""Run a compiled :class:`~qdt.sim.program.Program` on a batch (torch, autograd).

Layout: states are [D, B] (basis index first, batch last), so gathers over basis indices
copy contiguous rows; tables evaluate to [X, B] and split into contiguous per-step chunks.
A program runs on the device of its angles (its tables are copied there once, qdt/sim/device.py).
"""

from __future__ import annotations

import torch

from qdt.sim.device import on_device
from qdt.sim.lowering import CONST
from qdt.sim.program import (
    ActivateStep,
    DenseStep,
    FusedPlan,
    FusedStep,
    GatherStep,
    Program,
    Step,
    Table,
)
from qdt.sim.trig import trig_features

Values = dict[str, tuple[torch.Tensor, ...]]


def evaluate_table(table: Table, angles: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """All coefficients of a table: [X, B] (batch table) or [X] (shared table)."""
    if table.uses_batch:
        if table.half_angles is not None:
            half = torch.addmm(table.half_constant[:, None], table.half_angles, angles.T)
        else:
            half = table.half_constant[:, None].expand(-1, angles.shape[0])
        if table.half_weights is not None:
            half = half + (table.half_weights @ weights)[:, None]
    elif table.half_weights is not None:
        half = torch.addmv(table.half_constant, table.half_weights, weights)
    else:
        half = table.half_constant
    features = trig_features(half, table.functions)
    if len(table.functions) == 1:
        stacked = features[table.functions[0]]
    else:  # [V, F, (B)] → [V·F, (B)]
        stacked = torch.stack([features[f] for f in table.functions], dim=1)
        stacked = stacked.reshape(-1, *half.shape[1:])
    coefficients = table.coefficients
    if coefficients.is_complex():
        stacked = stacked.to(coefficients.dtype)
    return coefficients @ stacked


def _gather(state: torch.Tensor, step: GatherStep, values: Values) -> torch.Tensor:
    columns = state.shape[1]
    picked = state if step.src_tensor is None else state.index_select(0, step.src_tensor)
    if step.kind != CONST:
        coef = values[step.kind][step.chunk]
        if coef.dim() == 1:
            coef = coef[:, None]
        if step.expand_tensor is not None:
            coef = coef.index_select(0, step.expand_tensor)
        picked = picked * coef
    if step.scale_tensor is not None:
        picked = picked * step.scale_tensor
    if step.terms == 1:
        return picked
    return picked.reshape(step.terms, -1, columns).sum(0)


def _dense(state: torch.Tensor, step: DenseStep, values: Values) -> torch.Tensor:
    columns = state.shape[1]
    m = step.dim
    batched = False
    if step.matrix is not None:
        matrix = step.matrix
    else:
        coef = values[step.kind][step.chunk]
        batched = coef.dim() == 2
        matrix = coef.reshape(m, m, columns) if batched else coef.reshape(m, m)
    if matrix.is_complex() and not state.is_complex():
        state = state.to(matrix.dtype)
    elif state.is_complex() and not matrix.is_complex():
        matrix = matrix.to(state.dtype)
    if step.full:
        if batched:
            return torch.einsum("ijZ,jZ->iZ", matrix, state)
        return matrix @ state
    if step.block is not None:
        above, below = step.block
        return (matrix @ state.reshape(above, m, below * columns)).reshape(-1, columns)
    view = state.reshape(*step.state_shape, columns)
    shape = (*step.matrix_shape, columns) if batched else step.matrix_shape
    return torch.einsum(step.equation, matrix.reshape(shape), view).reshape(-1, columns)


def kron_pair(high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """Batched Kronecker product high ⊗ low over any leading dimensions."""
    size = high.shape[-1] * low.shape[-1]
    product = high[..., :, None, :, None] * low[..., None, :, None, :]
    return product.reshape(*high.shape[:-2], size, size)


def kron_layers(layer: torch.Tensor) -> torch.Tensor:
    """[F, n, d, d] per-qubit matrices (qubit 0 first) → [F, d**n, d**n] Kronecker products
    M_{n−1} ⊗ … ⊗ M_0, combining neighbours pairwise (log-depth)."""
    count = layer.shape[1]
    if count == 1:
        return layer[:, 0]
    if count % 2:
        return kron_pair(layer[:, -1], kron_layers(layer[:, :-1]))
    low, high = layer.reshape(layer.shape[0], count // 2, 2, *layer.shape[2:]).unbind(2)
    return kron_layers(kron_pair(high, low))


def _factors(plan: FusedPlan, values: Values) -> list[torch.Tensor]:
    """[F, D, D] tensors whose concatenation is indexed by plan.order."""
    dtype = plan.pool.dtype
    d = plan.local_dim
    pool = plan.pool
    if "fused1" in values:
        pool = torch.cat([pool, values["fused1"][0].reshape(-1, d, d).to(dtype)])
    parts = []
    if plan.local_factors.shape[0] > 0:
        slots = pool[0:1]
        if plan.chains.shape[0] > 0:
            chain = pool[plan.chains]
            while chain.shape[1] > 1:
                first, second = chain.reshape(chain.shape[0], -1, 2, d, d).unbind(2)
                chain = second @ first
            slots = torch.cat([slots, chain[:, 0]])
        layers = kron_layers(slots[plan.local_factors])
        if not plan.sequential:
            layers = torch.bmm(plan.post_factors, layers)
        parts.append(layers)
    parts.append(plan.const_factors)
    for index, mask in plan.multi:
        parts.append((values["fusedm"][0].to(dtype)[index] * mask)[None])
    return parts


def apply_sequential(plan: FusedPlan, values: Values, state: torch.Tensor) -> torch.Tensor:
    """Apply the plan's factors one after the other: [D, D] @ state for each."""
    parts = _factors(plan, values)
    flat = [matrix for part in parts for matrix in part.unbind(0)]
    if plan.pool.is_complex() and not state.is_complex():
        state = state.to(plan.pool.dtype)
    for index in plan.sequence:
        state = flat[index] @ state
    return state


def fused_unitary(plan: FusedPlan, values: Values) -> torch.Tensor:
    """The suffix unitary [D, D] from the weights (see program.build_fused_plan)."""
    parts = _factors(plan, values)
    factors = (torch.cat(parts) if len(parts) > 1 else parts[0])[plan.order]
    dim = factors.shape[-1]
    while factors.shape[0] > 1:
        first, second = factors.reshape(-1, 2, dim, dim).unbind(1)
        factors = second @ first
    return factors[0]


def apply_step(state: torch.Tensor, step: Step, values: Values) -> torch.Tensor:
    """One step on a [D, B] state (or on [D, 2**m] readout functionals)."""
    if isinstance(step, GatherStep):
        return _gather(state, step, values)
    if isinstance(step, DenseStep):
        return _dense(state, step, values)
    if isinstance(step, ActivateStep):
        columns = state.shape[1]
        grown = step.initial[:, None, None] * state.reshape(-1, 1, step.below, columns)
        return grown.reshape(-1, columns)
    assert isinstance(step, FusedStep)
    if step.plan.sequential:
        return apply_sequential(step.plan, values, state)
    unitary = fused_unitary(step.plan, values)
    if unitary.is_complex() and not state.is_complex():
        state = state.to(unitary.dtype)
    return unitary @ state


def evaluate_tables(program: Program, angles: torch.Tensor, weights: torch.Tensor) -> Values:
    values: Values = {}
    for name, table in program.tables.items():
        evaluated = evaluate_table(table, angles, weights)
        if len(table.widths) > 1 and name in ("batch", "shared"):
            values[name] = evaluated.split(table.widths, dim=0)
        else:
            values[name] = (evaluated,)
    return values


def probabilities(program: Program, angles: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Exact readout probabilities [B, 2**m] (before any readout error), on the angles' device."""
    program = on_device(program, angles.device)
    if program.kernel is not None:
        return program.kernel(angles, weights)
    values = evaluate_tables(program, angles, weights)
    state = program.initial.expand(-1, angles.shape[0])
    for step in program.prefix:
        state = apply_step(state, step, values)
    if program.heisenberg:
        functional = program.readout_matrix
        assert functional is not None
        for step in program.suffix:
            functional = apply_step(functional, step, values)
        return state.T @ functional
    for step in program.suffix:
        state = apply_step(state, step, values)
    if state.is_complex():
        probs = torch.view_as_real(state).square().sum(-1)
    else:
        probs = state.square()
    if program.readout_matrix is not None:
        probs = program.readout_matrix @ probs
    return probs.T
