"""The QMIX Algorithm: PyMARL's training loop on RLlib (docs/architecture.md).

One ``training_step`` collects ``episodes_per_train_step`` whole episodes, stores
them in the episode replay buffer and, once it holds a batch, takes gradient steps
at the configured ratio (gradient_steps_per_train_step per episodes_per_train_step
new episodes). Target copies happen in the learner every
``target_update_interval_episodes`` episodes. RLlib repeats training steps until
``min_sample_timesteps_per_iteration`` env steps make one Tune iteration.

The replay buffer, counters and the sampler's RNG are part of the checkpoint. Checkpoints
are written atomically (a crash during a save leaves the previous one intact), and a
checkpoint of another algorithm or of an env with other spaces is refused on restore.
"""

import math
from typing import Dict, List, Tuple

import numpy as np
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_LEARNER_GROUP, COMPONENT_RL_MODULE
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import (ENV_RUNNER_RESULTS, ENV_RUNNER_SAMPLING_TIMER,
                                     LEARNER_RESULTS, LEARNER_UPDATE_TIMER,
                                     NUM_ENV_STEPS_SAMPLED_LIFETIME, NUM_EPISODES_LIFETIME,
                                     REPLAY_BUFFER_ADD_DATA_TIMER, REPLAY_BUFFER_SAMPLE_TIMER,
                                     SYNCH_WORKER_WEIGHTS_TIMER, TIMERS, WEIGHTS_SEQ_NO)

from rllib_softqmix.core.action_selection import LinearSchedule
from rllib_softqmix.core.checkpoints import (CheckpointError, check_algorithm_checkpoint,
                                             checkpointed_team_spaces, local_checkpoint_dir,
                                             save_atomically)
from rllib_softqmix.core.episodes import EpisodeReplayBuffer, TeamEpisode
from rllib_softqmix.envs.matrix_games import MStepMatrixGame, OneStepMatrixGame
from rllib_softqmix.envs.registry import make_team_env
from rllib_softqmix.envs.team_env import TEAM
from rllib_softqmix.qmix.config import QMIXConfig
from rllib_softqmix.qmix.env_runner import WEIGHTS_RESTORED
from rllib_softqmix.qmix.learner import TRAINING_ITERATION, NonFiniteLossError

ALGORITHM_STATE = "qmix_family_state"
SAMPLE_TAG = "sample_while_learning"


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
        """Collect, store, take the gradient steps owed, sync the runners' weights; with
        ``sample_while_learning`` the remote runners collect during the gradient steps and
        the episodes are stored after them."""
        overlap = (self.config.sample_while_learning
                   and self.env_runner_group.num_healthy_remote_workers() > 0)
        weights_changed = False
        if overlap:
            self.start_sampling()
        else:
            weights_changed = self.store_episodes(*self.sample_episodes())
        weights_changed = self.take_owed_gradient_steps() or weights_changed
        if overlap:
            weights_changed = self.store_episodes(*self.finish_sampling()) or weights_changed
        self.wait_for_background_updates()
        if weights_changed:
            with self.metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
                self.sync_env_runner_weights()
        self.metrics.log_dict({"replay_buffer_episodes": len(self.replay_buffer),
                               "num_gradient_steps_lifetime": self._gradient_steps,
                               **self.exploration_metrics()}, window=1)

    def store_episodes(self, episodes: List[TeamEpisode], runner_metrics: List[Dict]) -> bool:
        """Adds new episodes to the buffer and the gradient steps they earn (once the buffer
        holds a batch); returns whether ``on_episodes_collected`` changed acting weights."""
        self.metrics.aggregate(runner_metrics, key=ENV_RUNNER_RESULTS)
        self.check_episodes_finite(episodes)
        with self.metrics.log_time((TIMERS, REPLAY_BUFFER_ADD_DATA_TIMER)):
            self.replay_buffer.add(episodes)
        self._env_steps += sum(len(episode) for episode in episodes)
        self._episodes += len(episodes)
        weights_changed = self.on_episodes_collected(episodes)
        config = self.config
        if len(self.replay_buffer) >= config.train_batch_size_episodes:
            self._gradient_step_credit += (len(episodes) * config.gradient_steps_per_train_step
                                           / config.episodes_per_train_step)
        return weights_changed

    def take_owed_gradient_steps(self) -> bool:
        steps = int(self._gradient_step_credit)
        self._gradient_step_credit -= steps
        for _ in range(steps):
            self.gradient_step()
        return steps > 0

    def check_episodes_finite(self, episodes: List[TeamEpisode]) -> None:
        """NonFiniteLossError if the env returned a NaN or inf reward, observation or state:
        stored, such an episode would poison the buffer and every later checkpoint."""
        for episode in episodes:
            for name in ("rewards", "obs", "state"):
                if not np.isfinite(getattr(episode, name)).all():
                    raise NonFiniteLossError(
                        f"{type(self).__name__}: env {self.config.env!r} returned a non-finite "
                        f"{name} (NaN or inf) in an episode collected at training iteration "
                        f"{self.iteration + 1}; it was not stored and no update was applied. "
                        f"Fix the env, or wrap it to replace such values.")

    def sync_env_runner_weights(self) -> None:
        """Sends the learner's weights to the EnvRunners that act for training.

        With a local learner, the local runner's tensors are overwritten in place (0.2 ms)
        and each remote runner gets a numpy copy of the acting tensors as the argument of its
        ``set_state`` call, which Ray inlines up to 100 KiB (the MLP agent's 25 KB; the GRU
        agent's 108 KB goes through the object store). RLlib's sync reads the learner's whole
        state and always puts it into the object store first, which the runner then fetches:
        per call here (one remote runner, alternating in one process) 6.1 vs 2.1 ms for the
        MLP agent and 5.0 vs 4.0 ms for the GRU agent.
        """
        if not self.learner_group.is_local or self.env_runner is None:
            self.env_runner_group.sync_weights(from_worker_or_learner_group=self.learner_group,
                                               inference_only=True)
            return
        with torch.no_grad():
            for runner_tensor, learner_tensor in self._local_weight_pairs().values():
                runner_tensor.copy_(learner_tensor)
        if self.env_runner_group.num_remote_workers() > 0:
            self.env_runner_group.foreach_env_runner_async_fetch_ready(
                func="set_state", tag="set_state", kwargs={"state": self._acting_weights()})

    def _acting_weights(self) -> Dict:
        """The local learner's inference-only module state and weights seq no, in the form
        RLlib's sync sends them."""
        tensors = {name: learner_tensor.numpy().copy()
                   for name, (_, learner_tensor) in self._local_weight_pairs().items()}
        return {COMPONENT_RL_MODULE: {TEAM: tensors},
                WEIGHTS_SEQ_NO: self.learner_group._learner._weights_seq_no}

    def _local_weight_pairs(self) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
        """{name: (runner tensor, learner tensor)} for every entry of the inference-only
        runner module's state dict (state_dict tensors share storage with the modules')."""
        learner_module = self.learner_group._learner.module[TEAM]
        runner_module = self.env_runner.module[TEAM]
        cached_for = getattr(self, "_weight_pairs_for", (None, None))
        if cached_for[0] is not learner_module or cached_for[1] is not runner_module:
            learner_state = learner_module.state_dict()
            self._weight_pairs = {name: (tensor, learner_state[name])
                                  for name, tensor in runner_module.state_dict().items()}
            self._weight_pairs_for = (learner_module, runner_module)
        return self._weight_pairs

    def sample_episodes(self) -> Tuple[List[TeamEpisode], List[Dict]]:
        """Collects episodes_per_train_step episodes with exploration, split over runners."""
        with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            remote = self.env_runner_group.num_healthy_remote_workers()
            results = self.env_runner_group.foreach_env_runner(self._sample_function(max(1, remote)),
                                                               local_env_runner=remote == 0)
        return self._merge_samples(results)

    def start_sampling(self) -> None:
        """Starts the remote runners' sampling of one training step (see ``finish_sampling``)."""
        remote = self.env_runner_group.num_healthy_remote_workers()
        self.env_runner_group.foreach_env_runner_async(self._sample_function(remote), tag=SAMPLE_TAG)

    def finish_sampling(self) -> Tuple[List[TeamEpisode], List[Dict]]:
        """Waits for the sampling that ``start_sampling`` began (a runner that died meanwhile
        is left out, as in ``sample_episodes``)."""
        with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            ready = self.env_runner_group.fetch_ready_async_reqs(tags=SAMPLE_TAG, timeout_seconds=None)
        return self._merge_samples([result for _, result in ready])

    def _sample_function(self, runners: int):
        per_runner = math.ceil(self.config.episodes_per_train_step / runners)
        env_steps = self._env_steps

        def sample(runner, _n=per_runner, _t=env_steps):
            runner.set_state({NUM_ENV_STEPS_SAMPLED_LIFETIME: _t})
            return runner.sample(num_episodes=_n, explore=True), runner.get_metrics()

        return sample

    @staticmethod
    def _merge_samples(results) -> Tuple[List[TeamEpisode], List[Dict]]:
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
                           TRAINING_ITERATION: self.iteration + 1})
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
        observation and the full Q_tot table over joint actions (Soft-QMIX's Table 2); else {}."""
        env = self.env_runner.envs[0] if self.env_runner is not None else None
        if not isinstance(getattr(env, "env", None), (OneStepMatrixGame, MStepMatrixGame)):
            return {}
        observation = make_team_env(self.config.env, self.config.env_config).reset()[0][TEAM]
        timestep = self._env_steps
        results = self.learner_group.foreach_learner(
            lambda learner: learner.module[TEAM].unwrapped().first_step_diagnostics(observation, timestep))
        return next(iter(results)).get()

    # ---- hooks for the family -------------------------------------------------------
    def on_episodes_collected(self, episodes: List[TeamEpisode]) -> bool:
        """Called with every batch of new episodes (MAVEN trains its z-policy here); returns
        whether it changed weights the EnvRunners act with."""
        return False

    def wait_for_background_updates(self) -> None:
        """Called after the gradient steps, before the weights sync: waits for updates that
        ``on_episodes_collected`` started beside them (MAVEN's pi_z)."""

    def exploration_metrics(self) -> Dict[str, float]:
        config = self.config
        schedule = LinearSchedule(config.epsilon_start, config.epsilon_finish,
                                  config.epsilon_anneal_time)
        return {"epsilon": schedule(self._env_steps)}

    # ---- checkpoints --------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path, filesystem=None, **kwargs) -> "QMIX":
        """RLlib's from_checkpoint, after checking that ``path`` is a complete checkpoint of
        this algorithm or of a subclass (CheckpointError otherwise)."""
        directory = local_checkpoint_dir(path, filesystem)
        if directory is None:
            return super().from_checkpoint(path, filesystem, **kwargs)
        check_algorithm_checkpoint(directory, cls, exact=False)
        return super().from_checkpoint(directory, **kwargs)

    def restore_from_path(self, path, *args, **kwargs) -> None:
        """RLlib's restore (also Tune's), after checking that ``path`` is a checkpoint of
        exactly this algorithm for the same team spaces: a VDN checkpoint loaded into
        SoftQMIX, or a checkpoint of another env, is a CheckpointError before any state
        changes, not a tensor size mismatch half-way through."""
        directory = local_checkpoint_dir(path, kwargs.get("filesystem"))
        if directory is not None and kwargs.get("component") is None:
            check_algorithm_checkpoint(directory, type(self), exact=True)
            stored, current = checkpointed_team_spaces(directory), (self.spaces or {}).get(TEAM)
            if current is not None and stored != tuple(current):
                raise CheckpointError(
                    f"{directory} was trained on an env with team spaces {stored}, but this "
                    f"{type(self).__name__} runs env {self.config.env!r} with {tuple(current)}. "
                    f"Restore it with the env it was trained on, or train from scratch.")
        try:
            super().restore_from_path(path, *args, **kwargs)
        except RuntimeError as error:
            if "state_dict" not in str(error):
                raise
            raise CheckpointError(
                f"the networks in {path} do not fit this {type(self).__name__}: {error}. A setting "
                f"that shapes the networks (e.g. rnn_hidden_dim, mixing_embed_dim, noise_dim) "
                f"differs from the checkpoint's; use the checkpoint's config "
                f"({type(self).__name__}.from_checkpoint(path)).") from error
        component = kwargs.get("component")
        if component is None or COMPONENT_LEARNER_GROUP in component:  # the learner's restored
            self.sync_restored_weights()

    def sync_restored_weights(self) -> None:
        """Makes every runner, for training and for evaluation, act with the learner's
        (just restored) weights, and waits until they do.

        RLlib's own sync after a restore carries the checkpoint's weights seq no, which
        runners that acted with later weights (or with another trial's, PBT's exploit) take
        for an old sync and skip; these weights are marked ``WEIGHTS_RESTORED`` instead.
        """
        learner_state = self.learner_group.get_state(
            components=f"{COMPONENT_LEARNER}/{COMPONENT_RL_MODULE}",
            inference_only=True)[COMPONENT_LEARNER]
        state = {COMPONENT_RL_MODULE: learner_state[COMPONENT_RL_MODULE],
                 WEIGHTS_SEQ_NO: learner_state[WEIGHTS_SEQ_NO], WEIGHTS_RESTORED: True}
        for group in (self.env_runner_group, self.eval_env_runner_group):
            if group is not None:
                group.foreach_env_runner(lambda runner: runner.set_state(state))

    def save_to_path(self, path=None, *, state=None, filesystem=None, use_msgpack=False) -> str:
        """RLlib's save (also Tune's), written to a staging directory beside ``path`` and
        renamed into place: a crash during a save leaves ``path`` as it was."""
        save = super().save_to_path
        directory = None if path is None else local_checkpoint_dir(path, filesystem)
        if directory is None:
            return save(path, state=state, filesystem=filesystem, use_msgpack=use_msgpack)
        return save_atomically(directory, lambda staging: save(staging, state=state,
                                                               use_msgpack=use_msgpack))

    def get_state(self, components=None, *, not_components=None, **kwargs):
        state = super().get_state(components, not_components=not_components, **kwargs)
        if not self._check_component(ALGORITHM_STATE, components, not_components):
            return state  # e.g. only the learner group's state was asked for
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
