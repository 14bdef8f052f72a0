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


def _count(field: str, value: object, minimum: int, meaning: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise QdtInputError(field, f"an integer >= {minimum} ({meaning})", value)
    return int(value)


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
    """
    width = _count("input_width", input_width, 1, "the number of input features")
    layers = _count("n_layers", n_layers, 0, "the number of RX + CZ-ring layers")
    needed = qubits_for_width(width)
    if n_qubits is None:
        qubits = needed
    else:
        qubits = _count("n_qubits", n_qubits, 1, "the number of qubits Q")
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
