"""Tune by name, checkpoints, Algorithm.from_checkpoint and TeamPolicy."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ALGORITHM_NAMES, tiny_config
from ray import tune
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.core.columns import Columns

import rllib_softqmix
from rllib_softqmix import TEAM, QMIXConfig, TeamPolicy


def recorded_observations(algo, episodes=3):
    """Team observations of a few exploratory episodes, as [E, T+1] sequences."""
    return algo.env_runner.sample(num_episodes=episodes, explore=True)[:episodes]


def greedy_actions_and_q(module, episode):
    """Greedy actions and utilities along one recorded episode, from a fresh state."""
    state = {k: v.unsqueeze(0) for k, v in module.get_initial_state().items()}
    actions, utilities = [], []
    for t in range(len(episode.obs)):
        batch = {Columns.OBS: {"obs": torch.from_numpy(episode.obs[t:t + 1]),
                               "state": torch.from_numpy(episode.state[t:t + 1]),
                               "action_mask": torch.from_numpy(episode.action_mask[t:t + 1])},
                 Columns.STATE_IN: state}
        q, _ = module.step_utilities(batch)
        out = module.forward_inference(batch)
        state = out[Columns.STATE_OUT]
        actions.append(out[Columns.ACTIONS][0].numpy())
        utilities.append(q[0].detach().numpy())
    return np.array(actions), np.array(utilities)


def spread_config():
    return (QMIXConfig().environment("mpe_spread")
            .training(train_batch_size_episodes=8, replay_buffer_capacity=64,
                      episodes_per_train_step=4, target_update_interval_episodes=12,
                      epsilon_anneal_time=5000)
            .env_runners(num_envs_per_env_runner=4)
            .reporting(min_sample_timesteps_per_iteration=500).debugging(seed=3))


def test_save_restore_gives_identical_actions_state_and_continues(ray_session, tmp_path):
    algo = spread_config().build_algo()
    algo.train()
    algo.train()
    episodes = recorded_observations(algo)
    module = algo.learner_group._learner.module["team"]
    expected = [greedy_actions_and_q(module, episode) for episode in episodes]
    path = algo.save(str(tmp_path / "ckpt")).checkpoint.path

    restored = Algorithm.from_checkpoint(path)
    restored_module = restored.learner_group._learner.module["team"]
    for episode, (actions, utilities) in zip(episodes, expected):
        got_actions, got_utilities = greedy_actions_and_q(restored_module, episode)
        assert np.array_equal(got_actions, actions)
        assert np.allclose(got_utilities, utilities, atol=0)
    # Every piece of training state came back: weights, targets, optimizer, buffer, schedule.
    for (name, value), (_, other) in zip(module.state_dict().items(),
                                          restored_module.state_dict().items()):
        assert torch.equal(value, other), name
    assert any(name.startswith("_target_") for name in module.state_dict())
    old_opt = algo.learner_group._learner.get_optimizer("team").state_dict()["state"]
    new_opt = restored.learner_group._learner.get_optimizer("team").state_dict()["state"]
    assert all(torch.equal(old_opt[k]["exp_avg"], new_opt[k]["exp_avg"]) for k in old_opt)
    assert restored._env_steps == algo._env_steps and restored._episodes == algo._episodes
    assert len(restored.replay_buffer) == len(algo.replay_buffer)
    index = np.arange(len(algo.replay_buffer))
    assert np.array_equal(restored.replay_buffer.gather(index)["obs"],
                          algo.replay_buffer.gather(index)["obs"])
    assert restored.exploration_metrics() == algo.exploration_metrics()
    assert (restored.learner_group._learner._last_target_update_episode
            == algo.learner_group._learner._last_target_update_episode)

    # The restored algorithm trains on from where it was.
    result = restored.train()
    assert result["training_iteration"] == 3
    assert restored._env_steps > algo._env_steps
    assert result["num_gradient_steps_lifetime"] > algo._gradient_steps

    # TeamPolicy loads only the agent network and acts the same way, per step.
    policy = TeamPolicy.from_checkpoint(path)
    assert not hasattr(policy.module, "mixer")
    for episode, (actions, _) in zip(episodes, expected):
        policy.reset()
        stepped = [policy.act({"obs": episode.obs[t], "action_mask": episode.action_mask[t]})
                   for t in range(len(episode.obs))]
        assert np.array_equal(np.array(stepped), actions)
    algo.stop()
    restored.stop()


def recorded_team_observations(algo, count=1000):
    """Exploratory episodes that hold at least ``count`` team observations in all."""
    episodes = []
    while sum(len(episode.obs) for episode in episodes) < count:
        episodes += algo.env_runner.sample(num_episodes=64, explore=True)
    return episodes


def greedy_actions_along(module, episodes):
    """Greedy joint actions [sum of L+1, N] along each episode, from a fresh state; the
    same torch seed for every module, since MAVEN draws z at each episode's first step."""
    torch.manual_seed(0)
    return np.concatenate([greedy_actions_and_q(module, episode)[0] for episode in episodes])


def learn_from(algo, episodes):
    """The learning half of one training step on the given episodes: store them, run the
    algorithm's hook (MAVEN: REINFORCE steps of pi_z), one gradient step (same seed)."""
    algo.replay_buffer.add(episodes)
    algo.on_episodes_collected(episodes)
    torch.manual_seed(1)
    algo.gradient_step()
    algo.wait_for_background_updates()


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_restored_copy_acts_and_learns_exactly_like_the_original(ray_session, tmp_path, algorithm):
    algo = tiny_config(algorithm).build_algo()
    algo.train()
    path = algo.save(str(tmp_path / "ckpt")).checkpoint.path
    restored = rllib_softqmix.ALGORITHMS[algorithm].from_checkpoint(path)
    modules = [copy.learner_group._learner.module[TEAM] for copy in (algo, restored)]

    episodes = recorded_team_observations(algo)
    actions = [greedy_actions_along(module, episodes) for module in modules]
    assert len(actions[0]) >= 1000
    assert np.array_equal(actions[0], actions[1])

    saved = {name: value.clone() for name, value in modules[0].state_dict().items()}
    for copy in (algo, restored):
        learn_from(copy, episodes[:8])
    weights = [module.state_dict() for module in modules]
    assert weights[0].keys() == weights[1].keys()
    for name, value in weights[0].items():
        assert torch.equal(value, weights[1][name]), name
    assert any(not torch.equal(value, saved[name]) for name, value in weights[0].items())
    algo.stop()
    restored.stop()


def test_team_policy_rejects_a_path_that_is_not_a_checkpoint(tmp_path):
    with pytest.raises(rllib_softqmix.CheckpointError, match="not an rllib_softqmix"):
        TeamPolicy.from_checkpoint(tmp_path)


def test_relative_checkpoint_paths_restore_with_rllib_and_team_policy(ray_session, tmp_path,
                                                                      monkeypatch):
    """RLlib's loaders infer the filesystem with pyarrow's from_uri, which refuses a relative
    path (ArrowInvalid: URI has empty scheme); both entry points resolve it first."""
    algo = tiny_config("QMIX").build_algo()
    algo.train()
    (tmp_path / "run").mkdir()
    algo.save(str(tmp_path / "run" / "ckpt"))
    episodes = recorded_observations(algo)
    expected = [greedy_actions_and_q(algo.learner_group._learner.module[TEAM], episode)[0]
                for episode in episodes]
    algo.stop()

    monkeypatch.chdir(tmp_path)
    for relative in ("run/ckpt", Path("run") / "ckpt"):
        restored = Algorithm.from_checkpoint(relative)
        module = restored.learner_group._learner.module[TEAM]
        assert type(restored).__name__ == "QMIX" and restored.iteration == 1
        for episode, actions in zip(episodes, expected):
            assert np.array_equal(greedy_actions_and_q(module, episode)[0], actions)
        restored.restore_from_path(relative)  # Tune's restore reaches this one
        restored.stop()

        policy = TeamPolicy.from_checkpoint(relative)
        for episode, actions in zip(episodes, expected):
            policy.reset()
            stepped = [policy.act({"obs": episode.obs[t], "action_mask": episode.action_mask[t]})
                       for t in range(len(episode.obs))]
            assert np.array_equal(np.array(stepped), actions)


def test_unreadable_checkpoint_errors_name_the_checkpoints_that_exist(ray_session, tmp_path):
    algo = tiny_config("QMIX").build_algo()
    algo.train()
    good = Path(algo.save(str(tmp_path / "trial" / "checkpoint_000001")).checkpoint.path)
    algo.stop()
    weights = Path("learner_group", "learner", "rl_module", TEAM, "module_state.pkl")

    cut_short = shutil.copytree(good, tmp_path / "trial" / "checkpoint_000002")
    (cut_short / weights).write_bytes((good / weights).read_bytes()[:100])
    with pytest.raises(rllib_softqmix.CheckpointError,
                       match=f"(?s)cannot be loaded.*Complete checkpoints beside it: {good}\\."):
        TeamPolicy.from_checkpoint(cut_short)
    alone = shutil.move(cut_short, tmp_path / "elsewhere" / "checkpoint_000002")
    with pytest.raises(rllib_softqmix.CheckpointError,
                       match="No complete checkpoint is beside it in .*elsewhere: save one"):
        TeamPolicy.from_checkpoint(alone)

    # The checkpoint of another Ray: the advice is that Ray, not another checkpoint.
    older = shutil.copytree(good, tmp_path / "older")
    (older / "class_and_ctor_args.pkl").write_bytes(b"pickled by another Ray")
    metadata = json.loads((older / "rllib_checkpoint.json").read_text())
    (older / "rllib_checkpoint.json").write_text(json.dumps({**metadata, "ray_version": "2.9.0"}))
    with pytest.raises(rllib_softqmix.CheckpointError,
                       match="written by Ray 2.9.0 and this is Ray .*: load it with Ray 2.9.0"):
        rllib_softqmix.QMIX.from_checkpoint(older)


def test_tune_by_name_grid_search_checkpoint_and_restore(ray_session, tmp_path):
    config = (QMIXConfig().environment("one_step_matrix")
              .training(td_lambda=tune.grid_search([0.0, 0.6]), train_batch_size_episodes=16,
                        replay_buffer_capacity=100, episodes_per_train_step=8)
              .reporting(min_sample_timesteps_per_iteration=200).debugging(seed=0))
    tuner = tune.Tuner("QMIX", param_space=config, run_config=tune.RunConfig(
        storage_path=str(tmp_path), name="grid", stop={"training_iteration": 2},
        checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=True)))
    results = tuner.fit()
    assert len(results) == 2 and not results.errors
    assert sorted(result.config["td_lambda"] for result in results) == [0.0, 0.6]
    for result in results:
        assert result.metrics["training_iteration"] == 2
        for key in ("epsilon", "num_env_steps_sampled_lifetime"):
            assert key in result.metrics
        learner = result.metrics["learners"]["team"]
        for key in ("td_loss", "td_error_abs_mean", "q_tot_mean",
                    "gradients_default_optimizer_global_norm"):
            assert np.isfinite(learner[key]), key
        restored = Algorithm.from_checkpoint(result.checkpoint.path)
        assert restored.config.td_lambda == result.config["td_lambda"]
        assert restored.train()["training_iteration"] == 3
        restored.stop()


def test_legacy_tune_run_with_a_dict_config(ray_session, tmp_path):
    analysis = tune.run("VDN", config={"env": "one_step_matrix", "train_batch_size_episodes": 16,
                                       "replay_buffer_capacity": 64,
                                       "min_sample_timesteps_per_iteration": 100},
                        stop={"training_iteration": 1}, storage_path=str(tmp_path),
                        checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=True), verbose=0)
    trial = analysis.trials[0]
    assert trial.status == "TERMINATED"
    assert trial.last_result["num_env_steps_sampled_lifetime"] >= 100
    assert trial.last_result["config"]["mixer"] == "vdn"
    assert trial.checkpoint is not None


def acting_weights(group):
    """The acting module's tensors of every runner in an EnvRunnerGroup, local one first."""
    return group.foreach_env_runner(
        lambda runner: {name: tensor.numpy().copy()
                        for name, tensor in runner.module[TEAM].state_dict().items()},
        local_env_runner=True)


def assert_every_runner_acts_with(algo, learner_state):
    runners = acting_weights(algo.env_runner_group) + acting_weights(algo.eval_env_runner_group)
    assert len(runners) == 4  # a local and a remote runner for training and for evaluation
    for runner in runners:
        for name, tensor in runner.items():
            np.testing.assert_array_equal(tensor, learner_state[name], err_msg=name)


def test_restore_into_a_running_algorithm_reaches_every_acting_runner(ray_session, tmp_path):
    """``algo.restore`` (also PBT's exploit) while remote runners hold later weights, or weights
    of another trial with the same weights seq no: RLlib's post-restore sync carries the
    restored seq no, which its rule (load only a higher one) made runners skip."""
    config = tiny_config("QMIX", env="one_step_matrix")
    algo = (config.copy().env_runners(num_env_runners=1, num_cpus_per_env_runner=0.5)
            .evaluation(evaluation_interval=100, evaluation_num_env_runners=1).build_algo())
    other = config.copy().debugging(seed=1).build_algo()

    def learner_state(algo):
        return {name: tensor.detach().numpy().copy()
                for name, tensor in algo.learner_group._learner.module[TEAM].state_dict().items()}

    def seq_no(algo):
        return algo.learner_group._learner._weights_seq_no

    try:
        for _ in range(2):
            algo.train()
            other.train()
        early, early_state = algo.save(str(tmp_path / "early")).checkpoint.path, learner_state(algo)
        other_path, other_state = other.save(str(tmp_path / "other")).checkpoint.path, learner_state(other)
        early_seq_no = seq_no(algo)
        assert seq_no(other) == early_seq_no  # one-step episodes: the same count of updates
        for _ in range(3):
            algo.train()
        assert seq_no(algo) > early_seq_no
        algo.restore(early)
        assert_every_runner_acts_with(algo, early_state)
        algo.restore(other_path)
        assert_every_runner_acts_with(algo, other_state)
        algo.train()  # training syncs the training runners, evaluation the evaluation ones
        algo.evaluate()
        assert_every_runner_acts_with(algo, learner_state(algo))
    finally:
        algo.stop()
        other.stop()
