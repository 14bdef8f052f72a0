"""Backend profiles: the shipped TOML files, validation naming the field, rules, open_backend, the CLI,
and the registry (each backend declares its options and capabilities; the generic layer imports none)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from qdt.cli.main import main
from qdt.errors import QdtInputError
from qdt.executors import (
    BackendProfile,
    BackendSpec,
    Capabilities,
    list_backend_profiles,
    load_backend_profile,
    open_backend,
    parse_profile,
    profile_capabilities,
    register_backend,
)
from qdt.executors.ibm.settings import ibm_options
from qdt.executors.profiles import backend_dirs
from qdt.executors.statevector import StatevectorExecutor
from qdt.noise import NoiseConfig
from qdt.noise.device import fake_device_names
from qdt.noise.profiles import builtin_profile_dirs

REPO_BACKENDS_DIR = Path(__file__).resolve().parents[1] / "backends"  # what the wheel ships too
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
            device = ibm_options(profile).device
            assert profile.shots
            assert device.local == profile.name.startswith("fake_")
            assert profile_capabilities(profile).remote == (not device.local)
    assert profile_capabilities(profiles["statevector"]).differentiable
    assert isinstance(profiles["density"].noise, NoiseConfig)
    assert profile_capabilities(profiles["density"]).noisy
    torino = ibm_options(profiles["ibm_torino"])
    assert torino.suppression.dynamical_decoupling and torino.runtime.on_timeout == "leave"
    assert torino.device.instance is None  # from the saved account
    text = (REPO_BACKENDS_DIR / "ibm_torino.toml").read_text()
    assert "token" not in text.replace("never a token", "")


def test_a_user_folder_comes_before_the_shipped_profiles_and_a_missing_one_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "aer.toml").write_text(
        'schema = "qdt-backend/1"\nname = "aer"\nexecutor = "aer"\ndescription = "mine"\nshots = 77\n'
    )
    monkeypatch.setenv("QDT_BACKENDS_PATH", str(mine))
    assert backend_dirs() == [mine, *builtin_profile_dirs("backends")]  # shipped, or the checkout's
    profile = load_backend_profile("aer")
    assert (profile.description, profile.shots, profile.source) == ("mine", 77, str(mine / "aer.toml"))
    assert {p.name for p in list_backend_profiles()} == {p.stem for p in REPO_BACKENDS_DIR.glob("*.toml")}
    missing = tmp_path / "typo"
    monkeypatch.setenv("QDT_BACKENDS_PATH", f"{mine}{os.pathsep}{missing}")
    with pytest.raises(QdtInputError, match="QDT_BACKENDS_PATH: expected folders of profiles that exist"):
        load_backend_profile("aer")
    assert main(["backends", "list"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing) in err and "remove it from $QDT_BACKENDS_PATH" in err


def test_the_checkout_folder_counts_only_in_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from qdt.noise import profiles as noise_profiles

    (tmp_path / "backends").mkdir()
    monkeypatch.setattr(noise_profiles, "CHECKOUT_ROOT", tmp_path)
    shipped = noise_profiles.builtin_profile_dirs("backends")  # a wheel's own copy, or none in a checkout
    assert tmp_path / "backends" not in shipped  # site-packages/backends is not qdt's
    (tmp_path / "pyproject.toml").write_text("")
    assert noise_profiles.builtin_profile_dirs("backends") == [*shipped, tmp_path / "backends"]


def test_rules_cover_any_fake_device_and_any_ibm_device() -> None:
    names = fake_device_names()
    assert len(names) > 40 and "fake_kawasaki" in names and "fake_manila" in names
    kawasaki = load_backend_profile("fake_kawasaki")
    assert kawasaki.source == "rule:fake_<device>" and ibm_options(kawasaki).device.local
    cloud = ibm_options(load_backend_profile("ibm_kingston")).device
    assert cloud.provider == "ibm_cloud" and cloud.name == "ibm_kingston"
    assert load_backend_profile("statevector").executor == "statevector"
    with pytest.raises(QdtInputError, match="backend: expected a fake device"):
        load_backend_profile("fake_nosuchdevice")
    with pytest.raises(QdtInputError, match="see `qdt backends list`"):
        load_backend_profile("quantum_annealer")
    bare = load_backend_profile("executor:aer")
    assert (bare.executor, bare.shots, bare.source) == ("aer", None, "executor:aer")
    assert load_backend_profile("aer").shots == 1024  # the shipped profile samples
    with pytest.raises(QdtInputError, match="a profile for the ibm executor") as caught:
        load_backend_profile("executor:ibm")
    assert "fake_<device>" in str(caught.value)


def test_one_fake_device_naming_rule_with_todays_spellings_as_aliases() -> None:
    from qdt.noise.device import fake_backend, fake_backend_class, fake_device_name

    for alias in ("fake_brisbane", "brisbane", "FakeBrisbane", "FAKE_BRISBANE"):
        assert fake_device_name(alias) == "fake_brisbane"
    assert fake_device_name("FakeManilaV2") == fake_device_name("FakeManila") == "fake_manila"
    assert fake_backend_class("manila").__name__ == "FakeManilaV2"
    assert fake_backend("manila") is fake_backend("fake_manila")  # one instance per process
    assert all(name == fake_backend_class(name).backend_name for name in fake_device_names())
    with pytest.raises(QdtInputError) as caught:
        fake_device_name("fake_nowhere", field="device.name")
    assert caught.value.field == "device.name" and "fake_manila, fake_marrakesh" in str(caught.value)
    profile = parse_profile({**IBM_MINIMAL, "device": {"provider": "fake", "name": "FakeManilaV2"}})
    assert ibm_options(profile).device.name == "fake_manila"


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
        (
            {"device": {"provider": "fake", "name": "fake_fractional", "fractional_gates": "true"}},
            "device.fractional_gates",
        ),
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

    assert isinstance(open_backend("statevector"), StatevectorExecutor)
    density = open_backend("density", shots=500, seed=1)
    assert isinstance(density, DensityExecutor) and density.shots == 500 and density.capabilities.noisy
    clean = open_backend("density", noise=NoiseConfig())
    assert not clean.capabilities.noisy
    with pytest.raises(QdtInputError, match="shots: expected no shots"):
        open_backend("statevector", shots=100)
    with pytest.raises(QdtInputError, match="noise: expected no noise") as caught:
        open_backend("fake_manila", noise=NoiseConfig())
    assert "its own noise" in str(caught.value)
    with pytest.raises(QdtInputError, match="shots"):
        open_backend("density", shots=-1)
    profile = BackendProfile(
        name="inline", executor="density", shots=None, noise=NoiseConfig(depolarizing_1q=0.01)
    )
    assert open_backend(profile).capabilities.differentiable


def test_unknown_options_name_the_option_and_the_accepted_ones() -> None:
    with pytest.raises(QdtInputError) as caught:
        open_backend("executor:aer", method="pauli")
    assert caught.value.field == "method"
    for accepted in ("engine", "mode", "noise", "seed", "shots"):
        assert accepted in caught.value.expected
    density = open_backend("executor:density", method="pauli", noise="depol-1e-3", seed=3)
    assert density.method == "pauli" and density.noise is not None and density.noise.depolarizing_2q == 1e-2
    aer = open_backend("executor:aer", shots=64, mode="gaussian", engine="probabilities")
    assert (aer.mode, aer.shots) == ("gaussian", 64)
    with pytest.raises(QdtInputError, match="mode"):  # the aer profile samples 1024 shots
        open_backend("aer", mode="exact")


def test_shots_have_one_limit_everywhere(tmp_path: Path) -> None:
    from qdt.executors import MAX_SHOTS, validate_shots

    assert MAX_SHOTS == 10_000_000 and validate_shots(MAX_SHOTS) == MAX_SHOTS
    for bad in (0, -1, MAX_SHOTS + 1, 2.5, True, "8"):
        with pytest.raises(QdtInputError, match=f"shots: expected an integer from 1 to {MAX_SHOTS}"):
            validate_shots(bad)
    for backend in ("executor:density", "executor:aer", "fake_manila"):
        with pytest.raises(QdtInputError, match=str(MAX_SHOTS)):
            open_backend(backend, shots=MAX_SHOTS + 1, job_dir=tmp_path)
    with pytest.raises(QdtInputError, match="x.toml: shots"):
        parse_profile({**IBM_MINIMAL, "shots": MAX_SHOTS + 1}, where="x.toml")


def test_a_backend_registered_at_run_time_joins_with_its_own_options_and_capabilities() -> None:
    from qdt.executors import OpenRequest, backend_spec, executor_names
    from qdt.executors.registry import _BACKENDS

    made: list[OpenRequest] = []

    def factory(request: OpenRequest) -> StatevectorExecutor:
        made.append(request)
        return StatevectorExecutor(**request.options)

    spec = BackendSpec(
        name="lab",
        factory=factory,
        capabilities=lambda profile: Capabilities(True, False, False, profile.seed is not None),
        options=("fuse",),
    )
    register_backend(spec)
    try:
        assert "lab" in executor_names() and backend_spec("lab") is spec
        profile = parse_profile({"schema": "qdt-backend/1", "name": "x", "executor": "lab", "seed": 4})
        assert profile_capabilities(profile).remote  # asked of the spec, nothing opened
        executor = open_backend(profile, fuse=False, job_dir=Path("unused"))
        assert isinstance(executor, StatevectorExecutor) and not executor.fuse
        assert made[0].seed == 4 and made[0].options == {"fuse": False}
        with pytest.raises(QdtInputError, match="x: shots"):
            parse_profile({"schema": "qdt-backend/1", "name": "x", "executor": "lab", "shots": 3}, where="x")
    finally:
        _BACKENDS.pop("lab")


def test_the_generic_layer_imports_no_backend() -> None:
    """base, registry and profiles import no backend module, even inside functions."""
    import ast
    import inspect

    import qdt.executors.base
    import qdt.executors.profiles
    import qdt.executors.registry

    backends = ("statevector", "density", "aer", "ibm", "parameter_shift", "catalog")
    for module in (qdt.executors.base, qdt.executors.registry, qdt.executors.profiles):
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            for name in names:
                assert not any(name.startswith(f"qdt.executors.{b}") for b in backends), name


def test_aer_profile_opens_the_aer_executor() -> None:
    executor = open_backend("aer", shots=128, seed=3)
    assert executor.name == "aer" and executor.capabilities.shots and not executor.capabilities.noisy
    assert executor.capabilities == profile_capabilities(load_backend_profile("aer"))


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
    assert by_name["density"]["capabilities"]["differentiable"] and by_name["aer"]["shots"] == 1024
    assert "fake_sherbrooke" in data["fake_devices"]
    assert main(["backends", "list"]) == 0
    table = capsys.readouterr().out
    assert "fake_torino" in table and "local testing mode" in table and "gradients" in table
    assert main(["backends", "show", "fake_kyiv", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runtime"]["mode"] == "job"
    assert main(["backends", "show", "nope"]) == 2
    assert capsys.readouterr().err.startswith("qdt backends show: error: backend: expected a profile")
