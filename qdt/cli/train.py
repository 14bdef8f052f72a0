"""``qdt train``: Algorithm 1 on an instance, with checkpoints, exact resume and a summary."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from qdt.errors import QdtInputError
from qdt.problem.generator import paper_instance
from qdt.problem.instance import load_instance
from qdt.rl.config import DECODES, EXPLORATIONS, TrainConfig

# CLI flag → TrainConfig field, for every option `qdt train` exposes.
_FLAGS: dict[str, str] = {
    "agent": "agent",
    "layers": "layers",
    "backend": "backend",
    "noise": "noise",
    "shots": "shots",
    "episodes": "episodes",
    "seed": "seed",
    "steps_per_episode": "steps_per_episode",
    "batch_size": "batch_size",
    "replay_size": "replay_size",
    "gamma": "gamma",
    "lr": "lr_actor",
    "lr_quantum": "lr_quantum",
    "gradient_steps": "gradient_steps",
    "target_update": "target_update",
    "tau": "tau",
    "exploration": "exploration",
    "decode": "decode",
    "explore_start": "explore_start",
    "explore_end": "explore_end",
    "explore_fraction": "explore_fraction",
    "fading_db": "channel_fading_db",
    "checkpoint_every": "checkpoint_every",
    "threads": "threads",
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the multi-agent actor-critic (Algorithm 1)",
        description=(
            "Train one actor and one centralised critic per base station on an instance "
            "(Algorithm 1, eqs. 37-40). Writes DIR/config.json, metrics.jsonl (one line per "
            "episode), checkpoint.pt (every --checkpoint-every episodes), summary.json (the "
            "greedy placement against the exact optimum) and reward.png. `--resume DIR` "
            "continues an interrupted run bit for bit; changing a setting on resume is refused."
        ),
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--instance", type=Path, metavar="FILE", help="instance JSON (qdt-instance/1)")
    source.add_argument("--preset", choices=("paper",), help="built-in instance (default: paper)")
    source.add_argument("--resume", type=Path, metavar="DIR", help="continue the run in DIR")
    parser.add_argument("--out", type=Path, metavar="DIR", help="run folder (required unless --resume)")
    parser.add_argument("--agent", choices=("quantum", "classical"), help="default quantum")
    parser.add_argument("--layers", type=int, help="VQC layers L (default 6)")
    parser.add_argument("--backend", help="executor for quantum agents (default statevector)")
    parser.add_argument(
        "--noise",
        metavar="PROFILE",
        help="noise-aware training: a noise profile (`qdt noise list`, or a file) for the executor",
    )
    parser.add_argument(
        "--shots", type=int, help="sample the readout with S shots (parameter-shift gradients if needed)"
    )
    parser.add_argument("--episodes", type=int, help="episodes N_e (default 2000)")
    parser.add_argument("--seed", type=int, help="run seed (default 0)")
    parser.add_argument("--steps-per-episode", type=int, help="steps per episode N_t (default 10)")
    parser.add_argument("--batch-size", type=int, help="replay batch (default 128)")
    parser.add_argument("--replay-size", type=int, help="replay memory N_m (default 10000)")
    parser.add_argument("--gamma", type=float, help="discount (default 0.99)")
    parser.add_argument("--lr", type=float, help="Adam learning rate, actor and critic (default 1e-3)")
    parser.add_argument(
        "--lr-quantum", type=float, help="learning rate of the circuit weights (default: as --lr)"
    )
    parser.add_argument("--gradient-steps", type=int, help="gradient steps per agent per episode")
    parser.add_argument("--target-update", choices=("hard", "soft"), help="default soft; hard = eqs. 39-40")
    parser.add_argument("--tau", type=float, help="soft target rate (default 0.01)")
    parser.add_argument(
        "--exploration", choices=EXPLORATIONS, help="default gaussian (see qdt/rl/config.py)"
    )
    parser.add_argument("--decode", choices=DECODES, help="argmax (default) or round (the paper's)")
    parser.add_argument("--explore-start", type=float, help="initial exploration level")
    parser.add_argument("--explore-end", type=float, help="final exploration level")
    parser.add_argument("--explore-fraction", type=float, help="share of episodes the decay takes")
    parser.add_argument("--fading-db", type=float, help="time-varying channels: dB of log-normal fading")
    parser.add_argument("--checkpoint-every", type=int, help="episodes between checkpoints (default 100)")
    parser.add_argument("--threads", type=int, help="torch threads (default 1; part of determinism)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=_cmd_train)


def _given(args: argparse.Namespace) -> dict[str, Any]:
    changes = {}
    for flag, field in _FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            changes[field] = value
    if "lr_actor" in changes:
        changes["lr_critic"] = changes["lr_actor"]
    return changes


def _cmd_train(args: argparse.Namespace) -> int:
    from qdt.rl.train import load_run_config, train

    changes = _given(args)
    if args.resume is not None:
        config, instance = load_run_config(args.resume)
        for field, value in changes.items():
            if getattr(config, field) != value:
                raise QdtInputError(
                    f"--{field.replace('_', '-')}",
                    f"the run's own value {getattr(config, field)!r} when resuming",
                    value,
                    "resume without changing settings, or start a new run with --out",
                )
        if args.out is not None and args.out.resolve() != args.resume.resolve():
            raise QdtInputError("--out", "nothing, or the folder being resumed", str(args.out))
        run_dir = args.resume
        resume = True
    else:
        if args.out is None:
            raise QdtInputError("--out", "a run folder", "nothing", "e.g. --out runs/quantum-l6")
        if (args.out / "config.json").exists():
            raise QdtInputError(
                "--out", "a new or empty folder", f"{args.out} (already holds a run)", "use --resume"
            )
        instance = load_instance(args.instance) if args.instance is not None else paper_instance()
        config = TrainConfig().replace(**changes)
        run_dir = args.out
        resume = False
    summary = train(config, instance, run_dir, resume=resume, progress=not args.no_progress)
    if args.json:
        json.dump(summary, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    _print_summary(summary, run_dir)
    return 0


def _print_summary(summary: dict[str, Any], run_dir: Path) -> None:
    verdict = "feasible" if summary["feasible"] else "INFEASIBLE"
    assignment = summary["assignment"]
    placed = "-" if assignment is None else ",".join(map(str, assignment))
    print(f"greedy placement {placed}: {verdict}, total latency {summary['total_latency_s']:.4f} s")
    if summary["optimum_total_latency_s"] is not None:
        gap = summary["gap"]
        gap_text = "n/a (infeasible)" if gap is None else f"{100 * gap:.2f}%"
        print(f"optimum {summary['optimum_total_latency_s']:.4f} s, gap {gap_text}")
    else:
        print(f"optimum: {summary['optimum_status']}")
    if summary["best_seen_total_latency_s"] is not None:
        print(f"best feasible placement seen in training: {summary['best_seen_total_latency_s']:.4f} s")
    print(f"{summary['episodes']} episodes in {summary['wall_s']:.1f} s; wrote {run_dir}/summary.json")
