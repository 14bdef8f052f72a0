"""A trained run's actors, loaded for inference on any executor.

>>> policy = load_policy(Path("runs/q6"))                       # the backend it trained on
>>> policy = load_policy(Path("runs/q6"), executor=aer_executor)  # same weights, other executor
>>> policy = load_policy(Path("runs/q6"), instance=unseen)        # same weights, another N x M instance
>>> policy.placement()              # greedy rollout from the run's start placement, [N, M] int8
>>> policy.keep = "best"            # ... its best visited placement instead of its last (rollout.py)
>>> policy.local_search = True      # ... then improved by moves and swaps (problem/local_search.py)
>>> policy.scores(states)           # â for a batch of joint states [B, N, M] → [B, N, M]

Every agent's actor sees only its own column of X (and, with ``observation = "features"``,
what the instance adds to it); :meth:`TrainedPolicy.actor_scores` runs one agent's actor on a
whole batch of observations in one executor call, so evaluating all 2^N observations an agent can
see costs one call per agent. With parameter sharing every agent's entry of ``actors`` is the one
shared actor, which is told which agent it acts for.

What a policy reads from its instance (the ``features`` observation's tables, the feasible
decoding's constraints) is rebuilt from the instance it is loaded with and is not part of the
checkpoint, so ``load_policy(run, instance=other)`` runs the trained weights on an instance the
run never saw, of the run's own size N x M (``qdt place``). :func:`trained_on` says whether the
run was trained on one instance or on a family of them.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from qdt.errors import QdtInputError
from qdt.executors import Executor, open_backend
from qdt.problem.decoding import decode, start_placement
from qdt.problem.instance import Instance
from qdt.problem.local_search import improve_placements
from qdt.problem.model import PlacementModel
from qdt.rl.builders import actor_builder
from qdt.rl.checkpoint import checkpoint_content, load_checkpoint
from qdt.rl.config import DEFAULT_TORCH_DEVICE, TrainConfig, resolve_torch_device
from qdt.rl.construct import Sampling, check_sampled_decode, construct_best
from qdt.rl.construct import warm_up as warm_up_construction
from qdt.rl.maddpg import all_observations, shared_actor_scores
from qdt.rl.networks import Actor
from qdt.rl.observations import ObservationFeatures
from qdt.rl.rollout import Keep, roll_out
from qdt.sim.device import CPU

__all__ = [
    "TrainedOn",
    "TrainedPolicy",
    "all_observations",
    "check_instance_size",
    "load_policy",
    "trained_on",
]

TrainedOn = Literal["instance", "family"]


@dataclass
class TrainedPolicy:
    config: TrainConfig
    instance: Instance
    actors: list[Actor]
    executor: Executor | None  # None for classical agents
    episode: int  # episodes trained when the checkpoint was written
    sampling: Sampling = field(default_factory=Sampling)  # a constructing run's decision (:meth:`sample`)
    sampling_rng: np.random.Generator | None = None
    keep: Keep = "last"  # which placement of a rollout decides (qdt/rl/rollout.py); a construction ignores it
    local_search: bool = False  # every decision ends with qdt/problem/local_search.py (each construction's)

    @property
    def n_users(self) -> int:
        return self.instance.n_users

    @property
    def n_servers(self) -> int:
        return self.instance.n_servers

    @property
    def device(self) -> torch.device:
        """The torch device the actors run on (``load_policy``'s ``torch_device``)."""
        return torch.device(self.config.torch_device)

    def actor_scores(self, agent: int, observations: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Agent ``agent``'s â for a batch of observations [B, N] (its column of X) → [B, N], on the
        CPU whatever device the actors run on (observations enter it here, scores leave it here)."""
        self.check_scores_columns()
        obs = torch.as_tensor(observations, dtype=torch.float64, device=self.device)
        if obs.ndim != 2 or obs.shape[1] != self.n_users:
            raise QdtInputError("observations", f"an array of shape [B, {self.n_users}]", tuple(obs.shape))
        with torch.no_grad():
            return self.actors[agent](obs, agent).cpu()

    def scores(self, states: np.ndarray | torch.Tensor) -> torch.Tensor:
        """â for a batch of joint states [B, N, M] → [B, N, M]: one executor call for a shared actor
        (its B·M columns, each told its agent), one per agent otherwise."""
        self.check_scores_columns()
        x = self.joint_states(states)
        if self.n_servers > 1 and all(actor is self.actors[0] for actor in self.actors):
            with torch.no_grad():
                return shared_actor_scores(self.actors[0], x.to(self.device)).cpu()
        return self.scores_by_agent(x)

    def scores_by_agent(self, x: torch.Tensor) -> torch.Tensor:
        """â for joint states [B, N, M] (checked by :meth:`joint_states`), agent by agent through
        :meth:`actor_scores`."""
        return torch.stack([self.actor_scores(j, x[:, :, j]) for j in range(self.n_servers)], dim=2)

    def joint_states(self, states: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``states`` [B, N, M] (or one [N, M]) as float64 on the CPU, its shape checked."""
        x = torch.as_tensor(states, dtype=torch.float64, device=CPU)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or tuple(x.shape[1:]) != (self.n_users, self.n_servers):
            raise QdtInputError(
                "states", f"an array of shape [B, {self.n_users}, {self.n_servers}]", tuple(x.shape)
            )
        return x

    def decide(self, state: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
        """The next placement [N, M] from the current one, decoded as in training."""
        return self.decode(self.scores(state)[0].numpy() if scores is None else scores)

    def decode(self, scores: np.ndarray) -> np.ndarray:
        """Placements from scores [N, M] or [B, N, M], by the run's decoding (qdt/problem/decoding.py)."""
        self.check_scores_columns()
        return decode(self.config.decode, scores, self.placement_model)

    def placement(self, steps: int | None = None) -> np.ndarray:
        """Greedy rollout of N_t (or ``steps``) decisions from the run's start placement (empty, or
        greedy's: ``config.start``), ended early at a fixed point when the scores are deterministic
        (:func:`qdt.rl.rollout.roll_out`); its last placement, or with ``keep = "best"`` the best it
        visited. With ``local_search`` the decision is then improved by
        :func:`qdt.problem.local_search.improve_placements` (each sampled construction before the
        best is kept)."""
        if self.constructs:
            return self.construct()
        start = self.start_placement()
        steps = self.config.steps_per_episode if steps is None else steps
        best_of = self.placement_model if self.keep == "best" else None
        placement = roll_out(self.decide, start, steps, self.deterministic, best_of)[0]
        return improve_placements(self.placement_model, placement) if self.local_search else placement

    def check_scores_columns(self) -> None:
        """Refuse, with one clear error, to score columns of X with a run that constructs its
        placements (its actor reads partial placements, not columns: :meth:`construct`)."""
        if self.constructs:
            raise QdtInputError(
                "--run",
                "a run whose actors score columns of X (score tables and rollouts: qdt evaluate)",
                "a run with the construct decoding (its actor reads the whole partial placement)",
                "place it with `qdt place` or `qdt infer`, which construct the placement user by user",
            )

    @property
    def constructs(self) -> bool:
        """Whether the run decides by construction (``decode = "construct"``, qdt/rl/construct.py):
        user by user, its actor reading the whole partial placement, rather than by scoring columns."""
        return self.config.decode == "construct"

    def construct(self) -> np.ndarray:
        """The placement [N, M] the actor constructs on the policy's instance: N calls of its
        executor (one per user placed), each one batch of U·M rows for the U users still unplaced
        (K·U·M with K sampled constructions: :meth:`sample`)."""
        return construct_best(
            self.actors[0],
            [self.placement_model],
            self.device,
            order=self.config.construct_order,
            guard=self.config.construct_guard,
            sampling=self.sampling,
            rng=self.sampling_rng,
            local_search=self.local_search,
        )[0]

    def warm_up(self) -> None:
        """Load what a constructing decision compiles on first use (:func:`qdt.rl.construct.warm_up`:
        no actor or executor call), so that the next decision's time is the decision's alone."""
        if self.constructs:
            warm_up_construction(
                [self.placement_model],
                self.device,
                self.config.construct_order,
                self.config.construct_guard,
                self.local_search,
            )

    def sample(self, sampling: Sampling, seed: np.random.SeedSequence) -> None:
        """Decide by the best of ``sampling.samples`` constructions from now on
        (:class:`qdt.rl.construct.Sampling`), their noise drawn from ``seed``; refused for a run
        that does not construct its placements (a rollout of score tables samples nothing)."""
        check_sampled_decode(
            sampling, self.config.decode, "drop --samples, or use a run trained with --decode construct"
        )
        self.sampling = sampling
        self.sampling_rng = np.random.default_rng(seed)

    def start_placement(self) -> np.ndarray:
        """The placement [N, M] the run's rollouts start from on the policy's instance (``config.start``:
        :func:`qdt.problem.decoding.start_placement`)."""
        return start_placement(self.placement_model, self.config.start)

    @property
    def deterministic(self) -> bool:
        """Whether a decision is a function of the placement: classical actors, or quantum actors on
        an executor that computes exactly (no shots)."""
        return all(actor.deterministic for actor in self.actors)

    def model(self) -> PlacementModel:
        return PlacementModel(self.instance)

    def rebind(self, instance: Instance, model: PlacementModel | None = None) -> None:
        """Act on ``instance`` (the run's size N x M) from now on, as ``load_policy(run,
        instance=instance)`` would, without reading the checkpoint or opening an executor again:
        the weights stay, each actor's observation tables (built from the instance, never part of
        the checkpoint) and the decoding's model are rebuilt from ``instance`` (or from ``model``,
        its PlacementModel when the caller has it). Cheap, so a benchmark can time one decision per
        instance (``qdt bench generalise``) with the policy loaded once."""
        check_instance_size(self.instance, instance)
        model = PlacementModel(instance) if model is None else model
        shared = self.config.sharing == "shared"
        for actor in {id(actor): actor for actor in self.actors}.values():  # a shared actor once
            if actor.features is not None:
                actor.features = ObservationFeatures(self.config.observation, model, shared).to(self.device)
        self.instance = instance
        self.placement_model = model  # replaces the cached one

    @functools.cached_property
    def placement_model(self) -> PlacementModel:
        """The instance's model, built once (the feasible decoding reads it at every decision)."""
        return PlacementModel(self.instance)


def trained_on(run_dir: Path) -> TrainedOn:
    """What the run in ``run_dir`` was trained on, from its config.json: ``"family"`` when it holds
    a ``family`` entry next to ``config`` (a run trained on a family of instances), else
    ``"instance"`` (one instance: the ``instance`` entry). Read the run with
    :func:`qdt.rl.train.load_run_config` first: a config.json that is not a JSON object is
    refused here without saying more."""
    from qdt.rl.train import CONFIG_FILE

    path = Path(run_dir) / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise QdtInputError(str(path), "a JSON object", type(error).__name__) from None
    if not isinstance(data, dict):
        raise QdtInputError(str(path), "a JSON object", type(data).__name__)
    return "family" if data.get("family") is not None else "instance"


def check_instance_size(run: Instance, instance: Instance, field: str = "instance") -> None:
    """Refuse ``instance`` unless it has the trained run's size: the actors' inputs and outputs are
    N wide (more with ``observation = "features"``) and there are M of them."""
    trained = (run.n_users, run.n_servers)
    given = (instance.n_users, instance.n_servers)
    if given != trained:
        raise QdtInputError(
            field,
            f"an instance of the run's size, {trained[0]} users x {trained[1]} servers",
            f"{given[0]} users x {given[1]} servers",
            f"give an instance of {trained[0]} users and {trained[1]} servers "
            f"(qdt instance generate --users {trained[0]} --servers {trained[1]} ...), or a run trained on "
            f"{given[0]} users x {given[1]} servers",
        )


def load_policy(
    run_dir: Path,
    executor: Executor | None = None,
    torch_device: str = DEFAULT_TORCH_DEVICE,
    instance: Instance | None = None,
) -> TrainedPolicy:
    """The actors of the run in ``run_dir`` (its latest checkpoint) on ``executor``, their torch
    modules on ``torch_device`` (default the CPU, whatever device the run trained on).

    Without ``executor`` quantum actors run on the executor they trained on. The weights are the
    same whatever executor runs them; only how the circuit is executed changes. With ``instance``
    the actors act on that instance instead of the run's own (its observation tables and its
    decoding); one of another size is refused (:func:`check_instance_size`) before the checkpoint
    is read.
    """
    from qdt.rl.train import load_run_config  # the training module imports this one's peers

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise QdtInputError("--run", "a run folder written by `qdt train`", str(run_dir))
    config, own = load_run_config(run_dir)
    if instance is None:
        instance = own
    check_instance_size(own, instance)
    resolve_torch_device(torch_device)  # refused before anything is loaded or built
    config = config.replace(torch_device=torch_device)
    payload = load_checkpoint(run_dir)
    if config.agent == "quantum" and executor is None:
        executor = open_backend(config.backend, seed=np.random.SeedSequence(config.seed).spawn(1)[0])
    build = actor_builder(config, PlacementModel(instance), executor if config.agent == "quantum" else None)
    with checkpoint_content(run_dir):
        saved = payload["agents"]  # one entry per agent, or one shared by all of them
        networks: list[Actor] = []
        for j, entry in enumerate(saved):
            actor = build(j)
            actor.load_state_dict(entry["actor"])
            networks.append(actor.eval().requires_grad_(False))
        episode = int(payload["episode"])
    actors = networks * instance.n_servers if len(networks) == 1 else networks
    return TrainedPolicy(
        config=config,
        instance=instance,
        actors=actors,
        executor=executor if config.agent == "quantum" else None,
        episode=episode,
    )
