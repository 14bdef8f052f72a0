"""``qdt evaluate``: a trained policy under noise and shots, against its noiseless self."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from qdt.cli.failures import fields_as_flags, printable
from qdt.errors import QdtInputError
from qdt.experiments.tables import format_table
from qdt.stats import format_interval


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a trained policy under noise and shots",
        description=(
            "Run a trained quantum policy's actors on --backend (with --noise and --shots) and "
            "compare with the same weights run exactly (statevector). Reports, per agent, the "
            "agreement of its actions with the noiseless policy over all 2^N observations; the "
            "agreement of the decoded decisions over all joint states; the placement reached from "
            "the empty one (feasibility, total latency, gap to the exact optimum); and decision "
            "latency (wall time per decision and per batch of 2^N observations). --repeats R "
            "gives 95%% intervals over R independent shot draws."
        ).replace("%%", "%"),
    )
    parser.add_argument("--run", type=Path, required=True, metavar="DIR", help="a run folder of qdt train")
    parser.add_argument(
        "--backend", default="statevector", help="backend profile (`qdt backends list`; default statevector)"
    )
    parser.add_argument("--noise", metavar="PROFILE", help="noise profile (name or file)")
    parser.add_argument("--shots", type=int, help="shots per circuit (default: exact)")
    parser.add_argument("--repeats", type=int, default=1, help="independent draws (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation's randomness")
    parser.add_argument(
        "--rollout",
        choices=("calls", "table"),
        default="calls",
        help="decisions by fresh calls (default) or from one batched call per agent (for slow devices)",
    )
    parser.add_argument(
        "--torch-device",
        default="cpu",
        metavar="DEVICE",
        help="torch device of the actors and the torch executors: cpu, cuda or cuda:N (default cpu)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from qdt.executors import open_backend, validate_shots
    from qdt.rl.config import resolve_torch_device
    from qdt.rl.evaluation import evaluate_policy
    from qdt.rl.policy import load_policy

    if args.repeats < 1:
        raise QdtInputError("--repeats", "an integer >= 1", args.repeats)
    if args.shots is not None:
        validate_shots(args.shots, "--shots")
    if args.seed < 0:
        raise QdtInputError("--seed", "a non-negative integer", args.seed)
    resolve_torch_device(args.torch_device)
    reference = load_policy(args.run, executor=open_backend("statevector"), torch_device=args.torch_device)
    if reference.config.agent != "quantum":
        raise QdtInputError(
            "--run", "a run of quantum agents", f"{args.run} (classical agents have no circuit)"
        )
    seed = np.random.SeedSequence(args.seed)
    with fields_as_flags(backend="--backend", noise="--noise", shots="--shots"):
        executor = open_backend(args.backend, seed=seed.spawn(1)[0], noise=args.noise, shots=args.shots)
    target = load_policy(args.run, executor=executor, torch_device=args.torch_device)
    show_bar = args.repeats > 1 and not args.json
    with tqdm(total=args.repeats, desc="evaluate", unit="draw", disable=not show_bar) as bar:
        result = evaluate_policy(
            reference,
            target,
            repeats=args.repeats,
            seed=args.seed,
            rollout=args.rollout,
            on_repeat=lambda _: bar.update(1),
        )
    result = {
        "run": str(args.run),
        "backend": args.backend,
        "noise": args.noise,
        "shots": args.shots,
        "capabilities": dataclasses.asdict(executor.capabilities),
        **result,
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        _print(result)
    return 0


def _fmt(value: dict[str, float] | None, percent: bool = False) -> str:
    if value is None:
        return "-"
    scale, unit = (100.0, "%") if percent else (1.0, "")
    return format_interval(value["mean"], value["lo95"], value["hi95"], scale=scale, spec=".4g", unit=unit)


def _print(result: dict[str, Any]) -> None:
    noise = result["noise"] or "none"
    shots = result["shots"] or "exact"
    print(
        f"{printable(result['run'])} on {printable(result['backend'])} (noise {printable(noise)}, "
        f"shots {shots}, {result['repeats']} draws)"
    )
    rows = [
        [
            f"agent {a['agent']}",
            _fmt(a["action_agreement"], percent=True),
            _fmt(a["bit_agreement"], percent=True),
        ]
        for a in result["agents"]
    ]
    print(format_table(["", "action agreement", "bit agreement"], rows))
    placement = result["placement"]
    noiseless = result["noiseless"]
    print(
        f"decision agreement over {result['joint_states']} joint states: "
        f"{_fmt(result['decision_agreement'], percent=True)}"
    )
    print(
        f"placement: feasible in {100 * placement['feasible_rate']:.0f}% of draws, total latency "
        f"{_fmt(placement['total_latency_s'])} s, gap {_fmt(placement['gap'], percent=True)}"
    )
    gap = noiseless["gap"]
    print(
        f"noiseless: {noiseless['assignment']} "
        f"({'feasible' if noiseless['feasible'] else 'infeasible'}), "
        f"total latency {noiseless['total_latency_s']:.4f} s, "
        f"gap {'-' if gap is None else f'{100 * gap:.2f}%'}"
    )
    latency = result["decision_latency"]
    print(
        f"decision latency: {1e3 * latency['per_decision_s']:.2f} ms per decision "
        f"({latency['per_decision_calls']} calls), {1e3 * latency['per_batch_s']:.2f} ms per batch of "
        f"{latency['batch_size']}"
    )
