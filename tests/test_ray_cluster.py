"""`qdt sweep --ray-address` against a real Ray head, started as its own process.

The head is `ray start --head --block` bound to loopback, with Ray's token authentication on (a
token in the head's home folder, as `ray get-auth-token --generate` leaves it), in a home folder
and a Ray temporary folder of its own. Every sweep is a real `qdt sweep` process with that home
folder, so it finds the token where a user's machine keeps it. Nothing leaves the machine: every
address is 127.0.0.1. The cluster is stopped at the end (SIGTERM to `ray start --block`, which
stops what it started; anything left is killed by pid).

The reported bug: `--ray-address 127.0.0.1:PORT` failed against such a head while `auto` worked
(Ray turns token authentication on by itself only for a cluster it finds on its own). Starting the
head takes about 20 s; each sweep about 25 s.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from qdt.experiments.sweep import cell_dir, expand_cells, load_spec, read_results
from qdt.experiments.sweep.cell import read_attempts

RAY = str(Path(sys.executable).with_name("ray"))
QDT = [sys.executable, "-c", "import sys; from qdt.cli.main import main; sys.exit(main())"]
READY = "block forever"  # what `ray start --block` prints once everything it starts is up
SPEC = """\
[sweep]
name = "cluster"
[grid]
agent = ["classical"]
episodes = [20, {long}]  # a short cell, and a long one whose worker is killed mid-cell
seed = [5]
[train]
steps_per_episode = 2
batch_size = 8
replay_size = 64
warmup_transitions = 8
hidden = 8
checkpoint_every = 10
"""


@dataclass
class Head:
    process: subprocess.Popen
    home: Path  # its home folder, holding ~/.ray/auth_token
    port: int  # the head's GCS port: host:port
    client_port: int  # its Ray Client server: ray://host:port

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        return {**env, "HOME": str(self.home), **extra}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to `ray start --block` (it stops its cluster), then SIGKILL whatever is left, by pid."""
    try:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=30)
    for leftover in alive:
        try:
            leftover.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def head() -> Iterator[Head]:
    home = Path(tempfile.mkdtemp(prefix="qdt-ray-home-"))
    temp = Path(tempfile.mkdtemp(prefix="qdt-ray-", dir="/tmp"))  # short: Ray's socket paths live here
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["HOME"] = str(home)
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, check=True, capture_output=True)
    assert (home / ".ray" / "auth_token").is_file()
    port, client_port = _free_port(), _free_port()
    log = open(temp.with_suffix(".log"), "w+")
    flags = {
        "--node-ip-address": "127.0.0.1",
        "--port": str(port),
        "--ray-client-server-port": str(client_port),
        "--num-cpus": "2",
        "--include-dashboard": "false",
        "--temp-dir": str(temp),
    }
    process = subprocess.Popen(
        [RAY, "start", "--head", "--block", "--disable-usage-stats", *(w for f in flags.items() for w in f)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while READY not in Path(log.name).read_text():
            assert process.poll() is None, f"ray start failed:\n{Path(log.name).read_text()}"
            assert time.monotonic() < deadline, f"ray start did not come up:\n{Path(log.name).read_text()}"
            time.sleep(0.2)
        text = Path(log.name).read_text()
        assert "Token authentication is enabled" in text, text  # as in the report: Ray's default
        yield Head(process, home, port, client_port)
    finally:
        _stop(process)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
        Path(log.name).unlink(missing_ok=True)
        shutil.rmtree(home, ignore_errors=True)


def _sweep(head: Head, spec: Path, out: Path, address: str, **env: str) -> subprocess.Popen:
    command = [*QDT, "sweep", str(spec), "--out", str(out), "--ray-address", address, "--no-progress"]
    log = open(out.with_suffix(".log"), "w")
    return subprocess.Popen(command, env=head.env(**env), stdout=log, stderr=subprocess.STDOUT)


def _spec(tmp_path: Path, long_episodes: int) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(long=long_episodes))
    return path


def _check_one_row_per_cell(out: Path, cells: list) -> dict[str, dict]:
    rows = read_results(out / "results.csv")
    assert sorted(r["cell_id"] for r in rows) == sorted(c.cell_id for c in cells)  # none lost, none twice
    assert all(r["status"] == "ok" for r in rows), rows
    return {r["cell_id"]: r for r in rows}


@pytest.mark.slow  # about 30-60 s: the default run stays under 10 minutes
def test_host_port_of_a_token_authenticated_head_runs_a_sweep_that_survives_a_killed_worker(head, tmp_path):
    spec = _spec(tmp_path, long_episodes=600)
    short, long = expand_cells(load_spec(spec))
    out = tmp_path / "out"
    long_dir = cell_dir(out, long.cell_id)
    sweep = _sweep(head, spec, out, f"127.0.0.1:{head.port}")
    killed = None
    try:
        deadline = time.monotonic() + 240
        while killed is None and sweep.poll() is None and time.monotonic() < deadline:
            attempts = read_attempts(long_dir)
            if attempts and (long_dir / "checkpoint.pt").exists():
                killed = attempts[0]["pid"]
                os.kill(killed, signal.SIGKILL)  # the Ray worker running the long cell, on the head
            time.sleep(0.02)
        assert sweep.wait(timeout=300) == 0, out.with_suffix(".log").read_text()
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    assert killed is not None, f"the long cell finished before it could be killed:\n{out.with_suffix('.log')}"

    rows = _check_one_row_per_cell(out, [short, long])
    assert rows[long.cell_id]["attempts"] == 2 and rows[short.cell_id]["attempts"] == 1
    first, second = read_attempts(long_dir)
    assert first["pid"] == killed and second["pid"] != killed
    assert second["resumed_from_episode"] is not None and second["resumed_from_episode"] > 0  # a checkpoint
    episodes = [json.loads(line)["episode"] for line in (long_dir / "metrics.jsonl").read_text().splitlines()]
    assert episodes == list(range(1, 601))  # every episode once: resumed, not restarted or repeated
    assert len(read_attempts(cell_dir(out, short.cell_id))) == 1


@pytest.mark.slow
@pytest.mark.parametrize("form", ["ray://", "auto"])
def test_every_other_documented_address_form_runs_a_sweep(head, tmp_path, form):
    """`ray://host:port` (the head's Ray Client server) and `auto` (the cluster in RAY_ADDRESS, or
    the only one running on this machine: RAY_ADDRESS names it, since other tests run Ray here too)."""
    spec = _spec(tmp_path, long_episodes=30)
    cells = expand_cells(load_spec(spec))
    out = tmp_path / "out"
    if form == "auto":
        sweep = _sweep(head, spec, out, "auto", RAY_ADDRESS=f"127.0.0.1:{head.port}")
    else:
        sweep = _sweep(head, spec, out, f"ray://127.0.0.1:{head.client_port}")
    assert sweep.wait(timeout=300) == 0, out.with_suffix(".log").read_text()
    rows = _check_one_row_per_cell(out, cells)
    assert all(row["attempts"] == 1 for row in rows.values())


@pytest.mark.slow
def test_a_machine_without_the_token_is_refused_in_one_line_that_says_where_the_token_goes(head, tmp_path):
    """Ray retries a refused token for about 20 s, printing a warning each time: one line remains."""
    spec = _spec(tmp_path, long_episodes=30)
    out = tmp_path / "out"
    elsewhere = tmp_path / "home"  # a home folder without ~/.ray/auth_token
    elsewhere.mkdir()
    address = f"127.0.0.1:{head.port}"
    command = [*QDT, "sweep", str(spec), "--out", str(out), "--ray-address", address, "--no-progress"]
    done = subprocess.run(
        command, env=head.env(HOME=str(elsewhere)), capture_output=True, text=True, timeout=300
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("qdt sweep: error: --ray-address: ")
    assert "refused a connection without a token" in lines[0] and "~/.ray/auth_token" in lines[0]
    assert not list(elsewhere.iterdir())  # and qdt wrote no token into that home folder
