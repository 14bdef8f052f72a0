"""A clean home folder: commands that ask for nothing there write nothing there.

Each test runs a real process with HOME pointed at an empty folder (libraries fix their paths
under ``~`` when they are imported, so a process of its own is the honest test).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from qdt.problem.generator import paper_instance
from qdt.rl.config import TrainConfig
from qdt.rl.train import train

QDT = [sys.executable, "-c", "import sys; from qdt.cli.main import main; sys.exit(main())"]
TINY = dict(episodes=2, steps_per_episode=2, batch_size=4, replay_size=8, warmup_transitions=4, hidden=4)
# Caches libraries keep under ~ whatever the command (matplotlib's font list): not the point here.
CACHES = {".cache", ".config"}


def _environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QISKIT_IBM_", "RAY_"))}
    return {**env, "HOME": str(home)}


def _written(home: Path) -> list[str]:
    paths = (p.relative_to(home) for p in home.rglob("*"))
    return sorted(str(p) for p in paths if p.parts[0] not in CACHES)


def _infer_on_ibm_torino(tmp_path: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """`qdt infer` of a tiny quantum run on ibm_torino, in a process whose home folder is ``home``."""
    run = tmp_path / "run"
    train(TrainConfig(agent="quantum", layers=1, **TINY), paper_instance(), run, progress=False)
    return subprocess.run(
        [*QDT, "infer", "--run", str(run), "--backend", "ibm_torino"],
        env=_environment(home),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_infer_on_an_ibm_device_without_an_account_leaves_no_qiskit_file(tmp_path):
    """qiskit-ibm-runtime creates ~/.qiskit/qiskit-ibm.json holding {} when it looks for an account."""
    home = tmp_path / "home"
    home.mkdir()
    done = _infer_on_ibm_torino(tmp_path, home)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "QISKIT_IBM_TOKEN" in lines[0], done.stderr
    assert _written(home) == []


def test_infer_keeps_an_account_file_the_user_has(tmp_path):
    """The placeholder is removed only when qdt's call made it: a user's own file stays as it is."""
    home = tmp_path / "home"
    (home / ".qiskit").mkdir(parents=True)
    (home / ".qiskit" / "qiskit-ibm.json").write_text("{}")  # the user's, even if empty
    done = _infer_on_ibm_torino(tmp_path, home)
    assert done.returncode == 2, done.stderr
    assert (home / ".qiskit" / "qiskit-ibm.json").read_text() == "{}"


def test_the_embedded_ray_of_a_sweep_saves_no_token_in_the_home_folder(tmp_path):
    """Ray turns token authentication on for a cluster it starts and, finding no token, saves a
    new one to ~/.ray/auth_token; qdt's embedded cluster gets a token in its environment instead."""
    home = tmp_path / "home"
    home.mkdir()
    script = (
        "import ray\n"
        "from qdt.experiments.sweep import ray_session\n"
        "with ray_session(None, 1) as slots:\n"
        "    assert slots >= 1 and ray.get(ray.remote(lambda: 7).remote()) == 7\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=_environment(home), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert _written(home) == []
