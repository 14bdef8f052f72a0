"""The paper's variational quantum circuit (Tariq et al., eqs. 15 and 27–29), built once.

Amplitude encoding of the input, then L layers of RX(w[l·n + i]) on every qubit i followed by a
cyclic ring of CZ: CZ(i, i+1 mod n) for n ≥ 3, a single CZ(0, 1) for n = 2 (the ring's two
CZs would cancel: CZ(0,1)·CZ(1,0) = I), none for n = 1. Weights: n·L (2 qubits: 2/6/12 for
L = 1/3/6; 4 qubits: 4/12/24). Every executor runs this one ``QuantumCircuit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector

from qdt.circuits.encoding import AmplitudeEncoder, append_amplitude_encoding, qubits_for_width
from qdt.errors import QdtInputError

MAX_QUBITS = 12
"""Most qubits Q of a VQC. The amplitude encoding prepares 2^Q amplitudes with 2^Q − 1 angles
(2^(Q+1) − 3 gates): at Q = 12 the VQC builds in about 0.2 s and the statevector executor
prepares it in 0.1 s, and every qubit more doubles the circuit. A critic reads 2·N·M values, so
a quantum agent trains on N·M ≤ 2048 pairs."""

MAX_LAYERS = 200
"""Most layers L of a VQC (33 times the paper's deepest, L = 6). Building and preparing the
circuit grow with L: on 4 qubits 0.03 s at L = 6 and 0.1 s at 200, at 12 qubits 0.5 s at 200."""


def check_qubits(value: object, field: str = "n_qubits") -> int:
    """``value`` as a qubit count from 1 to MAX_QUBITS, else a QdtInputError naming ``field``."""
    return _count(field, value, 1, "qubits Q: the encoding prepares 2^Q amplitudes", MAX_QUBITS, "qubits")


def check_layers(value: object, field: str = "n_layers") -> int:
    """``value`` as a layer count from 0 to MAX_LAYERS, else a QdtInputError naming ``field``."""
    return _count(
        field, value, 0, "layers L of RX + CZ ring", MAX_LAYERS, "layers; the paper's deepest circuit has 6"
    )


def _count(
    field: str, value: object, minimum: int, meaning: str, maximum: int | None = None, unit: str = ""
) -> int:
    """``value`` as an int from ``minimum`` (to ``maximum``), else a QdtInputError naming ``field``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        number = int(value)
        if number >= minimum and (maximum is None or number <= maximum):
            return number
    if maximum is None:
        raise QdtInputError(field, f"an integer >= {minimum} ({meaning})", value)
    raise QdtInputError(
        field, f"an integer from {minimum} to {maximum} ({meaning})", value, f"use at most {maximum} {unit}"
    )


@dataclass(frozen=True, eq=False)
class VQC:
    """The circuit, its two parameter vectors, its sizes and the input → angles function."""

    circuit: QuantumCircuit
    encoding_params: ParameterVector  # "enc": 2**n − 1 angles computed from the input
    weight_params: ParameterVector  # "w": n·L trainable RX angles, w[l·n + i]
    n_qubits: int
    n_layers: int
    input_width: int
    encoder: AmplitudeEncoder

    @property
    def n_encoding(self) -> int:
        return len(self.encoding_params)

    @property
    def n_weights(self) -> int:
        return len(self.weight_params)

    def angles(self, inputs: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Encoding angles [B, n_encoding] (differentiable; rejects non-finite inputs)."""
        return self.encoder(inputs)

    def feature_map(self, inputs: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The unnormalised amplitudes φ(x) [B, 2**n] the encoding prepares (normalised)."""
        return self.encoder.feature_map(inputs)

    def bound_circuit(self, angles: Sequence[float], weights: Sequence[float]) -> QuantumCircuit:
        """The circuit with one row of angles and the weights bound (for reference simulators)."""
        values = dict(zip(self.encoding_params, np.asarray(angles, dtype=float).tolist()))
        values.update(zip(self.weight_params, np.asarray(weights, dtype=float).tolist()))
        return self.circuit.assign_parameters(values)


def ring_pairs(n_qubits: int) -> list[tuple[int, int]]:
    """CZ pairs of one layer's ring: none (n = 1), one (n = 2), n (n >= 3)."""
    if n_qubits == 1:
        return []
    if n_qubits == 2:
        return [(0, 1)]
    return [(i, (i + 1) % n_qubits) for i in range(n_qubits)]


def build_vqc(input_width: int, n_layers: int, n_qubits: int | None = None) -> VQC:
    """The paper's VQC for inputs of ``input_width`` features and ``n_layers`` layers.

    ``n_qubits`` defaults to max(1, ceil(log2(input_width))); more qubits pad with zeros.
    Sizes beyond MAX_QUBITS and MAX_LAYERS are refused before anything is built.
    """
    width = _count("input_width", input_width, 1, "the number of input features")
    layers = check_layers(n_layers)
    needed = qubits_for_width(width)
    if needed > MAX_QUBITS:
        raise QdtInputError(
            "input_width",
            f"at most 2^{MAX_QUBITS} = {2**MAX_QUBITS} input features (a VQC has <= {MAX_QUBITS} qubits)",
            width,
            "a quantum agent's actor reads N values and its critic 2·N·M: use an instance with "
            f"N·M <= {2 ** (MAX_QUBITS - 1)}, or --agent classical",
        )
    if n_qubits is None:
        qubits = needed
    else:
        qubits = check_qubits(n_qubits)
        if qubits < needed:
            raise QdtInputError(
                "n_qubits",
                f"at least {needed} qubits for {width} input features (2**Q >= width)",
                n_qubits,
                f"use n_qubits >= {needed} or leave it unset",
            )
    encoding = ParameterVector("enc", 2**qubits - 1)
    weights = ParameterVector("w", qubits * layers)
    circuit = QuantumCircuit(qubits, name=f"vqc_q{qubits}_l{layers}")
    append_amplitude_encoding(circuit, encoding, qubits)
    for layer in range(layers):
        for i in range(qubits):
            circuit.rx(weights[layer * qubits + i], i)
        for a, b in ring_pairs(qubits):
            circuit.cz(a, b)
    return VQC(
        circuit=circuit,
        encoding_params=encoding,
        weight_params=weights,
        n_qubits=qubits,
        n_layers=layers,
        input_width=width,
        encoder=AmplitudeEncoder.create(width, qubits),
    )
