"""``qdt place``: a trained run's actors place an instance they never saw, on any executor.

Nothing is trained: the run's weights (its latest checkpoint) act on INSTANCE, an instance file of
the run's size N x M. What the actors and the decoding read from an instance (the ``features``
observation's tables, the feasible decoding's constraints) is rebuilt from INSTANCE
(:func:`qdt.rl.policy.load_policy` with ``instance``). The decision is ``qdt infer``'s greedy
rollout from the run's start placement (:func:`qdt.cli.infer.decide`): quantum actors on ``--backend``
(default: the executor, noise and shots the run trained with), classical actors as torch networks.
A rollout decides by the best placement it visited (``--keep best``, the default: its start,
greedy's for a family run, included) or by its last (``--keep last``, ``qdt infer``'s;
``qdt/rl/rollout.py``). A constructing run may decide by the best of ``--samples`` constructions
in one batch (:class:`qdt.rl.construct.Sampling`, noise from ``--seed``, default the run's seed).

A run trained on one instance (every run folder until family training exists; its config.json
holds ``config`` and ``instance``) may place another one: the output says so (``trained_on``
"instance" and a note). A run trained on a family of instances stores a ``family`` entry next to
``config``; :func:`qdt.rl.policy.trained_on` reads which.

Records: the report is saved as RUN/place/<utc>-<instance file stem>-<profile>.json. On an IBM
device (``fake_<device>``, ``ibm_<device>``) the jobs go to a job store of their own,
RUN/place/jobs.jsonl and RUN/place/jobs/ (``qdt jobs list --run RUN/place``), never to the run's
RUN/jobs.jsonl, so a later ``qdt infer --resume`` of the run only ever reuses infer's own jobs.

JSON contract (``--json``): run, trained_on ("instance" | "family"), note (why the placement may
not generalise, or null), instance {file, name, users, servers, seen_in_training}, agent, backend
{profile, executor, shots, noise, ...; profile null for classical actors}, strategy, steps,
keep ("best" or "last": which placement of the rollout decided; null for a construction),
samples (constructions the decision took the best of; 1: the plain construction), temperature
(their noise's scale, null for 1), local_search (whether the decision ended with
``qdt.problem.local_search``'s moves and swaps: ``--local-search``), seed, assignment (one server
index per user, null when some user has no server or two), feasible, violations, total_latency_s,
per_user_latency_s, optimum_status, optimum_assignment,
optimum_total_latency_s (null unless the MILP proved an optimum), gap ((total - optimum) /
optimum; null when the placement is infeasible or there is no proven optimum), gap_note (why gap
is null, else null), decision_ms (wall time of the actors' scoring and the decoding: every job
on a device included, the MILP not), circuits (per agent: qubits, layers and, on a device, the
ISA layout, depth, two-qubit gates), jobs, saved.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from qdt.cli.failures import fields_as_flags, printable
from qdt.cli.infer import backend_report, backend_where, circuits_report, decide, decision_report
from qdt.cli.problem import load_instance_file
from qdt.cli.sampling_flags import add_sampling_flags, sampling_from_flags
from qdt.errors import QdtInputError
from qdt.experiments.tables import format_table
from qdt.files import write_json_atomic
from qdt.rl.rollout import KEEPS

PLACE_DIR = "place"  # under the run folder: reports and the job store of `qdt place`
KEEP_WORDS = {"best": ", the best placement it visited", "last": ", its last placement"}  # the text report

_DESCRIPTION = """\
Place INSTANCE with the trained actors of --run, without training anything.

INSTANCE is an instance file (`qdt instance generate ... -o FILE`) the run never saw: other
channel gains, rates, capacities, caps and deadlines, but the run's size (N users, M servers;
another size is refused). The run's weights act on it as they are; what the actors and the
decoding read from an instance is rebuilt from INSTANCE. The decision is the greedy rollout from
the run's start placement that `qdt infer` runs (N_t steps, the run's decoding; a family run starts
from greedy-with-repair's placement, and its time is part of decision_ms), and by default the
feasible placement of least total latency it visited, its start included, decides (--keep best):
so a family run's decision is never worse than greedy-with-repair's. --keep last takes the
rollout's last placement, the policy's own answer (what `qdt infer` reports). A run trained with
--decode construct builds the placement user by user instead (strategy "construct"): N calls of
its actor, each on the whole partial placement, so N jobs on an IBM device. With --samples K it
runs K constructions in one batch (still N calls, each K times the rows), the plain one and K-1
with Gumbel noise of scale --temperature on the actor's logits, and keeps the feasible placement
of least total latency: never worse than the plain construction, K times its rows.
--local-search ends the decision (every construction of it) with a local search: the best
single-user move or two-user swap, again and again, until none lowers the total latency; a
feasible placement stays feasible and never gets worse.

Quantum actors run on --backend (a profile from `qdt backends list` or a .toml; default: the
executor the run trained on, with its noise and shots), with --noise and --shots as in
`qdt train`; on an IBM device (fake_<device>, ibm_<device>) every job id is written to
RUN/place/jobs.jsonl before qdt waits for it (`qdt jobs list --run RUN/place`), apart from
the run's own jobs.jsonl. Classical actors run as torch networks: --backend, --noise and --shots
are refused for them.

A run trained on one instance (`qdt train` without --family) is allowed; the output says so,
since its policy was never trained to generalise. The exact optimum of INSTANCE (`qdt optimum`'s
auto solver, its default time limit) gives the gap.

JSON (--json): assignment (a server index per user), feasible, total_latency_s,
optimum_total_latency_s, gap ((total - optimum) / optimum; null, with gap_note saying why, when
the placement is infeasible or no optimum is proven), decision_ms (the actors' scoring and the
decoding, jobs included, the MILP not), samples, temperature, local_search, seed, trained_on ("instance" or
"family"), instance, backend, violations, per_user_latency_s, circuits, jobs, saved
(RUN/place/<utc>-<stem>-<profile>.json).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "place",
        help="place an instance the trained policy never saw (no training), on any executor",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run", type=Path, required=True, metavar="DIR", help="a run folder of `qdt train`")
    parser.add_argument(
        "instance", type=Path, metavar="INSTANCE", help="instance file of the run's size N x M"
    )
    parser.add_argument(
        "--backend",
        metavar="PROFILE",
        help="backend profile, name or .toml path (default: the executor the run trained on)",
    )
    parser.add_argument(
        "--noise",
        metavar="PROFILE",
        help="noise profile, name or file (default: the run's when --backend is not given, else none)",
    )
    parser.add_argument(
        "--shots",
        type=int,
        help="shots per row (default: the run's when --backend is not given, else the profile's)",
    )
    parser.add_argument(
        "--keep",
        choices=KEEPS,
        default=None,
        help=(
            "which placement of the rollout decides: best, the feasible one of least total latency it "
            "visited, its start included (the default), or last, its final one (qdt infer's); refused for "
            "a run with the construct decoding, which builds one placement"
        ),
    )
    add_sampling_flags(parser, "refused for a run that scores columns of X")
    parser.add_argument(
        "--local-search",
        action="store_true",
        help=(
            "end the decision with a local search: single-user moves and two-user swaps, the best of "
            "them each step, until none lowers the total latency; feasibility kept, an infeasible "
            "placement left as it is; with --samples every construction is searched, then the best is "
            "kept. Part of decision_ms (qdt/problem/local_search.py; about 0.1 ms at 64 x 8)"
        ),
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="S",
        help="seed of the sampled constructions' noise and of a shot-based executor (default: the run's)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.set_defaults(handler=_cmd_place)


def run_place(
    run_dir: Path,
    instance_file: Path,
    *,
    backend: str | None = None,
    noise: str | None = None,
    shots: int | None = None,
    samples: int = 1,
    temperature: float | None = None,
    seed: int | None = None,
    keep: str | None = None,
    local_search: bool = False,
) -> dict[str, Any]:
    """Place ``instance_file`` with the run's actors (module docstring); the report, also saved.
    ``keep`` (default "best" for a rollout) says which placement of the rollout decides;
    ``local_search`` ends the decision with :func:`qdt.problem.local_search.improve_placements`."""
    from qdt.executors import load_backend_profile, validate_shots
    from qdt.problem.model import matrix_to_assignment
    from qdt.problem.solvers import solve
    from qdt.rl.construct import check_sampled_decode
    from qdt.rl.policy import check_instance_size, trained_on
    from qdt.rl.train import load_run_config

    # every input is checked before the checkpoint is read or an executor opened
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise QdtInputError("--run", "a run folder written by `qdt train`", str(run_dir))
    config, own = load_run_config(run_dir)
    sampling = sampling_from_flags(samples, temperature)
    check_sampled_decode(
        sampling, config.decode, f"drop --samples: {run_dir} decodes with {config.decode!r}, not 'construct'"
    )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise QdtInputError("--seed", "an integer >= 0", seed)
    keep = check_keep(keep, config.decode, run_dir)
    kind = trained_on(run_dir)
    instance = load_instance_file(instance_file, "INSTANCE")
    check_instance_size(own, instance, "INSTANCE")
    profile = None
    if config.agent != "quantum":
        flags = (("--backend", backend), ("--noise", noise), ("--shots", shots))
        given = [flag for flag, value in flags if value is not None]
        if given:
            raise QdtInputError(
                given[0],
                "no --backend, --noise or --shots for a run of classical agents (their actors are torch "
                "networks, placed without an executor)",
                f"{given[0]} on the classical run {run_dir}",
                "drop " + ", ".join(given),
            )
    else:
        if shots is not None:
            validate_shots(shots, "--shots")
        if backend is None:  # the executor the run trained on, as it trained
            backend = config.backend
            noise = config.noise if noise is None else noise
            shots = config.shots if shots is None else shots
        with fields_as_flags(backend="--backend"):
            profile = load_backend_profile(backend)
    decision = decide(
        run_dir,
        config,
        profile,
        shots=shots,
        noise=noise,
        instance=instance,
        job_dir=run_dir / PLACE_DIR,
        seed=seed,
        sampling=sampling,
        keep=keep or "last",
        local_search=local_search,
    )
    model = decision.policy.placement_model
    optimum = solve(model, "auto")
    optimum_latency = optimum.total_latency_s if optimum.status == "optimal" else None
    placed = decision_report(model, decision.x_raw, optimum_latency, matrix_to_assignment)
    executor = decision.executor
    device = profile is not None and profile.executor == "ibm"
    report: dict[str, Any] = {
        "run": str(run_dir),
        "trained_on": kind,
        "note": _note(kind, own.name),
        "instance": {
            "file": str(instance_file),
            "name": instance.name,
            "users": instance.n_users,
            "servers": instance.n_servers,
            "seen_in_training": instance.to_dict() == own.to_dict(),
        },
        "agent": config.agent,
        "backend": _backend(decision.profile, executor, noise),
        "strategy": decision.strategy,
        "steps": decision.steps,
        "keep": keep,
        "samples": sampling.samples,
        "temperature": sampling.temperature if sampling.sampled else None,
        "local_search": local_search,
        "seed": decision.seed,
        "assignment": placed["assignment"],
        "feasible": placed["feasible"],
        "violations": placed["violations"],
        "total_latency_s": placed["total_latency_s"],
        "per_user_latency_s": placed["per_user_latency_s"],
        "optimum_status": optimum.status,
        "optimum_assignment": optimum.assignment,
        "optimum_total_latency_s": optimum_latency,
        "gap": placed["gap"],
        "gap_note": _gap_note(placed, optimum),
        "decision_ms": round(1e3 * decision.decision_wall_s, 4),
        "circuits": circuits_report(decision.policy, executor) if executor is not None else [],
        "jobs": [job.to_dict() for job in executor.jobs] if device else [],
    }
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(instance_file).stem)[:60] or "instance"
    where = decision.profile.name if decision.profile is not None else "torch"
    path = run_dir / PLACE_DIR / f"{stamp}-{stem}-{where}.json"
    write_json_atomic(path, report)
    report["saved"] = str(path)
    return report


def check_keep(keep: object, decode: str, run_dir: Path) -> str | None:
    """The rollout's ``keep`` (default "best"), or None for a constructing run (one placement, nothing
    to keep; an explicit ``--keep`` is refused for it)."""
    if decode == "construct":
        if keep is not None:
            raise QdtInputError(
                "--keep",
                "no --keep for a run with the construct decoding (it builds one placement, not a rollout)",
                keep,
                f"drop --keep: {run_dir} constructs its placements (--samples K keeps the best of K)",
            )
        return None
    if keep is None:
        return "best"
    if keep not in KEEPS:
        raise QdtInputError("--keep", f"one of {', '.join(KEEPS)}", keep)
    return str(keep)


def _backend(profile: Any, executor: Any, noise: str | None) -> dict[str, Any]:
    if profile is None:
        return {"profile": None, "executor": "torch", "shots": None, "noise": None}
    data = backend_report(profile, executor)
    data["noise"] = noise if noise is not None else profile.noise
    return data


def _note(kind: str, trained_name: str) -> str | None:
    if kind != "instance":
        return None
    return (
        f"this run was trained on one instance ({trained_name}), not on a family of instances: its policy "
        "was never trained to generalise, so its placements of other instances may be far from their optimum"
    )


def _gap_note(placed: dict[str, Any], optimum: Any) -> str | None:
    """Why ``gap`` is null (None when it is not)."""
    if placed["gap"] is not None:
        return None
    if not placed["feasible"]:
        return "the placement is infeasible (see violations)"
    if optimum.status == "infeasible":
        return "the instance has no feasible placement (proven by the solver)"
    if optimum.status != "optimal":
        why = f": {optimum.reason}" if optimum.reason else ""
        return f"no proven optimum ({optimum.solver} ended {optimum.status}{why})"
    return "the optimum's total latency is 0"


def _cmd_place(args: argparse.Namespace) -> int:
    report = run_place(
        args.run,
        args.instance,
        backend=args.backend,
        noise=args.noise,
        shots=args.shots,
        samples=args.samples,
        temperature=args.temperature,
        seed=args.seed,
        keep=args.keep,
        local_search=args.local_search,
    )
    if args.json:
        json.dump(report, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    print_report(report)
    return 0


def print_report(report: dict[str, Any]) -> None:
    backend = report["backend"]
    where = backend_where(backend, backend["profile"] or "torch (classical actors)")
    shots = backend["shots"] if backend["shots"] is not None else "exact"
    noise = backend["noise"] or "none"
    instance = report["instance"]
    print(
        f"{printable(report['run'])} places {printable(instance['file'])} ({printable(instance['name'])}, "
        f"{instance['users']} users x {instance['servers']} servers) on {printable(where)}: noise "
        f"{printable(str(noise))}, shots {shots}, strategy {report['strategy']}, {report['steps']} steps"
        + KEEP_WORDS.get(report["keep"], "")
        + (
            f", best of {report['samples']} constructions (temperature {report['temperature']:g}, "
            f"seed {report['seed']})"
            if report["samples"] > 1
            else ""
        )
        + (", then a local search (moves and swaps)" if report["local_search"] else "")
    )
    if report["note"]:
        print(f"note: {report['note']}")
    if instance["seen_in_training"]:
        print("note: INSTANCE is the instance this run was trained on")
    gap = "-" if report["gap"] is None else f"{100 * report['gap']:+.2f}%"
    rows = [
        [
            "policy",
            report["assignment"],
            "yes" if report["feasible"] else "NO",
            f"{report['total_latency_s']:.4f}",
            gap,
            " ".join(f"{v:.3f}" for v in report["per_user_latency_s"]),
        ]
    ]
    if report["optimum_total_latency_s"] is not None:
        rows.append(
            [
                "optimum",
                report["optimum_assignment"],
                "yes",
                f"{report['optimum_total_latency_s']:.4f}",
                "0",
                "",
            ]
        )
    print(
        format_table(
            ["decision", "user -> server", "feasible", "latency s", "gap", "per-user latency s"], rows
        )
    )
    if report["gap_note"]:
        print(f"no gap: {report['gap_note']}")
    jobs = report["jobs"]
    print(
        f"decision {report['decision_ms']:.2f} ms (scoring and decoding"
        + (f", {len(jobs)} job(s))" if jobs else ")")
    )
    for job in jobs:
        print(
            f"  job {job['job_id']}: {job['kind']}, {job['pubs']} PUBs, "
            f"{job['rows']} rows x {job['shots']} shots, "
            f"submit {job['submit_s']:.2f} s, wait {job['wait_s']:.2f} s"
        )
    print(f"report: {report['saved']}")
