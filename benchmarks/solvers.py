"""Wall time of the exact solvers as N and M grow: enumeration (M^N assignments) and the MILP.

    .venv/bin/python benchmarks/solvers.py [--seeds 3] [--quick]

Writes benchmarks/results/solvers.csv, solvers.md and solvers.png and prints the table. Each
cell is the median over seeds of one solve on `qdt instance generate`'s default model; where both
solvers run, they are checked to agree. Times are for this machine (2 cores), single-threaded.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from qdt.experiments.tables import format_table
from qdt.plots import pyplot, save_figure
from qdt.problem.generator import GeneratorConfig, generate_instance
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import solve

RESULTS = Path(__file__).resolve().parent / "results"
ENUM_GRID = (
    [(n, 2) for n in (4, 8, 12, 16, 19)]
    + [(n, 3) for n in (4, 8, 12)]
    + [(n, 4) for n in (4, 6, 9)]
    + [(4, 10), (6, 10)]
)
MILP_GRID = [(n, m) for m in (2, 4, 10) for n in (4, 8, 16, 32, 64, 100, 200)]


def time_solver(users: int, servers: int, solver: str, seeds: int) -> dict[str, object]:
    times, statuses, latencies = [], [], []
    for seed in range(seeds):
        model = PlacementModel(generate_instance(GeneratorConfig(users=users, servers=servers), seed))
        start = time.perf_counter()
        result = solve(model, solver, time_limit_s=300)
        times.append(time.perf_counter() - start)
        statuses.append(result.status)
        latencies.append(result.total_latency_s)
    return {
        "solver": solver,
        "users": users,
        "servers": servers,
        "assignments": float(servers) ** users,
        "median_s": statistics.median(times),
        "max_s": max(times),
        "optimal": statuses.count("optimal"),
        "infeasible": statuses.count("infeasible"),
        "unsolved": statuses.count("unsolved"),
        "seeds": seeds,
        "_latencies": latencies,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3, help="instances per cell (default 3)")
    parser.add_argument("--quick", action="store_true", help="small grid only (smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args(argv)
    enum_grid = ENUM_GRID[:3] if args.quick else ENUM_GRID
    milp_grid = [c for c in MILP_GRID if c[0] <= 16] if args.quick else MILP_GRID
    rows = []
    for users, servers in enum_grid:
        rows.append(time_solver(users, servers, "enumerate", args.seeds))
        print(f"enumerate {users}x{servers}: {rows[-1]['median_s']:.4f} s", file=sys.stderr)
    enum_latency = {(r["users"], r["servers"]): r["_latencies"] for r in rows}
    for users, servers in milp_grid:
        rows.append(time_solver(users, servers, "milp", args.seeds))
        print(f"milp {users}x{servers}: {rows[-1]['median_s']:.4f} s", file=sys.stderr)
        reference = enum_latency.get((users, servers))
        if reference is not None:
            for a, b in zip(reference, rows[-1]["_latencies"]):
                assert (a is None) == (b is None) and (a is None or abs(a - b) <= 1e-9 * a), (users, servers)
    args.out.mkdir(parents=True, exist_ok=True)
    fields = [
        "solver",
        "users",
        "servers",
        "assignments",
        "median_s",
        "max_s",
        "optimal",
        "infeasible",
        "unsolved",
        "seeds",
    ]
    with open(args.out / "solvers.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    table_rows = [
        [
            r["solver"],
            r["users"],
            r["servers"],
            f"{r['assignments']:.3g}",
            r["median_s"],
            r["max_s"],
            f"{r['optimal']}/{r['infeasible']}/{r['unsolved']}",
        ]
        for r in rows
    ]
    headers = ["solver", "N", "M", "M^N", "median (s)", "max (s)", "optimal/infeasible/unsolved"]
    (args.out / "solvers.md").write_text(format_table(headers, table_rows, markdown=True) + "\n")
    print(format_table(headers, table_rows))
    _plot(rows, args.out / "solvers.png")
    print(f"wrote {args.out}/solvers.csv, solvers.md, solvers.png")
    return 0


def _plot(rows: list[dict[str, object]], path: Path) -> None:
    fig, (left, right) = pyplot().subplots(1, 2, figsize=(11, 4.2))
    for m in sorted({r["servers"] for r in rows if r["solver"] == "enumerate"}):
        sel = [r for r in rows if r["solver"] == "enumerate" and r["servers"] == m]
        left.loglog([r["assignments"] for r in sel], [r["median_s"] for r in sel], "o-", label=f"M = {m}")
    left.set_xlabel("assignments M^N")
    left.set_ylabel("wall time (s), median")
    left.set_title("exact enumeration")
    left.legend()
    left.grid(True, which="both", alpha=0.3)
    for m in sorted({r["servers"] for r in rows if r["solver"] == "milp"}):
        sel = [r for r in rows if r["solver"] == "milp" and r["servers"] == m]
        right.loglog([r["users"] for r in sel], [r["median_s"] for r in sel], "s-", label=f"M = {m}")
    right.set_xlabel("users N")
    right.set_title("MILP (scipy HiGHS, gap 0)")
    right.legend()
    right.grid(True, which="both", alpha=0.3)
    save_figure(fig, path)


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
