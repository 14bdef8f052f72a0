"""What an actor reads (``TrainConfig.observation``) and how its input is built from its column of X.

Agent j's observation is always derived from its own column X[:, j] (which users its server
hosts) and the instance, so that every policy can be scored on a batch of columns, and the whole
observation space of a small instance (2^N columns) in one call.

* ``column`` (v1, the paper's s^j): the N bits of X[:, j].
* ``features``: X[:, j], then every user's normalised latency row, then its server's remaining
  capacity and user slots, N + N·M + 2 values in [0, 1]:

  - latency: L_ik = min_k' T_ik' / T_ik for the servers k that meet user i's deadline (1 on the
    user's fastest server), 0 on those that do not; row i lists the servers from j on
    (j, j+1, …, j−1), so the same numbers tell agent j where it stands;
  - remaining capacity max(0, 1 − Σ_i x_ij c_ij / C_j) and slots max(0, 1 − Σ_i x_ij / M_j).

With ``sharing = "shared"`` one actor acts for every agent, so its input ends with agent j's
one-hot code (M values). A quantum actor's width follows: ⌈log2 W⌉ qubits for W inputs (amplitude
encoding, docs/design.md §3): 64 users × 8 servers read 578 features + 8 (10 qubits).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from qdt.problem.model import PlacementModel

OBSERVATIONS = ("column", "features")


def observation_width(kind: str, n_users: int, n_servers: int, shared: bool) -> int:
    """Inputs of an actor: N for ``column``, N + N·M + 2 for ``features``, + M when shared."""
    width = n_users if kind == "column" else n_users + n_users * n_servers + 2
    return width + (n_servers if shared else 0)


def normalised_latency(model: PlacementModel) -> np.ndarray:
    """L [N, M]: min_k T_ik / T_ij where user i meets its deadline on j, else 0."""
    fastest = model.latency.min(axis=1, keepdims=True)
    return np.where(model.deadline_ok, fastest / model.latency, 0.0)


class ObservationFeatures(nn.Module):
    """Columns X[:, j] [B, N] → the actor's input [B, W] (module docstring). No trainable weights;
    its tables are rebuilt from the instance, so they are not part of a checkpoint."""

    static: torch.Tensor  # [M, S]: agent j's latency rows (features), then its one-hot code (shared)
    load: torch.Tensor  # [M, N]: c_ij / C_j
    slot: torch.Tensor  # [M]: 1 / M_j

    def __init__(self, kind: str, model: PlacementModel, shared: bool) -> None:
        super().__init__()
        if kind not in OBSERVATIONS:
            raise ValueError(f"unknown observation {kind!r}")
        n, m = model.n_users, model.n_servers
        self.kind = kind
        self.shared = shared
        self.width = observation_width(kind, n, m, shared)
        static = []
        if kind == "features":
            latency = normalised_latency(model)
            static.append(np.stack([np.roll(latency, -j, axis=1).reshape(-1) for j in range(m)]))
        if shared:
            static.append(np.eye(m))
        table = np.concatenate(static, axis=1) if static else np.zeros((m, 0))
        self.register_buffer("static", torch.from_numpy(table.astype(np.float64)), persistent=False)
        rates = model.compute_rate / model.capacity[None, :]  # c_ij / C_j
        self.register_buffer("load", torch.from_numpy(rates.T.copy()), persistent=False)  # [M, N]
        slots = 1.0 / model.max_users.astype(np.float64)
        self.register_buffer("slot", torch.from_numpy(slots), persistent=False)  # [M]

    def forward(self, columns: torch.Tensor, agent: int | torch.Tensor) -> torch.Tensor:
        """``columns`` [B, N] of the agents ``agent`` (one index, or one per row [B])."""
        if self.kind == "column" and not self.shared:
            return columns
        if isinstance(agent, int):
            agent = torch.full((columns.shape[0],), agent, dtype=torch.long, device=columns.device)
        parts = [columns]
        if self.kind == "features":
            static = self.static[agent]
            width = static.shape[1] - (self.static.shape[0] if self.shared else 0)
            capacity = torch.clamp(1.0 - (columns * self.load[agent]).sum(dim=1, keepdim=True), min=0.0)
            slots = torch.clamp(1.0 - columns.sum(dim=1, keepdim=True) * self.slot[agent][:, None], min=0.0)
            parts += [static[:, :width], capacity, slots, static[:, width:]]
        else:
            parts.append(self.static[agent])
        return torch.cat(parts, dim=1)
