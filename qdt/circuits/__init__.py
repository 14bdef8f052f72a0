"""The paper's variational circuit, written once as a ``qiskit.QuantumCircuit``."""

from qdt.circuits.encoding import AmplitudeEncoder, append_amplitude_encoding, qubits_for_width
from qdt.circuits.vqc import VQC, build_vqc, ring_pairs

__all__ = [
    "VQC",
    "AmplitudeEncoder",
    "append_amplitude_encoding",
    "build_vqc",
    "qubits_for_width",
    "ring_pairs",
]
