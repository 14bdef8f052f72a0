"""The paper's VQC (qdt.circuits): structure, parameter counts and the amplitude encoding."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from qiskit.quantum_info import Statevector

from qdt.circuits import build_vqc, qubits_for_width, ring_pairs
from qdt.circuits.encoding import (
    DENSE_LEVELS,
    FEATURE_OFFSET,
    SMALL_QUBITS,
    AmplitudeEncoder,
    TreeTransform,
    gray,
    gray_walsh_matrix,
)
from qdt.circuits.vqc import MAX_LAYERS, MAX_QUBITS
from qdt.errors import QdtInputError


def _prepared_state(vqc, inputs: torch.Tensor) -> np.ndarray:
    """Statevectors (qiskit's simulation of the bound circuit, no layers) for each input row."""
    angles = vqc.angles(inputs).detach().numpy()
    encoding_only = vqc.circuit.copy()
    encoding_only.data = [ins for ins in encoding_only.data if ins.operation.name in ("ry", "cx")]
    rows = []
    for row in angles:
        bound = encoding_only.assign_parameters(dict(zip(vqc.encoding_params, row.tolist())))
        rows.append(Statevector(bound).data)
    return np.array(rows)


def reference_angles(encoder: AmplitudeEncoder, inputs: torch.Tensor) -> torch.Tensor:
    """The encoding angles by their definition (module docstring of qdt/circuits/encoding.py),
    through plain torch autograd: subtree norms by summing blocks, masked atan2, and each level's
    dense gray_walsh_matrix (O(4**n): the oracle the fast encoder must equal)."""
    amplitudes = encoder.feature_map(inputs)
    batch, n = amplitudes.shape[0], encoder.n_qubits
    lefts, rights = [], []
    for level in range(n):
        blocks = amplitudes.view(batch, 2 ** (level + 1), -1)
        if level == n - 1:  # the leaves: signed amplitudes
            left, right = blocks[:, 0::2, 0], blocks[:, 1::2, 0]
        else:
            squared = (blocks * blocks).sum(2)
            positive = squared > 0
            norms = torch.where(positive, torch.sqrt(torch.where(positive, squared, 1.0)), 0.0)
            left, right = norms[:, 0::2], norms[:, 1::2]
        lefts.append(left)
        rights.append(right)
    left, right = torch.cat(lefts, dim=1), torch.cat(rights, dim=1)
    both_zero = (left == 0) & (right == 0)
    half = torch.atan2(right, torch.where(both_zero, 1.0, left))
    angles = [
        2.0 * half[:, 2**level - 1 : 2 ** (level + 1) - 1] @ torch.as_tensor(gray_walsh_matrix(level))
        for level in range(n)
    ]
    return torch.cat(angles, dim=1)


def _binary_inputs(width: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=width)), dtype=torch.float64)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These tensors are tiny: one thread is faster, and immune to OpenMP spin-waits when
    other processes hold the machine's cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ----------------------------------------------------------------------------- structure


@pytest.mark.parametrize(
    ("width", "layers", "qubits", "weights"),
    [(4, 1, 2, 2), (4, 3, 2, 6), (4, 6, 2, 12), (16, 1, 4, 4), (16, 3, 4, 12), (16, 6, 4, 24)],
)
def test_paper_parameter_counts(width, layers, qubits, weights):
    vqc = build_vqc(width, layers)
    assert vqc.n_qubits == qubits
    assert vqc.n_weights == len(vqc.weight_params) == weights
    assert vqc.n_encoding == 2**qubits - 1
    assert set(vqc.circuit.parameters) == set(vqc.encoding_params) | set(vqc.weight_params)
    assert vqc.encoding_params.name == "enc" and vqc.weight_params.name == "w"


@pytest.mark.parametrize(("qubits", "cz_per_layer"), [(1, 0), (2, 1), (3, 3), (4, 4), (5, 5)])
def test_cz_ring_per_layer(qubits, cz_per_layer):
    layers = 3
    vqc = build_vqc(2**qubits, layers)
    czs = [ins for ins in vqc.circuit.data if ins.operation.name == "cz"]
    assert len(czs) == cz_per_layer * layers
    pairs = [tuple(vqc.circuit.find_bit(q).index for q in ins.qubits) for ins in czs]
    assert pairs[:cz_per_layer] == ring_pairs(qubits)
    if qubits >= 3:
        assert ring_pairs(qubits)[-1] == (qubits - 1, 0)  # the ring closes


def test_layer_order_rx_on_every_qubit_then_ring():
    vqc = build_vqc(16, 2)
    tail = [ins for ins in vqc.circuit.data if ins.operation.name in ("rx", "cz")]
    names = [ins.operation.name for ins in tail]
    assert names == (["rx"] * 4 + ["cz"] * 4) * 2
    rx = [ins for ins in tail if ins.operation.name == "rx"]
    for k, ins in enumerate(rx):
        layer, qubit = divmod(k, 4)
        assert ins.operation.params[0] == vqc.weight_params[layer * 4 + qubit]
        assert vqc.circuit.find_bit(ins.qubits[0]).index == qubit


@pytest.mark.parametrize("qubits", [1, 2, 3, 4])
def test_encoding_tree_gate_counts(qubits):
    vqc = build_vqc(2**qubits, 0)
    counts = vqc.circuit.count_ops()
    assert counts.get("ry", 0) == 2**qubits - 1
    assert counts.get("cx", 0) == 2**qubits - 2


@pytest.mark.parametrize(("width", "qubits"), [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (8, 3), (9, 4)])
def test_qubits_for_width(width, qubits):
    assert qubits_for_width(width) == qubits
    assert build_vqc(width, 1).n_qubits == qubits


# ----------------------------------------------------------------------------- encoding


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5, 6, 7, 8])
def test_every_binary_input_gives_a_distinct_state(width):
    """Exhaustive: all 2^d binary inputs (the all-zero one included) → pairwise distinct states
    (|⟨ψx|ψy⟩| < 1 − 1e-9), prepared by qiskit from the circuit and our angles."""
    vqc = build_vqc(width, 0)
    inputs = _binary_inputs(width)
    states = _prepared_state(vqc, inputs)
    assert np.allclose(np.linalg.norm(states, axis=1), 1.0, atol=1e-12)
    overlaps = np.abs(states.conj() @ states.T)
    np.fill_diagonal(overlaps, 0.0)
    assert overlaps.max() < 1.0 - 1e-9


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5, 7, 8, 16])
def test_encoding_prepares_the_normalised_feature_vector_with_signs(width):
    """angles → state is exactly φ(x)/|φ(x)| (not just up to sign), for real inputs of any sign."""
    vqc = build_vqc(width, 0)
    generator = torch.Generator().manual_seed(width)
    inputs = torch.cat(
        [
            torch.rand(6, width, generator=generator, dtype=torch.float64) * 4 - 2,
            _binary_inputs(width)[:4],
            _binary_inputs(width)[-4:],
        ]
    )
    features = vqc.feature_map(inputs).numpy()
    expected = features / np.linalg.norm(features, axis=1, keepdims=True)
    assert np.allclose(_prepared_state(vqc, inputs), expected, atol=1e-12)


@pytest.mark.parametrize("controls", range(8))
def test_gray_walsh_matrix_is_its_definition(controls):
    """M[j, i] = (−1)^popcount(j & gray(i)) / 2^controls, entry by entry (the matrix is built vectorised)."""
    size = 2**controls
    expected = [
        [(-1.0 if bin(j & gray(i)).count("1") % 2 else 1.0) / size for i in range(size)] for j in range(size)
    ]
    assert gray_walsh_matrix(controls).tolist() == expected


def test_feature_map_definition_and_zero_padding():
    vqc = build_vqc(5, 1)  # 3 qubits, 8 amplitudes, 3 padded with zeros
    x = torch.tensor([[0.0, 1.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    phi = vqc.feature_map(x)[0].tolist()
    assert phi == [-1.0 + FEATURE_OFFSET, 1.0, -1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    state = _prepared_state(vqc, x)[0]
    assert np.allclose(state[5:], 0.0, atol=1e-15)
    single = build_vqc(1, 0)  # d = 1: a fixed reference amplitude instead of a zero pad
    assert single.feature_map(torch.tensor([[0.0], [1.0]])).tolist() == [[-0.5, 1.0], [1.5, 1.0]]


def test_more_qubits_than_needed_pad_with_zeros():
    vqc = build_vqc(3, 1, n_qubits=3)
    assert vqc.n_qubits == 3 and vqc.n_weights == 3
    state = _prepared_state(vqc, torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64))[0]
    assert np.allclose(state[3:], 0.0, atol=1e-15)
    assert np.linalg.norm(state[:3]) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    "rows",
    [
        [[0.0, 0.0, 0.0, 0.0, 0.0]],  # all zero
        [[1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0]],  # one-hot
        [[1.0, 1.0, 1.0, 1.0, 1.0]],
        [[0.25, 0.5, 0.5, 0.5, 0.5]],  # φ(x) = 0: the whole vector vanishes
        [[0.25, 0.5, 0.5, 0.5, 1.0]],  # upper subtrees with zero norm
    ],
)
def test_no_nan_in_angles_or_gradients_at_zero_norms(rows):
    vqc = build_vqc(5, 2)
    x = torch.tensor(rows, dtype=torch.float64, requires_grad=True)
    angles = vqc.angles(x)
    assert torch.isfinite(angles).all()
    weights = torch.linspace(0.1, 1.0, angles.shape[1], dtype=torch.float64)
    (gradient,) = torch.autograd.grad((angles * weights).sum(), x)
    assert torch.isfinite(gradient).all()


def test_encoder_gradients_match_finite_differences():
    vqc = build_vqc(6, 0)
    generator = torch.Generator().manual_seed(3)
    x = (torch.rand(3, 6, generator=generator, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(vqc.angles, (x,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("width", [1, 2, 3, 5, 8, 16])
def test_fast_encoder_matches_its_autograd_definition(width):
    """vqc.angles runs a hand-written backward; values and gradients equal those of plain torch
    autograd through the definition (reference_angles above), zero norms and φ(x) = 0 included."""
    vqc = build_vqc(width, 0)
    generator = torch.Generator().manual_seed(width)
    special = torch.full((2, width), 0.5, dtype=torch.float64)
    special[0, 0] = 0.25  # φ(x) = 0
    x = torch.cat(
        [
            torch.rand(5, width, generator=generator, dtype=torch.float64) * 3 - 1,
            _binary_inputs(min(width, 4)).repeat(1, (width + 3) // 4)[:, :width],
            torch.zeros(1, width, dtype=torch.float64),
            special,
        ]
    ).requires_grad_()
    g = torch.randn(x.shape[0], vqc.n_encoding, generator=generator, dtype=torch.float64)
    fast = vqc.angles(x)
    reference = reference_angles(vqc.encoder, x)
    assert torch.equal(fast, reference) or (fast - reference).abs().max() < 1e-15
    (fast_grad,) = torch.autograd.grad((fast * g).sum(), x)
    (reference_grad,) = torch.autograd.grad((reference * g).sum(), x)
    assert torch.isfinite(fast_grad).all()
    assert (fast_grad - reference_grad).abs().max() < 1e-12


@pytest.mark.parametrize("n", [3, 8, 9])
def test_walsh_levels_match_the_definition(n):
    """From DENSE_LEVELS = 7 on, a level's transform is the fast Walsh–Hadamard one: values and
    gradients still equal the definition, for every input width of the register, padding and
    zero subtrees included; θ → h (what the simulator uses) inverts h → θ."""
    assert (n > DENSE_LEVELS) == (n == 8 or n == 9)
    for width in sorted({1, 2 ** (n - 1) + 1, 2**n}):
        encoder = AmplitudeEncoder.create(width, n)
        generator = torch.Generator().manual_seed(100 * n + width)
        x = torch.rand(5, width, generator=generator, dtype=torch.float64)
        x[1] = (x[1] > 0.5).to(torch.float64)  # binary: zero subtrees in the padding
        x[2] = 0.5
        x[2, 0] = 0.25  # φ(x) = 0: the encoding falls back to |0…0⟩ with zero gradient
        x[3, : width // 2] = 0.5  # a zero left half
        g = torch.randn(5, 2**n - 1, generator=generator, dtype=torch.float64)
        outputs = []
        for encode in (encoder, lambda inputs, e=encoder: reference_angles(e, inputs)):
            inputs = x.clone().requires_grad_()
            angles = encode(inputs)
            outputs.append((angles.detach(), *torch.autograd.grad((angles * g).sum(), [inputs])))
        for fast, reference in zip(*outputs):
            assert torch.isfinite(fast).all()
            torch.testing.assert_close(fast, reference, rtol=0, atol=1e-12)
    transform = TreeTransform.create(n, group_qubits=2)
    half = torch.randn(2**n - 1, 3, dtype=torch.float64)
    torch.testing.assert_close(transform.half_angles(transform.angles(half)), half, rtol=0, atol=1e-12)
    direction = torch.randn_like(half)  # ⟨T h, d⟩ = ⟨h, Tᵀ d⟩ for both maps
    for forward, transposed in (
        (transform.angles, transform.angles_transposed),
        (transform.half_angles, transform.half_angles_transposed),
    ):
        assert abs(float((forward(half) * direction).sum() - (half * transposed(direction)).sum())) < 1e-10


@pytest.mark.parametrize("n", range(1, SMALL_QUBITS + 2))
def test_dense_small_register_path_equals_the_level_by_level_one(n):
    """Up to SMALL_QUBITS the encoder runs DenseEncoding (a few dense tables, batch first); values
    and gradients equal the level-by-level path's for every kind of input width (d = 1, padded,
    full), zero subtrees, a zero left half and φ(x) = 0 included; one qubit more takes the
    level-by-level path itself."""
    for width in sorted({1, 2 ** (n - 1) + 1, 2**n}):
        dense = AmplitudeEncoder.create(width, n)
        assert (dense.dense is not None) == (n <= SMALL_QUBITS)
        levels = AmplitudeEncoder.create(width, n, small_qubits=0)
        assert levels.dense is None
        generator = torch.Generator().manual_seed(10 * n + width)
        x = torch.rand(7, width, generator=generator, dtype=torch.float64) * 3 - 1
        x[1] = (x[1] > 0.5).to(torch.float64)  # binary: ±1 amplitudes, zero padding subtrees
        x[2] = 0.5
        x[2, 0] = 0.25  # φ(x) = 0
        x[3, : max(1, width // 2)] = 0.5  # a zero left half (of the first amplitude, for d = 1)
        x[4] = 0.5  # only φ_0 = −1/2 is non-zero
        x[5, -1] = 0.5  # a zero leaf amplitude on the right
        g = torch.randn(7, 2**n - 1, generator=generator, dtype=torch.float64)
        outputs = []
        for encoder in (dense, levels):
            inputs = x.clone().requires_grad_()
            angles = encoder(inputs)
            outputs.append((angles.detach(), *torch.autograd.grad((angles * g).sum(), [inputs])))
        for fast, reference in zip(*outputs):
            assert torch.isfinite(fast).all()
            torch.testing.assert_close(fast, reference, rtol=0, atol=1e-12)


def test_encoder_builds_in_linear_time_at_twelve_qubits():
    """No O(4**n) table: the 12-qubit encoder (4096 amplitudes) builds in milliseconds (the dense
    one took 6 s) and a batch of 128 goes forward and backward in well under a second."""
    import time

    start = time.perf_counter()
    encoder = AmplitudeEncoder.create(4096, 12)
    built = time.perf_counter() - start
    x = torch.rand(128, 4096, dtype=torch.float64, requires_grad=True)
    angles = encoder(x)
    (gradient,) = torch.autograd.grad(angles.sum(), x)
    assert angles.shape == (128, 4095) and torch.isfinite(gradient).all()
    assert built < 0.5, built  # measured 0.01 s; generous for a loaded machine


def test_encoder_without_input_gradients_builds_no_graph():
    vqc = build_vqc(4, 1)
    assert not vqc.angles(torch.rand(3, 4, dtype=torch.float64)).requires_grad
    with torch.no_grad():
        assert not vqc.angles(torch.rand(3, 4, dtype=torch.float64, requires_grad=True)).requires_grad


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"input_width": 4, "n_layers": 1, "n_qubits": 0}, "n_qubits"),
        ({"input_width": 4, "n_layers": 1, "n_qubits": 1}, "n_qubits"),  # 2 amplitudes < 4
        ({"input_width": 4, "n_layers": -1}, "n_layers"),
        ({"input_width": 0, "n_layers": 1}, "input_width"),
        ({"input_width": 4, "n_layers": 1.5}, "n_layers"),
        ({"input_width": True, "n_layers": 1}, "input_width"),
        ({"input_width": 4, "n_layers": MAX_LAYERS + 1}, "n_layers"),
        ({"input_width": 4, "n_layers": 1, "n_qubits": MAX_QUBITS + 1}, "n_qubits"),
        ({"input_width": 2**MAX_QUBITS + 1, "n_layers": 1}, "input_width"),  # needs MAX_QUBITS + 1
    ],
)
def test_bad_sizes_raise_input_errors_naming_the_field(kwargs, field):
    with pytest.raises(QdtInputError) as info:
        build_vqc(**kwargs)
    assert info.value.field == field
    assert "expected" in str(info.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_inputs_are_rejected(bad):
    vqc = build_vqc(4, 1)
    x = torch.zeros(3, 4, dtype=torch.float64)
    x[1, 2] = bad
    with pytest.raises(QdtInputError) as info:
        vqc.angles(x)
    assert info.value.field == "inputs"
    assert "row 1, column 2" in str(info.value)


def test_large_finite_inputs_whose_sum_overflows_are_accepted():
    """The finiteness check sums the inputs first; a sum that overflows on finite values is checked
    element by element, not refused."""
    x = torch.full((2, 4), 1e308, dtype=torch.float64)
    assert not torch.isfinite(x.sum())
    assert build_vqc(4, 1).angles(x).shape == (2, 3)


@pytest.mark.parametrize("shape", [(4,), (2, 3), (2, 5), (0, 4), (1, 2, 4)])
def test_wrong_input_shapes_are_rejected(shape):
    vqc = build_vqc(4, 1)
    with pytest.raises(QdtInputError) as info:
        vqc.angles(torch.zeros(shape, dtype=torch.float64))
    assert info.value.field == "inputs"
