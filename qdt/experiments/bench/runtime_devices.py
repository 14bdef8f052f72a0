"""Trained policies on IBM Runtime fake devices through the ``ibm`` executor, raw and readout-mitigated.

qiskit-ibm-runtime's local testing mode runs the very executor a real device uses, so these are
the numbers ``qdt infer`` would see on the device's calibration snapshot. One draw is ONE job:
every agent's actor on all 2^N observations it can see (one PUB per agent) and, when the
``circuits`` calibration is scored, M3's two readout-calibration rows (every read-out qubit in
|0>, every one in |1>), as ``qdt infer --mitigate readout`` sends them. The job's counts are then
scored three ways (:data:`SOURCES`):

* ``raw``: the measured probabilities;
* ``circuits``: corrected through mthree, calibrated by the calibration rows of that same job
  (``qdt infer --mitigate readout``'s default; what ``qdt bench noise`` and ``qdt demo`` report
  as "mitigated", :data:`MITIGATED`);
* ``properties``: corrected through mthree, calibrated by the device's reported readout errors
  (no extra rows).

Each is compared with the noiseless policy (the same actors on the exact statevector executor)
by :func:`qdt.rl.evaluation.evaluate_policy`, fed the job's score tables through
:class:`ScoredPolicy` (``rollout="table"``): action agreement per agent, decision agreement over
all joint states, and the placement the policy reaches from the empty one (feasibility, gap to
the optimum). On top, the mean total variation distance (TVD) of the actors' probabilities to
the exact ones, and the job's wall time as the time of a decision (every agent in one job).

A device profile with fractional gates on (``[device] fractional_gates = true``) is also run with
them off (:func:`device_variants`), so that the two ISA circuits of the same device are compared.

Used by ``qdt bench noise`` (its Runtime rows, qdt/experiments/bench/noise.py), ``qdt demo`` (its
device rows, qdt/experiments/report/demo.py) and benchmarks/readout_mitigation.py.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from qdt.errors import QdtInputError
from qdt.executors import BackendProfile, Executor, expval_z, load_backend_profile, open_backend
from qdt.rl.evaluation import evaluate_policy
from qdt.rl.maddpg import all_observations
from qdt.rl.policy import TrainedPolicy, load_policy
from qdt.rl.quantum_layer import QuantumLayer
from qdt.stats import RATE, interval

SOURCES = ("raw", "properties", "circuits")  # how a job's counts are read (see the module docstring)
MITIGATED = "circuits"  # the mitigation the bench and the demo report: M3, calibrated in the same job


# ---- devices -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceVariant:
    """A fake device as a profile opens it, with its fractional gates on or off."""

    label: str  # "fake_torino", "fake_fractional (rx)", "fake_fractional (no rx)"
    profile: BackendProfile
    fractional_gates: bool


def device_variants(names: Sequence[str], field: str = "--runtime-devices") -> list[DeviceVariant]:
    """The profiles ``names`` name (``fake_<device>``, a profile name or a .toml path), each an
    ``ibm`` profile of a fake device in local testing mode; one with fractional gates on comes
    twice, as it is and with ``fractional_gates = false``. Refused, naming ``field``, otherwise."""
    from qdt.executors.ibm.connect import connect_device
    from qdt.executors.ibm.settings import ibm_options

    variants = []
    for name in names:
        try:
            profile = load_backend_profile(name)
            options = ibm_options(profile)
        except QdtInputError as error:
            if error.field != "backend":  # a profile file at fault names its own field
                raise
            raise QdtInputError(
                field, "ibm profiles of fake devices (fake_<device>, e.g. fake_torino)", name, error.fix
            ) from None
        if not options.device.local:
            raise QdtInputError(
                field,
                "fake devices in local testing mode",
                f"{name} (runs on {options.runs_on})",
                "the benchmark never submits to IBM Quantum; use the device's fake_<device> twin",
            )
        if not options.device.fractional_gates:
            variants.append(DeviceVariant(profile.name, profile, False))
            continue
        connect_device(options.device, where=f"{profile.source or name}: ")  # the device has rx, or say so
        off = dataclasses.replace(options, device=dataclasses.replace(options.device, fractional_gates=False))
        variants.append(DeviceVariant(f"{profile.name} (rx)", profile, True))
        variants.append(
            DeviceVariant(f"{profile.name} (no rx)", dataclasses.replace(profile, options=off), False)
        )
    return variants


# ---- one job, scored ---------------------------------------------------------------------------
@dataclass
class DeviceJob:
    """One job's results, read every way the scorer was asked for."""

    job_id: str | None
    seconds: float  # wall time of the job, submission to result
    probs: dict[str, list[np.ndarray]]  # source → per agent [2^N, 2^m] probabilities
    tables: dict[str, np.ndarray]  # source → [M, 2^N, N] actor scores
    tvd: dict[str, float]  # source → mean total variation distance to the exact probabilities
    matrices: dict[str, dict[int, np.ndarray]]  # mitigated source → per qubit A, A[i][j] = P(j | i)


@dataclass
class ScoredPolicy(TrainedPolicy):
    """A trained policy whose actors' scores are read off tables measured beforehand: one
    [M, 2^N, N] table per draw, used in order. :func:`evaluate_policy` asks for each agent's scores
    on all 2^N observations once per draw (``rollout="table"``), which is what it gets; any other
    request (a single state, a draw too many) is refused rather than answered from a wrong table."""

    draws: list[np.ndarray] = field(default_factory=list)
    served: int = 0

    def scores(self, states: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Agent by agent, whatever the sharing: the tables are per agent, served in order."""
        return self.scores_by_agent(self.joint_states(states))

    def actor_scores(self, agent: int, observations: np.ndarray | torch.Tensor) -> torch.Tensor:
        draw, expected = divmod(self.served, self.n_servers)
        everything = all_observations(self.n_users)
        asked = np.asarray(observations, dtype=np.float64)
        if agent != expected or draw >= len(self.draws) or not np.array_equal(asked, everything):
            raise RuntimeError(
                f"scores of agent {agent} asked for draw {draw} of {len(self.draws)} (expected agent "
                f"{expected}, all {len(everything)} observations): only whole tables were measured"
            )
        self.served += 1
        return torch.as_tensor(self.draws[draw][agent])


class DeviceScorer:
    """A trained quantum policy on one device executor, prepared once; :meth:`run` is one job.

    ``sources`` (a subset of :data:`SOURCES`, ``raw`` always included) says how the counts are
    read; with ``circuits`` the two calibration rows go into every job. The calibrated qubits
    cover every actor's layout by construction (the union of their read-out qubits).
    """

    def __init__(self, run_dir: Path, executor: Executor, sources: Sequence[str] = SOURCES) -> None:
        from qdt.executors.ibm.executor import IBMRuntimeExecutor
        from qdt.executors.ibm.mitigation import readout_assignment_matrices

        unknown = [s for s in sources if s not in SOURCES]
        if unknown or "raw" not in sources:
            raise QdtInputError("sources", f"'raw' and any of {', '.join(SOURCES[1:])}", list(sources))
        if not isinstance(executor, IBMRuntimeExecutor):
            raise QdtInputError(
                "backend",
                "an ibm executor (fake_<device> or ibm_<device>)",
                getattr(executor, "name", executor),
            )
        self.sources = tuple(s for s in SOURCES if s in sources)
        self.executor = executor
        self.policy = load_policy(run_dir, executor=executor)
        self.reference = load_policy(run_dir, executor=open_backend("statevector"))
        fronts = [actor.front for actor in self.policy.actors]
        twins = [actor.front for actor in self.reference.actors]
        if not all(isinstance(front, QuantumLayer) for front in fronts + twins):
            raise QdtInputError("run", "a quantum policy (actors with a circuit)", str(run_dir))
        self.fronts = cast(list[QuantumLayer], fronts)
        self.shots = executor.shots
        observations = torch.as_tensor(all_observations(self.policy.n_users), dtype=torch.float64)
        self.items: list[tuple[Any, torch.Tensor, torch.Tensor]] = []
        self.exact: list[np.ndarray] = []
        with torch.no_grad():
            for j, (actor, front, twin) in enumerate(zip(self.policy.actors, self.fronts, twins)):
                assert isinstance(twin, QuantumLayer)
                angles = front.angles(actor.front_inputs(observations, j))
                self.items.append((front.prepared, angles, front.weight.detach()))
                exact = twin.executor.run(twin.prepared, angles, twin.weight, readout="probs")
                self.exact.append(exact.numpy())
        self.isa = [executor.isa_report(front.prepared) for front in self.fronts]
        self.physical = [[int(q) for q in isa["physical_readout"]] for isa in self.isa]
        self.qubits = sorted({q for agent in self.physical for q in agent})
        self.calibration: list[Any] = []
        if "circuits" in self.sources:
            self.calibration = executor.prepare_readout_calibration(self.qubits)
        self.reported: dict[int, np.ndarray] = {}
        if "properties" in self.sources:
            backend = executor.device.backend
            self.reported = dict(zip(self.qubits, readout_assignment_matrices(backend, self.qubits)))

    def run(self) -> DeviceJob:
        """One job: every actor on all observations, plus the calibration rows; scored every way."""
        from qdt.executors.ibm.mitigation import m3_mitigate, m3_mitigator, matrices_from_calibration

        empty = (torch.zeros(1, 0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64))
        start = time.perf_counter()
        with torch.no_grad():
            results = self.executor.run_many(self.items + [(c, *empty) for c in self.calibration])
        seconds = time.perf_counter() - start
        arrays = [r.numpy() for r in results]
        raw, rows = arrays[: len(self.items)], arrays[len(self.items) :]
        matrices: dict[str, dict[int, np.ndarray]] = {}
        if "properties" in self.sources:
            matrices["properties"] = self.reported
        if "circuits" in self.sources:
            measured = matrices_from_calibration(rows[0], rows[1], self.qubits)
            matrices["circuits"] = dict(zip(self.qubits, measured))
        probs = {"raw": raw}
        for source in self.sources[1:]:
            known = matrices[source]
            probs[source] = [
                m3_mitigate(p, self.shots, q, m3_mitigator(q, [known[i] for i in q]))
                for p, q in zip(raw, self.physical)
            ]
        return DeviceJob(
            job_id=self.executor.jobs[-1].job_id,
            seconds=seconds,
            probs=probs,
            tables={s: self._scores(per_agent) for s, per_agent in probs.items()},
            tvd={s: self._tvd(per_agent) for s, per_agent in probs.items()},
            matrices=matrices,
        )

    def _scores(self, probs: list[np.ndarray]) -> np.ndarray:
        """Each actor's scores [M, 2^N, N] from its circuit's probabilities (what its FC body reads)."""
        tables = []
        with torch.no_grad():
            for actor, front, p in zip(self.policy.actors, self.fronts, probs):
                features = torch.as_tensor(p)
                if front.readout != "probs":
                    features = expval_z(features)
                tables.append(torch.sigmoid(actor.logits_from(features, 1 << self.policy.n_users)).numpy())
        return np.stack(tables)

    def _tvd(self, probs: list[np.ndarray]) -> float:
        """Mean over agents and observations of the total variation distance to the exact probabilities."""
        return float(np.mean([0.5 * np.abs(p - e).sum(axis=1).mean() for p, e in zip(probs, self.exact)]))

    def evaluate(self, jobs: Sequence[DeviceJob], seed: int = 0) -> dict[str, dict[str, Any]]:
        """Per source, :func:`evaluate_policy`'s result over ``jobs`` (one draw each), with the
        job's wall time as the time per decision and ``readout``, ``tvd``, ``jobs``, ``isa`` and
        (mitigated) ``calibration`` added."""
        if not jobs:
            raise QdtInputError("jobs", "at least one job", 0)
        fields = {f.name: getattr(self.policy, f.name) for f in dataclasses.fields(TrainedPolicy)}
        seconds = [job.seconds for job in jobs]
        results = {}
        for source in self.sources:
            target = ScoredPolicy(**fields, draws=[job.tables[source] for job in jobs])
            result = evaluate_policy(self.reference, target, repeats=len(jobs), seed=seed, rollout="table")
            result["decision_latency"] = {
                "per_decision_s": float(np.median(seconds)),
                "per_decision_calls": 1,  # one job carries every agent's actor
                "per_batch_s": float(np.median(seconds)),
                "batch_size": 2**self.policy.n_users,
            }
            result["readout"] = source
            result["tvd"] = interval([job.tvd[source] for job in jobs], RATE)
            result["jobs"] = [job.job_id for job in jobs]
            result["isa"] = [
                {k: isa[k] for k in ("layout", "physical_readout", "depth", "two_qubit_gates")}
                for isa in self.isa
            ]
            if source != "raw":
                result["calibration"] = {
                    "method": "mthree",
                    "source": source,
                    "matrices": [
                        {str(q): m.tolist() for q, m in sorted(job.matrices[source].items())} for job in jobs
                    ],
                }
            results[source] = result
        return results


def score_on_device(
    run_dir: Path,
    device: str | BackendProfile,
    *,
    jobs: int = 1,
    sources: Sequence[str] = ("raw", MITIGATED),
    seed: Any = None,
    shots: int | None = None,
    job_dir: Path | None = None,
) -> tuple[dict[str, dict[str, Any]], DeviceScorer]:
    """Open ``device``, run ``jobs`` jobs of the policy in ``run_dir`` and score them (see
    :meth:`DeviceScorer.evaluate`); also returns the scorer (its ``isa`` reports)."""
    if jobs < 1:
        raise QdtInputError("jobs", "an integer >= 1", jobs)
    executor = open_backend(device, shots=shots, seed=seed, job_dir=job_dir)
    try:
        scorer = DeviceScorer(run_dir, executor, sources)
        return scorer.evaluate([scorer.run() for _ in range(jobs)]), scorer
    finally:
        executor.close()
