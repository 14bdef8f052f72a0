"""Trained policies on Runtime fake devices, raw and mthree-mitigated from ONE job's counts.

:mod:`qdt.experiments.bench.runtime_devices` is what ``qdt bench noise``, ``qdt demo`` and
benchmarks/readout_mitigation.py run; these tests use the 5-qubit fake devices (about 0.05 s a
row), so each job costs a second or two.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_ibm_scripted_service import tiny_run

from qdt.errors import QdtInputError
from qdt.executors import open_backend
from qdt.executors.ibm.jobs import JobStore
from qdt.executors.ibm.mitigation import m3_mitigate, m3_mitigator, matrices_from_calibration
from qdt.experiments.bench.runtime_devices import (
    MITIGATED,
    SOURCES,
    DeviceScorer,
    ScoredPolicy,
    device_variants,
    score_on_device,
)
from qdt.rl.maddpg import all_observations

SHOTS = 4096


def shot_noise_bound(outcomes: int, shots: int) -> float:
    """An upper bound on the mean total variation distance that sampling alone puts between
    measured and true probabilities: E[0.5 Σ_k |p̂_k - p_k|] ≤ 0.5 Σ_k sqrt(p_k(1-p_k)/S)
    ≤ 0.5 sqrt(K/S) (Jensen, then Cauchy-Schwarz over the K outcomes). Mitigation that worsens the
    TVD by more than this on average is not shot noise amplified: it read the wrong counts."""
    return 0.5 * math.sqrt(outcomes / shots)


def test_one_job_carries_every_actor_and_the_calibration_and_is_scored_from_its_own_counts(tmp_path):
    run = tiny_run(tmp_path)
    executor = open_backend("fake_manila", shots=SHOTS, seed=3, job_dir=tmp_path / "jobs")
    scorer = DeviceScorer(run, executor, SOURCES)
    job = scorer.run()
    m, n = scorer.policy.n_servers, scorer.policy.n_users
    (ran,) = executor.jobs  # ONE job: every agent's PUB and the two calibration rows
    assert ran.pubs == m + 2 and ran.rows == m * 2**n + 2 and ran.job_id == job.job_id

    # The raw probabilities are the saved counts of that job, agent by agent.
    saved = JobStore(tmp_path / "jobs").load_result(job.job_id)
    counts = [np.asarray(pub["counts"], dtype=np.float64) for pub in saved["pubs"]]
    for j in range(m):
        assert np.allclose(job.probs["raw"][j], counts[j] / SHOTS)
    # The "circuits" calibration is that job's last two PUBs (all |0>, all |1>) ...
    zeros, ones = counts[m] / SHOTS, counts[m + 1] / SHOTS
    measured = dict(zip(scorer.qubits, matrices_from_calibration(zeros, ones, scorer.qubits)))
    assert set(job.matrices["circuits"]) == set(scorer.qubits) == {q for p in scorer.physical for q in p}
    for qubit, matrix in measured.items():
        assert np.allclose(job.matrices["circuits"][qubit], matrix)
        assert 0 < matrix[0, 1] < 0.2 and 0 < matrix[1, 0] < 0.2  # fake_manila has readout error
    # ... and each agent's mitigated rows are M3 applied to its own raw rows.
    for j, qubits in enumerate(scorer.physical):
        mitigator = m3_mitigator(qubits, [measured[q] for q in qubits])
        expected = m3_mitigate(job.probs["raw"][j], SHOTS, qubits, mitigator)
        assert np.allclose(job.probs["circuits"][j], expected, atol=1e-6)
        moved = 0.5 * np.abs(job.probs["circuits"][j] - job.probs["raw"][j]).sum(axis=1)
        assert moved.mean() > 1e-3 and moved.max() < 0.25  # corrected, but from the same rows

    # Mitigated TVD to the exact probabilities, averaged over all rows, within shot noise of raw.
    outcomes = job.probs["raw"][0].shape[1]
    for source in ("properties", "circuits"):
        assert job.tvd[source] <= job.tvd["raw"] + shot_noise_bound(outcomes, SHOTS), (source, job.tvd)
    # The scores the tables hold are the actors' FC bodies on those probabilities.
    assert job.tables["raw"].shape == (m, 2**n, n)
    assert not np.allclose(job.tables["raw"], job.tables["circuits"])

    results = scorer.evaluate([job])
    assert set(results) == set(SOURCES)
    for source, result in results.items():
        assert result["readout"] == source and result["jobs"] == [job.job_id]
        assert result["tvd"]["mean"] == pytest.approx(job.tvd[source])
        assert result["joint_states"] == 2 ** (n * m) and result["rollout"] == "table"
        assert 0.0 <= result["decision_agreement"]["mean"] <= 1.0
        assert result["decision_latency"]["per_decision_s"] == pytest.approx(job.seconds)
    assert results["circuits"]["calibration"]["source"] == "circuits"
    assert "calibration" not in results["raw"]


def test_scored_policy_serves_whole_tables_in_order_and_nothing_else(tmp_path):
    from qdt.rl.policy import load_policy

    policy = load_policy(tiny_run(tmp_path))
    m, n = policy.n_servers, policy.n_users
    draws = [np.full((m, 2**n, n), 0.1 * (k + 1)) for k in range(2)]
    fields = {name: getattr(policy, name) for name in ("config", "instance", "actors", "executor", "episode")}
    scored = ScoredPolicy(**fields, draws=draws)
    every = all_observations(n)
    for k in range(2):
        for j in range(m):
            assert np.allclose(scored.actor_scores(j, every).numpy(), 0.1 * (k + 1))
    with pytest.raises(RuntimeError, match="only whole tables"):
        scored.actor_scores(0, every)  # a third draw was never measured
    with pytest.raises(RuntimeError, match="only whole tables"):
        ScoredPolicy(**fields, draws=draws).actor_scores(0, every[:1])  # one state: not a whole table
    with pytest.raises(RuntimeError, match="only whole tables"):
        ScoredPolicy(**fields, draws=draws).decide(np.zeros((n, m), dtype=np.int8))  # would need a call


def test_fractional_gates_run_on_and_off_with_shorter_isa_circuits_on(tmp_path):
    variants = device_variants(["fake_fractional", "fake_manila"])
    assert [(v.label, v.fractional_gates) for v in variants] == [
        ("fake_fractional (rx)", True),
        ("fake_fractional (no rx)", False),
        ("fake_manila", False),
    ]
    run = tiny_run(tmp_path)
    depth = {}
    for variant in variants[:2]:
        results, scorer = score_on_device(run, variant.profile, seed=5, job_dir=tmp_path / "jobs")
        isa = results["raw"]["isa"]
        assert [a["depth"] for a in isa] == [s["depth"] for s in scorer.isa]
        depth[variant.fractional_gates] = max(a["depth"] for a in isa)
        gates = set(scorer.executor.isa_report(scorer.policy.actors[0].front.prepared)["operations"])
        assert ("rx" in gates) == variant.fractional_gates
        assert set(results) == {"raw", MITIGATED}
    assert depth[True] < depth[False]


def test_device_variants_refuse_what_the_bench_cannot_run_before_any_job(tmp_path):
    for name, says in (
        ("aer", "ibm profiles of fake devices"),
        ("fake_nowhere", "ibm profiles of fake devices"),
        ("ibm_torino", "fake devices in local testing mode"),
    ):
        with pytest.raises(QdtInputError) as caught:
            device_variants([name])
        assert caught.value.field == "--runtime-devices" and says in str(caught.value)
    profile = tmp_path / "torino_rx.toml"  # fractional gates asked of a device without rx
    profile.write_text(
        'schema = "qdt-backend/1"\nname = "torino_rx"\nexecutor = "ibm"\n'
        '[device]\nprovider = "fake"\nname = "fake_torino"\nfractional_gates = true\n'
    )
    with pytest.raises(QdtInputError) as caught:
        device_variants([str(profile)])
    assert caught.value.field.endswith("device.fractional_gates") and "rx" in str(caught.value)
    with pytest.raises(QdtInputError, match="an ibm executor"):
        DeviceScorer(tiny_run(tmp_path / "q"), open_backend("statevector"))
