"""The training loop (Algorithm 1) and its run folder.

A run folder holds:
  config.json      the resolved TrainConfig, its recipe included, and the instance (what --resume
                   checks against and continues with; no recipe recorded: v1, qdt/rl/config.py)
  metrics.jsonl    one JSON object per episode (with ``envs`` > 1, means over the environments)
  checkpoint.pt    the latest checkpoint (every ``checkpoint_every`` episodes and at the end)
  summary.json     the trained policy's greedy placement against the exact optimum (solved within
                   qdt/problem/solvers.py's DEFAULT_TIME_LIMIT_S), beside the placement the same
                   decoding made of the untrained policy's scores
  reward.png       reward versus episode
  .qdt.lock        while a process writes the folder: its pid and host (qdt/files.py, hold_folder)

One process writes a run folder at a time: :func:`train` holds the folder's lock throughout, so a
second writer (another ``qdt train``, a ``--resume``, a sweep worker) is refused and told the
holder's pid; a lock left by a killed process is taken over with a notice on stderr.

The networks and their updates run on ``config.torch_device`` (checked before anything is built);
the environments, the replay memory, the decodings and the solver stay on the CPU, and states and
scores cross between them in ``qdt/rl/maddpg.py`` (``to_torch``, ``to_numpy``).
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qdt.errors import QdtError, QdtInputError
from qdt.files import hold_folder, write_json_atomic
from qdt.plots import moving_mean, plot_optimum, pyplot, reward_floor, save_figure, smoothing_window
from qdt.problem.decoding import decode, decode_feasible, start_placement
from qdt.problem.env import BatchedPlacementEnv
from qdt.problem.family import parse_family
from qdt.problem.instance import Instance
from qdt.problem.local_search import improve_placements
from qdt.problem.model import PlacementModel, matrix_to_assignment
from qdt.problem.solvers import DEFAULT_TIME_LIMIT_S, SolveResult, solve
from qdt.rl.builders import check_fits, network_builders
from qdt.rl.checkpoint import (
    CheckpointError,
    checkpoint_content,
    decode_json,
    encode_json,
    load_checkpoint,
    save_checkpoint,
)
from qdt.rl.config import TrainConfig, resolve_torch_device
from qdt.rl.construct import (
    LEAST_STATES_PER_INSTANCE,
    OPTIMUM_COPIES,
    PLAIN,
    Sampling,
    as_assignments,
    as_matrices,
    construct_best,
    construct_imitation_update,
    construct_placements,
    imitation_targets,
    label_optima,
    partial_optima,
    sampled_placements,
)
from qdt.rl.exploration import exploration_level, explore, explore_scores
from qdt.rl.imitation import IMITATION_TIME_LIMIT_S, imitation_update, near_optimum_states, optimal_servers
from qdt.rl.maddpg import (
    MAX_TABLE_USERS,
    AgentNets,
    NonFiniteError,
    critic_parts,
    make_agents,
    non_finite_parameter,
    policy_score_table,
    policy_scores,
    scores_from_table,
    to_numpy,
    to_torch,
    update_agent,
    update_shared,
    update_targets,
)
from qdt.rl.observations import InstanceContext, context_arrays, context_of, stacked_context
from qdt.rl.ppo import episode_advantages, joint_credit, ppo_update, user_advantages, user_rewards
from qdt.rl.replay import ReplayMemory
from qdt.rl.rollout import Keep, roll_out
from qdt.rl.tensorboard import TensorBoardLog

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
PLOT_FILE = "reward.png"
EVAL_EVERY = 10  # episodes between greedy-policy evaluations in the metrics
FAMILY_VALIDATION = 8  # held-out instances a family run's greedy policy is evaluated on in the metrics
FAMILY_SUMMARY = 20  # held-out instances, solved exactly, behind a family run's summary
FAMILY_EXACT_LIMIT_S = 5.0
"""How long a family run's summary lets the MILP prove an instance's optimum (the default family's
optima up to 64 × 8 take under 0.21 s, the tight 32 × 8 ones about 1.6 s at the median); past it, the
summary scores against the MILP's lower bound where HiGHS proves a placement within
:data:`FAMILY_BOUND_GAP` (tight 64 × 8, whose optima take minutes: 60 s limits cost a run 21 minutes
of summary and proved none)."""
FAMILY_BOUND_GAP = 0.01


class TrainingDivergedError(QdtError):
    """A loss, reward or parameter became NaN or inf; the run stopped without checkpointing it."""


@dataclass
class RunState:
    """Everything that changes during training, besides the networks."""

    episode: int = 0  # episodes completed
    best_seen_latency: float | None = None
    best_seen_assignment: list[int] | None = None
    wall_s: float = 0.0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    untrained_latency: float | None = None  # the freshly initialised policy's placement
    untrained_feasible: bool | None = None


@dataclass(frozen=True)
class OnPolicyStep:
    """One step of the K environments, as the ``ppo`` learner reads it: states, explored actions,
    rewards as stored (scaled on a family), placements chosen, rewards as the environment gave them."""

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    placements: np.ndarray
    raw_rewards: np.ndarray


class Trainer:
    def __init__(self, config: TrainConfig, instance: Instance) -> None:
        n, m = instance.n_users, instance.n_servers
        check_fits(config, n, m)  # before any network, executor or file exists
        self.device = resolve_torch_device(config.torch_device)  # likewise
        self.config = config
        self.instance = instance
        self.env = BatchedPlacementEnv(
            instance,
            config.envs,
            n_steps=config.steps_per_episode,
            initial_state="greedy" if config.start == "greedy" else "zeros",
            channel_fading_db=config.channel_fading_db,
        )
        self.model = PlacementModel(instance)
        self.family = parse_family(config.family) if config.family is not None else None
        if self.family is not None and (self.family.users, self.family.servers) != (n, m):
            raise QdtInputError(
                "instance",
                f"an instance of the family's size {self.family.users}x{self.family.servers}",
                f"{n}x{m}",
                "give train() the family's first draw (family_instance)",
            )
        seeds = np.random.SeedSequence(config.seed).spawn(5)
        init_seed, env_seed, explore_seed, replay_seed, executor_seed = seeds
        self.explore_rng = np.random.default_rng(explore_seed)
        self.replay_rng = np.random.default_rng(replay_seed)
        self.env.reset([int(v) for v in env_seed.generate_state(config.envs)])
        build_actor, build_critic = network_builders(config, self.model, executor_seed)
        self.shared = config.sharing == "shared"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(init_seed.generate_state(1, dtype=np.uint64)[0] % (2**63)))
            self.agents: list[AgentNets] = make_agents(
                config, 1 if self.shared else m, build_actor, build_critic
            )
        self.replay = ReplayMemory(config.replay_size, n, m, context_ring_size(config) if self.family else 0)
        self.state = RunState()
        # a family's rewards are scaled per instance when they enter the memory (_scaled_rewards)
        self.reward_shift, self.reward_scale = (
            (0.0, 1.0) if self.family is not None else reward_transform(config, self.model)
        )
        # the elite learner's contexts: its K constructions', and its imitation batch's
        self._elite_contexts = (
            (
                context_of([self.model] * config.envs, self.device),
                context_of([self.model] * config.batch_size, self.device),
            )
            if config.learner == "elite"
            else None
        )
        self.validation = (
            [PlacementModel(self.family.held_out(config.seed, i)) for i in range(FAMILY_VALIDATION)]
            if self.family is not None
            else []
        )

    # ---- one episode -------------------------------------------------------------------
    def run_episode(self) -> dict[str, Any]:
        config = self.config
        episode = self.state.episode
        level = exploration_level(
            episode, config.episodes, config.explore_start, config.explore_end, config.explore_fraction
        )
        if self.family is not None:
            self.env.set_instances(self.family.draws(config.seed, episode, config.envs))
        states = self.env.reset()
        if config.learner == "elite":
            return self._elite_episode(level)
        if config.decode == "construct":
            return self._construct_episode(level)
        context, context_ids = self._episode_context()
        rewards: list[float] = []
        on_policy: list[OnPolicyStep] = []  # ppo: this episode's transitions
        visited: list[np.ndarray] = []  # the states the actor scored, step by step
        last = np.zeros(config.envs)
        feasible = np.zeros(config.envs, dtype=bool)
        table = self._score_table()
        for _step in range(config.steps_per_episode):
            scores = self._scores(states, table, context)
            visited.append(states)
            if config.decode == "round":
                placements = explore(config.exploration, scores, level, self.explore_rng)
                actions = placements.astype(np.float64)
            else:
                actions = explore_scores(config.exploration, scores, level, self.explore_rng)
                placements = self._decode(actions)
            last, feasible = self._step(placements)
            stored = self._scaled_rewards(last)
            if config.learner == "ppo":
                on_policy.append(OnPolicyStep(states, actions, stored, placements, last))
            for k in range(config.envs):
                self.replay.add(states[k], actions[k], float(stored[k]), placements[k], context_ids[k])
                if feasible[k] and self.family is None:
                    self._track_best(placements[k])
            rewards.extend(float(r) for r in last)
            states = placements
        imitating = episode < config.imitation_episodes
        if imitating:
            losses = self._imitation_phase(visited, context)
        elif config.learner == "ppo":
            losses = self._ppo_phase(on_policy, level, context)
        else:
            losses = self._train_phase()
        self.state.episode += 1
        record: dict[str, Any] = {
            "episode": self.state.episode,
            "reward_mean": float(np.mean(rewards)),
            "reward_last": float(last[0]) if config.envs == 1 else float(np.mean(last)),
            "latency_last_s": float(np.mean(self.env.latency())),
            "feasible_last": bool(feasible.all()),
            "explore": level,
            "critic_loss": losses[0],
            "actor_loss": losses[1],
        }
        if config.imitation_episodes:
            record["imitation"] = imitating  # actor_loss is then the cross-entropy
        if self.state.episode % EVAL_EVERY == 0 or self.state.episode == config.episodes:
            record.update(self._greedy_record())
        return record

    def _construct_episode(self, level: float) -> dict[str, Any]:
        """An episode of a ``construct`` run (qdt/rl/construct.py): the current actor constructs the
        episode's K instances (one environment step, whose rewards the metrics report), then learns
        from their optima and from the states its constructions reached (DAgger)."""
        config = self.config
        models = list(self.env.models)
        arrays = [context_arrays(model) for model in models]
        context = stacked_context(arrays, self.device)
        trace: list[torch.Tensor] = []
        placements = construct_placements(
            self.agents[0].actor, models, context, trace, config.construct_order, config.construct_guard
        )
        last, feasible = self._step(placements)
        targets = label_optima(models, IMITATION_TIME_LIMIT_S, config.label_gap)  # [K, N]
        parts, part_labels = partial_optima(targets, OPTIMUM_COPIES, self.explore_rng)
        visited, states, labels = imitation_targets(
            models,
            [step.cpu().numpy() for step in trace],
            self.explore_rng,
            IMITATION_TIME_LIMIT_S,
            config.label_gap,
            placements,
        )
        ids = [self.replay.add_context(*parts) for parts in arrays]
        rows = np.concatenate([np.tile(np.arange(len(models)), OPTIMUM_COPIES), visited])
        m = self.instance.n_servers
        stored_states = as_matrices(np.concatenate([parts, states]), m)
        stored_labels = as_matrices(np.concatenate([part_labels, labels]), m).astype(np.float64)
        nothing = np.zeros_like(stored_states[0])
        for row, state, label in zip(rows.tolist(), stored_states, stored_labels):
            self.replay.add(state, label, 0.0, nothing, ids[row])
        loss = None
        try:
            for _ in range(config.gradient_steps):
                batch, actions, _, _, batch_context = self.replay.sample(
                    self.replay_rng, config.batch_size, self.device
                )
                assert batch_context is not None  # a family's memory
                loss = construct_imitation_update(
                    self.agents[0],
                    batch_context,
                    as_assignments(batch),
                    as_assignments(actions),
                    1,
                    config.label_smoothing,
                )
        except NonFiniteError as error:
            raise TrainingDivergedError(f"episode {self.state.episode + 1}: {error}") from None
        self.state.episode += 1
        return self._imitation_record(
            last,
            feasible,
            level,
            loss,
            dagger_states=int(visited.size),
            imitation_states=int(self.replay.size),
        )

    def _elite_episode(self, level: float) -> dict[str, Any]:
        """An episode of the ``elite`` learner (one instance; qdt/rl/construct.py, "Self-imitation"):
        the actor constructs the instance K = ``envs`` times in one batch, the first time by its logits
        as they are and K − 1 times with ``level`` · Gumbel noise on them (one environment step, whose
        rewards the metrics report); the best feasible placement found so far (the elite,
        ``state.best_seen_*``) is then imitated: ``batch_size`` random parts of it, ``gradient_steps``
        cross-entropy steps. No MILP and no critic; until a construction is feasible there is no elite
        and no step."""
        config = self.config
        assert self._elite_contexts is not None  # built for the elite learner
        sampled, taught = self._elite_contexts
        placements = sampled_placements(
            self.agents[0].actor,
            [self.model],
            sampled,
            config.envs,
            level,
            self.explore_rng,
            config.construct_order,
            config.construct_guard,
        )
        last, feasible = self._step(placements)
        for placement in placements[feasible]:
            self._track_best(placement)
        loss = None
        if self.state.best_seen_assignment is not None:
            elite = np.asarray(self.state.best_seen_assignment, dtype=np.int64)[None]
            states, labels = partial_optima(elite, config.batch_size, self.explore_rng)
            try:
                loss = construct_imitation_update(
                    self.agents[0], taught, states, labels, config.gradient_steps, config.label_smoothing
                )
            except NonFiniteError as error:
                raise TrainingDivergedError(f"episode {self.state.episode + 1}: {error}") from None
        self.state.episode += 1
        return self._imitation_record(
            last,
            feasible,
            level,
            loss,
            reward_last=float(last[0]),  # the plain construction's
            elite_latency_s=self.state.best_seen_latency,
            sampled_feasible=float(np.mean(feasible)),
        )

    def _step(self, placements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The environments stepped to ``placements``: (rewards, feasible) per environment; a
        non-finite reward stops the run (:class:`TrainingDivergedError`)."""
        last, feasible, _ = self.env.step(placements)
        if not np.all(np.isfinite(last)):
            raise TrainingDivergedError(
                f"episode {self.state.episode + 1}: non-finite reward {last.tolist()}"
            )
        return last, feasible

    def _imitation_record(
        self, last: np.ndarray, feasible: np.ndarray, level: float, loss: float | None, **extra: Any
    ) -> dict[str, Any]:
        """The metrics record of an episode that learned by imitation (a ``construct`` episode, on a
        family or ``elite``), with ``extra`` on top, and the greedy policy's every EVAL_EVERY episodes."""
        record: dict[str, Any] = {
            "episode": self.state.episode,
            "reward_mean": float(np.mean(last)),
            "reward_last": float(np.mean(last)),
            "latency_last_s": float(np.mean(self.env.latency())),
            "feasible_last": bool(feasible.all()),
            "explore": level,
            "critic_loss": None,
            "actor_loss": loss,
            "imitation": True,
            **extra,
        }
        if self.state.episode % EVAL_EVERY == 0 or self.state.episode == self.config.episodes:
            record.update(self._greedy_record())
        return record

    def _score_table(self) -> np.ndarray | None:
        """Every agent's scores for all 2^N observations (small N, one instance), or None to score
        step by step."""
        if self.instance.n_users > MAX_TABLE_USERS or self.family is not None:
            return None
        return policy_score_table(self.agents, self.instance.n_users, self.instance.n_servers)

    def _scores(
        self, states: np.ndarray, table: np.ndarray | None, context: InstanceContext | None = None
    ) -> np.ndarray:
        """â for joint states [K, N, M] → [K, N, M] (``context``: each state's instance, families)."""
        if table is not None:
            return scores_from_table(table, states)
        return to_numpy(policy_scores(self.agents, to_torch(states, self.device), context))

    def _episode_context(self) -> tuple[InstanceContext | None, list[int | None]]:
        """A family episode's instances (each copy's, fading included) as the networks read them and
        as the replay memory stores them; (None, [None, ...]) for one instance."""
        if self.family is None:
            return None, [None] * self.config.envs
        arrays = [context_arrays(model) for model in self.env.models]
        ids: list[int | None] = [self.replay.add_context(*a) for a in arrays]
        return stacked_context(arrays, self.device), ids

    def _scaled_rewards(self, rewards: np.ndarray) -> np.ndarray:
        """What the memory stores: the rewards as given (one instance: scaled when sampled), or, on a
        family, each scaled by its own instance (:func:`reward_transform` of the copy's model)."""
        if self.family is None:
            return rewards
        scaled = [
            (float(r) + shift) * scale
            for r, (shift, scale) in zip(rewards, (reward_transform(self.config, m) for m in self.env.models))
        ]
        return np.asarray(scaled)

    def _decode(self, scores: np.ndarray) -> np.ndarray:
        """Placements [K, N, M] of the K environments' scores, each under its episode's channel."""
        if self.config.decode == "feasible":
            return np.stack([decode_feasible(mod, s).placement for mod, s in zip(self.env.models, scores)])
        return decode(self.config.decode, scores)

    def _train_phase(self) -> tuple[float | None, float | None]:
        config = self.config
        if self.replay.size < max(config.batch_size, config.warmup_transitions):
            return None, None
        critic_losses, actor_losses = [], []
        try:
            for _phase in range(config.updates_per_episode):
                for _step in range(config.gradient_steps):
                    for j in range(len(self.agents)):
                        states, actions, rewards, next_states, context = self.replay.sample(
                            self.replay_rng, config.batch_size, self.device
                        )
                        if self.reward_shift:
                            rewards = rewards + self.reward_shift
                        # one shared actor and critic, or agent j's own (module functions, looked
                        # up at each call, so tests can wrap them)
                        nets: Any = self.agents[0] if self.shared else self.agents
                        update = update_shared if self.shared else functools.partial(update_agent, j=j)
                        stats = update(
                            nets,
                            states=states,
                            actions=actions,
                            rewards=rewards * self.reward_scale,
                            next_states=next_states,
                            gamma=config.gamma,
                            logit_penalty=config.logit_penalty,
                            **({"context": context} if context is not None else {}),
                        )
                        critic_losses.append(stats.critic_loss)
                        actor_losses.append(stats.actor_loss)
                for agent in self.agents:
                    update_targets(agent, config.target_update == "hard", config.tau)
        except NonFiniteError as error:
            raise TrainingDivergedError(f"episode {self.state.episode + 1}: {error}") from None
        return float(np.mean(critic_losses)), float(np.mean(actor_losses))

    def _imitation_phase(
        self, visited: list[np.ndarray], context: InstanceContext | None
    ) -> tuple[float | None, float | None]:
        """The shared actor learns the optimum of this episode's K instances from every state it
        visited and as many near the optimum (``qdt/rl/imitation.py``); no critic step. State
        t·K + k is environment k's."""
        targets = optimal_servers(list(self.env.models))  # [K, N]
        copies = 2 * len(visited)
        near = near_optimum_states(targets, len(visited), self.instance.n_servers, self.explore_rng)
        rows = None
        if context is not None:
            rows = context.rows(torch.arange(self.config.envs, device=self.device).repeat(copies))
        try:
            loss = imitation_update(
                self.agents[0],
                to_torch(np.concatenate([*visited, near]), self.device),
                torch.from_numpy(np.tile(targets, (copies, 1))).to(self.device),
                self.config.gradient_steps,
                rows,
            )
        except NonFiniteError as error:
            raise TrainingDivergedError(f"episode {self.state.episode + 1}: {error}") from None
        return None, loss

    def _ppo_phase(
        self, steps: list[OnPolicyStep], level: float, context: InstanceContext | None
    ) -> tuple[float | None, float | None]:
        """The ``ppo`` learner's update on this episode's transitions (``qdt/rl/ppo.py``); no critic.
        Transition t·K + k is environment k's at step t."""
        states, actions = (
            np.concatenate([getattr(step, name) for step in steps]) for name in ("states", "actions")
        )
        stored = to_torch(np.concatenate([step.rewards for step in steps]), self.device)
        if self.config.ppo_credit in ("user", "both"):
            latency = np.stack([model.latency for model in self.env.models])  # [K, N, M], this episode's
            bound = np.array([lower_bound(model) for model in self.env.models])
            rewards = user_rewards(
                np.concatenate([step.placements for step in steps]),
                np.tile(latency, (len(steps), 1, 1)),
                np.concatenate([step.raw_rewards for step in steps]),
                np.tile(bound, len(steps)),
            )
            advantages = user_advantages(to_torch(rewards, self.device))
            if self.config.ppo_credit == "both":
                advantages = joint_credit(advantages, episode_advantages(stored), rewards.shape[1])
        else:
            advantages = episode_advantages(stored)
        rows = None
        if context is not None:
            rows = context.rows(torch.arange(self.config.envs, device=self.device).repeat(len(steps)))
        try:
            loss = ppo_update(
                self.agents[0],
                to_torch(states, self.device),
                to_torch(actions, self.device),
                advantages,
                sigma=level,
                clip=self.config.ppo_clip,
                steps=self.config.gradient_steps,
                context=rows,
            )
        except NonFiniteError as error:
            raise TrainingDivergedError(f"episode {self.state.episode + 1}: {error}") from None
        return None, loss

    def _track_best(self, x: np.ndarray) -> None:
        latency = float((x * self.model.latency).sum())
        if not bool(self.model.feasible_batch(x[None])[0]):
            return  # feasible under this episode's channel, not the instance's
        if self.state.best_seen_latency is None or latency < self.state.best_seen_latency:
            self.state.best_seen_latency = latency
            self.state.best_seen_assignment = matrix_to_assignment(x)

    # ---- greedy policy -----------------------------------------------------------------
    def greedy_placement(
        self,
        model: PlacementModel | None = None,
        sampling: Sampling = PLAIN,
        rng: np.random.Generator | None = None,
        keep: Keep = "last",
        local_search: bool = False,
    ) -> np.ndarray:
        """Roll the deterministic policy (π(s) decoded without noise) N_t steps from the run's start
        placement (``config.start``), on the run's instance or (a family's policy) on ``model``'s;
        ended early at a fixed point when the scores are deterministic (:func:`qdt.rl.rollout.roll_out`),
        its last placement or the best it visited (``keep``). A constructing run constructs instead,
        as ``sampling`` says (noise from ``rng``). ``local_search``: the decision then improved as
        :attr:`qdt.rl.policy.TrainedPolicy.local_search` improves it."""
        model = self.model if model is None else model
        if self.config.decode == "construct":  # no rollout: construction from nothing placed
            return construct_best(
                self.agents[0].actor,
                [model],
                self.device,
                order=self.config.construct_order,
                guard=self.config.construct_guard,
                sampling=sampling,
                rng=rng,
                local_search=local_search,
            )[0]
        start = start_placement(model, self.config.start)
        table = self._score_table()
        context = context_of([model], self.device) if self.family is not None else None

        def decide(x: np.ndarray) -> np.ndarray:
            return decode(self.config.decode, self._scores(x[None], table, context)[0], model)

        deterministic = all(agent.actor.deterministic for agent in self.agents)
        best_of = model if keep == "best" else None
        placement = roll_out(decide, start, self.config.steps_per_episode, deterministic, best_of)[0]
        return improve_placements(model, placement) if local_search else placement

    def _greedy_record(self) -> dict[str, Any]:
        x = self.greedy_placement()
        evaluation = self.model.evaluate(x)
        record = {
            "greedy_reward": evaluation.reward,
            "greedy_latency_s": evaluation.total_latency_s,
            "greedy_feasible": evaluation.feasible,
        }
        if self.validation:  # a family: the greedy policy on held-out instances
            above, feasible = [], []
            for model in self.validation:
                result = model.evaluate(self.greedy_placement(model))
                feasible.append(result.feasible)
                if result.feasible:
                    above.append(100.0 * (result.total_latency_s / lower_bound(model) - 1.0))
            record["validation_feasible"] = float(np.mean(feasible))
            record["validation_above_bound_pct"] = float(np.mean(above)) if above else None
        return record

    def record_untrained(self) -> None:
        """Remember what the freshly initialised policy's scores decode to (the summary's baseline)."""
        evaluation = self.model.evaluate(self.greedy_placement())
        self.state.untrained_latency = evaluation.total_latency_s
        self.state.untrained_feasible = evaluation.feasible

    # ---- checkpoints -------------------------------------------------------------------
    def checkpoint_payload(self) -> dict[str, Any]:
        return {
            "episode": self.state.episode,
            "config": encode_json(self.config.to_dict()),
            "agents": [
                {
                    "actor": a.actor.state_dict(),
                    "target_actor": a.target_actor.state_dict(),
                    "actor_optimizer": a.actor_optimizer.state_dict(),
                    **_critic_state(a),
                }
                for a in self.agents
            ],
            "replay": self.replay.state_dict(),
            "rng": encode_json(
                {
                    "env": _one_or_list([rng.bit_generator.state for rng in self.env.rngs]),
                    "explore": self.explore_rng.bit_generator.state,
                    "replay": self.replay_rng.bit_generator.state,
                }
            ),
            "run": encode_json(
                {
                    "best_seen_latency": self.state.best_seen_latency,
                    "best_seen_assignment": self.state.best_seen_assignment,
                    "wall_s": self.state.wall_s,
                    "untrained_latency": self.state.untrained_latency,
                    "untrained_feasible": self.state.untrained_feasible,
                }
            ),
        }

    def load_payload(self, payload: dict[str, Any]) -> None:
        for agent, saved in zip(self.agents, payload["agents"], strict=True):
            agent.actor.load_state_dict(saved["actor"])
            agent.target_actor.load_state_dict(saved["target_actor"])
            agent.actor_optimizer.load_state_dict(saved["actor_optimizer"])
            # a ppo agent has no critic (a ppo checkpoint from before stop 23 holds an unused one)
            if agent.critic is not None:
                if "critic" not in saved:
                    raise CheckpointError("the checkpoint has no critic, the run trains one (learner maddpg)")
                critic, target_critic, critic_optimizer = critic_parts(agent)
                critic.load_state_dict(saved["critic"])
                target_critic.load_state_dict(saved["target_critic"])
                critic_optimizer.load_state_dict(saved["critic_optimizer"])
        self.replay.load_state_dict(payload["replay"])
        rng = decode_json(payload["rng"])
        env_states = rng["env"] if isinstance(rng["env"], list) else [rng["env"]]  # one env: not a list
        if len(env_states) != len(self.env.rngs):
            raise CheckpointError(
                f"checkpoint has {len(env_states)} environments, the run {len(self.env.rngs)}"
            )
        for generator, saved in zip(self.env.rngs, env_states):
            generator.bit_generator.state = saved
        self.explore_rng.bit_generator.state = rng["explore"]
        self.replay_rng.bit_generator.state = rng["replay"]
        run = decode_json(payload["run"])
        self.state.episode = int(payload["episode"])
        self.state.best_seen_latency = run["best_seen_latency"]
        self.state.best_seen_assignment = run["best_seen_assignment"]
        self.state.wall_s = float(run["wall_s"])
        self.state.untrained_latency = run.get("untrained_latency")  # runs from before v2: none
        self.state.untrained_feasible = run.get("untrained_feasible")

    def modules(self) -> dict[str, torch.nn.Module]:
        out: dict[str, torch.nn.Module] = {}
        for j, a in enumerate(self.agents):
            out[f"agent{j}.actor"] = a.actor
            if a.critic is not None:
                out[f"agent{j}.critic"] = a.critic
        return out


def _critic_state(agent: AgentNets) -> dict[str, Any]:
    """A checkpoint's critic entries of ``agent``: none when it has no critic (ppo)."""
    if agent.critic is None:
        return {}
    critic, target_critic, critic_optimizer = critic_parts(agent)
    return {
        "critic": critic.state_dict(),
        "target_critic": target_critic.state_dict(),
        "critic_optimizer": critic_optimizer.state_dict(),
    }


# ---- the run -------------------------------------------------------------------------------
def train(
    config: TrainConfig,
    instance: Instance,
    run_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train (or resume) and write the run folder; returns the summary.

    ``stop_after`` ends the process's work after that many episodes in total, with a checkpoint,
    as if it had been interrupted there (tests use it to check bit-identical resume).

    The settings are checked (the networks and executors built) before anything is written; then
    the run folder's lock is held until the end (:func:`qdt.files.hold_folder`: a folder another
    process is writing is refused). A new run replaces the run files in ``run_dir``; refusing a
    folder that holds other files is the caller's choice (``qdt train --out`` refuses it).
    """
    torch.set_num_threads(config.threads)
    trainer = Trainer(config, instance)
    with hold_folder(run_dir, "run_dir"):
        return _train_into(trainer, run_dir, resume, progress, stop_after)


def _train_into(
    trainer: Trainer, run_dir: Path, resume: bool, progress: bool, stop_after: int | None
) -> dict[str, Any]:
    config, instance = trainer.config, trainer.instance
    metrics_path = run_dir / METRICS_FILE
    if resume:
        payload = load_checkpoint(run_dir)
        with checkpoint_content(run_dir):
            trainer.load_payload(payload)
        _truncate_metrics(metrics_path, trainer.state.episode)
    else:
        saved = {"config": config.to_dict(), "instance": instance.to_dict()}
        if trainer.family is not None:  # what `qdt place` reads as "trained on a family"
            saved["family"] = trainer.family.to_dict()
        write_json_atomic(run_dir / CONFIG_FILE, saved)
        metrics_path.write_text("")
        trainer.record_untrained()
    last = config.episodes if stop_after is None else min(stop_after, config.episodes)
    board = TensorBoardLog.open(run_dir, trainer.state.episode)
    bar = _progress_bar(progress, trainer.state.episode, config.episodes, config)
    pending: list[dict[str, Any]] = []
    try:
        while trainer.state.episode < last:
            start = time.perf_counter()
            record = trainer.run_episode()
            trainer.state.wall_s += time.perf_counter() - start
            record["wall_s"] = trainer.state.wall_s
            _append_metrics(metrics_path, record)  # each episode's line as it ends (progress)
            pending.append(record)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    reward=f"{record['reward_mean']:.3f}", latency=f"{record['latency_last_s']:.3f}"
                )
            if trainer.state.episode % config.checkpoint_every == 0 or trainer.state.episode == last:
                _checkpoint(trainer, run_dir)
                if board is not None:
                    board.write(pending)
                pending = []
    finally:
        if bar is not None:
            bar.close()
        if board is not None:
            board.close()
    if trainer.state.episode < config.episodes:
        return {"episodes": trainer.state.episode, "stopped_early": True}
    summary = build_summary(trainer)
    write_json_atomic(run_dir / SUMMARY_FILE, summary)
    plot_rewards(_read_metrics(metrics_path), run_dir / PLOT_FILE, summary)
    return summary


def _append_metrics(metrics_path: Path, record: dict[str, Any]) -> None:
    """One episode's line of metrics.jsonl, written when the episode ends, so a long run shows its
    progress there (a bench's cells run without a progress bar and checkpoint rarely). Lines past the
    last checkpoint are dropped on resume (:func:`_truncate_metrics`), so a kill between an episode's
    line and its checkpoint, or in the middle of a line, loses nothing the resumed run needs."""
    with open(metrics_path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record, allow_nan=False) + "\n")


def _checkpoint(trainer: Trainer, run_dir: Path) -> None:
    bad = non_finite_parameter(trainer.modules())
    if bad is not None:
        raise TrainingDivergedError(f"episode {trainer.state.episode}: non-finite parameter {bad}")
    save_checkpoint(run_dir, trainer.checkpoint_payload())


def _truncate_metrics(path: Path, episodes: int) -> None:
    """Keep the checkpoint's ``episodes`` lines (a run killed after writing metrics but before its
    checkpoint left more); fewer, or a damaged one, is refused before any training."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []
    kept = lines[:episodes]
    if len(kept) < episodes:
        expected = f"{episodes} lines, one per episode of the checkpoint"
        raise QdtInputError(str(path), expected, f"{len(kept)} lines", _METRICS_FIX)
    for number, line in enumerate(kept, 1):
        _metrics_record(path, number, line)
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


_METRICS_FIX = "restore the run folder from a copy, or start a new run with --out"


def _metrics_record(path: Path, number: int, line: str) -> dict[str, Any]:
    """One line of metrics.jsonl, checked: a JSON object with a numeric episode and reward_mean."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        record = None
    if not isinstance(record, dict) or not all(
        isinstance(record.get(key), (int, float)) and not isinstance(record.get(key), bool)
        for key in ("episode", "reward_mean")
    ):
        raise QdtInputError(
            f"{path}:{number}", "a JSON object with episode and reward_mean", line[:60], _METRICS_FIX
        )
    return record


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [_metrics_record(path, number, line) for number, line in enumerate(lines, 1) if line]


def build_summary(trainer: Trainer) -> dict[str, Any]:
    """The trained policy's placement against the optimum (solved within ``DEFAULT_TIME_LIMIT_S``),
    beside what the same decoding made of the untrained policy's scores."""
    model = trainer.model
    x = trainer.greedy_placement()
    evaluation = model.evaluate(x)
    assignment = matrix_to_assignment(x)
    if trainer.family is not None:  # the first training draw: held to the summary's limit
        optimum = reference_solve(model)
    else:
        optimum = solve(model, "auto", time_limit_s=DEFAULT_TIME_LIMIT_S)
    optimum_latency = optimum.total_latency_s if optimum.status == "optimal" else None
    state = trainer.state
    return {
        "assignment": assignment,
        "feasible": evaluation.feasible,
        "violations": evaluation.violations,
        "total_latency_s": evaluation.total_latency_s,
        "per_user_latency_s": evaluation.per_user_latency_s,
        "reward": evaluation.reward,
        "optimum_status": optimum.status,
        "optimum_total_latency_s": optimum_latency,
        "optimum_assignment": optimum.assignment if optimum.status == "optimal" else None,
        "optimum_lower_bound_s": optimum.lower_bound_s,
        "gap": relative_gap(evaluation.total_latency_s if evaluation.feasible else None, optimum_latency),
        "best_seen_total_latency_s": state.best_seen_latency,
        "best_seen_assignment": state.best_seen_assignment,
        "untrained_total_latency_s": state.untrained_latency,
        "untrained_feasible": state.untrained_feasible,
        "untrained_gap": relative_gap(
            state.untrained_latency if state.untrained_feasible else None, optimum_latency
        ),
        "family": family_summary(trainer) if trainer.family is not None else None,
        "recipe": trainer.config.recipe,
        "decode": trainer.config.decode,
        "episodes": state.episode,
        "wall_s": state.wall_s,
        "seed": trainer.config.seed,
        "config": trainer.config.to_dict(),
        "instance_name": trainer.instance.name,
    }


def family_instance(config: TrainConfig) -> Instance:
    """The instance a family run names in its config.json and reports on beside the held-out
    ones: the family's first training draw (episode 0, environment 0)."""
    if config.family is None:
        raise ValueError("not a family run")
    return parse_family(config.family).draw(config.seed, 0, 0)


def lower_bound(model: PlacementModel) -> float:
    """B = Σ_i min_j T_ij: the latency no placement can beat."""
    return float(model.latency.min(axis=1).sum())


def context_ring_size(config: TrainConfig) -> int:
    """Instance contexts a family run's replay memory keeps: one per environment and episode, for
    as many episodes as a full memory holds transitions of (N_t per environment and episode; a
    ``construct`` run's imitation states, at least :data:`LEAST_STATES_PER_INSTANCE`), plus the
    episode being stepped."""
    per_instance = LEAST_STATES_PER_INSTANCE if config.decode == "construct" else config.steps_per_episode
    per_episode = config.envs * per_instance
    return (-(-config.replay_size // per_episode) + 1) * config.envs


def reference_solve(model: PlacementModel) -> SolveResult:
    """What a family run's summary measures a placement against: the optimum, if the MILP proves it
    within :data:`FAMILY_EXACT_LIMIT_S`; else HiGHS's placement proven within
    :data:`FAMILY_BOUND_GAP` of it, with its lower bound (status "feasible"); else "unsolved"."""
    exact = solve(model, "auto", time_limit_s=FAMILY_EXACT_LIMIT_S)
    if exact.status in ("optimal", "infeasible"):
        return exact
    return solve(model, "milp", time_limit_s=DEFAULT_TIME_LIMIT_S, rel_gap=FAMILY_BOUND_GAP)


def family_summary(trainer: Trainer) -> dict[str, Any]:
    """A family policy on ``FAMILY_SUMMARY`` held-out instances against each one's exact optimum:
    feasible share and the gap's median and quartiles (over the instances with a proven optimum);
    on the instances whose optimum the MILP does not prove within :data:`FAMILY_EXACT_LIMIT_S`, the
    median gap to its lower bound (``bounded`` of them: :func:`reference_solve`)."""
    assert trainer.family is not None
    gaps: list[float] = []
    bound_gaps: list[float] = []
    feasible = solved = bounded = 0
    for index in range(FAMILY_SUMMARY):
        model = PlacementModel(trainer.family.held_out(trainer.config.seed, index))
        result = model.evaluate(trainer.greedy_placement(model))
        feasible += int(result.feasible)
        reference = reference_solve(model)
        latency = result.total_latency_s if result.feasible else None
        if reference.status == "optimal" and reference.total_latency_s is not None:
            solved += 1
            gap = relative_gap(latency, reference.total_latency_s)
            if gap is not None:
                gaps.append(gap)
        elif reference.status == "feasible" and reference.lower_bound_s is not None:
            bounded += 1
            gap = relative_gap(latency, reference.lower_bound_s)
            if gap is not None:
                bound_gaps.append(gap)
    quartiles = np.percentile(gaps, [25, 50, 75]).tolist() if gaps else [None, None, None]
    return {
        "spec": trainer.family.describe(),
        "held_out_instances": FAMILY_SUMMARY,
        "feasible_share": feasible / FAMILY_SUMMARY,
        "solved": solved,
        "bounded": bounded,
        "bound_gap_median": float(np.median(bound_gaps)) if bound_gaps else None,
        "gap_median": quartiles[1],
        "gap_q1": quartiles[0],
        "gap_q3": quartiles[2],
    }


def relative_gap(latency: float | None, optimum: float | None) -> float | None:
    """(latency − optimum) / optimum, or None when either is missing (infeasible, unsolved)."""
    if latency is None or optimum is None:
        return None
    return (latency - optimum) / optimum


def reward_transform(config: TrainConfig, model: PlacementModel) -> tuple[float, float]:
    """(shift, scale): the critics learn (R + shift)·scale (``TrainConfig.reward_scaling``).

    ``lambda``: (0, 1/λ). ``bound``: (B, 100/B) with B = Σ_i min_j T_ij, the latency no placement
    can beat, so a feasible placement's scaled reward is minus its percent above B. An explicit
    ``reward_scale`` replaces the scale.
    """
    if config.reward_scaling == "bound":
        bound = lower_bound(model)
        shift, scale = bound, 100.0 / bound
    else:
        shift, scale = 0.0, 1.0 / model.penalty_weight
    return shift, (config.reward_scale if config.reward_scale is not None else scale)


def _one_or_list(states: list[Any]) -> Any:
    """One environment's generator state as itself (as runs before vectorised episodes saved it)."""
    return states[0] if len(states) == 1 else states


def _progress_bar(enabled: bool, initial: int, total: int, config: TrainConfig) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    label = "classical" if config.agent == "classical" else f"quantum L={config.layers}"
    return tqdm(total=total, initial=initial, desc=f"train {label} seed {config.seed}", unit="ep")


def plot_rewards(metrics: list[dict[str, Any]], path: Path, summary: dict[str, Any]) -> None:
    """``reward.png``: the reward of every episode, its moving mean over 1/50 of the run, the
    greedy policy's reward where it was measured, and the optimum's."""
    episodes = np.array([m["episode"] for m in metrics])
    rewards = np.array([m["reward_mean"] for m in metrics])
    window = smoothing_window(len(rewards), points=50)
    smooth = moving_mean(rewards, window)
    fig, ax = pyplot().subplots(figsize=(7, 4))
    ax.plot(episodes, rewards, color="0.8", lw=0.6, label="episode mean")
    ax.plot(episodes[window - 1 :], smooth, lw=1.6, label=f"moving mean ({window} episodes)")
    greedy = [(m["episode"], m["greedy_reward"]) for m in metrics if "greedy_reward" in m]
    if greedy:
        ax.plot(*zip(*greedy), ".", ms=3, label="greedy policy")
    if summary.get("optimum_total_latency_s") is not None:
        plot_optimum(ax, summary["optimum_total_latency_s"])
    ax.set_xlabel("episode")
    ax.set_ylabel("reward")
    ax.set_ylim(bottom=reward_floor(rewards.min(), smooth.max()))
    cfg = summary["config"]
    agent = "classical" if cfg["agent"] == "classical" else f"quantum, L = {cfg['layers']}"
    ax.set_title(f"{agent}, seed {cfg['seed']}")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def load_run_config(run_dir: Path) -> tuple[TrainConfig, Instance]:
    """The run's config and instance from its config.json; a missing, unreadable or damaged file
    is a QdtInputError naming the file (and the field at fault)."""
    path = Path(run_dir) / CONFIG_FILE
    expected = f"the {CONFIG_FILE} `qdt train` writes (a JSON object with config and instance)"
    fix = "point at a run folder of `qdt train`, or start a new run with --out"
    if not path.is_file():
        raise QdtInputError(str(run_dir), f"a run folder holding {CONFIG_FILE}", "no such file in it", fix)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise QdtInputError(str(path), expected, f"unreadable JSON ({type(error).__name__})", fix) from None
    parts = data if isinstance(data, dict) else {}
    for key in ("config", "instance"):
        if not isinstance(parts.get(key), dict):
            raise QdtInputError(f"{path}: {key}", expected, f"no {key} object", fix)
    try:
        return TrainConfig.from_dict(parts["config"]), Instance.from_dict(parts["instance"])
    except QdtInputError as error:
        raise QdtInputError(f"{path} ({error.field})", error.expected, error.got, error.fix or fix) from None
    except (TypeError, ValueError) as error:
        raise QdtInputError(str(path), expected, f"{type(error).__name__}: {error}", fix) from None
