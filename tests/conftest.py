"""Shared fixtures: one local Ray instance per test session, token auth off; smacv2
present (as the fake of fake_smacv2.py) or absent, whatever this machine has."""

import os
import sys
import types

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import ray  # noqa: E402

import rllib_softqmix  # noqa: E402,F401  (registers algorithms and envs)
from fake_smacv2 import FakeCapabilityEnvWrapper  # noqa: E402


def pytest_configure(config):
    # Once JAX is loaded (the SMAX envs), Python warns at every fork; Ray and subprocess
    # fork only to exec at once, which the warning does not concern.
    config.addinivalue_line("filterwarnings", r"ignore:os\.fork\(\) was called:RuntimeWarning")


@pytest.fixture(scope="session")
def ray_session():
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


ALGORITHM_NAMES = list(rllib_softqmix.ALGORITHMS)
# Small networks and batches: every algorithm trains an iteration in well under a second.
TINY_SETTINGS = dict(rnn_hidden_dim=8, mixing_embed_dim=8, hypernet_embed=8,
                     train_batch_size_episodes=8, replay_buffer_capacity=64,
                     episodes_per_train_step=4, epsilon_anneal_time=1000,
                     target_update_interval_episodes=12)
ALGORITHM_SETTINGS = {"MAVEN": dict(z_policy="learned", bandit_iters=2, bandit_batch=8)}


def tiny_config(algorithm, env="m_step_matrix", env_config=None, **training):
    """A small, seeded config of ``algorithm`` (a registered name), by default on the 4-step
    matrix game; MAVEN with a learned z-policy, so that its state is exercised too."""
    env_config = {"m": 4} if env_config is None and env == "m_step_matrix" else env_config or {}
    return (rllib_softqmix.ALGORITHMS[algorithm].get_default_config()
            .environment(env, env_config=env_config)
            .training(**{**TINY_SETTINGS, **ALGORITHM_SETTINGS.get(algorithm, {}), **training})
            .env_runners(num_envs_per_env_runner=4)
            .reporting(min_sample_timesteps_per_iteration=64).debugging(seed=0))


@pytest.fixture
def fake_smacv2_package(monkeypatch, tmp_path):
    """smacv2 "installed" as the fake, and SC2PATH pointing to an existing directory."""
    package, env_module = types.ModuleType("smacv2"), types.ModuleType("smacv2.env")
    env_module.StarCraftCapabilityEnvWrapper = FakeCapabilityEnvWrapper
    package.env = env_module
    monkeypatch.setitem(sys.modules, "smacv2", package)
    monkeypatch.setitem(sys.modules, "smacv2.env", env_module)
    monkeypatch.setenv("SC2PATH", str(tmp_path))


@pytest.fixture
def no_smacv2(monkeypatch, tmp_path):
    """smacv2 not importable and no StarCraft II at SC2PATH."""
    monkeypatch.setitem(sys.modules, "smacv2", None)
    monkeypatch.setenv("SC2PATH", str(tmp_path / "StarCraftII"))


def greedy_episodes(algo, episodes=8):
    """Greedy (evaluation-mode) episodes from the algorithm's local EnvRunner."""
    return algo.env_runner.sample(num_episodes=episodes, explore=False)


def greedy_return(algo, episodes=8) -> float:
    return float(np.mean([episode.get_return() for episode in greedy_episodes(algo, episodes)]))
