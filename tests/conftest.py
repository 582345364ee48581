"""Shared fixtures: one local Ray instance per test session, token auth off."""

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import ray  # noqa: E402

import rllib_softqmix  # noqa: E402,F401  (registers algorithms and envs)


@pytest.fixture(scope="session")
def ray_session():
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def greedy_episodes(algo, episodes=8):
    """Greedy (evaluation-mode) episodes from the algorithm's local EnvRunner."""
    return algo.env_runner.sample(num_episodes=episodes, explore=False)


def greedy_return(algo, episodes=8) -> float:
    return float(np.mean([episode.get_return() for episode in greedy_episodes(algo, episodes)]))
