"""Small PettingZoo ParallelEnvs and AECEnvs and RLlib MultiAgentEnvs that exercise
TeamEnv's edge cases and inject faults."""

import os

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils import AgentSelector
from ray.rllib.env.multi_agent_env import MultiAgentEnv


class ToyEnv(ParallelEnv):
    """3 agents, 4 actions, observations of sizes 2/3/4 (value = 10 * agent + t).

    Options: ``with_state`` adds state() and state_space; ``mask_in`` = "obs" puts an
    action mask into a Dict observation, "infos" into the infos, None gives no masks;
    masks allow action (t + i) % 4 and (t + i + 1) % 4 only, and ``strict`` makes
    step() raise on any other action. Agent 2 dies after ``agent2_lifetime`` steps.
    The episode ends by truncation after ``limit`` steps, or by termination after
    ``terminate_at`` steps. Each agent's reward is its index + 1. ``resets`` counts reset().
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
        self.resets = 0

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
        self.resets += 1
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


class UndeclaredStateEnv(ToyEnv):
    """ToyEnv whose state() has no state_space: [200 + t] * 5, or 6 values from step
    ``grow_at`` on; before the first reset it has none (RuntimeError)."""

    def __init__(self, grow_at=None, **options):
        super().__init__(**options)
        self.grow_at = grow_at

    def state(self):
        if not self.resets:
            raise RuntimeError("no state before reset()")
        size = 6 if self.grow_at is not None and self.t >= self.grow_at else 5
        return np.full(size, 200.0 + self.t, np.float32)


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


class ToyAECEnv(AECEnv):
    """An AEC env: agents "a0", "a1" act in turn, 3 actions, the world advances once per cycle
    (so it is parallelizable). Agent i observes [10 * i + t] * 3 and gets reward i + 1 per
    cycle; all agents are truncated after ``limit`` cycles. ``with_state`` gives a state()
    of [400 + t] * 2 without a state_space. ``resets`` counts reset()."""

    metadata = {"name": "toy_aec", "is_parallelizable": True}
    render_mode = None

    def __init__(self, limit=3, with_state=False, parallelizable=True):
        self.possible_agents = ["a0", "a1"]
        self.limit, self.with_state = limit, with_state
        if not parallelizable:
            self.metadata = {"name": "toy_aec", "is_parallelizable": False}
        self.received, self.t, self.resets = [], 0, 0

    def observation_space(self, agent):
        return spaces.Box(-np.inf, np.inf, (3,), np.float32)

    def action_space(self, agent):
        return spaces.Discrete(3)

    def observe(self, agent):
        return np.full(3, 10.0 * self.possible_agents.index(agent) + self.t, np.float32)

    def state(self):
        if not self.with_state:
            return super().state()
        return np.full(2, 400.0 + self.t, np.float32)

    def reset(self, seed=None, options=None):
        self.agents, self.t = list(self.possible_agents), 0
        self.resets += 1
        self.rewards = {agent: 0.0 for agent in self.agents}
        self._cumulative_rewards = {agent: 0.0 for agent in self.agents}
        self.terminations = {agent: False for agent in self.agents}
        self.truncations = {agent: False for agent in self.agents}
        self.infos = {agent: {} for agent in self.agents}
        self._selector = AgentSelector(self.agents)
        self.agent_selection = self._selector.reset()

    def step(self, action):
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self.received.append((agent, action))
        self._cumulative_rewards[agent] = 0
        if self._selector.is_last():
            self.t += 1
            self.rewards = {a: float(self.possible_agents.index(a) + 1) for a in self.agents}
            self.truncations = {a: self.t >= self.limit for a in self.agents}
        else:
            self._clear_rewards()
        self.agent_selection = self._selector.next()
        self._accumulate_rewards()


class ToyMultiAgentEnv(MultiAgentEnv):
    """An RLlib MultiAgentEnv like ToyEnv: agents "a0".."a2", 4 actions, Dict observations
    (``observation`` of size 2/3/4 = 10 * i + t and an ``action_mask`` allowing actions
    (t + i) % 4 and (t + i + 1) % 4), a state() of [300 + t] * 3 and no state_space.
    Agent 2 terminates after ``agent2_lifetime`` steps (its own flag, and a final
    observation). After ``terminate_at`` steps every agent terminates (own flags and
    "__all__"); after ``limit`` steps the episode is truncated ("__all__" only). Agent i's
    reward is i + 1. These are keys of ``config`` (RLlib passes the env_config), as are two
    faults: ``drop_all_key`` leaves "__all__" out of the flags, ``vanish_at`` drops agent 2's
    observation at that step without marking it done."""

    def __init__(self, config=None):
        super().__init__()
        config = config or {}
        self.limit, self.terminate_at = config.get("limit", 5), config.get("terminate_at")
        self.agent2_lifetime = config.get("agent2_lifetime")
        self.vanish_at = config.get("vanish_at")
        self.drop_all_key = config.get("drop_all_key", False)
        self.agents = self.possible_agents = ["a0", "a1", "a2"]
        self.sizes = {"a0": 2, "a1": 3, "a2": 4}
        self.observation_spaces = {agent: spaces.Dict({
            "observation": spaces.Box(-np.inf, np.inf, (size,), np.float32),
            "action_mask": spaces.MultiBinary(4)}) for agent, size in self.sizes.items()}
        self.action_spaces = {agent: spaces.Discrete(4) for agent in self.possible_agents}
        self.t, self.live, self.received = 0, [], []

    def state(self):
        return np.full(3, 300.0 + self.t, np.float32)

    def _observe(self, agents):
        observations = {}
        for index, agent in enumerate(self.possible_agents):
            if agent in agents:
                mask = np.zeros(4, np.int8)
                mask[(self.t + index) % 4] = mask[(self.t + index + 1) % 4] = 1
                observations[agent] = {"observation": np.full(self.sizes[agent], 10.0 * index
                                                              + self.t, np.float32),
                                       "action_mask": mask}
        return observations

    def reset(self, *, seed=None, options=None):
        self.t, self.live = 0, list(self.possible_agents)
        return self._observe(self.live), {agent: {} for agent in self.live}

    def step(self, action_dict):
        self.received.append(dict(action_dict))
        acting, self.t = list(self.live), self.t + 1
        rewards = {agent: float(self.possible_agents.index(agent) + 1) for agent in acting}
        terminateds, truncateds = {"__all__": False}, {"__all__": False}
        if self.agent2_lifetime is not None and self.t >= self.agent2_lifetime and "a2" in acting:
            terminateds["a2"] = True
            self.live.remove("a2")
        if self.terminate_at is not None and self.t >= self.terminate_at:
            terminateds.update({agent: True for agent in acting}, __all__=True)
        elif self.t >= self.limit:
            truncateds["__all__"] = True
        observed = [agent for agent in acting if agent != "a2" or self.t != self.vanish_at]
        if self.drop_all_key:
            del terminateds["__all__"], truncateds["__all__"]
        return (self._observe(observed), rewards, terminateds, truncateds,
                {agent: {"step": self.t} for agent in acting})
