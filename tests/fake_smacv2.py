"""A stand-in for smacv2's StarCraftCapabilityEnvWrapper, for tests without StarCraft II.

``FakeCapabilityEnvWrapper`` has the wrapper's methods with smacv2's signatures and return
values (smacv2/env/starcraft2/wrapper.py and starcraft2.py) and copies the behaviours the
adapter relies on:

- ``reset()`` returns ``(obs, state)``, except on smacv2's retry path (a reset that fails
  once is retried and returns None); read obs and state with get_obs()/get_state();
- actions: 0 no-op (only for dead units), 1 stop, 2-5 move, 6 + e attack enemy e;
  ``get_avail_actions()`` lists N lists of A ints, a dead unit's is ``[1, 0, ..., 0]``;
- ``step(actions)`` returns ``(reward, terminated, info)``, raises AssertionError
  ("Agent i cannot perform action a") on an unavailable action and on a live unit's
  no-op, like smacv2's ``get_agent_action``;
- ``info`` has ``battle_won`` (bool), ``dead_allies`` and ``dead_enemies`` on every step;
  ``episode_limit: True`` when the time limit ends the episode, only if
  ``continuing_episode`` is set; a dead unit's observation is all zeros.

The battle itself is a toy: every enemy dies from one attack; enemy e is in range of ally i
at step t when (i + e + t) is even; every ``fake_enemy_kill_every`` steps the enemy kills
the lowest-numbered live ally (0: never). Options named ``fake_*`` exist only here.
"""

import numpy as np

# Time limits of smacv2's maps (smac_maps.py), plus a short one for tests.
MAP_LIMITS = {"10gen_protoss": 200, "10gen_terran": 200, "10gen_zerg": 200, "fake_short": 4}
N_ACTIONS_NO_ATTACK = 6
REWARD_DEATH_VALUE, REWARD_WIN, REWARD_SCALE_RATE = 10, 200, 20


class CannotResetError(Exception):
    """smacv2's CannotResetException."""


class FakeCapabilityEnvWrapper:
    """smacv2's ``StarCraftCapabilityEnvWrapper(**kwargs)`` on a toy battle (module docstring)."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        capability_config = kwargs["capability_config"]
        self.n_agents = capability_config["n_units"]
        self.n_enemies = capability_config["n_enemies"]
        self.n_actions = N_ACTIONS_NO_ATTACK + self.n_enemies
        self.episode_limit = MAP_LIMITS[kwargs.get("map_name", "fake_short")]
        self.continuing_episode = kwargs.get("continuing_episode", False)
        self.enemy_kill_every = kwargs.get("fake_enemy_kill_every", 2)
        self.failing_resets = kwargs.get("fake_failing_resets", 0)
        self.max_reward = self.n_enemies * REWARD_DEATH_VALUE + REWARD_WIN
        self.steps_received = []
        self.resets = 0
        self.closed = False
        self._start_episode()

    def _start_episode(self):
        self._episode_steps = 0
        self.ally_alive = np.ones(self.n_agents, bool)
        self.enemy_alive = np.ones(self.n_enemies, bool)

    # ---- smacv2's methods ----------------------------------------------------------
    def reset(self):
        try:
            return self._reset()
        except CannotResetError:
            self.reset()  # smacv2's retry: the retried reset's (obs, state) is dropped

    def _reset(self):
        self.resets += 1
        if self.failing_resets:
            self.failing_resets -= 1
            raise CannotResetError
        self._start_episode()
        return self.get_obs(), self.get_state()

    def step(self, actions):
        actions_int = [int(a) for a in actions]
        self.steps_received.append(actions_int)
        for a_id, action in enumerate(actions_int):
            avail_actions = self.get_avail_agent_actions(a_id)
            assert avail_actions[action] == 1, f"Agent {a_id} cannot perform action {action}"
            if action == 0:
                assert not self.ally_alive[a_id], "No-op only available for dead agents."
        killed = 0
        for action in actions_int:
            target = action - N_ACTIONS_NO_ATTACK
            if target >= 0 and self.enemy_alive[target]:
                self.enemy_alive[target] = False
                killed += 1
        self._episode_steps += 1
        if self.enemy_kill_every and self._episode_steps % self.enemy_kill_every == 0 \
                and self.enemy_alive.any() and self.ally_alive.any():
            self.ally_alive[np.flatnonzero(self.ally_alive)[0]] = False
        reward = float(killed * REWARD_DEATH_VALUE)
        info = {"battle_won": False, "dead_allies": int((~self.ally_alive).sum()),
                "dead_enemies": int((~self.enemy_alive).sum())}
        terminated = False
        if not self.enemy_alive.any():
            terminated = True
            info["battle_won"] = True
            reward += REWARD_WIN
        elif not self.ally_alive.any():
            terminated = True
        elif self._episode_steps >= self.episode_limit:
            terminated = True
            if self.continuing_episode:
                info["episode_limit"] = True
        return reward / (self.max_reward / REWARD_SCALE_RATE), terminated, info

    def get_obs(self):
        return [self.get_obs_agent(agent_id) for agent_id in range(self.n_agents)]

    def get_obs_agent(self, agent_id):
        obs = np.zeros(self.get_obs_size(), np.float32)
        if self.ally_alive[agent_id]:
            obs[0] = 1.0
            obs[1] = self._episode_steps / self.episode_limit
            obs[2:2 + self.n_enemies] = self.enemy_alive
            obs[2 + self.n_enemies + agent_id] = 1.0
        return obs

    def get_obs_size(self):
        return 2 + self.n_enemies + self.n_agents

    def get_state(self):
        return np.concatenate([self.ally_alive, self.enemy_alive,
                               [self._episode_steps / self.episode_limit]]).astype(np.float32)

    def get_state_size(self):
        return self.n_agents + self.n_enemies + 1

    def get_avail_actions(self):
        return [self.get_avail_agent_actions(agent_id) for agent_id in range(self.n_agents)]

    def get_avail_agent_actions(self, agent_id):
        if not self.ally_alive[agent_id]:
            return [1] + [0] * (self.n_actions - 1)
        avail_actions = [0] * self.n_actions
        avail_actions[1:N_ACTIONS_NO_ATTACK] = [1] * (N_ACTIONS_NO_ATTACK - 1)
        for enemy in np.flatnonzero(self.enemy_alive):
            if (agent_id + enemy + self._episode_steps) % 2 == 0:
                avail_actions[N_ACTIONS_NO_ATTACK + enemy] = 1
        return avail_actions

    def get_total_actions(self):
        return self.n_actions

    def get_cap_size(self):
        return 0

    def get_env_info(self):
        return {"state_shape": self.get_state_size(), "obs_shape": self.get_obs_size(),
                "cap_shape": self.get_cap_size(), "n_actions": self.get_total_actions(),
                "n_agents": self.n_agents, "episode_limit": self.episode_limit}

    def get_stats(self):
        return {}

    def close(self):
        self.closed = True
