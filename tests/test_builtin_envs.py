"""The registered envs: matrix games (Soft-QMIX's, MAVEN's) and MPE Spread variants."""

import numpy as np
import pytest

from rllib_softqmix import ConfigError, QMIXConfig, make_team_env
from rllib_softqmix.envs.matrix_games import SOFT_QMIX_PAYOFF


def play(env, joint_actions):
    env.reset(seed=0)
    total, result = 0.0, None
    for actions in joint_actions:
        obs, reward, terminated, truncated, info = env.step({"team": np.asarray(actions)})
        total += reward["team"]
        result = (terminated["team"], truncated["team"], info["team"], obs["team"])
        if terminated["team"] or truncated["team"]:
            break
    return total, result


@pytest.mark.parametrize("a1, a2", [(0, 0), (0, 1), (1, 2), (2, 2)])
def test_one_step_game_pays_the_soft_qmix_payoff_once(a1, a2):
    env = make_team_env("one_step_matrix", {})
    total, (terminated, truncated, _, obs) = play(env, [(a1, a2)])
    assert total == SOFT_QMIX_PAYOFF[a1][a2]
    assert (terminated, truncated) == (True, False)
    assert obs["state"].tolist() == [0.0, 1.0]


def test_one_step_game_payoff_is_configurable():
    env = make_team_env("one_step_matrix", {"payoff": [[1, 2], [3, 4]]})
    assert list(env.action_spaces["team"].nvec) == [2, 2]
    assert play(env, [(1, 0)])[0] == 3.0


@pytest.mark.parametrize("m", [1, 4, 10])
def test_m_step_game_returns(m):
    env = make_team_env("m_step_matrix", {"m": m})
    optimal = [(0, 0)] * (m - 1) + [(1, 1)] if m > 1 else [(0, 0)]
    assert play(env, optimal)[0] == (m + 3 if m > 1 else 1)
    assert play(env, [(1, 1)] * m)[0] == m                       # the decoy branch
    assert play(env, [(0, 0)] * m)[0] == (m if m > 1 else 1)     # right branch, wrong end
    assert play(env, [(0, 1)] * m)[0] == 0                        # mis-coordination ends it
    total, (terminated, _, info, _) = play(env, [(0, 0), (1, 1)] + [(0, 0)] * m)
    assert terminated and info["branch"] == 0.0
    assert total == (1.0 if m > 2 else (5.0 if m == 2 else 1.0))


def test_m_step_observation_layout():
    env = make_team_env("m_step_matrix", {"m": 10})
    obs, _ = env.reset()
    state = obs["team"]["state"]
    assert state.shape == (15,) and state[0] == 1 and state[11:].sum() == 0
    obs, *_ = env.step({"team": np.array([1, 1])})
    state = obs["team"]["state"]
    assert state[1] == 1 and state[11 + 3] == 1 and state.sum() == 2


@pytest.mark.parametrize("difficulty, scale", [("simple", 1.0), ("medium", 1.5), ("hard", 2.0)])
def test_spread_difficulty_scales_initial_positions(difficulty, scale):
    env = make_team_env("mpe_spread", {"difficulty": difficulty})
    world = env.env.unwrapped.world
    agent_extent, landmark_extent = 0.0, 0.0
    for seed in range(200):
        env.reset(seed=seed)
        agent_extent = max(agent_extent, max(np.abs(a.state.p_pos).max() for a in world.agents))
        landmark_extent = max(landmark_extent,
                              max(np.abs(lm.state.p_pos).max() for lm in world.landmarks))
    assert scale * 0.95 < agent_extent <= scale
    assert 0.8 * scale * 0.95 < landmark_extent <= 0.8 * scale


def test_spread_soft_qmix_team_reward_counts_self_collisions():
    env = make_team_env("mpe_spread", {})
    assert env.episode_limit == 25
    env.reset(seed=3)
    world = env.env.unwrapped.world
    _, reward, *_ = env.step({"team": np.zeros(3, np.int64)})
    positions = np.array([a.state.p_pos for a in world.agents])
    landmarks = np.array([lm.state.p_pos for lm in world.landmarks])
    coverage = np.linalg.norm(positions[:, None] - landmarks[None], axis=-1).min(0).sum()
    collisions = sum(np.linalg.norm(positions[i] - positions[j]) < 0.3
                     for i in range(3) for j in range(3))  # includes i == j
    assert reward["team"] == pytest.approx(-3 * coverage - collisions, rel=1e-6)


def test_spread_pettingzoo_reward_matches_mpe2():
    from mpe2 import simple_spread_v3

    ours = make_team_env("mpe_spread", {"reward": "pettingzoo"})
    ours.reset(seed=5)
    reference = simple_spread_v3.parallel_env(N=3, max_cycles=25)
    reference.reset(seed=5)
    ref_world, our_world = reference.unwrapped.world, ours.env.unwrapped.world
    for ref_entity, entity in zip(ref_world.entities, our_world.entities):
        ref_entity.state.p_pos = entity.state.p_pos.copy()
    _, rewards, *_ = reference.step({agent: 1 for agent in reference.agents})
    _, reward, *_ = ours.step({"team": np.ones(3, np.int64)})
    assert reward["team"] == pytest.approx(sum(rewards.values()), rel=1e-6)


@pytest.mark.parametrize("n_agents, reward", [(3, "soft_qmix"), (6, "pettingzoo")])
def test_spread_observations_once_per_step_equal_mpe2s(n_agents, reward):
    """SpreadEnv serves observe()/state() from one table per world step: same values as mpe2's
    own env (same scenario) over whole episodes, resets included."""
    from mpe2 import simple_spread_v3
    from pettingzoo.utils.conversions import aec_to_parallel

    from rllib_softqmix.envs.mpe_spread import spread_parallel_env

    ours = spread_parallel_env(n_agents=n_agents, difficulty="medium", reward=reward)
    soft = reward == "soft_qmix"
    reference = aec_to_parallel(simple_spread_v3.raw_env(
        N=n_agents, local_ratio=1.0 if soft else 0.5, max_cycles=25, continuous_actions=False))
    reference.unwrapped.scenario = ours.unwrapped.scenario
    reference.unwrapped.local_ratio = ours.unwrapped.local_ratio
    rng = np.random.default_rng(0)
    for episode in range(3):
        observed = [env.reset(seed=episode)[0] for env in (ours, reference)]
        np.testing.assert_array_equal(ours.state(), reference.state())
        while ours.agents:
            assert all(np.array_equal(observed[0][a], observed[1][a]) for a in reference.agents)
            actions = {agent: int(rng.integers(5)) for agent in ours.agents}
            (obs, rewards, terms, truncs, _), expected = ours.step(actions), reference.step(actions)
            observed = [obs, expected[0]]
            assert (rewards, terms, truncs) == tuple(expected[1:4])
            np.testing.assert_array_equal(ours.state(), reference.state())
        assert not reference.agents


def test_bad_env_options_are_rejected_with_the_key():
    with pytest.raises(ConfigError, match="difficulty"):
        QMIXConfig().environment("mpe_spread", env_config={"difficulty": "extreme"}).validate()
    with pytest.raises(ConfigError, match="'m'"):
        QMIXConfig().environment("m_step_matrix", env_config={"m": 0}).validate()
