"""Actor and critic networks (docs/design.md §2): an optional quantum front end, then the FC stack.

Actor j:  s^j (its column of X, N bits) → [observation features, W] → [VQC probabilities, 2^q]
          → FC → sigmoid → â^j ∈ [0, 1]^N
Critic:   v = (s^1..s^M, a^1..a^M) (2MN values; trained on a family, then the instance's L and
          c_ij/C_j, 2MN more) → [VQC probabilities] → FC → Q(v)
Without a front end (the classical baseline) the FC stack reads the raw input. Without
observation features (``observation = "column"``, not shared) the actor reads its column as is.
An actor takes the column and the agent it acts for: a shared actor serves every agent, a
per-agent actor defaults to its own (``agent``).
"""

from __future__ import annotations

import torch
from torch import nn

from qdt.rl.fc import HIDDEN, fc_stack
from qdt.rl.observations import InstanceContext, ObservationFeatures
from qdt.rl.quantum_layer import QuantumLayer


class Actor(nn.Module):
    def __init__(
        self,
        front: nn.Module | None,
        front_width: int,
        n_actions: int,
        hidden: int = HIDDEN,
        *,
        features: ObservationFeatures | None = None,
        agent: int = 0,
    ) -> None:
        super().__init__()
        self.front = front if front is not None else nn.Identity()
        self.body = fc_stack(front_width, n_actions, hidden)
        self.features = features
        self.agent = agent

    @property
    def deterministic(self) -> bool:
        """Whether the same inputs always give the same scores: a classical front, or a circuit on an
        executor that computes exactly (no shots)."""
        return not (isinstance(self.front, QuantumLayer) and self.front.executor.capabilities.shots)

    def inputs(
        self,
        state: torch.Tensor,
        agent: int | torch.Tensor | None = None,
        context: InstanceContext | None = None,
    ) -> torch.Tensor:
        """What the front end reads for columns ``state`` [B, N] of ``agent`` (default: its own),
        each row of instance ``context`` when given (family training), else of the actor's own."""
        if self.features is None:
            return state
        return self.features(state, self.agent if agent is None else agent, context)

    def front_inputs(
        self,
        state: torch.Tensor,
        agent: int | torch.Tensor | None = None,
        context: InstanceContext | None = None,
    ) -> torch.Tensor:
        """What the front end (a circuit's encoding) reads for columns ``state`` [B, N], as rows
        [R, W]: one per column, or, with per-user inputs [B, N, W] (``observation = "user"``), one
        per column and user (R = B·N, row b·N + i)."""
        x = self.inputs(state, agent, context)
        return x.reshape(-1, x.shape[-1]) if x.ndim == 3 else x

    def logits_from(self, front_output: torch.Tensor, batch: int) -> torch.Tensor:
        """z [B, N] from the front end's outputs on :meth:`front_inputs`' rows (its FC body, and the
        users folded back when the rows were per user)."""
        return self.body(front_output).reshape(batch, -1)  # [B, N] already, or [B·N, 1]

    def logits(
        self,
        state: torch.Tensor,
        agent: int | torch.Tensor | None = None,
        context: InstanceContext | None = None,
    ) -> torch.Tensor:
        """Pre-activation outputs z [B, N]; the policy is sigmoid(z)."""
        return self.logits_from(self.front(self.front_inputs(state, agent, context)), state.shape[0])

    def forward(
        self,
        state: torch.Tensor,
        agent: int | torch.Tensor | None = None,
        context: InstanceContext | None = None,
    ) -> torch.Tensor:
        return torch.sigmoid(self.logits(state, agent, context))


class Critic(nn.Module):
    def __init__(self, front: nn.Module | None, front_width: int, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.front = front if front is not None else nn.Identity()
        self.body = fc_stack(front_width, 1, hidden)

    def forward(self, joint: torch.Tensor) -> torch.Tensor:
        return self.body(self.front(joint)).squeeze(-1)
