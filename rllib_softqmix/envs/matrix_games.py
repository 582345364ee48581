"""Cooperative matrix games as PettingZoo ParallelEnvs (spec sections 5a and 5b).

Every agent receives the same (team) reward, so wrap them with
``TeamEnv(..., team_reward="mean")`` to get the game's payoff as the team reward.
"""

from typing import Dict, List, Optional, Sequence

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

# The Soft-QMIX paper's Table 1 payoff; rows are agent 0's action A/B/C.
SOFT_QMIX_PAYOFF = ((8.0, -12.0, -12.0), (-12.0, 0.0, 0.0), (-12.0, 0.0, 0.0))


def _onehot(index: int, size: int) -> np.ndarray:
    vector = np.zeros(size, dtype=np.float32)
    vector[index] = 1.0
    return vector


class _CooperativeGame(ParallelEnv):
    """Shared plumbing: identical observations for all agents, observation = state."""

    metadata = {"name": "cooperative_game", "is_parallelizable": True}

    def __init__(self, n_agents: int, n_actions: int, obs_dim: int):
        self.possible_agents = [f"agent_{i}" for i in range(n_agents)]
        self.agents: List[str] = []
        box = spaces.Box(0.0, 1.0, (obs_dim,), np.float32)
        self.observation_spaces = {agent: box for agent in self.possible_agents}
        self.action_spaces = {agent: spaces.Discrete(n_actions) for agent in self.possible_agents}
        self.state_space = box
        self._state = np.zeros(obs_dim, dtype=np.float32)

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def state(self) -> np.ndarray:
        return self._state.copy()

    def _observations(self) -> Dict[str, np.ndarray]:
        return {agent: self._state.copy() for agent in self.possible_agents}

    def _joint_action(self, actions: Dict[str, int]) -> List[int]:
        missing = [agent for agent in self.agents if agent not in actions]
        if missing:
            raise ValueError(f"no action given for {missing}")
        return [int(actions[agent]) for agent in self.possible_agents]

    def _finish_step(self, reward: float, done: bool, info: Dict[str, float]):
        agents = self.agents
        rewards = {agent: reward for agent in agents}
        terminations = {agent: done for agent in agents}
        truncations = {agent: False for agent in agents}
        infos = {agent: dict(info) for agent in agents}
        if done:
            self.agents = []
        return self._observations(), rewards, terminations, truncations, infos


class OneStepMatrixGame(_CooperativeGame):
    """One joint action, reward payoff[a_0][a_1], then the episode terminates.

    Observation = state = one-hot of the step index, size 2 ([1, 0] before the
    step). Any square or rectangular payoff works; the default is the Soft-QMIX
    paper's non-monotonic game, whose optimum (A, A) = 8 QMIX misses.
    """

    metadata = {"name": "one_step_matrix", "is_parallelizable": True}

    def __init__(self, payoff: Sequence[Sequence[float]] = SOFT_QMIX_PAYOFF):
        self.payoff = np.asarray(payoff, dtype=np.float32)
        if self.payoff.ndim != 2 or self.payoff.shape[0] != self.payoff.shape[1] \
                or self.payoff.shape[0] < 2:
            raise ValueError(
                f"payoff must be a square matrix with at least 2 actions, got shape "
                f"{self.payoff.shape}")
        super().__init__(n_agents=2, n_actions=self.payoff.shape[0], obs_dim=2)
        self.episode_limit = 1

    def reset(self, seed: Optional[int] = None, options: Optional[dict] = None):
        self.agents = list(self.possible_agents)
        self._state = _onehot(0, 2)
        return self._observations(), {agent: {} for agent in self.agents}

    def step(self, actions: Dict[str, int]):
        first, second = self._joint_action(actions)
        self._state = _onehot(1, 2)
        return self._finish_step(float(self.payoff[first, second]), True, {})


class MStepMatrixGame(_CooperativeGame):
    """MAVEN's m-step game with two good branches (spec section 5b).

    Step 0's joint action picks a branch, (0,0)->0, (0,1)->1, (1,0)->2, (1,1)->3.
    At every step the team earns 1 if the branch is 0 or 3 and the joint action
    maps to the same branch, except on the last step of branch 0 (m > 1), which pays
    payoff[a_0][a_1] = [[1, 1], [1, 4]]. A zero reward or step m ends the episode,
    both as terminations. Returns: branch 0 played right m+3, branch 3 m, else less.

    Observation = state = [one-hot(step, m+1) ; one-hot(branch, 4)], the branch
    part all zeros before the first step.
    """

    metadata = {"name": "m_step_matrix", "is_parallelizable": True}
    FINAL_PAYOFF = ((1.0, 1.0), (1.0, 4.0))
    GOOD_BRANCHES = (0, 3)

    def __init__(self, m: int = 10):
        if int(m) != m or m < 1:
            raise ValueError(f"m must be a positive integer, got {m!r}")
        self.m = int(m)
        super().__init__(n_agents=2, n_actions=2, obs_dim=self.m + 5)
        self.episode_limit = self.m
        self._t = 0
        self._branch = -1

    def _observe(self) -> None:
        self._state = np.zeros(self.m + 5, dtype=np.float32)
        self._state[self._t] = 1.0
        if self._branch >= 0:
            self._state[self.m + 1 + self._branch] = 1.0

    def reset(self, seed: Optional[int] = None, options: Optional[dict] = None):
        self.agents = list(self.possible_agents)
        self._t, self._branch = 0, -1
        self._observe()
        return self._observations(), {agent: {} for agent in self.agents}

    def step(self, actions: Dict[str, int]):
        first, second = self._joint_action(actions)
        joint = 2 * first + second
        if self._t == 0:
            self._branch = joint
        final_step = self._t == self.m - 1
        if final_step and self._branch == 0 and self.m > 1:
            reward = self.FINAL_PAYOFF[first][second]
        elif self._branch in self.GOOD_BRANCHES and joint == self._branch:
            reward = 1.0
        else:
            reward = 0.0
        self._t += 1
        self._observe()
        done = reward == 0.0 or self._t == self.m
        info = {"branch": float(self._branch),
                "good_payoff": float(final_step and reward == 4.0)}
        return self._finish_step(reward, done, info)
