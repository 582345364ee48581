"""SMACv2 (StarCraft II) and other SMAC-like backends as PettingZoo ParallelEnvs.

A SMAC-like backend is any object with smacv2's methods (N agents, A actions):

    reset()                              starts an episode; its return value is not used
    step(actions: list of N ints)        -> (reward: float, terminated: bool, info: dict)
    get_obs()                            -> list of N arrays [O]
    get_state()                          -> array [S], the global state
    get_avail_actions()                  -> N sequences of A flags, 1 = available
    get_env_info()                       -> dict(n_agents, n_actions, obs_shape, state_shape,
                                                 episode_limit)
    close()

smacv2's ``StarCraftCapabilityEnvWrapper`` is one; ``SMAXBackend`` (smax.py) is another.
``SMACParallelEnv`` turns a backend into a ParallelEnv with agents ``agent_0 .. agent_{N-1}``:

- Every agent stays in ``agents`` until the episode ends, dead units too. smacv2 gives a
  dead unit a zero observation and only the no-op (action 0); the backend's masks are
  passed on as ``infos[agent]["action_mask"]`` after every reset and step, so TeamEnv uses
  them and a learner never picks an action the backend would reject.
- Every agent gets the team reward; register with ``team_reward="mean"`` so that the team
  gets exactly the backend's reward.
- A step whose info has ``episode_limit=True`` (the time limit) ends the episode as a
  truncation (the learner bootstraps); every other end is a termination. smacv2 sets that
  key only with ``continuing_episode=True``, an option that changes nothing else in
  smacv2, so the SMACv2 envs below pass it.
- Infos carry ``battle_won`` (0.0 / 1.0) and the backend's other numeric infos (smacv2:
  ``dead_allies``, ``dead_enemies``); TeamEnv logs the final step's as ``battle_won_mean``,
  the win rate. An episode that smacv2 ends without any info (it restarted a crashed game)
  is a termination without ``battle_won``, so it does not count in the win rate.
- ``reset(seed=...)`` passes the seed on when the backend's ``reset`` takes one (SMAX);
  smacv2's does not: its game is seeded with its ``seed`` option, and its unit-type and
  start-position samplers are not seeded at all.

RLlib's env checker steps with unmasked random actions, which smacv2 rejects. This
package's TeamEnvRunner never runs it; with RLlib's own EnvRunners around ``TeamEnv`` set
``config.environment(disable_env_checking=True)``.

The six maps of the SMACv2 paper, ``smacv2_{protoss,terran,zerg}_{5v5,10v10}``, are
smacv2's ``10gen_<race>`` maps with the capability configs of smacv2's
``examples/configs/sc2_gen_<race>.yaml``. They need smacv2 (not on PyPI), pysc2, protobuf
< 3.21 and StarCraft II with SMACv2's maps; smacv2 is imported only when such an env is
built, and config validation only checks that these are present, without starting
StarCraft II.
"""

import copy
import inspect
import os
from typing import Any, Dict, List, Mapping, Optional

import gymnasium as gym
import numpy as np
from pettingzoo import ParallelEnv

from rllib_softqmix.envs.registry import EnvDependencyError

SMACV2_INSTALL = (
    "The SMACv2 envs need smacv2, which is not on PyPI: "
    "pip install git+https://github.com/oxwhirl/smacv2.git pysc2 'protobuf<3.21'. They also "
    "need StarCraft II (Linux: Blizzard's s2client-proto package) with SMACv2's maps "
    "(smacv2/env/starcraft2/maps/SMAC_Maps) copied into $SC2PATH/Maps, and SC2PATH set to the "
    "StarCraft II directory (pysc2's default is ~/StarCraftII).")

# Unit types and their probabilities in smacv2's 10gen maps. smacv2 draws each unit
# independently, redraws a team made only of "exception" types (medivacs cannot fight) and
# gives the enemy the same unit types.
SMACV2_TEAMS: Dict[str, Dict[str, list]] = {
    "protoss": {"unit_types": ["stalker", "zealot", "colossus"], "weights": [0.45, 0.45, 0.1]},
    "terran": {"unit_types": ["marine", "marauder", "medivac"], "weights": [0.45, 0.45, 0.1],
               "exception_unit_types": ["medivac"]},
    "zerg": {"unit_types": ["zergling", "baneling", "hydralisk"], "weights": [0.45, 0.1, 0.45],
             "exception_unit_types": ["baneling"]},
}
SMACV2_SIZES = (5, 10)
# The StarCraft2Env options of sc2_gen_<race>.yaml that differ from smacv2's defaults.
SMACV2_ENV_ARGS = {"use_unit_ranges": True, "obs_own_pos": True}


class SMACParallelEnv(ParallelEnv):
    """A SMAC-like backend as a PettingZoo ParallelEnv (see the module docstring).

    Spaces: observation Box [O], action Discrete(A), state Box [S], all float32.
    ``episode_limit`` is the backend's time limit in steps.
    """

    metadata = {"name": "smac", "is_parallelizable": True}

    def __init__(self, backend: Any):
        self.backend = backend
        info = backend.get_env_info()
        self.n_agents = int(info["n_agents"])
        self.n_actions = int(info["n_actions"])
        self.episode_limit = int(info["episode_limit"])
        self.possible_agents = [f"agent_{i}" for i in range(self.n_agents)]
        self.agents: List[str] = []
        obs_size = int(np.prod(info["obs_shape"]))
        observation = gym.spaces.Box(-np.inf, np.inf, (obs_size,), np.float32)
        self.observation_spaces = {agent: observation for agent in self.possible_agents}
        self.action_spaces = {agent: gym.spaces.Discrete(self.n_actions)
                              for agent in self.possible_agents}
        self.state_space = gym.spaces.Box(-np.inf, np.inf, (int(np.prod(info["state_shape"])),),
                                          np.float32)
        self._backend_takes_seed = "seed" in inspect.signature(backend.reset).parameters

    def observation_space(self, agent: str) -> gym.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> gym.Space:
        return self.action_spaces[agent]

    def state(self) -> np.ndarray:
        return np.asarray(self.backend.get_state(), dtype=np.float32).reshape(-1)

    def _observations(self) -> Dict[str, np.ndarray]:
        return {agent: np.asarray(obs, dtype=np.float32).reshape(-1)
                for agent, obs in zip(self.possible_agents, self.backend.get_obs())}

    def _infos(self, step_info: Mapping[str, Any]) -> Dict[str, dict]:
        masks = self.backend.get_avail_actions()
        return {agent: {**step_info, "action_mask": np.asarray(mask, dtype=np.int8)}
                for agent, mask in zip(self.possible_agents, masks)}

    def reset(self, seed: Optional[int] = None, options: Optional[dict] = None):
        if self._backend_takes_seed:
            self.backend.reset(seed=seed)
        else:
            self.backend.reset()
        self.agents = list(self.possible_agents)
        return self._observations(), self._infos({})

    def step(self, actions: Dict[str, int]):
        if not self.agents:
            raise RuntimeError("step() called after the episode ended; call reset() first")
        missing = [agent for agent in self.possible_agents if agent not in actions]
        if missing:
            raise ValueError(f"no action given for {missing}; every agent acts, dead ones "
                             f"with their only available action")
        reward, terminated, info = self.backend.step([int(actions[agent])
                                                      for agent in self.possible_agents])
        info = dict(info or {})
        truncated = bool(terminated) and bool(info.pop("episode_limit", False))
        terminated = bool(terminated) and not truncated
        if "battle_won" in info:
            info["battle_won"] = float(info["battle_won"])
        agents = self.possible_agents
        result = (self._observations(), {agent: float(reward) for agent in agents},
                  {agent: terminated for agent in agents}, {agent: truncated for agent in agents},
                  self._infos(info))
        if terminated or truncated:
            self.agents = []
        return result

    def close(self) -> None:
        self.backend.close()


def smacv2_capability_config(race: str, n_units: int) -> Dict[str, Any]:
    """smacv2's 10gen capability config for ``n_units`` vs ``n_units`` units of ``race``:
    teams drawn from SMACV2_TEAMS, start positions "surrounded_and_reflect" (the enemy
    surrounds the team or faces it mirrored, each with probability 0.5) on the 32x32 map.
    A fresh dict each call: smacv2 writes into it."""
    if race not in SMACV2_TEAMS:
        raise ValueError(f"race must be one of {tuple(SMACV2_TEAMS)}, got {race!r}")
    return {
        "n_units": n_units,
        "n_enemies": n_units,
        "team_gen": {"dist_type": "weighted_teams", **copy.deepcopy(SMACV2_TEAMS[race]),
                     "observe": True},
        "start_positions": {"dist_type": "surrounded_and_reflect", "p": 0.5,
                            "map_x": 32, "map_y": 32},
    }


def smacv2_wrapper_class() -> type:
    """smacv2's StarCraftCapabilityEnvWrapper, once smacv2 imports and StarCraft II is where
    SC2PATH (default ~/StarCraftII) points; else EnvDependencyError says what is missing."""
    problems = []
    wrapper_class = None
    try:
        from smacv2.env import StarCraftCapabilityEnvWrapper as wrapper_class
    except Exception as error:  # noqa: BLE001 - pysc2 under a newer protobuf raises TypeError
        problems.append(f"smacv2 cannot be imported ({error!r})")
    sc2_path = os.path.expanduser(os.environ.get("SC2PATH", "~/StarCraftII"))
    if not os.path.isdir(sc2_path):
        source = "SC2PATH" if "SC2PATH" in os.environ else "SC2PATH is not set and the default"
        problems.append(f"StarCraft II was not found ({source} {sc2_path!r} is not a directory)")
    if problems:
        raise EnvDependencyError(f"{'; '.join(problems)}. {SMACV2_INSTALL}")
    return wrapper_class


def smacv2_parallel_env(race: str, n_units: int, seed: Optional[int] = None,
                        smacv2_options: Optional[Mapping[str, Any]] = None) -> SMACParallelEnv:
    """SMACv2's ``10gen_<race>`` map, ``n_units`` against ``n_units`` (StarCraft II starts at
    the first reset).

    Args:
        race: "protoss", "terran" or "zerg".
        n_units: units per team (the paper's maps: 5 or 10).
        seed: StarCraft II's game seed (smacv2's ``seed`` option).
        smacv2_options: other StarCraft2Env keyword options; they override the defaults
            here (``map_name``, ``capability_config``, SMACV2_ENV_ARGS), e.g.
            ``{"conic_fov": True}`` or ``{"difficulty": "A"}``.
    """
    options = {"map_name": f"10gen_{race}",
               "capability_config": smacv2_capability_config(race, n_units),
               "seed": seed, "continuing_episode": True, **SMACV2_ENV_ARGS,
               **dict(smacv2_options or {})}
    return SMACParallelEnv(smacv2_wrapper_class()(**options))
