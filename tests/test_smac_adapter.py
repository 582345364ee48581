"""The SMACv2 adapter on a fake of smacv2's capability wrapper, and a real run when possible.

The fake (tests/fake_smacv2.py) mirrors smacv2's method signatures and behaviours; the
real integration test runs only where smacv2 imports and StarCraft II is at SC2PATH.
"""

import math
import os

import numpy as np
import pytest
import ray
from fake_smacv2 import FakeCapabilityEnvWrapper
from ray.rllib.utils.pre_checks.env import check_multiagent_environments

from rllib_softqmix import ConfigError, QMIXConfig, TeamEnv, make_team_env, register_team_env
from rllib_softqmix.envs import EnvDependencyError, SMACParallelEnv
from rllib_softqmix.envs.smac import SMACV2_TEAMS, smacv2_capability_config, smacv2_wrapper_class

TEAM = "team"
STOP = 1
PAPER_MAPS = [f"smacv2_{race}_{size}v{size}" for race in ("protoss", "terran", "zerg")
              for size in (5, 10)]


def fake_smac(map_name="fake_short", n_units=3, continuing_episode=True, enemy_kill_every=2,
              failing_resets=0):
    """A SMACParallelEnv over the fake, with the 10gen_protoss capability config."""
    return SMACParallelEnv(FakeCapabilityEnvWrapper(
        map_name=map_name, capability_config=smacv2_capability_config("protoss", n_units),
        continuing_episode=continuing_episode, fake_enemy_kill_every=enemy_kill_every,
        fake_failing_resets=failing_resets))


register_team_env("fake_smacv2", fake_smac, team_reward="mean")


def team_env(**options):
    return make_team_env("fake_smacv2", options)


def reset(env, seed=None):
    return env.reset(seed=seed)[0][TEAM]


def step(env, joint_action):
    obs, reward, terminated, truncated, info = env.step({TEAM: np.asarray(joint_action)})
    return obs[TEAM], reward[TEAM], terminated[TEAM], truncated[TEAM], info[TEAM]


def first_available(mask, prefer_attack=True):
    """Each agent's highest available action (an attack if any), or its lowest (a dead
    unit's no-op, a live unit's stop)."""
    return [int(np.flatnonzero(row)[-1 if prefer_attack else 0]) for row in mask]


# ---- the adapter through TeamEnv -------------------------------------------------------
@pytest.mark.parametrize("failing_resets", [0, 1])
def test_spaces_and_the_first_observation_come_from_get_obs_and_get_state(failing_resets):
    env = team_env(n_units=3, failing_resets=failing_resets)
    backend = env.env.backend
    space = env.observation_space
    assert space["obs"].shape == (3, backend.get_obs_size())
    assert space["state"].shape == (backend.get_state_size(),)
    assert space["action_mask"].shape == (3, 9) and list(env.action_space.nvec) == [9, 9, 9]
    assert env.episode_limit == 4

    obs = reset(env, seed=0)
    # On smacv2's retry path reset() returns None; the adapter does not use its value.
    assert backend.resets == 1 + failing_resets
    assert np.array_equal(obs["obs"], np.stack(backend.get_obs()))
    assert np.array_equal(obs["state"], backend.get_state())
    assert space.contains(obs)


def test_masks_reach_the_team_observation_and_only_available_actions_are_sent():
    env = team_env(n_units=3, enemy_kill_every=0)
    backend = env.env.backend
    obs = reset(env)
    seen = set()
    for t in range(3):
        expected = np.asarray(backend.get_avail_actions(), np.float32)
        assert np.array_equal(obs["action_mask"], expected)
        assert not expected[:, 0].any()  # live units have no no-op
        seen.update(tuple(row) for row in expected)
        joint = first_available(expected) if t == 2 else [STOP] * 3
        obs, *_ = step(env, joint)
        assert backend.steps_received[-1] == joint
    assert len(seen) > 1  # the masks differ between agents and steps
    assert joint != [STOP] * 3


def test_an_unavailable_action_raises_smacv2s_assertion():
    env = team_env(n_units=3)
    obs = reset(env)
    mask = obs["action_mask"]
    unavailable = int(np.flatnonzero(mask[1] == 0)[-1])
    with pytest.raises(AssertionError, match=f"Agent 1 cannot perform action {unavailable}"):
        step(env, [STOP, unavailable, STOP])
    with pytest.raises(AssertionError, match="cannot perform action 0"):
        step(env, [0, STOP, STOP])  # the no-op is for dead units only


def test_a_dead_agent_sees_zeros_and_can_only_take_the_no_op():
    env = team_env(n_units=3, enemy_kill_every=1)
    env.reset()
    obs, _, terminated, truncated, info = step(env, [STOP] * 3)  # the enemy kills agent 0
    assert not (terminated or truncated) and info["dead_allies"] == 1
    assert obs["action_mask"][0].tolist() == [1] + [0] * 8
    assert not obs["obs"][0].any() and obs["obs"][1].any() and obs["obs"][2].any()
    obs, *_ = step(env, [0, STOP, STOP])  # dead agent 0 sends smacv2 its no-op
    assert env.env.backend.steps_received[-1] == [0, STOP, STOP]
    assert obs["action_mask"][:2, 0].tolist() == [1, 1] and not obs["obs"][:2].any()


def test_the_time_limit_is_a_truncation_and_the_battle_end_a_termination():
    env = team_env(n_units=3, enemy_kill_every=0)
    env.reset()
    for _ in range(4):
        _, _, terminated, truncated, info = step(env, [STOP] * 3)
    assert (terminated, truncated) == (False, True) and env.env.agents == []
    assert info["battle_won"] == 0.0 and "episode_limit" not in info

    # Without continuing_episode smacv2 does not flag its time limit: a termination.
    env = team_env(n_units=3, enemy_kill_every=0, continuing_episode=False)
    env.reset()
    for _ in range(4):
        _, _, terminated, truncated, info = step(env, [STOP] * 3)
    assert (terminated, truncated) == (True, False)

    env = team_env(n_units=3, enemy_kill_every=1)  # lost: every ally dead after 3 steps
    obs = reset(env)
    for _ in range(3):
        obs, _, terminated, truncated, info = step(env, first_available(obs["action_mask"],
                                                                        prefer_attack=False))
    assert (terminated, truncated) == (True, False) and info["battle_won"] == 0.0
    assert info["dead_allies"] == 3


def test_a_won_battle_terminates_with_battle_won_and_the_team_reward():
    env = team_env(n_units=3, enemy_kill_every=0)
    backend = env.env.backend
    obs = reset(env)
    rewards, done = [], False
    while not done:
        obs, reward, terminated, truncated, info = step(env, first_available(obs["action_mask"]))
        rewards.append(reward)
        done = terminated or truncated
    assert (terminated, truncated) == (True, False)
    assert info["battle_won"] == 1.0 and info["dead_enemies"] == 3
    # Every agent gets the team reward and TeamEnv averages them: smacv2's reward exactly,
    # scaled so that killing every enemy and winning sums to reward_scale_rate (20).
    assert math.isclose(sum(rewards), 20.0)
    assert obs["obs"].shape == (3, backend.get_obs_size())


def test_rllib_env_checker_would_reject_a_smacv2_env():
    """The checker steps a random, unmasked joint action, which smacv2 rejects; this is why
    the package's EnvRunner never runs it (see the training test below)."""
    env = team_env(n_units=5, enemy_kill_every=0)
    env.action_space.seed(0)
    with pytest.raises(ValueError, match="step") as error:
        check_multiagent_environments(env)
    assert isinstance(error.value.__cause__, AssertionError)


# ---- the registered SMACv2 names ------------------------------------------------------
@pytest.mark.parametrize("name", PAPER_MAPS)
def test_the_paper_maps_build_smacv2s_10gen_maps(name, fake_smacv2_package):
    _, race, size = name.split("_")
    n_units = int(size.split("v")[0])
    env = make_team_env(name, {"seed": 7})
    kwargs = env.env.backend.kwargs
    assert kwargs["map_name"] == f"10gen_{race}" and kwargs["seed"] == 7
    assert kwargs["continuing_episode"] is True  # so that the time limit is a truncation
    assert kwargs["use_unit_ranges"] is True and kwargs["obs_own_pos"] is True
    capability = kwargs["capability_config"]
    assert (capability["n_units"], capability["n_enemies"]) == (n_units, n_units)
    team_gen = capability["team_gen"]
    assert team_gen["dist_type"] == "weighted_teams" and team_gen["observe"] is True
    assert team_gen["unit_types"] == SMACV2_TEAMS[race]["unit_types"]
    assert team_gen["weights"] == SMACV2_TEAMS[race]["weights"]
    assert team_gen.get("exception_unit_types") == {"protoss": None, "terran": ["medivac"],
                                                    "zerg": ["baneling"]}[race]
    assert capability["start_positions"] == {"dist_type": "surrounded_and_reflect", "p": 0.5,
                                             "map_x": 32, "map_y": 32}
    assert env.n_agents == n_units and env.n_actions == 6 + n_units and env.episode_limit == 200
    QMIXConfig().environment(name).validate()


def test_smacv2_options_override_the_map_settings(fake_smacv2_package):
    env = make_team_env("smacv2_zerg_5v5", {"smacv2_options": {"conic_fov": True,
                                                               "map_name": "fake_short"}})
    assert env.env.backend.kwargs["conic_fov"] is True and env.episode_limit == 4
    with pytest.raises(ConfigError, match="smacv2_option"):
        QMIXConfig().environment("smacv2_zerg_5v5", env_config={"smacv2_option": {}})


def test_without_smacv2_a_config_fails_with_install_instructions_before_ray_starts(no_smacv2):
    was_initialized = ray.is_initialized()
    config = QMIXConfig().environment("smacv2_protoss_5v5")
    for check in (config.validate, config.build_algo):
        with pytest.raises(ConfigError) as error:
            check()
        message = str(error.value)
        assert "env='smacv2_protoss_5v5'" in message and "smacv2 cannot be imported" in message
        assert "pip install git+https://github.com/oxwhirl/smacv2.git" in message
        assert "SC2PATH" in message and "StarCraft II was not found" in message
    assert ray.is_initialized() == was_initialized
    with pytest.raises(EnvDependencyError):
        make_team_env("smacv2_protoss_5v5", {})


# ---- training on the fake ---------------------------------------------------------------
def test_qmix_trains_on_the_fake_and_reports_battle_won_as_the_win_rate(ray_session, monkeypatch):
    checked = []
    monkeypatch.setattr("ray.rllib.env.multi_agent_env_runner.check_multiagent_environments",
                        checked.append)
    config = (QMIXConfig().environment("fake_smacv2", env_config={"n_units": 3})
              .training(train_batch_size_episodes=4, replay_buffer_capacity=32,
                        episodes_per_train_step=4, rnn_hidden_dim=16, epsilon_anneal_time=50)
              .env_runners(num_envs_per_env_runner=4)
              .reporting(min_sample_timesteps_per_iteration=20).debugging(seed=0))
    algo = config.build_algo()
    try:
        runner = algo.env_runner
        # Random play wins 16% of these battles (measured over 1,600 episodes, seeds 0-3):
        # 40 episodes without a win or a loss have probability < 0.1%.
        episodes = runner.sample(num_episodes=40, random_actions=True)
        won = [episode.info["battle_won"] for episode in episodes]
        assert set(won) == {0.0, 1.0}
        assert float(runner.get_metrics()["battle_won_mean"]) == pytest.approx(np.mean(won))
        for _ in range(2):
            result = algo.train()
        assert 0.0 <= result["env_runners"]["battle_won_mean"] <= 1.0
        assert math.isfinite(result["learners"][TEAM]["td_loss"])
        assert result["num_gradient_steps_lifetime"] >= 1
        assert checked == []  # RLlib's env checker never ran
    finally:
        algo.stop()


# ---- StarCraft II itself -----------------------------------------------------------------
def _why_no_starcraft():
    try:
        smacv2_wrapper_class()
    except EnvDependencyError as error:
        return f"needs smacv2 and StarCraft II at SC2PATH: {error}"
    if "SC2PATH" not in os.environ:
        return "needs SC2PATH set to the StarCraft II directory"
    return None


@pytest.mark.skipif(_why_no_starcraft() is not None, reason=str(_why_no_starcraft()))
def test_a_real_smacv2_episode_with_random_available_actions():
    env = make_team_env("smacv2_protoss_5v5", {"seed": 0})
    try:
        assert isinstance(env, TeamEnv) and env.n_agents == 5 and env.n_actions == 11
        obs = reset(env, seed=0)
        rng = np.random.default_rng(0)
        done, steps = False, 0
        while not done:
            mask = obs["action_mask"]
            assert env.observation_space.contains(obs) and mask.any(axis=1).all()
            joint = [int(rng.choice(np.flatnonzero(row))) for row in mask]
            obs, _, terminated, truncated, info = step(env, joint)
            done, steps = terminated or truncated, steps + 1
        assert steps <= 200 and info["battle_won"] in (0.0, 1.0)
        assert truncated == (info["dead_allies"] < 5 and info["dead_enemies"] < 5)
    finally:
        env.close()
