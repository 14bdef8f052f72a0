"""What more sampled constructions buy (`qdt place --samples K`, `qdt bench generalise --samples K`):
the gap and the decision time of each constructing run of a `qdt bench generalise --construct` bench
against K, on the bench's own unseen instances.

    .venv/bin/qdt bench generalise --tight --construct --label-gap 0.01 --construct-guard completion \\
        --shapes 32x8 --episodes 60 --runs RUNS --out BENCH
    .venv/bin/python benchmarks/sampling_curve.py --runs RUNS --bench BENCH --out OUT [--samples 1,2,4,8,16]
        [--agents classical,quantum] [--timed 10] [--shape NxM] [--local-search]

The references come from the bench's generalise.csv (each instance checked against its
`instance_digest`), so no MILP runs here: the optimum of every unseen instance with a proven one
(`optimum_total_latency_s`) and, where the bench stopped the MILP at a proven gap (`qdt bench
generalise --milp-gap`, `gap_to_bound`), its lower bound (`lower_bound_total_latency_s`), as the bench
scores those instances; a gap to the bound overstates the gap to the optimum by at most the MILP's gap.
For every finished constructing run of `--runs` and every K of `--samples`, the run decides each
of those instances by the best of K constructions (`qdt.rl.construct.Sampling`, the default
temperature; K = 1: the plain construction), all instances in batches, and the gap to the reference
is recorded (an infeasible placement counts as infinitely far). The decision time is measured on
the first `--timed` instances one at a time, as the bench times it (the policy rebound to the
instance, torch on one thread); run this alone on the machine. Writes sampling.csv (one row per
run, K and instance), sampling.md (per agent and K: the median gap pooled over seeds, each seed's
median, the feasible share and the median decision time against the bench's MILP median) and
sampling.png (gap and decision time against K) to `--out`. With `--local-search` every construction
is improved by the local search before the best is kept (`qdt place --local-search`,
qdt/problem/local_search.py), inside the timed decision.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from qdt.cli.bench import parse_shapes
from qdt.errors import QdtInputError
from qdt.experiments.bench.generalise import instance_digest, unseen_instances
from qdt.experiments.sweep.table import RESULTS_FILE, read_results
from qdt.plots import pyplot, save_figure
from qdt.problem.model import PlacementModel
from qdt.rl.construct import SAMPLE_TEMPERATURE, Sampling, construct_best
from qdt.rl.policy import TrainedPolicy, load_policy

CURVE_SEED = 0x6375_7276  # "curv": the noise of this script's sampled constructions
BATCH_INSTANCES = 20  # instances per batched construction (K·20·N·M rows per actor call)


def parse_samples(text: str) -> list[int]:
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise SystemExit(f"--samples: expected integers such as 1,2,4,8,16, got {text!r}") from None
    if not values:
        raise SystemExit(f"--samples: expected at least one K, got {text!r}")
    for value in values:
        Sampling(value)  # the same bounds as qdt place
    return values


def bench_references(
    bench_dir: Path, shape: tuple[int, int] | None = None
) -> tuple[tuple[int, int], dict[int, float], dict[int, str], float, int]:
    """(shape, reference latency per unseen instance index, its digest, the bench's MILP median ms,
    how many references are lower bounds) from a tight bench's generalise.csv, for ``shape`` (needed
    when the bench ran more than one). The reference is the proven optimum, else the MILP's lower
    bound where the bench scored the instance against it (module docstring)."""
    path = bench_dir / "generalise.csv"
    if not path.is_file():
        raise SystemExit(
            f"--bench: expected a folder with generalise.csv (qdt bench generalise --out), got {bench_dir}"
        )
    with open(path, newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    shapes = sorted({(int(r["users"]), int(r["servers"])) for r in rows})
    if not rows or not all(r["tight"] == "True" for r in rows):
        raise SystemExit(f"--bench: expected the rows of a --tight bench in {path}")
    if shape is None and len(shapes) > 1:
        raise SystemExit(f"--shape: expected one of {shapes} (the bench ran several), got none")
    shape = shapes[0] if shape is None else shape
    if shape not in shapes:
        raise SystemExit(f"--shape: expected one of {shapes} (the bench's), got {shape}")
    rows = [r for r in rows if (int(r["users"]), int(r["servers"])) == shape]
    references: dict[int, float] = {}
    bounds = set()
    for r in rows:
        if r["milp_status"] == "optimal":
            references[int(r["instance"])] = float(r["optimum_total_latency_s"])
        elif r.get("gap_to_bound") == "True" and r.get("lower_bound_total_latency_s"):
            references[int(r["instance"])] = float(r["lower_bound_total_latency_s"])
            bounds.add(int(r["instance"]))
    digests = {int(r["instance"]): r["instance_digest"] for r in rows}
    milp = [float(r["milp_ms"]) for r in {r["instance"]: r for r in rows}.values() if r["milp_ms"]]
    return shape, references, digests, float(np.median(milp)), len(bounds)


def gaps_of(placements: np.ndarray, models: list[PlacementModel], references: list[float]) -> list[float]:
    out = []
    for model, reference, placement in zip(models, references, placements):
        evaluation = model.evaluate(placement)
        out.append(evaluation.total_latency_s / reference - 1.0 if evaluation.feasible else np.inf)
    return out


def decision_ms(
    policy: TrainedPolicy, instances: list, sampling: Sampling, seed: np.random.SeedSequence
) -> float:
    """Median ms of one decision per instance, as the bench times it (after one untimed warm-up)."""
    policy.sample(sampling, seed)
    policy.rebind(instances[0])
    policy.placement()
    times = []
    for instance in instances:
        begin = time.perf_counter()
        policy.rebind(instance)
        policy.placement()
        times.append(1e3 * (time.perf_counter() - begin))
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=Path, required=True, help="the --runs folder of the bench")
    parser.add_argument(
        "--bench", type=Path, required=True, help="the --out folder of the same bench (generalise.csv)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for sampling.csv, sampling.md, sampling.png"
    )
    parser.add_argument("--samples", default="1,2,4,8,16", help="the K to decode with (default 1,2,4,8,16)")
    parser.add_argument("--shape", default=None, help="NxM, when the bench ran several shapes")
    parser.add_argument("--agents", default="classical,quantum", help="which agents' runs (default both)")
    parser.add_argument(
        "--local-search",
        action="store_true",
        help="improve every construction by the local search (moves and swaps) before the best is kept",
    )
    parser.add_argument(
        "--timed", type=int, default=10, help="instances timed one at a time per run and K (default 10)"
    )
    args = parser.parse_args(argv)
    ks = parse_samples(args.samples)
    agents = {part.strip() for part in args.agents.split(",") if part.strip()}
    if not agents <= {"classical", "quantum"}:
        raise SystemExit(f"--agents: expected classical and/or quantum, got {args.agents!r}")
    if args.timed < 1:
        raise SystemExit(f"--timed: expected a positive count, got {args.timed}")
    results = args.runs / RESULTS_FILE
    if not results.is_file():
        raise SystemExit(f"--runs: expected a sweep folder with {RESULTS_FILE}, found none in {args.runs}")
    chosen = None
    if args.shape is not None:
        try:
            chosen = parse_shapes(args.shape, max_users=1024)[0]
        except QdtInputError as error:
            raise SystemExit(str(error)) from None
    shape, references, digests, milp_ms, bounded = bench_references(args.bench, chosen)
    instances = unseen_instances(shape, max(digests) + 1, tight=True)
    for index, digest in digests.items():
        if instance_digest(instances[index]) != digest:
            raise SystemExit(
                f"--bench: unseen instance {index} is not the one the bench placed (digest {digest})"
            )
    solved = sorted(references)
    models = [PlacementModel(instances[k]) for k in solved]
    best = [references[k] for k in solved]
    runs = [
        row
        for row in sorted(read_results(results), key=lambda row: (row["agent"], int(row["seed"])))
        if row["status"] == "ok"
        and row["agent"] in agents
        and (int(row["n_users"]), int(row["n_servers"])) == shape
        and json.loads((args.runs / row["run_dir"] / "config.json").read_text())["config"]["decode"]
        == "construct"
    ]
    if not runs:
        raise SystemExit(
            f"--runs: no finished constructing {shape[0]}x{shape[1]} runs of {sorted(agents)} in {results}"
        )
    torch.set_num_threads(1)
    records = []
    for number, row in enumerate(runs):
        policy = load_policy(args.runs / row["run_dir"], instance=instances[0])
        config = policy.config
        label = "classical" if config.agent == "classical" else f"quantum L={config.layers}"
        policy.local_search = args.local_search
        for k in ks:
            sampling = Sampling(k)
            rng = np.random.default_rng(np.random.SeedSequence(CURVE_SEED, spawn_key=(number, k)))
            gaps: list[float] = []
            for start in range(0, len(models), BATCH_INSTANCES):
                chunk = models[start : start + BATCH_INSTANCES]
                placed = construct_best(
                    policy.actors[0],
                    chunk,
                    policy.device,
                    order=config.construct_order,
                    guard=config.construct_guard,
                    sampling=sampling,
                    rng=rng,
                    local_search=args.local_search,
                )
                gaps.extend(gaps_of(placed, chunk, best[start : start + BATCH_INSTANCES]))
            timed = [instances[i] for i in solved[: args.timed]]
            ms = decision_ms(
                policy, timed, sampling, np.random.SeedSequence(CURVE_SEED, spawn_key=(number, k, 1))
            )
            records.extend(
                {
                    "agent": label,
                    "seed": config.seed,
                    "samples": k,
                    "local_search": args.local_search,
                    "instance": i,
                    "gap": g,
                    "decision_ms": ms,
                }
                for i, g in zip(solved, gaps)
            )
            print(
                f"{label} seed {config.seed} K={k}: median gap {100 * np.median(gaps):.2f}%, "
                f"decision {ms:.0f} ms",
                flush=True,
            )
        if policy.executor is not None:
            policy.executor.close()
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "sampling.csv", "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    text = write_table(records, ks, shape, milp_ms, len(solved), args.timed, bounded, args.local_search)
    (args.out / "sampling.md").write_text(text, encoding="utf-8")
    plot(records, ks, milp_ms, args.out / "sampling.png", shape, bounded > 0, args.local_search)
    print(text)
    return 0


def _percent(value: float) -> str:
    return "infeasible" if np.isinf(value) else f"{100 * value:.2f}%"


def write_table(
    records: list[dict],
    ks: list[int],
    shape: tuple[int, int],
    milp_ms: float,
    solved: int,
    timed: int,
    bounded: int = 0,
    local_search: bool = False,
) -> str:
    if bounded:
        scored = (
            f"with a proven optimum ({solved - bounded}) or a placement the MILP proved within the "
            f"bench's --milp-gap ({bounded}; those gaps are to the MILP's lower bound, which overstates "
            "the gap to the optimum by at most that gap)"
        )
        milp = "the bench's median time to its proven gap"
    else:
        scored, milp = "with a proven optimum", "the bench's median"
    lines = [
        f"Best of K guarded constructions (`Sampling`, temperature {SAMPLE_TEMPERATURE:g}; K = 1: the "
        "plain construction"
        + (", each improved by the local search of qdt/problem/local_search.py" if local_search else "")
        + f") on the {solved} unseen tight {shape[0]} × {shape[1]} instances of the bench "
        f"{scored} (benchmarks/sampling_curve.py). Gap: median pooled over seeds and each "
        "seed's median; decision: median over seeds of each run's median time on "
        f"{timed} instances, one at a time, torch on one thread; MILP: {milp} "
        f"({milp_ms:.0f} ms).",
        "",
        "| agent | K | feasible | gap median | seeds' medians | decision | MILP/decision |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for agent in dict.fromkeys(r["agent"] for r in records):
        for k in ks:
            mine = [r for r in records if r["agent"] == agent and r["samples"] == k]
            seeds = sorted({r["seed"] for r in mine})
            per_seed = [float(np.median([r["gap"] for r in mine if r["seed"] == s])) for s in seeds]
            ms = float(np.median([next(r["decision_ms"] for r in mine if r["seed"] == s) for s in seeds]))
            gaps = [r["gap"] for r in mine]
            lines.append(
                f"| {agent} | {k} | {100 * np.mean(np.isfinite(gaps)):.0f}% | "
                f"{_percent(float(np.median(gaps)))} | {', '.join(_percent(v) for v in per_seed)} | "
                f"{ms:.0f} ms | {milp_ms / ms:.1f}× |"
            )
    return "\n".join(lines) + "\n"


def plot(
    records: list[dict],
    ks: list[int],
    milp_ms: float,
    path: Path,
    shape: tuple[int, int],
    bounded: bool = False,
    local_search: bool = False,
) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for c, agent in enumerate(dict.fromkeys(r["agent"] for r in records)):
        mine = [r for r in records if r["agent"] == agent]
        medians = [100 * float(np.median([r["gap"] for r in mine if r["samples"] == k])) for k in ks]
        left.plot(ks, medians, "o-", color=f"C{c}", label=f"{agent} (pooled over seeds)")
        for seed in sorted({r["seed"] for r in mine}):
            per_seed = [
                100 * float(np.median([r["gap"] for r in mine if r["samples"] == k and r["seed"] == seed]))
                for k in ks
            ]
            left.plot(ks, per_seed, ".", color=f"C{c}", alpha=0.4)
        times = [
            float(
                np.median(
                    [
                        next(r["decision_ms"] for r in mine if r["samples"] == k and r["seed"] == s)
                        for s in {r["seed"] for r in mine}
                    ]
                )
            )
            for k in ks
        ]
        right.plot(ks, times, "o-", color=f"C{c}", label=f"{agent} decision")
    left.axhline(2.0, color="0.5", lw=0.8, ls=":", label="2%")
    milp_label = "MILP to the bench's proven gap" if bounded else "MILP (HiGHS)"
    right.axhline(milp_ms, color="k", ls="--", label=f"{milp_label}, the bench's median")
    right.axhline(milp_ms / 10, color="k", ls=":", lw=0.8, label="10× faster than the MILP")
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.set_xticks(ks, [str(k) for k in ks])
        axis.grid(alpha=0.3, which="both")
        axis.set_xlabel(
            "K: constructions per decision"
            + (", each locally searched (best kept)" if local_search else " (best kept)")
        )
    left.set(
        ylabel="median gap to the MILP's lower bound (%)" if bounded else "median gap to the MILP optimum (%)"
    )
    left.set_title(f"unseen tight {shape[0]} × {shape[1]} instances: gap (dots: seeds)", fontsize=9)
    right.set_yscale("log")
    right.set(ylabel="median decision time (ms)")
    right.set_title("one decision, one instance at a time", fontsize=9)
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
