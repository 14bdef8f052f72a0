"""Sizes have limits, stated and checked before work starts (issue 16, Build item 2).

Every case here once hung, or ended in a traceback: ``qdt train --layers 100000``, ``qdt circuit
--layers 1000000``, ``qdt optimum`` on 100,000 users (default solver, ``--time-limit``, greedy,
enumerate), ``qdt instance show`` on deeply nested JSON. Now each one either answers within its
limit or ends at once with exit status 2 and one line that names the field and the fix.

A hang that returns to Python between steps is cut by :func:`no_hang` (the test then fails
instead of waiting); wall-time bounds are generous, since they test "no hang", not speed.
"""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path

import pytest

from qdt.circuits.vqc import MAX_LAYERS, MAX_QUBITS, build_vqc
from qdt.cli.main import build_parser, main
from qdt.errors import QdtInputError
from qdt.problem.generator import GeneratorConfig, generate_instance, paper_instance
from qdt.problem.instance import FILE_BYTES_LIMIT, PAIRS_LIMIT, USERS_LIMIT
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import DEFAULT_TIME_LIMIT_S, KILL_GRACE_S, solve
from qdt.rl.config import MAX_BATCH_SIZE, MAX_EPISODES, MAX_HIDDEN, MAX_REPLAY_SIZE, TrainConfig

HUGE_USERS = 100_000
NO_HANG_S = 60  # a case still running after this long has hung


class _Hung(BaseException):
    """Raised by the alarm; a BaseException so that the CLI's error handling cannot turn it into a line."""


@pytest.fixture(autouse=True)
def no_hang():
    def alarm(signum, frame):
        raise _Hung(f"still running after {NO_HANG_S} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, NO_HANG_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run(capsys, *argv: str) -> tuple[int, str, str, float]:
    start = time.perf_counter()
    code = main(list(argv))
    wall = time.perf_counter() - start
    out, err = capsys.readouterr()
    return code, out, err, wall


def assert_one_line_error(code: int, err: str, *needles: str) -> str:
    """Exit status 2, exactly one line on stderr, no traceback, and every needle in that line."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert code == 2, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def huge_file(tmp_path_factory) -> Path:
    """100,000 users × 4 servers, written compactly (the solver cases' subject)."""
    instance = generate_instance(GeneratorConfig(users=HUGE_USERS, servers=4), 1)
    path = tmp_path_factory.mktemp("huge") / "huge.json"
    path.write_text(json.dumps(instance.to_dict()), encoding="utf-8")
    return path


# ---- qdt optimum on 100,000 users ------------------------------------------------------
def test_enumerate_on_huge_instance_names_the_count_instead_of_overflowing(capsys, huge_file):
    code, _, err, _ = run(capsys, "optimum", str(huge_file), "--solver", "enumerate")
    line = assert_one_line_error(code, err, "--solver enumerate", "4^100000", "use --solver milp or auto")
    assert "10^60206" in line  # 4^100000 = 10^60205.99...: the order of magnitude, not a float overflow


@pytest.mark.parametrize(
    ("solver", "limit"),
    # None: the default solver, auto, which picks milp. With a 2 s limit HiGHS, which got its limit
    # before too, was found still in presolve after minutes; with 1 s it happened to stop at 3 s.
    [(None, 2), ("greedy", 1), ("random", 1)],
)
def test_huge_instance_answers_within_its_time_limit_or_says_why_not(capsys, huge_file, solver, limit):
    argv = ["optimum", str(huge_file), "--time-limit", str(limit), "--json"]
    if solver is not None:
        argv += ["--solver", solver]
    code, out, err, wall = run(capsys, *argv)
    assert code == 0, err
    result = json.loads(out)
    assert result["solver"] == (solver or "milp")  # auto: 4^100000 assignments are past enumeration
    assert result["wall_s"] <= limit + KILL_GRACE_S + 1.5  # the limit, the grace, a margin for a busy machine
    assert wall < 15  # loading 100,000 users included
    if result["status"] == "unsolved":
        assert f"time limit of {limit} s" in result["reason"]
    else:  # a solver that finished in time: its placement must be feasible
        assert result["status"] in ("optimal", "feasible") and result["reason"] is None
        assert len(result["assignment"]) == HUGE_USERS


def test_table_output_says_why(capsys, tmp_path):
    path = tmp_path / "large.json"
    path.write_text(json.dumps(generate_instance(GeneratorConfig(users=20_000, servers=4), 3).to_dict()))
    code, out, err, _ = run(capsys, "optimum", str(path), "--time-limit", "0.05", "--solver", "greedy")
    assert code == 0, err
    assert "unsolved (greedy" in out and "why: time limit of 0.05 s reached after" in out


def test_optimum_has_a_time_limit_by_default():
    args = build_parser().parse_args(["optimum", "--preset", "paper"])
    assert args.time_limit == DEFAULT_TIME_LIMIT_S and math.isfinite(DEFAULT_TIME_LIMIT_S)


def test_time_limit_counts_from_the_call_for_every_solver():
    model = PlacementModel(generate_instance(GeneratorConfig(users=20_000, servers=4), 3))
    for solver in ("milp", "greedy", "random"):
        result = solve(model, solver, seed=0, time_limit_s=0.3)
        assert result.wall_s < 0.3 + KILL_GRACE_S + 1.5, solver
        assert result.status != "unsolved" or "time limit of 0.3 s" in result.reason


# ---- deeply nested JSON ----------------------------------------------------------------
def test_deeply_nested_instance_is_one_line(capsys, tmp_path):
    path = tmp_path / "nested.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    code, _, err, _ = run(capsys, "instance", "show", str(path))
    assert_one_line_error(code, err, "FILE", "nested too deep", "qdt instance generate")


# ---- instance sizes --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("users", "servers", "field"),
    [(USERS_LIMIT + 1, 1, "--users"), (10, 1_000_001, "--servers"), (USERS_LIMIT, 11, "--users/--servers")],
)
def test_generate_refuses_sizes_past_the_limits_before_drawing(capsys, users, servers, field):
    code, _, err, wall = run(capsys, "instance", "generate", "--users", str(users), "--servers", str(servers))
    assert_one_line_error(code, err, f"{field}: expected at most", "instance")
    assert wall < 5


def test_instance_file_past_the_user_limit_is_refused_before_parsing(capsys, tmp_path):
    data = paper_instance().to_dict()
    data["users"] = [{}] * (USERS_LIMIT + 1)  # refused on its length, before any user is read
    path = tmp_path / "many.json"
    path.write_text(json.dumps(data))
    code, _, err, _ = run(capsys, "instance", "show", str(path))
    assert_one_line_error(code, err, "users: expected at most 100,000 users", "split the users")


def test_instance_past_the_pair_limit_is_refused():
    with pytest.raises(QdtInputError, match=f"at most {PAIRS_LIMIT:,} user-server pairs"):
        GeneratorConfig(users=PAIRS_LIMIT // 20 + 1, servers=20)


def test_instance_file_past_the_byte_limit_is_refused_unread(capsys, tmp_path):
    path = tmp_path / "big.json"
    with open(path, "wb") as stream:  # sparse: no disk used, and reading it would take long
        stream.truncate(FILE_BYTES_LIMIT + 1)
    code, _, err, wall = run(capsys, "optimum", str(path))
    assert_one_line_error(code, err, "FILE: expected an instance file of at most 256 MiB")
    assert wall < 5


# ---- circuits --------------------------------------------------------------------------
def test_circuit_with_a_million_layers_fails_at_once(capsys):
    code, out, err, wall = run(capsys, "circuit", "--qubits", "2", "--layers", "1000000", "--qasm2")
    assert_one_line_error(
        code, err, "--layers", f"from 0 to {MAX_LAYERS}", f"use at most {MAX_LAYERS} layers"
    )
    assert out == "" and wall < 5


def test_circuit_past_the_qubit_limit_fails_at_once(capsys):
    code, _, err, _ = run(capsys, "circuit", "--qubits", str(MAX_QUBITS + 1), "--layers", "1", "--qasm2")
    assert_one_line_error(code, err, "--qubits", f"from 1 to {MAX_QUBITS}")


def test_build_vqc_checks_sizes_before_building():
    start = time.perf_counter()
    with pytest.raises(QdtInputError, match="n_layers"):
        build_vqc(input_width=4, n_layers=MAX_LAYERS + 1)
    with pytest.raises(QdtInputError, match="input_width.*--agent classical"):
        build_vqc(input_width=2 ** (MAX_QUBITS + 3), n_layers=1)  # would need 2^15 amplitudes
    with pytest.raises(QdtInputError, match="n_qubits"):
        build_vqc(input_width=4, n_layers=1, n_qubits=MAX_QUBITS + 1)
    assert time.perf_counter() - start < 1
    assert (
        build_vqc(input_width=4, n_layers=MAX_LAYERS).n_weights == 2 * MAX_LAYERS
    )  # the limit itself is fine


# ---- training --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flag", "value", "fix", "more"),
    [
        ("--layers", 100_000, f"use at most {MAX_LAYERS} layers", []),
        ("--episodes", MAX_EPISODES + 1, "use at most 1,000,000", []),
        ("--replay-size", MAX_REPLAY_SIZE + 1, "use at most 1,000,000", []),
        ("--batch-size", MAX_BATCH_SIZE + 1, "use at most 16,384", ["--replay-size", str(MAX_REPLAY_SIZE)]),
        ("--shots", 10**12, "per-job limit", ["--backend", "aer"]),  # the one shot limit: executors/base.py
    ],
)
def test_train_refuses_sizes_past_the_limits_before_any_work(capsys, tmp_path, flag, value, fix, more):
    out_dir = tmp_path / "run"
    argv = ["train", "--preset", "paper", flag, str(value), *more, "--out", str(out_dir)]
    code, _, err, wall = run(capsys, *argv)
    assert_one_line_error(code, err, f"{flag}: expected", fix)
    assert not out_dir.exists() and wall < 5


def test_train_config_limits_hold_for_config_files_too():
    with pytest.raises(QdtInputError, match="--hidden"):
        TrainConfig.from_dict({"hidden": MAX_HIDDEN + 1})
    TrainConfig(
        layers=MAX_LAYERS, episodes=MAX_EPISODES, replay_size=MAX_REPLAY_SIZE, batch_size=MAX_BATCH_SIZE
    )
