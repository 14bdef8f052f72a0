"""``QuantumLayer``: a torch module around one executor running one VQC.

The layer owns the circuit's trainable weights (RX angles, initialised uniformly in [0, 2π) as
PennyLane's TorchLayer does); its input is the raw feature vector, which the VQC's amplitude
encoding turns into angles in torch, so gradients reach the input. The whole batch goes to the
executor in one call.

**Input scaling** (``input_scaling=True``; ``TrainConfig.input_scaling = "affine"``, recipe v5): the
layer also owns a scale a and a shift b per input, and the encoding reads a ⊙ x + b instead of x.
They start at a = 1, b = 0 (the same circuit outputs as without), are trained with the classical
weights, and mix nothing: every input still reaches the FC layers only through the circuit's
probabilities. Trainable input scaling is how Jerbi et al. (NeurIPS 2021) and Skolik et al.
(Quantum 2022) made variational policies learn; here it lets the encoding resolve the small
differences in capacity and shares that the amplitude encoding of x itself (2x − 1, normalised)
compresses (qdt/rl/construct.py, "Why v5", has the measurements).

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
    CIRCUIT_WEIGHT = "weight"
    """The name of the circuit's weights (the RX angles), the parameters ``lr_quantum`` applies to."""

    def __init__(
        self, vqc: VQC, executor: Executor, readout: str = "probs", input_scaling: bool = False
    ) -> None:
        super().__init__()
        self.vqc = vqc
        self.executor = executor
        self.readout = readout
        self.prepared = executor.prepare_vqc(vqc)
        self.weight = nn.Parameter(torch.rand(vqc.n_weights, dtype=torch.float64, device=CPU) * (2 * math.pi))
        self.input_scale: nn.Parameter | None = None
        self.input_shift: nn.Parameter | None = None
        if input_scaling:
            self.input_scale = nn.Parameter(torch.ones(vqc.input_width, dtype=torch.float64, device=CPU))
            self.input_shift = nn.Parameter(torch.zeros(vqc.input_width, dtype=torch.float64, device=CPU))

    @property
    def output_width(self) -> int:
        return 2**self.vqc.n_qubits if self.readout == "probs" else self.vqc.n_qubits

    def scaled(self, inputs: torch.Tensor) -> torch.Tensor:
        """What the encoding reads for ``inputs`` [B, W]: a ⊙ x + b with input scaling, else x."""
        if self.input_scale is None or self.input_shift is None:
            return inputs
        x = torch.as_tensor(inputs, dtype=torch.float64, device=self.input_scale.device)
        return torch.addcmul(self.input_shift, x, self.input_scale)  # one call, not two

    def angles(self, inputs: torch.Tensor) -> torch.Tensor:
        """The encoding angles [B, n_encoding] of ``inputs`` [B, W] (after the input scaling): what a
        caller that submits its own PUBs (``qdt infer``, the devices bench) binds to the circuit."""
        return self.vqc.angles(self.scaled(inputs))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        inputs = self.scaled(inputs)
        device = inputs.device if isinstance(inputs, torch.Tensor) else CPU  # numpy inputs are on the CPU
        encoder = on_device(self.vqc.encoder, device)
        return self.executor.run_encoded(self.prepared, encoder, inputs, self.weight, readout=self.readout)

    def extra_repr(self) -> str:
        return (
            f"qubits={self.vqc.n_qubits}, layers={self.vqc.n_layers}, inputs={self.vqc.input_width}, "
            f"readout={self.readout}, executor={type(self.executor).__name__}"
            + (", input scaling" if self.input_scale is not None else "")
        )


def quantum_front(
    input_width: int, layers: int, executor: Executor, input_scaling: bool = False
) -> QuantumLayer:
    """The paper's VQC on ceil(log2(input_width)) qubits with L layers, probabilities readout (with
    a trainable scale and shift per input before the encoding when ``input_scaling``)."""
    return QuantumLayer(
        build_vqc(input_width=input_width, n_layers=layers), executor, input_scaling=input_scaling
    )
