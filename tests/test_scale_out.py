"""The multi-process paths learn what the local path learns (issue 7).

Two remote EnvRunners plus one remote Learner (each its own Ray actor), and one remote
EnvRunner sampling while the local learner trains (``sample_while_learning``), run the same
matrix-game configs as tests/test_learning.py; the greedy outcomes must match the
local path's (measured there: seed 0 solves the decomposable game with (A, A) = 6, and
QMIX ends in the non-monotonic game's 0 block). Half a CPU per actor lets both runners
and the learner share this 2-core machine.
"""

import numpy as np
import pytest
import torch
from test_learning import DECOMPOSABLE, MATRIX_SETTINGS

from rllib_softqmix import QMIXConfig, SoftQMIXConfig
from rllib_softqmix.envs.team_env import TEAM


def distributed(config):
    return (config.env_runners(num_env_runners=2, num_cpus_per_env_runner=0.5)
            .learners(num_learners=1, num_cpus_per_learner=0.5)
            .reporting(min_sample_timesteps_per_iteration=1000).debugging(seed=0))


def remote_greedy_actions(algo, episodes=4):
    """Greedy joint actions sampled by every remote EnvRunner."""
    per_runner = algo.env_runner_group.foreach_env_runner(
        lambda runner: [episode.actions[0].tolist()
                        for episode in runner.sample(num_episodes=episodes, explore=False)],
        local_env_runner=False)
    return [actions for runner_actions in per_runner for actions in runner_actions]


def learner_weights(algo):
    return algo.learner_group.get_weights()[TEAM]


def test_two_runners_and_a_remote_learner_solve_the_decomposable_game(ray_session):
    algo = distributed(QMIXConfig().environment("one_step_matrix",
                                                env_config={"payoff": DECOMPOSABLE})
                       .training(**MATRIX_SETTINGS)).build_algo()
    try:
        assert not algo.learner_group.is_local
        assert algo.env_runner_group.num_healthy_remote_workers() == 2
        for _ in range(5):
            result = algo.train()
        assert result["num_gradient_steps_lifetime"] > 0
        actions = remote_greedy_actions(algo)
        assert len(actions) >= 8 and all(joint == [0, 0] for joint in actions)
        # Both runners act with the learner's weights after the sync.
        learner = learner_weights(algo)
        for runner_state in algo.env_runner_group.foreach_env_runner(
                lambda runner: runner.module[TEAM].state_dict(), local_env_runner=False):
            for name, value in runner_state.items():
                np.testing.assert_allclose(np.asarray(value), np.asarray(learner[name]), atol=0)
    finally:
        algo.stop()


def test_qmix_distributed_ends_in_the_zero_block_like_the_local_path(ray_session):
    algo = distributed(QMIXConfig().environment("one_step_matrix")
                       .training(**MATRIX_SETTINGS)).build_algo()
    try:
        for _ in range(5):
            algo.train()
        for actions in remote_greedy_actions(algo, episodes=1):
            assert actions[0] in (1, 2) and actions[1] in (1, 2)
    finally:
        algo.stop()


def test_remote_learner_steps_soft_qmix_with_finite_weights(ray_session):
    algo = distributed(SoftQMIXConfig().environment("one_step_matrix")
                       .training(**MATRIX_SETTINGS)).build_algo()
    try:
        before = {name: np.array(value) for name, value in learner_weights(algo).items()}
        for _ in range(2):
            result = algo.train()
        after = learner_weights(algo)
        assert np.isfinite(result["learners"][TEAM]["td_loss"])
        assert any(not np.array_equal(before[name], np.asarray(after[name])) for name in before)
        assert all(torch.isfinite(torch.as_tensor(value)).all() for value in after.values())
    finally:
        algo.stop()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_gpu_learner_matches_the_cpu_outcome(ray_session):
    config = (QMIXConfig().environment("one_step_matrix", env_config={"payoff": DECOMPOSABLE})
              .training(**MATRIX_SETTINGS).learners(num_learners=0, num_gpus_per_learner=1)
              .reporting(min_sample_timesteps_per_iteration=1000).debugging(seed=0))
    algo = config.build_algo()
    try:
        for _ in range(5):
            algo.train()
        assert all(episode.actions[0].tolist() == [0, 0]
                   for episode in algo.env_runner.sample(num_episodes=4, explore=False))
    finally:
        algo.stop()


def test_sampling_while_learning_solves_the_decomposable_game(ray_session):
    """One remote runner collects while this process learns; the episodes arrive after the
    gradient steps they ran beside, and the runner acts with the learner's weights."""
    config = (QMIXConfig().environment("one_step_matrix", env_config={"payoff": DECOMPOSABLE})
              .training(**MATRIX_SETTINGS, sample_while_learning=True)
              .env_runners(num_env_runners=1, num_cpus_per_env_runner=0.5)
              .reporting(min_sample_timesteps_per_iteration=1000).debugging(seed=0))
    algo = config.build_algo()
    try:
        assert algo.learner_group.is_local
        for _ in range(5):
            result = algo.train()
        episodes = result["env_runners"]["num_episodes_lifetime"]
        assert 0 < result["num_gradient_steps_lifetime"] <= episodes / 8  # 1 step per 8 episodes
        actions = remote_greedy_actions(algo)
        assert len(actions) >= 4 and all(joint == [0, 0] for joint in actions)
        learner = learner_weights(algo)
        runner_state = algo.env_runner_group.foreach_env_runner(
            lambda runner: runner.module[TEAM].state_dict(), local_env_runner=False)[0]
        for name, value in runner_state.items():
            np.testing.assert_allclose(np.asarray(value), np.asarray(learner[name]), atol=0)
    finally:
        algo.stop()
