"""Merge "rotation, CNOT, rotation, CNOT, …" runs on one target into a multiplexed rotation.

A run of parameterised rotations R_P(v_i) (all about the same axis P ∈ {X, Y, Z}) on a target
qubit t, interleaved with CNOTs whose target is t, acts on t — for each configuration c of the
CNOTs' control qubits — as X^{p(c)} · R_P(α(c)), where p(c) is the parity of the CNOTs fired
and α(c) = Σ_i s_i(c) v_i. Pushing an X through R_Y or R_Z flips the sign of its angle, so
s_i(c) = (−1)^(parity of the CNOTs fired before rotation i) for P = Y, Z, and 1 for P = X.
This is exactly the structure of the uniformly controlled rotations in the amplitude encoding
(Möttönen et al.): each level becomes ONE batched step instead of 2**ℓ rotations, and α(c) is
again affine in the circuit's parameters. State vectors only (noise breaks it).
"""

from __future__ import annotations

import numpy as np

from qdt.sim.affine import AffineValue
from qdt.sim.lowering import CONST, LocalOp
from qdt.sim.trig import TrigFit

_AXES = {"rx": "X", "ry": "Y", "rz": "Z"}

# A multiplexed rotation on k qubits stores 2**(k-1) coefficient tensors of 2**k × 2**k each
# (memory ~ 8**k / 2): 7 qubits take ~25 MB, 10 would take ~13 GB. Wider runs stay as gates.
MAX_MULTIPLEX_QUBITS = 9


def _is_rotation(op: LocalOp) -> bool:
    return op.name in _AXES and len(op.qubits) == 1 and len(op.parts) == 1


def _is_cnot_into(op: LocalOp, target: int) -> bool:
    return op.name == "cx" and op.kind == CONST and len(op.gate_qubits) == 2 and op.gate_qubits[1] == target


def _multiplexed(block: list[LocalOp]) -> list[LocalOp]:
    rotations = [op for op in block if _is_rotation(op)]
    target = rotations[0].qubits[0]
    axis = _AXES[rotations[0].name]
    controls = sorted({op.gate_qubits[0] for op in block if not _is_rotation(op)})
    n_cfg = 2 ** len(controls)
    parity = np.zeros(n_cfg, dtype=np.int64)
    terms: list[list[tuple[float, AffineValue]]] = [[] for _ in range(n_cfg)]
    cfg = np.arange(n_cfg)
    for op in block:
        if _is_rotation(op):
            value = op.parts[0][0]
            for c in range(n_cfg):
                sign = -1.0 if (axis != "X" and parity[c]) else 1.0
                terms[c].append((sign, value))
        else:
            bit = controls.index(op.gate_qubits[0])
            parity ^= (cfg >> bit) & 1
    qubits = tuple(sorted([target, *controls]))
    m = 2 ** len(qubits)
    local = np.arange(m)
    target_bit = (local >> qubits.index(target)) & 1
    config = np.zeros(m, dtype=np.int64)
    for j, q in enumerate(controls):
        config |= ((local >> qubits.index(q)) & 1) << j
    fit = rotations[0].parts[0][1]
    parts = []
    for c in range(n_cfg):
        rows = config == c
        mask = rows[:, None] & rows[None, :]
        coefficients = np.where(
            mask[None], fit.coefficients[:, target_bit[:, None], target_bit[None, :]], 0.0
        )
        parts.append((AffineValue.combine(terms[c]), TrigFit(fit.functions, coefficients)))
    name = f"mux_{rotations[0].name}"
    out = [LocalOp(name, qubits, parts=tuple(parts))]
    if parity.any():
        flip = parity[config] << qubits.index(target)
        permutation = np.zeros((m, m))
        permutation[local ^ flip, local] = 1.0
        out.append(LocalOp("cx_parity", qubits, matrix=permutation))
    return out


def multiplex_rotations(ops: list[LocalOp]) -> list[LocalOp]:
    """Replace every run of ≥ 2 same-axis rotations on a target, interleaved with CNOTs into
    that target, by a multiplexed rotation (and the CNOTs' net permutation, if any), when it
    spans at most MAX_MULTIPLEX_QUBITS qubits."""
    out: list[LocalOp] = []
    i = 0
    while i < len(ops):
        op = ops[i]
        if not _is_rotation(op):
            out.append(op)
            i += 1
            continue
        target = op.qubits[0]
        j = i + 1
        while j < len(ops) and (
            (_is_rotation(ops[j]) and ops[j].name == op.name and ops[j].qubits == op.qubits)
            or _is_cnot_into(ops[j], target)
        ):
            j += 1
        block = ops[i:j]
        controls = {o.gate_qubits[0] for o in block if not _is_rotation(o)}
        if (
            sum(_is_rotation(o) for o in block) >= 2
            and controls
            and len(controls) + 1 <= MAX_MULTIPLEX_QUBITS
        ):
            out.extend(_multiplexed(block))
        else:
            out.extend(block)
        i = j
    return out
