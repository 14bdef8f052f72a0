"""Fractional gates: RX(θ) (and RZZ(θ)) at any angle as one native gate on IBM devices that have them.

The paper's circuit is RX layers plus a CZ ring (docs/design.md §3). Without fractional gates an
IBM device runs each RX(θ) as RZ·SX·RZ·SX·RZ (two SX pulses); a Heron device opened with
``QiskitRuntimeService().backend(name, use_fractional_gates=True)`` runs it as one ``rx`` pulse,
which shortens every ISA circuit qdt sends. A backend profile turns it on with
``[device] fractional_gates = true`` (:mod:`qdt.executors.ibm.settings`):

* a real device is opened with ``use_fractional_gates=True``
  (:func:`qdt.executors.ibm.connect.connect_device`);
* a fake device (local testing mode) must itself carry ``rx`` in its target: of the fake backends
  qiskit-ibm-runtime 0.51 ships only ``fake_fractional`` (5 qubits, ``FakeFractionalBackend``)
  does; FakeTorino and FakeFez do not.

Either way the device's target must list ``rx`` before anything is transpiled or submitted;
otherwise :func:`unsupported` is the one error, naming ``device.fractional_gates``, the device,
its basis and the fix. With ``fractional_gates = false`` the circuit is transpiled for the device's
target without ``rx``/``rzz`` (:func:`without_fractional_gates`), which is what a real device
opened without them offers; the same target serves, with fractional gates on, the ISA depth and
two-qubit count reported for comparison (never submitted).
"""

from __future__ import annotations

from typing import Any

from qiskit.transpiler import Target

from qdt.errors import QdtInputError

FRACTIONAL_GATES = ("rx", "rzz")  # what use_fractional_gates=True adds to an IBM device's target
NATIVE_RX = "rx"  # the paper's trainable rotations: the gate fractional_gates = true is for
_NOT_GATES = frozenset({"measure", "delay", "reset", "barrier", "if_else", "while_loop", "for_loop"})
_NOT_GATES |= {"switch_case", "box", "store"}


def has_native_rx(target: Target) -> bool:
    """The target runs RX(θ) at any angle as one instruction."""
    return NATIVE_RX in target.operation_names


def has_fractional_gates(target: Target) -> bool:
    """Any of :data:`FRACTIONAL_GATES` in the target."""
    return any(name in target.operation_names for name in FRACTIONAL_GATES)


def basis_gates(target: Target) -> list[str]:
    """The target's gates, sorted, without measure, delay, reset and control flow."""
    return sorted(name for name in target.operation_names if name not in _NOT_GATES)


def without_fractional_gates(target: Target) -> Target:
    """A copy of ``target`` (same qubits, coupling, errors, durations, timing) without rx and rzz."""
    reduced = Target(
        description=target.description,
        num_qubits=target.num_qubits,
        dt=target.dt,
        granularity=target.granularity,
        min_length=target.min_length,
        pulse_alignment=target.pulse_alignment,
        acquire_alignment=target.acquire_alignment,
        qubit_properties=target.qubit_properties,
        concurrent_measurements=target.concurrent_measurements,
    )
    for name in target.operation_names:
        if name in FRACTIONAL_GATES:
            continue
        operation = target.operation_from_name(name)
        properties = target[name]
        if isinstance(operation, type) or not properties or None in properties:
            properties = None  # a class (control flow) or an instruction on every qubit: no properties
        reduced.add_instruction(operation, dict(properties) if properties else None, name=name)
    return reduced


def unsupported(field: str, device: str, basis: list[str] | None) -> QdtInputError:
    """The one error for ``fractional_gates = true`` on a device without native rx."""
    has = f"basis {', '.join(basis)}" if basis else "no fractional gates in its configuration"
    return QdtInputError(
        field,
        "a device whose basis has rx (fractional gates)",
        f"{device}: {has}",
        f"set fractional_gates = false for {device}, or pick a device with fractional gates: "
        "fake_fractional in local testing mode, a Heron device (ibm_<device>) on IBM Quantum",
    )


def check_native_rx(backend: Any, field: str) -> None:
    """Raise :func:`unsupported` unless ``backend``'s target has rx."""
    target = backend.target
    if not has_native_rx(target):
        raise unsupported(field, str(backend.name), basis_gates(target))
