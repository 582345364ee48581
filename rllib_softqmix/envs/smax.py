"""SMAX (SMACv2-like): JaxMARL's StarCraft-free SMACv2 stand-in, as a SMAC-like backend.

SMAX re-implements SMAC-style unit micromanagement in JAX; it is not StarCraft II, and its
results must be called "SMAX (SMACv2-like)", never SMACv2. Its scenarios ``smacv2_5_units``
and ``smacv2_10_units`` draw start positions the way SMACv2 does (surrounded or reflected)
and unit types uniformly from SMAX's six (marine, marauder, stalker, zealot, zergling,
hydralisk: races mixed, unlike SMACv2's weighted teams of one race), the enemy mirroring the
allies' types, and fight JaxMARL's heuristic enemy (``HeuristicEnemySMAX``, attacking the
closest unit).

``SMAXBackend`` exposes smacv2's methods (numpy in and out) so that ``SMACParallelEnv``
(smac.py) wraps it like SMACv2:

- observations [N, O] and the world state [S] as SMAX computes them; a dead unit sees zeros;
- available actions [N, A] from SMAX: actions 0-3 move, 4 stops, 5 + e attacks enemy e;
  a dead unit can only stop (action 4: SMAX has no no-op), and ``step`` rejects an
  unavailable action as smacv2 does;
- reward: SMAX's team reward (the enemies' health lost as a fraction of their full health,
  divided by their number, plus 1 on a win);
- ``battle_won`` = every enemy dead and at least one ally alive (from the unit state);
- the time limit: an episode ends after ``max_steps`` steps (default 100), with
  ``info["episode_limit"] = True`` when both teams are still alive, so SMACParallelEnv
  truncates it. (SMAX itself would end it one step later: it checks the limit before
  counting the step.)

jax and jaxmarl are imported when the first backend is built. Each scenario's reset and
step are jitted once per process and shared by its backends; JAX's persistent compilation
cache (``~/.cache/rllib_softqmix/jax``, or $XDG_CACHE_HOME/rllib_softqmix/jax) lets later
processes skip most of the compile, unless JAX already has a cache directory (e.g. from
JAX_COMPILATION_CACHE_DIR). Each backend holds its own PRNG key: ``reset(seed)`` restarts
it, an unseeded backend starts from a random key.
"""

import functools
import os
import sys
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from rllib_softqmix.envs.registry import EnvDependencyError
from rllib_softqmix.envs.smac import SMACParallelEnv

SMAX_INSTALL = "The SMAX envs need JaxMARL and JAX (CPU): pip install -e .[smax]"
# Registered env name -> SMAX scenario.
SMAX_ENVS = {"smax_5_units": "smacv2_5_units", "smax_10_units": "smacv2_10_units"}
SMAX_OPTION_TYPES = (bool, int, float, str)


def jax_cache_dir() -> str:
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(cache_home, "rllib_softqmix", "jax")


@functools.lru_cache(maxsize=None)
def import_jaxmarl() -> Tuple[Any, Any]:
    """(jax, jaxmarl), imported once (EnvDependencyError if missing); turns on JAX's
    persistent compilation cache for programs of any size unless JAX already has a cache
    directory."""
    stdout, stderr = sys.stdout, sys.stderr
    try:
        import jax
        import jaxmarl
    except ImportError as error:
        raise EnvDependencyError(f"{SMAX_INSTALL} ({error!r})") from error
    finally:
        # jaxmarl 0.2.0 (its mabrax module) sets sys.stdout and sys.stderr back to the
        # process's originals, which would undo any redirection, pytest's capture included.
        sys.stdout, sys.stderr = stdout, stderr
    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", jax_cache_dir())
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return jax, jaxmarl


class _CompiledSMAX(NamedTuple):
    """A HeuristicEnemySMAX env and its jitted functions:
    reset(key) -> (key, env state, view) and step(key, env state, actions [N]) ->
    (key, env state, team reward, view); view = dict(obs [N, O], state [S],
    avail_actions [N, A], unit_alive [N + E], done)."""
    env: Any
    reset: Any
    step: Any


@functools.lru_cache(maxsize=None)
def _compiled_smax(scenario: str, options: Tuple[Tuple[str, Any], ...]) -> _CompiledSMAX:
    jax, jaxmarl = import_jaxmarl()
    import jax.numpy as jnp
    from jaxmarl.environments.smax import map_name_to_scenario

    env = jaxmarl.make("HeuristicEnemySMAX", scenario=map_name_to_scenario(scenario),
                       **dict(options))
    allies = env.agents

    def view(obs, state) -> Dict[str, Any]:
        avail = env.get_avail_actions(state)
        return {"obs": jnp.stack([obs[agent] for agent in allies]),
                "state": obs["world_state"],
                "avail_actions": jnp.stack([avail[agent] for agent in allies]),
                "unit_alive": state.state.unit_alive, "done": state.state.done}

    def reset(key):
        key, reset_key = jax.random.split(key)
        obs, state = env.reset(reset_key)
        return key, state, view(obs, state)

    def step(key, state, actions):
        key, step_key = jax.random.split(key)
        obs, state, rewards, _, _ = env.step_env(
            step_key, state, {agent: actions[i] for i, agent in enumerate(allies)})
        return key, state, rewards[allies[0]], view(obs, state)

    return _CompiledSMAX(env, jax.jit(reset), jax.jit(step))


class SMAXBackend:
    """SMAX (SMACv2-like) behind smacv2's methods: N allies against E heuristic enemies.

    Args:
        scenario: a SMAX scenario, "smacv2_5_units" or "smacv2_10_units" (any name in
            JaxMARL's scenario map works).
        **smax_options: HeuristicEnemySMAX keyword options with scalar values, e.g.
            ``max_steps`` (100), ``attack_mode`` ("closest"), ``see_enemy_actions``,
            ``walls_cause_death``, ``won_battle_bonus``.
    """

    def __init__(self, scenario: str = "smacv2_5_units", **smax_options: Any):
        bad = {key: value for key, value in smax_options.items()
               if not isinstance(value, SMAX_OPTION_TYPES)}
        if bad:
            raise ValueError(f"smax_options must have scalar values (bool, int, float, str), "
                             f"got {bad}")
        self.jax, _ = import_jaxmarl()
        self.compiled = _compiled_smax(scenario, tuple(sorted(smax_options.items())))
        env = self.compiled.env
        self.n_agents = env.num_allies
        self.n_enemies = env.num_enemies
        self.n_actions = int(env.action_spaces[env.agents[0]].n)
        self.episode_limit = int(env.max_steps)
        self._obs_size = int(env.obs_size)
        self._state_size = int(env.state_size)
        self._key = None
        self._state = None
        self._steps = 0
        self._view: Dict[str, np.ndarray] = {}

    def reset(self, seed: Optional[int] = None) -> Tuple[List[np.ndarray], np.ndarray]:
        """Starts an episode; ``seed`` restarts the PRNG key. Returns (obs, state)."""
        if seed is not None or self._key is None:
            if seed is None:
                seed = int(np.random.default_rng().integers(2 ** 31))
            self._key = self.jax.random.PRNGKey(seed)
        self._key, self._state, view = self.compiled.reset(self._key)
        self._view = self.jax.device_get(view)
        self._steps = 0
        return self.get_obs(), self.get_state()

    def step(self, actions: Sequence[int]) -> Tuple[float, bool, Dict[str, Any]]:
        """One step of all N allies; returns (team reward, terminated, info)."""
        if self._state is None or self._steps >= self.episode_limit or self._view["done"]:
            raise RuntimeError("step() called before reset() or after the episode ended")
        actions = np.asarray(actions, dtype=np.int32).reshape(-1)
        in_range = (actions >= 0) & (actions < self.n_actions)
        if actions.shape != (self.n_agents,) or not in_range.all():
            raise ValueError(f"expected {self.n_agents} actions in [0, {self.n_actions}), got "
                             f"{actions.tolist()}")
        available = self._view["avail_actions"][np.arange(self.n_agents), actions]
        unavailable = np.flatnonzero(available == 0)
        if unavailable.size:
            raise ValueError(f"agent(s) {unavailable.tolist()} cannot take action(s) "
                             f"{actions[unavailable].tolist()} (not available)")
        self._key, self._state, reward, view = self.compiled.step(self._key, self._state, actions)
        reward, self._view = self.jax.device_get((reward, view))
        self._steps += 1
        allies_alive = self._view["unit_alive"][: self.n_agents]
        enemies_alive = self._view["unit_alive"][self.n_agents:]
        terminated = bool(self._view["done"]) or self._steps >= self.episode_limit
        info = {"battle_won": bool(allies_alive.any() and not enemies_alive.any()),
                "dead_allies": int(np.count_nonzero(~allies_alive)),
                "dead_enemies": int(np.count_nonzero(~enemies_alive))}
        if terminated and allies_alive.any() and enemies_alive.any():
            info["episode_limit"] = True
        return float(reward), terminated, info

    def get_obs(self) -> List[np.ndarray]:
        return list(self._view["obs"])

    def get_state(self) -> np.ndarray:
        return self._view["state"]

    def get_avail_actions(self) -> List[np.ndarray]:
        return list(self._view["avail_actions"])

    def get_env_info(self) -> Dict[str, int]:
        return {"n_agents": self.n_agents, "n_actions": self.n_actions,
                "obs_shape": self._obs_size, "state_shape": self._state_size,
                "episode_limit": self.episode_limit}

    def close(self) -> None:
        self._state = None


def smax_parallel_env(scenario: str,
                      smax_options: Optional[Dict[str, Any]] = None) -> SMACParallelEnv:
    """SMAX (SMACv2-like) ``scenario`` as a ParallelEnv; ``smax_options`` as in SMAXBackend."""
    return SMACParallelEnv(SMAXBackend(scenario, **dict(smax_options or {})))
