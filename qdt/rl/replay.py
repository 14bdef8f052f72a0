"""Replay memory of joint transitions (X, A, r, X'): the placement before, the joint action (binary
columns, or the agents' scores when actions are decoded by argmax), the shared reward and the
placement after (equal to A under the paper's rounding). The memory is numpy on the CPU; a sampled
batch is moved to the networks' device.

Trained on a family of instances, every transition also names its instance: the instances'
contexts (:class:`qdt.rl.observations.InstanceContext`: L, c_ij/C_j, 1/M_j) sit in a ring of their
own, one entry per environment and episode, and a transition holds its entry's index. The ring has
room for every instance a full memory can refer to (``contexts``), so an entry is only
overwritten once no stored transition refers to it."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

from qdt.rl.observations import InstanceContext


class ReplayMemory:
    def __init__(self, capacity: int, n_users: int, n_servers: int, contexts: int = 0) -> None:
        """``contexts``: size of the instance-context ring (0: every transition is of one instance)."""
        self.capacity = capacity
        self.states = np.zeros((capacity, n_users, n_servers), dtype=np.int8)
        self.actions = np.zeros((capacity, n_users, n_servers), dtype=np.float64)
        self.next_states = np.zeros((capacity, n_users, n_servers), dtype=np.int8)
        self.rewards = np.zeros(capacity, dtype=np.float64)
        self.position = 0
        self.size = 0
        self.contexts = contexts
        self.context_of = np.zeros(capacity if contexts else 0, dtype=np.int64)
        self.latency = np.zeros((contexts, n_users, n_servers), dtype=np.float64)
        self.load = np.zeros((contexts, n_users, n_servers), dtype=np.float64)
        self.slot = np.zeros((contexts, n_servers), dtype=np.float64)
        self.context_position = 0

    def add_context(
        self, latency: NDArray[np.float64], load: NDArray[np.float64], slot: NDArray[np.float64]
    ) -> int:
        """Store one instance's context (:func:`qdt.rl.observations.context_arrays`); its index."""
        if not self.contexts:
            raise ValueError("this replay memory holds transitions of one instance (contexts=0)")
        index = self.context_position
        self.latency[index], self.load[index], self.slot[index] = latency, load, slot
        self.context_position = (index + 1) % self.contexts
        return index

    def add(
        self,
        state: NDArray[np.int8],
        action: NDArray[np.float64],
        reward: float,
        next_state: NDArray[np.int8],
        context: int | None = None,
    ) -> None:
        """One transition; ``context``: its instance's index from :meth:`add_context` (families)."""
        if self.contexts and context is None:
            raise ValueError("a family's transition needs its context index (add_context)")
        self.states[self.position] = state
        self.actions[self.position] = action
        self.next_states[self.position] = next_state
        self.rewards[self.position] = reward
        if self.contexts:
            self.context_of[self.position] = context
        self.position = (self.position + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(
        self, rng: np.random.Generator, batch_size: int, device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, InstanceContext | None]:
        """A uniform batch as float64 tensors on ``device`` (default the CPU): states, actions
        [B, N, M], rewards [B], next states, and each row's instance context (None for one instance)."""
        index = rng.integers(0, self.size, size=batch_size)
        arrays = (
            self.states[index].astype(np.float64),
            self.actions[index],
            self.rewards[index],
            self.next_states[index].astype(np.float64),
        )
        states, actions, rewards, next_states = (torch.from_numpy(a).to(device or "cpu") for a in arrays)
        context = None
        if self.contexts:
            rows = self.context_of[index]
            context = InstanceContext(
                *(torch.from_numpy(a[rows]).to(device or "cpu") for a in (self.latency, self.load, self.slot))
            )
        return states, actions, rewards, next_states, context

    def state_dict(self) -> dict[str, object]:
        state: dict[str, object] = {
            "states": torch.from_numpy(self.states.copy()),
            "actions": torch.from_numpy(self.actions.copy()),
            "next_states": torch.from_numpy(self.next_states.copy()),
            "rewards": torch.from_numpy(self.rewards.copy()),
            "position": self.position,
            "size": self.size,
        }
        if self.contexts:  # one-instance checkpoints keep their old keys only
            state.update(
                context_of=torch.from_numpy(self.context_of.copy()),
                context_latency=torch.from_numpy(self.latency.copy()),
                context_load=torch.from_numpy(self.load.copy()),
                context_slot=torch.from_numpy(self.slot.copy()),
                context_position=self.context_position,
            )
        return state

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
        if self.contexts:
            if "context_of" not in state:
                raise ValueError(
                    "the checkpoint's replay memory holds no instance contexts (not a family run)"
                )
            latency = state["context_latency"]
            assert isinstance(latency, torch.Tensor)
            if tuple(latency.shape) != self.latency.shape:
                raise ValueError(f"context ring shape {tuple(latency.shape)} != {self.latency.shape}")
            self.context_of[...] = state["context_of"].numpy()  # type: ignore[union-attr]
            self.latency[...] = latency.numpy()
            self.load[...] = state["context_load"].numpy()  # type: ignore[union-attr]
            self.slot[...] = state["context_slot"].numpy()  # type: ignore[union-attr]
            self.context_position = int(state["context_position"])  # type: ignore[call-overload]
