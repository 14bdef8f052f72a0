"""qdt demo: every stage runs and the report is self-contained (tiny budget; full budget is slow)."""

import json
import math
import re

import numpy as np
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
        assert (agent, f"device {device}, mitigated (M3)") in settings
    assert sum(e["setting"].endswith("shots") for e in result["evaluations"]) == 5
    html = (out_dir / "report.html").read_text()
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 4  # figures embedded
    assert 'src="http' not in html and "<script" not in html  # nothing fetched from outside
    for exact in (e for e in result["evaluations"] if e["setting"] == "exact"):
        assert exact["result"]["decision_agreement"]["mean"] == 1.0
    _check_device_rows(result, device, out_dir)
    return result


def _check_device_rows(result, device, out_dir):
    """Raw and mitigated on the device, side by side, both from the one job of each policy."""
    rows = {(e["agent"], e["setting"]): e for e in result["evaluations"]}
    raw_tvd, mitigated_tvd = [], []
    for layers in (1, 3, 6):
        agent = f"quantum L={layers}"
        raw = rows[(agent, f"device {device}")]
        mitigated = rows[(agent, f"device {device}, mitigated (M3)")]
        assert raw["mitigation"] is None and mitigated["mitigation"] == "mthree"
        assert raw["result"]["readout"] == "raw" and mitigated["result"]["readout"] == "circuits"
        (job,) = raw["result"]["jobs"]  # one job per policy, and the mitigated row read its counts
        assert mitigated["result"]["jobs"] == [job]
        read_out = {str(q) for isa in raw["result"]["isa"] for q in isa["physical_readout"]}
        (matrices,) = mitigated["result"]["calibration"]["matrices"]  # measured in that same job
        assert mitigated["result"]["calibration"]["source"] == "circuits" and set(matrices) == read_out
        for matrix in matrices.values():
            assert 0 < matrix[0][1] < 0.2 and 0 < matrix[1][0] < 0.2  # the device has readout error
        for row in (raw, mitigated):
            assert 0.0 <= row["result"]["decision_agreement"]["mean"] <= 1.0
        raw_tvd.append(raw["result"]["tvd"]["mean"])
        mitigated_tvd.append(mitigated["result"]["tvd"]["mean"])
    assert raw_tvd != mitigated_tvd  # mitigation changed the probabilities
    # Averaged over all rows of the three jobs, mitigation may add shot noise but no more than
    # sampling alone puts there: 0.5 sqrt(K / S) for K = 4 outcomes (2-qubit actors), S = 1024 shots
    # (see tests/test_runtime_devices.py). Mitigating the wrong counts would break it.
    assert np.mean(mitigated_tvd) <= np.mean(raw_tvd) + 0.5 * math.sqrt(4 / 1024)
    table = (out_dir / "results.md").read_text()
    assert "decision agreement: raw" in table and table.count(f"| {device} ") == 3
    assert f"On {device}: raw against readout-mitigated" in (out_dir / "report.html").read_text()


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
    assert main(["demo", "--device", "aer", "--out", str(tmp_path / "z")]) == 2  # no Runtime job to mitigate
    assert "--device: expected an ibm profile" in capsys.readouterr().err
    assert not (tmp_path / "z" / "runs").exists()
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "readout-mitigated through mthree, side by side" in text and "default fake_torino" in text


@pytest.mark.slow
def test_demo_default_budget(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    result = _check_outputs(out, "fake_torino")
    assert result["config"]["episodes"] == 1000
