"""Nothing the user owns is overwritten, one process writes a folder at a time, no silent defaults.

Every refused case compares every byte of the folder before and after. The concurrent-writer
test starts two real `qdt train` processes on one --out (~20 s); the rest run in this process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from qdt.cli.main import main
from qdt.errors import QdtInputError
from qdt.files import LOCK_FILE, OWNER_FILE, create_bytes_atomic, hold_folder

TRAIN = [
    "train",
    "--preset",
    "paper",
    "--agent",
    "classical",
    "--steps-per-episode",
    "2",
    "--checkpoint-every",
    "5",
    "--no-progress",
]
# A process that holds a folder's lock until it reads a line, as a running qdt command would.
HOLD = (
    "import sys\n"
    "from qdt.files import hold_folder\n"
    "with hold_folder(sys.argv[1], '--out'):\n"
    "    print('held', flush=True)\n"
    "    sys.stdin.readline()\n"
)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file and folder below ``folder`` (hidden ones too), with the bytes of each file."""
    return {
        str(path.relative_to(folder)): None if path.is_dir() else path.read_bytes()
        for path in sorted(folder.rglob("*"))
    }


def user_folder(folder: Path, names: list[str]) -> dict[str, bytes | None]:
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        (folder / name).write_bytes(f"the user's own {name}, #{k}\n".encode())
    return snapshot(folder)


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"qdt {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def holder(tmp_path):
    """Start a process holding a folder's lock: ``holder(folder)`` returns it (pid as .pid)."""
    started = []

    def start(folder: Path) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout.readline().strip() == "held"
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.stdin.write("\n")
            process.stdin.flush()
        process.wait(timeout=30)


# ---- qdt train --out -------------------------------------------------------------------------
def test_train_out_holding_the_users_files_is_refused_naming_them_and_left_byte_for_byte(tmp_path, capsys):
    out = tmp_path / "mine"
    before = user_folder(out, ["metrics.jsonl", "summary.json", "reward.png", "notes.txt", "z.csv"])
    assert main([*TRAIN, "--episodes", "5", "--out", str(out)]) == 2
    line = one_line_error(capsys, "train")
    assert "--out: expected a new or empty folder" in line
    assert "metrics.jsonl, notes.txt, reward.png and 2 more" in line and "--resume" not in line
    assert snapshot(out) == before  # no byte changed, no file added (the lock file is gone too)


def test_train_out_holding_a_run_points_to_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--episodes", "5", "--out", str(out)]) == 0
    capsys.readouterr()
    before = snapshot(out)
    assert main([*TRAIN, "--episodes", "5", "--seed", "1", "--out", str(out)]) == 2
    line = one_line_error(capsys, "train")
    assert "config.json" in line and f"use --resume {out}" in line
    assert snapshot(out) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*TRAIN, "--episodes", "5", "--out", str(empty)]) == 0  # an empty folder is fine


@pytest.fixture
def unwritable(tmp_path):
    """A folder qdt cannot write in: a read-only mount (as root), else one without write permission."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder, "no permission to write"
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], check=False)
    if mounted.returncode != 0:
        pytest.skip("root, but no read-only file system can be mounted here")
    try:
        yield folder, "read-only file system"
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_train_out_paths_qdt_cannot_write_give_one_line_before_any_work(tmp_path, capsys, unwritable):
    a_file = tmp_path / "a-file"
    a_file.write_text("mine\n")
    folder, reason = unwritable
    cases = [
        (a_file, "an existing file"),
        (a_file / "below", "a path below a file"),
        (Path("/proc/x"), "a path inside /proc"),
        (Path("/sys/x"), "a path inside /sys"),
        (folder / "run", reason),
    ]
    for out, said in cases:
        assert main([*TRAIN, "--episodes", "5", "--out", str(out)]) == 2, out
        line = one_line_error(capsys, "train")
        assert line.startswith("qdt train: error: --out: expected") and said in line and str(out) in line
    assert a_file.read_text() == "mine\n"


def test_two_train_runs_on_one_out_the_second_is_refused_and_changes_no_byte(tmp_path, capsys):
    out = tmp_path / "run"
    cli = "import sys; from qdt.cli.main import main; sys.exit(main(sys.argv[1:]))"
    # The second process imports qdt while the first starts, then runs its command when told to.
    when_told = "import sys, qdt.rl.train; from qdt.cli.main import main; sys.stdin.readline(); "
    when_told += "sys.exit(main(sys.argv[1:]))"
    first = subprocess.Popen(
        [sys.executable, "-c", cli, *TRAIN, "--episodes", "60", "--seed", "0", "--out", str(out)],
        stderr=subprocess.PIPE,
        text=True,
    )
    second = subprocess.Popen(
        [sys.executable, "-c", when_told, *TRAIN, "--episodes", "60", "--seed", "1", "--out", str(out)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").exists():  # written atomically, after the metrics
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.01)
        os.kill(first.pid, signal.SIGSTOP)  # frozen mid-run, holding the folder
        before = snapshot(out)
        assert LOCK_FILE in before and "config.json" in before

        second.stdin.write("go\n")
        second.stdin.flush()
        assert second.wait(timeout=120) == 2
        err = second.stderr.read().strip()
        assert len(err.splitlines()) == 1 and f"in use by pid {first.pid} on host" in err, err
        assert snapshot(out) == before  # every byte of the first run as it was

        os.kill(first.pid, signal.SIGKILL)  # the first run dies holding the lock ...
        first.wait(timeout=30)
    finally:
        for process in (first, second):
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.kill()
                process.wait()
    # ... and --resume takes the stale lock over with a notice, then completes the first run.
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"taking over the lock of pid {first.pid}" in err
    episodes = [json.loads(line)["episode"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert episodes == list(range(1, 61))
    assert json.loads((out / "config.json").read_text())["config"]["seed"] == 0
    assert json.loads((out / "summary.json").read_text())["seed"] == 0
    assert not (out / LOCK_FILE).exists()


def test_a_lock_whose_process_is_gone_is_taken_over_with_a_notice(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    pid = dead_pid()
    record = {"pid": pid, "host": socket.gethostname(), "started": "2024-01-01T00:00:00+00:00"}
    (out / LOCK_FILE).write_text(json.dumps(record))
    assert main([*TRAIN, "--episodes", "5", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"notice: {out}: taking over the lock of pid {pid} on host {socket.gethostname()}" in err
    assert (out / "summary.json").exists() and not (out / LOCK_FILE).exists()


# ---- the lock itself -------------------------------------------------------------------------
def test_a_held_folder_refuses_a_second_writer_and_waits_when_asked(tmp_path, holder):
    folder = tmp_path / "f"
    process = holder(folder)
    with pytest.raises(QdtInputError) as refused:
        with hold_folder(folder, "--out"):
            pass
    assert refused.value.field == "--out" and f"in use by pid {process.pid}" in str(refused.value)

    notices, got = [], threading.Event()

    def waiter():
        with hold_folder(folder, "cell folder", wait=True, notice=notices.append):
            got.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.5)
    assert not got.is_set()  # waits while the holder runs
    process.stdin.write("\n")
    process.stdin.flush()
    thread.join(timeout=30)
    assert got.is_set() and notices == []  # a released lock is not a stale one
    assert not (folder / LOCK_FILE).exists()


def test_the_lock_is_reentrant_in_a_thread_and_a_folder_it_created_goes_if_left_empty(tmp_path):
    folder = tmp_path / "new" / "run"
    with hold_folder(folder, "--out"):
        with hold_folder(folder, "run_dir"):  # a sweep worker, then train() inside it
            assert (folder / LOCK_FILE).exists()
        assert (folder / LOCK_FILE).exists()  # still held by the outer block
    assert not (tmp_path / "new").exists()  # created by the lock, left empty: removed
    folder.mkdir(parents=True)
    with hold_folder(folder, "--out"):
        (folder / "kept").write_text("x")
    assert [p.name for p in folder.iterdir()] == ["kept"]


# ---- sweeps: an empty grid or spec, foreign files, a second driver ---------------------------
@pytest.mark.parametrize(
    "text, said",
    [
        ("", "SPEC: expected a sweep spec with a [grid] table"),
        ("# only a comment\n", "SPEC: expected a sweep spec with a [grid] table"),
        ("[grid]\n", "grid: expected a [grid] table with at least one key, got an empty [grid]"),
        ("[train]\nepisodes = 5\n", "grid: expected a [grid] table with at least one key, got no [grid]"),
    ],
)
def test_an_empty_spec_or_grid_is_an_error_not_one_cell_of_defaults(tmp_path, capsys, text, said):
    (tmp_path / "spec.toml").write_text(text)
    out = tmp_path / "out"
    assert main(["sweep", str(tmp_path / "spec.toml"), "--out", str(out), "--no-progress"]) == 2
    line = one_line_error(capsys, "sweep")
    assert said in line and "[grid]" in line
    assert not out.exists()
    assert main(["sweep", str(tmp_path / "spec.toml"), "--out", str(out), "--dry-run"]) == 2


SPEC = '[grid]\nagent = ["classical"]\n[train]\nepisodes = 2\n'


def test_sweep_out_holding_other_files_is_refused_before_ray(tmp_path, capsys):
    (tmp_path / "spec.toml").write_text(SPEC)
    out = tmp_path / "out"
    before = user_folder(out, ["results.csv", "notes.md"])
    assert main(["sweep", str(tmp_path / "spec.toml"), "--out", str(out), "--no-progress"]) == 2
    line = one_line_error(capsys, "sweep")
    assert "--out: expected a new or empty folder, or a sweep folder" in line
    assert "notes.md, results.csv" in line
    assert snapshot(out) == before


def test_a_second_sweep_driver_is_refused_with_the_first_ones_pid(tmp_path, capsys, holder):
    (tmp_path / "spec.toml").write_text(SPEC)
    out = tmp_path / "out"
    process = holder(out)
    before = snapshot(out)
    assert main(["sweep", str(tmp_path / "spec.toml"), "--out", str(out), "--no-progress"]) == 2
    line = one_line_error(capsys, "sweep")
    assert "--out: expected a folder no other qdt process is writing" in line
    assert f"in use by pid {process.pid}" in line
    assert snapshot(out) == before


# ---- benches and the demo --------------------------------------------------------------------
def test_bench_folders_holding_other_files_are_refused_before_training(tmp_path, capsys):
    out, runs = tmp_path / "out", tmp_path / "runs"
    argv = ["bench", "paper", "--episodes", "2", "--seeds", "1", "--no-timing", "--out", str(out)]
    before = user_folder(out, ["table3.md", "my-thesis.tex"])
    assert main([*argv, "--runs", str(runs)]) == 2
    line = one_line_error(capsys, "bench paper")
    assert "--out: expected a new or empty folder, or one holding only `qdt bench paper` results" in line
    assert "my-thesis.tex" in line and "table3.md" in line
    assert snapshot(out) == before and not runs.exists()

    # a user's own file named like the bench's output is refused too: no owner file names the bench
    (out / "my-thesis.tex").unlink()
    before = snapshot(out)
    assert main([*argv, "--runs", str(runs)]) == 2
    assert "holds table3.md" in one_line_error(capsys, "bench paper")
    assert snapshot(out) == before and not runs.exists()
    # another bench's folder is not this one's either
    (out / OWNER_FILE).write_text("qdt bench scale\n")
    assert main([*argv, "--runs", str(runs)]) == 2
    assert "holds .qdt-owner, table3.md" in one_line_error(capsys, "bench paper")
    (out / OWNER_FILE).unlink()
    runs_before = user_folder(runs, ["data.csv"])
    assert main([*argv, "--runs", str(runs)]) == 2
    assert "--runs: expected a new or empty folder, or a sweep folder" in one_line_error(
        capsys, "bench paper"
    )
    assert snapshot(runs) == runs_before
    assert main([*argv, "--runs", str(out)]) == 2
    assert "--runs: expected a folder other than --out" in one_line_error(capsys, "bench paper")


def test_demo_out_holding_other_files_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "demo"
    before = user_folder(out, ["report.html", "holiday.jpg"])
    assert main(["demo", "--episodes", "1", "--no-device", "--out", str(out)]) == 2
    line = one_line_error(capsys, "demo")
    assert "--out: expected a new or empty folder, or an earlier `qdt demo` output folder" in line
    assert "holiday.jpg" in line
    assert snapshot(out) == before
    (out / "holiday.jpg").unlink()  # only a file named like the demo's: still the user's
    assert main(["demo", "--episodes", "1", "--no-device", "--out", str(out)]) == 2
    assert "report.html" in one_line_error(capsys, "demo")
    assert snapshot(out) == {"report.html": before["report.html"]}
    before = user_folder(out / "runs", ["mine.txt"])
    assert main(["demo", "--episodes", "1", "--no-device", "--out", str(out)]) == 2
    assert "mine.txt" in one_line_error(capsys, "demo")
    assert snapshot(out / "runs") == before


# ---- qdt noise snapshot -o, qdt instance generate -o ------------------------------------------
@pytest.mark.parametrize(
    "command",
    [["noise", "snapshot", "--backend", "fake_manila", "-o"], ["instance", "generate", "-o"]],
    ids=["noise snapshot", "instance generate"],
)
def test_an_output_file_must_be_new_and_errors_name_it(tmp_path, capsys, command):
    existing = tmp_path / "pinned.json"
    existing.write_text('{"mine": true}\n')
    (tmp_path / "folder.json").mkdir()
    for path, said in (
        (existing, "an existing file"),
        (tmp_path / "folder.json", "an existing folder"),
        (Path("/proc/x.json"), "inside /proc"),
    ):
        assert main([*command, str(path)]) == 2
        line = one_line_error(capsys, " ".join(command[:2]))
        assert ": error: --output: expected a" in line and said in line
        assert str(path) in line and ".tmp" not in line
    assert existing.read_text() == '{"mine": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.json", "pinned.json"]  # no temporary left
    assert main([*command, str(tmp_path / "new.json")]) == 0
    assert json.loads((tmp_path / "new.json").read_text())


def test_creating_a_file_never_writes_over_one(tmp_path):
    target = tmp_path / "f.json"
    create_bytes_atomic(target, b"first\n")
    with pytest.raises(FileExistsError):
        create_bytes_atomic(target, b"second\n")  # as when another writer created it meanwhile
    assert target.read_bytes() == b"first\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temporary left


# ---- the atomic writers' errors ------------------------------------------------------------
@pytest.mark.parametrize("where", ["a folder", "/proc"])
def test_atomic_writers_name_the_target_never_their_temporary_file(tmp_path, where):
    from qdt.files import atomic_write_text, write_json_atomic

    target = tmp_path / "taken" if where == "a folder" else Path("/proc/qdt-test/out.json")
    if where == "a folder":
        target.mkdir()
    for write in (lambda: atomic_write_text(target, "x"), lambda: write_json_atomic(target, {})):
        with pytest.raises(OSError) as caught:
            write()
        assert caught.value.filename == str(target) and ".tmp" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["taken"] if where == "a folder" else [])


def test_an_earlier_demo_folder_is_taken_a_folder_of_lookalike_names_is_not(tmp_path):
    from qdt.experiments.report.demo import check_demo_folder

    out = tmp_path / "demo"
    user_folder(out, ["report.html", "results.md"])
    with pytest.raises(QdtInputError, match="report.html, results.md"):
        check_demo_folder(out)
    (out / "runs").mkdir()  # what a demo writes first: its runs' sweep folder
    (out / "runs" / "sweep.json").write_text(json.dumps({"format": "qdt-sweep/1", "cells": []}))
    check_demo_folder(out)  # an earlier demo's output: refreshed, its runs reused
