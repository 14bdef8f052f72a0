"""The encoded-state path of the statevector executor (``StatevectorExecutor.run_encoded``): the
amplitude encoding's state φ(x)/|φ(x)| goes straight to the product kernel's layers instead of
through the encoding's angles and the kernel's tree, without gradients at every width and with them
on the dense path (≤ 6 qubits). It must give what the angles give (values to 1e-12, gradients to
1e-10 where the angles are regular, the true gradient where a branch of the encoding is 0 and
they are not), for every readout, and it must not be taken where it would be wrong: with gradients
past 6 qubits, on a circuit whose tree reads the angles in another order, on another executor."""

from __future__ import annotations

import csv

import pytest
import torch

from helpers import benchmark_script
from qdt.circuits import VQC, build_vqc
from qdt.circuits.encoding import AmplitudeEncoder
from qdt.errors import QdtInputError
from qdt.executors.density import DensityExecutor
from qdt.executors.statevector import StatevectorExecutor
from qdt.rl.quantum_layer import QuantumLayer


def _inputs(width: int, rows: int, seed: int) -> torch.Tensor:
    return torch.rand(rows, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("width", [1, 2, 5, 16, 57, 100, 256])
def test_the_encoded_state_is_what_the_encoding_angles_prepare(width: int) -> None:
    """encoder.state(x) has unit rows and equals the state the kernel's tree prepares from
    encoder(x) (with no layers, the probabilities are its squares; its signs show through the
    layers in the next test)."""
    vqc = build_vqc(width, 0)
    executor = StatevectorExecutor()
    prepared = executor.prepare_vqc(vqc)
    x = _inputs(width, 9, width)
    state = vqc.encoder.state(x)
    torch.testing.assert_close(state.norm(dim=1), torch.ones(9, dtype=torch.float64), rtol=0, atol=1e-14)
    from_angles = executor.run(prepared, vqc.encoder(x), torch.zeros(0))
    torch.testing.assert_close(state.square(), from_angles, rtol=0, atol=1e-14)


@pytest.mark.parametrize("width, layers", [(2, 1), (8, 3), (57, 6), (64, 2), (100, 4), (700, 2)])
@pytest.mark.parametrize("readout", ["probs", "expval_z"])
def test_without_gradients_the_encoded_state_gives_what_the_angles_give(width, layers, readout) -> None:
    """Up to 6 qubits (dense path) and past it (grouped), each readout: run_encoded under no_grad
    agrees with run on the encoding's angles to 1e-12, and the encoding's angles are never
    computed (a spy on the encoder would fail the call)."""
    vqc = build_vqc(width, layers)
    executor = StatevectorExecutor()
    prepared = executor.prepare_vqc(vqc)
    weights = (
        torch.rand(vqc.n_weights, generator=torch.Generator().manual_seed(layers), dtype=torch.float64) * 6
    )
    x = _inputs(width, 33, width + layers)
    reference = executor.run(prepared, vqc.encoder(x), weights, readout=readout)
    with torch.no_grad():
        direct = executor.run_encoded(prepared, _NoAngles(vqc.encoder), x, weights, readout=readout)
    torch.testing.assert_close(direct, reference, rtol=0, atol=1e-12)


def test_repeated_calls_reuse_the_circuits_matrix_only_while_the_weights_are_the_same() -> None:
    """A construction calls the circuit N times with the same weights: the dense path keeps the last
    weights' readout matrix. Same weights (a new tensor with the same values): the same probabilities,
    bit for bit, as a fresh computation; weights changed in place (an optimiser step): the new ones."""
    vqc = build_vqc(57, 6)
    executor = StatevectorExecutor()
    prepared = executor.prepare_vqc(vqc)
    weights = torch.rand(vqc.n_weights, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = _inputs(57, 20, 9)
    with torch.no_grad():
        first = executor.run_encoded(prepared, vqc.encoder, x, weights)
        again = executor.run_encoded(prepared, vqc.encoder, x, weights.clone())
        assert torch.equal(first, again)
        tables = prepared.payload.unitary
        assert tables is not None and torch.equal(tables.last_readout[0][1], tables.layers(weights)[1])
        weights.add_(0.25)  # in place, as an optimiser step
        moved = executor.run_encoded(prepared, vqc.encoder, x, weights)
    fresh = executor.run(prepared, vqc.encoder(x), weights)
    torch.testing.assert_close(moved, fresh, rtol=0, atol=1e-12)
    assert not torch.allclose(moved, first)


class _NoAngles:
    """An encoder whose angles may not be asked for (the state path must not need them)."""

    def __init__(self, encoder: AmplitudeEncoder) -> None:
        self.encoder = encoder
        self.n_qubits = encoder.n_qubits
        self.bias = encoder.bias

    def state(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.encoder.state(inputs)

    def validated(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.encoder.validated(inputs)

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the encoding's angles were computed on the state path")


def test_the_empty_feature_map_is_the_zero_state_on_both_paths() -> None:
    """φ(x) = 0 at x = (¼, ½, …, ½): the encoding falls back to |0…0⟩, and so does the state."""
    vqc = build_vqc(8, 2)
    executor = StatevectorExecutor()
    prepared = executor.prepare_vqc(vqc)
    x = torch.full((2, 8), 0.5, dtype=torch.float64)
    x[0, 0] = 0.25
    state = vqc.encoder.state(x)
    assert state[0].tolist() == [1.0] + [0.0] * 7 and abs(float(state[1].norm()) - 1.0) < 1e-14
    weights = torch.linspace(0.1, 1.3, vqc.n_weights, dtype=torch.float64)
    with torch.no_grad():
        direct = executor.run_encoded(prepared, vqc.encoder, x, weights)
    torch.testing.assert_close(direct, executor.run(prepared, vqc.encoder(x), weights), rtol=0, atol=1e-12)


def test_without_gradients_the_dense_path_folds_the_encoding_and_keeps_the_state_near_its_zero(monkeypatch):
    """Without gradients on the dense path the encoding is folded into the circuit's matrix: no
    state is formed for regular rows (a spy on encoder.state counts the rows it gets), the values
    are the angles' to 1e-12; rows within 10⁻⁸ of the encoding's zero, where the fold's rounding
    would be amplified by the division, go through the state, and agree to 1e-12 as well (the
    fold alone is off there by far more: checked with the floor at 0)."""
    from qdt.executors import statevector

    vqc = build_vqc(57, 6)
    executor = StatevectorExecutor()
    prepared = executor.prepare_vqc(vqc)
    weights = torch.linspace(0.1, 5.3, vqc.n_weights, dtype=torch.float64)
    zero = torch.full((1, 57), 0.5, dtype=torch.float64)
    zero[0, 0] = 0.25
    nudge = _inputs(57, 4, 1) - 0.5
    x = torch.cat([_inputs(57, 6, 0), zero + 1e-9 * nudge, zero])
    reference = executor.run(prepared, vqc.encoder(x), weights)
    stated: list[int] = []
    state = vqc.encoder.state

    class Spy(_NoAngles):
        def state(self, inputs: torch.Tensor) -> torch.Tensor:
            stated.append(int(inputs.shape[0]))
            return state(inputs)

    with torch.no_grad():
        folded = executor.run_encoded(prepared, Spy(vqc.encoder), x, weights)
        assert stated == [5]  # the 4 nudged rows and the zero, not the 6 regular ones
        torch.testing.assert_close(folded, reference, rtol=0, atol=1e-12)
        monkeypatch.setattr(statevector, "FOLDED_NORM_FLOOR", 0.0)
        unguarded = executor.run_encoded(prepared, Spy(vqc.encoder), x[:10], weights)
    assert float((unguarded[6:] - reference[6:10]).abs().max()) > 1e-9
    torch.testing.assert_close(unguarded[:6], reference[:6], rtol=0, atol=1e-12)


@pytest.mark.parametrize("width, layers", [(2, 1), (8, 3), (57, 6)])
def test_with_gradients_the_dense_path_takes_the_state_and_gives_the_angles_gradients(width, layers) -> None:
    """Up to 6 qubits, with gradients on (training), run_encoded takes the encoded state too (a spy
    on the encoder would fail the call) and gives the angle path's values (1e-12) and its gradients
    to the inputs and the weights (1e-10) on inputs where the angles are regular."""
    vqc = build_vqc(width, layers)
    executor = StatevectorExecutor()
    prepared = executor.prepare_vqc(vqc)
    weights = torch.rand(vqc.n_weights, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 6
    pull = torch.randn(17, 1 << vqc.n_qubits, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    results = []
    for encoder in (_NoAngles(vqc.encoder), None):
        x = _inputs(width, 17, 7).requires_grad_()
        w = weights.clone().requires_grad_()
        if encoder is None:
            probs = executor.run(prepared, vqc.encoder(x), w)
        else:
            probs = executor.run_encoded(prepared, encoder, x, w)
        results.append((probs.detach(), *torch.autograd.grad((probs * pull).sum(), (x, w))))
    (direct, direct_x, direct_w), (angles, angles_x, angles_w) = results
    torch.testing.assert_close(direct, angles, rtol=0, atol=1e-12)
    torch.testing.assert_close(direct_x, angles_x, rtol=0, atol=1e-10)
    torch.testing.assert_close(direct_w, angles_w, rtol=0, atol=1e-10)
    assert float(direct_x.abs().max()) > 1e-3 and float(direct_w.abs().max()) > 1e-3


def test_where_a_branch_of_the_encoding_is_zero_the_state_path_has_the_true_gradient() -> None:
    """φ(x) of the actor's 57 inputs is 2x − 1 in amplitude 56 and 0 in 57–63 (the padding): at
    x₅₆ = ½ (half the users unplaced) that whole branch of the encoding's tree is 0, its angle
    atan2(0, 0) carries no derivative, and the angle path gives ∂/∂x₅₆ = 0. The map x → φ(x)/|φ(x)|
    is smooth there: the state path's gradient is the central difference's."""
    vqc = build_vqc(57, 6)
    executor = StatevectorExecutor()
    prepared = executor.prepare_vqc(vqc)
    weights = torch.rand(vqc.n_weights, generator=torch.Generator().manual_seed(8), dtype=torch.float64) * 6
    pull = torch.randn(1, 64, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    x = _inputs(57, 1, 10)
    x[0, 56] = 0.5
    assert float(vqc.encoder.feature_map(x)[0, 56:].abs().max()) == 0.0

    def loss(inputs: torch.Tensor) -> torch.Tensor:
        return (executor.run_encoded(prepared, vqc.encoder, inputs, weights) * pull).sum()

    leaf = x.clone().requires_grad_()
    (gradient,) = torch.autograd.grad(loss(leaf), (leaf,))
    step = 1e-6
    with torch.no_grad():
        up, down = x.clone(), x.clone()
        up[0, 56] += step
        down[0, 56] -= step
        central = float((loss(up) - loss(down)) / (2 * step))
    assert abs(central) > 1e-3
    assert float(gradient[0, 56]) == pytest.approx(central, rel=1e-6)


def test_past_six_qubits_gradients_keep_the_angles() -> None:
    """Past the dense path (7 qubits here) a call with gradients goes through the angles and the
    kernel's own backward: the spy refuses it, and the real encoder's call has both gradients."""
    vqc = build_vqc(100, 2)
    executor = StatevectorExecutor()
    prepared = executor.prepare_vqc(vqc)
    x = _inputs(100, 4, 11).requires_grad_()
    weights = torch.linspace(0.1, 2.0, vqc.n_weights, dtype=torch.float64).requires_grad_()
    with pytest.raises(AssertionError, match="angles were computed"):
        executor.run_encoded(prepared, _NoAngles(vqc.encoder), x, weights)
    executor.run_encoded(prepared, vqc.encoder, x, weights)[:, 1:].sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert weights.grad is not None and float(weights.grad.abs().sum()) > 0


def test_with_gradients_the_layer_trains_its_inputs_and_weights() -> None:
    """A QuantumLayer called with gradients on: the inputs and the weights get their gradients, and
    the values equal the no-grad call's."""
    vqc = build_vqc(57, 6)
    layer = QuantumLayer(vqc, StatevectorExecutor())
    x = _inputs(57, 5, 3).requires_grad_()
    probs = layer(x)
    probs[:, 1:].sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert layer.weight.grad is not None and float(layer.weight.grad.abs().sum()) > 0
    with torch.no_grad():
        torch.testing.assert_close(layer(x), probs.detach(), rtol=0, atol=1e-12)


def test_a_tree_that_reads_the_angles_in_another_order_keeps_the_angles() -> None:
    """With the encoding's parameters bound in reverse, encoder(x) prepares another state than
    φ(x)/|φ(x)|: run_encoded must give what those angles give, not the encoded state."""
    vqc = build_vqc(8, 2)
    executor = StatevectorExecutor()
    prepared = executor.prepare(vqc.circuit, list(vqc.encoding_params)[::-1], vqc.weight_params)
    weights = torch.linspace(0.2, 2.0, vqc.n_weights, dtype=torch.float64)
    x = _inputs(8, 6, 9)
    with torch.no_grad():
        result = executor.run_encoded(prepared, vqc.encoder, x, weights)
        straight = executor.run_encoded(executor.prepare_vqc(vqc), vqc.encoder, x, weights)
    torch.testing.assert_close(result, executor.run(prepared, vqc.encoder(x), weights), rtol=0, atol=1e-12)
    assert float((result - straight).abs().max()) > 1e-3


def test_other_executors_run_on_the_angles() -> None:
    """The density-matrix executor has no state path: run_encoded is its run on the angles."""
    vqc = build_vqc(4, 1)
    executor = DensityExecutor()
    prepared = executor.prepare_vqc(vqc)
    weights = torch.tensor([0.3, 1.1], dtype=torch.float64)
    x = _inputs(4, 3, 4)
    with torch.no_grad():
        torch.testing.assert_close(
            executor.run_encoded(prepared, vqc.encoder, x, weights),
            executor.run(prepared, vqc.encoder(x), weights),
            rtol=0,
            atol=0,
        )
        with pytest.raises(AssertionError, match="angles were computed"):
            executor.run_encoded(prepared, _NoAngles(vqc.encoder), x, weights)


def test_bad_weights_and_inputs_are_refused_as_on_the_angle_path() -> None:
    vqc: VQC = build_vqc(8, 2)
    executor = StatevectorExecutor()
    prepared = executor.prepare_vqc(vqc)
    x = _inputs(8, 2, 1)
    with torch.no_grad():
        with pytest.raises(QdtInputError, match="weights"):
            executor.run_encoded(prepared, vqc.encoder, x, torch.zeros(5, dtype=torch.float64))
        with pytest.raises(QdtInputError, match="inputs"):
            executor.run_encoded(prepared, vqc.encoder, x[:, :5], torch.zeros(vqc.n_weights))
        with pytest.raises(QdtInputError, match="finite"):
            executor.run_encoded(prepared, vqc.encoder, x * float("nan"), torch.zeros(vqc.n_weights))
        with pytest.raises(QdtInputError, match="readout"):
            executor.run_encoded(prepared, vqc.encoder, x, torch.zeros(vqc.n_weights), readout="counts")


def test_the_benchmark_script_writes_both_ways_and_their_agreement(tmp_path) -> None:
    """benchmarks/encoded_state.py on a small grid: one row per width and batch, both ways timed,
    outputs agreeing to 1e-12; a bad --widths is refused before any work."""
    script = benchmark_script("encoded_state")
    assert script.main(["--widths", "2-4", "--batches", "3,5", "--repeats", "2", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "encoded_state.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    cells = [(int(row["qubits"]), int(row["batch"])) for row in rows]
    assert cells == [(q, b) for b in (3, 5) for q in (2, 3, 4)]
    assert [int(row["inputs"]) for row in rows[:3]] == [3, 5, 9]  # each needs its row's qubits
    assert all(float(row["angles_ms"]) > 0 and float(row["state_ms"]) > 0 for row in rows)
    assert max(float(row["max_abs_diff"]) for row in rows) < 1e-12
    assert (tmp_path / "encoded_state.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit, match="--widths"):
        script.main(["--widths", "1-14", "--out", str(tmp_path / "bad")])
    assert not (tmp_path / "bad").exists()
