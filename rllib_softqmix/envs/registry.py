"""Named team envs: ``config.environment("mpe_spread", env_config={...})``.

A name maps to a factory of an env TeamEnv accepts (a PettingZoo ParallelEnv or AECEnv, an
RLlib MultiAgentEnv) plus TeamEnv defaults. Every
``env_config`` key must be a parameter of that factory or of TeamEnv; anything else
is an error naming the key and the accepted ones. Names are also registered with
Tune, so remote workers and other RLlib algorithms can build them.

``config.env`` may also be a name registered with Tune's ``register_env`` (its creator gets an
EnvContext and may return any env TeamEnv accepts, or a hand-made team env), or a class: a
PettingZoo ParallelEnv/AECEnv class is built as ``cls(**env_config)``, an RLlib MultiAgentEnv
class as RLlib builds it, ``cls(env_context)``.

An env that is expensive to build (StarCraft II) is registered with
``check_requirements``: config validation then checks its keys and calls that function,
which raises EnvDependencyError if something it needs is missing, instead of building it.
"""

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional

from pettingzoo import AECEnv, ParallelEnv
from ray.rllib.env.env_context import EnvContext
from ray.rllib.env.multi_agent_env import MultiAgentEnv
from ray.rllib.env.wrappers.group_agents_wrapper import GroupAgentsWrapper
from ray.tune.registry import ENV_CREATOR, _global_registry, register_env

from rllib_softqmix.envs.team_env import (ACCEPTED_ENV_TYPES, ACCEPTED_ENVS, TEAM, TeamEnv,
                                          TeamEnvError)

TEAM_ENV_KEYS = ("team_reward", "max_episode_steps", "dead_agent_action")


class UnknownEnvError(ValueError):
    """The env name is not registered."""


class EnvDependencyError(ImportError):
    """A package or program that the env needs is missing; the message says how to install it."""


@dataclass(frozen=True)
class TeamEnvSpec:
    """How to build one named env: a factory of an env TeamEnv accepts, and TeamEnv defaults."""
    parallel_env_creator: Callable[..., Any]
    team_defaults: Dict[str, Any] = field(default_factory=dict)
    check_requirements: Optional[Callable[[], Any]] = None

    def _parameters(self):
        return inspect.signature(self.parallel_env_creator).parameters.values()

    def accepted_keys(self):
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return tuple(p.name for p in self._parameters() if p.kind in named) + TEAM_ENV_KEYS

    def check_keys(self, name: str, env_config: Mapping[str, Any]) -> None:
        """Every key must be a TeamEnv option or a parameter of the creator; a creator with
        ``**kwargs`` takes any key (it checks them itself)."""
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in self._parameters()):
            return
        unknown = sorted(set(env_config) - set(self.accepted_keys()))
        if unknown:
            raise TeamEnvError(
                f"env_config key(s) {unknown} are not accepted by env {name!r}; "
                f"accepted keys: {list(self.accepted_keys())}")

    def build(self, name: str, env_config: Mapping[str, Any]) -> TeamEnv:
        self.check_keys(name, env_config)
        config = dict(env_config)
        team_options = {**self.team_defaults,
                        **{key: config.pop(key) for key in TEAM_ENV_KEYS if key in config}}
        return TeamEnv(self.parallel_env_creator(**config), **team_options)


_CATALOG: Dict[str, TeamEnvSpec] = {}


def register_team_env(name: str, parallel_env_creator: Callable[..., Any],
                      check_requirements: Optional[Callable[[], Any]] = None,
                      **team_defaults: Any) -> None:
    """Registers ``name`` for every algorithm of this package (and with Tune).

    ``parallel_env_creator(**env_config)`` must return an env TeamEnv accepts (a PettingZoo
    ParallelEnv or AECEnv, an RLlib MultiAgentEnv);
    ``team_defaults`` are TeamEnv options (team_reward, max_episode_steps, ...).
    ``check_requirements`` marks the env as expensive to build: config validation calls
    it (it raises EnvDependencyError when something is missing) instead of building the env.
    """
    unknown = sorted(set(team_defaults) - set(TEAM_ENV_KEYS))
    if unknown:
        raise TypeError(f"unknown TeamEnv option(s) {unknown}; options: {list(TEAM_ENV_KEYS)}")
    spec = TeamEnvSpec(parallel_env_creator, dict(team_defaults), check_requirements)
    _CATALOG[name] = spec
    register_env(name, lambda env_context, _name=name, _spec=spec: _spec.build(_name, env_context))


def registered_env_names():
    return tuple(sorted(_CATALOG))


def check_env_options(name: str, env_config: Mapping[str, Any]) -> None:
    """Checks, without building the env, that ``name`` is known and takes these keys."""
    if name in _CATALOG:
        _CATALOG[name].check_keys(name, dict(env_config or {}))
    elif not _global_registry.contains(ENV_CREATOR, name):
        raise _unknown_env(name)


def check_without_building(env: Any, env_config: Mapping[str, Any]) -> bool:
    """For an env registered with ``check_requirements``: checks its env_config keys and
    its requirements, and returns True. Returns False for any other env (build it to check it).
    """
    spec = _CATALOG.get(env) if isinstance(env, str) else None
    if spec is None or spec.check_requirements is None:
        return False
    spec.check_keys(env, dict(env_config or {}))
    spec.check_requirements()
    return True


def _unknown_env(name: str) -> UnknownEnvError:
    return UnknownEnvError(
        f"unknown env {name!r}. Registered team envs: {list(registered_env_names())}. "
        f"Register your own with rllib_softqmix.register_team_env(name, creator).")


def make_team_env(env: Any, env_config: Mapping[str, Any]) -> MultiAgentEnv:
    """Builds the team env for ``config.env`` (a registered name or a class)."""
    context = env_config if isinstance(env_config, EnvContext) else EnvContext(
        dict(env_config or {}), worker_index=0)
    if isinstance(env, str):
        if env in _CATALOG:
            return _CATALOG[env].build(env, dict(context))
        if _global_registry.contains(ENV_CREATOR, env):
            return _as_team_env(_global_registry.get(ENV_CREATOR, env)(context), env)
        raise _unknown_env(env)
    if isinstance(env, type) and issubclass(env, (ParallelEnv, AECEnv)):
        return _as_team_env(env(**context), env.__name__)
    if isinstance(env, type) and issubclass(env, MultiAgentEnv):
        return _as_team_env(env(context), env.__name__)
    raise UnknownEnvError(
        f"config.env must be a registered env name or a class of {ACCEPTED_ENVS}, got {env!r}. "
        f"Registered team envs: {list(registered_env_names())}.")


def _as_team_env(env: Any, name: str) -> MultiAgentEnv:
    """``env`` as is when it is a team env already (a TeamEnv, or a MultiAgentEnv whose only
    agent is "team"), else TeamEnv(env)."""
    if isinstance(env, TeamEnv):
        return env
    if (isinstance(env, MultiAgentEnv) and not isinstance(env, GroupAgentsWrapper)
            and list(getattr(env, "possible_agents", [])) == [TEAM]):
        return env
    if not isinstance(env, ACCEPTED_ENV_TYPES):
        raise TeamEnvError(
            f"env {name!r} built a {type(env).__name__}; expected {ACCEPTED_ENVS}, or a "
            f"team env (a MultiAgentEnv whose only agent is {TEAM!r}).")
    return TeamEnv(env)
