"""CLI: `qdt circuit --backend aer|density --noise --shots` and `qdt noise list|show|snapshot`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qdt.cli.main import main

CIRCUIT = ["circuit", "--qubits", "3", "--layers", "2", "--inputs", "1,0,1,1", "--seed", "5"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    return json.loads(out)


def test_aer_exact_matches_statevector_with_the_same_keys(capsys):
    reference = run_json(capsys, *CIRCUIT, "--json")
    aer = run_json(capsys, *CIRCUIT, "--json", "--backend", "aer")
    assert {"probs", "expval_z"} <= set(aer) and aer["mode"] == "exact" and aer["shots"] is None
    np.testing.assert_allclose(aer["probs"], reference["probs"], atol=1e-10)
    np.testing.assert_allclose(aer["expval_z"], reference["expval_z"], atol=1e-10)


def test_density_and_aer_agree_on_a_noise_profile(capsys):
    density = run_json(capsys, *CIRCUIT, "--json", "--backend", "density", "--noise", "thermal-ibm-like")
    aer = run_json(capsys, *CIRCUIT, "--json", "--backend", "aer", "--noise", "thermal-ibm-like")
    noiseless = run_json(capsys, *CIRCUIT, "--json")
    assert density["noise"] == aer["noise"] == "thermal-ibm-like"
    np.testing.assert_allclose(aer["probs"], density["probs"], atol=1e-10)
    np.testing.assert_allclose(aer["expval_z"], density["expval_z"], atol=1e-10)
    assert np.max(np.abs(np.array(aer["probs"]) - noiseless["probs"])) > 1e-3


@pytest.mark.parametrize("backend", ["aer", "density"])
def test_shots_give_seeded_counts_and_consistent_expectations(capsys, backend):
    argv = [*CIRCUIT, "--json", "--backend", backend, "--noise", "depol-1e-2", "--shots", "1000"]
    first = run_json(capsys, *argv)
    again = run_json(capsys, *argv)
    other = run_json(capsys, *argv, "--shot-seed", "99")
    assert first["mode"] == "sampled" and first["shots"] == 1000
    assert first["probs"] == again["probs"] and first["probs"] != other["probs"]
    counts = np.array(first["probs"]) * 1000
    np.testing.assert_allclose(counts, counts.round(), atol=1e-9)
    signs = [[1 - 2 * ((k >> q) & 1) for q in range(3)] for k in range(8)]
    np.testing.assert_allclose(first["expval_z"], np.array(first["probs"]) @ np.array(signs), atol=1e-12)


def test_device_profile_reports_the_transpiled_circuit(capsys):
    data = run_json(capsys, *CIRCUIT, "--json", "--backend", "aer", "--noise", "device:fake_manila")
    assert data["noise"] == "device:fake_manila" and len(data["probs"]) == 8
    assert data["transpiled"]["two_qubit_gates"] >= 6 and len(data["transpiled"]["physical_qubits"]) >= 3


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["--noise", "depol-1e-3"], "--noise"),
        (["--shots", "100"], "--shots"),
        (["--backend", "aer", "--shots", "0"], "--shots"),
        (["--backend", "aer", "--noise", "no-such-profile"], "--noise"),
        (["--backend", "density", "--noise", "device:fake_manila"], "--noise"),
        (["--backend", "aer", "--noise", "device:fake_atlantis"], "--noise"),  # the flag that named it
    ],
)
def test_bad_noise_options_give_one_line_errors(capsys, extra, field):
    code, out, err = run(capsys, *CIRCUIT, "--json", *extra)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and f"error: {field}" in err


def test_noise_list_and_show(capsys):
    data = run_json(capsys, "noise", "list", "--json")
    names = {p["name"] for p in data["profiles"]}
    assert {"depol-1e-3", "readout-2e-2", "thermal-ibm-like"} <= names
    code, out, _ = run(capsys, "noise", "list", "--devices")
    assert code == 0 and "device:fake_brisbane" in out and "depol-1e-3" in out
    shown = run_json(capsys, "noise", "show", "depol-1e-3", "--json")
    assert (shown["depolarizing_1q"], shown["depolarizing_2q"]) == (1e-3, 1e-2)
    device = run_json(capsys, "noise", "show", "device:fake_manila", "--json")
    assert device["kind"] == "device" and device["num_qubits"] == 5


def test_snapshot_loads_back_and_pins_the_calibration(capsys, tmp_path):
    path = tmp_path / "manila.json"
    code, out, _ = run(capsys, "noise", "snapshot", "--backend", "fake_manila", "-o", str(path))
    assert code == 0 and str(path) in out
    saved = json.loads(path.read_text())
    assert saved["format"] == "qdt-noise-snapshot/1" and saved["num_qubits"] == 5
    pinned = run_json(capsys, *CIRCUIT, "--json", "--backend", "aer", "--noise", str(path))
    live = run_json(capsys, *CIRCUIT, "--json", "--backend", "aer", "--noise", "device:fake_manila")
    np.testing.assert_allclose(pinned["probs"], live["probs"], atol=1e-12)
    code, _, err = run(capsys, "noise", "snapshot", "--backend", "fake_manila", "-o", str(tmp_path / "x.txt"))
    assert code == 2 and "--output" in err
    # The pinned snapshot is never written over, not even by another snapshot of the same device.
    pinned_bytes = path.read_bytes()
    code, out, err = run(capsys, "noise", "snapshot", "--backend", "fake_brisbane", "-o", str(path))
    assert code == 2 and out == "" and "--output: expected a new file, got an existing file" in err
    assert path.read_bytes() == pinned_bytes


def test_invalid_profile_file_names_the_field(capsys, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('schema = "qdt-noise/1"\n[readout]\np1_given_0 = 1.7\n')
    code, out, err = run(capsys, *CIRCUIT, "--json", "--backend", "aer", "--noise", str(path))
    assert code == 2 and "readout.p1_given_0" in err and out == ""
    code, _, err = run(capsys, "noise", "show", str(path))
    assert code == 2 and "readout.p1_given_0" in err
