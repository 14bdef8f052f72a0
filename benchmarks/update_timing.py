"""Training cost at scale: one training update, and one training episode, qdt against PennyLane.

    .venv/bin/python benchmarks/update_timing.py                 # 32x8 and 64x8, recipes v1, v2, v3
        [--shapes 32x8,64x8] [--recipes v1,v2,v3] [--layers 6] [--repeats 7] [--episodes 12]
        [--stacks qdt,pennylane] [--threads 1] [--out benchmarks/results/update] [--quick]

**One training update** (issue 14, item 3): what `qdt train` does per gradient step for all agents,
on a batch of 128 transitions, quantum agents with L = 6: with per-agent networks (recipe v1) one
`update_agent` per agent (critic step, then actor step, each reading every agent's target actor);
with a shared actor and critic (v2) one `update_shared` (the shared actor reads all B·M columns);
with the ppo learner (v3: shared actor, no critic) the whole per-episode update instead, one
`ppo_update` of `gradient_steps` (8) ascent steps on one episode's K·N_t = 80 transitions.
The same networks are built twice: once as `qdt train` builds them (the circuits on qdt's
statevector executor) and once with every circuit replaced by the same VQC on PennyLane
`default.qubit` in a TorchLayer with backprop (`qdt.experiments.pennylane_front`): same widths,
same FC layers, same optimisers. The two stacks are timed in one interleaved run (ours, theirs,
ours, ... on the same random batches) and the median is reported.

**One training episode**: `Trainer.run_episode()` of `qdt train` (qdt's executor) for the quantum
agent and for the classical agent on the same instance and recipe, after the replay memory has
filled (the first episodes, which only collect transitions, are run but not timed). Their
difference is the quantum part of an episode.

Instances: `generate_instance(GeneratorConfig(users=N, servers=M), 0)`. Torch on `--threads`
threads. Writes `update.md` and `update.csv` to `--out` and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qdt.cli.bench import parse_shapes
from qdt.experiments.pennylane_front import PennyLaneFront
from qdt.experiments.tables import format_table
from qdt.files import atomic_path, atomic_write_text
from qdt.problem.generator import GeneratorConfig, generate_instance
from qdt.problem.model import PlacementModel
from qdt.rl.builders import actor_width, network_builders
from qdt.rl.config import TrainConfig
from qdt.rl.maddpg import AgentNets, make_agents, update_agent, update_shared
from qdt.rl.networks import Actor, Critic
from qdt.rl.ppo import ppo_update
from qdt.rl.train import Trainer

RESULTS = Path(__file__).resolve().parent / "results" / "update"
FIELDS = ("shape", "recipe", "what", "stack", "median_ms", "q1_ms", "q3_ms", "repeats", "note")


def config_for(recipe: str, agent: str, layers: int, threads: int, **changes: Any) -> TrainConfig:
    return TrainConfig.from_recipe(recipe, agent=agent, layers=layers, threads=threads, **changes)


def build_agents(config: TrainConfig, model: PlacementModel, stack: str) -> list[AgentNets]:
    """The agents `qdt train` builds, or the same with every circuit on PennyLane (module docstring)."""
    ours_actor, ours_critic = network_builders(config, model, np.random.SeedSequence(config.seed))
    n, m = model.n_users, model.n_servers

    def pennylane_actor(agent: int) -> Actor:
        actor = ours_actor(agent)
        actor.front = PennyLaneFront(actor_width(config, n, m), config.layers)
        return actor

    def pennylane_critic() -> Critic:
        critic = ours_critic()
        critic.front = PennyLaneFront(2 * n * m, config.layers)
        return critic

    builders = (pennylane_actor, pennylane_critic) if stack == "pennylane" else (ours_actor, ours_critic)
    torch.manual_seed(config.seed)
    return make_agents(config, 1 if config.sharing == "shared" else m, *builders)


PPO_SIGMA = 0.1
"""The exploration level the timed ppo update reads (its cost does not depend on it)."""


def random_batch(rng: np.random.Generator, config: TrainConfig, n: int, m: int) -> dict[str, torch.Tensor]:
    """Random transitions in the shape the recipe's update reads: a replay batch (maddpg), or one
    episode's transitions with an advantage each (ppo)."""
    if config.learner == "ppo":
        rows = config.envs * config.steps_per_episode
        return {
            "states": torch.from_numpy(rng.integers(0, 2, (rows, n, m)).astype(np.float64)),
            "actions": torch.from_numpy(rng.random((rows, n, m))),
            "advantages": torch.from_numpy(rng.standard_normal(rows)),
        }
    batch = config.batch_size
    return {
        "states": torch.from_numpy(rng.integers(0, 2, (batch, n, m)).astype(np.float64)),
        "actions": torch.from_numpy(rng.random((batch, n, m))),
        "rewards": torch.from_numpy(-rng.random(batch)),
        "next_states": torch.from_numpy(rng.integers(0, 2, (batch, n, m)).astype(np.float64)),
    }


def full_update(agents: list[AgentNets], config: TrainConfig, batch: dict[str, torch.Tensor]) -> None:
    """One gradient step of every agent, as the training loop makes it (qdt/rl/train.py); for the
    ppo learner its whole per-episode update."""
    if config.learner == "ppo":
        ppo_update(
            agents[0],
            batch["states"],
            batch["actions"],
            batch["advantages"],
            sigma=PPO_SIGMA,
            clip=config.ppo_clip,
            steps=config.gradient_steps,
        )
        return
    if config.sharing == "shared":
        update_shared(agents[0], gamma=config.gamma, logit_penalty=config.logit_penalty, **batch)
        return
    for j in range(len(agents)):
        update_agent(agents, j, gamma=config.gamma, logit_penalty=config.logit_penalty, **batch)


def quartiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    if len(ordered) < 4:
        return statistics.median(ordered), ordered[0], ordered[-1]
    q1, q2, q3 = statistics.quantiles(ordered, n=4)
    return q2, q1, q3


def time_updates(
    shape: tuple[int, int], recipe: str, stacks: list[str], args: argparse.Namespace
) -> list[dict[str, Any]]:
    n, m = shape
    model = PlacementModel(generate_instance(GeneratorConfig(users=n, servers=m), 0))
    config = config_for(recipe, "quantum", args.layers, args.threads)
    agents = {stack: build_agents(config, model, stack) for stack in stacks}
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {stack: [] for stack in stacks}
    for repeat in range(args.repeats + 1):  # the first round warms caches up and is not kept
        batch = random_batch(rng, config, n, m)
        for stack in stacks:
            start = time.perf_counter()
            full_update(agents[stack], config, batch)
            if repeat:
                times[stack].append(time.perf_counter() - start)
        print(
            f"  {n}x{m} {recipe} update round {repeat}: "
            + ", ".join(f"{s} {1e3 * times[s][-1]:.0f} ms" for s in stacks if times[s]),
            file=sys.stderr,
        )
    rows = []
    for stack in stacks:
        median, q1, q3 = quartiles(times[stack])
        rows.append(
            _row(shape, recipe, "update", stack, median, q1, q3, len(times[stack]), _update_note(config))
        )
    return rows


def _update_note(config: TrainConfig) -> str:
    if config.learner == "ppo":
        rows = config.envs * config.steps_per_episode
        return (
            f"ppo_update: {config.gradient_steps} steps on {rows} transitions (actor on {rows} x M columns)"
        )
    if config.sharing == "shared":
        return f"update_shared, batch {config.batch_size} (actor on {config.batch_size} x M columns)"
    return f"update_agent for each of the M agents, batch {config.batch_size}"


def time_episodes(shape: tuple[int, int], recipe: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    n, m = shape
    instance = generate_instance(GeneratorConfig(users=n, servers=m), 0)
    rows = []
    for agent in ("quantum", "classical"):
        config = config_for(recipe, agent, args.layers, args.threads, episodes=1000)
        trainer = Trainer(config, instance)
        times = []
        while len(times) < args.episodes:
            training = trainer.replay.size >= max(config.batch_size, config.warmup_transitions)
            start = time.perf_counter()
            trainer.run_episode()
            if training:
                times.append(time.perf_counter() - start)
        median, q1, q3 = quartiles(times)
        note = (
            f"{config.envs} env(s) x {config.steps_per_episode} steps, "
            f"{config.gradient_steps} gradient step(s)"
        )
        rows.append(_row(shape, recipe, "episode", f"qdt {agent}", median, q1, q3, len(times), note))
        print(f"  {n}x{m} {recipe} {agent} episode: {1e3 * median:.0f} ms", file=sys.stderr)
    return rows


def _row(
    shape: tuple[int, int],
    recipe: str,
    what: str,
    stack: str,
    median: float,
    q1: float,
    q3: float,
    repeats: int,
    note: str,
) -> dict[str, Any]:
    return {
        "shape": f"{shape[0]}x{shape[1]}",
        "recipe": recipe,
        "what": what,
        "stack": stack,
        "median_ms": 1e3 * median,
        "q1_ms": 1e3 * q1,
        "q3_ms": 1e3 * q3,
        "repeats": repeats,
        "note": note,
    }


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    table = []
    for shape in dict.fromkeys(r["shape"] for r in rows):
        for recipe in dict.fromkeys(r["recipe"] for r in rows):
            mine = {(r["what"], r["stack"]): r for r in rows if r["shape"] == shape and r["recipe"] == recipe}
            if not mine:
                continue
            ours, theirs = mine.get(("update", "qdt")), mine.get(("update", "pennylane"))
            quantum, classical = mine.get(("episode", "qdt quantum")), mine.get(("episode", "qdt classical"))
            table.append(
                [
                    shape,
                    recipe,
                    _ms(ours),
                    _ms(theirs),
                    f"{theirs['median_ms'] / ours['median_ms']:.1f}x" if ours and theirs else "",
                    _ms(quantum),
                    _ms(classical),
                    f"{(quantum['median_ms'] - classical['median_ms']):.0f} ms"
                    if quantum and classical
                    else "",
                ]
            )
    head = [
        "N×M",
        "recipe",
        "update, qdt",
        "update, PennyLane",
        "qdt faster",
        "episode, quantum",
        "episode, classical",
        "quantum part of an episode",
    ]
    notes = {
        (r["recipe"], r["note"]) for r in rows if r["what"] == "update" and r["stack"] == "qdt"
    }  # what one update is, per recipe
    lines = [f"- update, {recipe}: {note}" for recipe, note in sorted(notes)]
    lines += sorted({f"- episode, {r['recipe']}: {r['note']}" for r in rows if r["what"] == "episode"})
    return header + "\n\n" + format_table(head, table, markdown=True) + "\n\n" + "\n".join(lines) + "\n"


def _ms(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    return f"{row['median_ms']:.0f} ms [{row['q1_ms']:.0f}, {row['q3_ms']:.0f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", default="32x8,64x8", help="N x M instances (default 32x8,64x8)")
    parser.add_argument("--recipes", default="v1,v2,v3", help="training recipes (default v1,v2,v3)")
    parser.add_argument("--layers", type=int, default=6, help="VQC layers L (default 6)")
    parser.add_argument("--repeats", type=int, default=7, help="timed update rounds per stack (default 7)")
    parser.add_argument(
        "--episodes", type=int, default=12, help="timed training episodes per agent (default 12)"
    )
    parser.add_argument("--stacks", default="qdt,pennylane", help="update stacks: qdt, pennylane")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"output folder (default {RESULTS})")
    parser.add_argument("--quick", action="store_true", help="8x2 only, 2 repeats, 3 episodes (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.shapes, args.repeats, args.episodes = "8x2", 2, 3
    stacks = [s.strip() for s in args.stacks.split(",") if s.strip()]
    unknown = sorted(set(stacks) - {"qdt", "pennylane"})
    if unknown or not stacks:
        parser.error(f"--stacks: expected qdt and/or pennylane, got {args.stacks!r}")
    torch.set_num_threads(args.threads)
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for shape in parse_shapes(args.shapes, max_users=1024):
        for recipe in [r.strip() for r in args.recipes.split(",")]:
            rows += time_updates(shape, recipe, stacks, args)
            rows += time_episodes(shape, recipe, args)
    wall = time.perf_counter() - started
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    header = (
        f"Training cost at scale, quantum agents L = {args.layers}, "
        f"torch {args.threads} thread(s); "
        f"median [quartiles] of {args.repeats} interleaved update rounds and {args.episodes} training "
        f"episodes; `python benchmarks/update_timing.py`; wall time {wall:.0f} s; "
        f"load average {load_before} before, {load_after} after; torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs."
    )
    text = markdown(rows, header)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "update.md", text)
    with atomic_path(args.out / "update.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in row.items()})
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
