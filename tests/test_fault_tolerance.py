"""Faults injected into training (issue 8): a crashing env, NaN/inf in the loss or the
Q-values, a crash during a save, a checkpoint of another algorithm or env."""

import json
import os
import re
import shutil

import numpy as np
import pytest
import toy_envs
import torch
from conftest import ALGORITHM_NAMES, TINY_SETTINGS, tiny_config
from ray import cloudpickle
from toy_envs import CrashingEnv, ProcessKillingEnv, ToyEnv

from rllib_softqmix import (ALGORITHMS, QMIX, TEAM, NonFiniteLossError, SoftQMIX, TeamPolicy,
                            make_team_env, register_team_env)
from rllib_softqmix.cli import summarize
from rllib_softqmix.core.checkpoints import CheckpointError
from rllib_softqmix.experiment import DEFAULT_MAX_FAILURES, build_experiment, run
from rllib_softqmix.qmix.env_runner import TeamEnvRunner

cloudpickle.register_pickle_by_value(toy_envs)  # Tune's trial actors cannot import tests/
register_team_env("crashing_toy", CrashingEnv)
register_team_env("process_killing_toy", ProcessKillingEnv)
TOY_LIMIT = 5  # ToyEnv truncates every episode after 5 steps; agent i observes 10 * i + t


def crashing_experiment(tmp_path, env_steps):
    """A CLI experiment (its defaults: fault tolerance on) on an env that raises in ~1% of
    its step() and reset() calls."""
    return build_experiment({
        "algorithm": "QMIX", "env": "crashing_toy", "env_config": {"crash_probability": 0.01},
        "config": {**TINY_SETTINGS, "min_sample_timesteps_per_iteration": 500, "seed": 0},
        "stop": {"num_env_steps_sampled_lifetime": env_steps},
        "run": {"name": "crashing", "storage_path": str(tmp_path), "verbose": 0}})


def without_z_policy(weights):
    """All but MAVEN's pi_z, which takes its REINFORCE steps on the new (finite) episodes
    before the TD update of the same training step."""
    return {name: value for name, value in weights.items() if not name.startswith("z_policy.")}


def weights_of(algo):
    return {name: value.clone()
            for name, value in algo.learner_group._learner.module[TEAM].state_dict().items()}


def assert_same_weights(weights, other):
    assert weights.keys() == other.keys()
    for name, value in weights.items():
        assert torch.equal(value, other[name]), name


# ---- a crashing env -------------------------------------------------------------------
def test_env_crashes_drop_only_the_broken_episodes_and_are_counted(ray_session, tmp_path):
    experiment = crashing_experiment(tmp_path, 3000)
    config = experiment.config
    assert config.restart_failed_sub_environments and config.restart_failed_env_runners
    algo = config.build_algo()
    result = algo.train()
    while result["num_env_steps_sampled_lifetime"] < 3000:
        result = algo.train()
    runners = result["env_runners"]
    assert runners["num_env_restarts_lifetime"] >= 10  # ~1% of ~3000 steps and ~600 resets
    assert 1 <= runners["num_episodes_dropped_lifetime"] <= runners["num_env_restarts_lifetime"]
    # The buffer holds only whole episodes: 5 steps, observations 10 * i + t for t = 0..5.
    batch = algo.replay_buffer.gather(np.arange(len(algo.replay_buffer)))
    assert len(algo.replay_buffer) == TINY_SETTINGS["replay_buffer_capacity"]
    assert (batch["mask"].sum(1) == TOY_LIMIT).all()
    assert (batch["obs"][:, :, 1, 0] == 10.0 + np.arange(TOY_LIMIT + 1)).all()
    # Every episode ever stored (also those since evicted) was whole; dropped ones not counted.
    assert algo._episodes == runners["num_episodes_lifetime"]
    assert algo._env_steps == TOY_LIMIT * algo._episodes
    algo.stop()


def test_tune_run_with_a_crashing_env_reaches_its_stop_criterion(ray_session, tmp_path):
    results = run(crashing_experiment(tmp_path, 1500))
    assert not results.errors
    metrics = results[0].metrics
    assert metrics["num_env_steps_sampled_lifetime"] >= 1500
    assert metrics["env_runners"]["num_env_restarts_lifetime"] > 0
    state_file = next((tmp_path / "crashing").glob("experiment_state-*.json"))
    trial = json.loads(json.loads(state_file.read_text())["trial_data"][0][0])
    assert trial["max_failures"] == DEFAULT_MAX_FAILURES >= 1  # Tune restarts a failed trial
    assert re.search(r"iterations=\d+ .* env_restarts=[1-9]\d* env_runner_restarts=0",
                     summarize(results, []))


@pytest.mark.slow  # ~40 s: a remote EnvRunner actor is started, killed and restarted
def test_a_remote_env_runner_whose_process_dies_is_restarted(ray_session, tmp_path):
    config = tiny_config("QMIX", env="process_killing_toy",
                         env_config={"marker": str(tmp_path / "killed")})
    algo = (config.env_runners(num_env_runners=1, num_cpus_per_env_runner=0.5)
            .fault_tolerance(delay_between_env_runner_restarts_s=0.0).build_algo())
    results = [algo.train() for _ in range(3)]
    assert (tmp_path / "killed").exists()
    assert results[-1]["fault_tolerance"]["num_remote_worker_restarts"] == 1
    assert algo.env_runner_group.num_healthy_remote_workers() == 1
    assert [result["training_iteration"] for result in results] == [1, 2, 3]
    batch = algo.replay_buffer.gather(np.arange(len(algo.replay_buffer)))
    assert (batch["mask"].sum(1) == TOY_LIMIT).all()  # the killed episode was never returned
    algo.stop()


class BrokenToy(ToyEnv):
    def step(self, actions):
        raise RuntimeError("this env never steps")


register_team_env("broken_toy", BrokenToy)


def test_an_env_that_always_fails_stops_with_a_clear_error(ray_session):
    algo = (tiny_config("QMIX", env="broken_toy")
            .fault_tolerance(restart_failed_sub_environments=True,
                             num_consecutive_env_runner_failures_tolerance=5).build_algo())
    with pytest.raises(RuntimeError, match="failed 6 times without one episode finishing"):
        algo.train()
    algo.stop()


# ---- NaN and inf ------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_non_finite_loss_or_q_values_stop_the_update_and_the_checkpoint_survives(
        ray_session, tmp_path, algorithm):
    algo = tiny_config(algorithm).build_algo()
    algo.train()
    path = algo.save(str(tmp_path / "good")).checkpoint.path
    saved = weights_of(algo)

    # A NaN that reaches the loss (through stored rewards): no weight changes.
    rewards = algo.replay_buffer._arrays["rewards"]
    finite_rewards = rewards.copy()
    rewards[:, 0] = np.nan
    with pytest.raises(NonFiniteLossError,
                       match=rf"^{algorithm}: the loss term 'td_loss' is not finite .* at training "
                             rf"iteration 2, .* the update was not applied"):
        algo.train()
    assert_same_weights(without_z_policy(weights_of(algo)), without_z_policy(saved))

    # inf in the agent network: the Q-values are named.
    rewards[:] = finite_rewards
    agent_weight = next(algo.learner_group._learner.module[TEAM].agent.parameters())
    with torch.no_grad():
        agent_weight[0, 0] = float("inf")
    with pytest.raises(NonFiniteLossError, match=rf"^{algorithm}: the Q-values 'q' is not finite"):
        algo.train()
    algo.stop()

    restored = ALGORITHMS[algorithm].from_checkpoint(path)
    assert_same_weights(weights_of(restored), saved)
    assert all(torch.isfinite(value).all() for value in saved.values())
    assert np.isfinite(restored.train()["learners"][TEAM]["td_loss"])
    restored.stop()


class NaNRewardToy(ToyEnv):
    def step(self, actions):
        observations, rewards, *rest = super().step(actions)
        return (observations, {agent: float("nan") if self.t == 3 else reward
                               for agent, reward in rewards.items()}, *rest)


register_team_env("nan_reward_toy", NaNRewardToy)


def test_an_env_returning_nan_is_stopped_before_its_episode_is_stored(ray_session):
    algo = tiny_config("QMIX", env="nan_reward_toy").build_algo()
    with pytest.raises(NonFiniteLossError, match="QMIX: env 'nan_reward_toy' returned a non-finite "
                                                 "rewards .* at training iteration 1"):
        algo.train()
    assert len(algo.replay_buffer) == 0
    algo.stop()


# ---- checkpoints ------------------------------------------------------------------------
def test_a_crash_during_save_leaves_the_previous_checkpoint_intact(ray_session, tmp_path,
                                                                  monkeypatch):
    algo = tiny_config("QMIX").build_algo()
    algo.train()
    path = algo.save(str(tmp_path / "ckpt")).checkpoint.path
    first = weights_of(algo)
    algo.train()

    def crash(*args, **kwargs):
        raise OSError("simulated crash during save")

    # The EnvRunner is saved after the learner group's new weights were written.
    monkeypatch.setattr(TeamEnvRunner, "get_state", crash)
    with pytest.raises(OSError, match="simulated crash"):
        algo.save(path)
    with pytest.raises(OSError, match="simulated crash"):
        algo.save(str(tmp_path / "new"))
    monkeypatch.undo()
    # No half-written directory anywhere ("new" is the empty one Trainable.save makes first).
    assert sorted(os.listdir(tmp_path)) == ["ckpt", "new"] and not os.listdir(tmp_path / "new")
    with pytest.raises(CheckpointError, match="not a complete Algorithm checkpoint"):
        QMIX.from_checkpoint(tmp_path / "new")

    restored = QMIX.from_checkpoint(path)
    assert restored.iteration == 1
    assert_same_weights(weights_of(restored), first)
    restored.stop()
    algo.save(path)
    assert QMIX.from_checkpoint(path).iteration == 2

    # A checkpoint cut short another way (e.g. a copy killed half-way) is refused by name.
    partial = shutil.copytree(path, tmp_path / "partial")
    os.remove(os.path.join(partial, "algorithm_state.pkl"))
    with pytest.raises(CheckpointError,
                       match=r"not a complete .* \['algorithm_state.pkl'\] missing"):
        QMIX.from_checkpoint(partial)
    algo.stop()


def test_a_checkpoint_of_another_algorithm_or_env_is_refused(ray_session, tmp_path):
    checkpoints = {}
    for algorithm in ("VDN", "QMIX"):
        algo = tiny_config(algorithm).build_algo()
        algo.train()
        checkpoints[algorithm] = algo.save(str(tmp_path / algorithm)).checkpoint.path
        algo.stop()

    with pytest.raises(CheckpointError, match="is a checkpoint of VDN, not of SoftQMIX"):
        SoftQMIX.from_checkpoint(checkpoints["VDN"])
    soft = tiny_config("SoftQMIX").build_algo()
    before = weights_of(soft)
    with pytest.raises(CheckpointError, match="is a checkpoint of VDN, not of SoftQMIX"):
        soft.restore_from_path(checkpoints["VDN"])
    with pytest.raises(CheckpointError, match="is a checkpoint of VDN, not of SoftQMIX"):
        soft.restore(checkpoints["VDN"])  # Tune's path
    assert_same_weights(weights_of(soft), before)
    soft.stop()

    other_env = tiny_config("QMIX", env="one_step_matrix").build_algo()
    with pytest.raises(CheckpointError, match="trained on an env with team spaces .* runs env "
                                              "'one_step_matrix'"):
        other_env.restore_from_path(checkpoints["QMIX"])
    other_env.stop()
    wider = tiny_config("QMIX", rnn_hidden_dim=16).build_algo()
    with pytest.raises(CheckpointError, match="(?s)do not fit this QMIX.*rnn_hidden_dim"):
        wider.restore_from_path(checkpoints["QMIX"])
    wider.stop()

    policy = TeamPolicy.from_checkpoint(checkpoints["QMIX"])
    observation = make_team_env("one_step_matrix", {}).reset()[0][TEAM]
    with pytest.raises(ValueError, match="trained on an env whose 'obs' has shape"):
        policy.act(observation)
