"""Backend profiles: the shipped TOML files, validation naming the field, rules, open_backend, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qdt.cli.main import main
from qdt.errors import QdtInputError
from qdt.executors.profiles import (
    REPO_BACKENDS_DIR,
    BackendProfile,
    fake_device_names,
    list_backend_profiles,
    load_backend_profile,
    open_backend,
    parse_profile,
)
from qdt.noise import NoiseConfig

IBM_MINIMAL = {
    "schema": "qdt-backend/1",
    "name": "p",
    "executor": "ibm",
    "device": {"provider": "fake", "name": "fake_manila"},
}


def test_every_shipped_profile_loads_and_names_what_it_runs_on() -> None:
    profiles = {p.name: p for p in list_backend_profiles()}
    assert {p.stem for p in REPO_BACKENDS_DIR.glob("*.toml")} == set(profiles)
    assert {"statevector", "density", "aer", "fake_torino", "fake_brisbane", "ibm_torino"} <= set(profiles)
    for profile in profiles.values():
        assert profile.description
        if profile.executor == "ibm":
            assert profile.device is not None and profile.shots
            assert profile.device.local == profile.name.startswith("fake_")
            assert profile.capabilities.remote == (not profile.device.local)
    assert profiles["statevector"].capabilities.differentiable
    assert isinstance(profiles["density"].noise, NoiseConfig) and profiles["density"].capabilities.noisy
    torino = profiles["ibm_torino"]
    assert torino.suppression.dynamical_decoupling and torino.runtime.on_timeout == "leave"
    assert torino.device is not None and torino.device.instance is None  # from the saved account
    text = (REPO_BACKENDS_DIR / "ibm_torino.toml").read_text()
    assert "token" not in text.replace("never a token", "")


def test_rules_cover_any_fake_device_and_any_ibm_device() -> None:
    names = fake_device_names()
    assert len(names) > 40 and "fake_kawasaki" in names and "fake_manila" in names
    kawasaki = load_backend_profile("fake_kawasaki")
    assert kawasaki.source == "rule:fake_<device>" and kawasaki.device is not None and kawasaki.device.local
    cloud = load_backend_profile("ibm_kingston")
    assert (
        cloud.device is not None
        and cloud.device.provider == "ibm_cloud"
        and cloud.device.name == "ibm_kingston"
    )
    assert load_backend_profile("statevector").executor == "statevector"
    with pytest.raises(QdtInputError, match="backend: expected a fake device"):
        load_backend_profile("fake_nosuchdevice")
    with pytest.raises(QdtInputError, match="see `qdt backends list`"):
        load_backend_profile("quantum_annealer")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schema": "qdt-backend/2"}, "schema"),
        ({"executor": "cirq"}, "executor"),
        ({"shots": 0}, "shots"),
        ({"shots": "many"}, "shots"),
        ({"colour": "blue"}, "colour"),
        ({"device": {"provider": "fake", "name": "fake_nowhere"}}, "device.name"),
        ({"device": {"provider": "aws", "name": "x"}}, "device.provider"),
        ({"device": {"provider": "fake", "name": "fake_manila", "instance": "crn:x"}}, "device.instance"),
        (
            {"device": {"provider": "ibm_cloud", "name": "ibm_torino", "channel": "ibm_quantum"}},
            "device.channel",
        ),
        (
            {"device": {"provider": "ibm_cloud", "name": "ibm_torino", "token": "secret-value"}},
            "device.token",
        ),
        ({"runtime": {"mode": "sesion"}}, "runtime.mode"),
        ({"runtime": {"timeout_s": -1}}, "runtime.timeout_s"),
        ({"runtime": {"retries": 99}}, "runtime.retries"),
        ({"runtime": {"on_timeout": "panic"}}, "runtime.on_timeout"),
        ({"transpile": {"optimization_level": 4}}, "transpile.optimization_level"),
        ({"error_suppression": {"dd_sequence": "XYZ"}}, "error_suppression.dd_sequence"),
        ({"error_suppression": {"twirling_gates": "yes"}}, "error_suppression.twirling_gates"),
        ({"estimator": {"resilience_level": 3}}, "estimator.resilience_level"),
        ({"noise": {"depolarizing_1q": 0.1}}, "noise"),
    ],
)
def test_invalid_profiles_are_rejected_naming_the_field(change: dict[str, object], field: str) -> None:
    data = {**IBM_MINIMAL, **change}
    with pytest.raises(QdtInputError) as caught:
        parse_profile(data, where="x.toml")
    assert caught.value.field.startswith(f"x.toml: {field}"), caught.value.field
    assert "secret-value" not in str(caught.value)  # a token put where it does not belong is not echoed


def test_non_ibm_profiles_reject_device_tables_and_validate_noise() -> None:
    base = {"schema": "qdt-backend/1", "name": "d", "executor": "density"}
    with pytest.raises(QdtInputError, match="x.toml: device"):
        parse_profile({**base, "device": {}}, where="x.toml")
    with pytest.raises(QdtInputError, match=r"x.toml: noise.depolarizing_1q"):
        parse_profile({**base, "noise": {"depolarizing_1q": 1.5}}, where="x.toml")
    with pytest.raises(QdtInputError, match=r"x.toml: noise.flavour"):
        parse_profile({**base, "noise": {"flavour": 1}}, where="x.toml")
    with pytest.raises(QdtInputError, match="x.toml: shots"):
        parse_profile({**base, "executor": "statevector", "shots": 10}, where="x.toml")


def test_a_profile_file_must_be_named_after_its_profile(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text('schema = "qdt-backend/1"\nname = "mine"\nexecutor = "statevector"\n')
    with pytest.raises(QdtInputError, match="name: expected the file's stem 'other'"):
        load_backend_profile(str(path))
    path.write_text("schema = [broken")
    with pytest.raises(QdtInputError, match="valid TOML"):
        load_backend_profile(str(path))


def test_profiles_on_the_search_path_and_by_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lab_density.toml").write_text(
        'schema = "qdt-backend/1"\nname = "lab_density"\nexecutor = "density"\nshots = 100\n'
        "[noise]\ndepolarizing_2q = 0.02\n"
    )
    monkeypatch.setenv("QDT_BACKENDS_PATH", str(tmp_path))
    profile = load_backend_profile("lab_density")
    assert profile.shots == 100 and isinstance(profile.noise, NoiseConfig)
    assert load_backend_profile(str(tmp_path / "lab_density.toml")) == profile
    assert "lab_density" in {p.name for p in list_backend_profiles()}


def test_open_backend_resolves_profiles_and_plain_executor_names() -> None:
    from qdt.executors.density import DensityExecutor
    from qdt.executors.statevector import StatevectorExecutor

    assert isinstance(open_backend("statevector"), StatevectorExecutor)
    density = open_backend("density", shots=500, seed=1)
    assert isinstance(density, DensityExecutor) and density.shots == 500 and density.capabilities.noisy
    clean = open_backend("density", noise=NoiseConfig())
    assert not clean.capabilities.noisy
    with pytest.raises(QdtInputError, match="shots: expected no shots"):
        open_backend("statevector", shots=100)
    with pytest.raises(QdtInputError, match="noise: expected no noise model for an IBM device"):
        open_backend("fake_manila", noise=NoiseConfig())
    with pytest.raises(QdtInputError, match="shots"):
        open_backend("density", shots=-1)
    profile = BackendProfile(
        name="inline", executor="density", shots=None, noise=NoiseConfig(depolarizing_1q=0.01)
    )
    assert open_backend(profile).capabilities.differentiable


def test_aer_profile_opens_the_aer_executor() -> None:
    executor = open_backend("aer", shots=128, seed=3)
    assert executor.name == "aer" and executor.capabilities.shots and not executor.capabilities.noisy


def test_backends_list_and_show_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_name = {p["name"]: p for p in data["profiles"]}
    assert by_name["fake_torino"]["capabilities"] == {
        "differentiable": False,
        "shots": True,
        "noisy": True,
        "remote": False,
    }
    assert by_name["ibm_torino"]["capabilities"]["remote"] is True
    assert by_name["ibm_torino"]["device"] == {"provider": "ibm_cloud", "name": "ibm_torino"}
    assert {r["pattern"] for r in data["rules"]} >= {"fake_<device>", "ibm_<device>"}
    assert "fake_sherbrooke" in data["fake_devices"]
    assert main(["backends", "list"]) == 0
    table = capsys.readouterr().out
    assert "fake_torino" in table and "local testing mode" in table and "gradients" in table
    assert main(["backends", "show", "fake_kyiv", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runtime"]["mode"] == "job"
    assert main(["backends", "show", "nope"]) == 2
    assert capsys.readouterr().err.startswith("qdt backends show: error: backend: expected a profile")
