"""Instance families (qdt/problem/family.py) and per-copy instances in BatchedPlacementEnv."""

import json

import numpy as np
import pytest

from qdt.errors import QdtInputError
from qdt.problem.env import BatchedPlacementEnv, PlacementEnv
from qdt.problem.family import (
    FAMILY_STREAM,
    HELD_OUT_KEY,
    KNOWN_KEYS,
    TRAIN_KEY,
    Family,
    parse_family,
)
from qdt.problem.generator import TIGHT, GeneratorConfig, generate_instance, tight_config
from qdt.problem.instance import Instance
from qdt.problem.model import PlacementModel


def _arrays(instance: Instance) -> list[np.ndarray]:
    return [
        instance.channel_gain,
        instance.compute_rate,
        instance.data_bits,
        instance.tx_power_w,
        instance.deadline_s,
        instance.capacity,
        instance.max_users,
    ]


def _same(a: Instance, b: Instance) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(b)))


# ---- parsing ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        ("users=4,servers=2,colour=red", "--family colour", "one of the keys users, servers, tight, seed"),
        ("users=4,servers=2,users=5", "--family users", "each key once"),
        ("servers=2", "--family users", "the number of users"),
        ("users=4", "--family servers", "the number of servers"),
        ("users=0,servers=2", "--family users", "an integer >= 1"),
        ("users=four,servers=2", "--family users", "an integer >= 1"),
        ("users=100001,servers=2", "--family users", "at most 100,000 users"),
        ("users=4,servers=10001", "--family servers", "at most 10,000 servers"),
        ("users=2000,servers=1000", "--family users/servers", "user-server pairs"),
        ("users=4,servers=2,tight=maybe", "--family tight", "true or false"),
        ("users=4,servers=2,seed=-3", "--family seed", "non-negative integer"),
        ("users=4,servers=2,seed=1.5", "--family seed", "non-negative integer"),
        ("users=4,servers=2,tx_power_w=-0.1", "--family tx_power_w", "> 0"),
        ("users=4,servers=2,tx_power_w=nan", "--family tx_power_w", "a finite number"),
        ("users=4,servers=2,bandwidth_hz=wide", "--family bandwidth_hz", "a number"),
        ("users=4,servers=2,spare_slots=-1", "--family spare_slots", "an integer >= 0"),
        ("users=4,servers=2,share_range=0.4", "--family share_range", "LOW:HIGH"),
        ("users=4,servers=2,share_range=0.6:0.3", "--family share_range", "LOW <= HIGH"),
        ("users=4,servers=2,data_bits_range=0:1e6", "--family data_bits_range", "> 0"),
        ("users=4,servers=2,", "--family", "key=value pairs"),
        ("users=4;servers=2", "--family", "key=value pairs"),
        ("", "--family", "key=value pairs"),
    ],
)
def test_each_bad_family_is_one_error_naming_its_key(text, field, says):
    with pytest.raises(QdtInputError) as caught:
        parse_family(text)
    assert caught.value.field == field
    assert says in caught.value.expected


def test_unknown_key_lists_every_known_key_and_the_field_can_be_renamed():
    with pytest.raises(QdtInputError) as caught:
        parse_family("users=4,servers=2,power=1", field="family")
    assert caught.value.field == "family power"
    for key in KNOWN_KEYS:
        assert key in caught.value.expected
    assert "share_range=0.3:0.6" in caught.value.fix


def test_booleans_and_canonical_text():
    for word in ("true", "1", "yes", "YES", "True"):
        assert parse_family(f"users=4,servers=2,tight={word}").tight is True
    for word in ("false", "0", "no"):
        assert parse_family(f"users=4,servers=2,tight={word}").tight is False
    family = parse_family(" seed=3 , tight=yes,servers=4,users=16 ")
    assert family == Family(users=16, servers=4, tight=True, seed=3)
    assert family.describe() == "users=16,servers=4,tight=true,seed=3"


@pytest.mark.parametrize(
    "text",
    [
        "users=4,servers=2",
        "users=16,servers=4,tight=true,seed=3",
        "users=8,servers=3,seed=0,tx_power_w=0.25,bandwidth_hz=2e7,noise_power_dbm=-170.5",
        "users=8,servers=2,tight=1,spare_slots=3,share_range=0.25:0.55,deadline_slack_range=0:2",
        "users=5,servers=1,data_bits_range=1e6:2e6,capacity_range=3e9:3e9,shadowing_db=0,bs_radius_m=0",
    ],
)
def test_describe_parse_and_dict_round_trips(text):
    family = parse_family(text)
    assert parse_family(family.describe()) == family
    assert parse_family(family.describe()).describe() == family.describe()
    data = json.loads(json.dumps(family.to_dict()))  # JSON-able
    assert Family.from_dict(data) == family
    assert hash(Family.from_dict(data)) == hash(family)  # hashable: usable as a key
    assert Family.from_dict(data).generator_config() == family.generator_config()


def test_settings_equal_to_their_default_are_dropped_and_explicit_keys_override_tight():
    assert parse_family("users=4,servers=2,tx_power_w=0.1,spare_slots=1") == parse_family("users=4,servers=2")
    tight = parse_family("users=8,servers=2,tight=true,share_range=0.3:0.6")
    assert tight == parse_family("users=8,servers=2,tight=true") and tight.settings == ()
    # (0.2, 0.5) is the default model's share range but not the tight preset's: kept under tight
    looser = parse_family("users=8,servers=2,tight=true,share_range=0.2:0.5")
    assert looser.generator_config().share_range == (0.2, 0.5)
    assert looser.describe() == "users=8,servers=2,tight=true,share_range=0.2:0.5"
    assert parse_family("users=8,servers=2,tight=true,spare_slots=2").generator_config().spare_slots == 2


def test_direct_construction_and_damaged_dicts_fail_naming_the_key():
    assert Family(users=4, servers=2, settings={"tx_power_w": 0.3}).settings == (("tx_power_w", 0.3),)
    with pytest.raises(QdtInputError, match=r"family\.users"):
        Family(users=0, servers=2)
    with pytest.raises(QdtInputError, match=r"family\.shadowing_db"):
        Family(users=4, servers=2, settings={"shadowing_db": -1.0})
    good = parse_family("users=8,servers=2,seed=4,share_range=0.3:0.6").to_dict()
    damaged = [
        ({k: v for k, v in good.items() if k != "servers"}, "family.servers"),
        ({**good, "users": "8"}, "family.users"),
        ({**good, "users": True}, "family.users"),
        ({**good, "tight": "yes"}, "family.tight"),
        ({**good, "seed": -1}, "family.seed"),
        ({**good, "share_range": [0.3]}, "family.share_range"),
        ({**good, "share_range": "0.3:0.6"}, "family.share_range"),
        ({**good, "radius": 3}, "family.radius"),
    ]
    for data, field in damaged:
        with pytest.raises(QdtInputError) as caught:
            Family.from_dict(data)
        assert caught.value.field == field, data
    with pytest.raises(QdtInputError, match="an object"):
        Family.from_dict(["users", 8])


# ---- drawing ----------------------------------------------------------------------------------
def test_draw_is_a_pure_function_of_family_run_seed_episode_and_copy():
    family = parse_family("users=6,servers=3")
    a = family.draw(7, 12, 2)
    family.draw(7, 0, 0)  # other draws in between change nothing
    again = parse_family("users=6,servers=3").draw(7, 12, 2)
    assert _same(a, again) and a.name == again.name and a.meta == again.meta
    assert a.meta["family"]["spawn_key"] == [FAMILY_STREAM, TRAIN_KEY, 12, 2]
    for other in (family.draw(7, 13, 2), family.draw(7, 12, 3), family.draw(8, 12, 2)):
        assert not np.array_equal(a.channel_gain, other.channel_gain)
        assert not np.array_equal(a.data_bits, other.data_bits)
    sequence = np.random.SeedSequence(entropy=7, spawn_key=(FAMILY_STREAM, TRAIN_KEY, 12, 2))
    assert _same(a, generate_instance(GeneratorConfig(users=6, servers=3), sequence))
    copies = family.draws(7, 12, 4)
    assert len(copies) == 4 and _same(copies[2], a)
    with pytest.raises(QdtInputError, match="episode"):
        family.draw(7, -1, 0)


def test_a_family_seed_fixes_the_stream_whatever_the_run_seed():
    fixed = parse_family("users=6,servers=3,seed=5")
    assert _same(fixed.draw(1, 4, 0), fixed.draw(2, 4, 0))
    assert _same(fixed.draw(1, 4, 0), parse_family("users=6,servers=3").draw(5, 4, 0))
    zero = parse_family("users=6,servers=3,seed=0")  # seed 0 is a seed, not "the run's"
    assert _same(zero.draw(9, 1, 1), parse_family("users=6,servers=3").draw(0, 1, 1))


def test_held_out_instances_are_never_training_draws():
    family = parse_family("users=5,servers=2,seed=11")
    training = [family.draw(0, e, k) for e in range(25) for k in range(4)]
    held = [family.held_out(0, i) for i in range(40)]
    assert _same(held[3], family.held_out(0, 3))  # pure as well
    assert held[3].meta["family"]["spawn_key"] == [FAMILY_STREAM, HELD_OUT_KEY, 3]
    gains = {inst.channel_gain.tobytes() for inst in training}
    assert len(gains) == len(training)  # training draws differ among themselves
    assert not any(inst.channel_gain.tobytes() in gains for inst in held)
    assert not any(_same(h, t) for h in held[:10] for t in training[:20])


def test_tight_key_gives_the_tight_preset():
    tight = parse_family("users=8,servers=2,tight=true")
    config = tight.generator_config()
    assert config == tight_config(8, 2)
    assert config.share_range == TIGHT["share_range"] and config.spare_slots == TIGHT["spare_slots"]
    instance = tight.draw(3, 0, 0)
    assert tuple(instance.meta["config"]["share_range"]) == TIGHT["share_range"]
    default = parse_family("users=8,servers=2").draw(3, 0, 0)
    # the same stream through both presets: only the shares (and what follows) differ
    np.testing.assert_array_equal(instance.channel_gain, default.channel_gain)
    assert np.all(instance.compute_rate > default.compute_rate)


def test_generator_settings_reach_the_instance():
    family = parse_family("users=6,servers=2,tx_power_w=0.25,bandwidth_hz=2e7,data_bits_range=1e6:2e6")
    instance = family.draw(1, 0, 0)
    np.testing.assert_array_equal(instance.tx_power_w, np.full(6, 0.25))
    assert instance.bandwidth_hz == 2e7
    assert np.all((instance.data_bits >= 1e6) & (instance.data_bits <= 2e6))
    assert instance.meta["config"]["tx_power_w"] == 0.25
    plain = parse_family("users=6,servers=2").draw(1, 0, 0)
    assert np.all(plain.tx_power_w == 0.1) and np.all(plain.data_bits >= 300e6)


# ---- per-copy instances in the batched environment --------------------------------------------
def test_set_instances_rewards_are_each_instances_own_rewards():
    family = parse_family("users=5,servers=3,tight=true")
    instances = family.draws(2, 0, 4)
    env = BatchedPlacementEnv(instances[0], 4, n_steps=3)
    env.reset([1, 2, 3, 4])
    env.set_instances(instances)
    assert [m.instance for m in env.base_models] == instances
    env.reset()
    own = [PlacementModel(inst) for inst in instances]
    rng = np.random.default_rng(0)
    for _ in range(3):
        placements = rng.integers(0, 2, size=(4, 5, 3)).astype(np.int8)
        placements[1] = own[1].assignment_to_matrix([0, 1, 2, 0, 1])  # some feasible, some not
        rewards, feasible, _ = env.step(placements)
        for k in range(4):
            assert rewards[k] == own[k].reward_batch(placements[k][None])[0]
            assert feasible[k] == own[k].feasible_batch(placements[k][None])[0]
        np.testing.assert_array_equal(
            env.latency(), [(placements[k] * own[k].latency).sum() for k in range(4)]
        )
    assert len({float(r) for r in rewards}) > 1  # the copies' instances differ


def test_fading_is_drawn_on_top_of_each_copys_own_instance():
    family = parse_family("users=4,servers=3")
    instances = family.draws(9, 5, 3)
    seeds = [21, 22, 23]
    env = BatchedPlacementEnv(instances[0], 3, n_steps=2, initial_state="random", channel_fading_db=4.0)
    env.set_instances(instances)
    starts = env.reset(seeds)
    singles = [
        PlacementEnv(inst, n_steps=2, initial_state="random", channel_fading_db=4.0) for inst in instances
    ]
    for k, single in enumerate(singles):
        single.reset(seed=seeds[k])
        np.testing.assert_array_equal(starts[k], single.state())
        np.testing.assert_array_equal(env.models[k].latency, single.model.latency)
        assert not np.array_equal(env.models[k].latency, PlacementModel(instances[k]).latency)  # faded
    rng = np.random.default_rng(1)
    for _ in range(2):
        placements = rng.integers(0, 2, size=(3, 4, 3)).astype(np.int8)
        rewards, feasible, _ = env.step(placements)
        for k, single in enumerate(singles):
            _, r, _, _, infos = single.step({f"bs_{j}": placements[k, :, j] for j in range(3)})
            assert rewards[k] == r["bs_0"] and feasible[k] == infos["bs_0"]["feasible"]
    for k, single in enumerate(singles):
        assert env.rngs[k].bit_generator.state == single.rng.bit_generator.state


def test_the_next_reset_takes_the_new_instances_and_one_shared_instance_stays_batched():
    first, second = parse_family("users=4,servers=2").draws(0, 0, 2)
    env = BatchedPlacementEnv(first, 3)
    env.reset([0, 1, 2])
    shared = env.base_model
    assert all(m is shared for m in env.models)
    env.set_instances([second, second, second])
    assert all(m is shared for m in env.models)  # this episode keeps its models until reset
    env.reset()
    assert env.models[0] is env.models[1] is env.models[2]  # one model, the batched call
    assert env.models[0].instance is second
    env.set_instances([first, first, second])
    env.reset()
    assert env.models[0] is shared and env.models[1] is shared and env.models[2] is not shared
    with pytest.raises(QdtInputError, match="3 instances"):
        env.set_instances([first, second])
    with pytest.raises(QdtInputError, match=r"instances\[1\]"):
        env.set_instances([first, parse_family("users=5,servers=2").draw(0, 0, 0), first])
    with pytest.raises(QdtInputError, match="one instance"):
        env.set_instances(first)  # type: ignore[arg-type]
