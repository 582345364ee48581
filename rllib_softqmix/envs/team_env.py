"""TeamEnv: a PettingZoo ParallelEnv seen by RLlib as one agent, "team".

Observation (one Dict for the whole team):
    obs          [N, O]  every agent's own observation, zero-padded to the longest
    state        [S]     the global state: env.state() if the env has a state_space,
                         else the agents' observations concatenated (N * O)
    action_mask  [N, A]  1 = available; from the env when it gives masks, else ones
Action: MultiDiscrete([A] * N), one action per agent in ``possible_agents`` order.
Reward: the agents' rewards summed (``team_reward="sum"``) or averaged ("mean").

Termination and truncation stay distinct: the team episode ends when the env has
no agents left, and counts as truncated if any agent was truncated at that step
(a time limit: the learner bootstraps) and as terminated otherwise. An agent that
is done before the others is "dead": zero observation, only ``dead_agent_action``
available, and its action is not sent to the env. The observation that follows the
final step shows every agent that acted in it, so a truncated episode bootstraps
from real observations and masks.
"""

from typing import Any, Dict, List, Optional, Tuple

import gymnasium as gym
import numpy as np
from pettingzoo import ParallelEnv
from ray.rllib.env.multi_agent_env import MultiAgentEnv

TEAM = "team"
TEAM_REWARDS = ("sum", "mean")


class TeamEnvError(ValueError):
    """The wrapped env has spaces or agents that TeamEnv cannot group."""


def _flat_size(space: gym.Space, agent: str, what: str) -> int:
    if not isinstance(space, gym.spaces.Box):
        raise TeamEnvError(
            f"{what} of agent {agent!r} is {space}; TeamEnv needs a Box (flattened to a "
            f"vector). Wrap the env so that it returns Box observations.")
    return int(np.prod(space.shape))


class TeamEnv(MultiAgentEnv):
    """Groups all agents of ``parallel_env`` into the single RLlib agent ``"team"``.

    Args:
        parallel_env: any PettingZoo ParallelEnv whose agents share one Discrete
            action space.
        team_reward: "sum" or "mean" of the agents' rewards at each step.
        max_episode_steps: optional time limit (a truncation) on top of the env's own.
        dead_agent_action: the only action available to an agent that is done.
    """

    def __init__(self, parallel_env: ParallelEnv, *, team_reward: str = "sum",
                 max_episode_steps: Optional[int] = None, dead_agent_action: int = 0):
        super().__init__()
        if team_reward not in TEAM_REWARDS:
            raise TeamEnvError(f"team_reward must be one of {TEAM_REWARDS}, got {team_reward!r}")
        if max_episode_steps is not None and (int(max_episode_steps) != max_episode_steps
                                              or max_episode_steps < 1):
            raise TeamEnvError(
                f"max_episode_steps must be a positive integer or None, got {max_episode_steps!r}")
        self.env = parallel_env
        self.team_reward = team_reward
        self.max_episode_steps = max_episode_steps
        self.agent_ids: List[str] = list(getattr(parallel_env, "possible_agents", []) or [])
        if not self.agent_ids:
            raise TeamEnvError(f"{type(parallel_env).__name__} has no possible_agents to group.")
        self.n_agents = len(self.agent_ids)
        self.n_actions = self._shared_discrete_actions()
        if not 0 <= dead_agent_action < self.n_actions:
            raise TeamEnvError(
                f"dead_agent_action must be in [0, {self.n_actions}), got {dead_agent_action}")
        self.dead_agent_action = dead_agent_action
        self._mask_in_obs, obs_sizes = self._inspect_observations()
        self.obs_dim = max(obs_sizes)
        self._has_state = hasattr(parallel_env, "state_space")
        self.state_dim = (_flat_size(parallel_env.state_space, "env", "state_space")
                          if self._has_state else self.n_agents * self.obs_dim)
        self.episode_limit = self._find_episode_limit()

        team_obs_space = gym.spaces.Dict({
            "obs": gym.spaces.Box(-np.inf, np.inf, (self.n_agents, self.obs_dim), np.float32),
            "state": gym.spaces.Box(-np.inf, np.inf, (self.state_dim,), np.float32),
            "action_mask": gym.spaces.Box(0.0, 1.0, (self.n_agents, self.n_actions), np.float32),
        })
        team_action_space = gym.spaces.MultiDiscrete([self.n_actions] * self.n_agents)
        self.observation_spaces = {TEAM: team_obs_space}
        self.action_spaces = {TEAM: team_action_space}
        self.observation_space = team_obs_space
        self.action_space = team_action_space
        self.agents = self.possible_agents = [TEAM]
        self._dead_mask = np.zeros(self.n_actions, dtype=np.float32)
        self._dead_mask[dead_agent_action] = 1.0
        self._t = 0
        self._live: List[str] = []
        self._visible: List[str] = []
        self._last_obs: Dict[str, Any] = {}
        self._last_infos: Dict[str, dict] = {}

    def _shared_discrete_actions(self) -> int:
        sizes = set()
        for agent in self.agent_ids:
            space = self.env.action_space(agent)
            if not isinstance(space, gym.spaces.Discrete):
                raise TeamEnvError(
                    f"agent {agent!r} has action space {space}; TeamEnv needs Discrete "
                    f"actions (QMIX-family methods are for discrete actions).")
            if int(space.start) != 0:
                raise TeamEnvError(f"agent {agent!r}: Discrete actions must start at 0, got {space}.")
            sizes.add(int(space.n))
        if len(sizes) != 1:
            raise TeamEnvError(
                f"agents have unequal action spaces {sorted(sizes)}; TeamEnv needs one "
                f"shared Discrete(A). Pad the smaller ones with masked actions.")
        return sizes.pop()

    def _inspect_observations(self) -> Tuple[bool, List[int]]:
        sizes, mask_in_obs = [], []
        for agent in self.agent_ids:
            space = self.env.observation_space(agent)
            is_dict = isinstance(space, gym.spaces.Dict)
            if is_dict:
                if "observation" not in space.spaces or "action_mask" not in space.spaces:
                    raise TeamEnvError(
                        f"agent {agent!r} has a Dict observation {space}; TeamEnv reads only "
                        f"Dict(observation=Box, action_mask=...).")
                space = space["observation"]
            mask_in_obs.append(is_dict)
            sizes.append(_flat_size(space, agent, "observation space"))
        if len(set(mask_in_obs)) != 1:
            raise TeamEnvError("some agents carry an action_mask in their observation and some do not.")
        return mask_in_obs[0], sizes

    def _find_episode_limit(self) -> Optional[int]:
        limits = [self.max_episode_steps]
        for source in (self.env, getattr(self.env, "unwrapped", None),
                       getattr(self.env, "aec_env", None)):
            limits.append(getattr(source, "max_cycles", None))
            limits.append(getattr(source, "episode_limit", None))
        known = [int(limit) for limit in limits if isinstance(limit, (int, np.integer))]
        return min(known) if known else None

    def _team_observation(self) -> Dict[str, np.ndarray]:
        obs = np.zeros((self.n_agents, self.obs_dim), dtype=np.float32)
        mask = np.ones((self.n_agents, self.n_actions), dtype=np.float32)
        visible = set(self._visible)
        for i, agent in enumerate(self.agent_ids):
            if agent not in visible:
                mask[i] = self._dead_mask
                continue
            raw = self._last_obs[agent]
            if self._mask_in_obs:
                mask[i] = np.asarray(raw["action_mask"], dtype=np.float32).reshape(-1)
                raw = raw["observation"]
            elif "action_mask" in self._last_infos.get(agent, {}):
                mask[i] = np.asarray(self._last_infos[agent]["action_mask"], dtype=np.float32)
            flat = np.asarray(raw, dtype=np.float32).reshape(-1)
            obs[i, : flat.shape[0]] = flat
        if self._has_state:
            state = np.asarray(self.env.state(), dtype=np.float32).reshape(-1)
        else:
            state = obs.reshape(-1)
        return {"obs": obs, "state": state, "action_mask": mask}

    @staticmethod
    def _scalar_info(infos: Dict[str, dict]) -> Dict[str, float]:
        """Numeric scalars from the agents' infos (first agent wins on a clash)."""
        merged: Dict[str, float] = {}
        for info in infos.values():
            for key, value in (info or {}).items():
                if key not in merged and isinstance(value, (bool, int, float, np.number)) \
                        and np.ndim(value) == 0:
                    merged[key] = float(value)
        return merged

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        obs, infos = self.env.reset(seed=seed, options=options)
        self._t = 0
        self._live = self._visible = list(self.env.agents)
        if not self._live:
            raise TeamEnvError(f"{type(self.env).__name__}.reset() returned no live agents.")
        self._last_obs, self._last_infos = dict(obs), dict(infos or {})
        return {TEAM: self._team_observation()}, {TEAM: self._scalar_info(self._last_infos)}

    def step(self, action_dict: Dict[str, Any]):
        joint = np.asarray(action_dict[TEAM]).reshape(-1)
        if joint.shape[0] != self.n_agents:
            raise TeamEnvError(f"expected {self.n_agents} actions, got {joint.shape[0]}")
        if joint.min() < 0 or joint.max() >= self.n_actions:
            raise TeamEnvError(f"actions must be in [0, {self.n_actions}), got {joint.tolist()}")
        actions = {agent: int(joint[i]) for i, agent in enumerate(self.agent_ids)
                   if agent in self._live}
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        self._t += 1
        acted = list(self._live)
        self._last_obs.update(obs)
        self._last_infos.update(infos or {})
        self._live = list(self.env.agents)
        step_rewards = [float(rewards.get(agent, 0.0)) for agent in acted]
        reward = sum(step_rewards) if self.team_reward == "sum" else float(np.mean(step_rewards))

        finished = not self._live
        truncated = finished and any(truncations.get(agent, False) for agent in acted)
        if not finished and self.max_episode_steps is not None and self._t >= self.max_episode_steps:
            finished = truncated = True
        terminated = finished and not truncated
        self._visible = acted if finished else self._live
        info = self._scalar_info(infos or {})
        return ({TEAM: self._team_observation()}, {TEAM: reward},
                {TEAM: terminated, "__all__": terminated},
                {TEAM: truncated, "__all__": truncated}, {TEAM: info})

    def close(self):
        self.env.close()
