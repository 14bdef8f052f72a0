"""Recipe v5: v4 with input scaling of the quantum actor (``input_scaling = "affine"``,
qdt/rl/quantum_layer.py: a trained scale and shift of each input before the amplitude encoding) and
label smoothing of the imitation (``label_smoothing``, qdt/rl/construct.py). The scaling starts as
the plain layer, trains at the classical learning rate and reaches every path that binds the
circuit's angles itself (``qdt infer``'s PUBs); the smoothing is the cross-entropy at 0 and bounds
the fitted logits; a v5 run records both and resumes bit-identically."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from qdt.circuits import build_vqc
from qdt.errors import QdtInputError
from qdt.executors import open_backend
from qdt.problem.generator import generate_instance, tight_config
from qdt.rl.checkpoint import load_checkpoint
from qdt.rl.config import RECIPES, V5_SETTINGS, TrainConfig
from qdt.rl.construct import NO_LOGIT, smoothed_cross_entropy
from qdt.rl.quantum_layer import QuantumLayer
from qdt.rl.train import Trainer, train

SMALL = dict(
    episodes=12, envs=8, batch_size=8, replay_size=8, gradient_steps=8, hidden=16, checkpoint_every=5
)


def _layers(width: int = 11, layers: int = 2) -> tuple[QuantumLayer, QuantumLayer]:
    """A plain layer and a scaled one with the same circuit weights."""
    executor = open_backend("statevector", seed=np.random.SeedSequence(0))
    vqc = build_vqc(input_width=width, n_layers=layers)
    plain = QuantumLayer(vqc, executor)
    scaled = QuantumLayer(vqc, executor, input_scaling=True)
    scaled.weight.data.copy_(plain.weight.data)
    return plain, scaled


def test_v5_is_v4_with_input_scaling_and_label_smoothing_recorded_only_when_not_its_recipes():
    assert {k: v for k, v in RECIPES["v5"].items() if RECIPES["v4"].get(k) != v} == V5_SETTINGS
    assert V5_SETTINGS == {"input_scaling": "affine", "label_smoothing": 0.1}
    v5 = TrainConfig.from_recipe("v5")
    assert v5.input_scaling == "affine" and "input_scaling" not in v5.to_dict()
    assert TrainConfig.from_dict(v5.to_dict()) == v5
    for recipe, other in (("v5", "none"), ("v4", "affine"), ("v2", "affine")):
        config = TrainConfig.from_recipe(recipe, input_scaling=other)
        assert (
            config.to_dict()["input_scaling"] == other and TrainConfig.from_dict(config.to_dict()) == config
        )
    # a v4 folder written before the field existed reads as it was trained: no scaling
    saved = {k: v for k, v in TrainConfig.from_recipe("v4").to_dict().items() if k != "input_scaling"}
    assert TrainConfig.from_dict(saved).input_scaling == "none"
    with pytest.raises(QdtInputError, match="--input-scaling: expected one of none, affine"):
        TrainConfig.from_recipe("v5", input_scaling="diagonal")


def test_a_scaled_layer_starts_as_the_plain_one_and_its_scale_and_shift_learn():
    plain, scaled = _layers()
    x = torch.rand(5, 11, dtype=torch.float64)
    assert torch.allclose(plain(x), scaled(x), atol=1e-12)  # a = 1, b = 0 at the start
    loss = (scaled(x) * torch.arange(2**4, dtype=torch.float64)).sum()
    loss.backward()
    assert scaled.input_scale.grad is not None and scaled.input_shift.grad is not None
    assert float(scaled.input_scale.grad.abs().sum()) > 0 and float(scaled.input_shift.grad.abs().sum()) > 0
    with torch.no_grad():
        scaled.input_scale.mul_(torch.linspace(0.2, 3.0, 11, dtype=torch.float64))
        scaled.input_shift.add_(0.1)
    assert not torch.allclose(plain(x), scaled(x), atol=1e-6)
    # the encoding reads a ⊙ x + b: the plain layer on the scaled inputs gives the same output
    moved = x * scaled.input_scale.detach() + scaled.input_shift.detach()
    assert torch.allclose(plain(moved), scaled(x), atol=1e-12)


def test_callers_that_bind_the_angles_themselves_get_the_scaled_encoding():
    """``qdt infer`` and the devices bench submit (circuit, angles, weights) PUBs of their own."""
    _, scaled = _layers()
    with torch.no_grad():
        scaled.input_scale.mul_(torch.linspace(0.5, 2.0, 11, dtype=torch.float64))
        scaled.input_shift.sub_(0.2)
    x = torch.rand(4, 11, dtype=torch.float64)
    (probs,) = scaled.executor.run_many([(scaled.prepared, scaled.angles(x), scaled.weight.detach())])
    assert torch.allclose(probs, scaled(x).detach(), atol=1e-12)


def test_the_circuit_weights_alone_take_lr_quantum():
    instance = generate_instance(tight_config(6, 2), 1)
    for recipe, scaled in (("v4", False), ("v5", True)):
        config = TrainConfig.from_recipe(recipe, agent="quantum", layers=2, lr_quantum=0.05, **SMALL)
        nets = Trainer(config, instance).agents[0]
        groups = nets.actor_optimizer.param_groups
        circuit = [g for g in groups if g["lr"] == 0.05]
        assert len(circuit) == 1 and circuit[0]["params"] == [nets.actor.front.weight]
        classical = {id(p) for g in groups if g["lr"] == config.lr_actor for p in g["params"]}
        front = nets.actor.front
        assert id(front.input_scale) in classical if scaled else front.input_scale is None


def test_a_v5_run_trains_its_scaling_and_resumes_bit_identically(tmp_path):
    config = TrainConfig.from_recipe("v5", agent="quantum", layers=2, seed=2, **SMALL)
    instance = generate_instance(tight_config(6, 2), 1)
    full = train(config, instance, tmp_path / "full", progress=False)
    assert train(config, instance, tmp_path / "part", progress=False, stop_after=7)["stopped_early"]
    resumed = train(config, instance, tmp_path / "part", resume=True, progress=False)
    weights = [load_checkpoint(tmp_path / name)["agents"][0]["actor"] for name in ("full", "part")]
    assert set(weights[0]) == set(weights[1]) and all(
        torch.equal(weights[0][k], weights[1][k]) for k in weights[0]
    )
    assert not torch.equal(weights[0]["front.input_scale"], torch.ones_like(weights[0]["front.input_scale"]))
    assert full["assignment"] == resumed["assignment"] and full["feasible"]
    saved = json.loads((tmp_path / "full" / "config.json").read_text())["config"]
    assert saved["recipe"] == "v5" and "input_scaling" not in saved


def test_label_smoothing_is_the_cross_entropy_at_zero_and_bounds_the_fitted_logits():
    allowed = torch.tensor([[True, True, False, True], [True, False, True, True]])
    target = torch.tensor([1, 3])
    start = torch.randn(2, 4, dtype=torch.float64)
    masked = torch.where(allowed, start, torch.tensor(NO_LOGIT, dtype=torch.float64))
    plain = torch.nn.functional.cross_entropy(masked, target)
    assert torch.allclose(smoothed_cross_entropy(masked, allowed, target, 0.0), plain)
    # fitted to convergence: the label keeps 1 - e + e/k, the other allowed servers e/k each, a masked one 0
    logits = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([logits], lr=0.1)
    for _ in range(3000):
        z = torch.where(allowed, logits, torch.tensor(NO_LOGIT, dtype=torch.float64))
        loss = smoothed_cross_entropy(z, allowed, target, 0.3)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    p = torch.softmax(torch.where(allowed, logits, torch.tensor(NO_LOGIT, dtype=torch.float64)), dim=1)
    expected = torch.tensor([[0.1, 0.8, 0.0, 0.1], [0.1, 0.0, 0.1, 0.8]], dtype=torch.float64)
    assert torch.isfinite(loss) and torch.allclose(p.detach(), expected, atol=1e-3)


def test_label_smoothing_belongs_to_constructing_actors_and_is_recorded_off_its_recipes_value():
    assert TrainConfig.from_recipe("v5").label_smoothing == RECIPES["v5"]["label_smoothing"]
    assert "label_smoothing" not in TrainConfig.from_recipe("v5").to_dict()
    changed = TrainConfig.from_recipe("v4", label_smoothing=0.2)
    assert changed.to_dict()["label_smoothing"] == 0.2 and TrainConfig.from_dict(changed.to_dict()) == changed
    with pytest.raises(QdtInputError, match="--label-smoothing: expected 0 unless --decode construct"):
        TrainConfig.from_recipe("v2", label_smoothing=0.1)
    with pytest.raises(QdtInputError, match=r"--label-smoothing: expected a finite number in \[0, 0.5\]"):
        TrainConfig.from_recipe("v5", label_smoothing=0.7)


def test_qdt_train_trains_v5_on_one_instance_says_so_in_its_help_and_hints_at_other_recipes(tmp_path, capsys):
    from qdt.cli.main import main

    run = tmp_path / "one"
    argv = ["train", "--preset", "paper", "--agent", "classical", "--episodes", "2", "--no-progress"]
    assert main([*argv, "--out", str(run)]) == 0
    saved = json.loads((run / "config.json").read_text())["config"]
    assert saved["recipe"] == "v5" and saved["learner"] == "elite" and saved["decode"] == "construct"
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "(default: v5 on one instance, v2 with --family)" in shown
    assert "episodes N_e (default: 100 on one instance, 1000 with --family)" in shown
    assert "steps per episode N_t (default: 10)" in shown  # the same under both: one value
    # a flag of another recipe than the default: refused before any work, naming the recipe to use
    assert main([*argv, "--exploration", "gaussian", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--exploration" in err and "--recipe v2 (the default before v5)" in err
    assert main([*argv, "--recipe", "v4", "--exploration", "gaussian", "--out", str(tmp_path / "y")]) == 2
    assert "the default before" not in capsys.readouterr().err  # the recipe was named: no hint
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
