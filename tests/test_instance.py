import json

import numpy as np
import pytest

from qdt.errors import QdtInputError
from qdt.problem.generator import GeneratorConfig, generate_instance, paper_instance
from qdt.problem.instance import FORMAT, Instance, load_instance, save_instance
from qdt.problem.model import PlacementModel


def _write(tmp_path, data):
    path = tmp_path / "i.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_roundtrip_is_exact(tmp_path):
    instance = generate_instance(GeneratorConfig(users=5, servers=3), seed=11)
    path = tmp_path / "x.json"
    save_instance(instance, path)
    loaded = load_instance(path)
    assert loaded.to_dict() == instance.to_dict()
    np.testing.assert_array_equal(loaded.channel_gain, instance.channel_gain)
    assert json.loads(path.read_text())["format"] == FORMAT


def test_generator_is_deterministic_and_seed_sensitive():
    a = generate_instance(GeneratorConfig(), 3).to_dict()
    b = generate_instance(GeneratorConfig(), 3).to_dict()
    c = generate_instance(GeneratorConfig(), 4).to_dict()
    assert a == b
    assert a["channel_gain"] != c["channel_gain"]


def test_paper_preset_matches_table_2_and_latency_order():
    inst = paper_instance()
    assert (inst.n_users, inst.n_servers) == (4, 2)
    assert inst.bandwidth_hz == 10e6
    assert inst.noise_power_w == pytest.approx(10 ** (-17.4) * 1e-3)
    assert all(u.tx_power_w == 0.1 for u in inst.users)
    assert all(300e6 <= u.data_bits <= 500e6 for u in inst.users)
    assert all(1e9 <= s.capacity <= 2e9 for s in inst.servers)
    latency = PlacementModel(inst).latency
    assert 1.0 < latency.min() and latency.max() < 3.5  # the paper's order of 1–2 s


def test_generated_latencies_are_of_the_papers_order():
    values = np.concatenate(
        [PlacementModel(generate_instance(GeneratorConfig(), s)).latency.ravel() for s in range(50)]
    )
    assert 1.0 < np.median(values) < 2.5


def _valid():
    return paper_instance().to_dict()


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d.pop("bandwidth_hz"), "bandwidth_hz"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d.update(format="qdt-instance/2"), "format"),
        (lambda d: d.update(bandwidth_hz=0), "bandwidth_hz"),
        (lambda d: d.update(noise_power_w=-1.0), "noise_power_w"),
        (lambda d: d.update(bandwidth_hz="10MHz"), "bandwidth_hz"),
        (lambda d: d.update(users=[]), "users"),
        (lambda d: d.update(servers=[]), "servers"),
        (lambda d: d["users"][2].update(deadline_s=0.0), "users[2].deadline_s"),
        (lambda d: d["users"][1].pop("data_bits"), "users[1].data_bits"),
        (lambda d: d["users"][1].update(colour="red"), "users[1].colour"),
        (lambda d: d["servers"][0].update(max_users=1.5), "servers[0].max_users"),
        (lambda d: d["servers"][1].update(max_users=0), "servers[1].max_users"),
        (lambda d: d["channel_gain"].pop(), "channel_gain"),
        (lambda d: d["compute_rate"][0].append(1.0), "compute_rate[0]"),
        (lambda d: d["compute_rate"][3].__setitem__(1, -2.0), "compute_rate[3][1]"),
        (lambda d: d.update(users=[{"data_bits": 1, "tx_power_w": 1, "deadline_s": 1}]), "channel_gain"),
        (lambda d: d.update(meta=[1]), "meta"),
        # the loader's fast path checks whole columns; the slow one still names the first bad entry
        (lambda d: d["compute_rate"][1].__setitem__(0, True), "compute_rate[1][0]"),
        (lambda d: d["channel_gain"][0].__setitem__(1, 10**400), "channel_gain[0][1]"),
        (lambda d: d["channel_gain"].__setitem__(2, "row"), "channel_gain[2]"),
        (lambda d: d["users"][3].update(tx_power_w="0.1"), "users[3].tx_power_w"),
        (lambda d: d["users"][0].update(data_bits=10**400), "users[0].data_bits"),
        (lambda d: d["users"].__setitem__(1, [1, 2, 3]), "users[1]"),
    ],
)
def test_bad_fields_are_named(tmp_path, mutate, field):
    data = _valid()
    mutate(data)
    with pytest.raises(QdtInputError) as info:
        load_instance(_write(tmp_path, data))
    assert str(info.value).startswith(field + ":"), str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["{", "[]", "null", '{"format": NaN}', "", '"x"'])
def test_malformed_json_is_an_input_error(tmp_path, text):
    with pytest.raises(QdtInputError):
        load_instance(_write(tmp_path, text))


def test_non_finite_number_literal_is_rejected(tmp_path):
    text = json.dumps(_valid()).replace('"bandwidth_hz": 10000000.0', '"bandwidth_hz": Infinity')
    assert "Infinity" in text
    with pytest.raises(QdtInputError, match="finite"):
        load_instance(_write(tmp_path, text))


def test_instance_is_immutable():
    inst = paper_instance()
    with pytest.raises(ValueError):
        inst.channel_gain[0, 0] = 1.0
    assert isinstance(inst, Instance)


def test_integer_entries_load_as_the_same_floats(tmp_path):
    data = _valid()
    data["compute_rate"] = [[int(v) for v in row] for row in data["compute_rate"]]
    data["users"][0]["data_bits"] = int(data["users"][0]["data_bits"])
    loaded = load_instance(_write(tmp_path, data))
    assert loaded.compute_rate.dtype == np.float64
    assert loaded.compute_rate.tolist() == [[float(v) for v in row] for row in data["compute_rate"]]
    assert (
        type(loaded.users[0].data_bits) is float
        and loaded.users[0].data_bits == data["users"][0]["data_bits"]
    )
