"""The instance generator's tight preset: what it changes, and that greedy-with-repair misses the
optimum on it far more often than on default instances (qdt/problem/generator.py)."""

import pytest

from qdt.errors import QdtInputError
from qdt.problem.generator import TIGHT, GeneratorConfig, generate_instance, paper_instance, tight_config
from qdt.problem.model import PlacementModel
from qdt.problem.solvers import solve


def _greedy_misses(config_of, seeds):
    """(instances with a feasible placement, of them those where greedy misses the optimum)."""
    feasible = misses = 0
    for seed in seeds:
        model = PlacementModel(generate_instance(config_of(), seed))
        optimum = solve(model, "auto")
        if optimum.status != "optimal":
            continue
        feasible += 1
        greedy = solve(model, "greedy")
        misses += greedy.status != "feasible" or greedy.total_latency_s > optimum.total_latency_s * (1 + 1e-9)
    return feasible, misses


def test_tight_instances_defeat_greedy_far_more_often_than_default_ones():
    seeds = range(30)
    default = _greedy_misses(lambda: GeneratorConfig(users=8, servers=2), seeds)
    tight = _greedy_misses(lambda: tight_config(8, 2), seeds)
    assert default[0] >= 25 and tight[0] >= 20  # most instances of both have a feasible placement
    assert default[1] <= 0.15 * default[0]  # greedy is optimal on nearly every default 8x2 instance
    assert tight[1] >= 0.35 * tight[0]  # and misses on a large share of tight ones (measured: 47%)


def test_tight_preset_changes_only_its_fields_and_defaults_are_unchanged():
    config = tight_config(16, 4, deadline_slack_range=(0.5, 1.5))
    assert (config.share_range, config.spare_slots) == (TIGHT["share_range"], TIGHT["spare_slots"])
    assert config.deadline_slack_range == (0.5, 1.5) and config.capacity_range == (1e9, 2e9)
    instance = generate_instance(config, 3)
    assert instance.meta["config"]["share_range"] == list(TIGHT["share_range"])
    assert generate_instance(config, 3).to_dict() == instance.to_dict()  # seeded
    # The default model (spare_slots = 1) draws what it drew before the option existed.
    assert solve(PlacementModel(paper_instance()), "auto").total_latency_s == pytest.approx(7.7698036865798)
    with pytest.raises(QdtInputError, match="spare_slots"):
        GeneratorConfig(spare_slots=-1)
