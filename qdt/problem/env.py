"""The multi-agent placement environment (paper §4.3) as a PettingZoo ``ParallelEnv``.

Agents are the M base stations ``bs_0 … bs_{M-1}``. Agent j observes column j of the decision
matrix X (N bits: which users it hosts) and acts with a new column j (N bits). The joint action
is the new X, which is also the next state. All agents receive the same reward R(X) of
:mod:`qdt.problem.model`. An episode has ``n_steps`` steps (N_t; the paper leaves it open, qdt's default
is 10) and then every agent is truncated; nothing terminates earlier.

Options:
* ``initial_state``: "zeros" (nothing placed yet, the default), "random" (uniform bits) or
  "greedy" (greedy-with-repair's placement of the episode's model, fading included:
  :func:`qdt.problem.decoding.start_placement`).
* ``channel_fading_db``: time-varying channels. When > 0, every ``reset`` redraws the channel
  gains as h_ij·10^(g_ij/10) with g_ij ~ N(0, σ²) in dB (log-normal fading around the instance's
  gains), so each episode sees other latencies, deadlines-feasibility and a new optimum.

Seeding: ``reset(seed=S)`` reseeds the environment's generator ``rng``; ``reset()`` continues it
(its ``bit_generator.state`` is what a training checkpoint saves).

:class:`BatchedPlacementEnv` is K copies of the same dynamics stepped as one batch (vectorised
episodes for training): placements [K, N, M] in, rewards [K] out. Copy k draws its fading and
random start from its own generator exactly as a ``PlacementEnv`` seeded alike would, so one
copy reproduces ``PlacementEnv``'s rewards and random streams. The copies may hold different
instances of the same N × M (``set_instances``, one per copy, e.g. drawn from an instance family,
``qdt/problem/family.py``): the next ``reset`` draws each copy's fading on top of its own instance
from its own generator, so copy k still reproduces a ``PlacementEnv`` on copy k's instance.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray
from pettingzoo import ParallelEnv

from qdt.errors import QdtInputError
from qdt.problem.decoding import start_placement
from qdt.problem.instance import Instance
from qdt.problem.model import PlacementModel, RewardConfig

DEFAULT_STEPS = 10

InitialState = Literal["zeros", "random", "greedy"]


class PlacementEnv(ParallelEnv):  # type: ignore[misc]
    metadata = {"name": "qdt_placement_v0", "render_modes": ["ansi"], "is_parallelizable": True}

    def __init__(
        self,
        instance: Instance,
        *,
        n_steps: int = DEFAULT_STEPS,
        reward: RewardConfig | None = None,
        initial_state: InitialState = "zeros",
        channel_fading_db: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        _check_options(n_steps, initial_state, channel_fading_db)
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
        self.model = _episode_model(self.base_model, self.channel_fading_db, self.rng)
        self._state = _initial_placement(self.model, self.initial_state, self.rng)
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


def _check_options(n_steps: int, initial_state: str, channel_fading_db: float) -> None:
    if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 1:
        raise QdtInputError("n_steps", "an integer >= 1 (steps per episode, N_t)", n_steps)
    if initial_state not in get_args(InitialState):
        raise QdtInputError("initial_state", "'zeros', 'random' or 'greedy'", initial_state)
    if not (np.isfinite(channel_fading_db) and channel_fading_db >= 0):
        raise QdtInputError("channel_fading_db", "a finite number >= 0 (dB)", channel_fading_db)


def _episode_model(base: PlacementModel, fading_db: float, rng: np.random.Generator) -> PlacementModel:
    """The episode's model: ``base``, or with fading its channel gains redrawn from ``rng``."""
    if fading_db <= 0:
        return base
    instance = base.instance
    draw = rng.normal(0.0, fading_db, size=instance.channel_gain.shape)
    gains = instance.channel_gain * 10.0 ** (draw / 10.0)
    return PlacementModel(instance.with_channel_gain(gains), base.reward_config)


def _initial_placement(
    model: PlacementModel, initial_state: str, rng: np.random.Generator
) -> NDArray[np.int8]:
    n, m = model.n_users, model.n_servers
    if initial_state == "random":
        return rng.integers(0, 2, size=(n, m), dtype=np.int8)
    return start_placement(model, "greedy" if initial_state == "greedy" else "empty")


class BatchedPlacementEnv:
    """K copies of :class:`PlacementEnv`'s dynamics stepped as one batch (module docstring).

    ``reset`` gives the K starting placements [K, N, M]; ``step(placements)`` takes the K joint
    actions as placements [K, N, M] (the next states) and gives the rewards [K]. ``rngs[k]`` is
    copy k's generator (what a checkpoint saves); ``base_models[k]`` copy k's instance (all the
    constructor's ``instance`` until ``set_instances``); ``models[k]`` its episode's model (the
    base model, or with fading the base model under the episode's channel).

    When every copy shares one model (one instance, no fading) a step evaluates the K placements
    in one batched call; otherwise copy by copy (K is the number of environments, not a training
    batch; ``PlacementModel`` holds one instance's arrays).
    """

    def __init__(
        self,
        instance: Instance,
        n_envs: int,
        *,
        n_steps: int = DEFAULT_STEPS,
        reward: RewardConfig | None = None,
        initial_state: InitialState = "zeros",
        channel_fading_db: float = 0.0,
    ) -> None:
        _check_options(n_steps, initial_state, channel_fading_db)
        if not isinstance(n_envs, int) or isinstance(n_envs, bool) or n_envs < 1:
            raise QdtInputError("n_envs", "an integer >= 1 (environments per batch)", n_envs)
        self.instance = instance
        self.n_envs = n_envs
        self.n_steps = n_steps
        self.initial_state = initial_state
        self.channel_fading_db = float(channel_fading_db)
        self.base_model = PlacementModel(instance, reward or RewardConfig())
        self.base_models = [self.base_model] * n_envs
        self.models = list(self.base_models)
        self.rngs = [np.random.default_rng() for _ in range(n_envs)]
        self.states = np.zeros((n_envs, instance.n_users, instance.n_servers), dtype=np.int8)
        self.step_count = 0

    def reset(self, seeds: Sequence[int] | None = None) -> NDArray[np.int8]:
        """Start an episode in every copy; ``seeds`` (one per copy) reseed them as
        ``PlacementEnv.reset(seed=...)`` does (its 2·M draws that seed the spaces included)."""
        if seeds is not None:
            if len(seeds) != self.n_envs:
                raise QdtInputError("seeds", f"{self.n_envs} seeds (one per environment)", len(seeds))
            self.rngs = [np.random.default_rng(seed) for seed in seeds]
            for rng in self.rngs:
                for _ in range(2 * self.instance.n_servers):  # as PlacementEnv seeds its spaces
                    rng.integers(2**31)
        self.models = [
            _episode_model(base, self.channel_fading_db, rng)
            for base, rng in zip(self.base_models, self.rngs)
        ]
        self.states = np.stack(
            [_initial_placement(model, self.initial_state, rng) for model, rng in zip(self.models, self.rngs)]
        )
        self.step_count = 0
        return self.states.copy()

    def set_instances(self, instances: Sequence[Instance]) -> None:
        """Give copy k the instance ``instances[k]`` (all N × M like the constructor's), from the next
        ``reset`` on: that reset draws copy k's fading on top of its own instance. The same instance
        object given to several copies is one shared model (the constructor's instance is its model)."""
        if isinstance(instances, (Instance, str, bytes)) or len(instances) != self.n_envs:
            got = "one instance" if isinstance(instances, Instance) else f"{len(instances)} instances"
            raise QdtInputError("instances", f"{self.n_envs} instances (one per environment)", got)
        n, m = self.instance.n_users, self.instance.n_servers
        known: dict[int, PlacementModel] = {id(self.instance): self.base_model}
        models = []
        for k, instance in enumerate(instances):
            if not isinstance(instance, Instance):
                raise QdtInputError(f"instances[{k}]", "an Instance", type(instance).__name__)
            if (instance.n_users, instance.n_servers) != (n, m):
                raise QdtInputError(
                    f"instances[{k}]",
                    f"an instance of {n} users x {m} servers (the environment's size)",
                    f"{instance.n_users} users x {instance.n_servers} servers",
                    "draw every copy's instance at the same N and M",
                )
            if id(instance) not in known:
                known[id(instance)] = PlacementModel(instance, self.base_model.reward_config)
            models.append(known[id(instance)])
        self.base_models = models

    @property
    def fading(self) -> bool:
        return self.channel_fading_db > 0

    def step(self, placements: NDArray[np.int8]) -> tuple[NDArray[np.float64], NDArray[np.bool_], bool]:
        """Apply the K next placements: (rewards [K], feasible [K], truncated)."""
        expected = self.states.shape
        if placements.shape != expected:
            raise QdtInputError("placements", f"an array of shape {expected}", placements.shape)
        self.states = placements.astype(np.int8, copy=True)
        shared = self.models[0]
        if all(model is shared for model in self.models):  # one instance, no fading: one batched call
            rewards = shared.reward_batch(self.states)
            feasible = shared.feasible_batch(self.states)
        else:
            rewards = np.array([float(m.reward_batch(x[None])[0]) for m, x in zip(self.models, self.states)])
            feasible = np.array(
                [bool(m.feasible_batch(x[None])[0]) for m, x in zip(self.models, self.states)]
            )
        self.step_count += 1
        return rewards, feasible, self.step_count >= self.n_steps

    def latency(self) -> NDArray[np.float64]:
        """Total latency Σ T_ij x_ij of each copy's current placement [K] (under its episode's channel)."""
        return np.array([float((x * m.latency).sum()) for m, x in zip(self.models, self.states)])
