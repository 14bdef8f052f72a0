"""``QuantumLayer``: a torch module around one executor running one VQC.

The layer owns the circuit's trainable weights (RX angles, initialised uniformly in [0, 2π) as
PennyLane's TorchLayer does); its input is the raw feature vector, which the VQC's amplitude
encoding turns into angles in torch, so gradients reach the input. The whole batch goes to the
executor in one call.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from qdt.circuits import VQC, build_vqc
from qdt.executors import Executor


class QuantumLayer(nn.Module):
    def __init__(self, vqc: VQC, executor: Executor, readout: str = "probs") -> None:
        super().__init__()
        self.vqc = vqc
        self.executor = executor
        self.readout = readout
        self.prepared = executor.prepare_vqc(vqc)
        self.weight = nn.Parameter(torch.rand(vqc.n_weights, dtype=torch.float64) * (2 * math.pi))

    @property
    def output_width(self) -> int:
        return 2**self.vqc.n_qubits if self.readout == "probs" else self.vqc.n_qubits

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.executor.run(self.prepared, self.vqc.angles(inputs), self.weight, readout=self.readout)

    def extra_repr(self) -> str:
        return (
            f"qubits={self.vqc.n_qubits}, layers={self.vqc.n_layers}, inputs={self.vqc.input_width}, "
            f"readout={self.readout}, executor={type(self.executor).__name__}"
        )


def quantum_front(input_width: int, layers: int, executor: Executor) -> QuantumLayer:
    """The paper's VQC on ceil(log2(input_width)) qubits with L layers, probabilities readout."""
    return QuantumLayer(build_vqc(input_width=input_width, n_layers=layers), executor)
