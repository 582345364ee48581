"""The MAVEN Algorithm: QMIX's loop plus the latent policy's REINFORCE steps after every
rollout (docs/algorithms/maven.md) and the second evaluation with the other way of drawing z."""

from collections import deque
from typing import List, Optional, Tuple

import numpy as np
import ray

from rllib_softqmix.core.episodes import TeamEpisode
from rllib_softqmix.maven import reinforce
from rllib_softqmix.maven.config import MAVENConfig
from rllib_softqmix.qmix.algorithm import QMIX

Z_BUFFER_STATE = "maven_z_buffer"
# numpy in the z-policy actor: one BLAS thread, as in the learner, so results are identical.
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


class MAVEN(QMIX):
    """Multi-Agent Variational Exploration (Mahajan et al. 2019)."""

    @classmethod
    def get_default_config(cls) -> MAVENConfig:
        return MAVENConfig()

    def setup(self, config: MAVENConfig) -> None:
        super().setup(config)
        self._z_buffer = deque(maxlen=self.config.bandit_buffer)
        self._z_policy_worker = None
        if config.z_policy == "learned" and self.learner_group.is_local:
            ray.cloudpickle.register_pickle_by_value(reinforce)  # the actor needs numpy only
            self._z_policy_worker = ray.remote(num_cpus=0)(reinforce.ZPolicyWorker).options(
                runtime_env={"env_vars": ONE_THREAD}).remote()
        self._z_policy_update: Optional[Tuple[ray.ObjectRef, np.ndarray]] = None

    def on_episodes_collected(self, episodes: List[TeamEpisode]) -> bool:
        """Stores (s_0, z, return) of every episode and, for a learned z-policy, takes
        bandit_iters REINFORCE steps on bandit_batch samples drawn with replacement (the
        runners get the new pi_z with the weights sync that follows).

        With a local learner the steps run in a Ray actor (ZPolicyWorker) on another core
        while the TD gradient steps run here: they share no parameters, optimizer or
        random state, so the result is the same as one after the other (tested)."""
        config = self.config
        for episode in episodes:
            self._z_buffer.append((episode.state[0], int(episode.extras["z"].argmax()),
                                   episode.get_return()))
        if config.z_policy != "learned" or not self._z_buffer:
            return False
        index = self._batch_rng.integers(len(self._z_buffer), size=(config.bandit_iters, config.bandit_batch))
        states, z, returns = (np.asarray(part, dtype) for part, dtype in
                              zip(zip(*self._z_buffer), (np.float32, np.int64, np.float32)))
        steps = (states, z, returns, index, config.entropy_scaling)
        if self._z_policy_worker is None:
            results = self.learner_group.foreach_learner(
                lambda learner: learner.update_z_policy(*steps, config.z_entropy_bonus))
            self.metrics.log_dict(next(iter(results)).get(), window=1)
            return True
        policy, adam = self.learner_group._learner.packed_z_policy()
        self._z_policy_update = (self._z_policy_worker.reinforce_steps.remote(
            reinforce.plain(policy), reinforce.plain(adam), *steps, config.z_entropy_bonus == "exact"),
            states[index[-1]])
        return True

    def wait_for_background_updates(self) -> None:
        if self._z_policy_update is not None:
            (pending, last_states), self._z_policy_update = self._z_policy_update, None
            policy, losses = ray.get(pending)
            learner = self.learner_group._learner
            self.metrics.log_dict(learner.load_z_policy(reinforce.PackedZPolicy(*policy), losses, last_states),
                                  window=1)

    def cleanup(self) -> None:
        if self._z_policy_worker is not None:
            ray.kill(self._z_policy_worker)
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
