"""The MAVEN Algorithm: QMIX's loop plus the latent policy's REINFORCE steps after every
rollout (spec 4.1) and the second evaluation with the other way of drawing z."""

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import List, Optional

import numpy as np

from rllib_softqmix.core.episodes import TeamEpisode
from rllib_softqmix.envs.team_env import TEAM
from rllib_softqmix.maven.config import MAVENConfig
from rllib_softqmix.qmix.algorithm import QMIX

Z_BUFFER_STATE = "maven_z_buffer"


class MAVEN(QMIX):
    """Multi-Agent Variational Exploration (Mahajan et al. 2019)."""

    @classmethod
    def get_default_config(cls) -> MAVENConfig:
        return MAVENConfig()

    def setup(self, config: MAVENConfig) -> None:
        super().setup(config)
        self._z_buffer = deque(maxlen=self.config.bandit_buffer)
        self._z_policy_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maven_z_policy")
        self._z_policy_update: Optional[Future] = None

    def on_episodes_collected(self, episodes: List[TeamEpisode]) -> bool:
        """Stores (s_0, z, return) of every episode and, for a learned z-policy, takes
        bandit_iters REINFORCE steps on bandit_batch samples drawn with replacement (the
        runners get the new pi_z with the weights sync that follows).

        With a local learner the steps run in a thread beside the TD gradient steps: they
        share no parameters, optimizer or random state, so the result is the same as one
        after the other, and numpy's and torch's kernels release the GIL (2 cores: pi_z's
        100 steps then cost almost nothing)."""
        config = self.config
        for episode in episodes:
            self._z_buffer.append((episode.state[0], int(episode.extras["z"].argmax()),
                                   episode.get_return()))
        if config.z_policy != "learned" or not self._z_buffer:
            return False
        index = self._batch_rng.integers(len(self._z_buffer), size=(config.bandit_iters, config.bandit_batch))
        states, z, returns = (np.asarray(part) for part in zip(*self._z_buffer))

        def update(learner):
            return learner.update_z_policy(states[index], z[index], returns[index],
                                           config.entropy_scaling, config.z_entropy_bonus)

        if self.learner_group.is_local:
            self._z_policy_update = self._z_policy_thread.submit(update, self.learner_group._learner)
        else:
            self._z_policy_update = Future()
            self._z_policy_update.set_result(next(iter(self.learner_group.foreach_learner(update))).get())
        return True

    def wait_for_background_updates(self) -> None:
        if self._z_policy_update is not None:
            results, self._z_policy_update = self._z_policy_update.result(), None
            self.metrics.log_dict(results, window=1)

    def cleanup(self) -> None:
        self._z_policy_thread.shutdown(wait=True)
        super().cleanup()

    def evaluate(self, *args, **kwargs):
        """RLlib's evaluation with test_z, plus the mean greedy return with the other way of
        drawing z (reported as evaluation/<policy|uniform>_z_episode_return_mean)."""
        results = super().evaluate(*args, **kwargs)
        if self.config.z_policy != "learned":
            return results
        configured = self.config.test_z
        other = "uniform" if configured == "policy" else "policy"
        episodes = self.config.evaluation_duration

        def sample_with_other_z(runner):  # runs on (possibly remote) runners: no self here
            module = runner.team_module
            module.test_z = other
            try:
                return [e.get_return() for e in runner.sample(num_episodes=episodes, explore=False,
                                                             force_reset=True)]
            finally:
                module.test_z = configured

        group = self.eval_env_runner_group or self.env_runner_group
        remote = group.num_healthy_remote_workers() > 0
        returns = [ret for runner_returns in group.foreach_env_runner(
            sample_with_other_z, local_env_runner=not remote) for ret in runner_returns]
        results[f"{other}_z_episode_return_mean"] = float(np.mean(returns))
        return results

    def get_state(self, *args, **kwargs):
        state = super().get_state(*args, **kwargs)
        state[Z_BUFFER_STATE] = list(self._z_buffer)
        return state

    def set_state(self, state) -> None:
        super().set_state(state)
        if Z_BUFFER_STATE in state:
            self._z_buffer = deque(state[Z_BUFFER_STATE], maxlen=self.config.bandit_buffer)
