"""Which user a construction places next (`--construct-order`), on the unseen instances of
`qdt bench generalise --tight --construct`.

    .venv/bin/qdt bench generalise --tight --construct --shapes 16x4 --workers 2 --runs RUNS --out OUT
    .venv/bin/python benchmarks/construct_order.py --runs RUNS --out OUT [--shapes 16x4] [--unseen 100]
        [--milp-limit 20] [--guard completion]

On every unseen tight instance of each shape with a proven MILP optimum (the bench's own test set,
`unseen_instances`), every finished constructing run of `--runs` constructs its placement in each
order of `qdt/rl/construct.py` (`sure`: the user the actor is surest of; `constrained`: a user with
the fewest servers left that fit it, the surest among those), whatever order it trained in, and so
does the same actor untrained (the run's seed's initial weights). Reported per run and order: the
share placed feasibly and the median gap to the optimum (an infeasible placement counts as
infinitely far), with greedy-with-repair's on the same instances. With `--guard completion` every
construction is guarded (`--construct-guard`, whatever the run trained with), and a row for the
guard's own smallest-share completion from the empty placement is added. Writes
`construct_order.md` (`construct_order_guarded.md` with the guard) to `--out` and prints it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from qdt.cli.bench import parse_shapes
from qdt.errors import QdtInputError
from qdt.experiments.bench.generalise import unseen_instances
from qdt.experiments.sweep.table import RESULTS_FILE, read_results
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import solve
from qdt.rl.config import ConstructGuard, ConstructOrder, TrainConfig
from qdt.rl.construct import construct_placements
from qdt.rl.networks import Actor
from qdt.rl.observations import context_of
from qdt.rl.policy import load_policy
from qdt.rl.share_completion import smallest_share_completion
from qdt.rl.train import Trainer, family_instance

ORDERS: tuple[ConstructOrder, ...] = ("sure", "constrained")


def summary(gaps: list[float]) -> tuple[str, str]:
    """(feasible share, median gap) of gaps where an infeasible placement is inf."""
    if not gaps:
        return "-", "-"
    median = float(np.median(gaps))
    return f"{100 * np.mean(np.isfinite(gaps)):.0f}%", "infeasible" if np.isinf(
        median
    ) else f"{100 * median:.2f}%"


def order_rows(
    shape: tuple[int, int], run_dirs: list[Path], unseen: int, limit: float, guard: ConstructGuard = "none"
) -> list[tuple[str, str, str, str, str, str]]:
    """Rows (run, order, feasible, median gap, untrained feasible, untrained median gap) for one
    shape, after a row for greedy-with-repair (and, guarded, one for the guard's completion)."""
    instances = unseen_instances(shape, unseen, tight=True)
    models = [PlacementModel(instance) for instance in instances]
    optima = [solve(model, "milp", time_limit_s=limit) for model in models]
    solved = [k for k, result in enumerate(optima) if result.status == "optimal"]
    chosen = [models[k] for k in solved]
    best = [float(optima[k].total_latency_s) for k in solved]

    def gaps(placements: np.ndarray) -> list[float]:
        out = []
        for model, optimum, placement in zip(chosen, best, placements):
            evaluation = model.evaluate(placement)
            out.append(evaluation.total_latency_s / optimum - 1.0 if evaluation.feasible else np.inf)
        return out

    users, servers = shape
    greedy = []
    for model, optimum in zip(chosen, best):
        assignment = solve(model, "greedy").assignment  # None: greedy found no placement
        evaluation = (
            None if assignment is None else model.evaluate(np.eye(servers, dtype=np.int8)[assignment])
        )
        feasible = evaluation is not None and evaluation.feasible
        greedy.append(evaluation.total_latency_s / optimum - 1.0 if feasible else np.inf)
    rows = [
        (f"{users}×{servers}: greedy-with-repair ({len(solved)} instances)", "", *summary(greedy), "", "")
    ]
    if not chosen:
        return rows
    context = context_of(chosen)
    if guard != "none":
        completed, _ = smallest_share_completion(context, torch.full((len(chosen), users), -1))
        alone = gaps(np.eye(servers, dtype=np.int8)[completed.numpy()])
        rows.append(
            (
                f"{users}×{servers}: the guard's completion from the empty placement",
                "",
                *summary(alone),
                "",
                "",
            )
        )

    def constructed(actor: Actor, order: ConstructOrder) -> list[float]:
        return gaps(construct_placements(actor, chosen, context, order=order, guard=guard))

    for run_dir in run_dirs:
        policy = load_policy(run_dir, instance=instances[0])
        config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text())["config"])
        untrained = Trainer(config, family_instance(config)).agents[0].actor
        layers = f" L={config.layers}" if config.agent == "quantum" else ""
        label = f"{config.agent}{layers} seed {config.seed} (trained {config.construct_order})"
        for order in ORDERS:
            rows.append(
                (
                    label,
                    order,
                    *summary(constructed(policy.actors[0], order)),
                    *summary(constructed(untrained, order)),
                )
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs",
        type=Path,
        required=True,
        help="the --runs folder of `qdt bench generalise --tight --construct`",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for construct_order.md")
    parser.add_argument("--shapes", default=None, help="NxM,... (default: every shape trained in --runs)")
    parser.add_argument("--unseen", type=int, default=100, help="unseen instances per shape (default 100)")
    parser.add_argument("--milp-limit", type=float, default=20.0, help="MILP time limit in s (default 20)")
    parser.add_argument(
        "--guard",
        choices=["none", "completion"],
        default="none",
        help="decode every construction with this --construct-guard (default none)",
    )
    args = parser.parse_args(argv)
    results = args.runs / RESULTS_FILE
    if not results.is_file():
        raise SystemExit(f"--runs: expected a sweep folder with {RESULTS_FILE}, found none in {args.runs}")
    rows = [
        row
        for row in read_results(results)
        if row["status"] == "ok"
        and "tight=true" in row["instance"]
        and json.loads((args.runs / row["run_dir"] / "config.json").read_text())["config"]["decode"]
        == "construct"
    ]
    if not rows:
        raise SystemExit(
            f"--runs: no finished constructing tight-family runs in {results}; run "
            "`qdt bench generalise --tight --construct`"
        )
    present = sorted({(int(row["n_users"]), int(row["n_servers"])) for row in rows})
    try:
        shapes = parse_shapes(args.shapes, max_users=1024) if args.shapes else present
    except QdtInputError as error:
        raise SystemExit(str(error)) from None
    if args.unseen < 1:
        raise SystemExit(f"--unseen: expected a positive count, got {args.unseen}")
    guarded = args.guard != "none"
    lines = [
        "The construct decoding in each user order"
        + (f", guarded (`--construct-guard {args.guard}`)," if guarded else "")
        + " on the unseen tight instances of `qdt bench generalise "
        "--tight --construct` with a proven optimum: feasible share and median gap (an infeasible placement "
        "counts as infinitely far), for each run's trained actor and the same actor untrained "
        f"(benchmarks/construct_order.py{' --guard ' + args.guard if guarded else ''}).",
        "",
        "| run | order | feasible | median gap | untrained feasible | untrained median gap |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for shape in shapes:
        run_dirs = [
            args.runs / row["run_dir"]
            for row in sorted(rows, key=lambda row: (row["agent"], int(row["seed"])))
            if (int(row["n_users"]), int(row["n_servers"])) == shape
        ]
        lines.extend(
            f"| {' | '.join(row)} |"
            for row in order_rows(shape, run_dirs, args.unseen, args.milp_limit, args.guard)
        )
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    name = "construct_order_guarded.md" if guarded else "construct_order.md"
    (args.out / name).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
