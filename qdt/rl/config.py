"""Training configuration: every option of Algorithm 1, with the defaults the paper leaves open.

Recipes (``recipe``, :data:`RECIPES`): named sets of the options that say *how* to train.
``TrainConfig.from_recipe(name, **changes)`` starts from one; ``qdt train --recipe NAME`` does
the same with the flags given on top. A run folder's config.json records its recipe, and a
saved config that records none (every run folder from before recipes) is ``v1``, so ``--resume``
continues an older run with the settings it was trained with, never with a newer default.

Without ``--recipe``, ``qdt train`` on one instance trains ``v5`` (:data:`DEFAULT_RECIPE`; so do
``qdt bench scale``, ``qdt describe`` and a sweep cell without a ``recipe`` key), and a family run
(``--family``) trains ``v2`` (:data:`FAMILY_RECIPE`: v5's learner imitates the best construction
of one fixed instance). v5 is the one recipe with which both agents met the per-instance target
(feasible in every run, within 2% of the optimum in 4 of 5 seeds) at every size up to 32 × 8 on
the tight instances of ``qdt bench scale`` (benchmarks/results/scale; v2 met it only at 8 × 2,
v4's quantum agent not at 32 × 8). Runs trained by an earlier default record their recipe and
resume with it.

* ``v2`` (the dataclass defaults, :data:`BASE_RECIPE`; the family default): the decodings and
  levers below, chosen for instances of 8 to 64 users (measurements below); ``qdt train``'s default
  before v5.
* ``v3``: v2 with ``learner = "ppo"`` (``qdt/rl/ppo.py``): the shared actor learns by clipped
  policy gradient on the rewards of its Gaussian-explored scores, and no critic is trained. On the
  tight 16 × 4 instance below (1000 episodes) it ended at 0.20%, 1.34%, 0.00%, 0.61%, 0.84%
  (classical, seeds 0–4) and 1.14%, 0.98%, 0.84% (quantum L = 6, seeds 0–2), against v2's 1.48–5.63%
  and 3.50%; on a tight 32 × 8 instance at 17.4%, 15.0% (v2: 9.9%, 14.0%; the untrained decoding
  12–13%); on the bench's default 64 × 8 instance at 29.3%, 24.4% (v2: 2.2–4.1%). Not the default:
  its update does not scale past 16 × 4 as it stands.

  ``--ppo-credit user`` (``ppo_credit``, qdt/rl/ppo.py) rates each user's scores by that user's
  own latency instead of the whole placement's. On the tight 32 × 8 instance (classical, 1000
  episodes, seeds 0–4) it ended at 2.93%, 5.28%, 4.25%, 2.98%, 3.32% (v3 as is: 17.4%, 15.0%; the
  untrained decoding 12.3–14.3%), the best of anything measured at that size, yet not within 2%;
  on the tight 16 × 4 instance at 2.75%, 0.73%, 4.59% (seeds 0–2: worse than v3's episode credit),
  and on the default 64 × 8 instance at 11.2%, 5.8% (seeds 0–1; v2: 2.2–4.1%); quantum L = 6:
  16 × 4 2.92%, 8.14% (seeds 0–1; v3: 1.14%, 0.98%), 32 × 8 9.27% (seed 0). ``both`` (the sum
  of the two advantages): 16 × 4 1.50%, 0.76%, 1.17%; 32 × 8 3.10%, 7.63%, 7.20%, infeasible,
  3.73%. Neither is a recipe: no setting is better than v2 and v3 at every size.
* ``v4``: one instance constructed user by user (``decode = "construct"``, guarded,
  ``observation = "placement"``), the actor learning by self-imitation (``learner = "elite"``):
  each episode 64 constructions, 63 of them with Gumbel noise of scale 1 on the logits, then 32
  cross-entropy steps towards the best feasible placement found so far; 100 episodes
  (:data:`ELITE_SETTINGS`; qdt/rl/construct.py, "Self-imitation", says why each). No MILP and no
  critic, and the decision is the plain construction, with no search.
* ``v5``: v4 with :data:`V5_SETTINGS`: the quantum actor's circuit reads a trained scale and
  shift of each input (``input_scaling = "affine"``, qdt/rl/quantum_layer.py), with which it
  reproduces its elite as the classical actor does, and the imitation's labels are smoothed by 0.1
  (``label_smoothing``), which keeps both agents' search finding better elites
  (qdt/rl/construct.py, "Why v5", has the measurements).
* ``v1``: the defaults before v2; ``benchmarks/results/paper``, ``instances``, ``noise``,
  ``shots`` and the demo were made with it, and their benches still train with it.
* ``paper``: Algorithm 1 as printed: rounding, rule (31) exploration, hard target copies,
  one gradient step per episode, Table 2's learning rate for every weight, unscaled rewards.

What v2 changes, each lever measured on its own on top of the feasible decoding (classical agent,
a tight 16 × 4 instance on which greedy-with-repair finds no feasible placement and the same
decoding of the untrained actors' scores is 3–6% above the optimum; 200 episodes, seeds 0 and 1;
gap of the trained policy to the MILP optimum):

  ==============================================  ===============
  v1 (argmax decoding)                            infeasible, infeasible
  + ``decode = "feasible"``                       7.4%, 9.5%
  + ``sharing = "shared"``                        5.7%, 7.1%
  + ``gamma = 0``                                 6.0%, 7.7%
  + ``gradient_steps = 4``                        5.4%, 7.1%
  + ``envs = 4``                                  4.7%, 9.0%
  + ``reward_scaling = "bound"``                  6.8%, 8.0%
  + ``observation = "features"``                  5.7%, 12.7%
  all of the above but features                   4.3%, 8.6%
  all of the above                                3.5%, 4.7%
  ==============================================  ===============

Alone, no lever brings the trained policy below what the decoding makes of untrained scores at
this budget; together they do on one seed of two. On a default 16 × 4 instance (greedy 0.8%
above the optimum), v1 ends infeasible after 300 episodes, the feasible decoding alone at 9.0%,
with sharing and γ = 0 at 4.0%, and all levers with 8 gradient steps at the optimum (0.00%, from
episode 70 on). On a default 32 × 8 instance the same reached 3.4% in 300 episodes (greedy 2.6%).
These are two seeds on one instance per size, on a machine shared with other jobs: they
choose the levers, they do not show the targets of ``qdt bench scale``, which measures them.

Defaults and why:
* ``decode`` = "feasible" (``qdt/problem/decoding.py``): users in order of the scores'
  confidence, each to its best-scored server with room, greedy's repair for the rest, so every
  placement the agents try meets every constraint and the reward is minus its latency. "argmax"
  (v1): every user on the server that scores it highest (constraint 22 always holds, the others
  may break); on the paper preset (classical agents, 4 seeds, 2000 episodes) it ended at the
  optimum in 4 of 4 seeds. "round" is the paper's reading, a^j = round(â^j), where a user can end
  up on no server or on two, and moving a user needs two agents to change at once: 1 of 4 seeds
  optimal, the others at 1,0,0,1 (11.4% above it). "construct" (family runs, or one instance with
  the ``elite`` learner of v4; with ``observation = "placement"``; ``qdt/rl/construct.py``) builds
  the placement user by user, the actor rescoring every unplaced user after each placement with
  the whole partial placement in view, and learns by imitation in every episode: of MILP optima
  and completions (DAgger) on a family, of its own best construction with ``elite``. The one
  policy measured so far that places most tight instances (where the feasible decoding's one-pass
  packing fails), at N actor calls per decision instead of a few.
* ``sharing`` = "shared": one actor acts for every agent (its input ends with the agent's one-hot
  code) and one critic learns Q for all of them (the reward is shared, so the M critics of v1
  estimate the same function): one gradient step instead of M, and every agent's experience
  trains the same weights.
* ``gamma`` = 0: the next state is the placement just chosen, and every placement can be reached
  from every state in one step, so the value of the next state is the same for every action:
  the discount only adds the critic's own error to its targets. v1 keeps Table 2's 0.99.
* ``envs`` = 8 environments stepped as one batch per episode (8·N_t transitions, one batched
  actor call per step) and ``gradient_steps`` = 8 per episode: on the tight 16 × 4 instance
  above, with all the other levers, 300 episodes: 4 gradient steps (200 episodes) 4.3%, 8.6%;
  8 steps 6.0%, 8.6%; 8 steps and 8 environments 2.3%, 4.5%; 8 steps and exploration from 0.1
  instead of 0.2 3.7% (seed 0); 8 steps and features 4.0% (seed 0).
* ``episodes`` = 1000 (v1: 2000): each episode now holds 8 rollouts and 8 gradient steps.
* ``reward_scaling`` = "bound": the critic learns 100·(R + B)/B with B = Σ_i min_j T_ij, minus the
  percent a placement lies above that lower bound, the same scale at every size; v1's R/λ shrinks
  the differences that matter (a few percent of the latency) to a few thousandths.
* ``observation`` = "column": an actor reads its column of X, as in v1 (⌈log2 N⌉ qubits).
  "features" adds every user's normalised latency row and its server's remaining capacity and
  slots (``qdt/rl/observations.py``; 10 qubits for the 64 × 8 actor). With the other levers it
  helped (3.5%, 4.7% against 4.3%, 8.6% above), alone it did not (5.7%, 12.7%); it is not in v2
  because it makes the quantum actor's circuit as wide as the critic's (9 qubits on 1024 rows per
  gradient step at 32 × 8, against 6 for the column).
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
  ``explore_fraction`` = 60% of the episodes. "flip" flips every bit of round(â) (or, with a
  score decoding, redraws a user's row of scores) with probability p on the same schedule.
  "paper" is rule (31) as printed, a = round(â + ε) with ε ~ U[0, 1], which biases every bit
  towards 1 and never decays. "gumbel" (the ``elite`` learner's, and only its) adds τ · Gumbel
  noise to the logits of all but the first of an episode's constructions, τ the level (v4: 1
  throughout).
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
* Adam with lr 1e-3, batch 128: Table 2.
* ``torch_device`` = "cpu" ("cuda", "cuda:N"): where the networks, their updates and the torch
  executors (statevector, density) compute; the environments, the replay memory, the decodings and
  the solvers stay on the CPU and numpy. It says where a run computes, not what: it is the one
  :data:`RUNTIME_FIELDS` entry, which a resumed run may change (a run trained on the CPU resumes on
  a GPU and back; the networks start from the same CPU-drawn weights on every device), and a
  config.json records it only when it is not "cpu" (so every run folder and sweep cell id from
  before it is unchanged). :func:`resolve_torch_device` refuses a device torch cannot use before
  anything is built.
* ``family`` (default None: one instance): ``users=N,servers=M[,...]`` trains one policy on
  instances drawn fresh every episode and environment (``qdt/problem/family.py``); the actors must
  read the instance (``observation = "user"`` unless told otherwise, :data:`FAMILY_DEFAULTS`, or
  ``"features"``) and the critic reads it too (4·N·M inputs). Measured on the 32 × 8 family (the
  greedy policy on 20 held-out instances, median gap to the optimum; greedy-with-repair itself
  2.05%): ``features`` 18.8% (ppo, user credit, 300 episodes, seed 0); ``user`` as first built,
  without the servers' pressure (M + 4 values, hidden 64), 17.9% with v2, 7.1% with v3, 4.27%
  with v3 and user credit, 3.55% and 4.01% (seeds 0–1) with lr 3e-3 as well, 5.42% and 4.96%
  after 1000 episodes. With the servers' pressure in the ``user`` row (as now) and
  rewards only: 5.84%, 15.2% (seeds 0–1), so rewards alone do not reach greedy.
* ``imitation_episodes`` (default 0): a family run's first episodes fit the shared actor to the
  MILP optimum of their training draws (``qdt/rl/imitation.py``), from the states the policy
  visited and states near the optimum. On the same family: 150 imitation episodes 2.61% (seed 0);
  150 imitation episodes then 150 of ppo 3.84% (the rewards undid part of it). A per-instance
  baseline for the user credit on a family (each environment's users centred on their own mean)
  was tried and not kept: 3.43%, 5.88% against 3.55%, 4.01%. On one instance imitation is refused:
  it would teach the policy that instance's answer.
* ``start`` (default "empty"; "greedy" on a family, :data:`FAMILY_DEFAULTS`): every episode and
  every decision starts from greedy-with-repair's placement instead of the empty one
  (``qdt/problem/decoding.py``), so the policy learns to improve greedy's placement. Same family,
  150 imitation episodes, seeds 0–4 (greedy itself 2.05, 1.53, 2.20, 1.65, 2.16%): from the empty
  placement 2.61, 1.91, 2.01, 2.61, 1.99% (mean 2.23%); from greedy's 1.91, 1.53, 1.57, 2.14,
  2.19% (mean 1.87%; greedy's mean 1.92%). Better than the empty start on 4 of 5 seeds and than
  greedy on 2 (equal on 2), not on every instance: on seed 3's 20 held-out instances it improved
  greedy's placement on 5 and worsened it on 12. (Seed 0 gave 1.77% in a first, patched version
  whose training left this one's at episode 41.) Tried and not kept: the near-optimum states
  drawn around greedy's placement instead of the optimum (seed 3: 2.04% against 2.14%).

Levers measured on top of v2 and not adopted (the tight 16 × 4 instance of ``qdt bench scale``,
1000 episodes, classical agent, seeds 0–4, gap of the greedy policy to the MILP optimum; v2 itself
1.48%, 1.87%, 4.83%, 5.63%, 2.32%; every run found a placement within 0.84% of the optimum while
exploring, so the policy, not the search, falls short):

* cosine decay of every learning rate to 0 over the run (seeds 0–2): 2.32%, 1.96%, 1.42%;
* the greedy placement of the Polyak-averaged actor (the target actor, τ = 0.01) instead of the
  online one: 1.18%, 1.42%, 3.15%, 3.01%, 2.38%;
* self-imitation (the actor also regresses, weight 4, onto replayed actions whose reward beat the
  critic's value of its own action): 1.70%, 3.34%, 4.38%, 0.70%, 2.18% (quantum L = 6, seed 0:
  3.11% against v2's 3.50%, the untrained decoding 4.26%).

Each puts 2 of 5 seeds within 2%, as v2 does.

On top of v3 with ``ppo_credit = "user"`` (same instances, classical, 1000 episodes), not adopted:

* cosine decay of the actor's learning rate to 0: 32 × 8 2.28%, 2.91%, 3.81%, 5.02%, 6.06% (seeds
  0–4; constant: 2.93–5.28%), 16 × 4 2.67%, 5.59%, 2.70% (constant: 2.75%, 0.73%, 4.59%), default
  64 × 8 3.16%, 6.57% (constant: 11.2%, 5.8%);
* the learning rate following the exploration level (σ / σ_start): 32 × 8 4.64%, 3.84% (seeds 0–1).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch

from qdt.circuits.vqc import check_layers
from qdt.errors import QdtInputError
from qdt.executors.base import validate_shots

MAX_EPISODES = 1_000_000
"""Most episodes N_e. metrics.jsonl gets a line of about 0.3 kB per episode, and the quantum
agents on the paper preset take about 50 ms an episode: 10^6 episodes are 0.3 GB of metrics and
about 14 hours, 500 times the paper's 2000."""

MAX_REPLAY_SIZE = 1_000_000
"""Most transitions N_m in the replay memory. It is allocated whole at the start, 10 bytes per
user-server pair per transition, and saved whole in every checkpoint: 80 MB on the paper's 4 × 2
at 10^6 (100 times the default), already 5 GB at 64 × 8."""

MAX_BATCH_SIZE = 16_384
"""Most transitions per gradient step (128 times Table 2's 128). A batch is simulated at once:
the critics' statevectors take B·2^Q·16 bytes, 1 GB at B = 16,384 on the largest VQC (12 qubits)."""

MAX_HIDDEN = 4_096
"""Widest hidden FC layer: each of the three hidden-to-hidden blocks has hidden² weights, 16.8
million (134 MB with Adam's two moments) at 4096, for every actor and critic of the run."""

MAX_ENVS = 1_024
"""Most environments per episode: every step scores all of them in one batch per agent, and each
adds N_t transitions to the replay memory per episode."""

AgentKind = Literal["quantum", "classical"]
TargetUpdate = Literal["hard", "soft"]
Exploration = Literal["flip", "gaussian", "paper", "gumbel"]
Decode = Literal["round", "argmax", "feasible", "construct"]
Observation = Literal["column", "features", "user", "placement"]
Start = Literal["empty", "greedy"]  # qdt.problem.decoding.STARTS
ConstructOrder = Literal["sure", "constrained"]  # qdt/rl/construct.py: which user a construction places next
# qdt/rl/construct.py: whether a construction is kept completable
ConstructGuard = Literal["none", "completion"]
# qdt/rl/quantum_layer.py: what a quantum actor's encoding reads
InputScaling = Literal["none", "affine"]
Sharing = Literal["none", "shared"]
RewardScaling = Literal["lambda", "bound"]
Learner = Literal["maddpg", "ppo", "elite"]
PpoCredit = Literal["episode", "user", "both"]
PPO_CREDITS: tuple[str, ...] = get_args(PpoCredit)
Recipe = Literal["v2", "v3", "v4", "v5", "v1", "paper"]
EXPLORATIONS: tuple[str, ...] = get_args(Exploration)
DECODES: tuple[str, ...] = get_args(Decode)
RECIPE_NAMES: tuple[str, ...] = get_args(Recipe)
BASE_RECIPE: Recipe = "v2"
"""The recipe of :class:`TrainConfig`'s field defaults (``TrainConfig()`` is a v2 config);
:data:`RECIPES` builds every later recipe on it."""
DEFAULT_RECIPE: Recipe = "v5"
"""``qdt train``'s recipe on one instance when ``--recipe`` is not given (also ``qdt bench scale``'s,
``qdt describe``'s and a sweep cell's without a ``recipe`` key)."""
FAMILY_RECIPE: Recipe = "v2"
"""``qdt train``'s recipe with ``--family`` when ``--recipe`` is not given: v5's elite learner
constructs one fixed instance and refuses a family."""
DEFAULT_TORCH_DEVICE = "cpu"
LEGACY_RECIPE: Recipe = "v1"
"""The recipe of a saved config that records none: every run folder written before recipes existed."""


def default_recipe(family: bool) -> Recipe:
    """The recipe a run trains when none is named: :data:`FAMILY_RECIPE` for a family run,
    :data:`DEFAULT_RECIPE` on one instance."""
    return FAMILY_RECIPE if family else DEFAULT_RECIPE


def _doc(text: str, **extra: str) -> dict[str, str]:
    """A field's one-line doc (``help``, shown by ``qdt train --help``) and optional ``metavar``."""
    return {"help": text, **extra}


@dataclass(frozen=True)
class TrainConfig:
    """Every option of one training run. ``qdt train`` generates its flags from these fields.

    Each field's ``metadata["help"]`` is its one-line doc; `qdt/cli/config_flags.py` turns
    field, type, default and doc into the flag and its help, so the two cannot disagree. The
    module docstring says why each default was chosen.
    """

    recipe: Recipe = field(
        default=BASE_RECIPE,
        metadata=_doc(
            "named set of defaults the other options start from: v5 (qdt train's default on one "
            "instance: v4 with a trained scaling of the quantum circuit's inputs and label smoothing), "
            "v2 (the default with --family; 8 to 64 users), v3 (v2 learning by policy gradient, no "
            "critic), v4 (one instance constructed user by user, imitating its best construction), v1 "
            "(the defaults before v2; reproduces benchmarks/results/paper), paper (Algorithm 1 as "
            "printed); options given on top override it (qdt/rl/config.py: RECIPES)"
        ),
    )
    agent: AgentKind = field(default="quantum", metadata=_doc("actor/critic kind"))
    layers: int = field(default=6, metadata=_doc("VQC layers L of each quantum agent"))
    backend: str = field(default="statevector", metadata=_doc("executor of the quantum agents' circuits"))
    noise: str | None = field(
        default=None,
        metadata=_doc(
            "noise-aware training: a noise profile (`qdt noise list`, or a file) for the executor; "
            "none runs noiseless",
            metavar="PROFILE",
        ),
    )
    shots: int | None = field(
        default=None,
        metadata=_doc(
            "sample the readout with this many shots (parameter-shift gradients if the executor "
            "needs them); none reads it exactly"
        ),
    )
    episodes: int = field(default=1000, metadata=_doc("episodes N_e"))
    steps_per_episode: int = field(default=10, metadata=_doc("steps per episode N_t"))
    batch_size: int = field(default=128, metadata=_doc("replay batch (at most --replay-size)"))
    replay_size: int = field(default=10_000, metadata=_doc("replay memory N_m, in transitions"))
    gamma: float = field(default=0.0, metadata=_doc("discount factor"))
    lr_actor: float = field(default=1e-3, metadata=_doc("actor learning rate (Adam)"))
    lr_critic: float = field(default=1e-3, metadata=_doc("critic learning rate (Adam)"))
    lr_quantum: float | None = field(
        default=1e-2,
        metadata=_doc(
            "learning rate (Adam) of the circuit weights; none (config files only): the FC layers' rate"
        ),
    )
    updates_per_episode: int = field(default=1, metadata=_doc("training phases per episode"))
    gradient_steps: int = field(default=8, metadata=_doc("gradient steps per agent per training phase"))
    warmup_transitions: int = field(
        default=128, metadata=_doc("transitions stored before the first update (and at least --batch-size)")
    )
    target_update: TargetUpdate = field(
        default="soft", metadata=_doc("target networks: soft (rate --tau) or hard (eqs. 39-40)")
    )
    tau: float = field(default=0.01, metadata=_doc("soft target update rate"))
    exploration: Exploration = field(
        default="gaussian", metadata=_doc("exploration noise (why each: qdt/rl/config.py)")
    )
    decode: Decode = field(
        default="feasible",
        metadata=_doc(
            "actor outputs to placement: feasible (every constraint met by construction), argmax over "
            "servers, or round (the paper's); qdt/problem/decoding.py; or construct (user by user, the "
            "actor rescoring after each placement; needs --observation placement and learns by imitation "
            "in every episode, of the MILP on a family, of its best construction with --learner elite: "
            "qdt/rl/construct.py)"
        ),
    )
    observation: Observation = field(
        default="column",
        metadata=_doc(
            "what an actor reads: column (its column of X), features (its column of X, every user's "
            "normalised latency row, its server's remaining capacity and user slots) or user (the same, "
            "user by user, with how contested each server is: one set of weights scores each user from its "
            "own row, 3M + 4 values) or placement (the construct decoding's: each user and server with the "
            "whole partial placement, 7M + 1 values)"
        ),
    )
    sharing: Sharing = field(
        default="shared",
        metadata=_doc(
            "none: an actor and a critic per agent; shared: one actor for every agent (told which agent "
            "it acts for) and one centralised critic"
        ),
    )
    envs: int = field(
        default=8, metadata=_doc("environments stepped as one batch per episode (vectorised episodes)")
    )
    learner: Learner = field(
        default="maddpg",
        metadata=_doc(
            "how the actors learn: maddpg (through the centralised critic, eqs. 37-38), ppo (clipped "
            "policy gradient on each episode's rewards of the scores explored with Gaussian noise; no "
            "critic) or elite (one instance, --decode construct: the actor imitates the best placement its "
            "--envs Gumbel-sampled constructions per episode have found; no critic, no MILP: "
            "qdt/rl/construct.py)"
        ),
    )
    ppo_clip: float = field(default=0.2, metadata=_doc("ppo: clip range of the probability ratio"))
    ppo_credit: PpoCredit = field(
        default="episode",
        metadata=_doc(
            "ppo: what an advantage rates: episode (a transition's reward against the episode's, one "
            "probability ratio per transition) or user (each user's own latency against that user's "
            "in the episode, one ratio per user) or both (their sum, per user): qdt/rl/ppo.py"
        ),
    )
    reward_scaling: RewardScaling = field(
        default="bound",
        metadata=_doc(
            "rewards as the critics learn them: lambda (R / lambda, the penalty weight) or bound "
            "(100 (R + B) / B, B = sum_i min_j T_ij: minus the percent above that lower bound)"
        ),
    )
    explore_start: float = field(default=0.2, metadata=_doc("initial exploration level (sigma or p)"))
    explore_end: float = field(default=0.01, metadata=_doc("final exploration level"))
    explore_fraction: float = field(default=0.6, metadata=_doc("share of the episodes the decay takes"))
    hidden: int = field(default=192, metadata=_doc("width of the actors' and critics' hidden FC layers"))
    reward_scale: float | None = field(
        default=None,
        metadata=_doc("multiply rewards by this; none: by 1/lambda, the instance's penalty weight"),
    )
    logit_penalty: float = field(
        default=1e-3, metadata=_doc("weight c of c*mean(z^2) of the actor's pre-sigmoid outputs")
    )
    channel_fading_db: float = field(
        default=0.0, metadata=_doc("time-varying channels: dB of log-normal fading (0: static)")
    )
    family: str | None = field(
        default=None,
        metadata=_doc(
            "train one policy on a family of instances, new ones drawn every episode and environment: "
            "users=N,servers=M[,tight=true][,seed=S][,<generator setting>=V] (qdt/problem/family.py); "
            "its actors read the instance (--observation user, the default with --family, or features)",
            metavar="SPEC",
        ),
    )
    imitation_episodes: int = field(
        default=0,
        metadata=_doc(
            "family runs: for this many first episodes the shared actor learns the MILP optimum of the "
            "episode's training instances (cross-entropy, qdt/rl/imitation.py) instead of the learner's "
            "update; 0: rewards only"
        ),
    )
    construct_order: ConstructOrder = field(
        default="sure",
        metadata=_doc(
            "--decode construct: which user goes next, the one the actor is surest of (sure) or one "
            "with the fewest servers left that fit it, the surest among those (constrained)"
        ),
    )
    construct_guard: ConstructGuard = field(
        default="none",
        metadata=_doc(
            "--decode construct: completion keeps every construction completable: a user goes to the "
            "actor's server only if a smallest-share completion of the rest still fits, else to that of "
            "the last completion that did (one completion per step, no search; qdt/rl/construct.py)"
        ),
    )
    input_scaling: InputScaling = field(
        default="none",
        metadata=_doc(
            "quantum agents: affine gives each input of an actor's circuit a trainable scale and shift "
            "before its amplitude encoding (recipe v5; they mix nothing, the circuit still does; "
            "qdt/rl/quantum_layer.py); none encodes the inputs as they are. The classical agent has no "
            "circuit and ignores it"
        ),
    )
    label_gap: float = field(
        default=0.0,
        metadata=_doc(
            "--decode construct: the imitation labels are MILP placements proven within this share of "
            "the optimum (HiGHS's relative MIP gap; 0: proven optima). On tight 32 x 8 instances 0.01 "
            "finds them in about a sixth of the time of a proof (qdt/rl/construct.py)"
        ),
    )
    label_smoothing: float = field(
        default=0.0,
        metadata=_doc(
            "--decode construct: the imitation's cross-entropy gives its label weight 1 - e and spreads e "
            "over the servers meeting the user's deadline (label smoothing; v5: 0.1). It bounds how sharp "
            "the imitated logits grow, so the elite learner's Gumbel noise keeps finding other "
            "constructions (qdt/rl/construct.py)"
        ),
    )
    start: Start = field(
        default="empty",
        metadata=_doc(
            "where every episode and every decision starts: empty (nothing placed) or greedy "
            "(greedy-with-repair's placement, which the actors then improve; the default with --family)"
        ),
    )
    checkpoint_every: int = field(default=100, metadata=_doc("episodes between checkpoints"))
    threads: int = field(default=1, metadata=_doc("torch threads (part of determinism)"))
    torch_device: str = field(
        default=DEFAULT_TORCH_DEVICE,
        metadata=_doc(
            "torch device of the networks and the torch executors: cpu, cuda or cuda:N (environments, "
            "replay memory and solvers stay on the CPU); a resumed run may change it",
            metavar="DEVICE",
        ),
    )
    seed: int = field(default=0, metadata=_doc("run seed"))

    def __post_init__(self) -> None:
        _choice("agent", self.agent, get_args(AgentKind))
        _choice("target_update", self.target_update, get_args(TargetUpdate))
        _choice("exploration", self.exploration, EXPLORATIONS)
        _choice("decode", self.decode, DECODES)
        _choice("recipe", self.recipe, RECIPE_NAMES)
        _choice("observation", self.observation, get_args(Observation))
        _choice("start", self.start, get_args(Start))
        _choice("construct_order", self.construct_order, get_args(ConstructOrder))
        _choice("construct_guard", self.construct_guard, get_args(ConstructGuard))
        _choice("input_scaling", self.input_scaling, get_args(InputScaling))
        _choice("sharing", self.sharing, get_args(Sharing))
        _choice("reward_scaling", self.reward_scaling, get_args(RewardScaling))
        _choice("learner", self.learner, get_args(Learner))
        _choice("ppo_credit", self.ppo_credit, PPO_CREDITS)
        _int_at_least("layers", self.layers, 0)
        check_layers(self.layers, "--layers")  # qdt/circuits/vqc.py: MAX_LAYERS and why
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
            "envs",
        ):
            _int_at_least(name, getattr(self, name), 1)
        _int_at_most("episodes", self.episodes, MAX_EPISODES)
        _int_at_most("replay_size", self.replay_size, MAX_REPLAY_SIZE)
        _int_at_most("batch_size", self.batch_size, MAX_BATCH_SIZE)
        _int_at_most("hidden", self.hidden, MAX_HIDDEN)
        _int_at_most("envs", self.envs, MAX_ENVS)
        _int_at_least("warmup_transitions", self.warmup_transitions, 0)
        if self.shots is not None:
            validate_shots(self.shots, "--shots")
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
        check_torch_device(self.torch_device)
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
        if self.family is not None:
            self._check_family()
        self._check_imitation()
        self._check_elite()
        self._check_construct()
        if self.learner == "ppo":
            self._check_ppo()
        elif self.ppo_credit != "episode":
            raise QdtInputError(
                "--ppo-credit",
                "episode with the maddpg learner (credit is a ppo setting)",
                self.ppo_credit,
                "add --learner ppo, or drop --ppo-credit",
            )

    def _check_imitation(self) -> None:
        """Imitation needs a family (on one instance it would teach that instance's answer), a
        shared actor and a score decoding, and at most ``episodes`` episodes."""
        _int_at_least("imitation_episodes", self.imitation_episodes, 0)
        if self.imitation_episodes == 0:
            return
        if self.imitation_episodes > self.episodes:
            raise QdtInputError(
                "--imitation-episodes", f"at most --episodes = {self.episodes}", self.imitation_episodes
            )
        for wrong, needed, fix in (
            (
                self.family is None,
                "a family run (on one instance imitation would teach the policy that instance's answer)",
                "add --family users=N,servers=M, or drop --imitation-episodes",
            ),
            (self.sharing != "shared", "one shared actor (sharing = shared)", "add --sharing shared"),
            (self.decode == "round", "a score decoding (feasible or argmax)", "add --decode feasible"),
        ):
            if wrong:
                raise QdtInputError("--imitation-episodes", needed, self.imitation_episodes, fix)

    def _check_construct(self) -> None:
        """The ``construct`` decoding and the ``placement`` observation go together, on a family, with
        one shared actor learning by imitation in every episode (qdt/rl/construct.py); only its
        labels have a gap."""
        _float_in("label_gap", self.label_gap, 0.0, MAX_LABEL_GAP)
        _float_in("label_smoothing", self.label_smoothing, 0.0, MAX_LABEL_SMOOTHING)
        for flag, value, unset, needed in (
            (
                "--construct-order",
                self.construct_order,
                "sure",
                "sure unless --decode construct (only a construction places users in an order)",
            ),
            (
                "--construct-guard",
                self.construct_guard,
                "none",
                "none unless --decode construct (only a construction is guarded)",
            ),
            (
                "--label-gap",
                self.label_gap,
                0.0,
                "0 unless --decode construct (the other decodings imitate proven optima)",
            ),
            (
                "--label-smoothing",
                self.label_smoothing,
                0.0,
                "0 unless --decode construct (only a constructing actor's imitation is smoothed)",
            ),
        ):
            if value != unset and self.decode != "construct":
                raise QdtInputError(flag, needed, value, f"drop {flag}, or add --decode construct")
        if self.decode != "construct" and self.observation != "placement":
            return
        for wrong, flag, needed, fix in (
            (self.decode != "construct", "--observation", "the construct decoding", "add --decode construct"),
            (
                self.observation != "placement",
                "--decode",
                "observation = placement (the whole partial placement)",
                "add --observation placement",
            ),
            (
                self.family is None and self.learner != "elite",
                "--decode",
                "a family run (it learns by imitating the MILP on the family's training draws), or "
                "--learner elite on one instance (it imitates the best of its own constructions)",
                "add --family users=N,servers=M, or --learner elite --exploration gumbel",
            ),
            (
                self.sharing != "shared",
                "--decode",
                "one shared actor (sharing = shared)",
                "add --sharing shared",
            ),
            (
                self.imitation_episodes not in (0, self.episodes),
                "--imitation-episodes",
                f"0 or --episodes = {self.episodes} with --decode construct (it learns by imitation in "
                "every episode either way)",
                "drop --imitation-episodes",
            ),
            (
                self.start != "empty",
                "--start",
                "empty with --decode construct (a construction starts from nothing placed)",
                "add --start empty",
            ),
        ):
            if wrong:
                value = {
                    "--observation": self.observation,
                    "--decode": self.decode,
                    "--imitation-episodes": self.imitation_episodes,
                    "--start": self.start,
                }[flag]
                raise QdtInputError(flag, needed, value, fix)

    def _check_elite(self) -> None:
        """The ``elite`` learner constructs one fixed instance (qdt/rl/construct.py), explored by
        Gumbel noise on its logits, and ``gumbel`` exploration exists only for it."""
        if self.learner != "elite":
            if self.exploration == "gumbel":
                raise QdtInputError(
                    "--exploration",
                    "flip, gaussian or paper (gumbel perturbs the logits of the elite learner's "
                    "constructions)",
                    self.exploration,
                    "add --learner elite --decode construct, or --exploration gaussian",
                )
            return
        for wrong, flag, needed, value, fix in (
            (
                self.decode != "construct",
                "--decode",
                "construct with the elite learner (it imitates the best of its constructions)",
                self.decode,
                "add --decode construct --observation placement",
            ),
            (
                self.family is not None,
                "--family",
                "none with the elite learner (its elite is the best placement of one instance; a family "
                "run imitates the MILP instead)",
                self.family,
                "drop --family, or use --learner maddpg with --decode construct on a family",
            ),
            (
                self.exploration != "gumbel",
                "--exploration",
                "gumbel with the elite learner (its constructions are sampled by Gumbel noise on the logits)",
                self.exploration,
                "add --exploration gumbel",
            ),
            (
                self.channel_fading_db != 0.0,
                "--fading-db",
                "0 with the elite learner (its elite is the best placement of one fixed instance)",
                self.channel_fading_db,
                "drop --fading-db",
            ),
        ):
            if wrong:
                raise QdtInputError(flag, needed, value, fix)

    def _check_ppo(self) -> None:
        """ppo learns from the log-probability of Gaussian-explored scores of one shared actor."""
        _float_in("ppo_clip", self.ppo_clip, 0.0, 1.0, low_open=True)
        for name, needed, fix in (
            ("exploration", "gaussian", "--exploration gaussian"),
            ("sharing", "shared", "--sharing shared"),
        ):
            if getattr(self, name) != needed:
                raise QdtInputError(
                    "learner", f"{name} = {needed} with the ppo learner", getattr(self, name), f"add {fix}"
                )
        if self.decode == "round":
            raise QdtInputError(
                "learner", "a score decoding (feasible or argmax) with the ppo learner", "decode = round"
            )
        if self.explore_end <= 0.0:
            raise QdtInputError(
                "learner",
                "explore_end > 0 with the ppo learner (its policy is a Gaussian of that width)",
                self.explore_end,
            )

    def _check_family(self) -> None:
        """A family spec that parses (kept in its canonical form), with actors that read the instance."""
        from qdt.problem.family import parse_family

        if not isinstance(self.family, str):
            raise QdtInputError("--family", "a family spec users=N,servers=M[,...]", self.family)
        object.__setattr__(self, "family", parse_family(self.family).describe())
        if self.observation not in ("features", "user", "placement"):
            raise QdtInputError(
                "--family",
                "actors that read each instance (observation = features, user or placement)",
                f"observation = {self.observation}: the actors would see nothing of the instance they place",
                "add --observation user (or features)",
            )

    @property
    def trains_critic(self) -> bool:
        """Whether the learner trains (and so builds) a critic: ``maddpg`` does, ``ppo`` does not, and
        neither does a run that learns by imitation only (``decode = "construct"``)."""
        return self.learner != "ppo" and self.decode != "construct"

    def to_dict(self) -> dict[str, Any]:
        """Every field, as config.json records it: ``torch_device`` only when it is not "cpu",
        ``family`` only for a family run, ``imitation_episodes`` and ``label_gap`` only when not 0,
        ``start`` only when not "empty", ``construct_order`` only when not "sure" and
        the fields of :data:`RECORDED_OFF_RECIPE` only when not their recipe's (so older configs and
        their sweep cells read the same)."""
        data = dataclasses.asdict(self)
        if data["torch_device"] == DEFAULT_TORCH_DEVICE:
            del data["torch_device"]
        if data["family"] is None:
            del data["family"]
        if data["imitation_episodes"] == 0:
            del data["imitation_episodes"]
        if data["start"] == "empty":
            del data["start"]
        if data["label_gap"] == 0.0:
            del data["label_gap"]
        if data["construct_order"] == "sure":
            del data["construct_order"]
        fields = TrainConfig.__dataclass_fields__
        for name in RECORDED_OFF_RECIPE:  # read back on load from the recipe (or the field's default)
            if data[name] == RECIPES[self.recipe].get(name, fields[name].default):
                del data[name]
        return data

    @classmethod
    def from_recipe(cls, recipe: str | None = None, **changes: Any) -> TrainConfig:
        """The recipe's settings (:data:`RECIPES`) with ``changes`` on top; the config records
        ``recipe``. Without one: :func:`default_recipe` (v5 on one instance, v2 for a family)."""
        if recipe is None:
            recipe = default_recipe(family=changes.get("family") is not None)
        _choice("recipe", recipe, RECIPE_NAMES)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise QdtInputError(f"config.{unknown[0]}", f"one of {sorted(known)}", "an unknown field")
        return cls(**{**RECIPES[recipe], **changes, "recipe": recipe})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A saved config (a run folder's config.json): fields it lacks come from the recipe it
        records, and a config that records none was written before recipes existed: ``v1``. So
        ``--resume`` of an older run continues with the settings it was trained with."""
        data = dict(data)
        recipe = data.pop("recipe", LEGACY_RECIPE)
        return cls.from_recipe(recipe, **data)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


RECIPE_FIELDS: tuple[str, ...] = (
    "episodes",
    "steps_per_episode",
    "batch_size",
    "replay_size",
    "gamma",
    "lr_actor",
    "lr_critic",
    "lr_quantum",
    "updates_per_episode",
    "gradient_steps",
    "warmup_transitions",
    "target_update",
    "tau",
    "exploration",
    "decode",
    "observation",
    "sharing",
    "envs",
    "reward_scaling",
    "explore_start",
    "explore_end",
    "explore_fraction",
    "hidden",
    "reward_scale",
    "logit_penalty",
    "learner",
    "ppo_clip",
    "ppo_credit",
    "construct_guard",
    "input_scaling",
    "label_smoothing",
)
"""The fields a recipe sets: how to train. The others (agent, layers, backend, noise, shots,
channel_fading_db, family, checkpoint_every, threads, torch_device, seed) say what to train and where,
whatever the recipe."""

RECORDED_OFF_RECIPE: tuple[str, ...] = ("construct_guard", "input_scaling", "label_smoothing")
"""Recipe fields that config.json records only where a run's value differs from its recipe's (fields
added after run folders existed: an older folder, which lacks them, reads its recipe's value)."""

MAX_LABEL_SMOOTHING = 0.5
"""The largest ``label_smoothing``: past it the label weighs no more than the spread beside it."""

MAX_LABEL_GAP = 0.1
"""The largest ``label_gap``: labels further than 10% from the optimum would teach a policy worse
than the ones it already learns (1-2% from the optimum at tight 16 x 4)."""

FAMILY_DEFAULTS: dict[str, Any] = {"observation": "user", "hidden": 64, "start": "greedy"}
"""What a family run (``--family``) changes in its recipe unless told otherwise: actors that score
user by user (``observation = "user"``, the one observation whose policies placed unseen instances
well: on 20 held-out 32 × 8 instances, ppo with user credit, 300 episodes, seed 0, 3.55% above the
optimum against 18.8% for ``features``) with 64-wide FC layers (the scorer reads 3M + 4 values per
user, and runs on B·N rows: at 192 wide an episode costs several times more, and in the imitation
prototype 128 wide did no better than 64, 2.28% against 2.24%), and rollouts that start from
greedy-with-repair's placement (``start = "greedy"``; measured above, under ``start``)."""

CONSTRUCT_DEFAULTS: dict[str, Any] = {"observation": "placement", "hidden": 64, "start": "empty"}
"""What ``--decode construct`` changes in its recipe unless told otherwise, in place of
:data:`FAMILY_DEFAULTS`: the actor reading the whole partial placement, 64-wide FC layers (as the
prototype measured in qdt/rl/construct.py), constructions from nothing placed."""

RUNTIME_FIELDS: tuple[str, ...] = ("torch_device",)
"""Fields that say where a run computes, not what it computes: ``qdt train --resume`` may change them."""

ELITE_SETTINGS: dict[str, Any] = {
    "learner": "elite",
    "decode": "construct",
    "observation": "placement",
    "construct_guard": "completion",
    "hidden": 64,
    "exploration": "gumbel",
    "explore_start": 1.0,
    "explore_end": 1.0,
    "envs": 64,
    "batch_size": 32,
    "replay_size": 32,
    "gradient_steps": 32,
    "lr_actor": 3e-3,
    "episodes": 100,
}
"""What v4 changes in v2 (qdt/rl/construct.py, "Self-imitation", says why each): 64 guarded
constructions per episode, 63 of them with Gumbel noise of scale 1 on the logits, then 32
cross-entropy steps at learning rate 3e-3 on 32 random parts of the elite; 100 episodes. The replay
memory is unused (its smallest size)."""

V5_SETTINGS: dict[str, Any] = {"input_scaling": "affine", "label_smoothing": 0.1}
"""What v5 changes in v4 (qdt/rl/construct.py, "Why v5", has the measurements): the
quantum actor's circuit reads a trained scale and shift of each input, so that it fits its elite
as closely as the classical actor does, and the imitation smooths its labels by 0.1, so that the
fitted logits stay within reach of the Gumbel noise and the search goes on finding better elites."""

_V1: dict[str, Any] = {
    "episodes": 2000,
    "steps_per_episode": 10,
    "batch_size": 128,
    "replay_size": 10_000,
    "gamma": 0.99,
    "lr_actor": 1e-3,
    "lr_critic": 1e-3,
    "lr_quantum": 1e-2,
    "updates_per_episode": 1,
    "gradient_steps": 1,
    "warmup_transitions": 128,
    "target_update": "soft",
    "tau": 0.01,
    "exploration": "gaussian",
    "decode": "argmax",
    "observation": "column",
    "sharing": "none",
    "envs": 1,
    "reward_scaling": "lambda",
    "explore_start": 0.2,
    "explore_end": 0.01,
    "explore_fraction": 0.6,
    "hidden": 192,
    "reward_scale": None,
    "logit_penalty": 1e-3,
    "learner": "maddpg",
    "ppo_clip": 0.2,
}

_V2: dict[str, Any] = {
    name: spec.default for name, spec in TrainConfig.__dataclass_fields__.items() if name in RECIPE_FIELDS
}

RECIPES: dict[str, dict[str, Any]] = {
    # The dataclass defaults above (BASE_RECIPE; the family default; the module docstring says why each).
    "v2": _V2,
    # v2 with the actors learning by clipped policy gradient instead of through the critic.
    "v3": {**_V2, "learner": "ppo"},
    # One instance, constructed user by user (guarded), the actor imitating its own best construction.
    "v4": {**_V2, **ELITE_SETTINGS},
    # v4 with label smoothing and a trained scale and shift of every input of the quantum actor's circuit.
    "v5": {**_V2, **ELITE_SETTINGS, **V5_SETTINGS},
    # The defaults before v2: benchmarks/results/paper, instances, noise, shots and demo were made with it.
    "v1": _V1,
    # Algorithm 1 as printed: rounding (a^j = round(â^j)), rule (31) exploration, hard target
    # copies (39-40), one gradient step per episode, Table 2's learning rate for every weight, the
    # rewards as the environment gives them, and no logit penalty.
    "paper": {
        **_V1,
        "decode": "round",
        "exploration": "paper",
        "target_update": "hard",
        "lr_quantum": None,
        "reward_scale": 1.0,
        "logit_penalty": 0.0,
    },
}


def check_torch_device(value: object, field: str = "--torch-device") -> str:
    """``value`` if it names a torch device qdt runs on: cpu, cuda or cuda:N (whether this machine
    has it is :func:`resolve_torch_device`'s question)."""
    text = value if isinstance(value, str) else ""
    kind, colon, index = text.partition(":")
    if (kind == "cpu" and not colon) or (kind == "cuda" and (not colon or index.isdigit())):
        return text
    raise QdtInputError(field, "a torch device: cpu, cuda or cuda:N", value)


def resolve_torch_device(value: object, field: str = "--torch-device") -> torch.device:
    """The torch device ``value`` names, refused (a QdtInputError naming ``field``, with the fix)
    when torch on this machine cannot use it: checked once, before anything is built."""
    device = torch.device(check_torch_device(value, field))
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            fix = (
                f"use --torch-device cpu, or install a CUDA build of torch; this one, {torch.__version__}, "
                "has none (on a GPU machine: QDT_CONSTRAINTS= ./install.sh)"
            )
        else:
            fix = (
                f"use --torch-device cpu, or make a GPU visible to torch {torch.__version__} "
                "(its driver, CUDA_VISIBLE_DEVICES)"
            )
        raise QdtInputError(field, "cpu, or cuda on a machine where torch sees a CUDA GPU", value, fix)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise QdtInputError(
            field, f"cuda, or cuda:N with N below {count} (the GPUs torch sees)", value, "use cuda or cuda:0"
        )
    return device


def _choice(name: str, value: object, options: tuple[str, ...]) -> None:
    if value not in options:
        raise QdtInputError(f"--{name.replace('_', '-')}", f"one of {', '.join(options)}", value)


def _int_at_least(name: str, value: object, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise QdtInputError(f"--{name.replace('_', '-')}", f"an integer >= {low}", value)


def _int_at_most(name: str, value: int, high: int) -> None:
    """``value`` (an int, checked before) at most ``high``, the field's documented maximum above."""
    if value > high:
        flag = f"--{name.replace('_', '-')}"
        raise QdtInputError(
            flag, f"an integer <= {high:,}", value, f"use at most {high:,}; why this limit: qdt/rl/config.py"
        )


def _float_in(name: str, value: object, low: float, high: float, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        assert isinstance(value, (int, float))
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        bound = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise QdtInputError(f"--{name.replace('_', '-')}", f"a finite number in {bound}", value)
