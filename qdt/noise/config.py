"""Parametric noise for the torch density executor, validated on construction.

The same parameters describe a qiskit-aer noise model (a later ``aer`` executor builds it), so
the conventions follow qiskit-aer exactly:

- after every gate on one qubit: ``depolarizing_error(depolarizing_1q, 1)``, then
  ``amplitude_damping_error(amplitude_damping)``, then ``phase_damping_error(phase_damping)``;
- after every gate on two qubits: ``depolarizing_error(depolarizing_2q, 2)``, then amplitude
  damping and phase damping on each of the two qubits;
- thermal relaxation (``thermal_t1_s``, ``thermal_t2_s`` with gate times ``gate_time_1q_s`` and
  ``gate_time_2q_s``): ``thermal_relaxation_error(T1, T2, gate_time)`` (excited-state population 0)
  after the damping on every qubit the gate acts on, last in the sequence above. It is amplitude
  damping γ = 1 − exp(−t/T1) followed by phase damping λ = 1 − exp(t/T1 − 2t/T2), so coherences
  decay as exp(−t/T2); it needs T2 ≤ 2·T1;
- gates named in ``noiseless_gates`` get no gate noise (e.g. ``("rz",)``: virtual on IBM devices);
- readout: per measured bit a 2×2 assignment matrix A with A[i][j] = P(record j | state i)
  (qiskit-aer ``ReadoutError`` convention; rows sum to 1). One matrix applies to every bit;
  several apply bit by bit in readout order (bit 0 first).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from qdt.errors import QdtInputError
from qdt.noise.pauli import amplitude_damping_ptm, depolarizing_ptm, phase_damping_ptm

AssignmentMatrix = tuple[tuple[float, float], tuple[float, float]]

_ROW_SUM_TOLERANCE = 1e-9


def _probability(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise QdtInputError(f"noise.{name}", "a probability (a number in [0, 1])", value)
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise QdtInputError(
            f"noise.{name}", "a finite probability in [0, 1]", value, "use a value from 0 to 1"
        )
    return number


def _assignment(index: int, matrix: object) -> AssignmentMatrix:
    where = f"noise.readout[{index}]"
    try:
        array = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise QdtInputError(where, "a 2×2 matrix of probabilities", matrix) from None
    if array.shape != (2, 2):
        raise QdtInputError(where, "a 2×2 matrix [[P(0|0), P(1|0)], [P(0|1), P(1|1)]]", matrix)
    if not np.all(np.isfinite(array)) or np.any(array < 0.0) or np.any(array > 1.0):
        raise QdtInputError(where, "finite entries in [0, 1]", matrix)
    sums = array.sum(axis=1)
    if np.any(np.abs(sums - 1.0) > _ROW_SUM_TOLERANCE):
        raise QdtInputError(
            where,
            "rows that sum to 1 (row i holds P(record 0 | state i), P(record 1 | state i))",
            matrix,
            f"row sums are {sums.tolist()}",
        )
    return ((float(array[0, 0]), float(array[0, 1])), (float(array[1, 0]), float(array[1, 1])))


def _duration(name: str, value: object, *, positive: bool) -> float:
    expected = "a positive, finite time in seconds" if positive else "a finite time >= 0 in seconds"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise QdtInputError(f"noise.{name}", expected, value)
    number = float(value)
    if not math.isfinite(number) or number < 0.0 or (positive and number == 0.0):
        raise QdtInputError(f"noise.{name}", expected, value)
    return number


def thermal_damping(t1: float, t2: float, time: float) -> tuple[float, float]:
    """(γ, λ) of the amplitude and phase damping that make ``thermal_relaxation_error(t1, t2, time)``."""
    gamma = -math.expm1(-time / t1)
    lam = -math.expm1(time / t1 - 2.0 * time / t2)
    return gamma, min(max(lam, 0.0), 1.0)


def readout_matrix(p1_given_0: float, p0_given_1: float) -> AssignmentMatrix:
    """Assignment matrix from the two flip probabilities P(record 1 | 0) and P(record 0 | 1)."""
    a = _probability("readout.p1_given_0", p1_given_0)
    b = _probability("readout.p0_given_1", p0_given_1)
    return ((1.0 - a, a), (b, 1.0 - b))


@dataclass(frozen=True)
class NoiseConfig:
    """Gate and readout noise; every field defaults to "no noise"."""

    depolarizing_1q: float = 0.0
    depolarizing_2q: float = 0.0
    amplitude_damping: float = 0.0
    phase_damping: float = 0.0
    readout: tuple[AssignmentMatrix, ...] = ()
    noiseless_gates: tuple[str, ...] = field(default=())
    thermal_t1_s: float | None = None  # None: no thermal relaxation
    thermal_t2_s: float | None = None
    gate_time_1q_s: float = 0.0
    gate_time_2q_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("depolarizing_1q", "depolarizing_2q", "amplitude_damping", "phase_damping"):
            object.__setattr__(self, name, _probability(name, getattr(self, name)))
        self._validate_thermal()
        readout = self.readout
        if isinstance(readout, np.ndarray) and readout.shape == (2, 2):
            readout = (readout,)
        if not isinstance(readout, (tuple, list, np.ndarray)):
            raise QdtInputError("noise.readout", "a sequence of 2×2 assignment matrices", readout)
        readout_seq: Sequence[object] = list(readout)
        if len(readout_seq) == 2 and all(np.ndim(row) == 1 for row in readout_seq):  # type: ignore[arg-type]
            readout_seq = [readout_seq]  # a single bare 2×2 matrix
        object.__setattr__(self, "readout", tuple(_assignment(i, m) for i, m in enumerate(readout_seq)))
        gates = self.noiseless_gates
        if isinstance(gates, str) or not all(isinstance(g, str) for g in gates):
            raise QdtInputError("noise.noiseless_gates", "a sequence of gate names such as ('rz',)", gates)
        object.__setattr__(self, "noiseless_gates", tuple(gates))

    def _validate_thermal(self) -> None:
        for name in ("gate_time_1q_s", "gate_time_2q_s"):
            object.__setattr__(self, name, _duration(name, getattr(self, name), positive=False))
        t1, t2 = self.thermal_t1_s, self.thermal_t2_s
        if t1 is None and t2 is None:
            return
        if t1 is None or t2 is None:
            raise QdtInputError(
                "noise.thermal_t1_s" if t1 is None else "noise.thermal_t2_s",
                "both T1 and T2 for thermal relaxation",
                None,
                "give thermal_t1_s and thermal_t2_s together, or neither",
            )
        t1 = _duration("thermal_t1_s", t1, positive=True)
        t2 = _duration("thermal_t2_s", t2, positive=True)
        if t2 > 2.0 * t1:
            raise QdtInputError(
                "noise.thermal_t2_s",
                f"T2 <= 2·T1 = {2.0 * t1:g} s (a physical qubit)",
                t2,
                "lower T2 or raise T1",
            )
        object.__setattr__(self, "thermal_t1_s", t1)
        object.__setattr__(self, "thermal_t2_s", t2)

    @property
    def has_thermal_relaxation(self) -> bool:
        return self.thermal_t1_s is not None and (self.gate_time_1q_s > 0.0 or self.gate_time_2q_s > 0.0)

    def thermal_damping(self, num_qubits: int) -> tuple[float, float] | None:
        """(γ, λ) of the thermal relaxation on each qubit of a ``num_qubits``-qubit gate, or None."""
        if self.thermal_t1_s is None or self.thermal_t2_s is None:
            return None
        time = self.gate_time_1q_s if num_qubits == 1 else self.gate_time_2q_s
        if time == 0.0:
            return None
        return thermal_damping(self.thermal_t1_s, self.thermal_t2_s, time)

    @property
    def has_gate_noise(self) -> bool:
        return self.has_thermal_relaxation or any(
            value > 0.0
            for value in (
                self.depolarizing_1q,
                self.depolarizing_2q,
                self.amplitude_damping,
                self.phase_damping,
            )
        )

    @property
    def has_readout_error(self) -> bool:
        identity = ((1.0, 0.0), (0.0, 1.0))
        return any(matrix != identity for matrix in self.readout)

    @property
    def is_trivial(self) -> bool:
        return not self.has_gate_noise and not self.has_readout_error

    def gate_channel_ptm(self, gate_name: str, num_qubits: int) -> np.ndarray | None:
        """PTM of the noise after a gate on ``num_qubits`` qubits, or None if there is none."""
        if gate_name in self.noiseless_gates or not self.has_gate_noise:
            return None
        if num_qubits not in (1, 2):
            raise QdtInputError(
                "circuit",
                "gates on one or two qubits when gate noise is configured",
                f"gate {gate_name!r} on {num_qubits} qubits",
                "decompose it first, e.g. transpile(circuit, basis_gates=['rz', 'sx', 'cx'])",
            )
        p = self.depolarizing_1q if num_qubits == 1 else self.depolarizing_2q
        local = phase_damping_ptm(self.phase_damping) @ amplitude_damping_ptm(self.amplitude_damping)
        thermal = self.thermal_damping(num_qubits)
        if thermal is not None:
            local = phase_damping_ptm(thermal[1]) @ amplitude_damping_ptm(thermal[0]) @ local
        total = local if num_qubits == 1 else np.kron(local, local)
        return total @ depolarizing_ptm(p, num_qubits)

    def assignment_matrix(self, num_bits: int) -> np.ndarray | None:
        """[2**m, 2**m] matrix M with p_recorded = p_true @ M, or None without readout error."""
        if not self.has_readout_error:
            return None
        if len(self.readout) not in (1, num_bits):
            raise QdtInputError(
                "noise.readout",
                f"one assignment matrix or {num_bits} (one per readout bit)",
                f"{len(self.readout)} matrices",
            )
        matrices = self.readout * num_bits if len(self.readout) == 1 else self.readout
        total = np.ones((1, 1))
        for matrix in matrices:  # bit 0 first: later bits are more significant
            total = np.kron(np.asarray(matrix), total)
        return total
