"""Hybrid networks: the quantum layer's gradients, and the PennyLane front computing the same."""

import numpy as np
import pytest
import torch

from qdt.executors import open_backend
from qdt.experiments.pennylane_front import PennyLaneFront
from qdt.rl.quantum_layer import quantum_front


@pytest.mark.parametrize("width, layers", [(4, 1), (16, 6), (3, 2), (8, 3)])
def test_pennylane_front_equals_qdt_executor(width, layers):
    torch.manual_seed(width + layers)
    theirs = PennyLaneFront(width, layers)
    ours = quantum_front(width, layers, open_backend("statevector"))
    with torch.no_grad():
        ours.weight.copy_(theirs.layer.weights.reshape(-1)[: ours.weight.numel()])
    x = torch.randint(0, 2, (9, width)).double()
    x[0] = 0  # the all-zero observation
    np.testing.assert_allclose(theirs(x).detach(), ours(x).detach(), atol=1e-12)


def test_quantum_layer_gradients_reach_weights_and_inputs():
    layer = quantum_front(16, 2, open_backend("statevector"))
    x = torch.rand(5, 16, dtype=torch.float64, requires_grad=True)
    out = layer(x)
    out[:, 3].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0

    def as_function(inputs, weight):
        return layer.executor.run(layer.prepared, layer.vqc.angles(inputs), weight)

    weight = layer.weight.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(as_function, (x.detach().requires_grad_(True), weight))
