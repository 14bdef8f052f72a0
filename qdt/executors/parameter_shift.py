"""Gradients for any executor by the parameter-shift rule, through a torch.autograd.Function.

``differentiable(executor)`` wraps an executor (``aer`` with shots or noise, a remote one …)
so that :meth:`~qdt.executors.base.Executor.run` gives gradients for the encoding angles (hence
for the inputs, whose angles torch computes) and for the weights.

How: at prepare time every parameterised gate occurrence k gets its own parameter θ_k, and
θ_k = c_k + Σ_i A[k, i]·angle_i + Σ_j W[k, j]·weight_j must be affine (read by
:func:`qdt.sim.affine.affine_value`, as the torch executors read gate angles). Each gate must be a
rotation exp(−i θ P / 2) about a single Pauli string P (``rx``, ``ry``, ``rz``, ``rxx``,
``ryy``, ``rzz``, ``rzx``, ``r`` with a fixed axis; ``p``/``u1`` equal ``rz`` up to a global
phase), so every readout is a + b·cos θ_k + c·sin θ_k in each θ_k and

    ∂f/∂θ_k = [f(θ + π/2·e_k) − f(θ − π/2·e_k)] / 2

exactly (also under noise that does not depend on θ, and for shot estimates in expectation).
Torch's chain rule then gives ∂/∂angles = Aᵀ ∂/∂θ and ∂/∂weights = Wᵀ ∂/∂θ. The backward
pass stacks every shifted point of the batch (2 per needed θ_k per row) into ONE call of the
wrapped executor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterExpression, ParameterVector

from qdt.errors import QdtInputError
from qdt.executors.base import Capabilities, Executor, PreparedCircuit
from qdt.sim.affine import affine_value
from qdt.sim.device import cpu_tensor, on_device

# Gates exp(−i θ P / 2) for one Pauli string P, with θ the parameter at index 0.
PAULI_ROTATIONS = frozenset({"rx", "ry", "rz", "rxx", "ryy", "rzz", "rzx", "p", "u1", "r"})
SHIFT = math.pi / 2


@dataclass(frozen=True, eq=False)
class ShiftMaps:
    """θ = const + angles·Aᵀ + weights·Wᵀ, and which θ_k the angles and the weights reach (built on
    the CPU; :func:`qdt.sim.device.on_device` gives the copy on a run's device)."""

    angle_map: torch.Tensor  # A [K, n_angles]
    weight_map: torch.Tensor  # W [K, n_weights]
    constant: torch.Tensor  # c [K]
    angle_used: torch.Tensor  # [K] bool: θ_k depends on an angle
    weight_used: torch.Tensor  # [K] bool: θ_k depends on a weight


@dataclass(frozen=True, eq=False)
class ShiftPlan:
    """The wrapped executor's prepared circuit and the map from angles and weights to its θ."""

    inner: PreparedCircuit
    maps: ShiftMaps

    @property
    def n_thetas(self) -> int:
        return int(self.maps.constant.shape[0])


def _symbolic(value: object) -> bool:
    return isinstance(value, ParameterExpression) and bool(value.parameters)


def shift_circuit(
    circuit: QuantumCircuit, angle_params: Sequence[Parameter], weight_params: Sequence[Parameter]
) -> tuple[QuantumCircuit, ParameterVector, np.ndarray, np.ndarray, np.ndarray]:
    """The circuit with one fresh parameter θ_k per parameterised gate, and θ's affine map."""
    angle_index = {p: i for i, p in enumerate(angle_params)}
    weight_index = {p: i for i, p in enumerate(weight_params)}
    symbolic = [i for i, inst in enumerate(circuit.data) if any(_symbolic(p) for p in inst.operation.params)]
    thetas = ParameterVector("ps_theta", len(symbolic))
    angle_map = np.zeros((len(symbolic), len(angle_params)))
    weight_map = np.zeros((len(symbolic), len(weight_params)))
    constant = np.zeros(len(symbolic))
    rewritten = circuit.copy_empty_like()
    rewritten.global_phase = 0.0  # a global phase changes no readout
    k = 0
    for position, instruction in enumerate(circuit.data):
        op = instruction.operation
        if k < len(symbolic) and symbolic[k] == position:
            where = f"circuit.data[{position}] ({op.name})"
            params = list(op.params)
            if op.name not in PAULI_ROTATIONS or any(_symbolic(p) for p in params[1:]):
                raise QdtInputError(
                    where,
                    "parameterised gates that are rotations about one Pauli string "
                    "(" + ", ".join(sorted(PAULI_ROTATIONS)) + "), with the parameter as their angle",
                    f"{op.name}({', '.join(map(str, params))})",
                    "rewrite it with single-Pauli rotations (e.g. transpile to rz, sx, cx), "
                    "or train on a differentiable executor",
                )
            value = affine_value(params[0], angle_index, weight_index, where)
            constant[k] = value.constant
            for i, c in value.angle_terms:
                angle_map[k, i] = c
            for j, c in value.weight_terms:
                weight_map[k, j] = c
            new_op = op.to_mutable()
            new_op.params = [thetas[k], *params[1:]]
            rewritten.append(new_op, instruction.qubits, instruction.clbits)
            k += 1
        else:
            rewritten.append(instruction)
    return rewritten, thetas, angle_map, weight_map, constant


class _ParameterShift(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        thetas: torch.Tensor,
        executor: Executor,
        prepared: PreparedCircuit,
        readout: str,
        needed: torch.Tensor,
    ) -> torch.Tensor:
        detached = thetas.detach()
        output = executor.run(prepared, detached, detached.new_zeros(0), readout=readout)
        ctx.save_for_backward(detached, needed)
        ctx.executor, ctx.prepared, ctx.readout = executor, prepared, readout
        return output

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        thetas, needed = ctx.saved_tensors
        columns = needed.nonzero().flatten()
        grad = torch.zeros_like(thetas)
        if columns.numel() == 0:
            return grad, None, None, None, None
        rows, count = thetas.shape[0], int(columns.numel())
        shifts = thetas.new_zeros(count, thetas.shape[1])
        shifts[torch.arange(count, device=thetas.device), columns] = SHIFT
        points = torch.cat([thetas[None] + shifts[:, None, :], thetas[None] - shifts[:, None, :]])
        outputs = ctx.executor.run(
            ctx.prepared, points.reshape(2 * count * rows, -1), thetas.new_zeros(0), readout=ctx.readout
        )
        outputs = outputs.reshape(2, count, rows, -1)
        jacobian = (outputs[0] - outputs[1]) / 2  # [count, B, D]
        grad[:, columns] = torch.einsum("kbd,bd->bk", jacobian, grad_output.to(jacobian.dtype))
        return grad, None, None, None, None


class ParameterShiftExecutor(Executor):
    """Any executor made differentiable by the parameter-shift rule (see the module docstring).

    Its own arithmetic (θ and the shifted points) runs on the inputs' device; the wrapped executor
    gets its inputs as :meth:`Executor.run` gives them (on the CPU for Aer or a device)."""

    runs_on_input_device = True

    def __init__(self, inner: Executor) -> None:
        if not isinstance(inner, Executor):
            raise QdtInputError("executor", "a qdt Executor", type(inner).__name__)
        self.inner = inner
        self.name = f"{inner.name}+parameter-shift"  # type: ignore[misc]

    @property
    def capabilities(self) -> Capabilities:
        inner = self.inner.capabilities
        return Capabilities(differentiable=True, shots=inner.shots, noisy=inner.noisy, remote=inner.remote)

    @property
    def last_run_info(self) -> Mapping[str, Any]:
        """The wrapped executor's (the last call it made: forward, or the backward's shifted points)."""
        return self.inner.last_run_info

    def isa_report(self, prepared: PreparedCircuit) -> dict[str, Any] | None:
        plan = self.check_prepared(prepared).payload
        assert isinstance(plan, ShiftPlan)
        return self.inner.isa_report(plan.inner)

    def close(self) -> None:
        self.inner.close()

    def _prepare(
        self,
        circuit: QuantumCircuit,
        angle_params: tuple[Parameter, ...],
        weight_params: tuple[Parameter, ...],
        readout_qubits: tuple[int, ...],
    ) -> ShiftPlan:
        rewritten, thetas, angle_map, weight_map, constant = shift_circuit(
            circuit, angle_params, weight_params
        )
        inner = self.inner.prepare(rewritten, list(thetas), [], readout_qubits=readout_qubits)
        maps = ShiftMaps(
            angle_map=cpu_tensor(angle_map, dtype=torch.float64),
            weight_map=cpu_tensor(weight_map, dtype=torch.float64),
            constant=cpu_tensor(constant, dtype=torch.float64),
            angle_used=cpu_tensor((angle_map != 0).any(axis=1)),
            weight_used=cpu_tensor((weight_map != 0).any(axis=1)),
        )
        return ShiftPlan(inner=inner, maps=maps)

    def _run(
        self, prepared: PreparedCircuit, angles: torch.Tensor, weights: torch.Tensor, readout: str
    ) -> torch.Tensor:
        plan = prepared.payload
        assert isinstance(plan, ShiftPlan)
        maps = on_device(plan.maps, angles.device)
        thetas = maps.constant + angles @ maps.angle_map.T + (weights @ maps.weight_map.T)[None, :]
        needed = torch.zeros_like(maps.angle_used)
        if angles.requires_grad:
            needed |= maps.angle_used
        if weights.requires_grad:
            needed |= maps.weight_used
        if not torch.is_grad_enabled() or not bool(needed.any()):
            return self.inner.run(plan.inner, thetas.detach(), thetas.new_zeros(0), readout=readout)
        return _ParameterShift.apply(thetas, self.inner, plan.inner, readout, needed)


def differentiable(executor: Executor) -> Executor:
    """``executor`` with parameter-shift gradients (``capabilities.differentiable`` is True)."""
    if isinstance(executor, ParameterShiftExecutor):
        return executor
    return ParameterShiftExecutor(executor)
