"""Gates in the representation an executor simulates: state vectors or Pauli coordinates.

- :class:`UnitaryRepresentation`: local dimension 2, a gate is its unitary.
- :class:`PauliRepresentation`: local dimension 4, a gate is its Pauli transfer matrix followed
  by the configured gate noise (see :mod:`qdt.noise.config`).

Lowering turns a :class:`~qdt.sim.gates.GateOp` into a :class:`LocalOp`: a constant local
matrix, or a sum of trigonometric fits, one per affine parameter value ("parts"; a plain gate
has one part, a multiplexed rotation one per control configuration).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from qdt.noise.config import NoiseConfig
from qdt.noise.pauli import ptm_of_unitary, zero_state_coordinates
from qdt.sim.affine import AffineValue
from qdt.sim.gates import GateOp
from qdt.sim.trig import TrigFit, clean, fit_trig_polynomial

CONST, SHARED, BATCH = "const", "shared", "batch"

Part = tuple[AffineValue, TrigFit]


@dataclass(frozen=True, eq=False)
class LocalOp:
    """A linear map on ``qubits`` (ascending): constant ``matrix``, or Σ over ``parts`` of
    fit(value) (each fit a [F, m, m] trigonometric polynomial of its value)."""

    name: str
    qubits: tuple[int, ...]
    matrix: np.ndarray | None = None
    parts: tuple[Part, ...] = ()
    gate_qubits: tuple[int, ...] = ()

    @property
    def kind(self) -> str:
        if not self.parts:
            return CONST
        return BATCH if any(value.uses_angles for value, _ in self.parts) else SHARED

    def pattern(self) -> np.ndarray:
        """Where the matrix can be non-zero."""
        if self.matrix is not None:
            return self.matrix != 0
        return np.any([np.any(fit.coefficients != 0, axis=0) for _, fit in self.parts], axis=0)

    def transposed(self) -> LocalOp:
        """The transposed map (for Heisenberg-picture propagation of readout functionals)."""
        if self.matrix is not None:
            return replace(self, matrix=np.ascontiguousarray(self.matrix.T))
        parts = tuple(
            (value, TrigFit(fit.functions, np.ascontiguousarray(fit.coefficients.transpose(0, 2, 1))))
            for value, fit in self.parts
        )
        return replace(self, parts=parts)


class UnitaryRepresentation:
    """State vectors: local dimension 2, gates are unitaries."""

    local_dim = 2
    max_frequency = 2

    def __init__(self) -> None:
        self._fits: dict[tuple[object, ...], TrigFit] = {}

    def lower(self, op: GateOp) -> LocalOp:
        if op.matrix is not None:
            return LocalOp(op.name, op.qubits, matrix=clean(op.matrix), gate_qubits=op.gate_qubits)
        if op.key not in self._fits:
            assert op.matrix_fn is not None
            fit = fit_trig_polynomial(op.matrix_fn, self.max_frequency)
            if fit is None:  # pragma: no cover - gates.compile_circuit checked this already
                raise ValueError(f"gate {op.name!r} is not a trigonometric polynomial")
            self._fits[op.key] = fit
        assert op.value is not None
        return LocalOp(
            op.name, op.qubits, parts=((op.value, self._fits[op.key]),), gate_qubits=op.gate_qubits
        )

    def qubit_state(self) -> np.ndarray:
        """|0⟩ of one qubit."""
        return np.array([1.0, 0.0])


class PauliRepresentation:
    """Pauli coordinates of density matrices: local dimension 4, gates are noisy PTMs."""

    local_dim = 4
    max_frequency = 4

    def __init__(self, noise: NoiseConfig | None) -> None:
        self.noise = noise
        self._fits: dict[tuple[object, ...], TrigFit] = {}

    def _channel(self, op: GateOp) -> np.ndarray | None:
        if self.noise is None:
            return None
        return self.noise.gate_channel_ptm(op.name, len(op.qubits))

    def lower(self, op: GateOp) -> LocalOp:
        channel = self._channel(op)
        if op.matrix is not None:
            ptm = ptm_of_unitary(op.matrix)
            if channel is not None:
                ptm = channel @ ptm
            return LocalOp(op.name, op.qubits, matrix=clean(ptm), gate_qubits=op.gate_qubits)
        key = (op.key, channel is None)
        if key not in self._fits:
            assert op.matrix_fn is not None
            matrix_fn = op.matrix_fn

            def noisy_ptm(theta: float) -> np.ndarray:
                ptm = ptm_of_unitary(matrix_fn(theta))
                return ptm if channel is None else channel @ ptm

            fit = fit_trig_polynomial(noisy_ptm, self.max_frequency)
            if fit is None:
                raise ValueError(f"the PTM of gate {op.name!r} is not a trigonometric polynomial")
            self._fits[key] = fit
        assert op.value is not None
        return LocalOp(op.name, op.qubits, parts=((op.value, self._fits[key]),), gate_qubits=op.gate_qubits)

    def qubit_state(self) -> np.ndarray:
        """|0⟩⟨0| of one qubit in Pauli coordinates (I, X, Y, Z)."""
        return zero_state_coordinates(1)


Representation = UnitaryRepresentation | PauliRepresentation
