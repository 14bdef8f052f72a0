"""Sweep specifications: a TOML grid over instances and TrainConfig fields, expanded into cells.

A spec has three sections::

    [sweep]                       # optional
    name = "paper-layers"
    max_retries = 2               # extra attempts for a cell whose worker died or raised

    [grid]                        # every combination of these lists is one cell
    instance = ["paper", "instances/big.json", { users = 8, servers = 4, seed = 1 }]
    agent = ["classical", "quantum"]
    layers = [1, 3, 6]
    seed = [0, 1, 2]

    [train]                       # TrainConfig values shared by every cell
    episodes = 300

Grid and train keys are TrainConfig fields (``qdt/rl/config.py``); a key qdt does not know is
an error naming it. The string ``"none"`` stands for "no value" (TOML has no null): ``noise =
["none", "depolarizing"]`` sweeps the noiseless case next to a profile. A key that is not a
TrainConfig field is accepted only with the value ``"none"`` (it is then left out).

Instances: ``"paper"`` (the built-in preset), a path to a ``qdt-instance/1`` JSON file (relative
to the spec file), or a table of generator settings (``users``, ``servers``, ``seed`` and any
other :class:`~qdt.problem.generator.GeneratorConfig` field).

Quantum-only settings (``layers``, ``backend``, ``noise``, ``shots``) do not apply to the
classical agent: its cells get ``layers = 0`` and the defaults of the others, so a grid of
agents × layers runs the classical agent once per remaining combination.

Structural problems (unknown sections or keys, empty lists, and a spec without grid keys: an
empty file, a missing or empty ``[grid]``) are raised at once; nothing is trained from defaults
nobody asked for. A value that
cannot make a valid TrainConfig or instance (``layers = -1``, a missing instance file) makes
that cell invalid: it is recorded as failed with the reason and the rest of the sweep runs.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qdt.errors import QdtError, QdtInputError
from qdt.experiments.sweep.cell import QUANTUM_ONLY, Cell, invalid_cell, make_cell
from qdt.problem.generator import GeneratorConfig, generate_instance, paper_instance
from qdt.problem.instance import Instance, load_instance
from qdt.rl.config import TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SECTIONS = ("sweep", "grid", "train")
SWEEP_KEYS = ("name", "max_retries")
INSTANCE_KEY = "instance"
NONE_WORD = "none"
CLASSICAL_LAYERS = 0
DEFAULT_MAX_RETRIES = 2
GRID_FIX = 'list what to sweep, e.g. [grid] agent = ["classical", "quantum"] and seed = [0, 1, 2]'


def train_fields() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(TrainConfig))


@dataclass(frozen=True)
class InstanceSpec:
    """One entry of ``grid.instance``: the preset, a file, or generator settings."""

    label: str
    preset: str | None = None
    path: Path | None = None
    generator: Mapping[str, Any] | None = None

    def load(self) -> Instance:
        if self.preset is not None:
            return paper_instance()
        if self.path is not None:
            return load_instance(self.path)
        assert self.generator is not None
        settings = dict(self.generator)
        seed = settings.pop("seed")
        settings = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
        return generate_instance(GeneratorConfig(**settings), seed)

    def describe(self) -> Any:
        if self.preset is not None:
            return self.preset
        if self.path is not None:
            return str(self.path)
        return dict(self.generator or {})


@dataclass(frozen=True)
class SweepSpec:
    name: str
    instances: tuple[InstanceSpec, ...]
    axes: tuple[tuple[str, tuple[Any, ...]], ...]  # grid keys (TrainConfig fields) in spec order
    fixed: Mapping[str, Any] = field(default_factory=dict)
    max_retries: int = DEFAULT_MAX_RETRIES

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "max_retries": self.max_retries,
            "instances": [spec.describe() for spec in self.instances],
            "grid": {key: list(values) for key, values in self.axes},
            "train": dict(self.fixed),
        }


# ---- parsing ---------------------------------------------------------------------------------
def load_spec(path: str | Path) -> SweepSpec:
    """Read a TOML spec; relative instance paths are taken from the spec file's folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QdtInputError("SPEC", "an existing sweep spec (TOML)", str(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise QdtInputError("SPEC", "a readable UTF-8 TOML file", f"{path}: {error}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise QdtInputError("SPEC", "valid TOML", f"{path}: {error}") from None
    if not data:
        raise QdtInputError("SPEC", "a sweep spec with a [grid] table", f"{path} (no tables in it)", GRID_FIX)
    return parse_spec(data, base_dir=path.parent, default_name=path.stem)


def parse_spec(
    data: Mapping[str, Any], base_dir: Path | None = None, default_name: str = "sweep"
) -> SweepSpec:
    """Validate a spec given as a mapping (the parsed TOML); see the module docstring."""
    if not isinstance(data, Mapping):
        raise QdtInputError("SPEC", "a table with [sweep], [grid] and [train] sections", type(data).__name__)
    base_dir = Path.cwd() if base_dir is None else base_dir
    for key in data:
        if key not in SECTIONS:
            raise QdtInputError(key, "one of the sections [sweep], [grid], [train]", key)
    sweep = _section(data, "sweep")
    grid = _section(data, "grid")
    train = _section(data, "train")
    for key in sweep:
        if key not in SWEEP_KEYS:
            raise QdtInputError(f"sweep.{key}", f"one of {', '.join(SWEEP_KEYS)}", key)
    name = sweep.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise QdtInputError("sweep.name", "a non-empty string", name)
    max_retries = sweep.get("max_retries", DEFAULT_MAX_RETRIES)
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
        raise QdtInputError("sweep.max_retries", "an integer >= 0", max_retries)

    known = train_fields()
    instances = _instances(grid.get(INSTANCE_KEY, ["paper"]), base_dir)
    axes: list[tuple[str, tuple[Any, ...]]] = []
    for key, raw in grid.items():
        if key == INSTANCE_KEY:
            continue
        values = tuple(_none(v) for v in (raw if isinstance(raw, list) else [raw]))
        if not values:
            raise QdtInputError(f"grid.{key}", "a non-empty list of values", raw)
        if key not in known:
            if all(v is None for v in values):
                continue  # a field this qdt does not have yet, left at "no value"
            raise _unknown(f"grid.{key}", key, known)
        if len(set(map(_canonical, values))) != len(values):
            raise QdtInputError(f"grid.{key}", "a list without repeated values", raw)
        axes.append((key, values))
    fixed: dict[str, Any] = {}
    for key, raw in train.items():
        value = _none(raw)
        if isinstance(raw, (list, dict)):
            raise QdtInputError(f"train.{key}", "one value (lists of values go in [grid])", raw)
        if key in grid:
            raise QdtInputError(f"train.{key}", "a key given in [grid] or [train], not both", key)
        if key not in known:
            if value is None:
                continue
            raise _unknown(f"train.{key}", key, known)
        fixed[key] = value
    if not grid:
        got = "an empty [grid]" if "grid" in data else "no [grid]"
        raise QdtInputError("grid", "a [grid] table with at least one key", got, GRID_FIX)
    return SweepSpec(name, instances, tuple(axes), fixed, max_retries)


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = data.get(name, {})
    if not isinstance(section, Mapping):
        raise QdtInputError(name, f"a [{name}] table", section)
    return section


def _unknown(where: str, key: str, known: Sequence[str]) -> QdtInputError:
    return QdtInputError(
        where,
        f"a TrainConfig field ({', '.join(known)})",
        key,
        "see qdt/rl/config.py; this qdt has no such field",
    )


def _none(value: Any) -> Any:
    return None if isinstance(value, str) and value.lower() == NONE_WORD else value


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _instances(raw: Any, base_dir: Path) -> tuple[InstanceSpec, ...]:
    entries = raw if isinstance(raw, list) else [raw]
    if not entries:
        raise QdtInputError("grid.instance", "a non-empty list of instances", raw)
    generator_keys = {f.name for f in dataclasses.fields(GeneratorConfig)} | {"seed"}
    out: list[InstanceSpec] = []
    for k, entry in enumerate(entries):
        where = f"grid.instance[{k}]"
        if entry == "paper":
            out.append(InstanceSpec(label="paper", preset="paper"))
        elif isinstance(entry, str) and entry:
            path = Path(entry)
            out.append(InstanceSpec(label=entry, path=path if path.is_absolute() else base_dir / path))
        elif isinstance(entry, Mapping):
            unknown = sorted(set(entry) - generator_keys)
            if unknown:
                raise QdtInputError(
                    f"{where}.{unknown[0]}",
                    f"a generator setting ({', '.join(sorted(generator_keys))})",
                    unknown[0],
                )
            if "seed" not in entry:
                raise QdtInputError(f"{where}.seed", "the generator seed of the instance", "nothing")
            settings = dict(entry)
            label = " ".join(
                f"{key}={settings[key]}" for key in ("users", "servers", "seed") if key in settings
            )
            extra = [key for key in sorted(settings) if key not in ("users", "servers", "seed")]
            label += "".join(f" {key}={settings[key]}" for key in extra)
            out.append(InstanceSpec(label=label, generator=settings))
        else:
            raise QdtInputError(
                where, '"paper", an instance file path or a table {users, servers, seed}', entry
            )
    if len({spec.label for spec in out}) != len(out):
        raise QdtInputError("grid.instance", "a list without repeated instances", raw)
    return tuple(out)


# ---- expansion -------------------------------------------------------------------------------
def expand_cells(spec: SweepSpec) -> list[Cell]:
    """Every cell of the grid, in spec order (instances outermost), duplicates merged."""
    cells: list[Cell] = []
    seen: set[str] = set()
    grid_keys = [key for key, _ in spec.axes]
    for instance_spec in spec.instances:
        instance: Instance | None = None
        problem: str | None = None
        try:
            instance = instance_spec.load()
        except (QdtError, ValueError, TypeError) as error:
            problem = f"instance {instance_spec.label}: {error}"
        for combination in itertools.product(*(values for _, values in spec.axes)):
            overrides = {**spec.fixed, **dict(zip(grid_keys, combination))}
            cell = _cell(instance_spec, instance, problem, overrides, grid_keys)
            if cell.cell_id not in seen:
                seen.add(cell.cell_id)
                cells.append(cell)
    return cells


def _cell(
    instance_spec: InstanceSpec,
    instance: Instance | None,
    problem: str | None,
    overrides: dict[str, Any],
    grid_keys: Sequence[str],
) -> Cell:
    settings = dict(overrides)
    if settings.get("agent", TrainConfig.agent) == "classical":
        for key in QUANTUM_ONLY:
            settings.pop(key, None)
        settings["layers"] = CLASSICAL_LAYERS
    extra_axes = [k for k in grid_keys if k not in Cell.STANDARD_AXES]
    if problem is None:
        try:
            config = TrainConfig.from_recipe(**settings)  # a "recipe" key picks the base settings
        except (QdtError, ValueError, TypeError) as error:
            problem = f"config: {error}"
        else:
            assert instance is not None
            return make_cell(
                config, instance, instance_spec.label, {k: getattr(config, k) for k in extra_axes}
            )
    return invalid_cell(instance_spec.label, instance_spec.describe(), settings, problem, extra_axes)
