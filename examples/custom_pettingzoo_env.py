"""Your own PettingZoo env with this library: ten lines of library code.

The env below is a tiny cooperative ParallelEnv written for this example: two agents score
1 per step when they pick the same of three actions, and each sees the other's last action.
A random team scores about 3.3 per 10-step episode, a coordinated one 10. Registering it
with `rllib_softqmix.register_team_env` is all it takes to train QMIX (or any algorithm of
the family) on it.

    python examples/custom_pettingzoo_env.py                    # ~1 minute on 2 cores
    python examples/custom_pettingzoo_env.py --iterations 1     # a smoke run
"""

import argparse
import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np  # noqa: E402
from gymnasium import spaces  # noqa: E402
from pettingzoo import ParallelEnv  # noqa: E402

import rllib_softqmix  # noqa: E402
from rllib_softqmix import QMIXConfig  # noqa: E402


class SameActionGame(ParallelEnv):
    """Two agents, reward 1 for every step on which they pick the same action."""

    metadata = {"name": "same_action_v0"}

    def __init__(self, n_actions=3, episode_length=10):
        self.possible_agents = ["first", "second"]
        self.agents = []
        self.n_actions, self.episode_length = n_actions, episode_length

    def observation_space(self, agent):  # the partner's last action, one-hot
        return spaces.Box(0.0, 1.0, (self.n_actions,), np.float32)

    def action_space(self, agent):
        return spaces.Discrete(self.n_actions)

    def reset(self, seed=None, options=None):
        self.agents, self.steps = list(self.possible_agents), 0
        observations = {agent: np.zeros(self.n_actions, np.float32) for agent in self.agents}
        return observations, {agent: {} for agent in self.agents}

    def step(self, actions):
        self.steps += 1
        last_action = np.eye(self.n_actions, dtype=np.float32)
        observations = {"first": last_action[actions["second"]],
                        "second": last_action[actions["first"]]}
        reward = float(actions["first"] == actions["second"])
        time_is_up = self.steps >= self.episode_length
        agents, self.agents = self.agents, [] if time_is_up else self.agents
        return (observations, {agent: reward for agent in agents},
                {agent: False for agent in agents}, {agent: time_is_up for agent in agents},
                {agent: {} for agent in agents})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=8, help="1000 env steps each")
    args = parser.parse_args()

    # ---- the library: these ten lines train QMIX on the env above ----------------------
    rllib_softqmix.register_team_env("same_action", SameActionGame, team_reward="mean")
    config = (QMIXConfig()
              .environment("same_action", env_config={"episode_length": 10})
              .training(agent_network="mlp", train_batch_size_episodes=32, epsilon_anneal_time=4000)
              .evaluation(evaluation_interval=1, evaluation_duration=16).debugging(seed=0))
    algo = config.build_algo()
    for _ in range(args.iterations):
        greedy = algo.train()["evaluation"]["env_runners"]
    algo.stop()
    print(f"greedy return: {greedy['episode_return_mean']:.1f} of 10 (random play: 3.3)")
    # -------------------------------------------------------------------------------------


if __name__ == "__main__":
    main()
