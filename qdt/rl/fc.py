"""The fully connected stack of docs/design.md §2: in → 192 → 192 → 192 → out, ReLU between layers.

Paper counts (N = 4, M = 2): actor 4→192→192→192→4 has 960, 37056, 37056, 772 parameters;
critic 16→192→192→192→1 has 3264, 37056, 37056, 193. The layers are initialised on the CPU
(torch's CPU generator: the same initial weights on every device); ``module.to(device)`` moves them.
"""

from __future__ import annotations

import torch
from torch import nn

from qdt.sim.device import CPU

HIDDEN = 192
DEPTH = 3


def fc_stack(in_features: int, out_features: int, hidden: int = HIDDEN, depth: int = DEPTH) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden`` with ReLU, then a linear output layer."""
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden, dtype=torch.float64, device=CPU), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, out_features, dtype=torch.float64, device=CPU))
    return nn.Sequential(*layers)


def linear_parameter_counts(module: nn.Module) -> list[int]:
    """Parameter count of every ``nn.Linear`` in order (weights + biases)."""
    return [sum(p.numel() for p in m.parameters()) for m in module.modules() if isinstance(m, nn.Linear)]
