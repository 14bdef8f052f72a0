"""A parametric :class:`~qdt.noise.NoiseConfig` as a qiskit-aer ``NoiseModel`` (same channels).

The torch density executor applies, after every gate on one or two qubits (except
``noiseless_gates``): depolarizing, then amplitude damping, then phase damping, then thermal
relaxation, each on every qubit of the gate. Here the same sequence is one composed
``QuantumError`` per gate width, attached to every gate name the circuit uses, so Aer realises
exactly the channels the density executor does (see ``tests/test_noise_profiles.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from qiskit_aer.noise import (
    NoiseModel,
    QuantumError,
    ReadoutError,
    amplitude_damping_error,
    depolarizing_error,
    phase_damping_error,
    thermal_relaxation_error,
)

from qdt.errors import QdtInputError
from qdt.noise.config import NoiseConfig

# Instructions that never carry gate noise (the density executor skips them too).
NOT_GATES = frozenset({"barrier", "delay", "measure", "global_phase", "save_probabilities"})


def _compose(errors: Iterable[QuantumError | None]) -> QuantumError | None:
    total: QuantumError | None = None
    for error in errors:
        if error is not None:
            total = error if total is None else total.compose(error)
    return total


def _local_error(noise: NoiseConfig, num_qubits: int) -> QuantumError | None:
    """Damping then thermal relaxation on one qubit of a ``num_qubits``-qubit gate."""
    parts: list[QuantumError | None] = [
        amplitude_damping_error(noise.amplitude_damping) if noise.amplitude_damping > 0 else None,
        phase_damping_error(noise.phase_damping) if noise.phase_damping > 0 else None,
    ]
    time = noise.gate_time_1q_s if num_qubits == 1 else noise.gate_time_2q_s
    if noise.thermal_t1_s is not None and noise.thermal_t2_s is not None and time > 0:
        parts.append(thermal_relaxation_error(noise.thermal_t1_s, noise.thermal_t2_s, time))
    return _compose(parts)


def gate_error(noise: NoiseConfig, num_qubits: int) -> QuantumError | None:
    """The error after every ``num_qubits``-qubit gate (1 or 2), or None if there is none."""
    p = noise.depolarizing_1q if num_qubits == 1 else noise.depolarizing_2q
    depolarizing = depolarizing_error(p, num_qubits) if p > 0 else None
    local = _local_error(noise, num_qubits)
    if local is not None and num_qubits == 2:
        local = local.tensor(local)
    return _compose([depolarizing, local])


def readout_errors(noise: NoiseConfig, num_bits: int) -> list[ReadoutError] | None:
    """One ReadoutError per readout bit (bit 0 first), or None without readout error."""
    if not noise.has_readout_error:
        return None
    if len(noise.readout) not in (1, num_bits):
        raise QdtInputError(
            "noise.readout",
            f"one assignment matrix or {num_bits} (one per readout bit)",
            f"{len(noise.readout)} matrices",
        )
    matrices = noise.readout * num_bits if len(noise.readout) == 1 else noise.readout
    return [ReadoutError([list(row) for row in matrix]) for matrix in matrices]


def aer_noise_model(
    noise: NoiseConfig,
    gates: Iterable[tuple[str, int]],
    readout_qubits: Sequence[int] = (),
    with_readout: bool = True,
) -> NoiseModel | None:
    """Aer NoiseModel for a circuit whose gates are ``(name, num_qubits)``; None if noiseless.

    ``readout_qubits``: the circuit qubit of readout bit i; readout errors are attached to
    their measurements when ``with_readout`` (the probability engine applies the assignment
    matrix itself instead, since Aer's readout errors act only on ``measure``).
    """
    names: dict[int, set[str]] = {}
    for name, width in gates:
        if name in NOT_GATES or width == 0:
            continue
        names.setdefault(width, set()).add(name)
    model = NoiseModel(basis_gates=sorted({n for group in names.values() for n in group}))
    empty = True
    for width, group in sorted(names.items()):
        noisy = sorted(group - set(noise.noiseless_gates))
        if not noisy or not noise.has_gate_noise:
            continue
        if width not in (1, 2):
            raise QdtInputError(
                "circuit",
                "gates on one or two qubits when gate noise is configured",
                f"gate {noisy[0]!r} on {width} qubits",
                "decompose it first, e.g. transpile(circuit, basis_gates=['rz', 'sx', 'cx'])",
            )
        error = gate_error(noise, width)
        if error is not None:
            model.add_all_qubit_quantum_error(error, noisy, warnings=False)
            empty = False
    if with_readout:
        errors = readout_errors(noise, len(readout_qubits))
        for qubit, error in zip(readout_qubits, errors or []):
            model.add_readout_error(error, [qubit], warnings=False)
            empty = False
    return None if empty else model
