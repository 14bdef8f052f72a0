import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from qdt.errors import QdtInputError
from qdt.problem.env import PlacementEnv
from qdt.problem.generator import GeneratorConfig, generate_instance, paper_instance
from qdt.problem.model import PlacementModel


@pytest.mark.parametrize("fading", [0.0, 4.0])
def test_pettingzoo_parallel_api(fading):
    env = PlacementEnv(paper_instance(), n_steps=5, channel_fading_db=fading, initial_state="random")
    parallel_api_test(env, num_cycles=20)


def test_observation_is_the_agents_column_and_reward_is_shared():
    inst = paper_instance()
    env = PlacementEnv(inst, n_steps=3)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"bs_0", "bs_1"}
    assert all(np.array_equal(o, np.zeros(4)) for o in obs.values())
    actions = {"bs_0": np.array([1, 1, 1, 0]), "bs_1": np.array([0, 0, 0, 1])}
    obs, rewards, terms, truncs, infos = env.step(actions)
    np.testing.assert_array_equal(obs["bs_0"], actions["bs_0"])
    np.testing.assert_array_equal(obs["bs_1"], actions["bs_1"])
    expected = PlacementModel(inst).evaluate_assignment([0, 0, 0, 1]).reward
    assert rewards == {"bs_0": pytest.approx(expected), "bs_1": pytest.approx(expected)}
    assert infos["bs_0"]["feasible"] is True
    assert not any(terms.values()) and not any(truncs.values())


def test_episode_truncates_after_n_steps():
    env = PlacementEnv(paper_instance(), n_steps=3)
    env.reset(seed=1)
    for step in range(3):
        actions = {a: env.action_space(a).sample() for a in env.agents}
        _, _, _, truncs, _ = env.step(actions)
        assert all(truncs.values()) == (step == 2)
    assert env.agents == []
    with pytest.raises(QdtInputError):
        env.step({})


def test_seeding_reproduces_and_fading_changes_channels():
    inst = generate_instance(GeneratorConfig(users=4, servers=3), 2)

    def rollout(seed):
        env = PlacementEnv(inst, n_steps=4, initial_state="random", channel_fading_db=6.0)
        obs, _ = env.reset(seed=seed)
        latencies = [env.model.latency.copy()]
        env.reset()
        latencies.append(env.model.latency.copy())
        return obs, latencies

    obs_a, lat_a = rollout(5)
    obs_b, lat_b = rollout(5)
    assert all(np.array_equal(obs_a[k], obs_b[k]) for k in obs_a)
    np.testing.assert_array_equal(lat_a[0], lat_b[0])
    assert not np.allclose(lat_a[0], lat_a[1])  # a new channel every episode
    assert not np.allclose(lat_a[0], PlacementModel(inst).latency)


def test_bad_actions_and_options_are_rejected():
    env = PlacementEnv(paper_instance())
    env.reset(seed=0)
    with pytest.raises(QdtInputError, match="bs_1"):
        env.step({"bs_0": np.zeros(4, dtype=int)})
    with pytest.raises(QdtInputError, match="actions"):
        env.step({"bs_0": np.zeros(3, dtype=int), "bs_1": np.zeros(4, dtype=int)})
    with pytest.raises(QdtInputError, match="n_steps"):
        PlacementEnv(paper_instance(), n_steps=0)
    with pytest.raises(QdtInputError, match="channel_fading_db"):
        PlacementEnv(paper_instance(), channel_fading_db=float("nan"))


def test_batched_env_copy_reproduces_placement_env_and_copies_draw_their_own_channels():
    from qdt.problem.env import BatchedPlacementEnv

    inst = generate_instance(GeneratorConfig(users=4, servers=3), 2)
    single = PlacementEnv(inst, n_steps=3, initial_state="random", channel_fading_db=5.0)
    batch = BatchedPlacementEnv(inst, 3, n_steps=3, initial_state="random", channel_fading_db=5.0)
    single.reset(seed=11)
    starts = batch.reset([11, 12, 13])
    np.testing.assert_array_equal(starts[0], single.state())
    np.testing.assert_array_equal(batch.models[0].latency, single.model.latency)
    assert not np.allclose(batch.models[1].latency, batch.models[0].latency)  # own fading per copy
    rng = np.random.default_rng(0)
    for step in range(3):
        placements = rng.integers(0, 2, size=(3, 4, 3)).astype(np.int8)
        rewards, feasible, truncated = batch.step(placements)
        _, single_rewards, _, _, infos = single.step({f"bs_{j}": placements[0, :, j] for j in range(3)})
        assert rewards[0] == single_rewards["bs_0"] and feasible[0] == infos["bs_0"]["feasible"]
        assert truncated == (step == 2)
    assert batch.rngs[0].bit_generator.state == single.rng.bit_generator.state  # the same stream
    with pytest.raises(QdtInputError, match="placements"):
        batch.step(np.zeros((2, 4, 3), dtype=np.int8))
