"""CLI contracts of `qdt instance|optimum|score|demo` and one-line errors with exit status 2."""

import json
import subprocess
import sys

import pytest

from qdt.cli.main import main
from qdt.errors import QdtInputError
from qdt.problem.generator import GeneratorConfig, generate_instance, paper_instance
from qdt.problem.instance import save_instance


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def paper_file(tmp_path):
    path = tmp_path / "paper.json"
    save_instance(paper_instance(), path)
    return path


def test_optimum_json_contract(capsys, paper_file):
    code, out, _ = run(capsys, "optimum", str(paper_file), "--json")
    data = json.loads(out)
    assert code == 0
    assert set(data) == {
        "status", "assignment", "total_latency_s", "per_user_latency_s", "solver", "wall_s", "reason",
        "lower_bound_s",
    }  # fmt: skip
    assert data["lower_bound_s"] == data["total_latency_s"]  # an optimum is its own lower bound
    assert data["status"] == "optimal" and data["assignment"] == [0, 0, 0, 1] and data["reason"] is None
    assert sum(data["per_user_latency_s"]) == pytest.approx(data["total_latency_s"])
    for solver, status in [("milp", "optimal"), ("greedy", "feasible"), ("enumerate", "optimal")]:
        _, out, _ = run(capsys, "optimum", "--preset", "paper", "--solver", solver, "--json")
        assert json.loads(out)["status"] == status and json.loads(out)["solver"] == solver


def test_optimum_reports_infeasible_as_a_result(capsys, tmp_path):
    data = paper_instance().to_dict()
    for user in data["users"]:
        user["deadline_s"] = 0.1  # nobody can make it
    path = tmp_path / "infeasible.json"
    path.write_text(json.dumps(data))
    for solver in ("auto", "milp", "greedy"):
        code, out, _ = run(capsys, "optimum", str(path), "--solver", solver, "--json")
        result = json.loads(out)
        assert code == 0 and result["status"] == "infeasible" and result["assignment"] is None
        assert result["total_latency_s"] is None


def test_optimum_within_a_relative_gap_reports_its_bound(capsys, tmp_path):
    from qdt.problem.family import Family

    path = tmp_path / "tight.json"
    save_instance(Family(32, 8, True, seed=7).held_out(0, 0), path)
    code, out, _ = run(capsys, "optimum", str(path), "--solver", "milp", "--json")
    optimum = json.loads(out)
    code, out, _ = run(capsys, "optimum", str(path), "--solver", "milp", "--rel-gap", "0.02", "--json")
    within = json.loads(out)
    assert code == 0 and optimum["status"] == "optimal" and within["status"] == "feasible"
    assert within["lower_bound_s"] <= optimum["total_latency_s"] <= within["total_latency_s"]
    assert within["total_latency_s"] - within["lower_bound_s"] <= 0.02 * within["total_latency_s"]
    code, out, _ = run(capsys, "optimum", str(path), "--solver", "milp", "--rel-gap", "0.02")
    above = 100 * (within["total_latency_s"] - within["lower_bound_s"]) / within["lower_bound_s"]
    assert code == 0 and f"at most {above:.2f}% above the optimum" in out
    for argv, named in (
        (["--rel-gap", "0.01"], "--rel-gap: expected 0 unless --solver milp, got 0.01 with --solver auto"),
        (["--solver", "milp", "--rel-gap", "1"], "--rel-gap: expected a relative MIP gap in [0, 1)"),
    ):
        code, out, err = run(capsys, "optimum", str(path), *argv)
        assert code == 2 and named in err and not out


def test_score_json_contract(capsys):
    code, out, _ = run(capsys, "score", "--preset", "paper", "--assignment", "1,1,1,1", "--json")
    data = json.loads(out)
    assert code == 0
    assert set(data) >= {"feasible", "violations", "total_latency_s", "per_user_latency_s", "reward"}
    assert data["feasible"] is False
    assert data["violations"]["max_users"] == [1] and data["violations"]["deadline"] == [1, 2]
    code, out, _ = run(capsys, "score", "--preset", "paper", "--assignment", "0,0,0,1", "--json")
    assert json.loads(out)["feasible"] is True
    assert json.loads(out)["reward"] == pytest.approx(-json.loads(out)["total_latency_s"])


def test_tables_without_json(capsys, paper_file):
    _, out, _ = run(capsys, "optimum", str(paper_file))
    assert "optimal" in out and "server 0" in out and "total" in out
    _, out, _ = run(capsys, "score", str(paper_file), "--assignment", "0,1,0,1")
    assert "INFEASIBLE" in out and "(26) deadline: users violated: 1" in out
    _, out, _ = run(capsys, "instance", "show", str(paper_file))
    assert "T_i0 (s)" in out and "2.2949*" in out and "max users" in out


def test_generate_is_deterministic(capsys, tmp_path):
    _, first, _ = run(capsys, "instance", "generate", "--users", "5", "--servers", "3", "--seed", "4")
    _, second, _ = run(capsys, "instance", "generate", "-N", "5", "-M", "3", "--seed", "4")
    assert first == second
    assert json.loads(first) == json.loads(
        json.dumps(generate_instance(GeneratorConfig(users=5, servers=3), 4).to_dict())
    )
    out_path = tmp_path / "g.json"
    code, out, _ = run(capsys, "instance", "generate", "--seed", "4", "-o", str(out_path))
    assert code == 0 and json.loads(out_path.read_text())["format"] == "qdt-instance/1"


BAD = [
    (["optimum", "{missing}"], "FILE"),
    (["optimum", "{malformed}"], "FILE"),
    (["optimum", "{wrongshape}"], "channel_gain"),
    (["optimum", "{negative}"], "users[0].data_bits"),
    (["optimum", "{paper}", "--time-limit", "-1", "--solver", "milp"], "--time-limit"),
    (["score", "{paper}", "--assignment", "0,1,1"], "--assignment"),
    (["score", "{paper}", "--assignment", "0,1,1,5"], "--assignment[3]"),
    (["score", "{paper}", "--assignment", "0,a,1,1"], "--assignment"),
    (["score", "{paper}", "--assignment", "0,-1,1,1"], "--assignment[1]"),
    (["instance", "generate", "--users", "0"], "--users"),
    (["instance", "generate", "--servers", "-2"], "--servers"),
    (["instance", "generate", "--seed", "-1"], "--seed"),
    (["optimum", "{paper}", "--preset", "paper"], "FILE/--preset"),
    (["optimum"], "FILE"),
]


@pytest.mark.parametrize("argv, field", BAD)
def test_bad_input_gives_one_line_and_exit_2(capsys, tmp_path, paper_file, argv, field):
    files = {
        "missing": tmp_path / "none.json",
        "malformed": tmp_path / "bad.json",
        "wrongshape": tmp_path / "shape.json",
        "negative": tmp_path / "neg.json",
        "paper": paper_file,
    }
    files["malformed"].write_text('{"format": ')
    data = paper_instance().to_dict()
    data["channel_gain"] = data["channel_gain"][:3]
    files["wrongshape"].write_text(json.dumps(data))
    data = paper_instance().to_dict()
    data["users"][0]["data_bits"] = -5
    files["negative"].write_text(json.dumps(data))
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    # the field, after the file's path when it is a field inside a file
    assert f": error: {field}:" in lines[0] or f".json: {field}:" in lines[0], lines[0]
    assert "Traceback" not in err


def test_argparse_errors_are_one_line_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "qdt.cli.main", "optimum", "--preset", "paper", "--solver", "cplex"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "--solver" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_input_errors_survive_pickling():
    import pickle

    error = QdtInputError("--shots", "a positive integer", 0, "drop --shots for exact")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is QdtInputError and str(copy) == str(error) and copy.fix == error.fix
