"""``[runtime] primitive = "executor"``: qdt's PUBs as one QuantumProgram on Qiskit Runtime's Executor.

The same prepared ISA circuits and parameter arrays go to the Executor primitive instead of the
Sampler, in local testing mode here (the fake device's noisy Aer simulator) and through the same
code on a real device. Both primitives sample the same noisy distribution, so their probabilities
agree within shot noise; the bits come back as boolean arrays that qdt turns into counts itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qiskit.primitives import BitArray
from test_ibm_local import _batch
from test_ibm_scripted_service import tiny_run

from qdt.cli.main import main
from qdt.errors import QdtInputError
from qdt.executors import open_backend, parse_profile
from qdt.executors.ibm import settings as ibm_settings
from qdt.executors.ibm.jobs import JobStore, bitarray_counts
from qdt.executors.ibm.program import bool_counts
from qdt.executors.ibm.settings import ibm_options

K_SIGMA = 4.5  # |p_executor - p_sampler| <= K_SIGMA * sqrt(2 p (1 - p) / shots) per probability
SHOTS = 4096


def _profile(directory: Path, primitive: str, extra: str = "") -> Path:
    path = directory / f"manila_{primitive}.toml"
    path.write_text(
        f'schema = "qdt-backend/1"\nname = "manila_{primitive}"\nexecutor = "ibm"\nshots = {SHOTS}\n'
        '[device]\nprovider = "fake"\nname = "fake_manila"\n'
        f'[runtime]\npoll_interval_s = 0.05\nmax_poll_interval_s = 0.2\nprimitive = "{primitive}"\n{extra}'
    )
    return path


def test_bool_counts_equal_qiskits_counts_of_the_same_bits() -> None:
    rng = np.random.default_rng(4)
    for width in (1, 3, 9):
        bits = rng.random((5, 300, width)) < 0.3  # [rows, shots, bits], column i = bit i
        packed = BitArray.from_bool_array(bits, order="little")
        assert np.array_equal(bool_counts(bits), bitarray_counts(packed))
        assert bool_counts(bits).sum(axis=1).tolist() == [300] * 5
        assert bool_counts(bits).shape == (5, 2**width)
    with pytest.raises(Exception, match=r"\[rows, shots, bits\]"):
        bool_counts(np.zeros((3, 2), dtype=bool))


def test_executor_and_sampler_agree_within_shot_noise_in_one_job_per_batch(tmp_path: Path) -> None:
    vqc, angles, weights = _batch(4, layers=2, seed=1)
    probabilities = {}
    for primitive in ("sampler", "executor"):
        executor = open_backend(_profile(tmp_path, primitive), seed=7, job_dir=tmp_path / primitive)
        assert ibm_options(executor.profile).runtime.primitive == primitive
        prepared = executor.prepare_vqc(vqc)
        first, second = executor.run_many([(prepared, angles, weights), (prepared, angles[:2], weights)])
        (job,) = executor.jobs  # two PUBs, one job
        assert job.kind == primitive and job.pubs == 2 and job.rows == 6 and job.shots == SHOTS
        assert first.shape == (4, 4) and second.shape == (2, 4)
        assert np.allclose(first.sum(dim=1).numpy(), 1.0)
        saved = JobStore(tmp_path / primitive).load_result(job.job_id)
        assert saved is not None and [p["kind"] for p in saved["pubs"]] == [primitive] * 2
        assert np.asarray(saved["pubs"][0]["counts"]).sum(axis=1).tolist() == [SHOTS] * 4
        probabilities[primitive] = first.numpy()
    p, q = probabilities["sampler"], probabilities["executor"]
    bound = K_SIGMA * np.sqrt(2 * np.clip(p * (1 - p), 1 / SHOTS, None) / SHOTS)
    assert (np.abs(p - q) <= bound).all(), np.abs(p - q) / bound
    (submitted,) = [e for e in JobStore(tmp_path / "executor").events() if e["event"] == "submitted"]
    assert submitted["kind"] == "executor" and "default_shots" not in submitted["options"]
    assert submitted["options"]["simulator"]["seed_simulator"] > 0


def test_the_shipped_executor_profile_runs_qdt_infer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tiny_run(tmp_path)
    argv = ["infer", "--run", str(run), "--backend", "fake_torino_executor", "--shots", "512", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"]["device"] == "fake_torino"
    assert all(job["kind"] == "executor" for job in report["jobs"])


@pytest.mark.parametrize(
    ("runtime", "extra", "named"),
    [
        ('primitive = "exectuor"', "", "runtime.primitive: expected 'sampler' or 'executor'"),
        ('primitive = "executor"', "[error_suppression]\ntwirling_gates = true\n", "error_suppression"),
        ('primitive = "executor"', "[estimator]\nuse_for_expval = true\n", "estimator.use_for_expval"),
    ],
)
def test_profiles_the_executor_cannot_serve_are_refused_when_read(
    runtime: str, extra: str, named: str
) -> None:
    import tomllib

    text = (
        'schema = "qdt-backend/1"\nname = "p"\nexecutor = "ibm"\n'
        f'[device]\nprovider = "fake"\nname = "fake_manila"\n[runtime]\n{runtime}\n{extra}'
    )
    with pytest.raises(QdtInputError, match=named) as raised:
        parse_profile(tomllib.loads(text))
    assert "primitive" in str(raised.value)  # the fix names the option to change


def test_an_installed_runtime_without_the_executor_is_named_in_the_profile_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ibm_settings, "runtime_version", lambda: (0, 45))
    profile = {
        "schema": "qdt-backend/1",
        "name": "p",
        "executor": "ibm",
        "device": {"provider": "fake", "name": "fake_manila"},
        "runtime": {"primitive": "executor"},
    }
    with pytest.raises(QdtInputError) as raised:
        parse_profile(profile)
    message = str(raised.value)
    assert "runtime.primitive" in message and "qiskit-ibm-runtime 0.45" in message and ">=0.47" in message
    monkeypatch.setattr(ibm_settings, "runtime_version", lambda: (0, 47))
    assert ibm_options(parse_profile(profile)).runtime.primitive == "executor"
