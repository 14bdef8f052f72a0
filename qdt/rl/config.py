"""Training configuration: every option of Algorithm 1, with the defaults the paper leaves open.

Defaults and why:
* ``steps_per_episode`` (N_t) = 10: the paper does not say; ten steps let a policy that starts
  from the empty placement correct itself several times per episode.
* ``replay_size`` (N_m) = 10 000 transitions (20% of a 2000-episode run at N_t = 10).
* ``updates_per_episode`` = 1 training phase per episode as Algorithm 1 prints it; each phase
  makes ``gradient_steps`` gradient steps per agent (critic, then actor).
* ``target_update`` = "soft": θ_t ← τ·θ + (1 − τ)·θ_t with τ = 0.01 after every training phase.
  "hard" copies θ_t ← θ (eqs. 39–40 as printed); with one gradient step per phase that leaves no
  target network at all, and with γ = 0.99 the critics diverged (losses of 1e6–1e13 measured).
* ``exploration`` = "gaussian" (the default): N(0, σ²) added to the actor outputs, σ decaying
  linearly from ``explore_start`` = 0.2 to ``explore_end`` = 0.01 over the first
  ``explore_fraction`` = 60% of the episodes. "flip" flips every bit of round(â) (or, with argmax
  decoding, redraws a user's row of scores) with probability p on the same schedule. "paper" is
  rule (31) as printed, a = round(â + ε) with ε ~ U[0, 1], which biases every bit towards 1 and
  never decays.
* ``decode`` = "argmax": the actor outputs are scores; every user goes to the server whose agent
  scores it highest, and agent j's action is the resulting column j (constraint 22 always holds;
  the critic learns on the scores). "round" is the paper's reading, a^j = round(â^j), where a
  user can end up on no server or on two, and moving a user needs two agents to change at once:
  on the paper preset (classical agents, 4 seeds, 2000 episodes) rounding ended at the optimum in
  1 of 4 seeds and at the placement 1,0,0,1 (11.4% above it) otherwise; argmax in 4 of 4.
* ``logit_penalty`` = 1e-3: c·mean(z²) of the actor's pre-sigmoid outputs joins the actor loss
  (38), as in the reference MADDPG implementation, so the sigmoids do not saturate; a saturated
  actor has no gradient, and no exploration noise moves its argmax.
* ``noise``/``shots`` (default None, None): the executor runs exactly. With a noise profile the
  circuits run under that noise (noise-aware training on ``density``); with shots the readout is
  sampled, and an executor that cannot differentiate its sampled readout gets parameter-shift
  gradients, every shifted point of a batch in the same call.
* ``lr_quantum`` = 1e-2 for the circuits' RX weights (the FC layers keep 1e-3): initialised
  uniformly in [0, 2π), at 1e-3 they barely move in 2000 updates and the circuit stays a random
  feature map, good for some seeds and not others. Measured on the paper preset, quantum L = 6,
  2000 episodes: at 1e-3, 2 of 5 seeds ended at the optimum (one at +11.4%, two infeasible); at
  1e-2, 6 of 7 seeds (one infeasible); 3e-2 was worse on the seed tried. None uses the FC's rate.
* Adam with lr 1e-3, γ = 0.99, batch 128: Table 2.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from qdt.errors import QdtInputError

AgentKind = Literal["quantum", "classical"]
EXPLORATIONS = ("flip", "gaussian", "paper")
DECODES = ("round", "argmax")


@dataclass(frozen=True)
class TrainConfig:
    agent: AgentKind = "quantum"
    layers: int = 6
    backend: str = "statevector"
    noise: str | None = None  # a noise profile (name in noise_models/ or a file) for the executor
    shots: int | None = None  # None: exact readout; else sampled with this many shots
    episodes: int = 2000
    steps_per_episode: int = 10
    batch_size: int = 128
    replay_size: int = 10_000
    gamma: float = 0.99
    lr_actor: float = 1e-3
    lr_critic: float = 1e-3
    lr_quantum: float | None = 1e-2  # learning rate of the circuit weights; None: as the network's
    updates_per_episode: int = 1
    gradient_steps: int = 1
    warmup_transitions: int = 128
    target_update: Literal["hard", "soft"] = "soft"
    tau: float = 0.01
    exploration: str = "gaussian"
    decode: str = "argmax"
    explore_start: float = 0.2
    explore_end: float = 0.01
    explore_fraction: float = 0.6
    hidden: int = 192
    reward_scale: float | None = None
    logit_penalty: float = 1e-3
    channel_fading_db: float = 0.0
    checkpoint_every: int = 100
    threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        _choice("agent", self.agent, ("quantum", "classical"))
        _choice("target_update", self.target_update, ("hard", "soft"))
        _choice("exploration", self.exploration, EXPLORATIONS)
        _choice("decode", self.decode, DECODES)
        _int_at_least("layers", self.layers, 0)
        for name in (
            "episodes",
            "steps_per_episode",
            "batch_size",
            "replay_size",
            "updates_per_episode",
            "gradient_steps",
            "hidden",
            "checkpoint_every",
            "threads",
        ):
            _int_at_least(name, getattr(self, name), 1)
        _int_at_least("warmup_transitions", self.warmup_transitions, 0)
        if self.shots is not None:
            _int_at_least("shots", self.shots, 1)
        if self.noise is not None and (not isinstance(self.noise, str) or not self.noise.strip()):
            raise QdtInputError("--noise", "a noise profile name or file path", self.noise)
        if self.agent == "classical" and (self.noise is not None or self.shots is not None):
            raise QdtInputError(
                "--noise/--shots",
                "no noise or shots for the classical agent",
                "a quantum option",
                "drop --noise/--shots or train --agent quantum",
            )
        _int_at_least("seed", self.seed, 0)
        for name in ("lr_actor", "lr_critic"):
            _float_in(name, getattr(self, name), 0.0, math.inf, low_open=True)
        if self.lr_quantum is not None:
            _float_in("lr_quantum", self.lr_quantum, 0.0, math.inf, low_open=True)
        _float_in("gamma", self.gamma, 0.0, 1.0)
        _float_in("tau", self.tau, 0.0, 1.0, low_open=True)
        _float_in("explore_start", self.explore_start, 0.0, 1.0)
        _float_in("explore_end", self.explore_end, 0.0, 1.0)
        _float_in("explore_fraction", self.explore_fraction, 0.0, 1.0)
        _float_in("channel_fading_db", self.channel_fading_db, 0.0, math.inf)
        _float_in("logit_penalty", self.logit_penalty, 0.0, math.inf)
        if self.reward_scale is not None:
            _float_in("reward_scale", self.reward_scale, 0.0, math.inf, low_open=True)
        if self.batch_size > self.replay_size:
            raise QdtInputError("batch_size", f"at most replay_size = {self.replay_size}", self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise QdtInputError(f"config.{unknown[0]}", f"one of {sorted(known)}", "an unknown field")
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def _choice(name: str, value: object, options: tuple[str, ...]) -> None:
    if value not in options:
        raise QdtInputError(f"--{name.replace('_', '-')}", f"one of {', '.join(options)}", value)


def _int_at_least(name: str, value: object, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise QdtInputError(f"--{name.replace('_', '-')}", f"an integer >= {low}", value)


def _float_in(name: str, value: object, low: float, high: float, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        assert isinstance(value, (int, float))
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        bound = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise QdtInputError(f"--{name.replace('_', '-')}", f"a finite number in {bound}", value)
