"""MPE Simple Spread with the Soft-QMIX paper's difficulty variants (spec section 5c).

Built on mpe2's ``simple_spread_v3`` (the maintained PettingZoo MPE). Difficulty
scales the initial positions: agents U(-1, 1)^2 * c, landmarks 0.8 * U(-1, 1)^2 * c,
with c = 1.0 / 1.5 / 2.0 for simple / medium / hard.

Rewards:
- ``"soft_qmix"`` (default): the paper's team reward, so its Table 3 compares
  directly. Agent i gets -sum_l min_a dist(a, l) - #{agents colliding with i}, where
  an agent always collides with itself (a constant -1 per agent per step); the team
  reward is the sum over agents, -3 sum_l min dist - sum_i collisions_i for N = 3.
- ``"pettingzoo"``: mpe2's own per-agent rewards (local_ratio 0.5), summed.

Observations are mpe2's, computed once per world step: mpe2 recomputes every agent's
observation 9 times per parallel step (the parallel wrapper's ``last()``, ``observe()``
and ``state()``), a third of the env's step time.
"""

from typing import Optional

import numpy as np
from mpe2 import simple_spread_v3
from mpe2.simple_spread.simple_spread import Scenario
from pettingzoo.utils.conversions import aec_to_parallel

DIFFICULTY_SCALES = {"simple": 1.0, "medium": 1.5, "hard": 2.0}
SPREAD_REWARDS = ("soft_qmix", "pettingzoo")
LANDMARK_SPREAD = 0.8


class ScaledSpreadScenario(Scenario):
    """simple_spread's scenario with scaled initial positions and an optional reward."""

    def __init__(self, scale: float, soft_qmix_reward: bool):
        super().__init__()
        self.scale = scale
        self.soft_qmix_reward = soft_qmix_reward

    def reset_world(self, world, np_random) -> None:
        super().reset_world(world, np_random)
        for agent in world.agents:
            agent.state.p_pos = np_random.uniform(-1, +1, world.dim_p) * self.scale
        for landmark in world.landmarks:
            landmark.state.p_pos = LANDMARK_SPREAD * np_random.uniform(-1, +1, world.dim_p) * self.scale

    def reward(self, agent, world) -> float:
        if not self.soft_qmix_reward:
            return super().reward(agent, world)
        if agent is world.agents[0]:  # mpe2 asks agent by agent, in order, once per step
            self._step_rewards = self.soft_qmix_rewards(world)
        return float(self._step_rewards[world.agents.index(agent)])

    @staticmethod
    def soft_qmix_rewards(world) -> np.ndarray:
        """Every agent's reward [N]: -coverage - #{agents within touching distance}."""
        agents = np.array([a.state.p_pos for a in world.agents])
        landmarks = np.array([landmark.state.p_pos for landmark in world.landmarks])
        coverage = np.linalg.norm(agents[:, None] - landmarks[None], axis=-1).min(axis=0).sum()
        sizes = np.array([a.size for a in world.agents])
        gaps = np.linalg.norm(agents[:, None] - agents[None], axis=-1)
        collisions = np.count_nonzero(gaps < sizes[:, None] + sizes[None], axis=1)
        return -coverage - collisions


class SpreadEnv(simple_spread_v3.raw_env):
    """mpe2's simple_spread AEC env whose observations are computed once per world step.

    ``observe(agent)`` and ``state()`` return what mpe2's would (the scenario's observation
    as float32; the state is the observations concatenated in ``possible_agents`` order),
    from a table built at the first request after each reset or world step.
    """

    _observations: Optional[np.ndarray] = None  # [N, O] float32, None when stale

    def reset(self, seed=None, options=None) -> None:
        super().reset(seed=seed, options=options)
        self._observations = None

    def _execute_world_step(self) -> None:
        super()._execute_world_step()
        self._observations = None

    def _observation_table(self) -> np.ndarray:
        if self._observations is None:
            # Row i is world.agents[i], i.e. possible_agents[i] (mpe2's _index_map).
            self._observations = np.stack([self.scenario.observation(agent, self.world)
                                           for agent in self.world.agents]).astype(np.float32)
        return self._observations

    def observe(self, agent: str) -> np.ndarray:
        return self._observation_table()[self._index_map[agent]].copy()

    def state(self) -> np.ndarray:
        return self._observation_table().reshape(-1).copy()


def spread_parallel_env(n_agents: int = 3, difficulty: str = "simple", reward: str = "soft_qmix",
                        max_cycles: int = 25):
    """The PettingZoo ParallelEnv of Spread with the given variant."""
    if difficulty not in DIFFICULTY_SCALES:
        raise ValueError(f"difficulty must be one of {tuple(DIFFICULTY_SCALES)}, got {difficulty!r}")
    if reward not in SPREAD_REWARDS:
        raise ValueError(f"reward must be one of {SPREAD_REWARDS}, got {reward!r}")
    if int(n_agents) != n_agents or n_agents < 2:
        raise ValueError(f"n_agents must be an integer >= 2, got {n_agents!r}")
    if int(max_cycles) != max_cycles or max_cycles < 1:
        raise ValueError(f"max_cycles must be a positive integer, got {max_cycles!r}")
    soft = reward == "soft_qmix"
    # mpe2's parallel_env without the AEC env's debugging wrappers (order enforcing and an
    # out-of-bounds action assert, ~15% of a sampling step): TeamEnv checks the actions.
    env = aec_to_parallel(SpreadEnv(
        N=int(n_agents), local_ratio=1.0 if soft else 0.5, max_cycles=int(max_cycles),
        continuous_actions=False))
    env.unwrapped.scenario = ScaledSpreadScenario(DIFFICULTY_SCALES[difficulty], soft)
    if soft:  # each agent's reward is reward() as is: skip computing a global reward weighted 0
        env.unwrapped.local_ratio = None
    return env
