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

* ``user``: the same numbers, read user by user. Agent j's actor reads, for each user i, the row
  [x_ij, L_ij, L_i(j+1), …, L_i(j−1), c_ij / C_j, remaining capacity of j, remaining slots of j,
  pressure on every server from j on] (3M + 4 values, the same width at every N) and gives that
  user's score: one set of weights scores every user and every server, so the policy does not
  depend on the users' order or number, which is what a policy trained on a family and placed
  on unseen instances needs. A server's *pressure* (:func:`server_pressure`) is the load and the
  user slots it would carry if every user went to its fastest server: what a user's row alone
  cannot tell, whether its favourite server will be contested. Its input is [B, N, 3M + 4]; the
  actor folds the users into the batch (B·N rows).

With ``sharing = "shared"`` one actor acts for every agent, so its input (``column`` and
``features``) ends with agent j's one-hot code (M values); a ``user`` actor reads j's own latency
first instead, the same for every j.

Trained on one instance, the tables come from that instance (buffers built once). Trained on a
family (a new instance per environment and episode), every row carries its instance's
:class:`InstanceContext` (L, c_ij/C_j and 1/M_j), and the same features are built from it; the
critic then reads L and c_ij/C_j beside the joint state and action (:func:`context_vector`).

* ``placement`` (the ``construct`` decoding's, ``qdt/rl/construct.py``): a placement built user by
  user reads the whole partial placement. For each unplaced user i and server j, the row lists, for
  the servers k from j on: L_ik, c_ik / C_k and whether user i still fits on k (deadline, a free
  slot, the capacity); then each server's remaining capacity and slots, and the load and slots the
  unplaced users would take if each went to its fastest server that still fits it (the pressure of
  what is left); then the share of users still unplaced: 7M + 1 values
  (:func:`qdt.rl.placement_observation.placement_rows`). One logit per row: [B, N, M, 7M + 1] in,
  [B, N, M] out.

A quantum actor's width follows: ⌈log2 W⌉ qubits for W inputs (amplitude encoding,
docs/design.md §3): 64 users × 8 servers read 578 features + 8 (10 qubits).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from qdt.problem.model import PlacementModel

OBSERVATIONS = ("column", "features", "user", "placement")
INSTANCE_OBSERVATIONS = ("features", "user", "placement")
"""Observations that read the instance (the ones a family run can train with)."""

SLOT_EPSILON = 1e-9
"""Slack when comparing a server's remaining slots (multiples of 1 / M_j) with one slot."""


@dataclass(frozen=True)
class InstanceContext:
    """What an actor and a critic read of each row's instance, as tensors with a leading batch
    dimension B: ``latency`` L [B, N, M] (:func:`normalised_latency`), ``load`` c_ij / C_j
    [B, N, M] and ``slot`` 1 / M_j [B, M]."""

    latency: torch.Tensor
    load: torch.Tensor
    slot: torch.Tensor

    @property
    def batch(self) -> int:
        return int(self.latency.shape[0])

    def rows(self, index: torch.Tensor) -> InstanceContext:
        """The contexts of rows ``index`` (e.g. each joint state repeated once per agent)."""
        return InstanceContext(self.latency[index], self.load[index], self.slot[index])


def context_arrays(model: PlacementModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One instance's context as float64 arrays: L [N, M], c_ij / C_j [N, M], 1 / M_j [M]."""
    return (
        normalised_latency(model),
        model.compute_rate / model.capacity[None, :],
        1.0 / model.max_users.astype(np.float64),
    )


def context_of(models: list[PlacementModel], device: torch.device | str = "cpu") -> InstanceContext:
    """The stacked contexts of ``models`` (one per row) on ``device``."""
    return stacked_context([context_arrays(model) for model in models], device)


def stacked_context(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], device: torch.device | str = "cpu"
) -> InstanceContext:
    """One row per :func:`context_arrays` triple, as tensors on ``device``."""
    return InstanceContext(*(torch.from_numpy(np.stack([p[i] for p in parts])).to(device) for i in range(3)))


def context_width(n_users: int, n_servers: int) -> int:
    """What a critic reads of a row's instance: L and c_ij / C_j, 2·N·M values."""
    return 2 * n_users * n_servers


def context_vector(context: InstanceContext) -> torch.Tensor:
    """[B, 2NM]: L then c_ij / C_j, each server-major like the critic's joint input."""
    batch = context.batch
    return torch.cat(
        [context.latency.transpose(1, 2).reshape(batch, -1), context.load.transpose(1, 2).reshape(batch, -1)],
        dim=1,
    )


def observation_width(kind: str, n_users: int, n_servers: int, shared: bool) -> int:
    """Inputs of an actor: N for ``column``, N + N·M + 2 for ``features``, + M when shared;
    3M + 4 per user for ``user`` (shared or not); 7M + 1 per user and server for ``placement``."""
    if kind == "user":
        return 3 * n_servers + 4
    if kind == "placement":
        return 7 * n_servers + 1
    width = n_users if kind == "column" else n_users + n_users * n_servers + 2
    return width + (n_servers if shared else 0)


def normalised_latency(model: PlacementModel) -> np.ndarray:
    """L [N, M]: min_k T_ik / T_ij where user i meets its deadline on j, else 0."""
    fastest = model.latency.min(axis=1, keepdims=True)
    return np.where(model.deadline_ok, fastest / model.latency, 0.0)


class ObservationFeatures(nn.Module):
    """Columns X[:, j] [B, N] → the actor's input [B, W] ([B, N, 3M + 4] for ``user``: module
    docstring). No trainable weights; its tables are rebuilt from the instance, so they are not
    part of a checkpoint."""

    static: torch.Tensor  # [M, S]: agent j's latency rows (features), then its one-hot code (shared)
    load: torch.Tensor  # [M, N]: c_ij / C_j
    slot: torch.Tensor  # [M]: 1 / M_j

    def __init__(self, kind: str, model: PlacementModel, shared: bool) -> None:
        super().__init__()
        if kind not in OBSERVATIONS:
            raise ValueError(f"unknown observation {kind!r}")
        n, m = model.n_users, model.n_servers
        self.kind = kind
        self.width = observation_width(kind, n, m, shared)
        self.shared = shared and kind != "user"
        static = []
        if kind in INSTANCE_OBSERVATIONS:
            latency = normalised_latency(model)
            static.append(np.stack([np.roll(latency, -j, axis=1).reshape(-1) for j in range(m)]))
        if self.shared:
            static.append(np.eye(m))
        table = np.concatenate(static, axis=1) if static else np.zeros((m, 0))
        self.register_buffer("static", torch.from_numpy(table.astype(np.float64)), persistent=False)
        if kind == "user":  # each server's pressure, as agent j sees the servers (from j on)
            latency, load, slot = (torch.from_numpy(a)[None] for a in context_arrays(model))
            pressure = server_pressure(latency, load, slot)[0]  # [2, M]
            rolled = torch.stack([torch.roll(pressure, -j, dims=1).reshape(-1) for j in range(m)])
            self.register_buffer("pressure", rolled, persistent=False)  # [M, 2M]
        rates = model.compute_rate / model.capacity[None, :]  # c_ij / C_j
        self.register_buffer("load", torch.from_numpy(rates.T.copy()), persistent=False)  # [M, N]
        slots = 1.0 / model.max_users.astype(np.float64)
        self.register_buffer("slot", torch.from_numpy(slots), persistent=False)  # [M]

    def forward(
        self, columns: torch.Tensor, agent: int | torch.Tensor, context: InstanceContext | None = None
    ) -> torch.Tensor:
        """``columns`` [B, N] of the agents ``agent`` (one index, or one per row [B]); ``context``
        (one per row) replaces the instance the tables were built from."""
        if self.kind == "column" and not self.shared:
            return columns
        if isinstance(agent, int):
            agent = torch.full((columns.shape[0],), agent, dtype=torch.long, device=columns.device)
        if self.kind == "user":
            return self._per_user(columns, agent, context)
        parts = [columns]
        code = self.static[agent][:, self.static.shape[1] - self.static.shape[0] :] if self.shared else None
        if self.kind == "features":
            if context is None:
                static = self.static[agent]
                width = static.shape[1] - (self.static.shape[0] if self.shared else 0)
                rows, load, slot = static[:, :width], self.load[agent], self.slot[agent]
            else:
                rows, load, slot = _context_features(context, agent)
            capacity = torch.clamp(1.0 - (columns * load).sum(dim=1, keepdim=True), min=0.0)
            slots = torch.clamp(1.0 - columns.sum(dim=1, keepdim=True) * slot[:, None], min=0.0)
            parts += [rows, capacity, slots]
        if code is not None:
            parts.append(code)
        return torch.cat(parts, dim=1)

    def _per_user(
        self, columns: torch.Tensor, agent: torch.Tensor, context: InstanceContext | None
    ) -> torch.Tensor:
        """[B, N, 3M + 4]: each user's x_ij, latency row from j on, c_ij / C_j, j's remaining
        capacity and slots, and the servers' pressure from j on."""
        batch, n = columns.shape
        if context is None:
            rows, load, slot = self.static[agent], self.load[agent], self.slot[agent]
            pressure = self.pressure[agent]
        else:
            rows, load, slot = _context_features(context, agent)
            m = context.latency.shape[2]
            order = (torch.arange(m, device=agent.device)[None, :] + agent[:, None]) % m  # [B, M]
            both = server_pressure(context.latency, context.load, context.slot)  # [B, 2, M]
            pressure = torch.gather(both, 2, order[:, None, :].expand(-1, 2, m)).reshape(batch, 2 * m)
        capacity = torch.clamp(1.0 - (columns * load).sum(dim=1, keepdim=True), min=0.0)
        slots = torch.clamp(1.0 - columns.sum(dim=1, keepdim=True) * slot[:, None], min=0.0)
        return torch.cat(
            [
                columns[:, :, None],
                rows.reshape(batch, n, -1),
                load[:, :, None],
                capacity[:, :, None].expand(batch, n, 1),
                slots[:, :, None].expand(batch, n, 1),
                pressure[:, None, :].expand(batch, n, pressure.shape[1]),
            ],
            dim=2,
        )


def server_pressure(latency: torch.Tensor, load: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
    """[B, 2, M]: how contested each server is if every user went to its fastest server that meets
    its deadline: the load Σ_i c_ij / C_j and the user slots Σ_i 1 / M_j those users would take
    (above 1: the server cannot hold them all), from L [B, N, M], c_ij / C_j [B, N, M] and 1 / M_j
    [B, M]."""
    best = torch.nn.functional.one_hot(latency.argmax(dim=2), latency.shape[2]).to(latency.dtype)
    best = best * (latency.amax(dim=2, keepdim=True) > 0)  # a user that meets no deadline counts nowhere
    return torch.stack([(best * load).sum(dim=1), best.sum(dim=1) * slot], dim=1)


def _context_features(
    context: InstanceContext, agent: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row: agent j's latency rows (servers from j on, as the tables hold them) [B, N·M], its
    c_ij / C_j [B, N] and 1 / M_j [B], from each row's own instance."""
    batch, n, m = context.latency.shape
    order = (torch.arange(m, device=agent.device)[None, :] + agent[:, None]) % m  # [B, M]
    rows = torch.gather(context.latency, 2, order[:, None, :].expand(batch, n, m)).reshape(batch, n * m)
    load = torch.gather(context.load, 2, agent[:, None, None].expand(batch, n, 1))[:, :, 0]
    slot = torch.gather(context.slot, 1, agent[:, None])[:, 0]
    return rows, load, slot
