"""TeamEnv: a multi-agent env seen by RLlib as one agent, "team".

Accepted envs (``as_parallel_env``): a PettingZoo ParallelEnv; a PettingZoo AECEnv, converted
with PettingZoo's ``aec_to_parallel``; an RLlib MultiAgentEnv, also as
``env.with_agent_groups({"team": [all of its agents]})`` and as RLlib's PettingZoo wrappers
(``ParallelPettingZooEnv``, ``PettingZooEnv``), which are unwrapped to the PettingZoo env.

Observation (one Dict for the whole team):
    obs          [N, O]  every agent's own observation, zero-padded to the longest
    state        [S]     the global state: env.state() when the env implements it, else the
                         agents' observations concatenated (N * O)
    action_mask  [N, A]  1 = available; from the env when it gives masks, else ones
Action: MultiDiscrete([A] * N), one action per agent in ``possible_agents`` order.
Reward: the agents' rewards summed (``team_reward="sum"``) or averaged ("mean").

The state's size S must be known at construction (RLlib asks for the spaces before any
reset). It is the env's ``state_space`` when it has one. An env that implements ``state()``
(overrides it, and the call does not raise NotImplementedError) but has no ``state_space``
is reset once at construction, and S is the size of the state after that reset; every later
state must have that size too (TeamEnvError otherwise). Declare ``state_space`` to skip that
reset.

Termination and truncation stay distinct: the team episode ends when the env has
no agents left, and counts as truncated if any agent was truncated at that step
(a time limit: the learner bootstraps) and as terminated otherwise. An agent that
is done before the others is "dead": zero observation, only ``dead_agent_action``
available, and its action is not sent to the env. The observation that follows the
final step shows every agent that acted in it, so a truncated episode bootstraps
from real observations and masks.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import gymnasium as gym
import numpy as np
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils.conversions import aec_to_parallel
from ray.rllib.env.multi_agent_env import MultiAgentEnv
from ray.rllib.env.wrappers.group_agents_wrapper import GroupAgentsWrapper
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv, PettingZooEnv

TEAM = "team"
TEAM_REWARDS = ("sum", "mean")
ALL = "__all__"
ACCEPTED_ENV_TYPES = (ParallelEnv, AECEnv, MultiAgentEnv)
ACCEPTED_ENVS = ("a PettingZoo ParallelEnv, a PettingZoo AECEnv (converted with "
                 "pettingzoo.utils.conversions.aec_to_parallel) or an RLlib MultiAgentEnv "
                 "(also as env.with_agent_groups({'team': [all of its agents]}))")


class TeamEnvError(ValueError):
    """The wrapped env has spaces or agents that TeamEnv cannot group."""


def _flat_size(space: gym.Space, what: str) -> int:
    if not isinstance(space, gym.spaces.Box):
        raise TeamEnvError(
            f"the {what} is {space}; TeamEnv needs a Box (it flattens it to a vector): wrap "
            f"the env so that its {what} is a Box.")
    return int(np.prod(space.shape))


def as_parallel_env(env: Any) -> ParallelEnv:
    """``env`` as a PettingZoo ParallelEnv, for any env TeamEnv accepts (see the module
    docstring); TeamEnvError naming the accepted envs for anything else."""
    if isinstance(env, TeamEnv):
        raise TeamEnvError(f"{type(env).__name__} is already a TeamEnv; use it as it is.")
    if isinstance(env, ParallelEnv):
        return env
    if isinstance(env, AECEnv):
        return _aec_as_parallel(env)
    if isinstance(env, ParallelPettingZooEnv):
        return env.par_env
    if isinstance(env, PettingZooEnv):
        return _aec_as_parallel(env.env)
    if isinstance(env, GroupAgentsWrapper):
        return MultiAgentEnvAsParallel(env.env, _team_members(env))
    if isinstance(env, MultiAgentEnv):
        return MultiAgentEnvAsParallel(env)
    raise TeamEnvError(f"{type(env).__name__} is not an env TeamEnv can group; it accepts "
                       f"{ACCEPTED_ENVS}.")


def _aec_as_parallel(env: AECEnv) -> ParallelEnv:
    name = type(env.unwrapped).__name__
    if not (getattr(env, "metadata", None) or {}).get("is_parallelizable", False):
        raise TeamEnvError(
            f"the AEC env {name} does not set metadata['is_parallelizable'] = True. TeamEnv "
            f"converts AEC envs with pettingzoo.utils.conversions.aec_to_parallel, which needs "
            f"every live agent to act once per cycle and the env to update once at the end of "
            f"the cycle; if {name} does that, set is_parallelizable in its metadata. A "
            f"turn-based game cannot be played as one team.")
    return aec_to_parallel(env)


def _team_members(grouped: GroupAgentsWrapper) -> List[Any]:
    """The agents of the one group of ``grouped`` (in its order), if it holds all agents."""
    groups = {group: list(members) for group, members in grouped.groups.items()}
    agents = list(getattr(grouped.env, "possible_agents", None) or [])
    members = next(iter(groups.values())) if len(groups) == 1 else []
    all_agents = len(set(members)) == len(members) and (not agents or set(members) == set(agents))
    if len(groups) != 1 or not members or not all_agents:
        team = agents or "[all of its agents]"
        raise TeamEnvError(
            f"with_agent_groups({groups}) around {type(grouped.env).__name__}: TeamEnv makes "
            f"one team of all agents of the env (possible_agents {agents}), so it takes one "
            f"group that lists each of them once. Write env.with_agent_groups({{'team': "
            f"{team}}}), or pass the env itself: TeamEnv groups all of its agents.")
    return members


class MultiAgentEnvAsParallel(ParallelEnv):
    """An RLlib MultiAgentEnv whose agents act simultaneously, as a PettingZoo ParallelEnv.

    ``agents`` (the live agents) are those observed at reset, less each agent once
    ``terminateds[agent]`` or ``truncateds[agent]`` is True, and all of them once
    ``terminateds["__all__"]`` or ``truncateds["__all__"]`` is; an agent counts as truncated
    when its own flag or ``truncateds["__all__"]`` says so. Every live agent must be
    observed at every step; agents may leave but not join. ``state()`` is the env's
    ``state()`` when it has that method, ``state_space`` the env's when it has one.

    Args:
        env: the MultiAgentEnv; its spaces come from ``get_observation_space(agent)`` and
            ``get_action_space(agent)`` (its ``observation_spaces``/``action_spaces`` dicts).
        agents: the team's agents in order; default the env's ``possible_agents``.
    """

    def __init__(self, env: MultiAgentEnv, agents: Optional[Sequence[Any]] = None):
        self.env = env
        self.name = type(env).__name__
        self.possible_agents = list(agents or getattr(env, "possible_agents", None) or [])
        self.agents: List[Any] = []
        self.metadata = {"name": self.name, **(getattr(env, "metadata", None) or {})}
        if hasattr(env, "state_space"):
            self.state_space = env.state_space

    @property
    def unwrapped(self):
        return self.env.unwrapped

    def observation_space(self, agent) -> gym.Space:
        return self._space(agent, "observation")

    def action_space(self, agent) -> gym.Space:
        return self._space(agent, "action")

    def _space(self, agent, kind: str) -> gym.Space:
        getter = getattr(self.env, f"get_{kind}_space")
        try:
            space = getter(agent)
        except KeyError:
            space = None
        if not isinstance(space, gym.Space):
            raise TeamEnvError(
                f"{self.name} gives no {kind} space for agent {agent!r}: set its {kind}_spaces "
                f"dict (every agent id -> its space) or override get_{kind}_space(agent_id).")
        return space

    def state(self) -> np.ndarray:
        state = getattr(self.env, "state", None)
        if not callable(state):
            raise NotImplementedError(f"{self.name} has no state() method")
        return state()

    def reset(self, seed: Optional[int] = None, options: Optional[dict] = None):
        obs, infos = self.env.reset(seed=seed, options=options)
        unknown = [agent for agent in obs if agent not in self.possible_agents]
        if unknown:
            raise TeamEnvError(
                f"{self.name}.reset() observed agent(s) {unknown} that are not in the team "
                f"{self.possible_agents}; list every agent in possible_agents (or in the group "
                f"of with_agent_groups).")
        self.agents = [agent for agent in self.possible_agents if agent in obs]
        return obs, infos

    def step(self, actions: Dict[Any, int]):
        obs, rewards, terminateds, truncateds, infos = self.env.step(actions)
        for flags, name in ((terminateds, "terminateds"), (truncateds, "truncateds")):
            if ALL not in flags:
                raise TeamEnvError(
                    f"{self.name}.step() returned {name} {flags} without the {ALL!r} key; an "
                    f"RLlib MultiAgentEnv sets {name}[{ALL!r}] at every step (True when the "
                    f"episode is over).")
        acting = self.agents
        truncations = {agent: bool(truncateds.get(agent, False) or truncateds[ALL])
                       for agent in acting}
        terminations = {agent: bool(terminateds.get(agent, False)) or (
            bool(terminateds[ALL]) and not truncations[agent]) for agent in acting}
        self.agents = [agent for agent in acting
                       if not (terminations[agent] or truncations[agent])]
        joined = [agent for agent in obs if agent not in acting]
        unobserved = [agent for agent in self.agents if agent not in obs]
        if joined or unobserved:
            raise TeamEnvError(
                f"{self.name}.step() observed {list(obs)} after the live agents {acting} acted. "
                f"TeamEnv needs every agent that is not done to be observed at every step, and "
                f"agents may leave but not join: mark an agent that leaves with "
                f"terminateds[agent] = True (or truncateds) and give it no observation after.")
        return obs, rewards, terminations, truncations, infos

    def close(self):
        self.env.close()


class TeamEnv(MultiAgentEnv):
    """Groups all agents of ``env`` into the single RLlib agent ``"team"``.

    Args:
        env: any env of ``ACCEPTED_ENVS`` whose agents share one Discrete action space.
        team_reward: "sum" or "mean" of the agents' rewards at each step.
        max_episode_steps: optional time limit (a truncation) on top of the env's own.
        dead_agent_action: the only action available to an agent that is done.
    """

    def __init__(self, env: Any, *, team_reward: str = "sum",
                 max_episode_steps: Optional[int] = None, dead_agent_action: int = 0):
        super().__init__()
        if team_reward not in TEAM_REWARDS:
            raise TeamEnvError(f"team_reward must be one of {TEAM_REWARDS}, got {team_reward!r}")
        if max_episode_steps is not None and (int(max_episode_steps) != max_episode_steps
                                              or max_episode_steps < 1):
            raise TeamEnvError(
                f"max_episode_steps must be a positive integer or None, got {max_episode_steps!r}")
        self.env = as_parallel_env(env)
        self.env_name = type(self.env.unwrapped).__name__  # past wrappers, for messages
        self.team_reward = team_reward
        self.max_episode_steps = max_episode_steps
        self.agent_ids: List[Any] = list(getattr(self.env, "possible_agents", []) or [])
        if not self.agent_ids:
            raise TeamEnvError(f"{self.env_name} has no possible_agents to group; set its "
                               f"possible_agents to the list of its agent ids.")
        self.n_agents = len(self.agent_ids)
        self.n_actions = self._shared_discrete_actions()
        if not 0 <= dead_agent_action < self.n_actions:
            raise TeamEnvError(
                f"dead_agent_action must be in [0, {self.n_actions}), got {dead_agent_action}")
        self.dead_agent_action = dead_agent_action
        self._mask_in_obs, obs_sizes = self._inspect_observations()
        self.obs_dim = max(obs_sizes)
        self.state_dim, self._state_from = self._find_state()
        self._has_state = self._state_from is not None
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
        self._live: List[Any] = []
        self._visible: List[Any] = []
        self._last_obs: Dict[Any, Any] = {}
        self._last_infos: Dict[Any, dict] = {}

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
            sizes.append(_flat_size(space, f"observation space of agent {agent!r}"))
        if len(set(mask_in_obs)) != 1:
            raise TeamEnvError("some agents carry an action_mask in their observation and some do not.")
        return mask_in_obs[0], sizes

    def _find_state(self) -> Tuple[int, Optional[str]]:
        """The state's size and where it came from; (N * O, None) when the env has no state
        (the team's state is then the observations concatenated)."""
        env, no_state = self.env, (self.n_agents * self.obs_dim, None)
        if hasattr(env, "state_space"):
            if type(env).state is ParallelEnv.state:
                raise TeamEnvError(
                    f"{self.env_name} declares a state_space but does not implement state(): "
                    f"implement state() or remove state_space.")
            return _flat_size(env.state_space, "state_space of the env"), "its state_space"
        if type(env).state is ParallelEnv.state:
            return no_state
        # An env may override state() only to raise NotImplementedError (PettingZoo's AEC to
        # parallel wrapper always does, and calls its AEC env's); asking before any reset spares
        # such envs the reset. Other errors mean only that this env has no state yet.
        try:
            env.state()
        except NotImplementedError:
            return no_state
        except Exception:  # noqa: BLE001 - the reset below asks again
            pass
        try:
            env.reset()
        except Exception as error:
            raise TeamEnvError(
                f"{self.env_name} implements state() but has no state_space, so TeamEnv resets "
                f"it once at construction to learn the state's size, and reset() raised "
                f"{error!r}. Declare state_space (a Box) to skip this reset.") from error
        try:
            size = self._state_array(env.state()).size
        except NotImplementedError:
            return no_state
        if size == 0:
            raise TeamEnvError(f"{self.env_name}.state() returned an empty state after reset().")
        return size, "the size of its first state() (it has no state_space)"

    def _state_array(self, state: Any) -> np.ndarray:
        try:
            if state is None:  # numpy would make it a NaN
                raise TypeError("no state")
            return np.asarray(state, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError) as error:
            raise TeamEnvError(f"{self.env_name}.state() returned {state!r}; TeamEnv needs an "
                               f"array of numbers.") from error

    def _state(self) -> np.ndarray:
        try:
            raw = self.env.state()
        except NotImplementedError as error:
            advice = ("implement state() or remove state_space" if hasattr(self.env, "state_space")
                      else "state() must keep giving the state once it has given one")
            raise TeamEnvError(f"{self.env_name}.state() raised NotImplementedError, but TeamEnv "
                               f"takes the global state from it ({self._state_from}): "
                               f"{advice}.") from error
        state = self._state_array(raw)
        if state.size != self.state_dim:
            raise TeamEnvError(
                f"{self.env_name}.state() returned 'state' of shape {np.shape(raw)}, but the "
                f"team's state space is ({self.state_dim},), from {self._state_from}; every state() must "
                f"match its declared space.")
        return state

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
        state = self._state() if self._has_state else obs.reshape(-1)
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
            raise TeamEnvError(f"{self.env_name}.reset() returned no live agents.")
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
