"""Sweeps without Ray: spec parsing and expansion, cell ids, the results table, the cell body."""

import dataclasses
import json

import pytest

from qdt.cli.main import main
from qdt.errors import QdtInputError
from qdt.experiments.sweep import expand_cells, load_spec, make_cell, parse_spec
from qdt.experiments.sweep.cell import config_identity, read_attempts
from qdt.experiments.sweep.table import read_results, write_results
from qdt.experiments.sweep.worker import run_cell
from qdt.problem.generator import paper_instance
from qdt.problem.instance import save_instance
from qdt.rl.config import TrainConfig
from qdt.rl.train import train

TINY = dict(
    episodes=20,
    steps_per_episode=2,
    batch_size=8,
    replay_size=64,
    warmup_transitions=8,
    hidden=8,
    checkpoint_every=5,
)
FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def _spec(grid=None, train=None, sweep=None):
    data = {"grid": grid or {}, "train": {**TINY, **(train or {})}}
    if sweep is not None:
        data["sweep"] = sweep
    return data


def test_grid_expands_to_every_combination_and_classical_ignores_quantum_axes():
    spec = parse_spec(_spec({"agent": ["classical", "quantum"], "layers": [1, 3, 6], "seed": [0, 1]}))
    cells = expand_cells(spec)
    quantum = [c for c in cells if c.axes["agent"] == "quantum"]
    classical = [c for c in cells if c.axes["agent"] == "classical"]
    assert len(quantum) == 3 * 2 and len(classical) == 2  # layers collapse for the classical agent
    assert {(c.config.layers, c.config.seed) for c in quantum} == {(n, s) for n in (1, 3, 6) for s in (0, 1)}
    assert all(c.config.layers == 0 and c.axes["layers"] is None for c in classical)
    assert all(c.config.episodes == 20 and c.instance_label == "paper" for c in cells)
    assert len({c.cell_id for c in cells}) == len(cells)
    assert all(c.cell_id.startswith(("classical-s", "quantum-L")) for c in cells)


def test_cell_ids_are_deterministic_and_follow_config_and_instance_content(tmp_path):
    ids = [c.cell_id for c in expand_cells(parse_spec(_spec({"seed": [0, 1]})))]
    assert ids == [c.cell_id for c in expand_cells(parse_spec(_spec({"seed": [0, 1]})))]
    # Same config and instance given another way: same id.
    save_instance(paper_instance(), tmp_path / "paper.json")
    from_file = expand_cells(
        parse_spec(_spec({"instance": ["paper.json"], "seed": [0, 1]}), base_dir=tmp_path)
    )
    assert [c.cell_id for c in from_file] == ids
    # A cell without a recipe trains qdt train's default on one instance (v5), as qdt train does.
    direct = make_cell(TrainConfig.from_recipe("v5", **TINY, seed=1), paper_instance(), "paper")
    assert direct.cell_id == ids[1]
    assert {c.config.recipe for c in expand_cells(parse_spec(_spec({"seed": [0, 1]})))} == {"v5"}
    assert make_cell(TrainConfig(**TINY, seed=1), paper_instance()).cell_id != ids[1]  # v2: another cell
    # A changed setting or instance changes the id.
    longer = TrainConfig.from_recipe("v5", **{**TINY, "episodes": 21}, seed=1)
    assert make_cell(longer, paper_instance()).cell_id != ids[1]
    data = paper_instance().to_dict()
    data["users"][0]["data_bits"] *= 1.01
    (tmp_path / "other.json").write_text(json.dumps(data))
    other = expand_cells(parse_spec(_spec({"instance": ["other.json"], "seed": [1]}), base_dir=tmp_path))
    assert other[0].cell_id != ids[1]
    # Fields at None are left out of the hash, so a new optional TrainConfig field keeps ids.
    assert "reward_scale" not in config_identity(TrainConfig())


def test_generated_instances_and_their_labels():
    spec = parse_spec(_spec({"instance": ["paper", {"users": 6, "servers": 3, "seed": 2}]}))
    cells = expand_cells(spec)
    assert [c.instance_label for c in cells] == ["paper", "users=6 servers=3 seed=2"]
    assert (cells[1].instance.n_users, cells[1].instance.n_servers) == (6, 3)


@pytest.mark.parametrize(
    "data, field",
    [
        ({"grid": {"no_such_field": [1, 2]}}, "grid.no_such_field"),
        ({"train": {"epsiodes": 3}}, "train.epsiodes"),
        ({"grid": {"seed": [0, 1]}, "train": {"seed": 3}}, "train.seed"),
        ({"grid": {"seed": []}}, "grid.seed"),
        ({"grid": {"seed": [1, 1]}}, "grid.seed"),
        ({"grid": {"instance": [{"users": 4, "servers": 2}]}}, "grid.instance[0].seed"),
        ({"grid": {"instance": [{"users": 4, "seed": 1, "colour": 2}]}}, "grid.instance[0].colour"),
        ({"grid": {"instance": [3]}}, "grid.instance[0]"),
        ({"train": {"layers": [1, 2]}}, "train.layers"),
        ({"sweep": {"max_retries": -1}}, "sweep.max_retries"),
        ({"sweep": {"nme": "x"}}, "sweep.nme"),
        ({"gird": {}}, "gird"),
        ({"grid": {}, "train": {"episodes": 5}}, "grid"),  # no silent defaults: an empty grid
        ({"train": {"episodes": 5}}, "grid"),
        ({}, "grid"),
    ],
)
def test_structural_spec_errors_name_the_key(data, field):
    with pytest.raises(QdtInputError) as caught:
        parse_spec(data)
    assert caught.value.field == field


def test_noise_and_shots_keys_follow_trainconfig():
    """ "none" for a field this TrainConfig lacks is left out; any other value is an error naming it."""
    for key, value in (("noise", "depolarizing"), ("shots", 1024)):
        data = _spec({key: ["none", value]})
        if key in FIELDS:
            cells = expand_cells(parse_spec(data))
            assert [getattr(c.config, key) for c in cells] == [None, value]
        else:
            with pytest.raises(QdtInputError) as caught:
                parse_spec(data)
            assert caught.value.field == f"grid.{key}"
            assert len(expand_cells(parse_spec(_spec({key: ["none"]})))) == 1


def test_bad_values_make_invalid_cells_not_a_failed_spec(tmp_path):
    spec = parse_spec(_spec({"instance": ["paper", "missing.json"], "layers": [1, -1]}), base_dir=tmp_path)
    cells = expand_cells(spec)
    assert len(cells) == 4
    runnable = [c for c in cells if c.runnable]
    assert [(c.instance_label, c.config.layers) for c in runnable] == [("paper", 1)]
    problems = {c.problem for c in cells if not c.runnable}
    assert any("layers" in p for p in problems) and any("missing.json" in p for p in problems)
    assert all(c.cell_id.startswith("invalid-") for c in cells if not c.runnable)


def test_toml_spec_file_and_example_parse(tmp_path):
    (tmp_path / "spec.toml").write_text(
        '[sweep]\nname = "t"\n[grid]\nagent = ["classical"]\nnoise = ["none"]\nseed = [0, 1, 2]\n'
        "[train]\nepisodes = 5\n"
    )
    spec = load_spec(tmp_path / "spec.toml")
    assert spec.name == "t" and len(expand_cells(spec)) == 3
    example = load_spec("examples/sweeps/paper-layers.toml")
    cells = expand_cells(example)
    assert len(cells) == 2 * (3 + 3 * 3) and all(c.runnable for c in cells)


def test_results_table_round_trip_keeps_types(tmp_path):
    rows = [
        {
            "cell_id": "a",
            "status": "ok",
            "layers": 3,
            "feasible": True,
            "gap": 0.1 + 0.2,
            "assignment": [0, 1, 1],
            "config": {"seed": 1, "reward_scale": None},
            "lr_actor": 0.001,
        },
        {"cell_id": "b", "status": "failed", "error": 'OSError: "x",\nline two', "feasible": False},
    ]
    write_results(tmp_path / "r.csv", rows)
    back = read_results(tmp_path / "r.csv")
    assert back[0]["gap"] == 0.1 + 0.2 and back[0]["layers"] == 3 and back[0]["feasible"] is True
    assert back[0]["assignment"] == [0, 1, 1] and back[0]["config"] == {"seed": 1, "reward_scale": None}
    assert back[0]["lr_actor"] == 0.001 and back[0]["error"] is None
    assert back[1]["error"] == 'OSError: "x", line two' and back[1]["feasible"] is False
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_interrupted_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    from qdt.files import atomic_path, atomic_write_text, write_json_atomic

    target = tmp_path / "deep" / "table.csv"
    atomic_write_text(target, "old\r\n", sync_folder=True)  # creates the folder; newlines as given
    assert target.read_bytes() == b"old\r\n"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half a ta")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old\r\n"
    with pytest.raises(ValueError):
        write_json_atomic(target, {"gap": float("nan")})  # not JSON: refused, nothing written
    assert target.read_bytes() == b"old\r\n"
    assert not list(target.parent.glob(".*.tmp"))
    write_json_atomic(target, {"a": [1]})
    assert target.read_text() == '{\n  "a": [\n    1\n  ]\n}\n'


def _strip(records):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in records]


def _metrics(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_cell_body_resumes_from_a_checkpoint_then_reuses_the_finished_run(tmp_path):
    config = TrainConfig(agent="classical", **TINY, seed=2)
    instance = paper_instance()
    straight = train(config, instance, tmp_path / "straight", progress=False)
    cell = tmp_path / "cell"
    train(config, instance, cell, progress=False, stop_after=10)  # an attempt that was cut short

    first = run_cell(config.to_dict(), instance.to_dict(), str(cell))
    assert first["resumed_from_episode"] == 10 and not first["reused"] and first["attempts"] == 1
    strip = lambda s: {k: v for k, v in s.items() if k != "wall_s"}  # noqa: E731
    assert strip(first["summary"]) == strip(straight)
    assert _strip(_metrics(cell)) == _strip(_metrics(tmp_path / "straight"))

    again = run_cell(config.to_dict(), instance.to_dict(), str(cell))
    assert again["reused"] and again["summary"] == first["summary"] and len(read_attempts(cell)) == 1

    # A folder holding another config's run is cleared and trained from the start.
    other = config.replace(seed=3)
    fresh = run_cell(other.to_dict(), instance.to_dict(), str(cell))
    assert fresh["resumed_from_episode"] is None and fresh["summary"]["seed"] == 3
    assert len(_metrics(cell)) == other.episodes


def test_cli_reports_a_bad_spec_in_one_line(tmp_path, capsys):
    (tmp_path / "bad.toml").write_text("[grid]\nlayer = [1, 2]\n")
    assert main(["sweep", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qdt sweep: error: grid.layer: expected a TrainConfig field") and "\n" not in err


def test_cli_refuses_an_unreachable_ray_address_quickly(tmp_path, capsys):
    (tmp_path / "s.toml").write_text('[grid]\nagent = ["classical"]\n[train]\nepisodes = 2\n')
    out = tmp_path / "out"
    args = ["sweep", str(tmp_path / "s.toml"), "--out", str(out), "--ray-address", "127.0.0.1:1"]
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qdt sweep: error: --ray-address: expected the address of a running Ray cluster")
    assert not (out / "results.csv").exists()


def test_a_dry_run_says_why_each_invalid_cell_cannot_run_and_writes_nothing(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text('[grid]\ninstance = ["paper", "missing.json"]\nlayers = [-1, 2]\nagent = ["quantum"]\n')
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    cells = expand_cells(load_spec(spec))
    invalid = [cell for cell in cells if not cell.runnable]
    assert len(cells) == 4 and len(invalid) == 3
    assert "4 cells; 3 invalid" in printed
    for cell in invalid:  # every invalid cell on its own line, with its reason
        (line,) = [line for line in printed.splitlines() if line.startswith(f"  {cell.cell_id} (invalid): ")]
        assert ("missing.json" in line) if cell.instance_label == "missing.json" else ("--layers" in line)
    assert not out.exists()
