"""The wheel, installed as a user would, finds its profiles: no checkout, no QDT_* folders.

Builds the wheel from this checkout (hatchling, offline: ``--no-build-isolation``), installs it
into a fresh virtual environment and runs the ``qdt`` command from a folder outside the
checkout. The new environment reuses this one's packages through a ``.pth`` line instead of a
network install (seconds, not minutes); a ``.pth`` line only adds a folder to ``sys.path``, so
this environment's own (editable) qdt never becomes visible there, and the freshly installed
copy comes first. What it checks: ``qdt backends list`` and ``qdt noise list`` show the shipped
profiles (read from ``qdt/_profiles/`` inside the installed package), ``qdt circuit`` runs on
``aer`` with ``--noise depol-1e-3`` (together ~30 s), and ``qdt demo --episodes 20`` completes
(``slow``: about 50 s by itself). Built and installed once per module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_BACKENDS = {p.stem for p in (ROOT / "backends").glob("*.toml")}
SHIPPED_NOISE = {p.stem for p in (ROOT / "noise_models").glob("*.toml")}
CLEARED = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "QDT_BACKENDS_PATH", "QDT_NOISE_MODELS")


class Installed:
    """A fresh environment with the wheel installed, and a folder outside the checkout to run in."""

    def __init__(self, base: Path) -> None:
        self.wheel_dir = base / "dist"
        self.env_dir = base / "env"
        self.cwd = base / "elsewhere"
        self.cwd.mkdir(parents=True)
        self.wheel = build_wheel(self.wheel_dir)
        venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(self.env_dir)
        bindir = "Scripts" if os.name == "nt" else "bin"
        self.python = self.env_dir / bindir / ("python.exe" if os.name == "nt" else "python")
        self.qdt = self.env_dir / bindir / ("qdt.exe" if os.name == "nt" else "qdt")
        self.site = Path(self._ask("import sysconfig; print(sysconfig.get_paths()['purelib'])"))
        reused = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
        (self.site / "_qdt_test_reuse.pth").write_text("\n".join(reused) + "\n", encoding="utf-8")
        _check(
            [sys.executable, "-m", "pip", "--python", str(self.python), "install", "--no-deps",
             "--no-index", "--disable-pip-version-check", "-q", str(self.wheel)],
            cwd=self.cwd,
        )  # fmt: skip

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in CLEARED}
        env["PATH"] = os.pathsep.join([str(self.qdt.parent), env.get("PATH", "")])
        env["MPLBACKEND"] = "Agg"
        return env

    def _ask(self, code: str) -> str:
        return _check([str(self.python), "-c", code], cwd=self.cwd, env=self.env()).stdout.strip()

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return _check([str(self.qdt), *args], cwd=self.cwd, env=self.env(), timeout=timeout)


def build_wheel(out: Path) -> Path:
    """``pip wheel`` of the checkout with this environment's hatchling (the ``test`` extra has it)."""
    try:
        import hatchling  # noqa: F401
    except ImportError:
        pytest.fail("hatchling is missing: install the test extra (./install.sh does)")
    _check(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "-q", "-w", str(out), str(ROOT)],
        cwd=out.parent,
    )  # fmt: skip
    wheels = sorted(out.glob("qdt-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _check(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{argv[:3]} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return Installed(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_carries_both_profile_folders_and_nothing_from_outside_the_package(installed):
    names = zipfile.ZipFile(installed.wheel).namelist()
    shipped = {n for n in names if n.startswith("qdt/_profiles/")}
    assert {f"qdt/_profiles/backends/{name}.toml" for name in SHIPPED_BACKENDS} <= shipped
    assert {f"qdt/_profiles/noise_models/{name}.toml" for name in SHIPPED_NOISE} <= shipped
    assert "qdt/py.typed" in names and "qdt/cli/main.py" in names
    outside = {n.split("/")[0] for n in names} - {"qdt", "qdt-0.1.0.dist-info"}
    assert not outside and not [n for n in names if "__pycache__" in n]


def test_the_installed_qdt_is_the_wheel_and_reads_its_own_profiles(installed):
    code = (
        "import json, qdt; from qdt.noise.profiles import load_noise_profile, noise_model_dirs; "
        "print(json.dumps([qdt.__file__, [str(d) for d in noise_model_dirs()], "
        "load_noise_profile('thermal-ibm-like').source]))"
    )
    where, dirs, source = json.loads(installed._ask(code))
    assert Path(where).is_relative_to(installed.site) and not Path(where).is_relative_to(ROOT)
    shipped = installed.site / "qdt" / "_profiles" / "noise_models"
    assert [Path(d) for d in dirs] == [shipped] and Path(source).parent == shipped


def test_backends_list_finds_the_shipped_profiles_outside_the_checkout(installed):
    data = json.loads(installed.run("backends", "list", "--json").stdout)
    assert {p["name"] for p in data["profiles"]} == SHIPPED_BACKENDS
    shipped = installed.site / "qdt" / "_profiles" / "backends"
    assert [Path(p) for p in data["search_path"]] == [shipped]
    assert all(Path(p["source"]).parent == shipped for p in data["profiles"])


def test_noise_list_finds_the_shipped_profiles_and_a_user_folder_comes_first(installed, tmp_path):
    names = {p["name"] for p in json.loads(installed.run("noise", "list", "--json").stdout)["profiles"]}
    assert names == SHIPPED_NOISE
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "depol-1e-3.toml").write_text(
        'schema = "qdt-noise/1"\ndescription = "mine"\n[depolarizing]\none_qubit = 0.5\n', encoding="utf-8"
    )
    env = installed.env() | {"QDT_NOISE_MODELS": str(mine)}
    result = _check([str(installed.qdt), "noise", "show", "depol-1e-3", "--json"], installed.cwd, env)
    shown = json.loads(result.stdout)
    assert shown["description"] == "mine" and Path(shown["source"]).parent == mine


def test_circuit_runs_on_aer_with_a_shipped_noise_profile(installed):
    out = installed.run(
        "circuit", "--qubits", "2", "--layers", "1", "--inputs", "1,0,0,1", "--backend", "aer",
        "--noise", "depol-1e-3", "--shots", "2000", "--json",
    )  # fmt: skip
    data = json.loads(out.stdout)
    assert data["noise"] == "depol-1e-3" and data["shots"] == 2000
    assert len(data["probs"]) == 4 and abs(sum(data["probs"]) - 1.0) < 1e-9


@pytest.mark.slow  # ~50 s of its own (four agents trained, a fake-device evaluation): over the default
# run's ~20 s per test; the checks above (~30 s together) are what differs from tests/test_demo.py
def test_demo_runs_from_the_installed_wheel(installed):
    out = installed.cwd / "demo"
    argv = ["demo", "--episodes", "20", "--device", "fake_manila", "--workers", "1", "--out", str(out)]
    installed.run(*argv, timeout=600)
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results and (out / "report.html").stat().st_size > 0
