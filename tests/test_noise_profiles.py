"""Noise profiles: loading and validation, density == Aer on parametric noise, device noise
(compact model == qiskit-aer's full model, fast path == naive path), calibration snapshots."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.quantum_info import PTM, SuperOp
from qiskit_aer.noise import NoiseModel, depolarizing_error, thermal_relaxation_error
from test_execution_conformance import random_circuit, random_values

from qdt.circuits import build_vqc
from qdt.errors import QdtInputError
from qdt.executors import open_backend
from qdt.noise import NoiseConfig
from qdt.noise.device import DeviceCalibration, compact_device_noise, fake_backend
from qdt.noise.profiles import (
    DeviceNoiseProfile,
    ParametricNoiseProfile,
    load_noise_profile,
    profile_names,
)

PARAMETRIC = ["depol-1e-3", "depol-1e-2", "readout-2e-2", "thermal-ibm-like", "depol-1e-3-readout-2e-2"]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ----------------------------------------------------------------------------- loading


def test_shipped_profiles_load_and_depol_1e_3_is_as_specified():
    assert set(PARAMETRIC) | {"depol-1e-4"} <= set(profile_names())
    profile = load_noise_profile("depol-1e-3")
    assert isinstance(profile, ParametricNoiseProfile) and profile.kind == "parametric"
    noise = profile.to_noise_config()
    assert (noise.depolarizing_1q, noise.depolarizing_2q) == (1e-3, 1e-2)
    assert not noise.has_readout_error and noise.amplitude_damping == noise.phase_damping == 0.0
    thermal = load_noise_profile("thermal-ibm-like").to_noise_config()
    assert thermal.thermal_t1_s == pytest.approx(230e-6) and thermal.gate_time_2q_s == pytest.approx(660e-9)
    for name in profile_names():
        assert load_noise_profile(name).name == name


def test_a_path_works_as_well_as_a_name(tmp_path, monkeypatch):
    text = 'schema = "qdt-noise/1"\n[depolarizing]\none_qubit = 0.02\n'
    path = tmp_path / "mine.toml"
    path.write_text(text)
    assert load_noise_profile(str(path)).to_noise_config().depolarizing_1q == 0.02
    monkeypatch.setenv("QDT_NOISE_MODELS", str(tmp_path))
    assert load_noise_profile("mine").source == str(path)
    with pytest.raises(QdtInputError, match="depol-1e-3"):
        load_noise_profile("no-such-profile")


def test_device_names_resolve_to_fake_backends():
    profile = load_noise_profile("device:fake_manila")
    assert isinstance(profile, DeviceNoiseProfile) and profile.kind == "device"
    assert profile.target.num_qubits == 5
    assert load_noise_profile("device:FakeManilaV2").name == "device:fake_manila"
    assert load_noise_profile("device:brisbane").name == "device:fake_brisbane"
    with pytest.raises(QdtInputError, match="fake device of qiskit_ibm_runtime.fake_provider: .*fake_manila"):
        load_noise_profile("device:fake_nowhere")
    with pytest.raises(QdtInputError, match="aer only"):
        profile.to_noise_config()


TOML_HEADER = 'schema = "qdt-noise/1"\n'


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("[depolarizing]\none_qubit = 1.5\n", "depolarizing.one_qubit"),
        ("[depolarizing]\ntwo_qubit = -0.1\n", "depolarizing.two_qubit"),
        ("[depolarizing]\none_qubit = nan\n", "depolarizing.one_qubit"),
        ("[damping]\namplitude = inf\n", "damping.amplitude"),
        ("[depolarizing]\none_qubit = '0.1'\n", "depolarizing.one_qubit"),
        ("[thermal_relaxation]\nt1_us = 100.0\nt2_us = 250.0\n", "thermal_relaxation.t2_us"),
        ("[thermal_relaxation]\nt1_us = 0.0\nt2_us = 0.0\n", "thermal_relaxation.t1_us"),
        ("[thermal_relaxation]\nt1_us = 100.0\n", "thermal_relaxation.t2_us"),
        ("[thermal_relaxation]\nt1_us = 100.0\nt2_us = 50.0\ngate_time_1q_ns = -1\n", "gate_time_1q_ns"),
        ("[readout]\np1_given_0 = 1.2\n", "readout.p1_given_0"),
        ("[readout]\nmatrices = [[[0.9, 0.2], [0.1, 0.9]]]\n", "readout.matrices[0][0]"),
        ("[readout]\nmatrices = [[[0.9, 0.1, 0.0], [0.1, 0.9]]]\n", "readout.matrices[0]"),
        ("[readout]\nmatrices = [[[0.9, 0.1], [0.1, 0.9]]]\np1_given_0 = 0.1\n", "readout"),
        ("[depolarizing]\none_qbit = 0.1\n", "depolarizing.one_qbit"),
        ("colour = 'red'\n", "colour"),
        ("kind = 'quantum'\n", "kind"),
        ("noiseless_gates = 'rz'\n", "noiseless_gates"),
        ("backend = 'fake_manila'\n", "backend"),
        ("kind = 'device'\n[depolarizing]\none_qubit = 0.1\n", "depolarizing"),
    ],
)
def test_invalid_profiles_are_rejected_naming_the_field(tmp_path, body, field):
    path = tmp_path / "bad.toml"
    path.write_text(TOML_HEADER + body)
    with pytest.raises(QdtInputError) as info:
        load_noise_profile(str(path))
    assert field in info.value.field and str(path) in info.value.field


def test_schema_is_required(tmp_path):
    path = tmp_path / "old.toml"
    path.write_text("[depolarizing]\none_qubit = 0.1\n")
    with pytest.raises(QdtInputError) as info:
        load_noise_profile(str(path))
    assert info.value.field.endswith("schema")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"thermal_t1_s": 1e-4, "thermal_t2_s": 3e-4}, "noise.thermal_t2_s"),
        ({"thermal_t1_s": 1e-4}, "noise.thermal_t2_s"),
        ({"thermal_t1_s": -1e-4, "thermal_t2_s": 1e-4}, "noise.thermal_t1_s"),
        (
            {"thermal_t1_s": 1e-4, "thermal_t2_s": 1e-4, "gate_time_2q_s": float("nan")},
            "noise.gate_time_2q_s",
        ),
    ],
)
def test_noise_config_thermal_validation(kwargs, field):
    with pytest.raises(QdtInputError) as info:
        NoiseConfig(**kwargs)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("t1", "t2", "time"), [(50e-6, 70e-6, 3e-6), (80e-6, 30e-6, 0.5e-6), (1e-4, 2e-4, 1e-5)]
)
def test_thermal_relaxation_is_qiskit_aers_channel(t1, t2, time):
    noise = NoiseConfig(
        depolarizing_1q=0.01,
        depolarizing_2q=0.03,
        thermal_t1_s=t1,
        thermal_t2_s=t2,
        gate_time_1q_s=time,
        gate_time_2q_s=2 * time,
    )
    one = depolarizing_error(0.01, 1).compose(thermal_relaxation_error(t1, t2, time))
    relax = thermal_relaxation_error(t1, t2, 2 * time)
    two = depolarizing_error(0.03, 2).compose(relax.tensor(relax))
    assert np.max(np.abs(PTM(one.to_quantumchannel()).data - noise.gate_channel_ptm("sx", 1))) < 1e-13
    assert np.max(np.abs(PTM(two.to_quantumchannel()).data - noise.gate_channel_ptm("cz", 2))) < 1e-13


# ----------------------------------------------------------------------------- density == aer


def _noise_circuit(seed):
    return random_circuit(3, 14, seed, extras=False)


@pytest.mark.parametrize("name", PARAMETRIC)
def test_density_and_aer_realise_a_profile_identically(name):
    profile = load_noise_profile(name)
    density = open_backend("executor:density", noise=profile.to_noise_config())
    aer = open_backend("executor:aer", noise=profile)
    for seed in range(3):
        circuit, angle_params, weight_params = _noise_circuit(seed)
        angles, weights = random_values(3, seed)
        expected = density.run(density.prepare(circuit, angle_params, weight_params), angles, weights)
        got = aer.run(aer.prepare(circuit, angle_params, weight_params), angles, weights)
        assert torch.max(torch.abs(expected - got)) < 1e-10
    vqc = build_vqc(16, 3)
    x = torch.tensor([[1.0, 0.0] * 8, [0.0] * 16, [1.0] * 16], dtype=torch.float64)
    weights = torch.linspace(0.2, 2.9, vqc.n_weights, dtype=torch.float64)
    expected = density.run(density.prepare_vqc(vqc), vqc.angles(x), weights)
    got = aer.run(aer.prepare_vqc(vqc), vqc.angles(x), weights)
    assert torch.max(torch.abs(expected - got)) < 1e-10


@pytest.mark.parametrize("engine", ["probabilities", "sampler"])
@pytest.mark.parametrize("name", ["depol-1e-2", "thermal-ibm-like"])
def test_aer_shots_agree_with_density_within_four_sigma_at_1e5_shots(name, engine):
    """The sampler engine measures with qiskit-aer's own readout errors (SamplerV2)."""
    shots = 100_000
    noise = load_noise_profile(name).to_noise_config()
    noise = NoiseConfig(**{**noise.__dict__, "readout": ((0.97, 0.03), (0.05, 0.95))})
    density = open_backend("executor:density", noise=noise)
    aer = open_backend(
        "executor:aer", noise=noise, shots=shots, seed=np.random.SeedSequence(3), engine=engine
    )
    for seed in (4, 5):
        circuit, angle_params, weight_params = _noise_circuit(seed)
        angles, weights = random_values(2, seed)
        exact = density.run(density.prepare(circuit, angle_params, weight_params), angles, weights).numpy()
        estimate = aer.run(aer.prepare(circuit, angle_params, weight_params), angles, weights).numpy()
        sigma = np.sqrt(exact * (1 - exact) / shots)
        assert np.all(np.abs(estimate - exact) <= 4 * sigma + 1e-12)


# ----------------------------------------------------------------------------- device noise


def _errors(model):
    return {
        (name, qubits): SuperOp(error).data
        for name, by_qubits in model._local_quantum_errors.items()
        for qubits, error in by_qubits.items()
    }


def test_compact_device_model_equals_qiskit_aers_full_model():
    backend = fake_backend("fake_manila")
    full = NoiseModel.from_backend(backend)
    full_errors = _errors(full)
    physical = [3, 1, 2]
    compact = compact_device_noise(backend.target, physical)
    compact_errors = _errors(compact.model)
    expected = {
        (name, tuple(physical.index(q) for q in qubits)): data
        for (name, qubits), data in full_errors.items()
        if all(q in physical for q in qubits)
    }
    assert set(compact_errors) == set(expected) and len(expected) >= 8
    for key, data in expected.items():
        assert np.allclose(compact_errors[key], data, atol=1e-14)
    for i, q in enumerate(physical):
        assert np.allclose(compact.readout[i], full._local_readout_errors[(q,)].probabilities)


def _naive_counts(backend, isa, readout, values, shots, seed):
    """The naive path: Aer SamplerV2 with NoiseModel.from_backend on the full ISA circuit."""
    from qiskit import ClassicalRegister
    from qiskit_aer.primitives import SamplerV2

    measured = isa.copy()
    register = ClassicalRegister(len(readout), "meas")
    measured.add_register(register)
    measured.measure(list(readout), register)
    options = {"backend_options": {"noise_model": NoiseModel.from_backend(backend)}}
    result = SamplerV2(seed=seed, options=options).run([(measured, values)], shots=shots).result()
    bits = result[0].data.meas
    outcomes = 2 ** len(readout)
    return np.array(
        [[bits[i].get_int_counts().get(k, 0) for k in range(outcomes)] for i in range(values.shape[0])]
    )


def _device_case(profile_name, layers, rows, seed=0):
    vqc = build_vqc(16, layers)
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.integers(0, 2, (rows, 16)), dtype=torch.float64)
    weights = torch.tensor(rng.uniform(0, 2 * math.pi, vqc.n_weights))
    return vqc, vqc.angles(x), weights


def _check_fast_against_naive(device, layers, rows, shots):
    vqc, angles, weights = _device_case(device, layers, rows)
    fast = open_backend("executor:aer", noise=f"device:{device}")
    prepared = fast.prepare_vqc(vqc)
    exact = fast.run(prepared, angles, weights).numpy()
    assert fast.last_run_info["qubits"] < 8 and fast.last_run_info["device"] == f"device:{device}"
    isa = prepared.payload.transpiled
    assert isa.num_qubits == fast.noise.target.num_qubits
    order = {p: i for i, p in enumerate(list(vqc.encoding_params) + list(vqc.weight_params))}
    table = np.concatenate([angles.numpy(), np.tile(weights.numpy(), (rows, 1))], axis=1)
    values = table[:, [order[p] for p in isa.parameters]]
    readout = [prepared.payload.physical_qubits[q] for q in prepared.payload.readout]
    assert readout == list(isa.layout.final_index_layout())
    counts = _naive_counts(fast.noise.backend, isa, readout, values, shots, seed=17)
    assert counts.sum(axis=1).tolist() == [shots] * rows
    sigma = np.sqrt(exact * (1 - exact) / shots)
    assert np.all(np.abs(counts / shots - exact) <= 4 * sigma + 1e-12)
    # and the fast sampled path draws from that same distribution
    sampled = open_backend("executor:aer", noise=f"device:{device}", shots=shots, seed=5)
    estimate = sampled.run(sampled.prepare_vqc(vqc), angles, weights).numpy()
    assert np.all(np.abs(estimate - exact) <= 4 * sigma + 1e-12)
    return exact


def test_fast_device_path_agrees_with_the_naive_path_small():
    _check_fast_against_naive("fake_manila", layers=2, rows=4, shots=20_000)


@pytest.mark.slow
def test_fast_device_path_agrees_with_the_naive_path_fake_brisbane():
    """The case of the speed benchmark: 4-qubit L6 critic circuit on a 127-qubit device."""
    _check_fast_against_naive("fake_brisbane", layers=6, rows=32, shots=8192)


def test_density_refuses_device_profiles_with_the_reason():
    with pytest.raises(QdtInputError, match="aer only"):
        open_backend("executor:density", noise=load_noise_profile("device:fake_manila").to_noise_config())


# ----------------------------------------------------------------------------- snapshots


def test_snapshot_round_trip_gives_the_same_model_and_results(tmp_path):
    backend = fake_backend("fake_manila")
    calibration = DeviceCalibration.from_backend(backend)
    path = tmp_path / "manila.json"
    path.write_text(json.dumps(calibration.to_json()))
    profile = load_noise_profile(str(path))
    assert isinstance(profile, DeviceNoiseProfile) and profile.calibration == calibration
    physical = [0, 1, 2, 3, 4]
    original = _errors(compact_device_noise(backend.target, physical).model)
    restored = _errors(compact_device_noise(profile.target, physical).model)
    assert set(original) == set(restored)
    for key, data in original.items():
        assert np.allclose(restored[key], data, atol=1e-15)
    vqc, angles, weights = _device_case("fake_manila", 2, 3)
    direct = open_backend("executor:aer", noise="device:fake_manila")
    pinned = open_backend("executor:aer", noise=str(path))
    first, second = direct.prepare_vqc(vqc), pinned.prepare_vqc(vqc)
    assert first.payload.physical_qubits == second.payload.physical_qubits
    assert (
        torch.max(torch.abs(direct.run(first, angles, weights) - pinned.run(second, angles, weights))) < 1e-13
    )
    toml = tmp_path / "pinned.toml"
    toml.write_text('schema = "qdt-noise/1"\nkind = "device"\nsnapshot = "manila.json"\n')
    assert load_noise_profile(str(toml)).calibration == calibration


def test_snapshot_caps_t2_like_qiskit_aer():
    calibration = DeviceCalibration.from_backend(fake_backend("fake_brisbane"))
    assert calibration.t2_truncated  # fake_brisbane has qubits with T2 > 2·T1
    for q in calibration.t2_truncated:
        assert calibration.qubits[q].t2_s == 2 * calibration.qubits[q].t1_s


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["qubits"][1].update(t2_s=3 * d["qubits"][1]["t1_s"]), "qubits[1].t2_s"),
        (lambda d: d["qubits"][0].update(t1_s=float("nan")), "qubits[0].t1_s"),
        (lambda d: d["readout"][2].update(p1_given_0=1.5), "readout[2].p1_given_0"),
        (lambda d: d["instructions"][0].update(error=-0.1), "instructions[0].error"),
        (lambda d: d["instructions"][0].update(qubits=[99]), "instructions[0].qubits"),
        (lambda d: d["instructions"][0].update(name="teleport"), "instructions[0].name"),
        (lambda d: d.update(colour="red"), "colour"),
        (lambda d: d["qubits"][0].update(temperature=0.1), "qubits[0].temperature"),
        (lambda d: d.update(format="qdt-noise-snapshot/0"), "format"),
    ],
)
def test_invalid_snapshots_are_rejected_naming_the_field(tmp_path, mutate, field):
    data = DeviceCalibration.from_backend(fake_backend("fake_manila")).to_json()
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(QdtInputError) as info:
        load_noise_profile(str(path))
    assert info.value.field == f"{path}: {field}"


def test_device_profile_runs_only_circuits_without_delays():
    circuit = QuantumCircuit(1)
    circuit.h(0)
    circuit.delay(100, 0)
    circuit.h(0)
    executor = open_backend("executor:aer", noise="device:fake_manila")
    with pytest.raises(QdtInputError, match="delay"):
        executor.prepare(circuit, [], [])
