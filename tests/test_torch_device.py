"""Torch devices: ``--torch-device`` refused when torch cannot use it; no tensor made on a default device.

* A CUDA device on a machine where torch sees none is one line, exit status 2, before any folder.
* Every executor path, the encoder, the networks and the training loop make their tensors on the
  device of their inputs (or on the CPU, for tables built from numpy and for initial weights),
  never on torch's default device: with the default device set to "meta" and every input on the
  CPU, a tensor made without ``device=`` would be a meta tensor and the computation would break or
  give meta results. The results must equal the plain CPU run exactly.
* Compiled tables follow the inputs to another device, copied once per device
  (``qdt/sim/device.py``): checked on the "meta" device here, and on a GPU where one exists.
* Where CUDA exists: statevector and density on cuda against cpu to 1e-10, and training on cuda
  against cpu within 1e-8, resumed across devices both ways.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit

from qdt.circuits import build_vqc
from qdt.cli.main import main
from qdt.errors import QdtInputError
from qdt.executors import Executor, open_backend
from qdt.executors.density import DensityExecutor
from qdt.executors.parameter_shift import ShiftPlan, differentiable
from qdt.executors.statevector import StatevectorExecutor
from qdt.noise import NoiseConfig
from qdt.problem.generator import paper_instance
from qdt.rl.checkpoint import load_checkpoint
from qdt.rl.config import TrainConfig, check_torch_device, resolve_torch_device
from qdt.rl.quantum_layer import QuantumLayer
from qdt.rl.train import train
from qdt.sim.device import on_device
from qdt.sim.engine import probabilities
from qdt.sim.kernels.fused import PauliKernel
from qdt.sim.kernels.product import ProductKernel
from qdt.sim.kernels.product_density import DensityKernel
from qdt.sim.program import FusedStep, Program

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU: torch.cuda.is_available() is False on this machine",
)
BATCH = 5
# noise on the trainable layers only, not Pauli-diagonal (the ring's pairs one by one), and readout error
LAYER_NOISE = NoiseConfig(
    amplitude_damping=0.02, noiseless_gates=("ry", "cx"), readout=[[0.97, 0.03], [0.05, 0.95]]
)


def _with_rz(circuit: QuantumCircuit) -> QuantumCircuit:
    """The VQC and one more gate: not the product kernel's shape, so the generic program runs it."""
    extended = circuit.copy()
    extended.rz(0.3, 0)
    return extended


@dataclasses.dataclass(frozen=True)
class Case:
    width: int
    layers: int
    executor: Callable[[], Executor]
    runs_on: type  # what the executor compiles the circuit to
    readout: str = "probs"
    circuit: Callable[[QuantumCircuit], QuantumCircuit] | None = None
    readout_qubits: tuple[int, ...] | None = None

    def layer(self) -> QuantumLayer:
        torch.manual_seed(11)  # the layer's weights come from torch's CPU generator
        layer = QuantumLayer(build_vqc(self.width, self.layers), self.executor(), readout=self.readout)
        if self.circuit is not None or self.readout_qubits is not None:
            vqc = layer.vqc
            circuit = vqc.circuit if self.circuit is None else self.circuit(vqc.circuit)
            layer.prepared = layer.executor.prepare(
                circuit, vqc.encoding_params, vqc.weight_params, self.readout_qubits
            )
        return layer


CASES = {
    "statevector-unitary": Case(6, 2, StatevectorExecutor, ProductKernel),
    "statevector-grouped": Case(40, 2, StatevectorExecutor, ProductKernel, readout="expval_z"),
    "statevector-readout-order": Case(6, 1, StatevectorExecutor, ProductKernel, readout_qubits=(2, 0)),
    "statevector-fused-program": Case(6, 2, StatevectorExecutor, Program, circuit=_with_rz),
    "statevector-generic": Case(6, 2, lambda: StatevectorExecutor(fuse=False), Program),
    "density-kernel": Case(
        12, 2, lambda: open_backend("executor:density", noise="depol-1e-3-layers"), DensityKernel
    ),
    "density-kernel-pairs-readout": Case(6, 1, lambda: DensityExecutor(noise=LAYER_NOISE), DensityKernel),
    "density-pauli-kernel": Case(5, 1, lambda: open_backend("executor:density", noise="depol-1e-3"), Program),
    "density-generic": Case(
        3, 1, lambda: DensityExecutor(noise=LAYER_NOISE, method="pauli", fuse=False), Program, "expval_z"
    ),
    "parameter-shift": Case(3, 1, lambda: differentiable(StatevectorExecutor()), ShiftPlan),
}
SIMULATIONS = [name for name, case in CASES.items() if case.runs_on is not ShiftPlan]


def _inputs(width: int) -> torch.Tensor:
    """A batch of inputs made from numpy: on the CPU, whatever torch's default device."""
    return torch.from_numpy(np.random.default_rng(7).random((BATCH, width)))


def _forward_backward(layer: QuantumLayer, x: torch.Tensor) -> list[torch.Tensor]:
    """Outputs, and the gradients of a fixed projection of them for the inputs and the weights."""
    x = x.clone().requires_grad_()
    out = layer(x)
    projection = torch.from_numpy(np.random.default_rng(3).standard_normal(tuple(out.shape)))
    grads = torch.autograd.grad((out * projection.to(out.device)).sum(), [x, layer.weight])
    return [out.detach(), *grads]


def _simulation(layer: QuantumLayer) -> object:
    payload = layer.prepared.payload
    return payload[0] if isinstance(payload, tuple) else payload


def _tensors(value: object, seen: set[int] | None = None) -> list[torch.Tensor]:
    """Every tensor inside a compiled object (dataclasses, tuples, lists, dicts, to any depth)."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return []
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        return [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = [getattr(value, f.name) for f in dataclasses.fields(value)]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, dict):
        items = list(value.values())
    else:
        return []
    return [t for item in items for t in _tensors(item, seen)]


def _small_run(**changes: object) -> TrainConfig:
    """Three episodes of quantum training (v2 recipe) on two environments, small batches and layers."""
    return TrainConfig.from_recipe(
        "v2",
        agent="quantum",
        episodes=3,
        envs=2,
        batch_size=16,
        warmup_transitions=16,
        gradient_steps=2,
        hidden=16,
        **changes,
    )


def _records(run: Path) -> list[dict[str, object]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "wall_s"} for line in lines]


# ---- the refusal ------------------------------------------------------------------------------


def test_cuda_without_a_gpu_is_one_line_before_any_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a GPU machine
    run = tmp_path / "run"
    argv = ["train", "--preset", "paper", "--torch-device", "cuda", "--out", str(run), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(
        "qdt train: error: --torch-device: expected cpu, or cuda on a machine where torch sees a CUDA "
        "GPU, got cuda (use --torch-device cpu, or "
    ), err
    assert ("install a CUDA build of torch" in err) == (torch.version.cuda is None), err
    assert not run.exists()
    assert main(["evaluate", "--run", str(run), "--torch-device", "cuda:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qdt evaluate: error: --torch-device: expected cpu, or cuda on a machine"), err


def test_device_names_are_checked_when_the_config_is_made(tmp_path, capsys):
    for good in ("cpu", "cuda", "cuda:0", "cuda:12"):
        assert check_torch_device(good) == good
    for bad in ("gpu", "cuda:", "cuda:x", "cpu:0", "CUDA", "", 0):
        with pytest.raises(QdtInputError) as error:
            TrainConfig(torch_device=bad)
        assert str(error.value).startswith("--torch-device: expected a torch device: cpu, cuda or cuda:N")
    assert resolve_torch_device("cpu") == torch.device("cpu")
    assert main(["train", "--torch-device", "gpu", "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "--torch-device: expected a torch device: cpu, cuda or cuda:N, got gpu" in capsys.readouterr().err


def test_config_json_records_the_device_only_off_the_cpu_and_old_files_load():
    config = TrainConfig(agent="classical")
    assert "torch_device" not in config.to_dict()  # config.json, checkpoints, sweep cell ids: as before
    assert TrainConfig.from_dict(config.to_dict()) == config
    moved = config.replace(torch_device="cuda:1")
    assert moved.to_dict()["torch_device"] == "cuda:1"
    assert TrainConfig.from_dict(moved.to_dict()) == moved


def test_resume_may_change_the_device_and_nothing_else(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    start = ["train", "--preset", "paper", "--agent", "classical", "--episodes", "2"]
    assert main([*start, "--steps-per-episode", "2", "--out", str(run), "--no-progress"]) == 0
    assert "torch_device" not in json.loads((run / "config.json").read_text())["config"]
    capsys.readouterr()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", "--resume", str(run), "--no-progress", "--torch-device", "cuda"]) == 2
    err = capsys.readouterr().err  # the device's own refusal, not "the run's own value"
    assert err.startswith("qdt train: error: --torch-device: expected cpu, or cuda on a machine"), err
    assert main(["train", "--resume", str(run), "--no-progress", "--torch-device", "cpu", "--json"]) == 0


# ---- nothing on torch's default device ---------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_executors_make_nothing_on_the_default_device(name):
    """Prepared and run with torch's default device "meta", every input on the CPU: the same
    numbers as the plain run."""
    case = CASES[name]
    with torch.device("meta"):
        layer = case.layer()
        on_meta = _forward_backward(layer, _inputs(case.width))
    plain = _forward_backward(case.layer(), _inputs(case.width))
    simulation = _simulation(layer)
    assert isinstance(simulation, case.runs_on)
    if name == "density-pauli-kernel":
        assert isinstance(simulation.kernel, PauliKernel)
    if name == "statevector-fused-program":
        assert any(isinstance(step, FusedStep) for step in simulation.suffix)
    for got, want in zip(on_meta, plain, strict=True):
        assert got.device.type == "cpu"
        assert torch.equal(got, want)


def test_training_makes_nothing_on_the_default_device(tmp_path):
    """Three episodes of quantum training (a shared actor reading observation features; gamma > 0,
    so the target actor scores the next states) with torch's default device "meta": the same run."""
    config = _small_run(layers=1, gamma=0.5, observation="features", seed=5)
    with torch.device("meta"):
        on_meta = train(config, paper_instance(), tmp_path / "meta", progress=False)
    plain = train(config, paper_instance(), tmp_path / "plain", progress=False)
    assert {k: v for k, v in on_meta.items() if k != "wall_s"} == {
        k: v for k, v in plain.items() if k != "wall_s"
    }
    assert _records(tmp_path / "meta") == _records(tmp_path / "plain")
    assert _records(tmp_path / "plain")[-1]["critic_loss"] is not None  # the networks were trained
    saved = [load_checkpoint(tmp_path / run)["agents"][0] for run in ("meta", "plain")]
    for net in ("actor", "critic", "target_actor", "target_critic"):
        for name, tensor in saved[0][net].items():
            assert tensor.device.type == "cpu" and torch.equal(tensor, saved[1][net][name]), (net, name)


# ---- tables follow the inputs to another device, once ------------------------------------------


def test_on_device_copies_once_per_device_and_lets_go():
    vqc = build_vqc(256, 1)  # 8 qubits: the encoder has a Walsh level past its dense block
    prepared = StatevectorExecutor().prepare_vqc(vqc)
    kernel = prepared.payload
    assert on_device(kernel, "cpu") is kernel  # its own device: itself
    moved = on_device(kernel, "meta")
    assert moved is not kernel and on_device(kernel, "meta") is moved  # one copy per device
    assert on_device(moved, "meta") is moved
    assert all(t.device.type == "meta" for t in _tensors(moved))
    assert all(t.device.type == "cpu" for t in _tensors(kernel))  # the original is untouched
    assert moved.groups is kernel.groups  # what holds no tensor is shared, not copied
    encoder = on_device(vqc.encoder, "meta")
    assert vqc.encoder.transform.levels and all(t.device.type == "meta" for t in _tensors(encoder))
    rows = torch.zeros(255, BATCH, dtype=torch.float64, device="meta")  # the tree's 2**8 - 1 angles
    transform = encoder.transform
    for step in (transform.angles, transform.angles_transposed, transform.half_angles):
        assert step(rows).device.type == "meta"  # every Walsh level's tables were copied
    original, copy = weakref.ref(kernel), weakref.ref(moved)
    del kernel, moved, prepared
    gc.collect()
    assert original() is None and copy() is None  # the cache keeps neither alive


@pytest.mark.parametrize("name", SIMULATIONS)
def test_compiled_circuits_run_on_the_device_of_their_inputs(name):
    """A compiled kernel or program called with inputs on another device ("meta" here: shapes only)
    computes there: every table it reads is copied, none stays on the CPU."""
    layer = CASES[name].layer()
    simulation = _simulation(layer)
    angles = layer.vqc.angles(_inputs(layer.vqc.input_width)).to("meta").requires_grad_()
    weights = layer.weight.detach().to("meta").requires_grad_()
    if isinstance(simulation, Program):
        out = probabilities(simulation, angles, weights)
    else:
        out = simulation(angles, weights)
    grads = torch.autograd.grad(out.sum(), [angles, weights])
    assert out.device.type == "meta" and out.shape[0] == BATCH
    assert [(g.device.type, g.shape) for g in grads] == [("meta", angles.shape), ("meta", weights.shape)]
    assert all(t.device.type == "meta" for t in _tensors(on_device(simulation, "meta")))


def test_inputs_on_two_devices_are_refused():
    layer = CASES["statevector-unitary"].layer()
    angles = layer.vqc.angles(_inputs(6))
    with pytest.raises(QdtInputError) as error:
        layer.executor.run(layer.prepared, angles, layer.weight.detach().to("meta"))
    assert str(error.value).startswith(
        "weights: expected a tensor on the angles' device (cpu), got a tensor on meta"
    )


# ---- on a GPU ---------------------------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize("name", list(CASES))
def test_cuda_matches_cpu(name):
    case = CASES[name]
    layer = case.layer()
    x = _inputs(case.width)
    on_cpu = _forward_backward(layer, x)
    on_gpu = _forward_backward(layer.to("cuda"), x.to("cuda"))
    for got, want in zip(on_gpu, on_cpu, strict=True):
        assert got.device.type == "cuda"
        torch.testing.assert_close(got.cpu(), want, rtol=0, atol=1e-10)


def _gpu_config(**changes: object) -> TrainConfig:
    return _small_run(layers=2, seed=2, **changes)


def _close_runs(run: Path, reference: Path) -> None:
    """Metrics and final weights within 1e-8 (float64 reductions run in another order on a GPU)."""
    for got, want in zip(_records(run), _records(reference), strict=True):
        for key in ("reward_mean", "critic_loss", "actor_loss"):
            if want[key] is not None:
                assert abs(got[key] - want[key]) <= 1e-8 * max(1.0, abs(want[key])), (key, got, want)
    saved = [load_checkpoint(folder)["agents"][0] for folder in (run, reference)]
    for net in ("actor", "critic"):
        for name, tensor in saved[0][net].items():
            torch.testing.assert_close(tensor, saved[1][net][name], rtol=0, atol=1e-8)


@needs_cuda
def test_training_on_cuda_matches_cpu_and_resumes_across_devices(tmp_path):
    instance = paper_instance()
    train(_gpu_config(), instance, tmp_path / "cpu", progress=False)
    train(_gpu_config(torch_device="cuda"), instance, tmp_path / "cuda", progress=False)
    _close_runs(tmp_path / "cuda", tmp_path / "cpu")
    for first, then in (("cpu", "cuda"), ("cuda", "cpu")):
        folder = tmp_path / f"{first}-then-{then}"
        train(_gpu_config(torch_device=first), instance, folder, progress=False, stop_after=2)
        train(_gpu_config(torch_device=then), instance, folder, resume=True, progress=False)
        _close_runs(folder, tmp_path / "cpu")
