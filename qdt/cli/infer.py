"""``qdt infer``: a trained run's actors decide a placement on a backend (a fake or real IBM device).

The decision is the greedy rollout the run was trained and scored with: N_t steps from the run's
start placement (empty, or greedy-with-repair's for a run trained with ``start = greedy``, the
family default), each step every agent's actor reading its column of X, scores decoded as in
training; with exact scores (no shots) the rollout ends at its first fixed point
(``qdt/rl/rollout.py``).
How the actors are evaluated (``--strategy``):
  table  one job: every agent's actor on all 2^N observations (one PUB per agent, 2^N rows each);
         the N_t steps are then look-ups. Fewest jobs (one queue wait on a real device); each
         observation is sampled once. Default while 2^N <= 1024.
  steps  one job per step, carrying every agent's PUB for the current state (N_t jobs, each
         waiting for the previous one's decision); a state seen twice is sampled twice.
``--mitigate readout`` corrects every PUB's counts through mthree (M3), calibrated on the device's
own readout data for the physical qubits the actors' layouts read out: two calibration circuits in
the first job (default), or the device's reported calibration (``--readout-calibration
properties``); see :mod:`qdt.executors.ibm.mitigation`. The calibrated qubits are checked before
any job. It reports the raw and mitigated decisions side by side (the same jobs; with ``steps``
the rows both rollouts need share each step's job).
The rollout (:func:`decide`) is shared with ``qdt place`` (:mod:`qdt.cli.place`), which runs it
on an instance the run never saw.

JSON contract (``--json``, also saved as RUN/inference/<utc>-<profile>.json): run, backend
{profile, executor, device, local, shots, fractional_gates, ...}, strategy, circuits [per agent:
layout, depth, two_qubit_gates, fractional_gates, and with fractional gates on
without_fractional_gates {depth, two_qubit_gates, operations}: the same circuit transpiled for the
device without rx/rzz, for comparison only, ...], mitigation? {method "mthree", mthree_version,
calibration "circuits" | "properties", calibration_job_id, physical_qubits [per agent], matrices
{qubit: A, A[i][j] = P(record j | state i)}}, decisions {raw, mitigated?: {assignment,
feasible, violations, total_latency_s, per_user_latency_s, gap}}, optimum {status, assignment,
total_latency_s}, noiseless {assignment, feasible, total_latency_s, agrees_with_raw} (the same
actors on the exact statevector executor), timing {decision_wall_s, prepare_s, queue_s,
execution_s, quantum_seconds}, jobs [job_id, status, ...].
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from qdt.cli.failures import fields_as_flags, printable
from qdt.errors import QdtInputError
from qdt.executors.ibm.mitigation import CALIBRATIONS, ReadoutMitigation
from qdt.experiments.tables import format_table
from qdt.files import write_json_atomic

if TYPE_CHECKING:
    from qdt.executors import Executor

STRATEGIES = ("auto", "table", "steps")
MAX_TABLE_ROWS = 1024
SAMPLING_CHILD = 2
"""The child of the run's seed sequence that draws sampled constructions' noise (children 0 and 1:
training's executor and inference's)."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "infer",
        help="run a trained policy's actors on a backend (fake or real IBM device) and report the decision",
        description=(
            "Load the trained actors of --run and run them on --backend (a profile: fake_torino, "
            "ibm_torino, aer, ... see `qdt backends list`) for the greedy rollout from the run's "
            "start placement (empty, or greedy's for a run trained with --start greedy). Reports the "
            "placement, per-user latency, feasibility, the gap to the exact "
            "optimum, the decision's wall time (queue and execution apart when the service reports "
            "them), usage and the job ids. Every job id is written to RUN/jobs.jsonl before qdt waits "
            "for it; after a crash, `qdt jobs fetch --run RUN` retrieves results and `qdt infer "
            "--resume` reuses them instead of submitting again. The IBM token comes only from "
            "QISKIT_IBM_TOKEN or a saved Qiskit account."
        ),
    )
    parser.add_argument("--run", type=Path, required=True, metavar="DIR", help="a run folder of `qdt train`")
    parser.add_argument(
        "--backend", required=True, metavar="PROFILE", help="backend profile, name or .toml path"
    )
    parser.add_argument("--shots", type=int, help="shots per row (default: the profile's)")
    parser.add_argument("--seed", type=int, help="seed of the simulator draws (default: the run's seed)")
    parser.add_argument(
        "--mitigate",
        choices=("readout",),
        help="also apply readout-error mitigation; raw and mitigated side by side",
    )
    parser.add_argument(
        "--readout-calibration",
        choices=CALIBRATIONS,
        default="circuits",
        help=(
            "where --mitigate readout takes each qubit's readout errors from: two calibration circuits "
            "in the same job (default), or the device's reported calibration (properties)"
        ),
    )
    parser.add_argument(
        "--strategy", choices=STRATEGIES, default="auto", help="table (one job) or steps (default auto)"
    )
    parser.add_argument(
        "--timeout", type=float, metavar="S", help="qdt's wall-clock limit per job (default: profile)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="reuse finished or still-running jobs of an interrupted infer"
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.set_defaults(handler=_cmd_infer)


# ---- evaluation of the actors -------------------------------------------------------------------
Scorer = Callable[[Sequence[np.ndarray]], tuple[list[np.ndarray], list[np.ndarray] | None]]


def make_scorer(policy: Any, executor: Executor, mitigation: ReadoutMitigation | None) -> Scorer:
    """rows per agent [B_j, N] → (raw scores per agent [B_j, N], mitigated or None), in one job
    (with ``mitigation``'s calibration PUBs in the first one when it calibrates from circuits)."""

    def score(observations: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        items = []
        for j, (actor, obs) in enumerate(zip(policy.actors, observations)):
            front = actor.front
            x = actor.front_inputs(torch.as_tensor(obs, dtype=torch.float64), j)  # the observation features
            items.append((front.prepared, front.angles(x), front.weight.detach()))
        calibration = mitigation.pending() if mitigation is not None else []
        with torch.no_grad():
            results = run_pubs(executor, items + calibration)
            probs = results[: len(items)]
            rows = [len(obs) for obs in observations]
            raw = [
                torch.sigmoid(actor.logits_from(p, b)).numpy()
                for actor, p, b in zip(policy.actors, probs, rows)
            ]
            if mitigation is None:
                return raw, None
            if calibration:
                jobs = getattr(executor, "jobs", [])
                mitigation.calibrate(results[len(items) :], jobs[-1].job_id if jobs else None)
            mitigated = [
                torch.sigmoid(actor.logits_from(torch.as_tensor(mitigate(p.numpy())), b)).numpy()
                for actor, p, b, mitigate in zip(policy.actors, probs, rows, mitigation.corrections())
            ]
        return raw, mitigated

    return score


def run_pubs(executor: Executor, items: list[tuple[Any, torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """All agents' batches in one call: ONE job on a device (``Executor.run_many``)."""
    return executor.run_many(items)


def decode(policy: Any, scores: np.ndarray) -> np.ndarray:
    return policy.decode(scores)  # the run's decoding (qdt/problem/decoding.py)


def rollout_table(
    policy: Any, score: Scorer, steps: int, keep: str = "last"
) -> tuple[np.ndarray, np.ndarray | None, int]:
    from qdt.rl.maddpg import scores_from_table
    from qdt.rl.policy import all_observations

    obs = all_observations(policy.n_users)
    raw, mitigated = score([obs] * policy.n_servers)
    tables = [np.stack(raw)] + ([np.stack(mitigated)] if mitigated is not None else [])
    finals = []
    for table in tables:
        visited = [policy.start_placement()]
        for _ in range(steps):
            visited.append(decode(policy, scores_from_table(table, visited[-1])))
        finals.append(kept(policy, visited, keep))
    return finals[0], (finals[1] if len(finals) > 1 else None), 1


def rollout_steps(
    policy: Any, score: Scorer, steps: int, mitigate: bool, keep: str = "last"
) -> tuple[np.ndarray, np.ndarray | None, int]:
    m = policy.n_servers
    x_raw = policy.start_placement()
    x_mit = x_raw.copy() if mitigate else None
    raw_visited, mit_visited = [x_raw], [x_raw]
    made = 0
    while made < steps:
        made += 1
        rows = []
        for j in range(m):
            columns = [x_raw[:, j]] + ([x_mit[:, j]] if x_mit is not None else [])
            rows.append(np.unique(np.stack(columns).astype(np.float64), axis=0))
        raw, mitigated = score(rows)
        following = decode(policy, _pick(rows, raw, x_raw))
        if x_mit is None and policy.deterministic and np.array_equal(following, x_raw):
            break  # a fixed point: every later decision would repeat it (qdt/rl/rollout.py)
        x_raw = following
        raw_visited.append(x_raw)
        if x_mit is not None and mitigated is not None:
            x_mit = decode(policy, _pick(rows, mitigated, x_mit))
            mit_visited.append(x_mit)
    return kept(policy, raw_visited, keep), (kept(policy, mit_visited, keep) if mitigate else None), made


def kept(policy: Any, visited: list[np.ndarray], keep: str) -> np.ndarray:
    """The placement a rollout that ``visited`` these (start first) decides, as ``keep`` says
    (:func:`qdt.rl.rollout.kept_placement`)."""
    from qdt.rl.rollout import kept_placement

    return kept_placement(visited, policy.placement_model if keep == "best" else None)


def _pick(rows: list[np.ndarray], scores: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """Scores [N, M] for state x from each agent's scored rows."""
    picked = []
    for j, (obs, s) in enumerate(zip(rows, scores)):
        match = np.flatnonzero((obs == x[:, j].astype(np.float64)).all(axis=1))[0]
        picked.append(s[match])
    return np.stack(picked, axis=1)


# ---- the command ----------------------------------------------------------------------------------
@dataclass
class Decision:
    """The greedy rollout of a run's actors on one executor (:func:`decide`), before any report."""

    policy: Any  # the TrainedPolicy that decided (its instance: the run's own or the one given)
    profile: Any  # the backend profile as run (shots overridden), None for classical actors
    executor: Any  # closed by now; its jobs and ISA reports stay readable; None for classical actors
    mitigation: ReadoutMitigation | None
    strategy: str  # table or steps, or construct (qdt/rl/construct.py)
    steps: int  # decisions made: N_t, fewer when an exact rollout reached a fixed point (rollout.py);
    # construct: N (one executor call per user placed)
    seed: int
    x_raw: np.ndarray
    x_mit: np.ndarray | None
    decision_wall_s: float  # scoring (every job included) and decoding
    prepare_s: float  # loading the actors and preparing their circuits


def decide(
    run_dir: Path,
    config: Any,
    profile: Any,
    *,
    shots: int | None = None,
    noise: str | None = None,
    seed: int | None = None,
    mitigate: str | None = None,
    calibration: str = "circuits",
    strategy: str = "auto",
    timeout_s: float | None = None,
    resume: bool = False,
    instance: Any = None,
    job_dir: Path | None = None,
    sampling: Any = None,
    keep: str = "last",
    local_search: bool = False,
) -> Decision:
    """The run's actors decide a placement: N_t steps of the greedy rollout from the run's start one.

    ``profile`` (a loaded backend profile) runs quantum actors through ``make_scorer`` (one job per
    call on a device, jobs recorded in ``job_dir``, default the run folder); ``profile=None`` runs
    the actors as torch networks (classical agents). ``instance`` (default: the run's own) is the
    instance they act on (:func:`qdt.rl.policy.load_policy`). ``config`` is the run's TrainConfig.
    ``sampling`` (a :class:`qdt.rl.construct.Sampling`, default the plain construction) decides a
    constructing run by the best of several constructions, their noise seeded from the run's seed
    (or ``seed``). ``keep`` says which placement of a rollout decides: its last, or "best", the best
    it visited (qdt/rl/rollout.py); a construction ignores it. ``local_search``: the decision (each
    sampled construction) is then improved by :func:`qdt.problem.local_search.improve_placements`,
    inside the timed decision.
    """
    from qdt.executors import open_backend
    from qdt.problem.local_search import improve_placements
    from qdt.rl.policy import load_policy

    run_seed = config.seed if seed is None else seed
    executor = None
    if profile is not None:
        device = profile.executor == "ibm"  # jobs, timeouts and readout calibration: IBM devices only
        executor_seed = np.random.SeedSequence(run_seed).spawn(2)[1]  # [0] is training's executor
        job_options = {"reuse_jobs": resume, "timeout_s": timeout_s} if device else {}
        where = run_dir if job_dir is None else job_dir
        with fields_as_flags(backend="--backend", shots="--shots", noise="--noise"):
            executor = open_backend(
                profile, shots=shots, noise=noise, seed=executor_seed, job_dir=where, **job_options
            )
        if shots is not None:
            profile = dataclasses.replace(profile, shots=shots)  # as the executor runs it, for the report
    try:
        started = time.perf_counter()
        policy = load_policy(run_dir, executor=executor, instance=instance)
        prepare_s = time.perf_counter() - started
        mitigation = None
        if sampling is not None:
            policy.sample(sampling, np.random.SeedSequence(run_seed, spawn_key=(SAMPLING_CHILD,)))
        if policy.constructs:  # user by user: N executor calls, each on the whole partial placement
            if mitigate:
                raise QdtInputError(
                    "--mitigate",
                    "no readout mitigation for a run with the construct decoding",
                    mitigate,
                    "drop --mitigate (it corrects score tables, which a constructing run does not read)",
                )
            policy.local_search = local_search
            policy.warm_up()  # the construction's compiled loops load outside decision_ms
            decided = time.perf_counter()
            x_raw = policy.placement()
            return Decision(
                policy=policy,
                profile=profile,
                executor=executor,
                mitigation=None,
                strategy="construct",
                steps=policy.n_users,
                seed=run_seed,
                x_raw=x_raw,
                x_mit=None,
                decision_wall_s=time.perf_counter() - decided,
                prepare_s=prepare_s,
            )
        if mitigate:
            prepared = [actor.front.prepared for actor in policy.actors]
            mitigation = ReadoutMitigation.for_circuits(executor, prepared, calibration)
        if strategy == "auto":
            strategy = "table" if 2**policy.n_users <= MAX_TABLE_ROWS else "steps"
        if strategy == "table" and 2**policy.n_users > MAX_TABLE_ROWS:
            raise QdtInputError(
                "--strategy", f"steps for N > {int(math.log2(MAX_TABLE_ROWS))} users", "table"
            )
        score = make_scorer(policy, executor, mitigation) if executor is not None else torch_scorer(policy)
        decided = time.perf_counter()
        if strategy == "table":
            x_raw, x_mit, _ = rollout_table(policy, score, config.steps_per_episode, keep)
            steps = config.steps_per_episode
        else:
            x_raw, x_mit, steps = rollout_steps(
                policy, score, config.steps_per_episode, mitigation is not None, keep
            )
        if local_search:
            model = policy.placement_model
            x_raw = improve_placements(model, x_raw)
            x_mit = None if x_mit is None else improve_placements(model, x_mit)
        decision_wall_s = time.perf_counter() - decided
    finally:
        if executor is not None:
            executor.close()
    return Decision(
        policy=policy,
        profile=profile,
        executor=executor,
        mitigation=mitigation,
        strategy=strategy,
        steps=steps,
        seed=run_seed,
        x_raw=x_raw,
        x_mit=x_mit,
        decision_wall_s=decision_wall_s,
        prepare_s=prepare_s,
    )


def torch_scorer(policy: Any) -> Scorer:
    """rows per agent [B_j, N] → (scores per agent [B_j, N], None): the actors as torch networks
    (classical agents; :meth:`qdt.rl.policy.TrainedPolicy.actor_scores`)."""

    def score(observations: Sequence[np.ndarray]) -> tuple[list[np.ndarray], None]:
        return [policy.actor_scores(j, obs).numpy() for j, obs in enumerate(observations)], None

    return score


def run_inference(
    run_dir: Path,
    backend: str,
    *,
    shots: int | None = None,
    seed: int | None = None,
    mitigate: str | None = None,
    calibration: str = "circuits",
    strategy: str = "auto",
    timeout_s: float | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    from qdt.executors import load_backend_profile, open_backend
    from qdt.problem.model import PlacementModel, matrix_to_assignment
    from qdt.problem.solvers import solve
    from qdt.rl.policy import load_policy
    from qdt.rl.train import load_run_config

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise QdtInputError("--run", "a run folder written by `qdt train`", str(run_dir))
    config, instance = load_run_config(run_dir)
    if config.agent != "quantum":
        raise QdtInputError(
            "--run", "a run with quantum agents (they are what runs on a backend)", config.agent
        )
    if strategy not in STRATEGIES:
        raise QdtInputError("--strategy", "one of " + ", ".join(STRATEGIES), strategy)
    if seed is not None and seed < 0:
        raise QdtInputError("--seed", "a non-negative integer", seed)
    if timeout_s is not None and (not math.isfinite(timeout_s) or timeout_s <= 0):
        raise QdtInputError("--timeout", "a positive number of seconds", timeout_s)
    with fields_as_flags(backend="--backend"):
        profile = load_backend_profile(backend)
    device = profile.executor == "ibm"  # jobs, timeouts and readout calibration: IBM devices only
    if mitigate is not None and not device:
        raise QdtInputError("--mitigate", "an ibm profile (fake_<device> or ibm_<device>)", profile.name)
    if calibration not in CALIBRATIONS:
        raise QdtInputError("--readout-calibration", "one of " + ", ".join(CALIBRATIONS), calibration)
    decision = decide(
        run_dir,
        config,
        profile,
        shots=shots,
        seed=seed,
        mitigate=mitigate,
        calibration=calibration,
        strategy=strategy,
        timeout_s=timeout_s,
        resume=resume,
    )
    profile, executor, mitigation = decision.profile, decision.executor, decision.mitigation
    x_raw, x_mit = decision.x_raw, decision.x_mit
    model = PlacementModel(instance)
    optimum = solve(model, "auto")
    optimum_latency = optimum.total_latency_s if optimum.status == "optimal" else None
    noiseless = load_policy(run_dir, executor=open_backend("statevector")).placement()
    noiseless_eval = model.evaluate(noiseless)
    decisions = {"raw": decision_report(model, x_raw, optimum_latency, matrix_to_assignment)}
    if x_mit is not None:
        decisions["mitigated"] = decision_report(model, x_mit, optimum_latency, matrix_to_assignment)
    jobs = [job.to_dict() for job in executor.jobs] if device else []
    report = {
        "run": str(run_dir),
        "backend": backend_report(profile, executor),
        "strategy": decision.strategy,
        "steps": decision.steps,
        "seed": decision.seed,
        "mitigation": mitigation.report() if mitigation is not None else None,
        "circuits": circuits_report(decision.policy, executor),
        "decisions": decisions,
        "optimum": {
            "status": optimum.status,
            "assignment": optimum.assignment,
            "total_latency_s": optimum_latency,
        },
        "noiseless": {
            "assignment": matrix_to_assignment(noiseless),
            "feasible": noiseless_eval.feasible,
            "total_latency_s": noiseless_eval.total_latency_s,
            "agrees_with_raw": bool(np.array_equal(noiseless, x_raw)),
        },
        "timing": _timing(decision.decision_wall_s, decision.prepare_s, jobs),
        "jobs": jobs,
    }
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = run_dir / "inference" / f"{stamp}-{profile.name}.json"
    write_json_atomic(path, report)
    report["saved"] = str(path)
    return report


def decision_report(
    model: Any, x: np.ndarray, optimum: float | None, to_assignment: Callable[..., Any]
) -> dict[str, Any]:
    evaluation = model.evaluate(x)
    gap = None
    if evaluation.feasible and optimum:
        gap = (evaluation.total_latency_s - optimum) / optimum
    return {
        "assignment": to_assignment(x),
        "matrix": x.astype(int).tolist(),
        "feasible": evaluation.feasible,
        "violations": evaluation.violations,
        "total_latency_s": evaluation.total_latency_s,
        "per_user_latency_s": evaluation.per_user_latency_s,
        "reward": evaluation.reward,
        "gap": gap,
    }


def backend_report(profile: Any, executor: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "profile": profile.name,
        "source": profile.source,
        "executor": profile.executor,
        "shots": profile.shots,
        "capabilities": dataclasses.asdict(executor.capabilities),
    }
    if profile.executor == "ibm":
        device = executor.device
        settings = executor.settings
        data.update(
            device=device.name,
            num_qubits=device.num_qubits,
            local=device.local,
            mode=settings.runtime.mode,
            optimization_level=settings.optimization_level,
            fractional_gates=settings.device.fractional_gates,
            error_suppression=dataclasses.asdict(settings.suppression),
        )
    return data


def circuits_report(policy: Any, executor: Any) -> list[dict[str, Any]]:
    out = []
    for j, actor in enumerate(policy.actors):
        vqc = actor.front.vqc
        entry: dict[str, Any] = {"agent": j, "qubits": vqc.n_qubits, "layers": vqc.n_layers}
        entry.update(executor.isa_report(actor.front.prepared) or {})
        out.append(entry)
    return out


def _timing(decision_wall_s: float, prepare_s: float, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    def total(key: str) -> float | None:
        values = [j["service_timing"].get(key) for j in jobs]
        return None if not values or any(v is None for v in values) else float(sum(values))

    return {
        "decision_wall_s": round(decision_wall_s, 4),
        "prepare_s": round(prepare_s, 4),
        "jobs": len(jobs),
        "queue_s": total("queue_s"),
        "execution_s": total("execution_s"),
        "quantum_seconds": total("quantum_seconds"),
        "note": (
            None
            if not jobs or total("queue_s") is not None
            else "queue and execution times not reported: local testing mode has no queue"
        ),
    }


def _cmd_infer(args: argparse.Namespace) -> int:
    report = run_inference(
        args.run,
        args.backend,
        shots=args.shots,
        seed=args.seed,
        mitigate=args.mitigate,
        calibration=args.readout_calibration,
        strategy=args.strategy,
        timeout_s=args.timeout,
        resume=args.resume,
    )
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print_report(report)
    return 0


def backend_where(backend: dict[str, Any], name: str) -> str:
    """``name`` (the profile), and for a device which one and how it is reached, for a report's head line."""
    if "device" not in backend:
        return name
    mode = "local testing mode" if backend["local"] else f"IBM Quantum, {backend['mode']} mode"
    return f"{name} ({backend['device']}, {backend['num_qubits']} qubits, {mode})"


def print_report(report: dict[str, Any]) -> None:
    backend = report["backend"]
    where = backend_where(backend, backend["profile"])
    shots = backend["shots"] if backend["shots"] is not None else "exact"
    print(
        f"{printable(report['run'])} on {printable(where)}: shots {shots}, strategy {report['strategy']}, "
        f"{report['steps']} steps"
    )
    compare = any("without_fractional_gates" in c for c in report["circuits"])
    rows = []
    for c in report["circuits"]:
        row = [
            c["agent"],
            c["qubits"],
            c["layers"],
            c.get("layout", "-"),
            c.get("depth", "-"),
            c.get("two_qubit_gates", "-"),
        ]
        if compare:
            without = c.get("without_fractional_gates") or {}
            row += [without.get("depth", "-"), without.get("two_qubit_gates", "-")]
        rows.append(row)
    headers = ["agent", "qubits", "layers", "layout", "ISA depth", "2q gates"]
    if compare:  # submitted with native rx; the columns after are the same circuit without rx/rzz
        headers = headers[:4] + ["ISA depth (rx)", "2q gates (rx)", "depth without rx", "2q without rx"]
    print(format_table(headers, rows))
    print()
    decision_rows = []
    for name, d in report["decisions"].items():
        gap = "-" if d["gap"] is None else f"{100 * d['gap']:+.2f}%"
        latencies = " ".join(f"{v:.3f}" for v in d["per_user_latency_s"])
        decision_rows.append(
            [
                name,
                d["assignment"],
                "yes" if d["feasible"] else "NO",
                f"{d['total_latency_s']:.4f}",
                gap,
                latencies,
            ]
        )
    optimum = report["optimum"]
    if optimum["total_latency_s"] is not None:
        decision_rows.append(
            ["optimum", optimum["assignment"], "yes", f"{optimum['total_latency_s']:.4f}", "0", ""]
        )
    noiseless = report["noiseless"]
    decision_rows.append(
        [
            "noiseless policy",
            noiseless["assignment"],
            "yes" if noiseless["feasible"] else "NO",
            f"{noiseless['total_latency_s']:.4f}",
            "",
            "",
        ]
    )
    print(
        format_table(
            ["decision", "user -> server", "feasible", "latency s", "gap", "per-user latency s"],
            decision_rows,
        )
    )
    timing = report["timing"]
    print()
    line = f"decision wall time {timing['decision_wall_s']:.2f} s in {timing['jobs']} job(s)"
    if timing["queue_s"] is not None:
        line += f"; queue {timing['queue_s']:.1f} s, execution {timing['execution_s']:.1f} s"
    if timing["quantum_seconds"] is not None:
        line += f", usage {timing['quantum_seconds']:.1f} quantum s"
    print(line + (f" ({timing['note']})" if timing["note"] else ""))
    for job in report["jobs"]:
        reused = " (reused)" if job["reused"] else ""
        print(
            f"  job {job['job_id']}{reused}: {job['kind']}, {job['pubs']} PUBs, "
            f"{job['rows']} rows x {job['shots']} shots, "
            f"submit {job['submit_s']:.2f} s, wait {job['wait_s']:.2f} s"
        )
    print(f"report: {report['saved']}")
