"""``qdt bench paper``: the paper's experiment reproduced over seeds, next to the exact optimum."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qdt.errors import QdtInputError

DEFAULT_OUT = Path("benchmarks/results/paper")
DEFAULT_RUNS = Path("runs/bench-paper")


def register(subparsers: Any) -> None:
    bench = subparsers.add_parser(
        "bench",
        help="benchmarks behind the published figures",
        description="Benchmarks that write tables (CSV, Markdown) and figures (PNG).",
    )
    kinds = bench.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    paper = kinds.add_parser(
        "paper",
        help="the paper's experiment: classical and quantum L=1,3,6 over seeds",
        description=(
            "Train the classical agent and quantum agents with L = 1, 3, 6 on the paper preset "
            "for --episodes episodes with --seeds seeds each (in parallel worker processes), "
            "then write the analogue of Table 3 (per-user latency, mean and 95% interval over "
            "seeds, next to the exact optimum, greedy and random), of Fig. 7 (reward versus "
            "episode, mean and band over seeds) and the timing of one training update against "
            "PennyLane default.qubit + TorchLayer. Interrupted runs resume from their checkpoints."
        ),
    )
    paper.add_argument("--seeds", type=int, default=5, help="seeds per agent (default 5)")
    paper.add_argument("--episodes", type=int, default=2000, help="episodes per run (default 2000)")
    paper.add_argument("--workers", type=int, default=None, help="worker processes (default: cores)")
    paper.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"results folder (default {DEFAULT_OUT})"
    )
    paper.add_argument(
        "--runs", type=Path, default=DEFAULT_RUNS, help=f"run folders (default {DEFAULT_RUNS})"
    )
    paper.add_argument("--no-timing", action="store_true", help="skip the PennyLane update timing")
    paper.set_defaults(handler=_cmd_paper)

    generated = kinds.add_parser(
        "instances",
        help="policy quality on generated instances up to 8 users and 3 servers",
        description=(
            "Draw one feasible instance per shape with `qdt instance generate` (default 4x2, 6x2, "
            "6x3, 8x3), train the classical agent and the quantum agent with L = 6 on each with "
            "--seeds seeds, and report feasible runs, runs within 5% of the exact optimum and the "
            "mean gap, next to greedy. Interrupted runs resume from their checkpoints."
        ),
    )
    generated.add_argument(
        "--shapes", default="4x2,6x2,6x3,8x3", help="comma-separated NxM shapes (default 4x2,6x2,6x3,8x3)"
    )
    generated.add_argument("--seeds", type=int, default=3, help="training seeds per agent (default 3)")
    generated.add_argument("--episodes", type=int, default=2000, help="episodes per run (default 2000)")
    generated.add_argument("--instance-seed", type=int, default=1, help="first generator seed (default 1)")
    generated.add_argument("--workers", type=int, default=None, help="worker processes (default: cores)")
    generated.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results/instances"),
        help="results folder (default benchmarks/results/instances)",
    )
    generated.add_argument(
        "--runs",
        type=Path,
        default=Path("runs/bench-instances"),
        help="run folders (default runs/bench-instances)",
    )
    generated.set_defaults(handler=_cmd_instances)
    _register_scale(kinds)
    _register_studies(kinds)


def _register_scale(kinds: Any) -> None:
    scale = kinds.add_parser(
        "scale",
        help="scaling past 4 users: qubits, time per episode, gap to the MILP optimum",
        description=(
            "For users N in --users and servers M in --servers, draw an instance with `qdt instance "
            "generate`, solve it by MILP, train the classical and the quantum (L = 6) agents for "
            "--episodes episodes, and report qubits per actor and critic, time per training episode "
            "(and its growth in N), and the gap to the optimum. Writes scale.csv, scale.md, scale.png."
        ),
    )
    scale.add_argument("--users", default="4,8,16,32,64", help="comma-separated N (default 4,8,16,32,64)")
    scale.add_argument("--servers", default="2,4,8", help="comma-separated M (default 2,4,8)")
    scale.add_argument("--episodes", type=int, default=200, help="episodes per run (default 200)")
    scale.add_argument("--instance-seed", type=int, default=1, help="generator seed (default 1)")
    scale.add_argument("--workers", type=int, default=None, help="worker processes (default: cores)")
    scale.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/scale"), help="default benchmarks/results/scale"
    )
    scale.add_argument(
        "--runs", type=Path, default=Path("runs/bench-scale"), help="run folders (default runs/bench-scale)"
    )
    scale.set_defaults(handler=_cmd_scale)


def _register_studies(kinds: Any) -> None:
    noise = kinds.add_parser(
        "noise",
        help="trained policies under depolarizing, readout and fake-device noise",
        description=(
            "Train quantum agents (L = 6) on the paper preset noiselessly and noise-aware (density "
            "executor, depol-1e-3) with --seeds seeds, then evaluate each under depolarizing noise "
            "p2 in {0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1} (1-qubit p2/10) x readout error in "
            "{0, 1e-2, 5e-2}, and under device-derived noise models of fake IBM devices on Aer. "
            "Writes noise.csv, noise.md, noise.png (gap, feasibility, action agreement against noise)."
        ),
    )
    shots = kinds.add_parser(
        "shots",
        help="trained policies with sampled readout, 8 to 8192 shots, vs Gaussian emulation",
        description=(
            "Train quantum agents (L = 6) noiselessly with --seeds seeds, then evaluate each with "
            "the readout sampled from 8, 16, ..., 8192 shots on Aer and exactly, sampled "
            "(multinomial) next to the Gaussian emulation of shot noise. Writes shots.csv, "
            "shots.md, shots.png (gap, feasibility, decision agreement against shots)."
        ),
    )
    for parser, name in ((noise, "noise"), (shots, "shots")):
        parser.add_argument("--seeds", type=int, default=3, help="training seeds (default 3)")
        parser.add_argument("--episodes", type=int, default=2000, help="episodes per run (default 2000)")
        parser.add_argument("--layers", type=int, default=6, help="VQC layers (default 6)")
        parser.add_argument("--workers", type=int, default=None, help="training processes (default: cores)")
        parser.add_argument(
            "--out",
            type=Path,
            default=Path(f"benchmarks/results/{name}"),
            help=f"default benchmarks/results/{name}",
        )
        parser.add_argument(
            "--runs",
            type=Path,
            default=Path("runs/bench-noise"),
            help="run folders (default runs/bench-noise)",
        )
    noise.add_argument(
        "--devices",
        default="fake_brisbane,fake_torino,fake_sherbrooke",
        help="fake devices whose noise models to use (default fake_brisbane,fake_torino,fake_sherbrooke)",
    )
    shots.add_argument("--repeats", type=int, default=5, help="shot draws per seed and setting (default 5)")
    noise.set_defaults(handler=_cmd_noise)
    shots.set_defaults(handler=_cmd_shots)


def _check_common(args: argparse.Namespace) -> None:
    for flag, value in (("--seeds", args.seeds), ("--episodes", args.episodes), ("--layers", args.layers)):
        if value < 1:
            raise QdtInputError(flag, "an integer >= 1", value)
    if args.workers is not None and args.workers < 1:
        raise QdtInputError("--workers", "an integer >= 1", args.workers)


def _cmd_noise(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from qdt.bench.noise import run_noise_bench

    _check_common(args)
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    total = 2 * args.seeds + 2 * args.seeds * (1 + len(devices))
    with tqdm(total=total, desc="bench noise", unit="step") as bar:

        def done(message: str) -> None:
            bar.set_postfix_str(message)
            bar.update(1)

        result = run_noise_bench(
            args.out,
            args.runs,
            seeds=args.seeds,
            episodes=args.episodes,
            layers=args.layers,
            devices=devices,
            workers=args.workers,
            on_done=done,
        )
    print(result["markdown"])
    print(f"wall time {result['wall_s']:.0f} s; wrote {args.out}/noise.md, noise.csv, noise.png")
    return 0


def _cmd_shots(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from qdt.bench.noise import run_shots_bench

    _check_common(args)
    if args.repeats < 1:
        raise QdtInputError("--repeats", "an integer >= 1", args.repeats)
    with tqdm(total=2 * args.seeds, desc="bench shots", unit="step") as bar:

        def done(message: str) -> None:
            bar.set_postfix_str(message)
            bar.update(1)

        result = run_shots_bench(
            args.out,
            args.runs,
            seeds=args.seeds,
            episodes=args.episodes,
            layers=args.layers,
            repeats=args.repeats,
            workers=args.workers,
            on_done=done,
        )
    print(result["markdown"])
    print(f"wall time {result['wall_s']:.0f} s; wrote {args.out}/shots.md, shots.csv, shots.png")
    return 0


def _int_list(flag: str, text: str, low: int, high: int) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise QdtInputError(flag, "comma-separated integers", text) from None
    bad = [v for v in values if not low <= v <= high]
    if bad or not values:
        raise QdtInputError(flag, f"integers from {low} to {high}", text)
    return values


def _cmd_scale(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from qdt.bench.scale import DEFAULT_AGENTS, run_scale_bench

    users = _int_list("--users", args.users, 1, 1024)
    servers = _int_list("--servers", args.servers, 1, 64)
    if args.episodes < 1:
        raise QdtInputError("--episodes", "an integer >= 1", args.episodes)
    if args.workers is not None and args.workers < 1:
        raise QdtInputError("--workers", "an integer >= 1", args.workers)
    total = len(users) * len(servers) * len(DEFAULT_AGENTS)
    with tqdm(total=total, desc="bench scale", unit="run") as bar:

        def done(label: str, summary: dict[str, Any]) -> None:
            bar.set_postfix_str(f"{label}: {summary['wall_s'] / summary['episodes'] * 1e3:.0f} ms/episode")
            bar.update(1)

        result = run_scale_bench(
            args.out,
            args.runs,
            users=users,
            servers=servers,
            episodes=args.episodes,
            instance_seed=args.instance_seed,
            workers=args.workers,
            on_result=done,
        )
    print(result["markdown"])
    print(f"wall time {result['wall_s']:.0f} s; wrote {args.out}/scale.md, scale.csv, scale.png")
    return 0


def _parse_shapes(text: str) -> list[tuple[int, int]]:
    shapes = []
    for part in text.split(","):
        pieces = part.strip().lower().split("x")
        try:
            users, servers = (int(p) for p in pieces)
        except ValueError:
            raise QdtInputError("--shapes", "shapes like 4x2,8x3", text) from None
        if users < 1 or servers < 1 or users > 10:
            raise QdtInputError("--shapes", "1 <= N <= 10 users and M >= 1 servers", part.strip())
        shapes.append((users, servers))
    return shapes


def _cmd_instances(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from qdt.bench.instances import DEFAULT_AGENTS, run_instances_bench

    shapes = _parse_shapes(args.shapes)
    for flag, value in (("--seeds", args.seeds), ("--episodes", args.episodes)):
        if value < 1:
            raise QdtInputError(flag, "an integer >= 1", value)
    if args.workers is not None and args.workers < 1:
        raise QdtInputError("--workers", "an integer >= 1", args.workers)
    total = len(shapes) * len(DEFAULT_AGENTS) * args.seeds
    with tqdm(total=total, desc="bench instances", unit="run") as bar:

        def done(label: str, summary: dict[str, Any]) -> None:
            gap = summary.get("gap")
            bar.set_postfix_str(f"{label}: {'infeasible' if gap is None else f'gap {100 * gap:.1f}%'}")
            bar.update(1)

        result = run_instances_bench(
            args.out,
            args.runs,
            shapes=shapes,
            seeds=args.seeds,
            episodes=args.episodes,
            instance_seed=args.instance_seed,
            workers=args.workers,
            on_result=done,
        )
    print(result["markdown"])
    print(f"wall time {result['wall_s']:.0f} s; wrote {args.out}/instances.md, instances.csv")
    return 0


def _cmd_paper(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from qdt.bench.paper import PAPER_AGENTS, run_bench
    from qdt.bench.update_timing import compare_update_time

    for flag, value in (("--seeds", args.seeds), ("--episodes", args.episodes)):
        if value < 1:
            raise QdtInputError(flag, "an integer >= 1", value)
    if args.workers is not None and args.workers < 1:
        raise QdtInputError("--workers", "an integer >= 1", args.workers)
    total = len(PAPER_AGENTS) * args.seeds
    with tqdm(total=total, desc="bench paper", unit="run") as bar:

        def done(label: str, summary: dict[str, Any]) -> None:
            gap = summary.get("gap")
            bar.set_postfix_str(f"{label}: {'infeasible' if gap is None else f'gap {100 * gap:.1f}%'}")
            bar.update(1)

        result = run_bench(
            args.out,
            args.runs,
            seeds=args.seeds,
            episodes=args.episodes,
            workers=args.workers,
            on_result=done,
            timing=None if args.no_timing else compare_update_time,
        )
    print(result["table"]["markdown"])
    print()
    print((args.out / "timing.md").read_text())
    print(f"wrote {args.out}/table3.md, table3.csv, fig7.png, rewards.csv, timing.md")
    return 0
