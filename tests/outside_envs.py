"""Small PettingZoo ParallelEnvs unlike the built-in ones, for the defaults' learning checks.

Each is written as a user would write one, with nothing of this package, and has a shape
the built-in envs lack:
- ``TimedTargetEnv``: a fixed horizon that the agents see (t / horizon in the
  observation), episodes ended by the env's own truncation, a masked action;
- ``FragileTeamEnv``: agents that die mid-episode, episodes that end by termination
  (success or the whole team dead), a truncation only as a far fallback.
"""

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class TimedTargetEnv(ParallelEnv):
    """Two agents; each sees a one-hot target among actions 0-3 plus t / horizon and
    scores 1 for taking it; action 4 is masked. The env truncates after ``horizon`` steps.
    Return: at most 2 * horizon, 0.5 * horizon for uniform random play."""

    metadata = {"name": "timed_target"}

    def __init__(self, horizon=3):
        self.horizon = horizon
        self.possible_agents = ["a", "b"]
        self.agents = []
        self.rng = np.random.default_rng(0)

    def observation_space(self, agent):
        return spaces.Dict({"observation": spaces.Box(0.0, 1.0, (5,), np.float32),
                            "action_mask": spaces.MultiBinary(5)})

    def action_space(self, agent):
        return spaces.Discrete(5)

    def _observe(self):
        observations = {}
        for agent in self.possible_agents:
            observation = np.zeros(5, np.float32)
            observation[self.targets[agent]] = 1.0
            observation[4] = self.t / self.horizon
            observations[agent] = {"observation": observation,
                                   "action_mask": np.array([1, 1, 1, 1, 0], np.int8)}
        return observations

    def _draw_targets(self):
        self.targets = {agent: int(self.rng.integers(4)) for agent in self.possible_agents}

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents, self.t = list(self.possible_agents), 0
        self._draw_targets()
        return self._observe(), {agent: {} for agent in self.agents}

    def step(self, actions):
        rewards = {agent: float(actions[agent] == self.targets[agent]) for agent in self.agents}
        self.t += 1
        self._draw_targets()
        truncated = self.t >= self.horizon
        observations = self._observe()
        acted, self.agents = list(self.agents), [] if truncated else list(self.agents)
        return (observations, rewards, {agent: False for agent in acted},
                {agent: truncated for agent in acted}, {agent: {} for agent in acted})


class FragileTeamEnv(ParallelEnv):
    """Three agents; each step every live agent sees a one-hot target (actions 0-3) and a
    one-hot hazard (another of 0-3). Its target scores 1, its hazard scores -1 and kills
    it (it leaves ``agents``, terminated), action 4 waits. The episode terminates when the
    team has ``goal`` hits (success, ``info['success'] = 1``) or every agent is dead; it
    truncates after ``limit`` steps. Best return ``goal`` (in ceil(goal / 3) steps);
    uniform random play loses most agents within a few steps."""

    metadata = {"name": "fragile_team"}

    def __init__(self, goal=6, limit=20):
        self.goal, self.limit = goal, limit
        self.possible_agents = ["x", "y", "z"]
        self.agents = []
        self.rng = np.random.default_rng(0)

    def observation_space(self, agent):
        return spaces.Box(0.0, 1.0, (8,), np.float32)

    def action_space(self, agent):
        return spaces.Discrete(5)

    def _draw(self):
        self.targets, self.hazards = {}, {}
        for agent in self.possible_agents:
            target, hazard = self.rng.choice(4, size=2, replace=False)
            self.targets[agent], self.hazards[agent] = int(target), int(hazard)

    def _observe(self, agents):
        observations = {}
        for agent in agents:
            observation = np.zeros(8, np.float32)
            observation[self.targets[agent]] = 1.0
            observation[4 + self.hazards[agent]] = 1.0
            observations[agent] = observation
        return observations

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents, self.t, self.hits = list(self.possible_agents), 0, 0
        self._draw()
        return self._observe(self.agents), {agent: {} for agent in self.agents}

    def step(self, actions):
        acting = list(self.agents)
        rewards, dying = {}, set()
        for agent in acting:
            action = actions[agent]
            if action == self.targets[agent]:
                rewards[agent] = 1.0
                self.hits += 1
            elif action == self.hazards[agent]:
                rewards[agent] = -1.0
                dying.add(agent)
            else:
                rewards[agent] = 0.0
        self.t += 1
        self._draw()
        success = self.hits >= self.goal
        survivors = [agent for agent in acting if agent not in dying]
        team_over = success or not survivors
        truncated = not team_over and self.t >= self.limit
        terminations = {agent: team_over or agent in dying for agent in acting}
        truncations = {agent: truncated and agent not in dying for agent in acting}
        self.agents = [] if team_over or truncated else survivors
        info = {"success": float(success)} if (team_over or truncated) else {}
        return (self._observe(acting), rewards, terminations, truncations,
                {agent: dict(info) for agent in acting})
