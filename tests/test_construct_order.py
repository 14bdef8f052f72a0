"""benchmarks/construct_order.py: a constructing run decoded in its own order (and guard) places
exactly what `qdt place` places (the policy's own placement), every order gets a row, the guarded
table adds the guard's own completion, and a folder without constructing runs is refused."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import SMALL_CONSTRUCT
from qdt.experiments.bench.generalise import unseen_instances
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import solve
from qdt.rl.config import TrainConfig
from qdt.rl.policy import load_policy
from qdt.rl.train import family_instance, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import construct_order  # noqa: E402


@pytest.mark.parametrize("guard", ["none", "completion"])
def test_each_order_gets_a_row_and_the_run_s_own_order_is_its_placement(tmp_path: Path, guard) -> None:
    changes = {"episodes": 2, "construct_order": "constrained", "construct_guard": guard}
    config = TrainConfig(**{**SMALL_CONSTRUCT, **changes})
    train(config, family_instance(config), tmp_path / "run", progress=False)
    rows = construct_order.order_rows((6, 2), [tmp_path / "run"], unseen=8, limit=20.0, guard=guard)
    assert rows[0][0].startswith("6×2: greedy-with-repair (")
    if guard != "none":
        assert rows[1][0] == "6×2: the guard's completion from the empty placement"
        rows = rows[1:]
    assert [(row[0], row[1]) for row in rows[1:]] == [
        ("classical seed 0 (trained constrained)", "sure"),
        ("classical seed 0 (trained constrained)", "constrained"),
    ]
    instances = unseen_instances((6, 2), 8, tight=True)
    policy = load_policy(tmp_path / "run", instance=instances[0])
    gaps = []
    for instance in instances:
        model = PlacementModel(instance)
        optimum = solve(model, "milp", time_limit_s=20.0)
        if optimum.status != "optimal":
            continue
        policy.rebind(instance, model)
        evaluation = model.evaluate(policy.placement())
        gaps.append(
            evaluation.total_latency_s / optimum.total_latency_s - 1 if evaluation.feasible else np.inf
        )
    assert gaps and rows[2][2:4] == construct_order.summary(gaps)


def test_refuses_a_folder_without_results(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="results.csv"):
        construct_order.main(["--runs", str(tmp_path), "--out", str(tmp_path / "out")])
