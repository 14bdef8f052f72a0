"""Read a ``QuantumCircuit`` into a flat list of gates with matrices the torch executors use.

Every gate becomes a :class:`GateOp` on *simulated* qubits (the qubits the circuit touches plus
the readout qubits, renumbered densely in ascending circuit order, so a transpiled circuit on a
127-qubit device simulates only the few qubits it uses). A gate's qubits are sorted ascending and
its matrix permuted to match (Qiskit's convention: the first listed qubit is the least
significant bit of the matrix index). A constant gate carries its unitary; a gate with one
symbolic parameter carries the function θ ↦ unitary and the parameter as an
:class:`~qdt.sim.affine.AffineValue`. Gates with several symbolic parameters (``u``, ``cu``
…) are decomposed by Qiskit's transpiler into one-parameter gates first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import ControlFlowOp, Gate, Parameter

from qdt.errors import QdtInputError
from qdt.sim.affine import AffineValue, affine_value, is_numeric, numeric_value
from qdt.sim.trig import fit_trig_polynomial

IGNORED_INSTRUCTIONS = frozenset({"barrier", "delay", "global_phase"})
_DECOMPOSITION_BASIS = ["rx", "ry", "rz", "p", "sx", "x", "cx", "cz", "h"]
_UNITARY_MAX_FREQUENCY = 2  # in units of θ/2: unitaries use cos/sin of θ/2 and θ


@dataclass(frozen=True, eq=False)
class GateOp:
    """One gate on simulated qubits (ascending); constant or with one affine parameter."""

    name: str
    qubits: tuple[int, ...]
    matrix: np.ndarray | None = None
    matrix_fn: Callable[[float], np.ndarray] | None = None
    value: AffineValue | None = None
    key: tuple[object, ...] = ()
    gate_qubits: tuple[int, ...] = ()  # simulated qubits in the gate's own order (cx: control, target)

    @property
    def is_constant(self) -> bool:
        return self.value is None


@dataclass(frozen=True, eq=False)
class CompiledCircuit:
    """The circuit's gates on simulated qubits and where the readout bits sit."""

    ops: tuple[GateOp, ...]
    num_qubits: int
    circuit_qubits: tuple[int, ...]
    readout: tuple[int, ...]


def reorder_to_ascending(matrix: np.ndarray, qubits: Sequence[int]) -> np.ndarray:
    """Permute a gate matrix given for ``qubits`` (first = least significant) to ascending order."""
    k = len(qubits)
    order = sorted(range(k), key=lambda j: qubits[j])
    if order == list(range(k)):
        return matrix
    row_axes = [k - 1 - order[k - 1 - a] for a in range(k)]
    axes = row_axes + [k + axis for axis in row_axes]
    return matrix.reshape([2] * (2 * k)).transpose(axes).reshape(2**k, 2**k)


def _reject(name: str, why: str) -> QdtInputError:
    return QdtInputError(
        "circuit",
        "unitary gates, barriers, delays and final measurements",
        f"instruction {name!r} ({why})",
        "remove it, or transpile the circuit to basis gates first",
    )


class _Reader:
    def __init__(
        self,
        circuit: QuantumCircuit,
        angle_index: dict[Parameter, int],
        weight_index: dict[Parameter, int],
    ) -> None:
        self.circuit = circuit
        self.angle_index = angle_index
        self.weight_index = weight_index
        self.raw: list[tuple[str, tuple[int, ...], Gate, AffineValue | None, int]] = []
        self.measured: set[int] = set()
        self._fits: dict[tuple[object, ...], bool] = {}

    def read(self, circuit: QuantumCircuit, qubit_map: Sequence[int], depth: int) -> None:
        for position, instruction in enumerate(circuit.data):
            op = instruction.operation
            name = op.name
            qubits = tuple(qubit_map[circuit.find_bit(q).index] for q in instruction.qubits)
            if name in IGNORED_INSTRUCTIONS or op.num_qubits == 0:
                continue
            if name == "measure":
                self.measured.update(qubits)
                continue
            if isinstance(op, ControlFlowOp) or instruction.clbits:
                raise _reject(name, "classical control is not simulated")
            if not isinstance(op, Gate):
                if depth == 0 and op.definition is not None:
                    self.read(op.definition, qubits, depth + 1)
                    continue
                raise _reject(name, "not a unitary gate")
            touched_measured = self.measured.intersection(qubits)
            if touched_measured:
                raise QdtInputError(
                    "circuit",
                    "measurements only at the end of the circuit",
                    f"gate {name!r} on qubit {sorted(touched_measured)[0]} after its measurement",
                    "move measurements to the end; the readout is taken from the final state",
                )
            self._read_gate(op, qubits, f"circuit.data[{position}] ({name})", depth)

    def _read_gate(self, op: Gate, qubits: tuple[int, ...], where: str, depth: int) -> None:
        symbolic = [i for i, p in enumerate(op.params) if not is_numeric(p)]
        if not symbolic:
            self.raw.append((op.name, qubits, op, None, -1))
            return
        if len(symbolic) == 1:
            value = affine_value(op.params[symbolic[0]], self.angle_index, self.weight_index, where)
            position = symbolic[0]
            key = (
                type(op).__name__,
                op.name,
                tuple(None if i == position else numeric_value(p, where) for i, p in enumerate(op.params)),
            )
            if key not in self._fits:
                fn = _matrix_function(op, position, where)
                self._fits[key] = fit_trig_polynomial(fn, _UNITARY_MAX_FREQUENCY) is not None
            if self._fits[key]:
                self.raw.append((op.name, qubits, op, value, position))
                return
        if depth > 1:
            raise _reject(op.name, "its matrix is not a low-order trigonometric function")
        single = QuantumCircuit(op.num_qubits)
        single.append(op, range(op.num_qubits))
        decomposed = transpile(single, basis_gates=_DECOMPOSITION_BASIS, optimization_level=0)
        self.read(decomposed, qubits, depth + 1)


def _numeric_params(op: Gate, skip: int, where: str) -> list[object]:
    return [p if i == skip else numeric_value(p, where) for i, p in enumerate(op.params)]


def _matrix_function(op: Gate, position: int, where: str) -> Callable[[float], np.ndarray]:
    template = op.to_mutable()
    params = _numeric_params(op, position, where)

    def matrix(theta: float) -> np.ndarray:
        values = list(params)
        values[position] = float(theta)
        template.params = values
        return np.asarray(template.to_matrix(), dtype=np.complex128)

    return matrix


def _constant_matrix(op: Gate, where: str) -> np.ndarray:
    if op.params:
        op = op.to_mutable()
        op.params = [numeric_value(p, where) for p in op.params]
    try:
        return np.asarray(op.to_matrix(), dtype=np.complex128)
    except Exception as error:  # qiskit raises CircuitError for gates without a matrix
        raise _reject(op.name, f"no matrix: {error}") from None


def default_readout_qubits(circuit: QuantumCircuit) -> tuple[int, ...]:
    """The logical qubits' physical indices for a transpiled circuit, else all qubits in order."""
    layout = getattr(circuit, "layout", None)
    if layout is not None:
        return tuple(int(q) for q in layout.final_index_layout())
    return tuple(range(circuit.num_qubits))


def validate_readout_qubits(circuit: QuantumCircuit, readout_qubits: object) -> tuple[int, ...]:
    if readout_qubits is None:
        return default_readout_qubits(circuit)
    try:
        qubits = tuple(int(q) for q in readout_qubits)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise QdtInputError("readout_qubits", "a sequence of qubit indices", readout_qubits) from None
    if not qubits:
        raise QdtInputError("readout_qubits", "at least one qubit index", readout_qubits)
    bad = [q for q in qubits if not 0 <= q < circuit.num_qubits]
    if bad:
        raise QdtInputError(
            "readout_qubits",
            f"indices in [0, {circuit.num_qubits})",
            readout_qubits,
            f"{bad[0]} is not a qubit of this {circuit.num_qubits}-qubit circuit",
        )
    if len(set(qubits)) != len(qubits):
        raise QdtInputError("readout_qubits", "distinct qubit indices", readout_qubits)
    return qubits


def compile_circuit(
    circuit: QuantumCircuit,
    angle_params: Sequence[Parameter],
    weight_params: Sequence[Parameter],
    readout_qubits: Sequence[int],
    max_qubits: int,
    too_wide: Callable[[int], QdtInputError] | None = None,
) -> CompiledCircuit:
    """Flatten, validate and renumber the circuit's gates (see the module docstring). More than
    ``max_qubits`` simulated qubits raise ``too_wide(count)`` (the executor's refusal, naming the
    memory it would need), or a plain QdtInputError."""
    angle_index = {p: i for i, p in enumerate(angle_params)}
    weight_index = {p: i for i, p in enumerate(weight_params)}
    reader = _Reader(circuit, angle_index, weight_index)
    reader.read(circuit, list(range(circuit.num_qubits)), 0)
    active = sorted({q for _, qubits, _, _, _ in reader.raw for q in qubits} | set(readout_qubits))
    if len(active) > max_qubits:
        if too_wide is not None:
            raise too_wide(len(active))
        raise QdtInputError(
            "circuit",
            f"at most {max_qubits} qubits that carry gates or are read out",
            f"{len(active)} qubits",
            "use fewer qubits, or an executor meant for larger circuits",
        )
    sim_index = {q: i for i, q in enumerate(active)}
    ops: list[GateOp] = []
    for name, qubits, op, value, position in reader.raw:
        sim_qubits = tuple(sim_index[q] for q in qubits)
        ascending = tuple(sorted(sim_qubits))
        where = f"gate {name!r} on qubits {list(qubits)}"
        if value is None:
            matrix = reorder_to_ascending(_constant_matrix(op, where), sim_qubits)
            ops.append(GateOp(name, ascending, matrix=matrix, gate_qubits=sim_qubits))
            continue
        raw_fn = _matrix_function(op, position, where)

        def fn(theta: float, raw_fn=raw_fn, sim_qubits=sim_qubits) -> np.ndarray:
            return reorder_to_ascending(raw_fn(theta), sim_qubits)

        order = tuple(sorted(range(len(sim_qubits)), key=lambda j: sim_qubits[j]))
        fixed = tuple(None if i == position else numeric_value(p, where) for i, p in enumerate(op.params))
        key = (type(op).__name__, name, fixed, order)
        ops.append(GateOp(name, ascending, matrix_fn=fn, value=value, key=key, gate_qubits=sim_qubits))
    return CompiledCircuit(
        ops=tuple(ops),
        num_qubits=len(active),
        circuit_qubits=tuple(active),
        readout=tuple(sim_index[q] for q in readout_qubits),
    )
