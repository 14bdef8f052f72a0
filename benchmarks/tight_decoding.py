"""Why trained policies miss feasible placements on the tight family: the feasible decoding fed
different scores, on the unseen instances of `qdt bench generalise --tight`.

    .venv/bin/qdt bench generalise --tight --shapes 8x2,16x4 --workers 2 --runs RUNS --out OUT
    .venv/bin/python benchmarks/tight_decoding.py --runs RUNS --out OUT
        [--shapes 16x4] [--unseen 100] [--errors 1,2,3,5] [--milp-limit 20]

On every unseen tight instance of each shape with a proven MILP optimum (the bench's own test set,
`unseen_instances`), the feasible decoding (`qdt/problem/decoding.py`, one pass, no search) is fed:

- uniform random scores (one draw per instance);
- greedy's preferences, minus each user's latency to each server (−T_ij);
- the optimum's one-hot scores, then the same with k users each moved to another server, drawn
  uniformly;
- each trained run's scores (every run of `--runs` at that shape): its first decision from its
  start placement, and the run's whole rollout (`TrainedPolicy.placement`, what the bench
  reports).

For a trained run it also gives how often the first decision's best-scored server is the optimum's
(agreement, per user). The output is the feasible share of each: a trained run below the random
scores' share has learnt scores that lead the decoding away from feasible placements, not towards
them. Writes `tight_decoding.md` to `--out` and prints it. Randomness: one SeedSequence
(`DIAGNOSIS_SEED`), one child per instance.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qdt.cli.bench import parse_shapes
from qdt.errors import QdtInputError
from qdt.experiments.bench.generalise import unseen_instances
from qdt.experiments.sweep.table import RESULTS_FILE, read_results
from qdt.problem.decoding import decode_feasible
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import solve
from qdt.rl.policy import load_policy

DIAGNOSIS_SEED = 0x74_6467  # "tdg"


def one_hot(assignment: np.ndarray, servers: int) -> np.ndarray:
    scores = np.zeros((assignment.size, servers))
    scores[np.arange(assignment.size), assignment] = 1.0
    return scores


def share(flags: Sequence[bool]) -> str:
    return f"{100 * float(np.mean(flags)):.0f}%" if flags else "-"


def diagnose_shape(
    shape: tuple[int, int],
    runs: list[dict[str, Any]],
    runs_dir: Path,
    unseen: int,
    errors: list[int],
    limit: float,
) -> list[tuple[str, str, str]]:
    """Rows (scores fed to the decoding, feasible share, agreement with the optimum) for one shape."""
    instances = unseen_instances(shape, unseen, tight=True)
    models = [PlacementModel(instance) for instance in instances]
    optima = [solve(model, "milp", time_limit_s=limit) for model in models]
    solved = [k for k, result in enumerate(optima) if result.status == "optimal"]
    children = np.random.SeedSequence(DIAGNOSIS_SEED).spawn(len(instances))
    feasible: dict[str, list[bool]] = {
        "random scores": [],
        "greedy's preferences (−T)": [],
        "the optimum": [],
    }
    for k in errors:
        feasible[f"the optimum, {k} user(s) moved"] = []
    users, servers = shape
    for k in solved:
        model, rng = models[k], np.random.default_rng(children[k])
        optimum = np.asarray(optima[k].assignment, dtype=np.int64)
        feasible["random scores"].append(decode_feasible(model, rng.random(shape)).feasible)
        feasible["greedy's preferences (−T)"].append(
            decode_feasible(model, -np.asarray(model.latency)).feasible
        )
        feasible["the optimum"].append(decode_feasible(model, one_hot(optimum, servers)).feasible)
        for moved in errors:
            noisy = optimum.copy()
            who = rng.choice(users, size=min(moved, users), replace=False)
            noisy[who] = (noisy[who] + rng.integers(1, servers, size=who.size)) % servers  # another server
            decoded = decode_feasible(model, one_hot(noisy, servers) + 1e-3 * rng.random(shape))
            feasible[f"the optimum, {moved} user(s) moved"].append(decoded.feasible)
    rows = [(name, share(flags), "") for name, flags in feasible.items()]
    for run in runs:
        policy = load_policy(runs_dir / run["run_dir"], instance=instances[0])
        first, rollout, agree = [], [], []
        for k in solved:
            policy.rebind(instances[k], models[k])
            scores = policy.scores(policy.start_placement())[0].numpy()
            optimum = np.asarray(optima[k].assignment, dtype=np.int64)
            agree.append(float(np.mean(scores.argmax(axis=1) == optimum)))
            first.append(decode_feasible(models[k], scores).feasible)
            rollout.append(bool(models[k].evaluate(policy.placement()).feasible))
        layers = f" L={run['layers']}" if run.get("layers") else ""
        label = f"{run['agent']}{layers} seed {run['seed']}"
        rows.append(
            (f"{label}: first decision", share(first), f"{100 * np.mean(agree):.0f}%" if agree else "-")
        )
        rows.append((f"{label}: rollout", share(rollout), ""))
    return [(f"{users}×{servers} ({len(solved)} instances)", "", "")] + rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", type=Path, required=True, help="the --runs folder of `qdt bench generalise --tight`"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for tight_decoding.md")
    parser.add_argument("--shapes", default=None, help="NxM,... (default: every shape trained in --runs)")
    parser.add_argument("--unseen", type=int, default=100, help="unseen instances per shape (default 100)")
    parser.add_argument("--errors", default="1,2,3,5", help="users moved off the optimum (default 1,2,3,5)")
    parser.add_argument("--milp-limit", type=float, default=20.0, help="MILP time limit in s (default 20)")
    args = parser.parse_args(argv)
    results = args.runs / RESULTS_FILE
    if not results.is_file():
        raise SystemExit(f"--runs: expected a sweep folder with {RESULTS_FILE}, found none in {args.runs}")
    rows = [row for row in read_results(results) if row["status"] == "ok" and "tight=true" in row["instance"]]
    if not rows:
        raise SystemExit(
            f"--runs: no finished tight-family runs in {results}; run `qdt bench generalise --tight`"
        )
    present = sorted({(int(row["n_users"]), int(row["n_servers"])) for row in rows})
    try:
        shapes = parse_shapes(args.shapes, max_users=1024) if args.shapes else present
    except QdtInputError as error:
        raise SystemExit(str(error)) from None
    try:
        errors = [int(text) for text in args.errors.split(",") if text]
    except ValueError:
        raise SystemExit(f"--errors: expected whole numbers such as 1,2,3,5, got {args.errors!r}") from None
    if args.unseen < 1 or any(k < 1 for k in errors):
        raise SystemExit(
            f"--unseen and --errors: expected positive counts, got {args.unseen} and {args.errors}"
        )
    lines = [
        "The feasible decoding fed different scores on the unseen tight instances of `qdt bench generalise "
        "--tight` with a proven optimum: feasible share; for a trained run's first decision also the share "
        "of users whose best-scored server is the optimum's (benchmarks/tight_decoding.py).",
        "",
        "| scores fed to the decoding | feasible | agreement with the optimum |",
        "| --- | ---: | ---: |",
    ]
    for shape in shapes:
        runs = sorted(
            (row for row in rows if (int(row["n_users"]), int(row["n_servers"])) == shape),
            key=lambda row: (row["agent"], int(row["seed"])),
        )
        for name, feasible, agree in diagnose_shape(
            shape, runs, args.runs, args.unseen, errors, args.milp_limit
        ):
            lines.append(f"| {name} | {feasible} | {agree} |")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tight_decoding.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
