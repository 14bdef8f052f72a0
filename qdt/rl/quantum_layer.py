"""``QuantumLayer``: a torch module around one executor running one VQC.

The layer owns the circuit's trainable weights (RX angles, initialised uniformly in [0, 2π) as
PennyLane's TorchLayer does); its input is the raw feature vector, which the VQC's amplitude
encoding turns into angles in torch, so gradients reach the input. The whole batch goes to the
executor in one call.

Devices: the weights are drawn on the CPU (torch's CPU generator, so a run starts from the same
weights on every device) and follow ``module.to(device)`` as any parameter. The encoder's and the
compiled circuit's constant tables are not module state: they are made on the CPU when the
circuit is prepared and copied once to the device of the inputs on the first call there
(``qdt/sim/device.py``); the torch executors then compute on that device, and any other executor
(Aer, a device) gets CPU inputs and returns its output on the inputs' device
(``qdt/executors/base.py``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from qdt.circuits import VQC, build_vqc
from qdt.executors import Executor
from qdt.sim.device import CPU, on_device


class QuantumLayer(nn.Module):
    def __init__(self, vqc: VQC, executor: Executor, readout: str = "probs") -> None:
        super().__init__()
        self.vqc = vqc
        self.executor = executor
        self.readout = readout
        self.prepared = executor.prepare_vqc(vqc)
        self.weight = nn.Parameter(torch.rand(vqc.n_weights, dtype=torch.float64, device=CPU) * (2 * math.pi))

    @property
    def output_width(self) -> int:
        return 2**self.vqc.n_qubits if self.readout == "probs" else self.vqc.n_qubits

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        device = inputs.device if isinstance(inputs, torch.Tensor) else CPU  # numpy inputs are on the CPU
        encoder = on_device(self.vqc.encoder, device)
        return self.executor.run_encoded(self.prepared, encoder, inputs, self.weight, readout=self.readout)

    def extra_repr(self) -> str:
        return (
            f"qubits={self.vqc.n_qubits}, layers={self.vqc.n_layers}, inputs={self.vqc.input_width}, "
            f"readout={self.readout}, executor={type(self.executor).__name__}"
        )


def quantum_front(input_width: int, layers: int, executor: Executor) -> QuantumLayer:
    """The paper's VQC on ceil(log2(input_width)) qubits with L layers, probabilities readout."""
    return QuantumLayer(build_vqc(input_width=input_width, n_layers=layers), executor)
