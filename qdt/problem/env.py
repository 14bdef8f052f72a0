"""The multi-agent placement environment (paper §4.3) as a PettingZoo ``ParallelEnv``.

Agents are the M base stations ``bs_0 … bs_{M-1}``. Agent j observes column j of the decision
matrix X (N bits: which users it hosts) and acts with a new column j (N bits). The joint action
is the new X, which is also the next state. All agents receive the same reward R(X) of
:mod:`qdt.problem.model`. An episode has ``n_steps`` steps (N_t; the paper leaves it open, qdt's default
is 10) and then every agent is truncated; nothing terminates earlier.

Options:
* ``initial_state``: "zeros" (nothing placed yet, the default) or "random" (uniform bits).
* ``channel_fading_db``: time-varying channels. When > 0, every ``reset`` redraws the channel
  gains as h_ij·10^(g_ij/10) with g_ij ~ N(0, σ²) in dB (log-normal fading around the instance's
  gains), so each episode sees other latencies, deadlines-feasibility and a new optimum.

Seeding: ``reset(seed=S)`` reseeds the environment's generator ``rng``; ``reset()`` continues it
(its ``bit_generator.state`` is what a training checkpoint saves).
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray
from pettingzoo import ParallelEnv

from qdt.errors import QdtInputError
from qdt.problem.instance import Instance
from qdt.problem.model import PlacementModel, RewardConfig

DEFAULT_STEPS = 10


class PlacementEnv(ParallelEnv):  # type: ignore[misc]
    metadata = {"name": "qdt_placement_v0", "render_modes": ["ansi"], "is_parallelizable": True}

    def __init__(
        self,
        instance: Instance,
        *,
        n_steps: int = DEFAULT_STEPS,
        reward: RewardConfig | None = None,
        initial_state: Literal["zeros", "random"] = "zeros",
        channel_fading_db: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 1:
            raise QdtInputError("n_steps", "an integer >= 1 (steps per episode, N_t)", n_steps)
        if initial_state not in ("zeros", "random"):
            raise QdtInputError("initial_state", "'zeros' or 'random'", initial_state)
        if not (np.isfinite(channel_fading_db) and channel_fading_db >= 0):
            raise QdtInputError("channel_fading_db", "a finite number >= 0 (dB)", channel_fading_db)
        if render_mode not in (None, "ansi"):
            raise QdtInputError("render_mode", "None or 'ansi'", render_mode)
        self.instance = instance
        self.n_steps = n_steps
        self.reward_config = reward or RewardConfig()
        self.initial_state = initial_state
        self.channel_fading_db = float(channel_fading_db)
        self.render_mode = render_mode
        self.base_model = PlacementModel(instance, self.reward_config)
        self.model = self.base_model
        self.possible_agents = [f"bs_{j}" for j in range(instance.n_servers)]
        self.agents: list[str] = []
        self.rng = np.random.default_rng()
        self._state = np.zeros((instance.n_users, instance.n_servers), dtype=np.int8)
        self._step = 0

    # ---- spaces ------------------------------------------------------------------------
    @functools.cache  # noqa: B019 - PettingZoo wants the same object each call
    def observation_space(self, agent: str) -> spaces.MultiBinary:
        self._check_agent(agent)
        return spaces.MultiBinary(self.instance.n_users)

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> spaces.MultiBinary:
        self._check_agent(agent)
        return spaces.MultiBinary(self.instance.n_users)

    # ---- dynamics ----------------------------------------------------------------------
    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, NDArray[np.int8]], dict[str, dict[str, Any]]]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
            for agent in self.possible_agents:
                self.action_space(agent).seed(int(self.rng.integers(2**31)))
                self.observation_space(agent).seed(int(self.rng.integers(2**31)))
        if self.channel_fading_db > 0:
            fading_db = self.rng.normal(0.0, self.channel_fading_db, size=self.instance.channel_gain.shape)
            gains = self.instance.channel_gain * 10.0 ** (fading_db / 10.0)
            self.model = PlacementModel(self.instance.with_channel_gain(gains), self.reward_config)
        n, m = self.instance.n_users, self.instance.n_servers
        if self.initial_state == "random":
            self._state = self.rng.integers(0, 2, size=(n, m), dtype=np.int8)
        else:
            self._state = np.zeros((n, m), dtype=np.int8)
        self._step = 0
        self.agents = list(self.possible_agents)
        return self._observations(), {agent: self._info() for agent in self.agents}

    def step(
        self, actions: dict[str, Any]
    ) -> tuple[
        dict[str, NDArray[np.int8]],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        if not self.agents:
            raise QdtInputError(
                "step", "a call after reset()", "a step on a finished episode", "call reset() first"
            )
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise QdtInputError("actions", f"an action for every agent {self.agents}", f"none for {missing}")
        columns = []
        for agent in self.possible_agents:
            column = np.asarray(actions[agent])
            if column.shape != (self.instance.n_users,) or not np.all((column == 0) | (column == 1)):
                raise QdtInputError(
                    f"actions[{agent!r}]", f"{self.instance.n_users} bits (0 or 1)", column.tolist()
                )
            columns.append(column.astype(np.int8))
        self._state = np.stack(columns, axis=1)
        self._step += 1
        reward = float(self.model.reward_batch(self._state[None])[0])
        truncated = self._step >= self.n_steps
        observations = self._observations()
        rewards = {agent: reward for agent in self.agents}
        terminations = {agent: False for agent in self.agents}
        truncations = {agent: truncated for agent in self.agents}
        infos = {agent: self._info() for agent in self.agents}
        if truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def state(self) -> NDArray[np.int8]:
        """The whole decision matrix X (N×M)."""
        return self._state.copy()

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        rows = [" ".join(str(int(b)) for b in row) for row in self._state]
        return "\n".join(f"user {i}: {row}" for i, row in enumerate(rows))

    def close(self) -> None:
        pass

    # ---- helpers -----------------------------------------------------------------------
    def _observations(self) -> dict[str, NDArray[np.int8]]:
        return {
            agent: self._state[:, j].copy()
            for j, agent in enumerate(self.possible_agents)
            if agent in self.agents
        }

    def _info(self) -> dict[str, Any]:
        x = self._state
        feasible = bool(self.model.feasible_batch(x[None])[0])
        return {
            "total_latency_s": float((x * self.model.latency).sum()),
            "feasible": feasible,
            "step": self._step,
        }

    def _check_agent(self, agent: str) -> None:
        if agent not in self.possible_agents:
            raise QdtInputError("agent", f"one of {self.possible_agents}", agent)
