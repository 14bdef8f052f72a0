"""``qdt bench paper``: the paper's experiment reproduced over seeds, next to the exact optimum."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qdt.cli.sampling_flags import add_sampling_flags, sampling_from_flags
from qdt.errors import QdtInputError

if TYPE_CHECKING:
    from qdt.experiments.bench.paper import AgentSpec

# The files each bench writes in --out (qdt/experiments/bench/<bench>.py): a folder holding only
# these is an earlier result of the same bench, which a rerun refreshes; any other file is refused.
OUTPUTS = {
    "paper": ("table3.md", "table3.csv", "fig7.png", "rewards.csv", "timing.md"),
    "instances": ("instances.md", "instances.csv"),
    "scale": ("scale.md", "scale.csv", "scale.png"),
    "generalise": ("generalise.md", "generalise.csv", "generalise.png"),
    "noise": ("noise.md", "noise.csv", "noise.png"),
    "shots": ("shots.md", "shots.csv", "shots.png"),
}
DEFAULT_OUT = Path("benchmarks/results/paper")
DEFAULT_RUNS = Path("runs/bench-paper")
DEFAULT_SHOTS = tuple(2**k for k in range(3, 14))  # qdt.experiments.bench.noise.SHOTS, not imported here
DEFAULT_RUNTIME_DEVICES = ("fake_torino", "fake_fractional")  # noise.RUNTIME_DEVICES, not imported here
KEEPS = ("best", "last")  # qdt.rl.rollout.KEEPS, not imported here
INPUT_SCALINGS = ("affine", "none")  # qdt.rl.config.InputScaling, not imported here
SWEEP_NOTE = (
    "The training runs are the cells of a sweep on qdt's Ray engine in --runs (results.csv: one "
    "row per run; cells/<id>/: its run folder): a finished run is never trained again, and the "
    "same command after an interruption resumes unfinished runs from their checkpoints. A run that "
    "keeps failing is recorded with its error, named in the output, and left out of the results."
)
EXIT_NOTE = (
    "--out must be new, empty, or hold only this bench's own outputs (refreshed); --runs new, empty "
    "or a sweep folder. Exit status: 0 when every run finished, 1 when some failed (outputs still "
    "written), 2 on a bad option."
)


def _add_sweep_options(parser: argparse.ArgumentParser, default_runs: Path) -> None:
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="K",
        help="runs trained at once (the sweep's max parallel cells; default: the CPUs Ray has)",
    )
    parser.add_argument(
        "--runs",
        type=Path,
        default=default_runs,
        metavar="DIR",
        help=f"the sweep folder of the training runs (default {default_runs})",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        default=None,
        help="Ray cluster to train on (host:port, ray://host:port or auto); default: start one locally",
    )
    parser.add_argument(
        "--retry-failed", action="store_true", help="train runs recorded as failed in --runs again"
    )


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
            "for --episodes episodes with --seeds seeds each (as a sweep on Ray, see `qdt sweep`), "
            "then write the analogue of Table 3 (per-user latency, mean and 95% interval over "
            "seeds, next to the exact optimum, greedy and random), of Fig. 7 (reward versus "
            "episode, mean and band over seeds) and the timing of one training update against "
            "PennyLane default.qubit + TorchLayer. " + SWEEP_NOTE
        ),
        epilog=EXIT_NOTE,
    )
    paper.add_argument("--seeds", type=int, default=5, help="seeds per agent (default 5)")
    paper.add_argument("--episodes", type=int, default=2000, help="episodes per run (default 2000)")
    paper.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"results folder (default {DEFAULT_OUT})"
    )
    _add_sweep_options(paper, DEFAULT_RUNS)
    paper.add_argument("--no-timing", action="store_true", help="skip the PennyLane update timing")
    paper.set_defaults(handler=_cmd_paper)

    generated = kinds.add_parser(
        "instances",
        help="policy quality on generated instances up to 8 users and 3 servers",
        description=(
            "Draw one feasible instance per shape with `qdt instance generate` (default 4x2, 6x2, "
            "6x3, 8x3), train the classical agent and the quantum agent with L = 6 on each with "
            "--seeds seeds, and report feasible runs, runs within 5% of the exact optimum and the "
            "mean gap, next to greedy. " + SWEEP_NOTE
        ),
        epilog=EXIT_NOTE,
    )
    generated.add_argument(
        "--shapes", default="4x2,6x2,6x3,8x3", help="comma-separated NxM shapes (default 4x2,6x2,6x3,8x3)"
    )
    generated.add_argument("--seeds", type=int, default=3, help="training seeds per agent (default 3)")
    generated.add_argument("--episodes", type=int, default=2000, help="episodes per run (default 2000)")
    generated.add_argument("--instance-seed", type=int, default=1, help="first generator seed (default 1)")
    generated.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results/instances"),
        help="results folder (default benchmarks/results/instances)",
    )
    _add_sweep_options(generated, Path("runs/bench-instances"))
    generated.set_defaults(handler=_cmd_instances)
    _register_scale(kinds)
    _register_generalise(kinds)
    _register_studies(kinds)


# The folder the first full `qdt bench generalise` run writes; built from parts because it does not
# exist before that run (tests/test_docs_paths.py checks that named paths exist).
GENERALISE_OUT = Path("benchmarks", "results", "generalise")


def _register_scale(kinds: Any) -> None:
    scale = kinds.add_parser(
        "scale",
        help="learned placements from 8 to 64 users against the MILP optimum, greedy and untrained scores",
        description=(
            "For every N x M of the grid (default 8x2, 16x4, 32x8, 64x8; --full: N in {8, 16, 32, 64} "
            "x M in {2, 4, 8}; --quick: a small grid for CI), draw an instance on which greedy-with-repair "
            "misses the MILP optimum (tight generator settings where the MILP proves the optimum in time), "
            "train the classical and the quantum (L = 6) agents with --seeds seeds by --recipe, and "
            "report feasible runs, the gap to the optimum (median, min-max, runs within 2%, runs better "
            "than greedy), greedy's gap, the gap of the same decoding fed untrained scores, time per "
            "episode and wall time, with the interquartile mean of the gap and its 95% stratified-"
            "bootstrap interval. Writes scale.csv, scale.md, scale.png (gap against N). " + SWEEP_NOTE
        ),
        epilog=EXIT_NOTE,
    )
    grid = scale.add_mutually_exclusive_group()
    grid.add_argument(
        "--shapes", default=None, metavar="NxM,...", help="the grid (default 8x2,16x4,32x8,64x8)"
    )
    grid.add_argument("--full", action="store_true", help="N in {8,16,32,64} x M in {2,4,8}")
    grid.add_argument("--quick", action="store_true", help="4x2 and 8x2, 2 seeds, 40 episodes (for CI)")
    scale.add_argument("--seeds", type=int, default=None, help="training seeds per agent (default 5)")
    scale.add_argument(
        "--agents",
        default=None,
        metavar="AGENT,...",
        help=(
            "which agents to train: classical, quantum (L = 6) or both (default classical,quantum); a "
            "run's cell is the same either way, so a bench of one agent reuses that agent's finished runs"
        ),
    )
    scale.add_argument(
        "--recipe", default=None, help="training recipe (default: qdt train's on one instance, v5)"
    )
    _add_ppo_credit(scale)
    scale.add_argument("--episodes", type=int, default=None, help="episodes per run (default: the recipe's)")
    scale.add_argument(
        "--quantum-episodes",
        type=int,
        default=None,
        metavar="E",
        help=(
            "episodes of the quantum runs whose critic needs 10 or more qubits (64x8), slow until the "
            "statevector kernel is faster (default: --episodes)"
        ),
    )
    scale.add_argument(
        "--instances",
        choices=("tight", "default"),
        default="tight",
        help="generator settings (default tight)",
    )
    scale.add_argument("--instance-seed", type=int, default=1, help="first generator seed (default 1)")
    scale.add_argument(
        "--max-critic-qubits",
        type=int,
        default=10,
        metavar="Q",
        help=(
            "train the quantum agent only where its critic needs at most Q qubits (default 10, the 64x8 "
            "critic; at most 12, qdt/circuits/vqc.py MAX_QUBITS); the others are listed as not trained"
        ),
    )
    scale.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/scale"), help="default benchmarks/results/scale"
    )
    _add_sweep_options(scale, Path("runs/bench-scale"))
    scale.set_defaults(handler=_cmd_scale)


def _register_generalise(kinds: Any) -> None:
    generalise = kinds.add_parser(
        "generalise",
        help="policies trained on a family of instances placing unseen ones, against MILP, greedy, random",
        description=(
            "For every N x M of the grid (default 8x2, 16x4, 32x8, 64x8; --quick: 4x2 and 8x2, 2 seeds, "
            "30 episodes, 10 unseen instances, for CI) train the classical and the quantum (L = 6) agents "
            "with --seeds seeds on the family users=N,servers=M (`qdt train --family`, a new instance every "
            "episode and environment; --tight: the tight generator settings, where greedy misses), actors "
            "scoring user by user (--observation user, 64 wide, lr 3e-3) that improve greedy-with-repair's "
            "placement (--start greedy) and learn the MILP optimum of their training draws "
            "(--imitation-episodes; 0: from rewards only, by the recipe's learner). "
            "Then place --unseen instances of the family "
            "that no run trained on (the same for every agent and seed) with every trained run, one at a "
            "time, each decision the best placement its rollout visited (--keep; a 'last placement' "
            "column shows the rollout's last one), and solve them with the MILP (time limit 20 s), "
            "greedy-with-repair, the feasible decoding fed uniform random scores and the same rollout fed "
            "each seed's untrained actors. "
            "Reports per shape and agent, over the instances with a proven optimum (--milp-gap: a "
            "proven bound): feasible share, the gap to the optimum (median and interquartile range "
            "pooled over seeds, each seed's median, the "
            "interquartile mean of the seeds' medians with its 95% stratified-bootstrap interval), "
            "greedy's, random's and the untrained decoding's median gaps, the median decision time (the "
            "actors rebound to the instance, greedy's start placement, scoring and decoding) against "
            "the MILP's median on the same "
            "instances, both timed in this run, and their ratio; then whether each target of issue 17 is "
            "met. Writes generalise.csv (one row per run and unseen instance), generalise.md, "
            "generalise.png (gap distributions; decision vs MILP time). Wall time on 2 cores with "
            "--workers 2: the default grid about 2 h 20 min (32x8 and 64x8 2 h 10 min; README: "
            "'Placing unseen instances'); 1-2 min for --quick. " + SWEEP_NOTE
        ),
        epilog=EXIT_NOTE,
    )
    grid = generalise.add_mutually_exclusive_group()
    grid.add_argument(
        "--shapes", default=None, metavar="NxM,...", help="the grid (default 8x2,16x4,32x8,64x8)"
    )
    grid.add_argument(
        "--quick",
        action="store_true",
        help="4x2 and 8x2, 2 seeds, 30 episodes, 10 unseen instances (for CI; flags given override them)",
    )
    generalise.add_argument("--seeds", type=int, default=None, help="training seeds per agent (default 5)")
    generalise.add_argument(
        "--agents",
        default=None,
        metavar="AGENT,...",
        help=(
            "which agents to train and place: classical, quantum (L = 6) or both (default "
            "classical,quantum); a run's cell is the same either way, so a bench of one agent reuses and "
            "evaluates that agent's finished runs of a bench of both"
        ),
    )
    generalise.add_argument(
        "--recipe", default=None, help="training recipe (default v3: a shared actor, no critic)"
    )
    _add_ppo_credit(generalise, "user with a ppo recipe")
    generalise.add_argument("--episodes", type=int, default=None, help="episodes per run (default 150)")
    generalise.add_argument(
        "--imitation-episodes",
        type=int,
        default=None,
        metavar="E",
        help=(
            "episodes whose update fits the actor to the MILP optimum of the episode's training draws "
            "(qdt/rl/imitation.py; default: every episode; 0: learn from rewards only)"
        ),
    )
    generalise.add_argument(
        "--quantum-episodes",
        type=int,
        default=None,
        metavar="E",
        help=(
            "episodes of the quantum runs whose critic needs 10 or more qubits (32x8 and 64x8 on a "
            "family), slow on today's statevector kernel (default: --episodes)"
        ),
    )
    generalise.add_argument(
        "--unseen",
        type=int,
        default=None,
        metavar="K",
        help="unseen instances placed per shape (default 100; at most 10000)",
    )
    generalise.add_argument(
        "--tight",
        action="store_true",
        help="train and test on the tight family (tight=true: qdt/problem/generator.py), where greedy misses",
    )
    generalise.add_argument(
        "--construct",
        action="store_true",
        help=(
            "train and place with the construct decoding: user by user, the actor reading the whole "
            "partial placement, learning by imitation with DAgger (qdt/rl/construct.py; 64 wide, lr 3e-3, "
            "64 gradient steps per episode)"
        ),
    )
    generalise.add_argument(
        "--milp-gap",
        type=float,
        default=0.0,
        metavar="X",
        help=(
            "score the unseen instances against the MILP's lower bound on the optimum where HiGHS "
            "proves a placement within this share of it (its relative MIP gap), instead of against "
            "proven optima (default 0; at most 0.1). A gap to the bound is never below the gap to the "
            "optimum, so a median within 2%% is proven within 2%%. For shapes where the MILP proves few "
            "optima within its 20 s limit: 0.01 on the tight 64x8 family (about 1 s an instance, "
            "its time the MILP column)"
        ),
    )
    generalise.add_argument(
        "--label-gap",
        type=float,
        default=0.0,
        metavar="X",
        help=(
            "with --construct: imitation labels proven within this share of the MILP optimum "
            "(HiGHS's relative MIP gap; default 0: proven optima; at most 0.1). 0.01 makes the labels "
            "of tight 32x8 instances about 3-4x cheaper (qdt train --label-gap)"
        ),
    )
    generalise.add_argument(
        "--construct-order",
        choices=["sure", "constrained"],
        default="sure",
        help=(
            "with --construct: which user a construction places next, the one the actor is surest of "
            "(sure, the default) or one with the fewest servers left that fit it, the surest among those "
            "(constrained; qdt train --construct-order)"
        ),
    )
    generalise.add_argument(
        "--construct-guard",
        choices=["none", "completion"],
        default="none",
        help=(
            "with --construct: completion keeps every construction completable (a user goes to the "
            "actor's server only if a smallest-share completion of the rest still fits, else to that "
            "of the last completion that did; qdt train --construct-guard). Default none"
        ),
    )
    generalise.add_argument(
        "--input-scaling",
        choices=INPUT_SCALINGS,
        default=None,
        help=(
            "how the quantum actors read their inputs: affine, a trained scale and shift of each input "
            "before the circuit's encoding (the default for rollouts: closer to the optimum on validation "
            "draws at 32x8 and 64x8, qdt/experiments/bench/generalise.py), or none, the inputs as they "
            "are (the default with --construct). The classical runs are the same either way"
        ),
    )
    generalise.add_argument(
        "--lr-quantum",
        type=float,
        default=None,
        metavar="LR",
        help=(
            "learning rate of the quantum runs' circuit weights (qdt train --lr-quantum; default: the "
            "recipe's, 0.01). 0.05 with --construct at 64x8: closer to the optimum on validation draws "
            "(qdt/experiments/bench/generalise.py, CONSTRUCT_LR_QUANTUM). The classical runs are "
            "the same either way"
        ),
    )
    add_sampling_flags(
        generalise,
        "with --construct; the untrained column is decided the same way, and a 'one construction' "
        "column shows the plain one",
    )
    generalise.add_argument(
        "--local-search",
        action="store_true",
        help=(
            "end every decision with a local search (the best single-user move or two-user swap, until "
            "none lowers the total latency; with --samples, of every construction before the best is "
            "kept; timed as part of the decision), and greedy's, random's and the untrained column's "
            "placements too, so every column is searched alike (qdt/problem/local_search.py)"
        ),
    )
    generalise.add_argument(
        "--keep",
        choices=KEEPS,
        default=None,
        help=(
            "which placement of a rollout decides: best, the feasible one of least total latency it "
            "visited, greedy-with-repair's start included (the default; a 'last placement' column shows "
            "the rollout's last one), or last, the policy's own answer (qdt/rl/rollout.py); refused with "
            "--construct"
        ),
    )
    generalise.add_argument(
        "--max-critic-qubits",
        type=int,
        default=11,
        metavar="Q",
        help=(
            "train the quantum agent only where its critic needs at most Q qubits (default 11, the 64x8 "
            "family critic: 4NM inputs; at most 12, qdt/circuits/vqc.py MAX_QUBITS); the others are "
            "listed as not trained"
        ),
    )
    generalise.add_argument(
        "--out",
        type=Path,
        default=GENERALISE_OUT,
        help=f"default {GENERALISE_OUT} (written by the first full run)",
    )
    _add_sweep_options(generalise, Path("runs/bench-generalise"))
    generalise.set_defaults(handler=_cmd_generalise)


def _register_studies(kinds: Any) -> None:
    noise = kinds.add_parser(
        "noise",
        help="trained policies under depolarizing, readout and fake-device noise, raw and mitigated",
        description=(
            "Train quantum agents (L = 6) on the paper preset noiselessly and noise-aware (density "
            "executor, depol-1e-3) with --seeds seeds, then evaluate each under depolarizing noise "
            "p2 in {0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1} (1-qubit p2/10) x readout error in "
            "{0, 1e-2, 5e-2}, under device-derived noise models of fake IBM devices on Aer (--devices), "
            "and on IBM Runtime fake devices through the ibm executor in local testing mode, the code "
            "path of a real device (--runtime-devices): one job per policy and device carries every "
            "actor on all its observations and two readout-calibration rows, and its counts are scored "
            "raw and mitigated through mthree (calibrated by those rows); a device with fractional "
            "gates is run with them on and off. Writes noise.csv, noise.md, noise.png (gap, "
            "feasibility, action and decision agreement with the noiseless policy). " + SWEEP_NOTE
        ),
        epilog=EXIT_NOTE,
    )
    shots = kinds.add_parser(
        "shots",
        help="trained policies with sampled readout, 8 to 8192 shots, vs Gaussian emulation",
        description=(
            "Train quantum agents (L = 6) noiselessly with --seeds seeds, then evaluate each with "
            "the readout sampled from --shots-list shots (default 8, 16, ..., 8192) on Aer and "
            "exactly, sampled (multinomial) next to the Gaussian emulation of shot noise. Writes "
            "shots.csv, shots.md, shots.png (gap, feasibility, decision agreement against shots). "
            "Trains the same noiseless policies as `qdt bench noise`, so with the same --runs one "
            "reuses the other's. " + SWEEP_NOTE
        ),
        epilog=EXIT_NOTE,
    )
    for parser, name in ((noise, "noise"), (shots, "shots")):
        parser.add_argument("--seeds", type=int, default=3, help="training seeds (default 3)")
        parser.add_argument("--episodes", type=int, default=2000, help="episodes per run (default 2000)")
        parser.add_argument("--layers", type=int, default=6, help="VQC layers (default 6)")
        parser.add_argument(
            "--out",
            type=Path,
            default=Path(f"benchmarks/results/{name}"),
            help=f"default benchmarks/results/{name}",
        )
        _add_sweep_options(parser, Path("runs/bench-noise"))
    noise.add_argument(
        "--devices",
        default="fake_brisbane,fake_torino,fake_sherbrooke",
        help="fake devices whose noise models to use (default fake_brisbane,fake_torino,fake_sherbrooke)",
    )
    noise.add_argument(
        "--runtime-devices",
        default=",".join(DEFAULT_RUNTIME_DEVICES),
        metavar="D1,D2,...|none",
        help=(
            "ibm profiles of fake devices to run the policies on through qiskit-ibm-runtime's local "
            "testing mode, raw and readout-mitigated (mthree), one job per policy and device; a profile "
            "with fractional gates on (fake_fractional) also runs with them off. fake_torino costs "
            "about 20 s a job (Aer simulates the 133-qubit device's noise). 'none' skips them "
            f"(default {','.join(DEFAULT_RUNTIME_DEVICES)})"
        ),
    )
    shots.add_argument("--repeats", type=int, default=5, help="shot draws per seed and setting (default 5)")
    shots.add_argument(
        "--shots-list",
        default=",".join(str(count) for count in DEFAULT_SHOTS),
        metavar="S1,S2,...",
        help="comma-separated shot counts (default 8,16,...,8192)",
    )
    noise.set_defaults(handler=_cmd_noise)
    shots.set_defaults(handler=_cmd_shots)


def _check_positive(*flags: tuple[str, int]) -> None:
    for flag, value in flags:
        if value < 1:
            raise QdtInputError(flag, "an integer >= 1", value)


def _check_workers(args: argparse.Namespace) -> None:
    if args.workers is not None and args.workers < 1:
        raise QdtInputError("--workers", "an integer >= 1", args.workers)


@contextmanager
def _output_folders(args: argparse.Namespace, bench: str) -> Iterator[None]:
    """Refuse, before any work, a --runs that is not a sweep folder and an --out holding anything
    but this bench's own outputs; hold --out's lock while the bench writes it (qdt/files.py)."""
    from qdt.experiments.sweep import check_sweep_folder
    from qdt.files import FolderRule, claim_output_folder, mark_owner, owned_by

    if args.out.resolve() == args.runs.resolve():
        raise QdtInputError("--runs", "a folder other than --out", str(args.runs), "give each its own folder")
    check_sweep_folder(args.runs, "--runs")
    owner = f"qdt bench {bench}"
    rule = FolderRule(
        f"a new or empty folder, or one holding only `{owner}` results",
        accept=partial(owned_by, owner=owner, allowed=frozenset(OUTPUTS[bench])),
    )
    with claim_output_folder(args.out, "--out", rule) as out:
        mark_owner(out, owner)
        yield


def _wrote(args: argparse.Namespace, bench: str) -> str:
    return f"wrote {args.out}/{', '.join(OUTPUTS[bench])}"


def _sweep_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"workers": args.workers, "ray_address": args.ray_address, "retry_failed": args.retry_failed}


@contextmanager
def _progress(desc: str, total: int, unit: str) -> Iterator[Callable[[str], None]]:
    """A progress bar for the duration of the block; yields ``step(message)``, which shows the
    message next to the bar and advances it by one."""
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, unit=unit) as bar:

        def step(message: str) -> None:
            bar.set_postfix_str(message)
            bar.update(1)

        yield step


def _run_reporter(
    step: Callable[[str], None], describe: Callable[[Mapping[str, Any]], str]
) -> Callable[[str, Mapping[str, Any]], None]:
    """A callback for each finished run: its label and outcome as a step of the progress bar."""

    def done(label: str, row: Mapping[str, Any]) -> None:
        step(f"{label}: {describe(row) if row.get('status') == 'ok' else 'FAILED'}")

    return done


def _gap_text(row: Mapping[str, Any]) -> str:
    """A finished run's gap on its own instance for the progress bar; "no optimum proven" where the
    MILP proved none (a family run's summary limit), "infeasible" only where its placement is."""
    gap = row.get("gap")
    if gap is not None:
        return f"gap {100 * gap:.1f}%"
    if row.get("feasible") and row.get("optimum_status") != "optimal":
        return "feasible, no optimum proven"
    return "infeasible"


def _finish(result: Mapping[str, Any], runs_dir: Path, wrote: str) -> int:
    """The closing lines: what was trained, what was written, which runs failed (exit 1 if any)."""
    trained = result.get("trained")
    if trained is not None:
        print(f"{trained} run(s) trained in this call; runs in {runs_dir} (results.csv, cells/)")
    print(wrote)
    failures = result.get("failures") or []
    if not failures:
        return 0
    print(
        f"{len(failures)} training run(s) failed (left out of the results; error in {runs_dir}/results.csv):"
    )
    for failure in failures:
        print(f"  {failure}")
    print("fix the cause and run the same command again, with --retry-failed to train them again")
    return 1


def _check_common(args: argparse.Namespace) -> None:
    _check_positive(("--seeds", args.seeds), ("--episodes", args.episodes), ("--layers", args.layers))
    _check_workers(args)


def _cmd_noise(args: argparse.Namespace) -> int:
    from qdt.experiments.bench.noise import run_noise_bench
    from qdt.experiments.bench.runtime_devices import device_variants

    _check_common(args)
    devices = list(dict.fromkeys(d.strip() for d in args.devices.split(",") if d.strip()))
    if not devices:
        raise QdtInputError("--devices", "comma-separated fake device names, e.g. fake_manila", args.devices)
    runtime = list(dict.fromkeys(d.strip() for d in args.runtime_devices.split(",") if d.strip()))
    if runtime == ["none"]:
        runtime = []
    elif not runtime or "none" in runtime:
        raise QdtInputError(
            "--runtime-devices",
            "comma-separated ibm profiles of fake devices (e.g. fake_torino,fake_fractional), or none",
            args.runtime_devices,
        )
    variants = device_variants(runtime, "--runtime-devices")  # before any training
    total = 2 * args.seeds + 2 * args.seeds * (1 + len(devices) + len(variants))
    with _output_folders(args, "noise"), _progress("bench noise", total, "step") as step:
        result = run_noise_bench(
            args.out,
            args.runs,
            seeds=args.seeds,
            episodes=args.episodes,
            layers=args.layers,
            devices=devices,
            runtime_devices=runtime,
            on_done=step,
            **_sweep_kwargs(args),
        )
    print(result["markdown"])
    wrote = f"wall time {result['wall_s']:.0f} s; {_wrote(args, 'noise')}"
    return _finish(result, args.runs, wrote)


def _cmd_shots(args: argparse.Namespace) -> int:
    from qdt.executors import MAX_SHOTS
    from qdt.experiments.bench.noise import run_shots_bench

    _check_common(args)
    _check_positive(("--repeats", args.repeats))
    shots = _int_list("--shots-list", args.shots_list, 1, MAX_SHOTS)
    with _output_folders(args, "shots"), _progress("bench shots", 2 * args.seeds, "step") as step:
        result = run_shots_bench(
            args.out,
            args.runs,
            seeds=args.seeds,
            episodes=args.episodes,
            layers=args.layers,
            shots=shots,
            repeats=args.repeats,
            on_done=step,
            **_sweep_kwargs(args),
        )
    print(result["markdown"])
    wrote = f"wall time {result['wall_s']:.0f} s; {_wrote(args, 'shots')}"
    return _finish(result, args.runs, wrote)


def _int_list(flag: str, text: str, low: int, high: int) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise QdtInputError(flag, "comma-separated integers", text) from None
    bad = [v for v in values if not low <= v <= high]
    if bad or not values:
        raise QdtInputError(flag, f"integers from {low} to {high}", text)
    if len(set(values)) != len(values):
        raise QdtInputError(flag, "distinct values", text, "list each value once")
    return values


def _cmd_scale(args: argparse.Namespace) -> int:
    from qdt.experiments.bench.scale import (
        DEFAULT_AGENTS,
        DEFAULT_SEEDS,
        DEFAULT_SHAPES,
        FULL_SHAPES,
        QUICK_SHAPES,
        check_max_critic_qubits,
        is_trained,
        run_scale_bench,
    )

    if args.quick:
        shapes, seeds, episodes = list(QUICK_SHAPES), 2, 40
    else:
        shapes = list(FULL_SHAPES if args.full else DEFAULT_SHAPES)
        seeds, episodes = DEFAULT_SEEDS, None
        if args.shapes is not None:
            shapes = parse_shapes(args.shapes, max_users=1024)
    seeds = args.seeds if args.seeds is not None else seeds
    episodes = args.episodes if args.episodes is not None else episodes
    recipe = _check_budget(args, seeds, episodes)
    agents = parse_agents(args.agents, DEFAULT_AGENTS) if args.agents is not None else DEFAULT_AGENTS
    check_max_critic_qubits(args.max_critic_qubits)
    total = seeds * sum(
        is_trained(spec, n, m, args.max_critic_qubits, recipe) for n, m in shapes for spec in agents
    )
    with _output_folders(args, "scale"), _progress("bench scale", total, "run") as step:
        result = run_scale_bench(
            args.out,
            args.runs,
            shapes=shapes,
            agents=agents,
            seeds=seeds,
            recipe=recipe,
            episodes=episodes,
            quantum_episodes=args.quantum_episodes,
            ppo_credit=args.ppo_credit,
            generator=args.instances,
            instance_seed=args.instance_seed,
            max_critic_qubits=args.max_critic_qubits,
            on_result=_run_reporter(step, _gap_text),
            **_sweep_kwargs(args),
        )
    print(result["markdown"])
    wrote = f"wall time {result['wall_s']:.0f} s; {_wrote(args, 'scale')}"
    return _finish(result, args.runs, wrote)


def _add_ppo_credit(parser: argparse.ArgumentParser, default: str = "the recipe's") -> None:
    """``--ppo-credit`` of the training benches (scale, generalise); checked by :func:`_check_budget`."""
    parser.add_argument(
        "--ppo-credit",
        default=None,
        metavar="CREDIT",
        help="the ppo learner's credit on top of --recipe, as in qdt train (episode, user or both; "
        f"default: {default})",
    )


def _check_budget(
    args: argparse.Namespace, seeds: int, episodes: int | None, default_recipe: str | None = None
) -> str:
    """The recipe (--recipe, else ``default_recipe``, else qdt train's), once seeds, episodes and
    workers are checked (scale and generalise)."""
    from qdt.rl.config import DEFAULT_RECIPE, PPO_CREDITS, RECIPE_NAMES, TrainConfig

    recipe = args.recipe if args.recipe is not None else (default_recipe or DEFAULT_RECIPE)
    if recipe not in RECIPE_NAMES:
        raise QdtInputError("--recipe", f"one of {', '.join(RECIPE_NAMES)}", recipe)
    if args.ppo_credit is not None:
        if args.ppo_credit not in PPO_CREDITS:
            raise QdtInputError("--ppo-credit", f"one of {', '.join(PPO_CREDITS)}", args.ppo_credit)
        learner = TrainConfig.from_recipe(recipe).learner
        if args.ppo_credit != "episode" and learner != "ppo":
            ppo = [name for name in RECIPE_NAMES if TrainConfig.from_recipe(name).learner == "ppo"]
            raise QdtInputError(
                "--ppo-credit",
                f"episode with recipe {recipe} (its learner is {learner}; credit is a ppo setting)",
                args.ppo_credit,
                f"use --recipe {' or '.join(ppo)}, or drop --ppo-credit",
            )
    _check_positive(("--seeds", seeds))
    for flag, value in (("--episodes", episodes), ("--quantum-episodes", args.quantum_episodes)):
        if value is not None:
            _check_positive((flag, value))
    _check_workers(args)
    return str(recipe)


def _cmd_generalise(args: argparse.Namespace) -> int:
    from qdt.experiments.bench.generalise import (
        DEFAULT_AGENTS,
        DEFAULT_SEEDS,
        DEFAULT_SHAPES,
        DEFAULT_UNSEEN,
        GENERALISE_EPISODES,
        GENERALISE_RECIPE,
        QUICK_EPISODES,
        QUICK_SEEDS,
        QUICK_SHAPES,
        QUICK_UNSEEN,
        GeneraliseTraining,
        bench_credit,
        check_configs,
        check_lr_quantum,
        check_milp_gap,
        check_sampling,
        check_unseen,
        run_generalise_bench,
    )

    if args.quick:
        shapes, seeds, episodes, unseen = list(QUICK_SHAPES), QUICK_SEEDS, QUICK_EPISODES, QUICK_UNSEEN
    else:
        shapes, seeds, episodes, unseen = (
            list(DEFAULT_SHAPES),
            DEFAULT_SEEDS,
            GENERALISE_EPISODES,
            DEFAULT_UNSEEN,
        )
        if args.shapes is not None:
            shapes = parse_shapes(args.shapes, max_users=1024)
    seeds = args.seeds if args.seeds is not None else seeds
    episodes = args.episodes if args.episodes is not None else episodes
    unseen = check_unseen(args.unseen if args.unseen is not None else unseen)
    milp_gap = check_milp_gap(args.milp_gap)
    recipe = _check_budget(args, seeds, episodes, GENERALISE_RECIPE)
    credit = bench_credit(recipe, args.ppo_credit)
    agents = parse_agents(args.agents, DEFAULT_AGENTS) if args.agents is not None else DEFAULT_AGENTS
    # every shape checked against every agent (and --max-critic-qubits) before any folder or run
    training = GeneraliseTraining(
        recipe,
        episodes,
        args.quantum_episodes,
        args.tight,
        credit,
        args.imitation_episodes,
        args.construct,
        args.label_gap,
        args.construct_order,
        args.construct_guard,
        args.input_scaling,
        check_lr_quantum(args.lr_quantum),
    )
    sampling = sampling_from_flags(args.samples, args.temperature)
    check_sampling(sampling, training)
    if args.keep is not None and training.construct:
        raise QdtInputError(
            "--keep",
            "no --keep with --construct (a construction builds one placement, not a rollout)",
            args.keep,
            "drop --keep (--samples K keeps the best of K constructions)",
        )
    skipped = check_configs(shapes, agents, training, args.max_critic_qubits)
    total = seeds * (len(shapes) * len(agents) - len(skipped))
    with (
        _output_folders(args, "generalise"),
        _progress("bench generalise", total + len(shapes), "step") as step,
    ):
        result = run_generalise_bench(
            args.out,
            args.runs,
            shapes=shapes,
            agents=agents,
            seeds=seeds,
            training=training,
            unseen=unseen,
            max_critic_qubits=args.max_critic_qubits,
            milp_gap=milp_gap,
            sampling=sampling,
            keep=args.keep or "best",
            local_search=args.local_search,
            on_result=_run_reporter(step, _gap_text),
            on_shape=lambda shape: step(f"{shape}: {unseen} unseen instances placed"),
            **_sweep_kwargs(args),
        )
    print(result["markdown"])
    wrote = f"wall time {result['wall_s']:.0f} s; {_wrote(args, 'generalise')}"
    return _finish(result, args.runs, wrote)


def parse_agents(text: str, specs: Sequence[AgentSpec]) -> tuple[AgentSpec, ...]:
    """The agents of ``specs`` named in "classical,quantum" (by their kind), in ``specs``' order, or
    a QdtInputError naming --agents."""
    kinds = [spec.agent for spec in specs]
    names = [part.strip().lower() for part in text.split(",")]
    if not names or any(name not in kinds for name in names) or len(set(names)) != len(names):
        raise QdtInputError("--agents", f"distinct agents from {', '.join(kinds)}, comma-separated", text)
    return tuple(spec for spec in specs if spec.agent in names)


def parse_shapes(text: str, max_users: int = 10) -> list[tuple[int, int]]:
    """Distinct NxM shapes from "4x2,8x3" (1 <= N <= ``max_users``), or a QdtInputError naming
    --shapes; the benchmarks' scripts parse theirs with it too."""
    shapes = []
    for part in text.split(","):
        pieces = part.strip().lower().split("x")
        try:
            users, servers = (int(p) for p in pieces)
        except ValueError:
            raise QdtInputError("--shapes", "shapes like 4x2,8x3", text) from None
        if users < 1 or servers < 1 or users > max_users:
            raise QdtInputError("--shapes", f"1 <= N <= {max_users} users and M >= 1 servers", part.strip())
        if (users, servers) in shapes:
            raise QdtInputError("--shapes", "distinct shapes", text, "list each shape once")
        shapes.append((users, servers))
    return shapes


def _cmd_instances(args: argparse.Namespace) -> int:
    from qdt.experiments.bench.instances import DEFAULT_AGENTS, run_instances_bench

    shapes = parse_shapes(args.shapes)
    _check_positive(("--seeds", args.seeds), ("--episodes", args.episodes))
    _check_workers(args)
    total = len(shapes) * len(DEFAULT_AGENTS) * args.seeds
    with _output_folders(args, "instances"), _progress("bench instances", total, "run") as step:
        result = run_instances_bench(
            args.out,
            args.runs,
            shapes=shapes,
            seeds=args.seeds,
            episodes=args.episodes,
            instance_seed=args.instance_seed,
            on_result=_run_reporter(step, _gap_text),
            **_sweep_kwargs(args),
        )
    print(result["markdown"])
    wrote = f"wall time {result['wall_s']:.0f} s; {_wrote(args, 'instances')}"
    return _finish(result, args.runs, wrote)


def _cmd_paper(args: argparse.Namespace) -> int:
    from qdt.experiments.bench.paper import PAPER_AGENTS, run_bench
    from qdt.experiments.bench.update_timing import compare_update_time

    _check_positive(("--seeds", args.seeds), ("--episodes", args.episodes))
    _check_workers(args)
    total = len(PAPER_AGENTS) * args.seeds
    with _output_folders(args, "paper"), _progress("bench paper", total, "run") as step:
        result = run_bench(
            args.out,
            args.runs,
            seeds=args.seeds,
            episodes=args.episodes,
            on_result=_run_reporter(step, _gap_text),
            timing=None if args.no_timing else compare_update_time,
            **_sweep_kwargs(args),
        )
    print(result["table"]["markdown"])
    print()
    print((args.out / "timing.md").read_text())
    wrote = _wrote(args, "paper")
    return _finish(result, args.runs, wrote)
