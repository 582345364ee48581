"""Same seed, one process, CPU: the same results, iteration by iteration (README claim)."""

import torch

from rllib_softqmix import QMIXConfig


def run_three_iterations():
    config = (QMIXConfig().environment("mpe_spread")
              .training(train_batch_size_episodes=8, replay_buffer_capacity=64, episodes_per_train_step=4)
              .env_runners(num_envs_per_env_runner=4)
              .reporting(min_sample_timesteps_per_iteration=300).debugging(seed=7))
    algo = config.build_algo()
    history = []
    for _ in range(3):
        result = algo.train()
        history.append((result["env_runners"]["episode_return_mean"],
                        float(result["learners"]["team"]["td_loss"])))
    weights = {key: value.clone() for key, value in
               algo.learner_group._learner.module["team"].state_dict().items()}
    algo.stop()
    return history, weights


def test_same_seed_same_results(ray_session):
    history, weights = run_three_iterations()
    history_again, weights_again = run_three_iterations()
    assert history == history_again
    assert all(torch.equal(weights[key], weights_again[key]) for key in weights)
