"""The TeamEnvRunner: masks obeyed, episodes well-formed, fault tolerance."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from ray.rllib.utils.metrics import EPISODE_RETURN_MEAN, NUM_EPISODES
from toy_envs import ToyEnv

from rllib_softqmix import QMIXConfig, register_team_env

register_team_env("strict_toy", lambda **cfg: ToyEnv(mask_in="infos", strict=True, **cfg))
register_team_env("strict_toy_obs_mask", lambda **cfg: ToyEnv(mask_in="obs", strict=True, **cfg))


def toy_config(env="strict_toy", **training):
    return (QMIXConfig().environment(env)
            .training(train_batch_size_episodes=8, replay_buffer_capacity=100,
                      episodes_per_train_step=4, **training)
            .env_runners(num_envs_per_env_runner=4)
            .reporting(min_sample_timesteps_per_iteration=100).debugging(seed=1))


@pytest.mark.parametrize("env", ["strict_toy", "strict_toy_obs_mask"])
def test_sampling_and_training_never_take_an_unavailable_action(ray_session, env):
    # The env raises on an unavailable action; without fault tolerance that fails the run.
    algo = toy_config(env, epsilon_anneal_time=200).build_algo()
    for _ in range(3):
        algo.train()  # epsilon-greedy, then mostly greedy on learned utilities
    runner = algo.env_runner
    episodes = runner.sample(num_episodes=8, explore=False) + runner.sample(num_episodes=8, random_actions=True)
    assert len(episodes) >= 16
    for episode in episodes:
        taken = np.take_along_axis(episode.action_mask[:-1], episode.actions[..., None], -1)
        assert (taken == 1).all()
    algo.stop()


def test_episodes_are_whole_and_consistent(ray_session):
    algo = toy_config().build_algo()
    episodes = algo.env_runner.sample(num_episodes=6, explore=True)
    assert len(episodes) >= 6
    for episode in episodes:
        assert len(episode) == 5 and episode.truncated and not episode.terminated
        assert episode.obs.shape == (6, 3, 4) and episode.state.shape == (6, 12)
        assert episode.rewards.tolist() == [6.0] * 5
        assert episode.obs[:, 1, 0].tolist() == [10.0 + t for t in range(6)]
    metrics = algo.env_runner.get_metrics()
    assert metrics[EPISODE_RETURN_MEAN].peek() == 30.0
    assert metrics[NUM_EPISODES].peek() >= 6
    algo.stop()


class FlakyToy(ToyEnv):
    """Raises on the third step of every fifth episode."""
    episodes = 0

    def reset(self, seed=None, options=None):
        FlakyToy.episodes += 1
        return super().reset(seed=seed, options=options)

    def step(self, actions):
        if FlakyToy.episodes % 5 == 0 and self.t == 2:
            raise RuntimeError("simulated env crash")
        return super().step(actions)


register_team_env("flaky_toy", lambda **cfg: FlakyToy(**cfg))


def test_env_crash_raises_without_fault_tolerance(ray_session):
    FlakyToy.episodes = 0
    algo = toy_config("flaky_toy").build_algo()
    with pytest.raises(RuntimeError, match="simulated env crash|restart_failed_sub_environments"):
        algo.env_runner.sample(num_episodes=20)
    algo.stop()


def test_env_crash_drops_only_the_broken_episode_with_fault_tolerance(ray_session):
    FlakyToy.episodes = 0
    algo = toy_config("flaky_toy").fault_tolerance(restart_failed_sub_environments=True).build_algo()
    episodes = algo.env_runner.sample(num_episodes=20)
    assert len(episodes) >= 20
    assert all(len(episode) == 5 and episode.obs.shape[0] == 6 for episode in episodes)
    metrics = algo.env_runner.get_metrics()
    assert metrics["num_env_restarts_lifetime"].peek() >= 1
    assert metrics["num_episodes_dropped_lifetime"].peek() == metrics["num_env_restarts_lifetime"].peek()
    algo.stop()


def test_acting_builds_no_autograd_graph(ray_session):
    # RLlib's forward_inference/forward_exploration do not disable autograd themselves; a
    # graph kept through the recurrent state grew without bound (a leak) before this test.
    import torch
    from ray.rllib.core.columns import Columns

    algo = toy_config().build_algo()
    module = algo.env_runner.module["team"]
    state = {key: value.unsqueeze(0) for key, value in module.get_initial_state().items()}
    space = module.observation_space
    batch = {Columns.OBS: {key: torch.ones(1, *space[key].shape) for key in space.spaces},
             Columns.STATE_IN: state, "timestep": 0}
    for forward in (module.forward_inference, module.forward_exploration):
        out = forward(batch)
        assert not out[Columns.ACTIONS].requires_grad
        assert not any(value.requires_grad for value in out[Columns.STATE_OUT].values())
    algo.stop()


JAX_CHECK = """
import sys
import ray
import rllib_softqmix
from rllib_softqmix import QMIXConfig
ray.init(num_cpus=2, include_dashboard=False)
algo = (QMIXConfig().environment("one_step_matrix").env_runners(num_env_runners=1)
        .reporting(min_sample_timesteps_per_iteration=10).build_algo())
runner = algo.env_runner_group.foreach_env_runner(lambda runner: "jax" in sys.modules,
                                                  local_env_runner=False)
print("JAX_LOADED", "jax" in sys.modules, runner[0])
algo.stop()
ray.shutdown()
"""


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed here")
def test_rllib_loads_no_jax_in_the_driver_or_the_runners():
    """RLlib imports JAX wherever it is installed (~120 MB per process) unless told not to;
    the package tells it, in the driver and, inherited, in Ray's workers, without a notice."""
    env = {key: value for key, value in os.environ.items() if key != "RLLIB_TEST_NO_JAX_IMPORT"}
    done = subprocess.run([sys.executable, "-c", JAX_CHECK], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "JAX_LOADED False False" in done.stdout
    assert "Not importing JAX" not in done.stdout + done.stderr
