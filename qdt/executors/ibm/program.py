"""The ``executor`` primitive: qdt's PUBs as one Qiskit Runtime ``QuantumProgram`` on the Executor.

Chosen by a profile's ``[runtime] primitive = "executor"`` (default ``"sampler"``). qiskit-ibm-runtime
0.47 added the Executor primitive (beta): it runs a ``QuantumProgram`` whose items are circuits with
arrays of parameter values, and returns, per item, the classical registers' bits as boolean arrays
of shape ``[rows, shots, bits]`` (bit ``i`` of a register is column ``i``). Since 0.50 the runtime's own
client-side Sampler is built on it; this path skips that layer, so what is submitted is exactly the
ISA circuits and parameter arrays qdt prepared (one circuit item per PUB, the whole batch as its
``circuit_arguments``), and no Sampler-side pass (twirling, dynamical decoupling) applies: a profile
asking for both is refused when it is read (:mod:`qdt.executors.ibm.settings`).

Local testing mode runs the program on the fake device's Aer simulator, as it does the Sampler; a
real device runs it through ``QiskitRuntimeService``; one code path for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from qdt.errors import QdtError


def build_program(pubs: Sequence[tuple[Any, ...]], shots: int) -> Any:
    """A ``QuantumProgram`` of ``shots`` shots with one circuit item per ``(isa_circuit, values, shots)``
    sampler PUB; ``values`` is the batch's ``[rows, parameters]`` array."""
    from qiskit_ibm_runtime import QuantumProgram

    program = QuantumProgram(shots=int(shots))
    for pub in pubs:
        circuit, values = pub[0], np.asarray(pub[1], dtype=np.float64)
        program.append_circuit_item(circuit, circuit_arguments=values)
    return program


def executor_primitive(mode: Any, options: dict[str, Any]) -> Any:
    """``qiskit_ibm_runtime.Executor`` on ``mode`` (a backend, Batch or Session) with ``options``."""
    from qiskit_ibm_runtime import Executor

    return Executor(mode=mode, options=options)


def bool_counts(bits: Any) -> np.ndarray:
    """Counts per row of a boolean array ``[rows, shots, bits]`` (column i = bit i) → int64
    ``[rows, 2^bits]``, outcome index ``sum_i bit_i 2^i`` as in qiskit's counts (vectorised)."""
    array = np.asarray(bits, dtype=bool)
    if array.ndim != 3:
        raise QdtError(f"expected the Executor's bits as [rows, shots, bits], got shape {array.shape}")
    width = array.shape[2]
    values = array.astype(np.int64) @ (np.int64(1) << np.arange(width, dtype=np.int64))  # [rows, shots]
    return outcome_counts(values, width)


def outcome_counts(values: np.ndarray, width: int) -> np.ndarray:
    """Outcome indices ``[rows, shots]`` of ``width`` bits → counts int64 ``[rows, 2^width]``, one
    bincount for all rows (each row's indices offset into its own block)."""
    rows, outcomes = values.shape[0], 1 << width
    offsets = (np.arange(rows, dtype=np.int64) * outcomes)[:, None]
    return np.bincount((values + offsets).ravel(), minlength=rows * outcomes).reshape(rows, outcomes)
