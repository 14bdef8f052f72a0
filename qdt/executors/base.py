"""The executor interface: prepare a circuit once, run whole batches, declare capabilities.

Like a Qiskit Primitives V2 PUB, one :meth:`Executor.run` call carries one circuit and a
parameter array: ``angles`` [B, n_angles] (one row per batch element) and ``weights``
[n_weights] (shared by the batch). Validation lives here, once, so every executor rejects the
same bad input with the same :class:`~qdt.errors.QdtInputError` before simulating anything.

Everything a caller may use is on :class:`Executor` (see docs/design.md §4): ``prepare``,
``run``, ``run_many`` (several circuits in one call; one job on a device), ``isa_report``
(what transpilation to a device did; None on simulators), ``last_run_info`` (facts about the
latest run), ``capabilities`` and ``close``. Callers never reach past it by duck typing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ControlFlowOp, Gate, Parameter

from qdt.errors import QdtInputError
from qdt.sim.gates import validate_readout_qubits

if TYPE_CHECKING:
    from qdt.circuits.encoding import AmplitudeEncoder
    from qdt.circuits.vqc import VQC

READOUTS = ("probs", "expval_z")
MAX_SHOTS = 10_000_000
_IGNORED_INSTRUCTIONS = frozenset({"barrier", "delay"})


def validate_shots(shots: object, field: str = "shots") -> int:
    """``shots`` as an int from 1 to :data:`MAX_SHOTS`, else a QdtInputError naming ``field``.

    The one shot limit of qdt, for every executor, profile and command: 10,000,000, IBM Qiskit
    Runtime's own per-job limit on Sampler executions (circuits × shots, see
    https://quantum.cloud.ibm.com/docs/guides/job-limits). A single row can therefore always be
    submitted to a device; the simulators have no smaller limit of their own (their sampling
    draws counts, not shots one by one, so the count costs nothing). Whether a device's own
    configuration accepts the count, and whether a whole batch (rows × shots) fits one job, are
    checked by the ``ibm`` executor against the device, not here.
    """
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or not 1 <= shots <= MAX_SHOTS:
        raise QdtInputError(
            field,
            f"an integer from 1 to {MAX_SHOTS}",
            shots,
            f"{MAX_SHOTS:,} is IBM Runtime's per-job limit; leave shots out for exact results "
            "where the backend offers them",
        )
    return int(shots)


def strip_final_measurements(circuit: QuantumCircuit, *, allow_delays: bool = True) -> QuantumCircuit:
    """``circuit`` without its final measurements; anything without readout semantics is refused.

    Executors that hand the circuit to Qiskit (aer, ibm) call this in ``_prepare``: unitary
    gates, barriers, delays (unless ``allow_delays`` is False) and measurements at the very end
    are accepted; resets, classical control and mid-circuit measurements raise QdtInputError.
    """
    measured: set[int] = set()
    for position, instruction in enumerate(circuit.data):
        op = instruction.operation
        qubits = [circuit.find_bit(q).index for q in instruction.qubits]
        if op.name == "delay" and not allow_delays:
            raise QdtInputError(
                "circuit",
                "no delay instructions on a device noise profile",
                f"a delay at circuit.data[{position}]",
                "idle relaxation during delays is not modelled; remove the delays",
            )
        if op.name == "measure":
            measured.update(qubits)
            continue
        if op.name in _IGNORED_INSTRUCTIONS or op.num_qubits == 0:
            continue
        if isinstance(op, ControlFlowOp) or instruction.clbits or not isinstance(op, Gate):
            raise QdtInputError(
                "circuit",
                "unitary gates, barriers, delays and final measurements",
                f"instruction {op.name!r} at circuit.data[{position}]",
                "remove it; the readout is taken from the final state",
            )
        if measured.intersection(qubits):
            raise QdtInputError(
                "circuit",
                "measurements only at the end of the circuit",
                f"gate {op.name!r} on qubit {sorted(measured.intersection(qubits))[0]} after its measurement",
                "move measurements to the end; the readout is taken from the final state",
            )
    return circuit.remove_final_measurements(inplace=False) if measured else circuit


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
    listed = set(angles) | set(weights)  # built once: 17 s at 12 qubits when built per parameter
    unknown = [p for p in circuit.parameters if p not in listed]
    if unknown:
        raise QdtInputError(
            "circuit",
            "every circuit parameter listed in angle_params or weight_params",
            f"unlisted parameters {[p.name for p in unknown][:5]}",
            "bind them with assign_parameters, or add them to one of the lists",
        )
    return angles, weights


def _as_float_tensor(field: str, value: object, device: torch.device | None = None) -> torch.Tensor:
    """``value`` as a float64 tensor: a tensor stays on its device, anything else goes to ``device``
    (default: the CPU, where numpy's data is)."""
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise QdtInputError(field, "real numbers", f"a {value.dtype} tensor")
        return value if value.dtype == torch.float64 else value.to(torch.float64)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise QdtInputError(field, "a tensor or array of real numbers", value) from None
    tensor = torch.from_numpy(array)  # on the CPU, whatever torch's default device
    return tensor if device is None else tensor.to(device)


def _first_non_finite(tensor: torch.Tensor) -> tuple[int, ...] | None:
    """Index of the first NaN or inf in ``tensor``, or None. A NaN or inf anywhere makes the sum
    non-finite, so a finite sum (one reduction, no mask) proves the tensor finite; a sum that
    overflows from finite values falls through to the element-wise check."""
    detached = tensor.detach()
    if bool(torch.isfinite(detached.sum())):
        return None
    bad = ~torch.isfinite(detached)
    if not bool(bad.any()):
        return None
    return tuple(int(i) for i in bad.nonzero()[0])


def validate_angles(angles: object, n_angles: int, device: torch.device | None = None) -> torch.Tensor:
    """``angles`` as a float64 tensor [B, n_angles] of finite values (a non-tensor goes to ``device``)."""
    tensor = _as_float_tensor("angles", angles, device)
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


def validate_weights(weights: object, n_weights: int, device: torch.device | None = None) -> torch.Tensor:
    """``weights`` as a float64 tensor [n_weights] of finite values (a non-tensor goes to ``device``)."""
    tensor = _as_float_tensor("weights", weights, device)
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


def weights_beside(inputs: torch.Tensor, weights: object, n_weights: int, inputs_name: str) -> torch.Tensor:
    """``weights`` validated (:func:`validate_weights`) as a float tensor on the device of the
    circuit's other ``inputs`` (``inputs_name`` in the error when it is on another)."""
    weight_tensor = _as_float_tensor("weights", weights, inputs.device)
    if weight_tensor.device != inputs.device:
        raise QdtInputError(
            "weights",
            f"a tensor on the {inputs_name}' device ({inputs.device})",
            f"a tensor on {weight_tensor.device}",
            "move the module and its inputs to one device (module.to(device), inputs.to(device))",
        )
    return validate_weights(weight_tensor, n_weights)


def validate_readout(readout: object) -> str:
    if readout not in READOUTS:
        raise QdtInputError("readout", "'probs' or 'expval_z'", readout)
    return str(readout)


@lru_cache(maxsize=32)
def _z_signs(outcomes: int, device: torch.device) -> torch.Tensor:
    """[2**m, m]: the sign (−1)^(bit i of k) of outcome k in ⟨Z_i⟩, on ``device`` (one per device)."""
    bits = int(outcomes).bit_length() - 1
    k = torch.arange(outcomes, device=device)
    return 1.0 - 2.0 * ((k[:, None] >> torch.arange(bits, device=device)[None, :]) & 1).to(torch.float64)


def expval_z(probs: torch.Tensor) -> torch.Tensor:
    """⟨Z_i⟩ per readout bit from probabilities [B, 2**m] (bit i of the outcome index)."""
    return probs @ _z_signs(int(probs.shape[-1]), probs.device)


RunItem: TypeAlias = tuple[PreparedCircuit, Any, Any]  # (prepared, angles [B, n_angles], weights)
_NO_RUN_INFO: Mapping[str, Any] = MappingProxyType({})


class Executor(ABC):
    """Base class: validation in one place; subclasses implement ``_prepare`` and ``_run``.

    Subclasses may override :meth:`run_many` (to batch several circuits in one call),
    :meth:`isa_report` and :meth:`close`; they record run facts in ``_run_info``.
    """

    name: ClassVar[str]
    # True: ``_run`` computes in torch on the device of its inputs (statevector, density, the
    # parameter-shift wrapper). False: it hands numbers to another program (Aer, a device), so
    # ``run`` gives it CPU tensors and moves its output back to the inputs' device.
    runs_on_input_device: ClassVar[bool] = False
    _run_info: Mapping[str, Any] = _NO_RUN_INFO

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @property
    def last_run_info(self) -> Mapping[str, Any]:
        """Facts about the latest :meth:`run` (executor-specific keys such as ``mode``,
        ``shots``, ``method``, ``seconds``); empty before the first run, and for executors that
        record none."""
        return self._run_info

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
        """Run the whole batch: [B, 2**m] probabilities or [B, m] values of ⟨Z_i⟩ (float64).

        The output is on the device of the inputs (angles and weights on one device; a numpy or
        list input joins the other's device, the CPU if neither is a tensor)."""
        self.check_prepared(prepared)
        mode = validate_readout(readout)
        device = next((v.device for v in (angles, weights) if isinstance(v, torch.Tensor)), None)
        angle_tensor = _as_float_tensor("angles", angles, device)
        angle_tensor = validate_angles(angle_tensor, prepared.n_angles)
        weight_tensor = weights_beside(angle_tensor, weights, prepared.n_weights, "angles")
        if self.runs_on_input_device or angle_tensor.device.type == "cpu":
            return self._run(prepared, angle_tensor, weight_tensor, mode)
        output = self._run(prepared, angle_tensor.cpu(), weight_tensor.cpu(), mode)
        return output.to(angle_tensor.device)

    def run_encoded(
        self,
        prepared: PreparedCircuit,
        encoder: AmplitudeEncoder,
        inputs: torch.Tensor,
        weights: torch.Tensor,
        readout: str = "probs",
    ) -> torch.Tensor:
        """:meth:`run` on the angles ``encoder(inputs)`` of the circuit's amplitude encoding (a
        ``QuantumLayer``'s call). An exact simulator may prepare the encoded state directly
        instead (``statevector`` where no gradient is wanted): the same numbers to rounding."""
        return self.run(prepared, encoder(inputs), weights, readout=readout)

    def run_many(self, items: Sequence[RunItem], readout: str = "probs") -> list[torch.Tensor]:
        """Several prepared circuits, each with its own batch: one output per item, in order.

        The default runs the items one after the other (one :meth:`run` per circuit, each on
        its whole batch); an executor that can do better overrides it (``ibm``: ONE job with
        one PUB per item, one queue wait for every agent's actor).
        """
        if not items:
            raise QdtInputError("items", "at least one (prepared, angles, weights) triple", "none")
        return [self.run(prepared, angles, weights, readout=readout) for prepared, angles, weights in items]

    def isa_report(self, prepared: PreparedCircuit) -> dict[str, Any] | None:
        """What transpilation to a device did to ``prepared`` (device, layout, depth, two-qubit
        gates …), or None when the circuit runs as written (the simulators)."""
        self.check_prepared(prepared)
        return None

    def close(self) -> None:
        """Release what the executor holds open (a Runtime session or batch); a no-op by default."""
        return None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_prepared(self, prepared: object) -> PreparedCircuit:
        """``prepared`` if this executor prepared it, else the one QdtInputError every executor raises."""
        if not isinstance(prepared, PreparedCircuit) or prepared.owner != id(self):
            raise QdtInputError(
                "prepared",
                f"a circuit prepared by this {self.name!r} executor",
                getattr(prepared, "executor", type(prepared).__name__),
                "call executor.prepare(circuit, ...) on the executor that runs it",
            )
        return prepared

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
