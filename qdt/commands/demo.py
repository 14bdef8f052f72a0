"""``qdt demo``: README's main job. Runs on the embedded paper preset, no account, no server.

Today it shows the paper instance and compares every solver against the exact optimum; the
training, noise and device parts join it as they land (issues 4–7).
"""

from __future__ import annotations

import argparse
from typing import Any

from qdt.commands.problem import render_instance
from qdt.generator import paper_instance
from qdt.model import PlacementModel
from qdt.solvers import solve
from qdt.tables import format_table


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="the main job on the paper preset (no account or server needed)",
        description=(
            "Run qdt's main job on the built-in paper preset (4 users, 2 servers): show the "
            "instance, then solve it exactly (enumeration and MILP) and with the greedy and "
            "random baselines, and print each one's latency and gap to the optimum."
        ),
    )
    demo.add_argument("--seed", type=int, default=0, help="seed for the random baseline (default 0)")
    demo.set_defaults(handler=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    model = PlacementModel(paper_instance())
    print(render_instance(model))
    print()
    results = [solve(model, name, seed=args.seed) for name in ("enumerate", "milp", "greedy", "random")]
    optimum = results[0].total_latency_s
    rows = []
    for result in results:
        total = result.total_latency_s
        gap = None if total is None or optimum is None else (total - optimum) / optimum
        rows.append(
            [
                result.solver,
                result.status,
                "-" if result.assignment is None else ",".join(map(str, result.assignment)),
                total,
                None if total is None else total / model.n_users,
                None if gap is None else f"{100 * gap:.2f}%",
                result.wall_s * 1e3,
            ]
        )
    print(
        format_table(
            ["solver", "status", "assignment", "total latency (s)", "per user (s)", "gap", "wall (ms)"], rows
        )
    )
    return 0
