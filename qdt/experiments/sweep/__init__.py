"""Sweeps: grids of training runs on Ray, resumable, one result row per cell.

Python API::

    from qdt.experiments.sweep import run_sweep, run_cells, make_cell
    result = run_sweep("examples/sweeps/paper-layers.toml", "runs/sweep")   # or a dict, or a SweepSpec
    result.rows          # one dict per cell: axes, status, summary.json keys, run_dir, ...
    result.summary       # one dict per configuration over seeds

    configs = [TrainConfig.from_recipe("v5", agent="classical", seed=s) for s in range(5)]
    cells = [make_cell(config, paper_instance(), "paper") for config in configs]
    run_cells(cells, "runs/mine", max_parallel=2)

See :mod:`qdt.experiments.sweep.spec` for the TOML format and :mod:`qdt.experiments.sweep.engine` for the
guarantees.
"""

from qdt.experiments.sweep.cell import Cell, cell_dir, make_cell
from qdt.experiments.sweep.engine import (
    SweepResult,
    cell_states,
    cell_status,
    check_sweep_folder,
    is_sweep_folder,
    ray_session,
    run_cells,
    run_sweep,
)
from qdt.experiments.sweep.spec import InstanceSpec, SweepSpec, expand_cells, load_spec, parse_spec
from qdt.experiments.sweep.table import RESULTS_FILE, read_results

__all__ = [
    "RESULTS_FILE",
    "Cell",
    "InstanceSpec",
    "SweepResult",
    "SweepSpec",
    "cell_dir",
    "cell_states",
    "cell_status",
    "check_sweep_folder",
    "expand_cells",
    "is_sweep_folder",
    "load_spec",
    "make_cell",
    "parse_spec",
    "ray_session",
    "read_results",
    "run_cells",
    "run_sweep",
]
