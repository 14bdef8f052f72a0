"""``qdt sweep``: a grid of training runs on Ray, resumable, one result row per cell."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qdt.cli.failures import printable
from qdt.experiments.tables import format_table


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="run a grid of training runs (instances x agents x layers x ... x seeds) on Ray",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Train every cell of the grid in SPEC (TOML) as a Ray task: on an embedded local Ray by default,
or on the cluster at --ray-address. Each cell has a deterministic id (a hash of its config and
instance) and its own run folder DIR/cells/<id>/; every finished cell has exactly one row in
DIR/results.csv (status ok or failed, the axes, the summary.json values, the error if any).
Run the same command again after an interruption: finished cells are kept, unfinished ones
resume from their checkpoints. A cell whose worker dies is retried from its checkpoint; one that
keeps failing is recorded as failed and the rest go on. At the end: a table per configuration
over seeds (DIR/summary.md, summary.csv) and the gap to the optimum (DIR/gap.png).
DIR must be new, empty, or a sweep folder (one holding sweep.json); a folder holding other files
is refused, and so is a second `qdt sweep` on a folder another one is writing.

SPEC format (every key of [grid] and [train] is a TrainConfig field, see `qdt train --help`;
[grid] needs at least one key: an empty spec or grid is an error, not one cell of defaults):

  [sweep]
  name = "paper-layers"
  max_retries = 2                 # extra attempts for a cell that crashed
  [grid]
  instance = ["paper", "big.json", { users = 8, servers = 4, seed = 1 }]
  agent = ["classical", "quantum"]
  layers = [1, 3, 6]              # classical cells ignore layers/backend/noise/shots
  seed = [0, 1, 2]
  [train]
  episodes = 300

Exit status: 0 when every cell is ok, 1 when some failed, 2 on a bad spec or option.""",
    )
    parser.add_argument("spec", type=Path, metavar="SPEC.toml", help="the sweep specification")
    parser.add_argument(
        "--out", type=Path, metavar="DIR", required=True, help="sweep folder (new, empty, or a sweep's)"
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help=(
            "Ray cluster to use: host:port of its head, ray://host:port of its client server, or auto "
            "($RAY_ADDRESS, else the cluster on this machine); with token authentication the token must "
            "be in ~/.ray/auth_token, $RAY_AUTH_TOKEN_PATH or $RAY_AUTH_TOKEN. Default: start one locally"
        ),
    )
    parser.add_argument(
        "--max-parallel", type=int, metavar="K", help="cells running at once (default: the CPUs Ray has)"
    )
    parser.add_argument("--retry-failed", action="store_true", help="run cells recorded as failed again")
    parser.add_argument(
        "--dry-run", action="store_true", help="list the cells and their status in DIR, run nothing"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_cmd_sweep)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from qdt.errors import QdtInputError
    from qdt.experiments.sweep import cell_states, expand_cells, load_spec, run_sweep

    if args.max_parallel is not None and args.max_parallel < 1:
        raise QdtInputError("--max-parallel", "an integer >= 1", args.max_parallel)
    spec = load_spec(args.spec)
    if args.dry_run:
        cells = expand_cells(spec)
        states = cell_states(cells, args.out)
        statuses = [status for status, _ in states]
        rows = [
            [cell.cell_id, status, cell.instance_label, *(cell.axes.get(k) for k in cell.STANDARD_AXES)]
            for cell, status in zip(cells, statuses)
        ]
        print(format_table(["cell", "status", "instance", *cells[0].STANDARD_AXES], rows) if rows else "")
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in ("ok", "failed", "invalid") if s in statuses)
        print(f"{len(cells)} cells" + (f"; {counts}" if counts else ""))
        for cell, (status, reason) in zip(cells, states):
            if reason is not None:  # why a cell cannot run, or why it failed
                print(f"  {cell.cell_id} ({status}): {printable(reason)}")
        return 0
    result = run_sweep(
        spec,
        args.out,
        ray_address=args.ray_address,
        max_parallel=args.max_parallel,
        progress=not args.no_progress,
        retry_failed=args.retry_failed,
    )
    print(result.summary_table())
    print()
    names = ", ".join(path.name for path in result.files)
    print(f"{len(result.rows)} cells ({result.ran} run now) in {result.wall_s:.1f} s")
    print(f"wrote {result.out_dir}/: {names}, cells/")
    if result.failed:
        errors: dict[str, list[str]] = {}
        for row in result.rows:
            if row["status"] == "failed":
                errors.setdefault(str(row["error"]), []).append(row["cell_id"])
        print(f"{result.failed} cell(s) failed (status and error in results.csv):")
        for error, ids in errors.items():
            more = f" and {len(ids) - 1} more" if len(ids) > 1 else ""
            print(f"  {ids[0]}{more}: {printable(error)}")
        return 1
    return 0
