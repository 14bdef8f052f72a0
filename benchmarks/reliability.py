"""Reliability: bad inputs and faults put to the qdt command line, as a demanding new user would.

    .venv/bin/python benchmarks/reliability.py [--workers 2] [--only CLASS ...] [--no-ray]

Every case is a real `qdt ...` process (the console script next to this Python) in a temporary
folder of its own, with HOME pointed at an empty folder and no IBM or Ray settings from the
caller's environment. A case is clean when:

* the process ends within its time limit (a hang is unclean) with the exit status the case
  expects: 2 bad input, 1 failed run, 0 success;
* a failure is ONE line on stderr, ``qdt CMD: error: ...``, with no traceback and no "internal
  error" (an exception qdt did not expect);
* that line holds the case's own substrings: the field, flag or path at fault AND a piece of the
  fix (per case, written for that case: one generic message cannot pass them all);
* the user's files the case names (its ``keep``) are byte for byte as they were, and nothing is
  left in the home folder;
* whatever the case checks besides (the output of a command that should work, a marker file a
  malicious pickle would create, an interrupted run resumed to the uninterrupted result).

The classes are those of issue 16: the 144 bad inputs and faults it tried (tracebacks, hangs,
data loss, silent corruption, silent defaults, multi-line errors, smaller issues, and the kinds it
found handled well), plus file-system faults, profiles, sweeps and arguments. Writes
benchmarks/results/reliability/reliability.md (a table by class: tried, clean; any unclean case
with what went wrong) and reliability.csv (one row per case). Exit status 0 when every case is
clean. Not a timing benchmark; it takes about 20 minutes on 2 cores (each `qdt` process spends
several seconds importing torch and qiskit).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "reliability"
QDT = str(Path(sys.executable).with_name("qdt"))
RAY = str(Path(sys.executable).with_name("ray"))
CANARY = "qdt-canary-4b1e9d7c2a6f"
DEFAULT_TIMEOUT_S = 240.0
TRAIN = ["--agent", "classical", "--steps-per-episode", "2", "--batch-size", "4", "--replay-size", "16"]
TRAIN += ["--checkpoint-every", "2", "--no-progress"]

CLASSES = [
    (
        "tracebacks",
        "the issue's tracebacks: deep JSON, 4^100000, -o a folder, --out a file or /sys, bad config.json",
    ),
    ("hangs", "the issue's hangs: 100,000 users under each solver, 10^5 and 10^6 layers (a time limit each)"),
    ("data loss", "--out / -o holding the user's files: refused, every byte kept"),
    ("silent corruption", "two writers of one folder; a stale lock"),
    ("silent defaults", "an empty sweep spec or grid"),
    ("multi-line errors", "damaged checkpoints: one line, never torch's advice"),
    ("smaller issues", "profile names for --backend, dry-run reasons, ~/.qiskit, control characters, Ray"),
    ("malformed instances", "instance files damaged every way"),
    ("training options", "every training option out of range"),
    ("run folders", "damaged run folders, resume, a malicious pickle, SIGKILL mid-run"),
    ("file system", "exists, is a folder, below a file, read-only, no permission, no space, /proc"),
    ("profiles", "backend and noise profiles: missing, malformed, out of range"),
    ("accounts", "IBM accounts and job stores: no account, no network, a token that must not leak"),
    ("sweeps", "sweep specs and options"),
    ("arguments", "command-line arguments"),
]


# ---- cases ---------------------------------------------------------------------------------------
@dataclass
class Case:
    """One command and what a clean outcome is. In argv, says, fix and env, ``{d}`` is the case's
    own folder and ``{s}`` the shared inputs' folder."""

    klass: str
    name: str
    argv: list[str]
    code: int = 2
    says: tuple[str, ...] = ()  # substrings of the error line naming what is at fault
    fix: str | None = None  # a substring of the error line's fix
    setup: Callable[[Path, Path], None] | None = None
    keep: tuple[str, ...] = ()  # files or folders (relative to {d}) whose bytes must not change
    out_has: tuple[str, ...] = ()  # substrings stdout must hold (exit 0)
    out_lacks: tuple[str, ...] = ()  # substrings stdout and stderr must not hold
    check: Callable[[Path, Path, subprocess.CompletedProcess[str]], str | None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT_S
    serial: bool = False  # run alone (timing-sensitive, or starts processes of its own)
    runner: Callable[[Case, Path, Path], Outcome] | None = None  # a case that is more than one command


@dataclass
class Outcome:
    case: Case
    clean: bool
    problem: str
    code: int | None
    line: str
    seconds: float


def cases() -> list[Case]:
    found: list[Case] = []
    for make in (
        tracebacks,
        hangs,
        data_loss,
        silent_corruption,
        silent_defaults,
        multi_line,
        smaller_issues,
        malformed_instances,
        training_options,
        run_folders,
        file_system,
        profiles,
        accounts,
        sweeps,
        arguments,
    ):
        found.extend(make())
    names = [f"{c.klass}/{c.name}" for c in found]
    assert len(names) == len(set(names)), "case names repeat"
    vague = [c.name for c in found if c.runner is None and c.code != 0 and (not c.says or not c.fix)]
    assert not vague, f"failure cases without the words to check (field or path, and fix): {vague}"
    return found


# ---- setup helpers ---------------------------------------------------------------------------------
def write(relative: str, content: str | bytes) -> Callable[[Path, Path], None]:
    def setup(d: Path, s: Path) -> None:
        path = d / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return setup


def instance_with(
    change: Callable[[dict[str, Any]], None], name: str = "inst.json"
) -> Callable[[Path, Path], None]:
    def setup(d: Path, s: Path) -> None:
        data = json.loads((s / "paper.json").read_text())
        change(data)
        (d / name).write_text(json.dumps(data))

    return setup


def copy_run(kind: str, change: Callable[[Path], None] | None = None) -> Callable[[Path, Path], None]:
    def setup(d: Path, s: Path) -> None:
        shutil.copytree(s / kind, d / "run")
        if change is not None:
            change(d / "run")

    return setup


def user_files(folder: str, names: list[str]) -> Callable[[Path, Path], None]:
    def setup(d: Path, s: Path) -> None:
        (d / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            (d / folder / name).write_text(f"the user's own {name}\n")

    return setup


def both(*setups: Callable[[Path, Path], None]) -> Callable[[Path, Path], None]:
    def setup(d: Path, s: Path) -> None:
        for one in setups:
            one(d, s)

    return setup


def set_key(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def drop_key(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


def edit_config(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        data = json.loads((run / "config.json").read_text())
        change(data)
        (run / "config.json").write_text(json.dumps(data))

    return apply


def file_in_run(name: str, content: str | bytes) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        path = run / name
        if path.is_dir():
            shutil.rmtree(path)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return apply


def folder_in_run(name: str) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        (run / name).unlink()
        (run / name).mkdir()

    return apply


def remove_in_run(name: str) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        (run / name).unlink()

    return apply


class _Pwn:
    """Unpickling this runs a shell command: what a malicious checkpoint.pt would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def malicious_checkpoint(run: Path) -> None:
    (run / "checkpoint.pt").write_bytes(
        pickle.dumps({"format": "qdt-checkpoint/1", "x": _Pwn(run.parent / "PWNED")})
    )


def no_marker(d: Path, s: Path, done: subprocess.CompletedProcess[str]) -> str | None:
    return "the pickle ran code" if (d / "PWNED").exists() else None


# ---- the issue's classes -----------------------------------------------------------------------
def tracebacks() -> list[Case]:
    k = "tracebacks"
    bad_json = copy_run("classical", file_in_run("config.json", "this is not JSON {"))
    no_instance = copy_run("classical", edit_config(drop_key(("instance",))))
    q_bad_json = copy_run("quantum", file_in_run("config.json", "this is not JSON {"))
    q_no_instance = copy_run("quantum", edit_config(drop_key(("instance",))))
    return [
        Case(
            k,
            "instance show on JSON nested 100000 deep",
            ["instance", "show", "{d}/deep.json"],
            says=("FILE", "deep.json", "nested too deep"),
            fix="qdt instance generate",
            setup=write("deep.json", "[" * 100_000 + "]" * 100_000),
        ),
        Case(
            k,
            "optimum --solver enumerate on 100000 users",
            ["optimum", "{s}/huge.json", "--solver", "enumerate"],
            says=("--solver", "enumerate"),
            fix="milp",
            timeout=180,
        ),
        Case(
            k,
            "instance generate -o an existing folder",
            ["instance", "generate", "-o", "{d}/folder"],
            says=("--output", "{d}/folder", "an existing folder"),
            fix="choose another name",
            setup=user_files("folder", ["notes.txt"]),
            keep=("folder",),
        ),
        Case(
            k,
            "instance generate -o on a read-only file system",
            ["instance", "generate", "-o", "{d}/ro/i.json"],
            says=("--output", "read-only"),
            fix="writable disk",
            setup=read_only("ro"),
        ),
        Case(
            k,
            "train --out an existing file",
            ["train", *TRAIN, "--episodes", "2", "--out", "{d}/afile"],
            says=("--out", "afile", "an existing file"),
            fix="give a folder path",
            setup=write("afile", "mine\n"),
            keep=("afile",),
        ),
        Case(
            k,
            "train --out on a read-only file system",
            ["train", *TRAIN, "--episodes", "2", "--out", "{d}/ro/run"],
            says=("--out", "read-only"),
            fix="writable disk",
            setup=read_only("ro"),
        ),
        Case(
            k,
            "train --out /sys/x",
            ["train", *TRAIN, "--episodes", "2", "--out", "/sys/x"],
            says=("--out", "/sys"),
            fix="choose a path on a disk",
        ),
        Case(
            k,
            "train --out /proc/x",
            ["train", *TRAIN, "--episodes", "2", "--out", "/proc/x"],
            says=("--out", "/proc"),
            fix="choose a path on a disk",
        ),
        Case(
            k,
            "train --resume, config.json not JSON",
            ["train", "--resume", "{d}/run", "--no-progress"],
            says=("config.json", "unreadable JSON"),
            fix="start a new run with --out",
            setup=bad_json,
        ),
        Case(
            k,
            "evaluate --run, config.json not JSON",
            ["evaluate", "--run", "{d}/run"],
            says=("config.json", "unreadable JSON"),
            fix="start a new run with --out",
            setup=q_bad_json,
        ),
        Case(
            k,
            "train --resume, config.json without instance",
            ["train", "--resume", "{d}/run", "--no-progress"],
            says=("config.json", "instance"),
            fix="start a new run with --out",
            setup=no_instance,
        ),
        Case(
            k,
            "evaluate --run, config.json without instance",
            ["evaluate", "--run", "{d}/run"],
            says=("config.json", "instance"),
            fix="start a new run with --out",
            setup=q_no_instance,
        ),
        Case(
            k,
            "infer on an empty config.json",
            ["infer", "--run", "{d}/run", "--backend", "fake_manila"],
            says=("config.json", "unreadable JSON"),
            fix="start a new run with --out",
            setup=copy_run("quantum", file_in_run("config.json", "")),
        ),
    ]


def hangs() -> list[Case]:
    k = "hangs"
    return [
        Case(
            k,
            "optimum on 100000 users (default solver, its limit)",
            ["optimum", "{s}/huge.json", "--json"],
            code=0,
            out_has=('"status"',),
            check=answered_or_said_why,
            timeout=150,
        ),
        Case(
            k,
            "optimum on 100000 users --time-limit 10",
            ["optimum", "{s}/huge.json", "--time-limit", "10", "--json"],
            code=0,
            out_has=('"status"',),
            check=answered_or_said_why,
            timeout=75,
            serial=True,
        ),
        Case(
            k,
            "optimum on 100000 users --solver greedy",
            ["optimum", "{s}/huge.json", "--solver", "greedy", "--json"],
            code=0,
            out_has=('"status"',),
            check=answered_or_said_why,
            timeout=150,
        ),
        Case(
            k,
            "train --layers 100000",
            ["train", "--preset", "paper", "--layers", "100000", "--out", "{d}/run"],
            says=("--layers", "100000"),
            fix="at most 200 layers",
            timeout=60,
        ),
        Case(
            k,
            "circuit --layers 1000000",
            ["circuit", "--qubits", "2", "--layers", "1000000", "--json"],
            says=("--layers", "1000000"),
            fix="at most 200 layers",
            timeout=60,
        ),
    ]


def answered_or_said_why(d: Path, s: Path, done: subprocess.CompletedProcess[str]) -> str | None:
    result = json.loads(done.stdout)
    if result["status"] in ("optimal", "feasible", "infeasible"):
        return (
            None if result["assignment"] is not None or result["status"] == "infeasible" else "no placement"
        )
    return None if result.get("reason") else f"status {result['status']} without a reason"


def data_loss() -> list[Case]:
    k = "data loss"
    mine = ["metrics.jsonl", "summary.json", "reward.png"]
    return [
        Case(
            k,
            "train --out holding metrics.jsonl, summary.json, reward.png",
            ["train", *TRAIN, "--episodes", "2", "--out", "{d}/mine"],
            says=("--out", "metrics.jsonl", "reward.png"),
            fix="move those files away",
            setup=user_files("mine", mine),
            keep=("mine",),
        ),
        Case(
            k,
            "train --out holding one hidden file",
            ["train", *TRAIN, "--episodes", "2", "--out", "{d}/mine"],
            says=("--out", ".notes"),
            fix="move those files away",
            setup=user_files("mine", [".notes"]),
            keep=("mine",),
        ),
        Case(
            k,
            "train --out holding a finished run",
            ["train", *TRAIN, "--episodes", "2", "--out", "{d}/run"],
            says=("--out", "config.json"),
            fix="--resume",
            setup=copy_run("classical"),
            keep=("run",),
        ),
        Case(
            k,
            "sweep --out holding the user's files",
            ["sweep", "{s}/tiny.toml", "--out", "{d}/mine", "--no-progress"],
            says=("--out", "results.csv"),
            fix="move those files away",
            setup=user_files("mine", ["results.csv", "notes.md"]),
            keep=("mine",),
        ),
        Case(
            k,
            "demo --out holding the user's files",
            ["demo", "--episodes", "1", "--no-device", "--out", "{d}/mine"],
            says=("--out", "photo.jpg, report.html"),
            fix="move those files away",
            setup=user_files("mine", ["report.html", "photo.jpg"]),
            keep=("mine",),
        ),
        Case(
            k,
            "demo --out holding only files named like the demo's",
            ["demo", "--episodes", "1", "--no-device", "--out", "{d}/mine"],
            says=("--out", "report.html, results.md"),
            fix="move those files away",
            setup=user_files("mine", ["report.html", "results.md"]),
            keep=("mine",),
        ),
        Case(
            k,
            "bench paper --runs holding the user's files",
            ["bench", "paper", "--seeds", "1", "--episodes", "2", "--out", "{d}/res", "--runs", "{d}/mine"],
            says=("--runs", "thesis.tex"),
            fix="move those files away",
            setup=user_files("mine", ["thesis.tex"]),
            keep=("mine",),
        ),
        Case(
            k,
            "bench paper --out holding the user's files named like the bench's tables",
            ["bench", "paper", "--seeds", "1", "--episodes", "2", "--out", "{d}/mine", "--runs", "{d}/runs"],
            says=("--out", "table3.md, timing.md"),
            fix="move those files away",
            setup=user_files("mine", ["table3.md", "timing.md"]),
            keep=("mine",),
        ),
        Case(
            k,
            "noise snapshot -o an existing file",
            ["noise", "snapshot", "--backend", "fake_manila", "-o", "{d}/pin.json"],
            says=("--output", "pin.json", "an existing file"),
            fix="choose another name",
            setup=write("pin.json", '{"pinned": true}\n'),
            keep=("pin.json",),
        ),
        Case(
            k,
            "instance generate -o an existing file",
            ["instance", "generate", "-o", "{d}/mine.json"],
            says=("--output", "mine.json", "an existing file"),
            fix="choose another name",
            setup=write("mine.json", '{"mine": true}\n'),
            keep=("mine.json",),
        ),
    ]


def silent_corruption() -> list[Case]:
    k = "silent corruption"
    return [
        Case(k, "two train runs on one --out", [], runner=two_writers, serial=True, timeout=400),
        Case(k, "two sweeps on one --out", [], runner=two_sweeps, serial=True, timeout=400),
        Case(
            k, "a lock whose process is gone is taken over with a notice", [], runner=stale_lock, timeout=300
        ),
    ]


def silent_defaults() -> list[Case]:
    k = "silent defaults"
    return [
        Case(
            k,
            "an empty spec file",
            ["sweep", "{d}/spec.toml", "--out", "{d}/out"],
            says=("SPEC", "spec.toml"),
            fix="[grid] agent",
            setup=write("spec.toml", ""),
        ),
        Case(
            k,
            "a spec with an empty [grid]",
            ["sweep", "{d}/spec.toml", "--out", "{d}/out"],
            says=("grid", "an empty [grid]"),
            fix="[grid] agent",
            setup=write("spec.toml", "[grid]\n"),
        ),
        Case(
            k,
            "a spec with only [train]",
            ["sweep", "{d}/spec.toml", "--out", "{d}/out"],
            says=("grid", "no [grid]"),
            fix="[grid] agent",
            setup=write("spec.toml", "[train]\nepisodes = 5\n"),
        ),
        Case(
            k,
            "a spec with only comments",
            ["sweep", "{d}/spec.toml", "--out", "{d}/out"],
            says=("SPEC", "spec.toml"),
            fix="[grid] agent",
            setup=write("spec.toml", "# nothing yet\n"),
        ),
    ]


def multi_line() -> list[Case]:
    k = "multi-line errors"
    resume = ["train", "--resume", "{d}/run", "--no-progress"]
    lacks = ("weights_only", "arbitrary code")
    cases = []
    for name, content in (
        ("random bytes", os.urandom(4096)),
        ("empty", b""),
        ("cut short", None),
        ("a JSON file", b'{"format": "qdt-checkpoint/1"}'),
    ):
        change = file_in_run("checkpoint.pt", content) if content is not None else cut_checkpoint
        cases.append(
            Case(
                k,
                f"train --resume, checkpoint.pt {name}",
                resume,
                code=1,
                says=("checkpoint.pt",),
                fix="resume from an intact copy",
                setup=copy_run("classical", change),
                out_lacks=lacks,
            )
        )
    cases.append(
        Case(
            k,
            "evaluate, checkpoint.pt random bytes",
            ["evaluate", "--run", "{d}/run"],
            code=1,
            says=("checkpoint.pt",),
            fix="resume from an intact copy",
            out_lacks=lacks,
            setup=copy_run("quantum", file_in_run("checkpoint.pt", os.urandom(4096))),
        )
    )
    return cases


def cut_checkpoint(run: Path) -> None:
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])


def smaller_issues() -> list[Case]:
    k = "smaller issues"
    spec = '[grid]\ninstance = ["paper", "missing.json"]\nlayers = [-1, 2]\n'
    ctrl = instance_with(set_key(("name",), "evil\x1b]0;pwned\x07\x1b[2J\rname"), "ctrl.json")
    escaped = ("evil\\x1b]0;pwned\\x07",)
    raw = ("\x1b", "\x07")
    return [
        Case(
            k,
            "circuit --backend fake_manila (a profile name)",
            [
                "circuit",
                "--qubits",
                "2",
                "--layers",
                "1",
                "--json",
                "--backend",
                "fake_manila",
                "--shots",
                "256",
            ],
            code=0,
            out_has=('"probs"', '"transpiled"'),
        ),
        Case(
            k,
            "circuit --backend backends/aer.toml (a profile path)",
            ["circuit", "--qubits", "2", "--layers", "1", "--json", "--backend", "{s}/aer.toml"],
            code=0,
            out_has=('"probs"',),
        ),
        Case(
            k,
            "dry-run invalid cells carry their reason",
            ["sweep", "{d}/spec.toml", "--out", "{d}/out", "--dry-run"],
            code=0,
            setup=write("spec.toml", spec),
            out_has=("(invalid): config: --layers", "(invalid): instance missing.json", "3 invalid"),
            check=lambda d, s, done: "the dry run wrote files" if (d / "out").exists() else None,
        ),
        Case(
            k,
            "infer --backend ibm_torino without an account",
            ["infer", "--run", "{d}/run", "--backend", "ibm_torino"],
            says=("IBM Quantum account", "QISKIT_IBM_TOKEN"),
            fix="never takes a token on the command line",
            setup=copy_run("quantum"),
        ),
        Case(
            k,
            "control characters in an instance name: instance show",
            ["instance", "show", "{d}/ctrl.json"],
            code=0,
            setup=ctrl,
            out_has=escaped,
            out_lacks=raw,
        ),
        Case(
            k,
            "control characters in an instance name: optimum",
            ["optimum", "{d}/ctrl.json"],
            code=0,
            setup=ctrl,
            out_has=escaped,
            out_lacks=raw,
        ),
        Case(
            k,
            "control characters in an instance name: score",
            ["score", "{d}/ctrl.json", "--assignment", "0,0,0,1"],
            code=0,
            setup=ctrl,
            out_has=escaped,
            out_lacks=raw,
        ),
        Case(
            k,
            "control characters in a file name",
            ["instance", "show", "{d}/a\x1b[31mb.json"],
            says=("FILE", "a\\x1b[31mb.json"),
            fix="give FILE an existing instance file",
            out_lacks=raw,
        ),
        Case(
            k,
            "describe --layers 300 names the flag",
            ["describe", "--layers", "1,300"],
            says=("--layers", "300"),
            fix="at most 200 layers",
            out_lacks=("n_layers",),
        ),
        Case(
            k,
            "describe --users 1000 --servers 10 names the flags",
            ["describe", "--users", "1000", "--servers", "10"],
            says=("--users/--servers", "N·M = 10000"),
            fix="fewer users or servers",
            out_lacks=("input_width",),
        ),
        Case(
            k,
            "instance generate -o /tmp names /tmp, not a temporary file",
            ["instance", "generate", "-o", "/tmp"],
            says=("--output", "/tmp", "an existing folder"),
            fix="choose another name",
            out_lacks=(".tmp",),
        ),
        Case(
            k,
            "sweep --ray-address host:port of a token-authenticated head",
            [],
            runner=ray_forms,
            serial=True,
            timeout=900,
        ),
    ]


# ---- the kinds the issue found handled, and more -------------------------------------------------
def malformed_instances() -> list[Case]:
    k = "malformed instances"
    commands = [
        ["instance", "show", "{d}/inst.json"],
        ["optimum", "{d}/inst.json"],
        ["score", "{d}/inst.json", "--assignment", "0,0,0,1"],
        ["describe", "--instance", "{d}/inst.json"],
        ["train", "--instance", "{d}/inst.json", *TRAIN, "--episodes", "2", "--out", "{d}/run"],
    ]
    variants: list[tuple[str, Callable[[Path, Path], None], tuple[str, ...], str]] = [
        ("missing file", lambda d, s: None, ("inst.json",), "existing instance file"),
        ("empty file", write("inst.json", ""), ("inst.json", "valid JSON"), "valid JSON"),
        ("not JSON", write("inst.json", "users: 4"), ("inst.json", "valid JSON"), "valid JSON"),
        ("not UTF-8", write("inst.json", b"\xff\xfe{}"), ("inst.json", "UTF-8"), "UTF-8"),
        ("a JSON list", write("inst.json", "[1, 2]"), ("(top level)",), "a JSON object"),
        ("a folder", lambda d, s: (d / "inst.json").mkdir(), ("inst.json", "directory"), "instance file"),
        (
            "wrong format",
            instance_with(set_key(("format",), "other/9")),
            ("format", "other/9"),
            "qdt-instance/1",
        ),
        ("no users", instance_with(drop_key(("users",))), ("users", "required field"), "users"),
        (
            "negative data_bits",
            instance_with(set_key(("users", 0, "data_bits"), -5)),
            ("users[0].data_bits",),
            "data_bits",
        ),
        (
            "NaN literal",
            lambda d, s: (d / "inst.json").write_text(
                (s / "paper.json").read_text().replace('"bandwidth_hz": 10000000.0', '"bandwidth_hz": NaN')
            ),
            ("inst.json", "NaN"),
            "finite JSON numbers",
        ),
        (
            "Infinity literal",
            lambda d, s: (d / "inst.json").write_text(
                (s / "paper.json")
                .read_text()
                .replace('"bandwidth_hz": 10000000.0', '"bandwidth_hz": Infinity')
            ),
            ("inst.json", "Infinity"),
            "finite JSON numbers",
        ),
        (
            "channel_gain 3 rows",
            instance_with(lambda x: x.update(channel_gain=x["channel_gain"][:3])),
            ("channel_gain", "4 rows"),
            "channel_gain",
        ),
        (
            "compute_rate row too long",
            instance_with(lambda x: x["compute_rate"][1].append(1.0)),
            ("compute_rate[1]",),
            "compute_rate",
        ),
        (
            "max_users 0",
            instance_with(set_key(("servers", 0, "max_users"), 0)),
            ("servers[0].max_users",),
            "max_users",
        ),
        (
            "max_users 1.5",
            instance_with(set_key(("servers", 1, "max_users"), 1.5)),
            ("servers[1].max_users",),
            "max_users",
        ),
        (
            "deadline -1",
            instance_with(set_key(("users", 2, "deadline_s"), -1)),
            ("users[2].deadline_s",),
            "deadline_s",
        ),
        ("unknown key", instance_with(set_key(("colour",), "blue")), ("colour",), "known fields"),
        ("no servers", instance_with(set_key(("servers",), [])), ("servers",), "servers"),
        ("users a string", instance_with(set_key(("users",), "four")), ("users",), "users"),
        (
            "a number as a string",
            instance_with(set_key(("bandwidth_hz",), "10e6")),
            ("bandwidth_hz",),
            "bandwidth_hz",
        ),
        ("a boolean", instance_with(set_key(("noise_power_w",), True)), ("noise_power_w",), "noise_power_w"),
        (
            "1e400",
            lambda d, s: (d / "inst.json").write_text(
                (s / "paper.json").read_text().replace('"bandwidth_hz": 10000000.0', '"bandwidth_hz": 1e400')
            ),
            ("inst.json",),
            "finite",
        ),
        ("bandwidth 0", instance_with(set_key(("bandwidth_hz",), 0)), ("bandwidth_hz",), "bandwidth_hz"),
        (
            "tx_power 1e-300 (no rate)",
            instance_with(set_key(("users", 1, "tx_power_w"), 1e-300)),
            ("latency T[1]", "tx_power_w"),
            "users[1].data_bits and .tx_power_w",
        ),
        (
            "a file over 256 MiB",
            lambda d, s: os.truncate(_touch(d / "inst.json"), 300 * 2**20),
            ("inst.json", "256 MiB"),
            "user-server pairs",
        ),
        ("150000 users", huge_users, ("users", "100,000"), "split the users"),
    ]
    out = []
    for index, (name, setup, says, fix) in enumerate(variants):
        argv = commands[index % len(commands)]
        out.append(Case(k, f"{name} ({argv[0]})", argv, says=says, fix=fix, setup=setup, keep=()))
    return out


def _touch(path: Path) -> Path:
    path.write_bytes(b"{")
    return path


def huge_users(d: Path, s: Path) -> None:
    data = json.loads((s / "paper.json").read_text())
    n = 150_000
    data["users"] = data["users"][:1] * n
    data["channel_gain"] = data["channel_gain"][:1] * n
    data["compute_rate"] = data["compute_rate"][:1] * n
    (d / "inst.json").write_text(json.dumps(data))


def training_options() -> list[Case]:
    k = "training options"
    base = ["train", "--preset", "paper", "--out", "{d}/run", "--no-progress"]
    between = "a finite number in [0, 1]"
    options = [  # the flags, what the line must name, a piece of its fix
        (["--episodes", "0"], "--episodes", "give --episodes an integer >= 1"),
        (["--episodes", "-3"], "--episodes", "give --episodes an integer >= 1"),
        (["--episodes", "2000000"], "--episodes", "use at most 1,000,000"),
        (["--layers", "-1"], "--layers", "give --layers an integer >= 0"),
        (["--batch-size", "0"], "--batch-size", "give --batch-size an integer >= 1"),
        (["--batch-size", "100000"], "--batch-size", "use at most 16,384"),
        (["--replay-size", "0"], "--replay-size", "give --replay-size an integer >= 1"),
        (["--replay-size", "9999999999"], "--replay-size", "use at most 1,000,000"),
        (["--batch-size", "64", "--replay-size", "32"], "--batch-size", "at most replay_size = 32"),
        (["--lr", "-1"], "--lr", "give --lr a finite number in (0, inf]"),
        (["--lr", "nan"], "--lr", "give --lr a finite number in (0, inf]"),
        (["--gamma", "1.5"], "--gamma", f"give --gamma {between}"),
        (["--tau", "2"], "--tau", "give --tau a finite number in (0, 1]"),
        (["--seed", "-1"], "--seed", "give --seed an integer >= 0"),
        (["--backend", "no-such-backend"], "--backend", "qdt backends list"),
        (["--noise", "depol-1e-3"], "--noise", "use density or aer for noise"),
        (["--shots", "0", "--backend", "aer"], "--shots", "leave shots out for exact results"),
        (["--steps-per-episode", "0"], "--steps-per-episode", "give --steps-per-episode an integer >= 1"),
        (["--checkpoint-every", "0"], "--checkpoint-every", "give --checkpoint-every an integer >= 1"),
        (["--threads", "0"], "--threads", "give --threads an integer >= 1"),
        (["--explore-start", "-0.5"], "--explore-start", f"give --explore-start {between}"),
        (["--explore-fraction", "3"], "--explore-fraction", f"give --explore-fraction {between}"),
    ]
    return [
        Case(
            k,
            " ".join(extra),
            [*base, *extra],
            says=(flag,),
            fix=fix,
            check=lambda d, s, done: "wrote a run folder" if (d / "run").exists() else None,
        )
        for extra, flag, fix in options
    ]


def run_folders() -> list[Case]:
    k = "run folders"
    resume = ["train", "--resume", "{d}/run", "--no-progress"]
    return [
        Case(
            k,
            "resume a folder without config.json",
            resume,
            says=("{d}/run", "config.json"),
            fix="start a new run with --out",
            setup=user_files("run", ["notes.txt"]),
            keep=("run",),
        ),
        Case(
            k,
            "resume a missing folder",
            resume,
            says=("{d}/run", "config.json"),
            fix="start a new run with --out",
        ),
        Case(
            k,
            "evaluate a missing folder",
            ["evaluate", "--run", "{d}/nothing"],
            says=("--run", "nothing"),
            fix="give --run a run folder",
        ),
        Case(
            k,
            "resume without checkpoint.pt",
            resume,
            code=1,
            says=("checkpoint.pt",),
            fix="checkpoint-every",
            setup=copy_run("classical", remove_in_run("checkpoint.pt")),
        ),
        Case(
            k,
            "checkpoint.pt is a folder",
            resume,
            code=1,
            says=("checkpoint.pt",),
            fix="resume from an intact copy",
            setup=copy_run("classical", folder_in_run("checkpoint.pt")),
        ),
        Case(
            k,
            "a malicious pickle in checkpoint.pt",
            resume,
            code=1,
            says=("checkpoint.pt",),
            fix="resume from an intact copy",
            setup=copy_run("classical", malicious_checkpoint),
            check=no_marker,
        ),
        Case(
            k,
            "a checkpoint of another run",
            resume,
            code=1,
            says=("checkpoint.pt", "does not fit"),
            fix="resume from an intact copy",
            setup=copy_run("classical", swap_checkpoint),
        ),
        Case(
            k,
            "metrics.jsonl with a damaged line",
            resume,
            says=("metrics.jsonl:2",),
            fix="restore the run folder",
            setup=copy_run("classical", damage_metrics),
        ),
        Case(
            k,
            "metrics.jsonl cut short",
            resume,
            says=("metrics.jsonl", "lines"),
            fix="restore the run folder",
            setup=copy_run("classical", file_in_run("metrics.jsonl", '{"episode": 1, "reward_mean": 0}\n')),
        ),
        Case(
            k,
            "config.json a JSON list",
            resume,
            says=("config.json", "config"),
            fix="start a new run with --out",
            setup=copy_run("classical", file_in_run("config.json", "[1, 2, 3]")),
        ),
        Case(
            k,
            "config.json with an unknown field",
            resume,
            says=("config.json", "config.colour"),
            setup=copy_run("classical", edit_config(set_key(("config", "colour"), "blue"))),
            fix="start a new run with --out",
        ),
        Case(
            k,
            "config.json with layers -4",
            ["evaluate", "--run", "{d}/run"],
            says=("config.json", "layers"),
            setup=copy_run("quantum", edit_config(set_key(("config", "layers"), -4))),
            fix="start a new run with --out",
        ),
        Case(
            k,
            "config.json whose instance is damaged",
            resume,
            says=("config.json", "users[0].data_bits"),
            setup=copy_run("classical", edit_config(set_key(("instance", "users", 0, "data_bits"), "x"))),
            fix="start a new run with --out",
        ),
        Case(
            k,
            "resume changing a setting",
            [*resume, "--layers", "3"],
            says=("--layers",),
            fix="resume without changing",
            setup=copy_run("classical"),
            keep=("run",),
        ),
        Case(
            k,
            "resume with another --out",
            [*resume, "--out", "{d}/elsewhere"],
            says=("--out", "elsewhere"),
            setup=copy_run("classical"),
            keep=("run",),
            fix="leave out --out",
        ),
        Case(
            k,
            "evaluate a classical run",
            ["evaluate", "--run", "{d}/run"],
            says=("--run", "classical"),
            fix="give --run a run of quantum agents",
            setup=copy_run("classical"),
        ),
        Case(
            k,
            "SIGKILL mid-run, then --resume gives the uninterrupted result",
            [],
            runner=killed_then_resumed,
            serial=True,
            timeout=600,
        ),
    ]


def swap_checkpoint(run: Path) -> None:
    other = run.parent / "other"
    subprocess.run(
        [
            QDT,
            "train",
            "--preset",
            "paper",
            "--agent",
            "quantum",
            "--layers",
            "1",
            "--episodes",
            "2",
            "--steps-per-episode",
            "2",
            "--batch-size",
            "4",
            "--replay-size",
            "16",
            "--no-progress",
            "--out",
            str(other),
        ],
        check=True,
        capture_output=True,
        env=clean_env(run.parent / "home"),
    )
    shutil.copy(other / "checkpoint.pt", run / "checkpoint.pt")
    shutil.rmtree(other)


def damage_metrics(run: Path) -> None:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines[1] = '{"episode": "two"'
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def file_system() -> list[Case]:
    k = "file system"
    quick = [*TRAIN, "--episodes", "2"]
    return [
        Case(
            k,
            "train --out below a file",
            ["train", *quick, "--out", "{d}/afile/run"],
            says=("--out", "afile"),
            fix="is a file",
            setup=write("afile", "x"),
            keep=("afile",),
        ),
        Case(
            k,
            "train --out with no permission",
            ["train", *quick, "--out", "{d}/locked/run"],
            says=("--out", "locked"),
            fix="check the permissions",
            setup=locked("locked"),
            env={"QDT_AS": "nobody"},
        ),
        Case(
            k,
            "instance generate -o with no permission",
            ["instance", "generate", "-o", "{d}/locked/i.json"],
            says=("--output", "locked"),
            fix="check the permissions",
            setup=locked("locked"),
            env={"QDT_AS": "nobody"},
        ),
        Case(
            k,
            "instance show of a file without read permission",
            ["instance", "show", "{d}/secret.json"],
            says=("FILE", "secret.json"),
            fix="give FILE a readable",
            setup=unreadable("secret.json"),
            env={"QDT_AS": "nobody"},
        ),
        Case(
            k,
            "train --out on a full disk",
            ["train", *TRAIN, "--episodes", "40", "--out", "{d}/full/run"],
            code=1,
            says=("full/run", "No space left"),
            fix="free disk space",
            setup=small_disk("full"),
        ),
        Case(
            k,
            "noise snapshot -o on a full disk",
            ["noise", "snapshot", "--backend", "fake_manila", "-o", "{d}/full/s.json"],
            code=1,
            says=("s.json", "No space left"),
            fix="free disk space",
            setup=small_disk("full", full=True),
        ),
        Case(
            k,
            "sweep --out on a read-only file system",
            ["sweep", "{s}/tiny.toml", "--out", "{d}/ro/sweep"],
            says=("--out", "read-only"),
            fix="writable disk",
            setup=read_only("ro"),
        ),
        Case(
            k,
            "noise snapshot -o on a read-only file system",
            ["noise", "snapshot", "--backend", "fake_manila", "-o", "{d}/ro/s.json"],
            says=("--output", "read-only"),
            fix="writable disk",
            setup=read_only("ro"),
        ),
        Case(
            k,
            "demo --out /proc/qdt",
            ["demo", "--episodes", "1", "--no-device", "--out", "/proc/qdt"],
            says=("--out", "/proc"),
            fix="choose a path on a disk",
        ),
        Case(
            k,
            "sweep --out /sys/qdt",
            ["sweep", "{s}/tiny.toml", "--out", "/sys/qdt"],
            says=("--out", "/sys"),
            fix="choose a path on a disk",
        ),
        Case(
            k,
            "instance generate -o a name too long",
            ["instance", "generate", "-o", "{d}/" + "n" * 300 + ".json"],
            says=("nnnn",),
            fix="shorten the file or folder name",
        ),
        Case(
            k,
            "instance show through a symlink loop",
            ["instance", "show", "{d}/loop/x.json"],
            setup=symlink_loop,
            says=("loop", "symbolic links"),
            fix="give FILE a readable",
        ),
        Case(
            k,
            "sweep SPEC is a folder",
            ["sweep", "{d}/spec.toml", "--out", "{d}/out"],
            setup=lambda d, s: (d / "spec.toml").mkdir(),
            says=("SPEC", "spec.toml", "Is a directory"),
            fix="give SPEC a readable UTF-8 TOML file",
        ),
        Case(
            k,
            "noise snapshot -o below a file",
            ["noise", "snapshot", "--backend", "fake_manila", "-o", "{d}/f/s.json"],
            says=("--output", "f"),
            fix="is a file",
            setup=write("f", "x"),
            keep=("f",),
        ),
        Case(
            k,
            "train --out a path inside the run's own file",
            ["train", *quick, "--out", "{d}/run/config.json/x"],
            says=("--out", "config.json"),
            fix="is a file",
            setup=copy_run("classical"),
            keep=("run",),
        ),
    ]


@contextmanager
def _mount(folder: Path, options: str) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


MOUNTS: list[Path] = []  # tmpfs mounts the cases made, unmounted at the end


def read_only(name: str) -> Callable[[Path, Path], None]:
    def setup(d: Path, s: Path) -> None:
        (d / name).mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(d / name)], check=True)
        MOUNTS.append(d / name)

    return setup


def small_disk(name: str, kib: int = 64, full: bool = False) -> Callable[[Path, Path], None]:
    """A tmpfs of ``kib`` KiB at ``name``; with ``full``, filled up to the last byte."""

    def setup(d: Path, s: Path) -> None:
        (d / name).mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(d / name)], check=True)
        MOUNTS.append(d / name)
        if full:
            with open(d / name / "filler", "wb", buffering=0) as stream:
                try:
                    while stream.write(b"\0" * 1024):
                        pass
                except OSError:
                    pass

    return setup


def locked(name: str) -> Callable[[Path, Path], None]:
    def setup(d: Path, s: Path) -> None:
        (d / name).mkdir()
        (d / name).chmod(0o555)

    return setup


def unreadable(name: str) -> Callable[[Path, Path], None]:
    def setup(d: Path, s: Path) -> None:
        shutil.copy(s / "paper.json", d / name)
        (d / name).chmod(0o000)

    return setup


def symlink_loop(d: Path, s: Path) -> None:
    (d / "loop").symlink_to(d / "loop")


FAKE_MANILA_PROFILE = (
    'schema = "qdt-backend/1"\nname = "b"\nexecutor = "ibm"\n'
    '[device]\nprovider = "fake"\nname = "fake_manila"\n'
)


def profiles() -> list[Case]:
    k = "profiles"
    circuit = ["circuit", "--qubits", "2", "--layers", "1", "--json"]
    backend = [*circuit, "--backend", "{d}/b.toml"]
    noise = [*circuit, "--backend", "density", "--noise", "{d}/n.toml"]
    return [
        Case(
            k,
            "--backend an unknown name",
            [*circuit, "--backend", "nope"],
            says=("nope",),
            fix="qdt backends list",
        ),
        Case(
            k,
            "--backend a missing .toml",
            [*circuit, "--backend", "{d}/gone.toml"],
            says=("--backend", "gone.toml"),
            fix="qdt backends list",
        ),
        Case(
            k,
            "backend profile not TOML",
            backend,
            setup=write("b.toml", "executor = \n"),
            says=("b.toml", "line 1"),
            fix="valid TOML)",
        ),
        Case(
            k,
            "backend profile unknown executor",
            backend,
            says=("b.toml", "executor"),
            fix="executors",
            setup=write("b.toml", 'schema = "qdt-backend/1"\nname = "b"\nexecutor = "gpu"\n'),
        ),
        Case(
            k,
            "backend profile shots 0",
            backend,
            says=("b.toml", "shots"),
            setup=write("b.toml", 'schema = "qdt-backend/1"\nname = "b"\nexecutor = "aer"\nshots = 0\n'),
            fix="leave shots out for exact results",
        ),
        Case(
            k,
            "backend profile unknown key",
            backend,
            says=("b.toml", "colour"),
            setup=write("b.toml", 'schema = "qdt-backend/1"\nname = "b"\nexecutor = "aer"\ncolour = 1\n'),
            fix="give colour one of description",
        ),
        Case(
            k,
            "ibm profile with fractional gates on a device without rx",
            backend,
            says=("b.toml", "device.fractional_gates"),
            setup=write(
                "b.toml",
                FAKE_MANILA_PROFILE + "fractional_gates = true\n",
            ),
            fix="set fractional_gates = false",
        ),
        Case(
            k,
            "ibm profile with an unknown primitive",
            backend,
            says=("b.toml", "runtime.primitive"),
            setup=write(
                "b.toml",
                FAKE_MANILA_PROFILE + '[runtime]\nprimitive = "exectuor"\n',
            ),
            fix="use 'sampler' (the default) or 'executor'",
        ),
        Case(
            k,
            "ibm profile with the Executor primitive and twirling",
            backend,
            says=("b.toml", "error_suppression"),
            setup=write(
                "b.toml",
                FAKE_MANILA_PROFILE
                + '[runtime]\nprimitive = "executor"\n[error_suppression]\ntwirling_gates = true\n',
            ),
            fix="runtime.primitive = 'sampler'",
        ),
        Case(
            k,
            "backend profile wrong schema",
            backend,
            says=("b.toml", "schema"),
            setup=write("b.toml", 'schema = "qdt-backend/9"\nname = "b"\nexecutor = "aer"\n'),
            fix="give schema 'qdt-backend/1'",
        ),
        Case(
            k,
            "--noise an unknown name",
            [*circuit, "--backend", "density", "--noise", "nope"],
            says=("nope",),
            fix="qdt noise list",
        ),
        Case(
            k,
            "noise probability 1.5",
            noise,
            says=("n.toml", "depolarizing.one_qubit"),
            setup=write("n.toml", 'schema = "qdt-noise/1"\n[depolarizing]\none_qubit = 1.5\n'),
            fix="give depolarizing.one_qubit a probability in [0, 1]",
        ),
        Case(
            k,
            "noise T2 > 2 T1",
            noise,
            says=("n.toml", "t2_us"),
            setup=write(
                "n.toml",
                'schema = "qdt-noise/1"\n[thermal_relaxation]\nt1_us = 100\nt2_us = 300\n'
                "gate_time_1q_ns = 50\ngate_time_2q_ns = 300\n",
            ),
            fix="lower t2_us or raise t1_us",
        ),
        Case(
            k,
            "noise readout row not summing to 1",
            noise,
            setup=write(
                "n.toml", 'schema = "qdt-noise/1"\n[readout]\nmatrices = [[[0.9, 0.2], [0.1, 0.9]]]\n'
            ),
            says=("n.toml", "readout.matrices[0][0]"),
            fix="a row that sums to 1",
        ),
        Case(
            k,
            "noise profile NaN",
            noise,
            says=("n.toml", "one_qubit"),
            setup=write("n.toml", 'schema = "qdt-noise/1"\n[depolarizing]\none_qubit = nan\n'),
            fix="give depolarizing.one_qubit a finite number",
        ),
        Case(
            k,
            "--noise device:nope",
            [*circuit, "--backend", "aer", "--noise", "device:nope"],
            says=("--noise", "nope"),
            fix="qdt noise list --devices",
        ),
        Case(
            k,
            "--noise on statevector",
            [*circuit, "--noise", "depol-1e-3"],
            says=("--noise",),
            fix="--backend aer",
        ),
        Case(
            k,
            "--shots on statevector",
            [*circuit, "--shots", "100"],
            says=("--shots",),
            fix="leave out --shots for exact results",
        ),
        Case(
            k,
            "noise show a snapshot cut short",
            ["noise", "show", "{d}/snap.json"],
            says=("snap.json",),
            setup=write("snap.json", '{"format": "qdt-noise-snapshot/1", "backend": '),
            fix="a JSON device snapshot",
        ),
        Case(
            k,
            "backends show ibm_<device> needs no account",
            ["backends", "show", "ibm_nowhere", "--json"],
            code=0,
            out_has=('"remote": true',),
        ),
    ]


def accounts() -> list[Case]:
    k = "accounts"
    proxy = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    return [
        Case(
            k,
            "a token, no network: says network, never the token",
            ["infer", "--run", "{d}/run", "--backend", "ibm_torino"],
            says=("cannot reach the service",),
            fix="network problem, not a token problem",
            setup=copy_run("quantum"),
            env={"QISKIT_IBM_TOKEN": CANARY, **proxy},
            out_lacks=(CANARY,),
            check=canary_nowhere,
        ),
        Case(
            k,
            "jobs list of a run without jobs.jsonl",
            ["jobs", "list", "--run", "{d}/run"],
            says=("--run", "jobs.jsonl"),
            setup=copy_run("quantum"),
            fix="run `qdt infer",
        ),
        Case(
            k,
            "jobs list with a damaged line",
            ["jobs", "list", "--run", "{d}/run"],
            says=("jobs.jsonl:1", "one JSON object per line"),
            fix="delete that line",
            setup=copy_run("quantum", file_in_run("jobs.jsonl", '[1, 2]\n{"event": "x"}\n')),
        ),
        Case(
            k,
            "jobs status of an unknown id",
            ["jobs", "status", "--run", "{d}/run", "job-x"],
            says=("JOB_ID", "job-x"),
            setup=copy_run("quantum", file_in_run("jobs.jsonl", '{"event": "x"}\n')),
            fix="give JOB_ID a job in",
        ),
        Case(
            k,
            "jobs fetch of an id with a slash",
            ["jobs", "fetch", "--run", "{d}/run", "../etc"],
            says=("JOB_ID", "../etc"),
            setup=copy_run("quantum", file_in_run("jobs.jsonl", '{"event": "x"}\n')),
            fix="give JOB_ID a Runtime job id",
        ),
    ]


def canary_nowhere(d: Path, s: Path, done: subprocess.CompletedProcess[str]) -> str | None:
    for path in d.rglob("*"):
        if path.is_file() and CANARY.encode() in path.read_bytes():
            return f"the token is in {path}"
    return None


def sweeps() -> list[Case]:
    k = "sweeps"
    sweep = ["sweep", "{d}/spec.toml", "--out", "{d}/out", "--no-progress"]
    return [
        Case(
            k,
            "a missing spec",
            ["sweep", "{d}/none.toml", "--out", "{d}/out"],
            says=("SPEC", "none.toml"),
            fix="give SPEC an existing sweep spec",
        ),
        Case(
            k,
            "an unknown section",
            sweep,
            says=("colours",),
            setup=write("spec.toml", "[colours]\nred = 1\n"),
            fix="one of the sections [sweep], [grid], [train]",
        ),
        Case(
            k,
            "an unknown grid key",
            sweep,
            says=("grid.colour",),
            fix="qdt/rl/config.py",
            setup=write("spec.toml", '[grid]\ncolour = ["red"]\n'),
        ),
        Case(
            k,
            "an empty grid list",
            sweep,
            says=("grid.seed",),
            setup=write("spec.toml", "[grid]\nseed = []\n"),
            fix="give grid.seed a non-empty list",
        ),
        Case(
            k,
            "repeated grid values",
            sweep,
            says=("grid.seed",),
            setup=write("spec.toml", "[grid]\nseed = [1, 1]\n"),
            fix="give grid.seed a list without repeated values",
        ),
        Case(
            k,
            "a list in [train]",
            sweep,
            says=("train.episodes",),
            fix="lists of values go in [grid]",
            setup=write("spec.toml", "[grid]\nseed = [1]\n[train]\nepisodes = [1, 2]\n"),
        ),
        Case(
            k,
            "max_retries -1",
            sweep,
            says=("sweep.max_retries",),
            setup=write("spec.toml", "[sweep]\nmax_retries = -1\n[grid]\nseed = [1]\n"),
            fix="give sweep.max_retries an integer >= 0",
        ),
        Case(
            k,
            "--max-parallel 0",
            [*sweep, "--max-parallel", "0"],
            says=("--max-parallel",),
            setup=write("spec.toml", "[grid]\nseed = [1]\n"),
            fix="give --max-parallel an integer >= 1",
        ),
        Case(
            k,
            "--ray-address where nothing listens",
            [*sweep, "--ray-address", "127.0.0.1:{port}"],
            says=("--ray-address", "nothing answers"),
            fix="ray start --head",
            setup=write("spec.toml", "[grid]\nseed = [1]\n"),
        ),
        Case(
            k,
            "--ray-address ray:// where nothing listens",
            [*sweep, "--ray-address", "ray://127.0.0.1:{port}"],
            says=("--ray-address",),
            fix="ray start --head",
            setup=write("spec.toml", "[grid]\nseed = [1]\n"),
        ),
        Case(
            k,
            "a generator table without seed",
            sweep,
            says=("grid.instance[0].seed",),
            setup=write("spec.toml", "[grid]\ninstance = [{ users = 4, servers = 2 }]\n"),
            fix="the generator seed of the instance",
        ),
        Case(k, "an invalid cell is recorded, the rest runs", [], runner=failed_cell, timeout=400),
    ]


def arguments() -> list[Case]:
    k = "arguments"
    return [
        Case(k, "an unknown command", ["frobnicate"], says=("invalid choice", "frobnicate"), fix="--help"),
        Case(
            k,
            "an unknown option",
            ["optimum", "--preset", "paper", "--colour"],
            says=("--colour",),
            fix="--help",
        ),
        Case(
            k,
            "a missing required option",
            ["score", "--preset", "paper"],
            says=("--assignment",),
            fix="--help",
        ),
        Case(
            k,
            "--users abc",
            ["instance", "generate", "--users", "abc"],
            says=("--users", "abc"),
            fix="--help",
        ),
        Case(
            k,
            "--users 0",
            ["instance", "generate", "--users", "0"],
            says=("--users",),
            fix="give --users an integer >= 1",
        ),
        Case(
            k,
            "--users 10^9",
            ["instance", "generate", "--users", "1000000000"],
            says=("users", "100,000"),
            fix="split the users",
        ),
        Case(
            k,
            "--assignment too short",
            ["score", "--preset", "paper", "--assignment", "0,1"],
            says=("--assignment",),
            fix="4 server indices",
        ),
        Case(
            k,
            "--assignment server 7",
            ["score", "--preset", "paper", "--assignment", "0,1,7,0"],
            says=("--assignment[2]",),
            fix="servers are numbered from 0",
        ),
        Case(
            k,
            "--time-limit nan",
            ["optimum", "--preset", "paper", "--time-limit", "nan"],
            says=("--time-limit",),
            fix="give --time-limit a finite number of seconds > 0",
        ),
        Case(
            k,
            "--inputs too many",
            ["circuit", "--qubits", "1", "--layers", "1", "--json", "--inputs", "1,2,3"],
            says=("--inputs",),
            fix="at most 2^Q = 2 values",
        ),
        Case(
            k,
            "--weights a word",
            ["circuit", "--qubits", "1", "--layers", "1", "--json", "--weights", "x"],
            says=("--weights",),
            fix="give --weights comma-separated numbers",
        ),
        Case(
            k,
            "FILE and --preset",
            ["optimum", "{s}/paper.json", "--preset", "paper"],
            says=("FILE/--preset",),
            fix="give an instance FILE or --preset paper",
        ),
        Case(
            k,
            "evaluate --repeats 0",
            ["evaluate", "--run", "{d}/run", "--repeats", "0"],
            says=("--repeats",),
            setup=copy_run("quantum"),
            fix="give --repeats an integer >= 1",
        ),
        Case(
            k,
            "infer --timeout -1",
            ["infer", "--run", "{d}/run", "--backend", "fake_manila", "--timeout", "-1"],
            says=("--timeout",),
            setup=copy_run("quantum"),
            fix="give --timeout a positive number of seconds",
        ),
    ]


# ---- cases that are more than one command ---------------------------------------------------------
def two_writers(case: Case, d: Path, s: Path) -> Outcome:
    """The first `qdt train` holds --out; a second one started meanwhile is refused naming its pid,
    and the folder ends as the first run alone would leave it."""
    start = time.perf_counter()
    out = d / "run"
    first = popen(["train", *TRAIN, "--episodes", "300", "--seed", "0", "--out", str(out)], d)
    try:
        if not wait_for(lambda: (out / ".qdt.lock").exists() and (out / "config.json").exists(), 120):
            return fail(case, start, "the first run never started writing")
        done = run(["train", *TRAIN, "--episodes", "300", "--seed", "1", "--out", str(out)], d, case.timeout)
        problem = line_problem(done, 2, ("--out", "in use", f"pid {first.pid}"), "wait for that process")
        first.wait(timeout=case.timeout)
    finally:
        stop(first)
    if problem is None and first.returncode != 0:
        problem = f"the first run failed: {first.returncode}"
    if problem is None:
        config = json.loads((out / "config.json").read_text())["config"]
        metrics = (out / "metrics.jsonl").read_text().splitlines()
        summary = json.loads((out / "summary.json").read_text())
        if config["seed"] != 0 or summary["config"]["seed"] != 0 or len(metrics) != 300:
            seeds = f"{config['seed']}/{summary['config']['seed']}"
            problem = f"the folder mixes runs: seeds {seeds}, {len(metrics)} lines"
    return Outcome(
        case, problem is None, problem or "", done.returncode, first_line(done), time.perf_counter() - start
    )


def two_sweeps(case: Case, d: Path, s: Path) -> Outcome:
    start = time.perf_counter()
    out = d / "sweep"
    spec = d / "spec.toml"
    spec.write_text((s / "tiny.toml").read_text().replace("episodes = 5", "episodes = 300"))
    first = popen(["sweep", str(spec), "--out", str(out), "--no-progress", "--max-parallel", "1"], d)
    try:
        if not wait_for(lambda: (out / "sweep.json").exists(), 180):
            return fail(case, start, "the first sweep never started")
        before = snapshot(out / "sweep.json")
        done = run(["sweep", str(spec), "--out", str(out), "--no-progress"], d, case.timeout)
        problem = line_problem(done, 2, ("--out", "in use", f"pid {first.pid}"), "wait for that process")
        if problem is None and snapshot(out / "sweep.json") != before:
            problem = "the second sweep wrote the manifest"
        first.wait(timeout=case.timeout)
    finally:
        stop(first)
    if problem is None and first.returncode != 0:
        problem = f"the first sweep failed: {first.returncode}"
    if problem is None:
        rows = (out / "results.csv").read_text().splitlines()
        if len(rows) != 2:
            problem = f"results.csv has {len(rows) - 1} rows for 1 cell"
    return Outcome(
        case, problem is None, problem or "", done.returncode, first_line(done), time.perf_counter() - start
    )


def stale_lock(case: Case, d: Path, s: Path) -> Outcome:
    start = time.perf_counter()
    out = d / "run"
    out.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (out / ".qdt.lock").write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname()}) + "\n")
    done = run(["train", *TRAIN, "--episodes", "2", "--out", str(out)], d, case.timeout)
    problem = None
    notice = [line for line in done.stderr.splitlines() if "taking over the lock" in line]
    if done.returncode != 0:
        problem = f"exit {done.returncode}: {first_line(done)}"
    elif len(notice) != 1 or f"pid {gone.pid}" not in notice[0]:
        problem = f"no notice naming pid {gone.pid}: {done.stderr.strip()[:200]}"
    elif (out / ".qdt.lock").exists() or not (out / "summary.json").exists():
        problem = "the run did not finish cleanly"
    return Outcome(
        case,
        problem is None,
        problem or "",
        done.returncode,
        notice[0] if notice else "",
        time.perf_counter() - start,
    )


def killed_then_resumed(case: Case, d: Path, s: Path) -> Outcome:
    start = time.perf_counter()
    args = [*TRAIN, "--episodes", "200", "--checkpoint-every", "10", "--seed", "4"]
    straight = run(["train", *args, "--json", "--out", str(d / "straight")], d, case.timeout)
    cut = popen(["train", *args, "--out", str(d / "cut")], d)
    try:
        if not wait_for(
            lambda: (d / "cut" / "checkpoint.pt").exists() and metric_lines(d / "cut") >= 30, 180
        ):
            return fail(case, start, "the run to cut never wrote a checkpoint")
        os.kill(cut.pid, signal.SIGKILL)
        cut.wait()
    finally:
        stop(cut)
    if (d / "cut" / "summary.json").exists():
        return fail(case, start, "the run finished before it was killed")
    resumed = run(["train", "--resume", str(d / "cut"), "--no-progress", "--json"], d, case.timeout)
    problem = None
    if straight.returncode != 0 or resumed.returncode != 0:
        problem = f"exit {straight.returncode}/{resumed.returncode}: {first_line(resumed)}"
    else:
        a, b = json.loads(straight.stdout), json.loads(resumed.stdout)
        a.pop("wall_s", None), b.pop("wall_s", None)
        if a != b:
            problem = "the resumed run differs from the uninterrupted one"
        episodes = [json.loads(x)["episode"] for x in (d / "cut" / "metrics.jsonl").read_text().splitlines()]
        if episodes != list(range(1, 201)):
            problem = "metrics.jsonl does not hold every episode once"
    return Outcome(
        case,
        problem is None,
        problem or "",
        resumed.returncode,
        first_line(resumed),
        time.perf_counter() - start,
    )


def failed_cell(case: Case, d: Path, s: Path) -> Outcome:
    """A grid with an invalid cell: the sweep records it failed with its reason, runs the rest, exits 1."""
    start = time.perf_counter()
    spec = d / "spec.toml"
    spec.write_text(
        (s / "tiny.toml")
        .read_text()
        .replace("seed = [0]", 'seed = [0]\nlayers = [-1, 1]\nagent = ["quantum"]')
        .replace('agent = ["classical"]\n', "")
    )
    done = run(["sweep", str(spec), "--out", str(d / "out"), "--no-progress"], d, case.timeout)
    problem = None
    rows = (
        list(csv.DictReader((d / "out" / "results.csv").open()))
        if (d / "out" / "results.csv").exists()
        else []
    )
    statuses = sorted(r["status"] for r in rows)
    if done.returncode != 1:
        problem = f"exit {done.returncode}, expected 1: {done.stderr.strip()[:200]}"
    elif statuses != ["failed", "ok"]:
        problem = f"rows {statuses}"
    elif not any("--layers" in r["error"] for r in rows if r["status"] == "failed"):
        problem = "the failed row does not say why"
    elif "Traceback" in done.stderr:
        problem = "a traceback"
    return Outcome(
        case, problem is None, problem or "", done.returncode, first_line(done), time.perf_counter() - start
    )


def ray_forms(case: Case, d: Path, s: Path) -> Outcome:
    """A Ray head (`ray start --head`, loopback, token authentication on, its own home folder):
    a sweep through host:port, ray://host:port and auto; and, from a home folder without the
    token, one line that says where the token goes."""
    start = time.perf_counter()
    home = d / "ray-home"
    home.mkdir()
    env = clean_env(home)
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, check=True, capture_output=True)
    temp = Path(tempfile.mkdtemp(prefix="qdt-rel-ray-", dir="/tmp"))
    port, client = free_port(), free_port()
    log = d / "head.log"
    head = subprocess.Popen(
        [
            RAY,
            "start",
            "--head",
            "--block",
            "--disable-usage-stats",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(port),
            "--ray-client-server-port",
            str(client),
            "--num-cpus",
            "2",
            "--include-dashboard",
            "false",
            "--temp-dir",
            str(temp),
        ],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    problems = []
    try:
        if not wait_for(lambda: "block forever" in log.read_text(), 120):
            return fail(case, start, f"ray start did not come up: {log.read_text()[-300:]}")
        for form, extra in (
            (f"127.0.0.1:{port}", {}),
            (f"ray://127.0.0.1:{client}", {}),
            ("auto", {"RAY_ADDRESS": f"127.0.0.1:{port}"}),
        ):
            out = d / f"sweep-{len(problems)}-{form.split(':')[0].strip('/')}"
            done = run(
                ["sweep", str(s / "tiny.toml"), "--out", str(out), "--ray-address", form, "--no-progress"],
                d,
                300,
                env={**extra, "HOME": str(home)},
            )
            if done.returncode != 0 or not (out / "results.csv").exists():
                problems.append(f"{form}: exit {done.returncode}: {done.stderr.strip()[-200:]}")
        nowhere = d / "no-token-home"
        nowhere.mkdir()
        done = run(
            [
                "sweep",
                str(s / "tiny.toml"),
                "--out",
                str(d / "refused"),
                "--ray-address",
                f"127.0.0.1:{port}",
                "--no-progress",
            ],
            d,
            300,
            env={"HOME": str(nowhere)},
        )
        problem = line_problem(
            done, 2, ("--ray-address", "refused a connection without a token"), "~/.ray/auth_token"
        )
        if problem:
            problems.append(f"no token: {problem}")
    finally:
        stop(head)
        shutil.rmtree(temp, ignore_errors=True)
    problem = "; ".join(problems)
    return Outcome(case, not problems, problem, 0 if not problems else None, "", time.perf_counter() - start)


# ---- running -------------------------------------------------------------------------------------
def clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without IBM, Ray or qdt settings, with HOME at ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QISKIT_IBM_", "RAY_", "QDT_"))}
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        env.pop(name, None)
    env.update(HOME=str(home), PYTHONUNBUFFERED="1", COLUMNS="120")
    return env


def command(argv: list[str], as_nobody: bool = False) -> list[str]:
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if as_nobody else []
    return [*prefix, QDT, *argv]


def run(
    argv: list[str], d: Path, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = clean_env(d / "home")
    as_nobody = False
    for key, value in (env or {}).items():
        if key == "QDT_AS":
            as_nobody = value == "nobody"
        else:
            full[key] = value
    return subprocess.run(
        command(argv, as_nobody),
        cwd=d,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        errors="replace",
    )


def popen(argv: list[str], d: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(argv),
        cwd=d,
        env=clean_env(d / "home"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[Any]) -> None:
    """End a process this script started (and its children), by pid."""
    if process.poll() is not None:
        return
    try:
        import psutil

        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except Exception:  # noqa: BLE001 - already gone
        tree = []
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for child in tree[1:]:
        try:
            child.kill()
        except Exception:  # noqa: BLE001 - already gone
            pass


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def metric_lines(run_dir: Path) -> int:
    try:
        return len((run_dir / "metrics.jsonl").read_text().splitlines())
    except OSError:
        return 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def snapshot(path: Path) -> dict[str, bytes | None]:
    """Every file below ``path`` (or the file itself) with its bytes; folders as None."""
    if not path.exists() and not path.is_symlink():
        return {}
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {str(p.relative_to(path)): None if p.is_dir() else p.read_bytes() for p in sorted(path.rglob("*"))}


def first_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    return lines[0] if lines else ""


def fail(case: Case, start: float, problem: str) -> Outcome:
    return Outcome(case, False, problem, None, "", time.perf_counter() - start)


def line_problem(
    done: subprocess.CompletedProcess[str], code: int, says: tuple[str, ...], fix: str | None
) -> str | None:
    """What is wrong with a failure's stderr, or None: one line, no traceback, the case's words."""
    if done.returncode != code:
        return f"exit {done.returncode}, expected {code}: {done.stderr.strip()[-300:]}"
    lines = done.stderr.strip().splitlines()
    if len(lines) != 1:
        return f"{len(lines)} lines on stderr: {done.stderr.strip()[:300]!r}"
    line = lines[0]
    if "Traceback" in done.stderr or "internal error" in line:
        return f"not an expected failure: {line}"
    if not line.startswith(("qdt ", "qdt:")) or ": error: " not in line:
        return f"not a qdt error line: {line}"
    missing = [word for word in (*says, *([fix] if fix else [])) if word not in line]
    if missing:
        return f"the line lacks {missing}: {line}"
    return None


def fill(text: str, d: Path, s: Path, port: int) -> str:
    return text.replace("{d}", str(d)).replace("{s}", str(s)).replace("{port}", str(port))


def run_case(case: Case, shared: Path, root: Path) -> Outcome:
    d = Path(tempfile.mkdtemp(prefix="case-", dir=root))
    d.chmod(0o755)  # cases run as user nobody must reach their folder
    (d / "home").mkdir()
    (d / "home").chmod(0o777)
    start = time.perf_counter()
    try:
        if case.setup is not None:
            case.setup(d, shared)
        if case.runner is not None:
            outcome = case.runner(case, d, shared)
        else:
            outcome = _run_plain(case, d, shared, start)
        leftovers = [
            str(p.relative_to(d / "home")) for p in (d / "home").rglob("*") if not allowed_at_home(p, d)
        ]
        if outcome.clean and leftovers:
            outcome = Outcome(
                case,
                False,
                f"wrote to the home folder: {leftovers[:3]}",
                outcome.code,
                outcome.line,
                outcome.seconds,
            )
        return outcome
    except Exception as error:  # noqa: BLE001 - a broken case is reported, not raised
        return Outcome(
            case,
            False,
            f"the case itself failed: {type(error).__name__}: {error}",
            None,
            "",
            time.perf_counter() - start,
        )
    finally:
        for mount in [m for m in MOUNTS if d in m.parents]:
            subprocess.run(["umount", "-l", str(mount)], check=False)
            MOUNTS.remove(mount)
        for path in d.rglob("*"):
            try:
                if not path.is_symlink():
                    path.chmod(0o755 if path.is_dir() else 0o644)
            except OSError:
                pass
        shutil.rmtree(d, ignore_errors=True)


# What may appear in a case's home folder: qdt's documented job store ($XDG_STATE_HOME/qdt/jobs,
# where jobs of commands without a run folder go) and the caches libraries keep (matplotlib's fonts).
ALLOWED_AT_HOME = ((".local",), (".local", "state"), (".local", "state", "qdt"), (".cache",), (".config",))


def allowed_at_home(path: Path, d: Path) -> bool:
    parts = path.relative_to(d / "home").parts
    return (
        parts in ALLOWED_AT_HOME
        or parts[:3] == (".local", "state", "qdt")
        or parts[0] in (".cache", ".config")
    )


def _run_plain(case: Case, d: Path, s: Path, start: float) -> Outcome:
    port = free_port()  # a port where nothing listens
    argv = [fill(word, d, s, port) for word in case.argv]
    before = {name: snapshot(d / name) for name in case.keep}
    try:
        done = run(argv, d, case.timeout, env={k: fill(v, d, s, port) for k, v in case.env.items()})
    except subprocess.TimeoutExpired:
        return Outcome(
            case,
            False,
            f"no answer within {case.timeout:.0f} s (a hang)",
            None,
            "",
            time.perf_counter() - start,
        )
    seconds = time.perf_counter() - start
    problem = None
    if case.code != 0:
        says = tuple(fill(word, d, s, port) for word in case.says)
        problem = line_problem(done, case.code, says, case.fix)
    elif done.returncode != 0:
        problem = f"exit {done.returncode}: {done.stderr.strip()[-300:]}"
    elif "Traceback" in done.stderr:
        problem = "a traceback on stderr"
    else:
        missing = [word for word in case.out_has if word not in done.stdout]
        if missing:
            problem = f"stdout lacks {missing}"
    if problem is None:
        leaked = [word for word in case.out_lacks if word in done.stdout or word in done.stderr]
        if leaked:
            problem = f"the output holds {leaked!r}"
    if problem is None:
        changed = [name for name in case.keep if snapshot(d / name) != before[name]]
        if changed:
            problem = f"the user's files changed: {changed}"
    if problem is None and case.check is not None:
        problem = case.check(d, s, done)
    return Outcome(case, problem is None, problem or "", done.returncode, first_line(done), seconds)


def prepare_shared(folder: Path) -> None:
    """Inputs many cases read: the paper instance, a 100,000-user instance, two tiny finished runs
    (classical, quantum L = 1), a tiny sweep spec, a backend profile."""
    from qdt.problem.generator import GeneratorConfig, generate_instance, paper_instance
    from qdt.problem.instance import save_instance
    from qdt.rl.config import TrainConfig
    from qdt.rl.train import train

    save_instance(paper_instance(), folder / "paper.json")
    save_instance(generate_instance(GeneratorConfig(users=100_000, servers=2), 0), folder / "huge.json")
    tiny = dict(
        episodes=4,
        steps_per_episode=2,
        batch_size=4,
        replay_size=16,
        warmup_transitions=4,
        checkpoint_every=2,
    )
    for agent in ("classical", "quantum"):
        train(TrainConfig(agent=agent, layers=1, **tiny), paper_instance(), folder / agent, progress=False)
    (folder / "tiny.toml").write_text(
        '[grid]\nagent = ["classical"]\nseed = [0]\n[train]\nepisodes = 5\nsteps_per_episode = 2\n'
        "batch_size = 8\nreplay_size = 64\nwarmup_transitions = 8\nhidden = 8\n"
    )
    shutil.copy(Path(__file__).resolve().parents[1] / "backends" / "aer.toml", folder / "aer.toml")


def report(outcomes: list[Outcome], wall_s: float, load: str) -> tuple[str, list[dict[str, Any]]]:
    rows = []
    lines = [
        "# Reliability of the qdt command line",
        "",
        f"`python benchmarks/reliability.py`: {len(outcomes)} bad inputs and faults, each a real `qdt` "
        "process (exit status, one line on stderr naming the field or path and the fix, the user's files "
        "unchanged). "
        f"Wall time {wall_s / 60:.1f} min; load average at the start: {load}.",
        "",
        "| class | what | tried | clean |",
        "| --- | --- | ---: | ---: |",
    ]
    for klass, what in CLASSES:
        mine = [o for o in outcomes if o.case.klass == klass]
        if mine:
            lines.append(f"| {klass} | {what} | {len(mine)} | {sum(o.clean for o in mine)} |")
    clean = sum(o.clean for o in outcomes)
    lines.append(f"| **all** | | **{len(outcomes)}** | **{clean} ({100 * clean / len(outcomes):.0f}%)** |")
    unclean = [o for o in outcomes if not o.clean]
    if unclean:
        lines += ["", "## Not clean", ""]
        lines += [f"- {o.case.klass} / {o.case.name}: {o.problem}" for o in unclean]
    for o in outcomes:
        rows.append(
            {
                "class": o.case.klass,
                "case": o.case.name,
                "command": "qdt " + " ".join(o.case.argv) if o.case.argv else "(several commands)",
                "expected_exit": o.case.code,
                "exit": o.code,
                "clean": o.clean,
                "seconds": round(o.seconds, 1),
                "problem": o.problem,
                "line": o.line,
            }
        )
    return "\n".join(lines) + "\n", rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument(
        "--only", nargs="*", metavar="CLASS", help="run only these classes (no files written)"
    )
    parser.add_argument("--match", help="run only cases whose name holds this text (no files written)")
    parser.add_argument("--no-ray", action="store_true", help="leave out the case that starts a Ray head")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run as root: cases mount small and read-only file systems and drop to user nobody")
    chosen = [c for c in cases() if not args.only or c.klass in args.only]
    chosen = [c for c in chosen if not args.match or args.match in c.name]
    if args.no_ray:
        chosen = [c for c in chosen if c.runner is not ray_forms]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="qdt-reliability-"))
    root.chmod(0o755)
    shared = root / "shared"
    shared.mkdir()
    print(f"{len(chosen)} cases; preparing shared inputs in {shared} (load {load})", flush=True)
    prepare_shared(shared)
    for path in [shared, *shared.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # readable by user nobody too
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def one(case: Case) -> None:
        outcome = run_case(case, shared, root)
        with lock:
            outcomes.append(outcome)
            mark = "clean" if outcome.clean else f"NOT CLEAN: {outcome.problem}"
            print(f"[{len(outcomes)}/{len(chosen)}] {case.klass} / {case.name}: {mark}", flush=True)
            if outcome.line:
                print(f"    {outcome.line}", flush=True)

    try:
        with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
            list(pool.map(one, [c for c in chosen if not c.serial]))
        for case in [c for c in chosen if c.serial]:
            one(case)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    order = {id(c): k for k, c in enumerate(chosen)}
    outcomes.sort(key=lambda o: order[id(o.case)])
    text, rows = report(outcomes, time.perf_counter() - started, load)
    print(text)
    if not args.only and not args.match:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "reliability.md").write_text(text)
        with open(RESULTS / "reliability.csv", "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {RESULTS / 'reliability.md'} and reliability.csv")
    return 0 if all(o.clean for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
