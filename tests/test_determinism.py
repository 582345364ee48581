"""Same seed, one process, CPU: the same results, iteration by iteration (README claim)."""

import pytest
import torch
from conftest import ALGORITHM_NAMES, tiny_config

from rllib_softqmix import QMIXConfig
from rllib_softqmix.core import process


def first_iterations(config, iterations=3):
    """Per iteration: the training return, env steps, gradient steps and every learner metric
    but timers; then the learner's final weights."""
    algo = config.build_algo()
    history = []
    for _ in range(iterations):
        result = algo.train()
        learner = {key: float(value) for key, value in result["learners"]["team"].items()
                   if not isinstance(value, dict) and "timer" not in key
                   and "throughput" not in key}
        history.append((result["env_runners"]["episode_return_mean"],
                        result["num_env_steps_sampled_lifetime"],
                        result["num_gradient_steps_lifetime"], learner))
    weights = {key: value.clone() for key, value in
               algo.learner_group._learner.module["team"].state_dict().items()}
    algo.stop()
    return history, weights


def assert_same_runs(config, before_second_run=lambda: None):
    history, weights = first_iterations(config)
    before_second_run()
    history_again, weights_again = first_iterations(config)
    assert history[-1][2] > 0  # gradient steps were taken
    assert history == history_again
    assert weights.keys() == weights_again.keys()
    assert all(torch.equal(weights[key], weights_again[key]) for key in weights)


def test_same_seed_same_results_on_spread(ray_session, monkeypatch):
    """The second run fills every new tensor with NaN (torch's debugging fill, which RLlib's
    seeding turns on and ``leave_new_tensors_unfilled`` turns off), so any read of memory
    before it is written would make the two runs differ."""
    fill_calls = []

    def fill_new_tensors():
        fill_calls.append(True)
        torch.utils.deterministic.fill_uninitialized_memory = True

    def refill_from_now_on():
        assert torch.utils.deterministic.fill_uninitialized_memory is False
        monkeypatch.setattr(process, "leave_new_tensors_unfilled", fill_new_tensors)

    monkeypatch.setattr(torch.utils.deterministic, "fill_uninitialized_memory",
                        torch.utils.deterministic.fill_uninitialized_memory)
    assert_same_runs(QMIXConfig().environment("mpe_spread")
                     .training(train_batch_size_episodes=8, replay_buffer_capacity=64,
                               episodes_per_train_step=4)
                     .env_runners(num_envs_per_env_runner=4)
                     .reporting(min_sample_timesteps_per_iteration=300).debugging(seed=7),
                     refill_from_now_on)
    assert fill_calls and torch.utils.deterministic.fill_uninitialized_memory is True


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_same_seed_same_results_for_every_algorithm(ray_session, algorithm):
    assert_same_runs(tiny_config(algorithm))
