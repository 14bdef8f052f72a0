"""The CLI's failure contract on damaged inputs (hypothesis): mutated instance files, run folders
(config.json, checkpoint.pt, metrics.jsonl, summary.json, jobs.jsonl), backend and noise profiles
and sweep specs, fed to every command that reads them.

For every example: the exit status is 0, 1 or 2; a failure is ONE line on stderr, ``qdt CMD:
error: ...``, with no traceback and no "internal error" (an exception qdt did not expect); that
line names the file or the field at fault; and nothing qdt prints carries a raw control character.

Commands run in this process (``qdt.cli.main.main``) against copies of small inputs made once per
module. Examples are drawn deterministically (``derandomize``), a few dozen per property, so the
module takes well under a minute.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qdt.cli.main import main
from qdt.problem.generator import paper_instance
from qdt.rl.config import TrainConfig
from qdt.rl.train import train

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")  # what may not reach a terminal raw


def examples(count: int) -> settings:
    return settings(
        max_examples=count,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


# ---- the contract ----------------------------------------------------------------------------
def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def check(capsys: pytest.CaptureFixture[str], argv: list[str], culprits: set[str]) -> int:
    """Run ``argv`` and assert the failure contract; ``culprits`` are the names of which the
    failure line must mention one (the damaged file, the damaged field)."""
    code, out, err = run(capsys, argv)
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err, err
    assert not CONTROL.search(out) and not CONTROL.search(err), (out[-300:], err)
    if code != 0:
        lines = err.strip().splitlines()
        assert len(lines) == 1, (argv, err)
        line = lines[0]
        assert line.startswith(f"qdt {argv[0]}") and ": error: " in line, line
        assert "internal error" not in line, (argv, line)
        assert any(name in line for name in culprits if name), (argv, culprits, line)
    return code


# ---- mutations -------------------------------------------------------------------------------
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "x", "1e999", "NaN", "\x1b[31m\x07", "../../etc", "é" * 3]),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.sampled_from(["a", "format", "users"]), st.integers(-2, 2), max_size=2),
)


def json_paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into ``value`` (dict keys and list indices), parents before children."""
    if prefix:
        yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from json_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:4]):
            yield from json_paths(item, (*prefix, index))


@st.composite
def mutated_json(draw: st.DrawFn, data: Any) -> tuple[bytes, set[str]]:
    """``data`` as JSON bytes after one mutation, and the names an error about it may give."""
    kind = draw(st.sampled_from(["replace", "replace", "delete", "add", "bytes"]))
    if kind == "bytes":
        return draw(damaged_bytes(json.dumps(data, indent=2).encode()))
    data = json.loads(json.dumps(data))
    paths = list(json_paths(data))
    path = draw(st.sampled_from(paths)) if kind != "add" else ()
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if kind == "replace":
        parent[path[-1]] = draw(JUNK)
    elif kind == "delete":
        del parent[path[-1]]
    else:
        containers = [()] + [p for p in paths if isinstance(_at(data, p), dict)]
        where = draw(st.sampled_from(containers))
        _at(data, where)["unexpected_key"] = draw(JUNK)
        path = (*where, "unexpected_key")
    names = {str(key) for key in path if isinstance(key, str)}
    return json.dumps(data).encode(), names


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


@st.composite
def damaged_bytes(draw: st.DrawFn, original: bytes) -> tuple[bytes, set[str]]:
    """Byte-level damage: cut short, bytes flipped, random bytes, empty, nested too deep."""
    kind = draw(st.sampled_from(["truncate", "flip", "random", "empty", "nested", "not utf-8"]))
    if kind == "truncate":
        return original[: draw(st.integers(0, max(0, len(original) - 1)))], set()
    if kind == "flip":
        data = bytearray(original)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data), set()
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=64)), set()
    if kind == "nested":
        return b"[" * 100_000 + b"]" * 100_000, set()
    if kind == "not utf-8":
        return b"\xff\xfe" + original[:40], set()
    return b"", set()


# ---- instance files --------------------------------------------------------------------------
INSTANCE_COMMANDS: list[Callable[[str], list[str]]] = [
    lambda f: ["instance", "show", f],
    lambda f: ["optimum", f, "--solver", "greedy", "--json"],
    lambda f: ["optimum", f, "--time-limit", "5"],
    lambda f: ["score", f, "--assignment", "0,0,0,1"],
    lambda f: ["describe", "--instance", f, "--layers", "1"],
]


@examples(60)
@given(data=st.data())
def test_mutated_instance_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: st.DataObject
) -> None:
    raw, names = data.draw(mutated_json(paper_instance().to_dict()))
    name = data.draw(st.sampled_from(["instance.json", "in\x1bst.json"]))  # a control character too
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        path = Path(folder) / name
        path.write_bytes(raw)
        command = data.draw(st.sampled_from(INSTANCE_COMMANDS))
        check(capsys, command(str(path)), names | {path.name, repr(path.name)[1:-1]})


def test_a_control_character_in_an_instance_name_never_reaches_the_terminal(tmp_path, capsys):
    raw = paper_instance().to_dict()
    raw["name"] = "evil\x1b]0;title\x07\x1b[2J\rname"
    path = tmp_path / "named.json"
    path.write_text(json.dumps(raw))
    for command in INSTANCE_COMMANDS:
        code, out, err = run(capsys, command(str(path)))
        assert code == 0 and not CONTROL.search(out + err), out
    _, out, _ = run(capsys, ["instance", "show", str(path)])
    assert out.startswith("evil\\x1b]0;title\\x07\\x1b[2J\\rname: N=4 users")  # escaped, visible


# ---- run folders -----------------------------------------------------------------------------
TINY = dict(
    episodes=4,
    steps_per_episode=2,
    batch_size=4,
    replay_size=16,
    warmup_transitions=4,
    hidden=4,
    checkpoint_every=2,
)
JOB_LINES = [
    {"event": "submitting", "tag": "t1", "time": "2026-01-01T00:00:00+00:00"},
    {
        "event": "submitted",
        "tag": "t1",
        "job_id": "local-0001",
        "backend": "fake_manila",
        "local": True,
        "fingerprint": "f",
        "time": "2026-01-01T00:00:01+00:00",
    },
    {"event": "status", "job_id": "local-0001", "status": "DONE", "time": "2026-01-01T00:00:02+00:00"},
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished tiny classical run and a quantum one (L = 1), with a jobs.jsonl."""
    base = tmp_path_factory.mktemp("runs")
    made = {}
    for agent in ("classical", "quantum"):
        folder = base / agent
        train(TrainConfig(agent=agent, layers=1, **TINY), paper_instance(), folder, progress=False)
        (folder / "jobs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in JOB_LINES))
        made[agent] = folder
    return made


RUN_COMMANDS: list[tuple[str, Callable[[str], list[str]]]] = [
    ("quantum", lambda d: ["evaluate", "--run", d, "--json"]),
    ("quantum", lambda d: ["infer", "--run", d, "--backend", "statevector", "--json"]),
    ("classical", lambda d: ["train", "--resume", d, "--no-progress", "--json"]),
    ("quantum", lambda d: ["train", "--resume", d, "--no-progress", "--json"]),
    ("classical", lambda d: ["jobs", "list", "--run", d, "--json"]),
    ("classical", lambda d: ["jobs", "status", "--run", d]),
]


RUN_FILES = ["config.json", "checkpoint.pt", "metrics.jsonl", "summary.json", "jobs.jsonl"]


@st.composite
def damaged_run_file(draw: st.DrawFn, folder: Path) -> set[str]:
    """Damage one file of the run folder in place; the names an error about it may give."""
    name = draw(st.sampled_from(RUN_FILES))
    path = folder / name
    kind = draw(st.sampled_from(["content", "content", "content", "missing", "folder"]))
    if kind == "missing":
        path.unlink()
    elif kind == "folder":
        path.unlink()
        path.mkdir()
        (path / "inside").write_text("x")
    elif name == "checkpoint.pt" and draw(st.booleans()):
        return {name, *draw(damaged_checkpoint(path))}
    elif name.endswith(".json"):
        raw, names = draw(mutated_json(json.loads(path.read_text())))
        path.write_bytes(raw)
        return {name, *names}
    elif name.endswith(".jsonl"):
        lines = path.read_text().splitlines()
        index = draw(st.integers(0, len(lines) - 2))  # not the last line: a crash may cut that one short
        if draw(st.booleans()):
            replacement, _ = draw(mutated_json(json.loads(lines[index])))
            lines[index] = replacement.decode("utf-8", errors="replace").replace("\n", " ")
        else:
            lines[index] = json.dumps(draw(JUNK))  # a JSON value, but not an object
        path.write_text("\n".join(lines) + "\n")
    else:
        raw, _ = draw(damaged_bytes(path.read_bytes()))
        path.write_bytes(raw)
    return {name}


@st.composite
def damaged_checkpoint(draw: st.DrawFn, path: Path) -> set[str]:
    """A checkpoint torch can read whose content is wrong: a value replaced, a tensor reshaped."""
    payload = torch.load(path, weights_only=True)
    paths = [p for p in json_paths(payload) if p and isinstance(p[0], str)]
    where = draw(st.sampled_from(paths))
    parent = _at(payload, where[:-1])
    value = parent[where[-1]]
    if isinstance(value, torch.Tensor) and draw(st.booleans()):
        parent[where[-1]] = torch.zeros(value.numel() + 1, dtype=value.dtype)
    else:
        parent[where[-1]] = draw(st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=3)))
    torch.save(payload, path)
    return {str(key) for key in where if isinstance(key, str)}


@examples(40)
@given(data=st.data())
def test_damaged_run_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], runs: dict[str, Path], data: st.DataObject
) -> None:
    agent, command = data.draw(st.sampled_from(RUN_COMMANDS))
    with tempfile.TemporaryDirectory(dir=tmp_path) as scratch:
        folder = Path(scratch) / "run"
        shutil.copytree(runs[agent], folder)
        names = data.draw(damaged_run_file(folder))
        check(capsys, command(str(folder)), names | {str(folder)})


# ---- backend and noise profiles, sweep specs --------------------------------------------------
TOML_VALUES = ["-1", "0", "1e400", "nan", "true", '"x"', '""', "[1, 2]", "{ a = 1 }", "99999999999"]
TOML_VALUES += ['"\\u001b"']  # a control character


@st.composite
def mutated_toml(draw: st.DrawFn, text: str) -> tuple[str, set[str]]:
    """One line of a TOML file changed: a value replaced, the line removed, a key added; or the
    whole file cut short."""
    lines = text.splitlines()
    assignments = [k for k, line in enumerate(lines) if re.match(r"\s*[A-Za-z_0-9\"-]+\s*=", line)]
    kind = draw(st.sampled_from(["value", "value", "remove", "add", "truncate", "header"]))
    if kind == "truncate":
        return text[: draw(st.integers(0, len(text) - 1))], set()
    if kind == "header":
        index = draw(st.integers(0, len(lines)))
        lines.insert(index, draw(st.sampled_from(["[bogus]", "[[x]]", "[noise", "= 1"])))
        return "\n".join(lines) + "\n", {"bogus", "x", "noise"}
    if kind == "add":
        value = draw(st.sampled_from(TOML_VALUES))
        lines.insert(draw(st.integers(0, len(lines))), f"unexpected_key = {value}")
        return "\n".join(lines) + "\n", {"unexpected_key"}
    index = draw(st.sampled_from(assignments))
    key = lines[index].split("=", 1)[0].strip().strip('"')
    if kind == "remove":
        del lines[index]
    else:
        lines[index] = f"{key} = {draw(st.sampled_from(TOML_VALUES))}"
    return "\n".join(lines) + "\n", {key}


def _read(relative: str) -> str:
    return (ROOT / relative).read_text()


PROFILE_COMMANDS: dict[str, list[Callable[[str], list[str]]]] = {
    "backend": [
        lambda p: ["backends", "show", p, "--json"],
        lambda p: ["circuit", "--qubits=2", "--layers=1", "--json", "--backend", p],
    ],
    "noise": [
        lambda p: ["noise", "show", p, "--json"],
        lambda p: ["circuit", "--qubits=2", "--layers=1", "--json", "--backend=density", f"--noise={p}"],
    ],
}
PROFILES = {
    "backend": ["backends/statevector.toml", "backends/density.toml", "backends/aer.toml"],
    "noise": [
        "noise_models/depol-1e-3.toml",
        "noise_models/depol-1e-3-readout-2e-2.toml",
        "noise_models/thermal-ibm-like.toml",
    ],
}


@examples(50)
@given(data=st.data())
def test_mutated_backend_and_noise_profiles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: st.DataObject
) -> None:
    kind = data.draw(st.sampled_from(sorted(PROFILES)))
    source = data.draw(st.sampled_from(PROFILES[kind]))
    text, names = data.draw(mutated_toml(_read(source)))
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        path = Path(folder) / Path(source).name
        path.write_text(text)
        command = data.draw(st.sampled_from(PROFILE_COMMANDS[kind]))
        check(capsys, command(str(path)), names | {path.name})


SPEC = """\
[sweep]
name = "props"
max_retries = 1
[grid]
instance = ["paper", { users = 3, servers = 2, seed = 1 }]
agent = ["classical", "quantum"]
layers = [1, 2]
seed = [0, 1]
[train]
episodes = 10
"""


@examples(30)
@given(data=st.data())
def test_mutated_sweep_specs_in_a_dry_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: st.DataObject
) -> None:
    text, names = data.draw(mutated_toml(SPEC))
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        path = Path(folder) / "spec.toml"
        path.write_text(text)
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            names = names | {"spec.toml"}
        argv = ["sweep", str(path), "--out", str(Path(folder) / "out"), "--dry-run"]
        code = check(capsys, argv, names | {"spec.toml"})
        assert not (Path(folder) / "out").exists() or code == 0  # a dry run writes nothing
