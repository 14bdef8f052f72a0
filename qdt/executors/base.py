"""The executor interface: prepare a circuit once, run whole batches, declare capabilities.

Like a Qiskit Primitives V2 PUB, one :meth:`Executor.run` call carries one circuit and a
parameter array: ``angles`` [B, n_angles] (one row per batch element) and ``weights``
[n_weights] (shared by the batch). Validation lives here, once, so every executor rejects the
same bad input with the same :class:`~qdt.errors.QdtInputError` before simulating anything.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter

from qdt.errors import QdtInputError
from qdt.sim.gates import validate_readout_qubits

if TYPE_CHECKING:
    from qdt.circuits.vqc import VQC

READOUTS = ("probs", "expval_z")


@dataclass(frozen=True)
class Capabilities:
    """What an executor can do; callers branch on these, never on executor names."""

    differentiable: bool  # torch autograd through run() (angles and weights)
    shots: bool  # results are estimates from a finite number of shots
    noisy: bool  # a noise model is applied
    remote: bool  # runs on a remote service (jobs, queues, quotas)


@dataclass(frozen=True, eq=False)
class PreparedCircuit:
    """A circuit validated and compiled by one executor, ready for :meth:`Executor.run`."""

    executor: str
    circuit: QuantumCircuit
    angle_params: tuple[Parameter, ...]
    weight_params: tuple[Parameter, ...]
    readout_qubits: tuple[int, ...]  # circuit qubit of readout bit i (bit 0 least significant)
    payload: object  # executor-specific compiled form
    owner: int  # id() of the executor that prepared it

    @property
    def n_angles(self) -> int:
        return len(self.angle_params)

    @property
    def n_weights(self) -> int:
        return len(self.weight_params)

    @property
    def n_outcomes(self) -> int:
        return 2 ** len(self.readout_qubits)


def _parameter_list(field: str, params: object) -> tuple[Parameter, ...]:
    try:
        items: tuple[object, ...] = tuple(params)  # type: ignore[arg-type]
    except TypeError:
        raise QdtInputError(field, "a sequence of qiskit Parameters (or a ParameterVector)", params) from None
    bad = [p for p in items if not isinstance(p, Parameter)]
    if bad:
        raise QdtInputError(field, "qiskit Parameter objects", bad[0])
    parameters = tuple(p for p in items if isinstance(p, Parameter))
    if len(set(parameters)) != len(parameters):
        raise QdtInputError(field, "distinct parameters", [p.name for p in parameters])
    return parameters


def validate_parameters(
    circuit: QuantumCircuit, angle_params: object, weight_params: object
) -> tuple[tuple[Parameter, ...], tuple[Parameter, ...]]:
    angles = _parameter_list("angle_params", angle_params)
    weights = _parameter_list("weight_params", weight_params)
    shared = set(angles) & set(weights)
    if shared:
        raise QdtInputError(
            "weight_params",
            "parameters that are not also encoding angles",
            sorted(p.name for p in shared),
        )
    unknown = [p for p in circuit.parameters if p not in set(angles) | set(weights)]
    if unknown:
        raise QdtInputError(
            "circuit",
            "every circuit parameter listed in angle_params or weight_params",
            f"unlisted parameters {[p.name for p in unknown][:5]}",
            "bind them with assign_parameters, or add them to one of the lists",
        )
    return angles, weights


def _as_float_tensor(field: str, value: object) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise QdtInputError(field, "real numbers", f"a {value.dtype} tensor")
        return value.to(torch.float64)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise QdtInputError(field, "a tensor or array of real numbers", value) from None
    return torch.as_tensor(array)


def _first_non_finite(tensor: torch.Tensor) -> tuple[int, ...] | None:
    bad = ~torch.isfinite(tensor.detach())
    if not bool(bad.any()):
        return None
    return tuple(int(i) for i in bad.nonzero()[0])


def validate_angles(angles: object, n_angles: int) -> torch.Tensor:
    tensor = _as_float_tensor("angles", angles)
    if tensor.dim() != 2 or tensor.shape[1] != n_angles or tensor.shape[0] < 1:
        raise QdtInputError(
            "angles",
            f"a 2-D tensor [batch, {n_angles}] with batch >= 1",
            f"shape {tuple(tensor.shape)}",
            "one row of encoding angles per batch element; use angles.unsqueeze(0) for one row",
        )
    where = _first_non_finite(tensor)
    if where is not None:
        raise QdtInputError(
            "angles",
            "finite values",
            f"{tensor[where].item()} at row {where[0]}, column {where[1]}",
            "check the inputs that produced the angles",
        )
    return tensor


def validate_weights(weights: object, n_weights: int) -> torch.Tensor:
    tensor = _as_float_tensor("weights", weights)
    if tensor.dim() != 1 or tensor.shape[0] != n_weights:
        raise QdtInputError(
            "weights",
            f"a 1-D tensor of {n_weights} weights (shared by the whole batch)",
            f"shape {tuple(tensor.shape)}",
        )
    where = _first_non_finite(tensor)
    if where is not None:
        raise QdtInputError(
            "weights",
            "finite values",
            f"{tensor[where].item()} at index {where[0]}",
            "the weights diverged or were loaded wrongly",
        )
    return tensor


def validate_readout(readout: object) -> str:
    if readout not in READOUTS:
        raise QdtInputError("readout", "'probs' or 'expval_z'", readout)
    return str(readout)


@lru_cache(maxsize=32)
def _z_signs(outcomes: int) -> torch.Tensor:
    bits = int(outcomes).bit_length() - 1
    k = torch.arange(outcomes)
    return 1.0 - 2.0 * ((k[:, None] >> torch.arange(bits)[None, :]) & 1).to(torch.float64)


def expval_z(probs: torch.Tensor) -> torch.Tensor:
    """⟨Z_i⟩ per readout bit from probabilities [B, 2**m] (bit i of the outcome index)."""
    return probs @ _z_signs(int(probs.shape[-1]))


class Executor(ABC):
    """Base class: validation in one place; subclasses implement ``_prepare`` and ``_run``."""

    name: ClassVar[str]

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    def prepare(
        self,
        circuit: QuantumCircuit,
        angle_params: Sequence[Parameter],
        weight_params: Sequence[Parameter],
        readout_qubits: Sequence[int] | None = None,
    ) -> PreparedCircuit:
        """Validate and compile ``circuit`` once.

        ``readout_qubits``: circuit qubits read out, bit i of the outcome index = qubit
        ``readout_qubits[i]``. Default: for a transpiled circuit the physical qubits of its
        logical qubits (``circuit.layout.final_index_layout()``), else all qubits in order.
        """
        if not isinstance(circuit, QuantumCircuit):
            raise QdtInputError("circuit", "a qiskit QuantumCircuit", type(circuit).__name__)
        angles, weights = validate_parameters(circuit, angle_params, weight_params)
        readout = validate_readout_qubits(circuit, readout_qubits)
        payload = self._prepare(circuit, angles, weights, readout)
        return PreparedCircuit(self.name, circuit, angles, weights, readout, payload, id(self))

    def prepare_vqc(self, vqc: VQC) -> PreparedCircuit:
        """Prepare the paper's circuit (see :func:`qdt.circuits.build_vqc`)."""
        return self.prepare(vqc.circuit, vqc.encoding_params, vqc.weight_params)

    def run(
        self,
        prepared: PreparedCircuit,
        angles: torch.Tensor | np.ndarray | Sequence[Sequence[float]],
        weights: torch.Tensor | np.ndarray | Sequence[float],
        readout: str = "probs",
    ) -> torch.Tensor:
        """Run the whole batch: [B, 2**m] probabilities or [B, m] values of ⟨Z_i⟩ (float64)."""
        if not isinstance(prepared, PreparedCircuit) or prepared.owner != id(self):
            raise QdtInputError(
                "prepared",
                f"a circuit prepared by this {self.name!r} executor",
                getattr(prepared, "executor", type(prepared).__name__),
                "call executor.prepare(circuit, ...) on the executor that runs it",
            )
        mode = validate_readout(readout)
        angle_tensor = validate_angles(angles, prepared.n_angles)
        weight_tensor = validate_weights(weights, prepared.n_weights)
        return self._run(prepared, angle_tensor, weight_tensor, mode)

    @abstractmethod
    def _prepare(
        self,
        circuit: QuantumCircuit,
        angle_params: tuple[Parameter, ...],
        weight_params: tuple[Parameter, ...],
        readout_qubits: tuple[int, ...],
    ) -> object: ...

    @abstractmethod
    def _run(
        self, prepared: PreparedCircuit, angles: torch.Tensor, weights: torch.Tensor, readout: str
    ) -> torch.Tensor: ...
