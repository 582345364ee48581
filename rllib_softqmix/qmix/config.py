"""QMIXConfig: every setting of the QMIX family, documented and checked up front.

Defaults are pymarl2's ``qmix.yaml`` (spec section 1.6): Adam 1e-3, TD(lambda 0.6),
double Q, batch 128 of a 5000-episode buffer, one gradient step per 8 new episodes,
hard target copies every 200 episodes, epsilon 1 -> 0.05 over 100k env steps.
"""

import difflib
from collections.abc import Mapping
from typing import Any, Dict, Optional

import gymnasium as gym
import numpy as np
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.util.debug import log_once

from rllib_softqmix.core.mixers import MIXERS
from rllib_softqmix.core.value_range import DIVERGENCE_CHECKS
from rllib_softqmix.core.validation import (Check, ConfigError, boolean, check_setting, choice,
                                            integer, number, optional)
from rllib_softqmix.envs.registry import (EnvDependencyError, UnknownEnvError, check_env_options,
                                          check_without_building, make_team_env,
                                          registered_env_names)
from rllib_softqmix.envs.team_env import TEAM, TeamEnvError

AGENT_NETWORKS = ("gru", "mlp")
OPTIMIZERS = ("adam", "rmsprop")

# RLlib settings that this family does not read; setting them is an error that names
# the setting to use instead, so nothing is silently ignored.
UNUSED_RLLIB_SETTINGS = {
    "train_batch_size": "train_batch_size_episodes (whole episodes, not timesteps)",
    "train_batch_size_per_learner": "train_batch_size_episodes",
    "minibatch_size": "train_batch_size_episodes",
    "num_epochs": "gradient_steps_per_train_step",
    "rollout_fragment_length": "episodes_per_train_step (runners return whole episodes)",
    "batch_mode": "nothing: runners always return complete episodes",
    "grad_clip_by": "grad_clip (always a global-norm clip, as in PyMARL)",
}


def team_policy_mapping_fn(agent_id, episode=None, **kwargs) -> str:
    return TEAM


def set_provided(config: "QMIXConfig", arguments: Dict[str, Any]) -> None:
    """Sets and checks every keyword argument of a ``training()`` call that was given."""
    provided = {key: value for key, value in arguments.items()
                if key not in ("self", "kwargs", "__class__") and value is not NotProvided}
    config.check_settings(provided)
    for key, value in provided.items():
        setattr(config, key, value)


def check_env_config(owner: str, env_config: Any) -> None:
    if env_config is not None and not isinstance(env_config, Mapping):
        raise ConfigError(f"{owner}: env_config={env_config!r} is invalid; env_config must be a "
                          f"mapping of the env's options, e.g. {{'difficulty': 'hard'}}.")


def check_team_env(env, reset_attempts: int = 3) -> None:
    """TeamEnvError unless ``env`` has the team spaces the RLModule reads, Dict(obs [N, O],
    state [S], action_mask [N, A]) and MultiDiscrete([A] * N), and resets to such an
    observation (within ``reset_attempts`` tries, so that a flaky env passes)."""
    obs_space = (getattr(env, "observation_spaces", None) or {}).get(TEAM)
    action_space = (getattr(env, "action_spaces", None) or {}).get(TEAM)
    ranks = {"obs": 2, "state": 1, "action_mask": 2}
    if not isinstance(obs_space, gym.spaces.Dict) or any(
            not isinstance(obs_space.spaces.get(key), gym.spaces.Box)
            or len(obs_space[key].shape) != rank for key, rank in ranks.items()):
        raise TeamEnvError(
            f"its team observation space is {obs_space}; it must be Dict(obs=Box([N, O]), "
            f"state=Box([S]) (the global state the mixer reads), action_mask=Box([N, A])). "
            f"Register a PettingZoo ParallelEnv (or AECEnv), or an RLlib MultiAgentEnv of the "
            f"individual agents, instead: TeamEnv builds these (and a state from the agents' "
            f"observations when the env has none).")
    n_agents, n_actions = obs_space["action_mask"].shape
    if (not isinstance(action_space, gym.spaces.MultiDiscrete)
            or obs_space["obs"].shape[0] != n_agents
            or list(action_space.nvec) != [n_actions] * n_agents):
        raise TeamEnvError(
            f"its team action space is {action_space}; for {n_agents} agents with {n_actions} "
            f"actions it must be MultiDiscrete([{n_actions}] * {n_agents}).")
    for attempt in range(reset_attempts):
        try:
            observations, _ = env.reset(seed=attempt)
            break
        except TeamEnvError:  # TeamEnv's own message is the specific one
            raise
        except Exception as error:  # noqa: BLE001 - any failure of a user's env is reported alike
            if attempt + 1 == reset_attempts:
                raise TeamEnvError(
                    f"reset() raised {error!r} ({reset_attempts} times in a row). The env must "
                    f"reset; if it declares a state_space, TeamEnv calls its state() for the "
                    f"global state: implement state() or remove state_space.") from error
    observation = observations.get(TEAM) if isinstance(observations, Mapping) else None
    for key, space in obs_space.items():
        shape = np.shape(observation.get(key)) if isinstance(observation, Mapping) else None
        if shape != space.shape:
            raise TeamEnvError(
                f"reset() returned team observation {key!r} of shape {shape}, but its space says "
                f"{space.shape}; the env's {'state()' if key == 'state' else key} must match "
                f"its declared space.")


class QMIXConfig(AlgorithmConfig):
    """Config of QMIX (and, through subclasses, of VDN, Soft-QMIX, QMIX-GRE and MAVEN).

    Example:
        config = (QMIXConfig().environment("mpe_spread", env_config={"difficulty": "hard"})
                  .training(td_lambda=0.4, lr=1e-3).env_runners(num_envs_per_env_runner=4))
        algo = config.build_algo()
    """

    def __init__(self, algo_class=None):
        from rllib_softqmix.qmix.algorithm import QMIX

        super().__init__(algo_class=algo_class or QMIX)
        from rllib_softqmix.qmix.env_runner import TeamEnvRunner

        # RLlib settings this family relies on.
        self.env_runner_cls = TeamEnvRunner
        self.num_env_runners = 0
        self.num_envs_per_env_runner = 8
        self.merge_env_runner_states = False
        self.broadcast_env_runner_states = False
        self.min_sample_timesteps_per_iteration = 1000
        self.evaluation_config = {"explore": False}
        self.evaluation_duration_unit = "episodes"
        self.multi_agent(policies={TEAM}, policy_mapping_fn=team_policy_mapping_fn)
        self.lr = 1e-3
        self.gamma = 0.99
        self.grad_clip = 10.0
        self.grad_clip_by = "global_norm"

        # Agent network (spec 1.1).
        self.agent_network = "gru"
        self.rnn_hidden_dim = 64
        self.obs_last_action = True
        self.obs_agent_id = True
        # Mixer (spec 1.2).
        self.mixer = "qmix"
        self.mixing_embed_dim = 32
        self.hypernet_embed = 64
        self.hypernet_layers = 2
        # Targets and loss (spec 1.3, 1.4).
        self.td_lambda = 0.6
        self.double_q = True
        self.td_loss_scale = 0.5
        self.bootstrap_truncated_episodes = False
        self.divergence_check = "raise"
        self.divergence_margin = 1.0
        self.standardize_rewards = False
        self.target_update_interval_episodes = 200
        self.optimizer_type = "adam"
        self.optim_alpha = 0.99
        self.optim_eps = 1e-5
        # Exploration (spec 1.5).
        self.epsilon_start = 1.0
        self.epsilon_finish = 0.05
        self.epsilon_anneal_time = 100_000
        # Replay and update cadence (spec 0.3).
        self.replay_buffer_capacity = 5000
        self.train_batch_size_episodes = 128
        self.episodes_per_train_step = 8
        self.gradient_steps_per_train_step = 1
        self.sample_while_learning = False
        self.torch_num_threads = 1

    def use_classic_pymarl_defaults(self) -> None:
        """Classic PyMARL QMIX (the base learner of the GRE and MAVEN releases) instead of
        pymarl2's: one-step targets, full squared TD error, RMSprop 5e-4, batch 32, one
        episode from one env per gradient step, epsilon annealed over 50k steps."""
        self.td_lambda = 0.0
        self.td_loss_scale = 1.0
        self.optimizer_type = "rmsprop"
        self.lr = 5e-4
        self.train_batch_size_episodes = 32
        self.episodes_per_train_step = 1
        self.num_envs_per_env_runner = 1
        self.epsilon_anneal_time = 50_000

    def training(
        self, *,
        agent_network: Optional[str] = NotProvided,
        rnn_hidden_dim: Optional[int] = NotProvided,
        obs_last_action: Optional[bool] = NotProvided,
        obs_agent_id: Optional[bool] = NotProvided,
        mixer: Optional[str] = NotProvided,
        mixing_embed_dim: Optional[int] = NotProvided,
        hypernet_embed: Optional[int] = NotProvided,
        hypernet_layers: Optional[int] = NotProvided,
        td_lambda: Optional[float] = NotProvided,
        double_q: Optional[bool] = NotProvided,
        td_loss_scale: Optional[float] = NotProvided,
        bootstrap_truncated_episodes: Optional[bool] = NotProvided,
        divergence_check: Optional[str] = NotProvided,
        divergence_margin: Optional[float] = NotProvided,
        standardize_rewards: Optional[bool] = NotProvided,
        target_update_interval_episodes: Optional[int] = NotProvided,
        optimizer_type: Optional[str] = NotProvided,
        optim_alpha: Optional[float] = NotProvided,
        optim_eps: Optional[float] = NotProvided,
        epsilon_start: Optional[float] = NotProvided,
        epsilon_finish: Optional[float] = NotProvided,
        epsilon_anneal_time: Optional[int] = NotProvided,
        replay_buffer_capacity: Optional[int] = NotProvided,
        train_batch_size_episodes: Optional[int] = NotProvided,
        episodes_per_train_step: Optional[int] = NotProvided,
        gradient_steps_per_train_step: Optional[int] = NotProvided,
        sample_while_learning: Optional[bool] = NotProvided,
        torch_num_threads: Optional[int] = NotProvided,
        **kwargs,
    ) -> "QMIXConfig":
        """QMIX-family settings (plus RLlib's own: lr, gamma, grad_clip, ...).

        Args:
            agent_network: "gru" (recurrent, default) or "mlp" agent.
            rnn_hidden_dim: hidden size H of the agent network.
            obs_last_action: add the agent's previous action (one-hot) to its input.
            obs_agent_id: add the agent's index (one-hot) to its input.
            mixer: "qmix" (monotone hypernetwork mixer) or "vdn" (sum).
            mixing_embed_dim: width E of the QMIX mixing layer.
            hypernet_embed: hidden width of two-layer hypernetworks.
            hypernet_layers: 2 (pymarl2, GRE) or 1 (MAVEN) layers per weight hypernetwork.
            td_lambda: lambda of the TD(lambda) targets in [0, 1]; 0 = one-step targets.
            double_q: choose bootstrap actions with the online network (double Q).
            td_loss_scale: the TD loss is scale * masked mean of delta^2; pymarl2 uses
                0.5, classic PyMARL (GRE, MAVEN) 1.0.
            bootstrap_truncated_episodes: False (default): every episode end is terminal,
                so the values are those of the episodic task as the env defines it (its
                time limit included), which is what its return measures. True: a truncation
                bootstraps from the value of the final observation (partial-episode
                bootstrapping, Pardo et al. 2018, arXiv:1712.00378), right only when the
                time limit is not part of the task and the agents cannot see it; where they
                can (time in the observation, or a GRU counting a fixed horizon), that final
                observation is one no acting step has, its value is never trained, and the
                values can diverge. See README, "Time limits".
            divergence_check: "raise" (default): stop with ValueRangeError when |Q_tot|
                leaves the range the rewards allow (``core.value_range``); "warn": log it
                and train on; "off".
            divergence_margin: the check's slack: it fires beyond (1 + margin) times the
                bound.
            standardize_rewards: standardise rewards in the targets with their running
                mean and standard deviation over all trained batches (EPyMARL's
                ``standardise_rewards``; off in pymarl2).
            target_update_interval_episodes: hard target copy every this many episodes.
            optimizer_type: "adam" (pymarl2) or "rmsprop" (classic PyMARL).
            optim_alpha: RMSprop smoothing constant.
            optim_eps: RMSprop epsilon.
            epsilon_start: epsilon-greedy start value in [0, 1].
            epsilon_finish: final epsilon in [0, 1].
            epsilon_anneal_time: env steps over which epsilon falls linearly.
            replay_buffer_capacity: episodes kept in the FIFO replay buffer.
            train_batch_size_episodes: episodes per gradient step (sampled uniformly
                without replacement once the buffer holds that many).
            episodes_per_train_step: new episodes collected per training step
                (PyMARL's batch_size_run), split across the EnvRunners.
            gradient_steps_per_train_step: gradient steps per training step; the update
                ratio is gradient_steps_per_train_step / episodes_per_train_step.
            sample_while_learning: with num_env_runners >= 1, the remote EnvRunners collect
                a training step's episodes while the learner takes its gradient steps on
                the buffer as it was (sampling and learning on separate cores). The
                episodes are stored after those steps, so each gradient step misses the
                newest episodes that the sequential order would have given it; the weights
                the runners act with are the same in both orders.
            torch_num_threads: torch intra-op threads in learners and EnvRunners (1 is
                fastest for these small networks on small machines).
        """
        self.check_settings(kwargs)
        super().training(**kwargs)
        set_provided(self, locals())
        return self

    # ---- what RLlib builds --------------------------------------------------------
    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from rllib_softqmix.qmix.rl_module import QMIXTorchRLModule

        return RLModuleSpec(module_class=QMIXTorchRLModule)

    def get_default_learner_class(self):
        from rllib_softqmix.qmix.learner import QMIXTorchLearner

        return QMIXTorchLearner

    @property
    def _model_config_auto_includes(self) -> Dict[str, Any]:
        return {key: getattr(self, key) for key in (
            "agent_network", "rnn_hidden_dim", "obs_last_action", "obs_agent_id", "mixer",
            "mixing_embed_dim", "hypernet_embed", "hypernet_layers", "epsilon_start",
            "epsilon_finish", "epsilon_anneal_time")}

    # ---- validation -----------------------------------------------------------------
    # key -> check; subclasses extend it with their own settings.
    SETTINGS: Dict[str, Check] = {
        "agent_network": choice(AGENT_NETWORKS),
        "rnn_hidden_dim": integer(1),
        "obs_last_action": boolean,
        "obs_agent_id": boolean,
        "mixer": choice(MIXERS),
        "mixing_embed_dim": integer(1),
        "hypernet_embed": integer(1),
        "hypernet_layers": choice((1, 2)),
        "td_lambda": number(0.0, 1.0),
        "double_q": boolean,
        "td_loss_scale": number(0.0, low_open=True),
        "bootstrap_truncated_episodes": boolean,
        "divergence_check": choice(DIVERGENCE_CHECKS),
        "divergence_margin": number(0.0),
        "standardize_rewards": boolean,
        "target_update_interval_episodes": integer(1),
        "optimizer_type": choice(OPTIMIZERS),
        "optim_alpha": number(0.0, 1.0, low_open=True),
        "optim_eps": number(0.0, low_open=True),
        "epsilon_start": number(0.0, 1.0),
        "epsilon_finish": number(0.0, 1.0),
        "epsilon_anneal_time": integer(0),
        "replay_buffer_capacity": integer(1),
        "train_batch_size_episodes": integer(1),
        "episodes_per_train_step": integer(1),
        "gradient_steps_per_train_step": integer(1),
        "sample_while_learning": boolean,
        "torch_num_threads": integer(1),
        # RLlib's own settings, as this family reads them.
        "lr": number(0.0, low_open=True),
        "gamma": number(0.0, 1.0, low_open=True),
        "grad_clip": number(0.0, low_open=True, optional=True),
        "num_envs_per_env_runner": integer(1),
        "num_env_runners": integer(0),
        "num_learners": integer(0),
        "seed": optional(integer(0)),
        "min_sample_timesteps_per_iteration": integer(0),
        "evaluation_interval": optional(integer(0)),
        "evaluation_duration": integer(1, also=("auto",)),
        "restart_failed_sub_environments": boolean,
        "restart_failed_env_runners": boolean,
        "num_consecutive_env_runner_failures_tolerance": integer(0),
    }

    @property
    def owner(self) -> str:
        return type(self).__name__

    def check_settings(self, settings: Dict[str, Any]) -> None:
        """Checks the given key/values (search spaces: every candidate value)."""
        for key, value in settings.items():
            if key in self.SETTINGS:
                check_setting(self.owner, key, value, self.SETTINGS[key])

    def environment(self, env=NotProvided, **kwargs) -> "QMIXConfig":
        """RLlib's environment(); a registered env name and its env_config keys are checked
        before anything is set."""
        name = self.env if env is NotProvided else env
        check_env_config(self.owner, kwargs.get("env_config"))
        env_config = {**self.env_config, **(kwargs.get("env_config") or {})}
        if isinstance(name, str):
            try:
                check_env_options(name, env_config)
            except (UnknownEnvError, TeamEnvError) as error:
                raise ConfigError(f"{self.owner}: env={name!r}: {error}") from error
        return super().environment(env=env, **kwargs)

    def env_runners(self, **kwargs) -> "QMIXConfig":
        """RLlib's env_runners(), with this family's checks first (named key and fix)."""
        self.check_settings(kwargs)
        return super().env_runners(**kwargs)

    def evaluation(self, **kwargs) -> "QMIXConfig":
        """RLlib's evaluation(), with this family's checks first (named key and fix)."""
        self.check_settings(kwargs)
        return super().evaluation(**kwargs)

    def validate(self) -> None:
        """Rejects bad settings with the key and the fix, before any worker starts."""
        self._validate_known_keys()
        if not (self.enable_rl_module_and_learner and self.enable_env_runner_and_connector_v2):
            raise ConfigError(f"{self.owner}: this package runs only on RLlib's new API stack; "
                              f"remove the config.api_stack(...) call that disabled it.")
        self.validate_settings()
        self._validate_unused_rllib_settings()
        self.validate_env()
        # The new API stack is the only one here; RLlib's "you are on the new stack" notice
        # would only confuse.
        log_once(f"{self.algo_class.__name__}_on_new_api_stack")
        super().validate()

    def _validate_known_keys(self) -> None:
        known = set(vars(type(self)())) | {"class"}  # "class" comes from from_state()
        unknown = sorted(key for key in vars(self) if key not in known and not key.startswith("_"))
        if unknown:
            suggestions = {key: difflib.get_close_matches(key, known, n=1) for key in unknown}
            hints = "; ".join(f"{key!r}: did you mean {match[0]!r}?" for key, match in
                              suggestions.items() if match)
            raise ConfigError(
                f"{self.owner}: unknown config key(s) {unknown}. {hints} The settings of this "
                f"algorithm are documented in {self.owner}.training().")

    def _validate_unused_rllib_settings(self) -> None:
        if self.in_evaluation:  # RLlib itself adjusts these in evaluation copies
            return
        defaults = AlgorithmConfig()
        for key, replacement in UNUSED_RLLIB_SETTINGS.items():
            # A property such as train_batch_size_per_learner stores what was set in "_" + key.
            stored = key if key in vars(self) else "_" + key
            if getattr(self, stored) != getattr(defaults, stored):
                raise ConfigError(f"{self.owner}: {key}={getattr(self, key)!r} is not used by this "
                                  f"algorithm; use {replacement}.")

    def validate_settings(self) -> None:
        """Value checks of every setting, then the checks across settings."""
        self.check_settings({key: getattr(self, key) for key in self.SETTINGS})
        if self.framework_str != "torch":
            raise ConfigError(f"{self.owner}: framework={self.framework_str!r} is invalid; this "
                              f"package is PyTorch only: set framework='torch' (the default).")
        if self.replay_buffer_capacity < self.train_batch_size_episodes:
            raise ConfigError(
                f"{self.owner}: replay_buffer_capacity={self.replay_buffer_capacity} is smaller "
                f"than train_batch_size_episodes={self.train_batch_size_episodes}; the buffer must "
                f"hold at least one batch. Raise replay_buffer_capacity or lower the batch size.")
        if self.sample_while_learning and self.num_env_runners < 1 and not self.in_evaluation:
            raise ConfigError(
                f"{self.owner}: sample_while_learning=True needs remote EnvRunners to sample on "
                f"while this process learns, but num_env_runners=0. Set "
                f"config.env_runners(num_env_runners=1) (or more), or sample_while_learning=False.")
        if set(self.policies) != {TEAM}:
            raise ConfigError(
                f"{self.owner}: policies={sorted(self.policies)} is invalid; the whole team is one "
                f"module {TEAM!r}. Do not call config.multi_agent() with other policies.")

    def validate_env(self) -> None:
        """Builds the env once in this process to check its name, options and spaces. An env
        registered as expensive to build (StarCraft II) is not built: only its options and
        requirements are checked."""
        if self.env is None:
            raise ConfigError(f"{self.owner}: env is not set; call config.environment(<name>), "
                              f"e.g. 'mpe_spread'. Known: {list(registered_env_names())}.")
        check_env_config(self.owner, self.env_config)
        try:
            if check_without_building(self.env, self.env_config):
                return
            env = make_team_env(self.env, self.env_config)
        except (TeamEnvError, EnvDependencyError, ValueError, TypeError) as error:
            raise ConfigError(f"{self.owner}: env={self.env!r} with env_config="
                              f"{dict(self.env_config)} cannot be used: {error}") from error
        try:
            check_team_env(env)
        except TeamEnvError as error:
            raise ConfigError(f"{self.owner}: env={self.env!r} with env_config="
                              f"{dict(self.env_config)} cannot be used: {error}") from error
        finally:
            env.close()
