"""Small PettingZoo ParallelEnvs that exercise TeamEnv's edge cases and inject faults."""

import os

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class ToyEnv(ParallelEnv):
    """3 agents, 4 actions, observations of sizes 2/3/4 (value = 10 * agent + t).

    Options: ``with_state`` adds state() and state_space; ``mask_in`` = "obs" puts an
    action mask into a Dict observation, "infos" into the infos, None gives no masks;
    masks allow action (t + i) % 4 and (t + i + 1) % 4 only, and ``strict`` makes
    step() raise on any other action. Agent 2 dies after ``agent2_lifetime`` steps.
    The episode ends by truncation after ``limit`` steps, or by termination after
    ``terminate_at`` steps. Each agent's reward is its index + 1.
    """

    metadata = {"name": "toy"}

    def __init__(self, with_state=False, mask_in=None, strict=False, limit=5,
                 terminate_at=None, agent2_lifetime=None):
        self.possible_agents = ["a0", "a1", "a2"]
        self.with_state, self.mask_in, self.strict = with_state, mask_in, strict
        self.limit, self.terminate_at, self.agent2_lifetime = limit, terminate_at, agent2_lifetime
        self.sizes = {"a0": 2, "a1": 3, "a2": 4}
        if with_state:
            self.state_space = spaces.Box(-np.inf, np.inf, (6,), np.float32)
        self.agents = []
        self.t = 0
        self.received = []

    def observation_space(self, agent):
        box = spaces.Box(-np.inf, np.inf, (self.sizes[agent],), np.float32)
        if self.mask_in == "obs":
            return spaces.Dict({"observation": box, "action_mask": spaces.MultiBinary(4)})
        return box

    def action_space(self, agent):
        return spaces.Discrete(4)

    def state(self):
        if not self.with_state:
            raise NotImplementedError
        return np.full(6, 100.0 + self.t, np.float32)

    def _mask(self, index):
        mask = np.zeros(4, np.int8)
        mask[(self.t + index) % 4] = mask[(self.t + index + 1) % 4] = 1
        return mask

    def _observe(self, agents):
        obs, infos = {}, {}
        for index, agent in enumerate(self.possible_agents):
            if agent not in agents:
                continue
            value = np.full(self.sizes[agent], 10.0 * index + self.t, np.float32)
            obs[agent] = {"observation": value, "action_mask": self._mask(index)} \
                if self.mask_in == "obs" else value
            infos[agent] = {"action_mask": self._mask(index)} if self.mask_in == "infos" else {}
        return obs, infos

    def reset(self, seed=None, options=None):
        self.agents, self.t = list(self.possible_agents), 0
        return self._observe(self.agents)

    def step(self, actions):
        self.received.append(dict(actions))
        if self.strict:
            for index, agent in enumerate(self.possible_agents):
                if agent in actions and not self._mask(index)[actions[agent]]:
                    raise ValueError(f"{agent} took unavailable action {actions[agent]} at t={self.t}")
        acting = list(self.agents)
        self.t += 1
        rewards = {agent: float(self.possible_agents.index(agent) + 1) for agent in acting}
        terminated = self.terminate_at is not None and self.t >= self.terminate_at
        truncated = self.t >= self.limit and not terminated
        terminations = {agent: terminated for agent in acting}
        truncations = {agent: truncated for agent in acting}
        if self.agent2_lifetime is not None and self.t >= self.agent2_lifetime and "a2" in acting:
            terminations["a2"] = True
        self.agents = [agent for agent in acting if not (terminations[agent] or truncations[agent])]
        # PettingZoo returns observations for every agent that acted, finishing ones too.
        obs, infos = self._observe(acting)
        return obs, rewards, terminations, truncations, infos


class ContinuousEnv(ToyEnv):
    def action_space(self, agent):
        return spaces.Box(-1, 1, (2,))


class UnequalActionsEnv(ToyEnv):
    def action_space(self, agent):
        return spaces.Discrete(4 if agent != "a2" else 5)


class NoAgentsEnv(ToyEnv):
    def __init__(self):
        super().__init__()
        self.possible_agents = []


class CrashingEnv(ToyEnv):
    """ToyEnv whose reset() and step() raise with probability ``crash_probability`` each,
    drawn from one seeded RNG per process."""

    rng = np.random.default_rng(0)

    def __init__(self, crash_probability=0.01, **options):
        super().__init__(**options)
        self.crash_probability = crash_probability

    def _maybe_crash(self, call):
        if CrashingEnv.rng.random() < self.crash_probability:
            raise RuntimeError(f"simulated env crash in {call} at t={self.t}")

    def reset(self, seed=None, options=None):
        self._maybe_crash("reset")
        return super().reset(seed=seed, options=options)

    def step(self, actions):
        self._maybe_crash("step")
        return super().step(actions)


class ProcessKillingEnv(ToyEnv):
    """ToyEnv that kills its whole process (os._exit) at its third step, once: the file
    ``marker`` records that it did."""

    def __init__(self, marker, **options):
        super().__init__(**options)
        self.marker = marker

    def step(self, actions):
        if self.t == 2 and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return super().step(actions)
