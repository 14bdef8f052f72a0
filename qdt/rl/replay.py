"""Replay memory of joint transitions (X, A, r, X'): the placement before, the joint action (binary
columns, or the agents' scores when actions are decoded by argmax), the shared reward and the
placement after (equal to A under the paper's rounding). The memory is numpy on the CPU; a sampled
batch is moved to the networks' device."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray


class ReplayMemory:
    def __init__(self, capacity: int, n_users: int, n_servers: int) -> None:
        self.capacity = capacity
        self.states = np.zeros((capacity, n_users, n_servers), dtype=np.int8)
        self.actions = np.zeros((capacity, n_users, n_servers), dtype=np.float64)
        self.next_states = np.zeros((capacity, n_users, n_servers), dtype=np.int8)
        self.rewards = np.zeros(capacity, dtype=np.float64)
        self.position = 0
        self.size = 0

    def add(
        self,
        state: NDArray[np.int8],
        action: NDArray[np.float64],
        reward: float,
        next_state: NDArray[np.int8],
    ) -> None:
        self.states[self.position] = state
        self.actions[self.position] = action
        self.next_states[self.position] = next_state
        self.rewards[self.position] = reward
        self.position = (self.position + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(
        self, rng: np.random.Generator, batch_size: int, device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """A uniform batch as float64 tensors on ``device`` (default the CPU): states, actions
        [B, N, M], rewards [B], next states."""
        index = rng.integers(0, self.size, size=batch_size)
        arrays = (
            self.states[index].astype(np.float64),
            self.actions[index],
            self.rewards[index],
            self.next_states[index].astype(np.float64),
        )
        states, actions, rewards, next_states = (torch.from_numpy(a).to(device or "cpu") for a in arrays)
        return states, actions, rewards, next_states

    def state_dict(self) -> dict[str, object]:
        return {
            "states": torch.from_numpy(self.states.copy()),
            "actions": torch.from_numpy(self.actions.copy()),
            "next_states": torch.from_numpy(self.next_states.copy()),
            "rewards": torch.from_numpy(self.rewards.copy()),
            "position": self.position,
            "size": self.size,
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        states = state["states"]
        assert isinstance(states, torch.Tensor)
        if tuple(states.shape) != self.states.shape:
            raise ValueError(f"replay memory shape {tuple(states.shape)} != {self.states.shape}")
        self.states[...] = states.numpy()
        self.actions[...] = state["actions"].numpy()  # type: ignore[union-attr]
        self.next_states[...] = state["next_states"].numpy()  # type: ignore[union-attr]
        self.rewards[...] = state["rewards"].numpy()  # type: ignore[union-attr]
        self.position = int(state["position"])  # type: ignore[call-overload]
        self.size = int(state["size"])  # type: ignore[call-overload]
