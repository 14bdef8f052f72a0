"""``qdt demo``: README's main job. Runs on the embedded paper preset, no account, no server.

Solvers, training (classical and quantum L = 1, 3, 6), evaluation exactly, under noise and on a
fake IBM device (local testing mode; raw and readout-mitigated from the same job), a shot sweep,
and a self-contained HTML report.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qdt.cli.problem import render_instance
from qdt.errors import QdtInputError
from qdt.experiments.tables import format_table
from qdt.problem.generator import paper_instance
from qdt.problem.model import PlacementModel


def register(subparsers: Any) -> None:
    from qdt.experiments.report.demo import DemoConfig

    defaults = DemoConfig()
    demo = subparsers.add_parser(
        "demo",
        help="the main job on the paper preset (no account or server needed)",
        description=(
            "Run qdt's main job on the built-in paper preset (4 users, 2 servers): solve it exactly "
            "and with baselines; train the classical agent and quantum agents with L = 1, 3, 6; "
            "evaluate each quantum policy exactly, under a noise profile and on a fake IBM device "
            "(qiskit-ibm-runtime local testing mode, the path a real device takes: one job per policy "
            "with both actors on all observations and two readout-calibration rows, scored raw and "
            "readout-mitigated through mthree, side by side); sweep shot "
            "counts; print a results table next to the exact optimum and write OUT/report.html "
            "(self-contained, with the figures), results.json and results.md. OUT must be new, "
            "empty, or an earlier demo's output (refreshed; its trained runs in OUT/runs reused)."
        ),
    )
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    demo.add_argument(
        "--episodes",
        type=int,
        default=defaults.episodes,
        help=f"training episodes (default {defaults.episodes})",
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of training and evaluation (default 0)")
    demo.add_argument("--noise", default=defaults.noise, help=f"noise profile (default {defaults.noise})")
    demo.add_argument(
        "--device",
        default=defaults.device,
        help=(
            "ibm device profile to run the policies on, raw and readout-mitigated (default "
            f"{defaults.device}, about 25 s per policy: Aer simulates the 133-qubit device's noise)"
        ),
    )
    demo.add_argument("--no-device", action="store_true", help="skip the fake-device evaluation")
    demo.add_argument("--workers", type=int, default=None, help="training processes (default: cores)")
    demo.set_defaults(handler=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from qdt.experiments.report.demo import (
        DEMO_AGENTS,
        DemoConfig,
        check_demo_folder,
        evaluation_settings,
        results_tables,
        run_demo,
    )

    if args.episodes < 1:
        raise QdtInputError("--episodes", "an integer >= 1", args.episodes)
    if args.seed < 0:
        raise QdtInputError("--seed", "a non-negative integer", args.seed)
    if args.workers is not None and args.workers < 1:
        raise QdtInputError("--workers", "an integer >= 1", args.workers)
    config = DemoConfig(
        episodes=args.episodes,
        seed=args.seed,
        workers=args.workers,
        noise=args.noise,
        device=None if args.no_device else args.device,
    )
    check_demo_folder(args.out)
    _check_profiles(config)
    print(render_instance(PlacementModel(paper_instance())))
    print()
    quantum = sum(spec.agent == "quantum" for spec in DEMO_AGENTS)
    steps = len(DEMO_AGENTS) + quantum * len(evaluation_settings(config)) + 1
    with tqdm(total=steps, desc="demo", unit="step") as bar:

        def progress(message: str) -> None:
            bar.set_postfix_str(message)
            bar.update(1)

        result = run_demo(args.out, config, progress)
    for header, rows in results_tables(result):
        print(format_table(header, rows))
        print()
    wall = result["wall_s"]
    print(
        f"wall time {wall['total']:.0f} s (training {wall['training']:.0f} s, evaluation "
        f"{wall['evaluation']:.0f} s); report: {args.out / 'report.html'}"
    )
    return 0


def _check_profiles(config: Any) -> None:
    """Fail before training when the noise profile or device cannot be opened."""
    import numpy as np

    from qdt.executors import open_backend

    if config.noise:
        open_backend("density", seed=np.random.SeedSequence(0), noise=config.noise)
    if config.device:
        executor = open_backend(config.device, seed=np.random.SeedSequence(0), shots=config.device_shots)
        if executor.name != "ibm":  # raw and mitigated come from one Runtime job's counts
            raise QdtInputError(
                "--device", "an ibm profile (fake_<device>, e.g. fake_torino, or ibm_<device>)", config.device
            )
