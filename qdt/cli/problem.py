"""``qdt instance generate|show``, ``qdt optimum``, ``qdt score``: the problem side (docs/design.md §1).

JSON contracts (scripts depend on these keys):
  optimum --json: status, assignment, total_latency_s, per_user_latency_s, solver, wall_s, reason
                  (reason: why the status is "unsolved", else null)
  score --json:   feasible, violations, total_latency_s, per_user_latency_s, reward
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from qdt.cli.failures import printable
from qdt.errors import QdtInputError
from qdt.experiments.tables import format_table
from qdt.files import check_output_path, create_new_json
from qdt.problem.generator import GeneratorConfig, generate_instance, paper_instance, tight_config
from qdt.problem.instance import Instance, load_instance
from qdt.problem.model import CONSTRAINTS, PlacementModel, RewardConfig
from qdt.problem.solvers import DEFAULT_TIME_LIMIT_S, SOLVERS, check_rel_gap, solve

PRESETS = ("paper",)


def register(subparsers: Any) -> None:
    instance = subparsers.add_parser(
        "instance",
        help="generate, show instances (qdt-instance/1 JSON)",
        description="Generate and inspect placement instances in the qdt-instance/1 JSON format.",
    )
    actions = instance.add_subparsers(dest="instance_command", metavar="ACTION", required=True)

    generate = actions.add_parser(
        "generate",
        help="draw an instance (the paper preset's model by default)",
        description=(
            "Draw an instance: Table 2's values (p=0.1 W, B=10 MHz, sigma^2=-174 dBm, "
            "D in [300,500] Mb, C in [1,2] GHz) and a documented model for the channel gains, "
            "compute rates, user caps and deadlines the paper leaves out (see qdt/problem/generator.py). "
            "The same seed gives the same instance."
        ),
    )
    generate.add_argument("--users", "-N", type=int, default=4, help="number of users N (default 4)")
    generate.add_argument("--servers", "-M", type=int, default=2, help="number of servers M (default 2)")
    generate.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    generate.add_argument(
        "--tight", action="store_true", help="tight capacity, where greedy misses (qdt/problem/generator.py)"
    )
    generate.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="write to this new file (an existing one is never written over; default: print JSON)",
    )
    generate.set_defaults(handler=_cmd_generate)

    show = actions.add_parser(
        "show",
        help="print the latency matrix and the constraint data",
        description="Print an instance's N×M latency matrix T_ij and its constraint data.",
    )
    add_instance_arguments(show)
    show.set_defaults(handler=_cmd_show)

    optimum = subparsers.add_parser(
        "optimum",
        help="solve an instance: exact optimum or a heuristic",
        description=(
            "Solve the placement problem (21)-(26). Solvers: auto (enumerate when M^N <= 1e6, "
            "else milp), enumerate (exact), milp (exact, scipy HiGHS), greedy (fastest server "
            "with repair), random (a random feasible placement). Status is optimal, feasible "
            "(heuristic, or milp within --rel-gap), infeasible (proven) or unsolved (nothing found or "
            "time limit; the output says why). The MILP also reports its lower bound on the optimum "
            "(lower_bound_s), so a placement it stopped short of proving optimal says how far from "
            "the optimum it can be."
        ),
    )
    add_instance_arguments(optimum)
    optimum.add_argument("--solver", default="auto", choices=SOLVERS, help="default: auto")
    optimum.add_argument("--seed", type=int, default=0, help="seed for --solver random (default 0)")
    optimum.add_argument(
        "--time-limit",
        type=float,
        default=DEFAULT_TIME_LIMIT_S,
        metavar="SECONDS",
        help=(
            "wall-clock limit of every solver, building its model included (reading FILE is not); "
            f"past it the status is unsolved and the output says why (default {DEFAULT_TIME_LIMIT_S:g})"
        ),
    )
    optimum.add_argument(
        "--rel-gap",
        type=float,
        default=0.0,
        metavar="X",
        help=(
            "with --solver milp: stop at a placement proven within this share of the optimum "
            "(HiGHS's relative MIP gap; status feasible, with the bound), often long before an optimum "
            "is proven, e.g. 0.01 on tight 64x8 instances (default 0: the optimum)"
        ),
    )
    optimum.add_argument("--json", action="store_true", help="print one JSON object")
    optimum.set_defaults(handler=_cmd_optimum)

    score = subparsers.add_parser(
        "score",
        help="score a placement: feasibility, violations, latency, reward",
        description="Score one placement (a server index per user) against an instance.",
    )
    add_instance_arguments(score)
    score.add_argument(
        "--assignment", required=True, help="server index per user, comma-separated, e.g. 0,1,1,0"
    )
    score.add_argument("--json", action="store_true", help="print one JSON object")
    score.set_defaults(handler=_cmd_score)


def add_instance_arguments(parser: argparse.ArgumentParser) -> None:
    """FILE or --preset NAME, exactly one (shared by every command that takes an instance)."""
    parser.add_argument("file", nargs="?", type=Path, metavar="FILE", help="instance JSON file")
    parser.add_argument("--preset", choices=PRESETS, help="a built-in instance instead of FILE")


def resolve_instance(args: argparse.Namespace) -> Instance:
    if args.file is not None and args.preset is not None:
        raise QdtInputError("FILE/--preset", "one of them", "both", "give an instance FILE or --preset paper")
    if args.preset == "paper":
        return paper_instance()
    if args.file is None:
        raise QdtInputError("FILE", "an instance file or --preset paper", "neither")
    return load_instance_file(args.file, "FILE")


def load_instance_file(path: Path, flag: str) -> Instance:
    """:func:`~qdt.problem.instance.load_instance` and a check that its latencies are finite, the
    errors naming ``flag`` for the file as a whole and ``PATH: field`` for a field inside it (so
    the line says which file is at fault)."""
    try:
        instance = load_instance(path)
        PlacementModel(instance)  # its latencies must be finite too
        return instance
    except QdtInputError as error:
        field = flag if error.field == "FILE" else f"{path}: {error.field}"
        raise QdtInputError(field, error.expected, error.got, error.fix) from None


def parse_assignment(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",")]
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise QdtInputError("--assignment", "comma-separated server indices such as 0,1,1,0", text) from None


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")


# ---- handlers --------------------------------------------------------------------------
def _cmd_generate(args: argparse.Namespace) -> int:
    config = (tight_config if args.tight else GeneratorConfig)(users=args.users, servers=args.servers)
    if args.output is not None:
        check_output_path(args.output, "--output", kind="file")  # before drawing
    instance = generate_instance(config, args.seed)
    if args.output is None:
        _print_json(instance.to_dict())
    else:
        create_new_json(args.output, instance.to_dict(), "--output")  # never over a file
        print(
            f"wrote {printable(str(args.output))} ({instance.n_users} users, {instance.n_servers} servers, "
            f"seed {args.seed})"
        )
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    instance = resolve_instance(args)
    model = PlacementModel(instance)
    print(render_instance(model))
    return 0


def render_instance(model: PlacementModel) -> str:
    instance = model.instance
    servers = [f"T_i{j} (s)" for j in range(instance.n_servers)]
    rows = []
    for i, user in enumerate(instance.users):
        cells: list[object] = []
        for j in range(instance.n_servers):
            mark = "" if model.deadline_ok[i, j] else "*"
            cells.append(f"{model.latency[i, j]:.4f}{mark}")
        rows.append([f"user {i}", *cells, user.deadline_s, user.data_bits / 1e6])
    out = [
        f"{printable(instance.name)}: N={instance.n_users} users, M={instance.n_servers} servers, "
        f"B={instance.bandwidth_hz / 1e6:g} MHz, noise power {instance.noise_power_w:.3g} W",
        "",
        format_table(["", *servers, "deadline (s)", "data (Mb)"], rows),
        "(* = misses the user's deadline, constraint 26)",
        "",
    ]
    server_rows = [
        [
            f"server {j}",
            server.capacity / 1e9,
            server.max_users,
            " ".join(f"{c / 1e9:.3f}" for c in instance.compute_rate[:, j]),
        ]
        for j, server in enumerate(instance.servers)
    ]
    out.append(
        format_table(["", "capacity C_j (Gb/s)", "max users M_j", "c_ij per user (Gb/s)"], server_rows)
    )
    return "\n".join(out)


def _cmd_optimum(args: argparse.Namespace) -> int:
    check_rel_gap(args.rel_gap, "--rel-gap")
    if args.rel_gap and args.solver != "milp":
        raise QdtInputError(
            "--rel-gap", "0 unless --solver milp", f"{args.rel_gap:g} with --solver {args.solver}"
        )
    instance = resolve_instance(args)
    model = PlacementModel(instance)
    result = solve(model, args.solver, seed=args.seed, time_limit_s=args.time_limit, rel_gap=args.rel_gap)
    if args.json:
        _print_json(result.to_dict())
        return 0
    print(f"{printable(instance.name)}: {result.status} ({result.solver}, {result.wall_s * 1e3:.2f} ms)")
    if result.reason is not None:
        print(f"why: {result.reason}")
    if result.assignment is not None and result.per_user_latency_s is not None:
        rows = [
            [f"user {i}", f"server {j}", t]
            for i, (j, t) in enumerate(zip(result.assignment, result.per_user_latency_s))
        ]
        rows.append(["total", "", result.total_latency_s])
        print(format_table(["", "placed on", "latency (s)"], rows))
        bound = result.lower_bound_s
        if result.status != "optimal" and bound is not None and bound > 0 and result.total_latency_s:
            print(
                f"lower bound on the optimum (HiGHS): {bound:.6g} s; this placement is at most "
                f"{100 * (result.total_latency_s - bound) / bound:.2f}% above the optimum"
            )
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    instance = resolve_instance(args)
    model = PlacementModel(instance, RewardConfig())
    evaluation = model.evaluate_assignment(parse_assignment(args.assignment), "--assignment")
    data = {
        "feasible": evaluation.feasible,
        "violations": evaluation.violations,
        "total_latency_s": evaluation.total_latency_s,
        "per_user_latency_s": evaluation.per_user_latency_s,
        "reward": evaluation.reward,
    }
    if args.json:
        _print_json(data)
        return 0
    verdict = "feasible" if evaluation.feasible else "INFEASIBLE"
    print(f"{printable(instance.name)}: {verdict}, reward {evaluation.reward:.4f}")
    rows = [[f"user {i}", t] for i, t in enumerate(evaluation.per_user_latency_s)]
    rows.append(["total", evaluation.total_latency_s])
    print(format_table(["", "latency (s)"], rows))
    names = {
        "one_server": "(22) one server per user: users",
        "max_users": "(23) user cap: servers",
        "capacity": "(24) capacity: servers",
        "deadline": "(26) deadline: users",
    }
    for key in CONSTRAINTS:
        items = evaluation.violations[key]
        print(f"{names[key]} violated: {', '.join(map(str, items)) if items else 'none'}")
    return 0
