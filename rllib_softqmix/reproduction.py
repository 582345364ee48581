"""Outcomes of short runs on the matrix games, for success rates over many seeds.

Papers report one table from one seed; these helpers train one seed in this process
(no Tune) and read what it learned, so tests and benchmarks can report rates.
"""

from dataclasses import asdict, dataclass
from typing import Dict, List

import numpy as np

from rllib_softqmix.qmix.config import QMIXConfig

# Outcome criteria of the Soft-QMIX paper's Table 2: greedy (A, A), Q_tot(A, A)
# within 1 of the payoff 8, and both agents put more than 0.9 probability on A.
OPTIMAL_PAYOFF = 8.0
Q_TOLERANCE = 1.0
MIN_PROBABILITY = 0.9


@dataclass
class OneStepOutcome:
    seed: int
    greedy_actions: List[int]
    greedy_return: float
    q_tot_table: List[List[float]]
    action_probabilities: List[List[float]]

    @property
    def reached_optimum(self) -> bool:
        return self.greedy_actions == [0, 0]

    @property
    def matches_paper(self) -> bool:
        """(A, A) with an exact Q_tot there and near-deterministic policies on A."""
        return (self.reached_optimum
                and abs(self.q_tot_table[0][0] - OPTIMAL_PAYOFF) <= Q_TOLERANCE
                and all(probs[0] > MIN_PROBABILITY for probs in self.action_probabilities))

    def to_dict(self) -> Dict:
        return {**asdict(self), "reached_optimum": self.reached_optimum,
                "matches_paper": self.matches_paper}


def one_step_outcome(config: QMIXConfig, seed: int, iterations: int) -> OneStepOutcome:
    """Trains ``config`` (on ``one_step_matrix``) with ``seed`` for ``iterations`` Algorithm
    iterations and reads its greedy joint action, Q_tot table and acting policy."""
    algo = config.copy(copy_frozen=False).debugging(seed=seed).build_algo()
    try:
        result = {}
        for _ in range(iterations):
            result = algo.train()
        episode = algo.env_runner.sample(num_episodes=1, explore=False)[0]
        diagnostics = result.get("matrix_game") or algo.matrix_game_diagnostics()
        return OneStepOutcome(seed=seed, greedy_actions=[int(a) for a in episode.actions[0]],
                              greedy_return=float(episode.get_return()),
                              q_tot_table=diagnostics["q_tot_table"],
                              action_probabilities=diagnostics["action_probabilities"])
    finally:
        algo.stop()


def success_rate(outcomes: List[OneStepOutcome]) -> float:
    return float(np.mean([outcome.reached_optimum for outcome in outcomes])) if outcomes else 0.0
