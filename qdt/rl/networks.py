"""Actor and critic networks (docs/design.md §2): an optional quantum front end, then the FC stack.

Actor j:  s^j (N bits) → [VQC probabilities, 2^q] → FC → sigmoid → â^j ∈ [0, 1]^N
Critic j: v = (s^1..s^M, a^1..a^M) (2MN values) → [VQC probabilities] → FC → Q(v)
Without a front end (the classical baseline) the FC stack reads the raw input.
"""

from __future__ import annotations

import torch
from torch import nn

from qdt.rl.fc import HIDDEN, fc_stack


class Actor(nn.Module):
    def __init__(
        self, front: nn.Module | None, front_width: int, n_actions: int, hidden: int = HIDDEN
    ) -> None:
        super().__init__()
        self.front = front if front is not None else nn.Identity()
        self.body = fc_stack(front_width, n_actions, hidden)

    def logits(self, state: torch.Tensor) -> torch.Tensor:
        """Pre-activation outputs z; the policy is sigmoid(z)."""
        return self.body(self.front(state))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(state))


class Critic(nn.Module):
    def __init__(self, front: nn.Module | None, front_width: int, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.front = front if front is not None else nn.Identity()
        self.body = fc_stack(front_width, 1, hidden)

    def forward(self, joint: torch.Tensor) -> torch.Tensor:
        return self.body(self.front(joint)).squeeze(-1)
