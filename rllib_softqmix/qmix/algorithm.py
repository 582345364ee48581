"""The QMIX Algorithm: PyMARL's training loop on RLlib (spec section 0.3).

One ``training_step`` collects ``episodes_per_train_step`` whole episodes, stores
them in the episode replay buffer and, once it holds a batch, takes gradient steps
at the configured ratio (gradient_steps_per_train_step per episodes_per_train_step
new episodes). Target copies happen in the learner every
``target_update_interval_episodes`` episodes. RLlib repeats training steps until
``min_sample_timesteps_per_iteration`` env steps make one Tune iteration.

The replay buffer, counters and the sampler's RNG are part of the checkpoint.
"""

import math
from typing import Dict, List, Tuple

import numpy as np
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import (ENV_RUNNER_RESULTS, ENV_RUNNER_SAMPLING_TIMER,
                                     LEARNER_RESULTS, LEARNER_UPDATE_TIMER,
                                     NUM_ENV_STEPS_SAMPLED_LIFETIME, NUM_EPISODES_LIFETIME,
                                     REPLAY_BUFFER_ADD_DATA_TIMER, REPLAY_BUFFER_SAMPLE_TIMER,
                                     SYNCH_WORKER_WEIGHTS_TIMER, TIMERS)

from rllib_softqmix.core.action_selection import LinearSchedule
from rllib_softqmix.core.episodes import EpisodeReplayBuffer, TeamEpisode
from rllib_softqmix.envs.matrix_games import MStepMatrixGame, OneStepMatrixGame
from rllib_softqmix.envs.registry import make_team_env
from rllib_softqmix.envs.team_env import TEAM
from rllib_softqmix.qmix.config import QMIXConfig
from rllib_softqmix.qmix.learner import TRAINING_ITERATION

ALGORITHM_STATE = "qmix_family_state"


class QMIX(Algorithm):
    """QMIX (Rashid et al. 2018) with pymarl2's tricks; the base of the whole family."""

    @classmethod
    def get_default_config(cls) -> QMIXConfig:
        return QMIXConfig()

    def setup(self, config: QMIXConfig) -> None:
        super().setup(config)
        self.replay_buffer = EpisodeReplayBuffer(self.config.replay_buffer_capacity)
        self._batch_rng = np.random.default_rng(self.config.seed)
        self._env_steps = 0
        self._episodes = 0
        self._gradient_steps = 0
        self._gradient_step_credit = 0.0

    # ---- one training step ------------------------------------------------------
    def training_step(self) -> None:
        with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            episodes, runner_metrics = self.sample_episodes()
        self.metrics.aggregate(runner_metrics, key=ENV_RUNNER_RESULTS)
        with self.metrics.log_time((TIMERS, REPLAY_BUFFER_ADD_DATA_TIMER)):
            self.replay_buffer.add(episodes)
        self._env_steps += sum(len(episode) for episode in episodes)
        self._episodes += len(episodes)
        self.on_episodes_collected(episodes)

        config = self.config
        if len(self.replay_buffer) >= config.train_batch_size_episodes:
            self._gradient_step_credit += (len(episodes) * config.gradient_steps_per_train_step
                                           / config.episodes_per_train_step)
            steps = int(self._gradient_step_credit)
            self._gradient_step_credit -= steps
            for _ in range(steps):
                self.gradient_step()
            if steps:
                with self.metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
                    self.sync_env_runner_weights()
        self.metrics.log_dict({"replay_buffer_episodes": len(self.replay_buffer),
                               "num_gradient_steps_lifetime": self._gradient_steps,
                               **self.exploration_metrics()}, window=1)

    def sync_env_runner_weights(self) -> None:
        """Sends the learner's weights to the EnvRunners that act for training.

        When the learner and the only EnvRunner share this process, the tensors are
        copied directly; RLlib's sync goes through numpy state dicts (4 ms a call here).
        """
        if self.learner_group.is_local and self.env_runner_group.num_remote_workers() == 0:
            learner_module = self.learner_group._learner.module[TEAM]
            self.env_runner.module[TEAM].load_state_dict(learner_module.state_dict(), strict=False)
        else:
            self.env_runner_group.sync_weights(from_worker_or_learner_group=self.learner_group,
                                               inference_only=True)

    def sample_episodes(self) -> Tuple[List[TeamEpisode], List[Dict]]:
        """Collects episodes_per_train_step episodes with exploration, split over runners."""
        remote = self.env_runner_group.num_healthy_remote_workers()
        per_runner = math.ceil(self.config.episodes_per_train_step / max(1, remote))
        env_steps = self._env_steps

        def sample(runner, _n=per_runner, _t=env_steps):
            runner.set_state({NUM_ENV_STEPS_SAMPLED_LIFETIME: _t})
            return runner.sample(num_episodes=_n, explore=True), runner.get_metrics()

        results = self.env_runner_group.foreach_env_runner(sample, local_env_runner=remote == 0)
        episodes = [episode for runner_episodes, _ in results for episode in runner_episodes]
        return episodes, [metrics for _, metrics in results]

    def gradient_step(self) -> None:
        with self.metrics.log_time((TIMERS, REPLAY_BUFFER_SAMPLE_TIMER)):
            batch = self.replay_buffer.sample(self.config.train_batch_size_episodes, self._batch_rng)
            env_steps = int(batch["mask"].sum())
            if self.learner_group.is_local:  # zero-copy tensors: RLlib skips its conversion
                batch = {key: torch.from_numpy(value) for key, value in batch.items()}
        with self.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
            results = self.learner_group.update(
                batch=MultiAgentBatch({TEAM: SampleBatch(batch)}, env_steps=env_steps),
                timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: self._env_steps,
                           NUM_EPISODES_LIFETIME: self._episodes,
                           TRAINING_ITERATION: self.iteration})
        self.metrics.aggregate(results, key=LEARNER_RESULTS)
        self._gradient_steps += 1

    def step(self):
        """One Tune iteration (RLlib's), plus the matrix games' Q_tot table and policies."""
        results = super().step()
        diagnostics = self.matrix_game_diagnostics()
        if diagnostics:
            results["matrix_game"] = diagnostics
        return results

    def matrix_game_diagnostics(self) -> Dict[str, List]:
        """On the matrix games: each agent's Q and acting probabilities at the first
        observation and the full Q_tot table over joint actions (spec 5a); else {}."""
        env = self.env_runner.envs[0] if self.env_runner is not None else None
        if not isinstance(getattr(env, "env", None), (OneStepMatrixGame, MStepMatrixGame)):
            return {}
        observation = make_team_env(self.config.env, self.config.env_config).reset()[0][TEAM]
        timestep = self._env_steps
        results = self.learner_group.foreach_learner(
            lambda learner: learner.module[TEAM].unwrapped().first_step_diagnostics(observation, timestep))
        return next(iter(results)).get()

    # ---- hooks for the family -------------------------------------------------------
    def on_episodes_collected(self, episodes: List[TeamEpisode]) -> None:
        """Called with every batch of new episodes (MAVEN trains its z-policy here)."""

    def exploration_metrics(self) -> Dict[str, float]:
        config = self.config
        schedule = LinearSchedule(config.epsilon_start, config.epsilon_finish,
                                  config.epsilon_anneal_time)
        return {"epsilon": schedule(self._env_steps)}

    # ---- checkpoints --------------------------------------------------------------
    def get_state(self, *args, **kwargs):
        state = super().get_state(*args, **kwargs)
        state[ALGORITHM_STATE] = {
            "replay_buffer": self.replay_buffer.get_state(),
            "batch_rng": self._batch_rng.bit_generator.state,
            "env_steps": self._env_steps,
            "episodes": self._episodes,
            "gradient_steps": self._gradient_steps,
            "gradient_step_credit": self._gradient_step_credit,
        }
        return state

    def set_state(self, state) -> None:
        super().set_state(state)
        if ALGORITHM_STATE in state:
            own = state[ALGORITHM_STATE]
            self.replay_buffer.set_state(own["replay_buffer"])
            self._batch_rng.bit_generator.state = own["batch_rng"]
            self._env_steps = own["env_steps"]
            self._episodes = own["episodes"]
            self._gradient_steps = own["gradient_steps"]
            self._gradient_step_credit = own["gradient_step_credit"]
