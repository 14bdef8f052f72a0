"""benchmarks/tight_decoding.py: the diagnosis feeds the decoding the optimum (always feasible: the
decoding returns the placement scores single out) and the optimum with users moved, and refuses a
folder with no tight-family runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import tight_decoding  # noqa: E402


def test_optimum_scores_decode_feasible_on_tight_instances() -> None:
    rows = tight_decoding.diagnose_shape((6, 2), [], Path("."), unseen=6, errors=[1], limit=20.0)
    shares = {name: feasible for name, feasible, _ in rows}
    header = rows[0][0]
    assert header.startswith("6×2 (") and header.endswith(" instances)")
    assert int(header.split("(")[1].split()[0]) > 0  # some tight 6 x 2 instance has an optimum
    assert shares["the optimum"] == "100%"
    assert set(shares) >= {"random scores", "greedy's preferences (−T)", "the optimum, 1 user(s) moved"}


def test_refuses_a_folder_without_results(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="results.csv"):
        tight_decoding.main(["--runs", str(tmp_path), "--out", str(tmp_path / "out")])


def test_refuses_a_bad_shape(tmp_path: Path) -> None:
    results = tmp_path / "results.csv"
    results.write_text(
        "cell_id,status,instance,agent,layers,seed,n_users,n_servers,run_dir\n"
        'c,ok,"family users=4,servers=2,tight=true",classical,,0,4,2,cells/c\n'
    )
    with pytest.raises(SystemExit, match="--shapes"):
        tight_decoding.main(["--runs", str(tmp_path), "--out", str(tmp_path / "out"), "--shapes", "16by4"])


def test_refuses_bad_error_counts(tmp_path: Path) -> None:
    (tmp_path / "results.csv").write_text(
        "cell_id,status,instance,agent,layers,seed,n_users,n_servers,run_dir\n"
        'c,ok,"family users=4,servers=2,tight=true",classical,,0,4,2,cells/c\n'
    )
    for errors in ("two", "0"):
        with pytest.raises(SystemExit, match="--errors"):
            tight_decoding.main(["--runs", str(tmp_path), "--out", str(tmp_path / "out"), "--errors", errors])
