"""qdt demo: every stage runs and the report is self-contained (tiny budget; full budget is slow)."""

import json
import re

import pytest

from qdt.cli.main import main


def _check_outputs(out_dir, device):
    result = json.loads((out_dir / "results.json").read_text())
    assert set(result["agents"]) == {"classical", "quantum L=1", "quantum L=3", "quantum L=6"}
    assert result["optimum"]["assignment"] == [0, 0, 0, 1]
    settings = {(e["agent"], e["setting"]) for e in result["evaluations"]}
    for layers in (1, 3, 6):
        agent = f"quantum L={layers}"
        assert {(agent, "exact"), (agent, "noise depol-1e-3"), (agent, f"device {device}")} <= settings
    assert sum(e["setting"].endswith("shots") for e in result["evaluations"]) == 5
    html = (out_dir / "report.html").read_text()
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 4  # figures embedded
    assert 'src="http' not in html and "<script" not in html  # nothing fetched from outside
    for exact in (e for e in result["evaluations"] if e["setting"] == "exact"):
        assert exact["result"]["decision_agreement"]["mean"] == 1.0
    return result


def test_demo_small_budget(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--episodes", "15", "--device", "fake_manila", "--out", str(out), "--workers", "2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "11.37%" in printed and "report" in printed  # greedy's gap, then the report path
    _check_outputs(out, "fake_manila")


def test_demo_rejects_bad_options_before_training(tmp_path, capsys):
    assert main(["demo", "--episodes", "0", "--out", str(tmp_path / "x")]) == 2
    assert main(["demo", "--noise", "no-such-profile", "--out", str(tmp_path / "y")]) == 2
    assert "no-such-profile" in capsys.readouterr().err
    assert not (tmp_path / "y" / "runs").exists()


@pytest.mark.slow
def test_demo_default_budget(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    result = _check_outputs(out, "fake_torino")
    assert result["config"]["episodes"] == 1000
