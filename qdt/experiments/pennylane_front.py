"""The paper's own stack for comparison: the same VQC written natively in PennyLane.

``AmplitudeEmbedding`` of qdt's feature map φ(x) (never the zero vector, so ``normalize=True``
is safe), then L layers of RX and the CZ ring, then the probabilities, on ``default.qubit``
with backprop inside a ``qml.qnn.TorchLayer`` (the setup of the paper, §5.1). Wires are listed
most significant first so that the probability vector uses Qiskit's bit order and equals qdt's
executors' output for the same weights (tested).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from qdt.circuits import build_vqc, ring_pairs
from qdt.errors import QdtInputError


class PennyLaneFront(nn.Module):
    """``device`` and ``diff_method`` choose another PennyLane simulator (``lightning.qubit`` with
    ``adjoint`` in benchmarks/width_sweep.py); ``readout="expval_z"`` returns ⟨Z_i⟩ per qubit
    instead of the probabilities (adjoint differentiation takes expectation values only)."""

    def __init__(
        self,
        input_width: int,
        layers: int,
        device: str = "default.qubit",
        diff_method: str = "backprop",
        readout: str = "probs",
    ) -> None:
        super().__init__()
        try:
            import pennylane as qml
        except ImportError as error:
            raise QdtInputError(
                "pennylane",
                "PennyLane installed (the peer stack this comparison times)",
                f"not importable ({error})",
                "pip install 'qdt[peers]', or ./install.sh in a checkout",
            ) from None

        self.vqc = build_vqc(input_width=input_width, n_layers=layers)
        n = self.vqc.n_qubits
        order = list(range(n - 1, -1, -1))  # qiskit qubit n-1 is the most significant
        pairs = ring_pairs(n)

        @qml.qnode(qml.device(device, wires=n), interface="torch", diff_method=diff_method)
        def circuit(inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
            qml.AmplitudeEmbedding(inputs, wires=order, normalize=True)
            for layer in range(layers):
                for qubit in range(n):
                    qml.RX(weights[layer * n + qubit], wires=qubit)
                for control, target in pairs:
                    qml.CZ(wires=[control, target])
            if readout == "expval_z":
                return [qml.expval(qml.PauliZ(q)) for q in range(n)]
            return qml.probs(wires=order)

        self.layer = qml.qnn.TorchLayer(
            circuit,
            {"weights": max(1, n * layers)},
            init_method=lambda t: nn.init.uniform_(t, 0.0, 2 * math.pi),
        )
        self.layer.double()
        self.output_width = n if readout == "expval_z" else 2**n

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layer(self.vqc.feature_map(inputs))
