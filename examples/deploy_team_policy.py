"""Deploy a trained team without Ray: TeamPolicy acting in a plain PettingZoo loop.

    python examples/deploy_team_policy.py PATH                  # 100 episodes, a few seconds
    python examples/deploy_team_policy.py PATH --episodes 3     # a smoke run

PATH is a checkpoint trained on `mpe_spread`, e.g. the "checkpoint:" line of
`python examples/restore_and_evaluate.py` or of
`python -m rllib_softqmix train tune_configs/qmix_mpe_spread.yaml`.
`TeamPolicy.from_checkpoint` loads only the agent network (no mixer, no replay buffer) and
starts no Ray processes; each agent acts on its own observation, greedily.
"""

import argparse

import numpy as np
import torch

from rllib_softqmix import TeamPolicy
from rllib_softqmix.envs import spread_parallel_env


def team_observation(observations, agents, n_actions):
    """The two arrays TeamPolicy.act needs, in `agents` order: each agent's observation
    [N, O] and its available actions [N, A] (Spread has no action masks: all ones).
    For envs with masks, agents that leave early or unequal observation sizes, the
    project's TeamEnv builds these arrays for you."""
    return {"obs": np.stack([observations[agent] for agent in agents]),
            "action_mask": np.ones((len(agents), n_actions), np.float32)}


def run_episode(env, policy, seed):
    observations, _ = env.reset(seed=seed)
    policy.reset()  # a fresh recurrent state for every agent at each episode start
    n_actions = env.action_space(env.possible_agents[0]).n
    episode_return = 0.0
    while env.agents:
        joint_action = policy.act(team_observation(observations, env.possible_agents, n_actions))
        actions = {agent: int(action) for agent, action in zip(env.possible_agents, joint_action)}
        observations, rewards, _, _, _ = env.step(actions)
        episode_return += sum(rewards.values())  # the team reward: the agents' rewards summed
    return episode_return


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint", help="an Algorithm checkpoint trained on mpe_spread")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--difficulty", default="simple", choices=("simple", "medium", "hard"),
                        help="the env_config difficulty the checkpoint was trained with")
    args = parser.parse_args()

    torch.set_num_threads(1)  # the networks are tiny: more threads only contend (10x slower here)
    policy = TeamPolicy.from_checkpoint(args.checkpoint)
    # The raw PettingZoo ParallelEnv behind "mpe_spread": mpe2's simple_spread_v3 with the
    # Soft-QMIX paper's reward and start positions.
    env = spread_parallel_env(n_agents=policy.n_agents, difficulty=args.difficulty)
    returns = [run_episode(env, policy, seed) for seed in range(args.episodes)]
    env.close()
    print(f"TeamPolicy ({policy.n_agents} agents) on Spread ({args.difficulty}), greedy return "
          f"over {args.episodes} episodes: mean={np.mean(returns):.1f} "
          f"min={np.min(returns):.1f} max={np.max(returns):.1f}")


if __name__ == "__main__":
    main()
