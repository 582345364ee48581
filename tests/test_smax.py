"""SMAX (SMACv2-like), JaxMARL's StarCraft-free stand-in: the backend, the team env and
short QMIX / Soft-QMIX runs. Skipped without the ``smax`` extra (jax, jaxmarl)."""

import math

import numpy as np
import pytest

from rllib_softqmix import QMIXConfig, SoftQMIXConfig, make_team_env
from rllib_softqmix.envs import EnvDependencyError, SMAXBackend
from rllib_softqmix.envs.smax import import_jaxmarl

try:  # through the package: importing jaxmarl directly would undo pytest's output capture
    import_jaxmarl()
except EnvDependencyError as error:
    pytest.skip(str(error), allow_module_level=True)

TEAM = "team"
N, E, A = 5, 5, 10  # smacv2_5_units: 5 allies, 5 enemies, 4 moves + stop + 5 attacks
STOP = 4


@pytest.fixture(scope="module")
def backend():
    return SMAXBackend("smacv2_5_units")


def set_health(backend, allies=None, enemies=None):
    """Sets unit health in the backend's SMAX state; a unit at 0 dies in the next step."""
    state = backend._state
    health = state.state.unit_health
    if allies is not None:
        health = health.at[:N].set(allies)
    if enemies is not None:
        health = health.at[N:].set(enemies)
    backend._state = state.replace(state=state.state.replace(unit_health=health))


def available_stop_or_first(backend):
    return [STOP if mask[STOP] else int(np.flatnonzero(mask)[0])
            for mask in backend.get_avail_actions()]


def test_backend_shapes_and_masks(backend):
    info = backend.get_env_info()
    assert (info["n_agents"], info["n_actions"], info["episode_limit"]) == (N, A, 100)
    obs, state = backend.reset(seed=0)
    assert len(obs) == N and all(o.shape == (info["obs_shape"],) for o in obs)
    assert state.shape == (info["state_shape"],)
    masks = np.asarray(backend.get_avail_actions())
    assert masks.shape == (N, A) and masks[:, :5].all()  # alive: moves and stop
    assert set(np.unique(masks)) <= {0, 1}


def test_team_env_passes_obs_state_and_masks_through():
    env = make_team_env("smax_5_units", {})
    backend = env.env.backend
    space = env.observation_space
    assert space["obs"].shape == (N, backend.get_env_info()["obs_shape"])
    assert space["action_mask"].shape == (N, A) and env.episode_limit == 100
    obs = env.reset(seed=1)[0][TEAM]
    for _ in range(5):
        assert np.array_equal(obs["obs"], np.stack(backend.get_obs()))
        assert np.array_equal(obs["state"], backend.get_state())
        masks = np.asarray(backend.get_avail_actions(), np.float32)
        assert np.array_equal(obs["action_mask"], masks)
        assert space.contains(obs)
        obs = env.step({TEAM: np.array(available_stop_or_first(backend))})[0][TEAM]


def test_an_unavailable_action_is_rejected(backend):
    backend.reset(seed=0)
    masks = np.asarray(backend.get_avail_actions())
    agent, action = np.argwhere(masks == 0)[0]
    joint = [STOP] * N
    joint[agent] = int(action)
    message = rf"agent\(s\) \[{agent}\] cannot take action\(s\) \[{action}\]"
    with pytest.raises(ValueError, match=message):
        backend.step(joint)


def test_a_dead_ally_sees_zeros_and_can_only_stop(backend):
    backend.reset(seed=0)
    set_health(backend, allies=[0.0] + [1000.0] * (N - 1))
    _, terminated, info = backend.step([STOP] * N)
    assert not terminated and info["dead_allies"] == 1
    assert np.asarray(backend.get_avail_actions())[0].tolist() == [0, 0, 0, 0, 1] + [0] * E
    assert not backend.get_obs()[0].any() and backend.get_obs()[1].any()


@pytest.mark.parametrize("allies, enemies, won", [(None, 0.0, True), (0.0, None, False)])
def test_the_battle_result_comes_from_the_unit_state(backend, allies, enemies, won):
    backend.reset(seed=0)
    set_health(backend, allies, enemies)
    reward, terminated, info = backend.step([STOP] * N)
    assert terminated and info["battle_won"] is won and "episode_limit" not in info
    assert (info["dead_enemies"] == E) is won and (info["dead_allies"] == N) is not won
    assert (reward >= 1.0) is won  # SMAX's won_battle_bonus
    with pytest.raises(RuntimeError, match="after the episode ended"):
        backend.step([STOP] * N)


def test_the_time_limit_is_a_truncation_after_max_steps():
    env = make_team_env("smax_5_units", {})
    backend = env.env.backend
    env.reset(seed=0)
    for t in range(100):
        assert env.env.agents, f"the episode ended early, at step {t}"
        set_health(backend, allies=1000.0, enemies=1000.0)  # nobody dies
        joint = np.array(available_stop_or_first(backend))
        _, _, terminated, truncated, info = env.step({TEAM: joint})
    assert (terminated[TEAM], truncated[TEAM]) == (False, True)
    assert info[TEAM]["battle_won"] == 0.0 and env.env.agents == []


def rollout(backend, seed, steps=8):
    obs, state = backend.reset(seed=seed)
    trace = [np.concatenate([*obs, state])]
    for _ in range(steps):
        reward, terminated, _ = backend.step(available_stop_or_first(backend))
        trace.append(np.concatenate([*backend.get_obs(), backend.get_state(), [reward]]))
        if terminated:
            break
    return np.concatenate(trace)


def test_a_seeded_reset_repeats_the_episode(backend):
    other = SMAXBackend("smacv2_5_units")
    assert np.array_equal(rollout(backend, 3), rollout(other, 3))
    first = rollout(backend, 4)
    assert not np.array_equal(first[:100], rollout(backend, 5)[:100])


@pytest.mark.parametrize("config", [QMIXConfig(), SoftQMIXConfig().training(temperature=0.03)],
                         ids=["QMIX", "SoftQMIX"])
def test_a_short_run_obeys_the_masks_and_reports_the_win_rate(ray_session, config):
    config = (config.environment("smax_5_units")
              .training(train_batch_size_episodes=2, replay_buffer_capacity=8,
                        episodes_per_train_step=2, rnn_hidden_dim=16, mixing_embed_dim=8,
                        hypernet_embed=16)
              .env_runners(num_envs_per_env_runner=2)
              .reporting(min_sample_timesteps_per_iteration=1).debugging(seed=0))
    algo = config.build_algo()
    try:
        for _ in range(2):
            result = algo.train()  # SMAXBackend raises on any unavailable action
        learner = result["learners"][TEAM]
        assert math.isfinite(learner["td_loss"]) and math.isfinite(learner["q_tot_mean"])
        if isinstance(config, SoftQMIXConfig):
            assert math.isfinite(learner["f_fit_loss"])
        assert result["num_gradient_steps_lifetime"] == 2
        assert 0.0 <= result["env_runners"]["battle_won_mean"] <= 1.0
        for episode in algo.env_runner.sample(num_episodes=2, explore=True):
            taken = np.take_along_axis(episode.action_mask[:-1], episode.actions[..., None], -1)
            assert (taken == 1).all() and episode.info["battle_won"] in (0.0, 1.0)
    finally:
        algo.stop()
