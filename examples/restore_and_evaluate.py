"""Restore an Algorithm checkpoint, evaluate it greedily, then continue training it.

    python examples/restore_and_evaluate.py PATH            # any checkpoint of this package
    python examples/restore_and_evaluate.py                 # first trains QMIX on Spread (~2 min)
    python examples/restore_and_evaluate.py --train-steps 500   # a smoke run

PATH is a directory that `algo.save_to_path()` or Tune wrote, e.g. the "checkpoint:" line
of `python -m rllib_softqmix train tune_configs/qmix_mpe_spread.yaml`. The restored
algorithm is the whole training state (weights, targets, optimizer, replay buffer,
counters), so `algo.train()` goes on where training stopped. When the script trains the
checkpoint itself, it also checks that the restored agents act exactly as the trained ones.
"""

import argparse
import math
import os
import tempfile

import numpy as np

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

# Registers the algorithms and team envs; imported before ray.rllib, it keeps RLlib from
# loading JAX (see rllib_softqmix/__init__.py).
import rllib_softqmix  # noqa: E402
from ray.rllib.algorithms.algorithm import Algorithm  # noqa: E402
from rllib_softqmix import TEAM, QMIXConfig, TeamPolicy  # noqa: E402

EVALUATION_EPISODES = 32


def greedy_actions(algo: Algorithm, episodes: int = 3) -> np.ndarray:
    """The greedy joint actions of the algorithm's agents in seeded episodes of its env."""
    policy = TeamPolicy(algo.get_module(TEAM))
    env = rllib_softqmix.make_team_env(algo.config.env, algo.config.env_config)
    actions = []
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        policy.reset()
        done = False
        while not done:
            actions.append(policy.act(obs[TEAM]))
            obs, _, terminated, truncated, _ = env.step({TEAM: actions[-1]})
            done = terminated[TEAM] or truncated[TEAM]
    env.close()
    return np.stack(actions)


def train_checkpoint(env_steps: int, directory: str):
    """Trains QMIX on MPE Spread (simple) for about env_steps and saves it; returns the
    checkpoint path and the trained agents' greedy actions."""
    steps_per_iteration = min(2000, env_steps)
    config = (QMIXConfig()
              .environment("mpe_spread", env_config={"difficulty": "simple"})
              .training(lr=5e-4, standardize_rewards=True, train_batch_size_episodes=32,
                        episodes_per_train_step=4, epsilon_anneal_time=env_steps // 2)
              .env_runners(num_envs_per_env_runner=4)
              .evaluation(evaluation_interval=5, evaluation_duration=EVALUATION_EPISODES)
              .reporting(min_sample_timesteps_per_iteration=steps_per_iteration)
              .debugging(seed=0))
    algo = config.build_algo()
    for _ in range(math.ceil(env_steps / steps_per_iteration)):
        algo.train()
    path = algo.save_to_path(directory)
    actions = greedy_actions(algo)
    algo.stop()
    return path, actions


def restore_with_evaluation(path: str) -> Algorithm:
    """Algorithm.from_checkpoint(path), with greedy evaluation configured.

    algo.evaluate() acts greedily on its own EnvRunner only when the checkpoint's config
    has evaluation set up (the shipped YAML configs do); without it, RLlib would sample
    with exploration on the training EnvRunner. Such a checkpoint is restored again with
    evaluation added to its config.
    """
    algo = Algorithm.from_checkpoint(path)
    if algo.config.evaluation_interval:
        return algo
    config = algo.config.copy(copy_frozen=False).evaluation(
        evaluation_interval=1, evaluation_duration=EVALUATION_EPISODES)
    algo.stop()
    return Algorithm.from_checkpoint(path, config=config)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint", nargs="?", help="checkpoint directory; none: train one")
    parser.add_argument("--train-steps", type=int, default=40_000,
                        help="env steps of the QMIX run that makes a checkpoint when none is given")
    parser.add_argument("--save-dir", default=None, help="where that checkpoint goes (a temp dir)")
    args = parser.parse_args()

    if args.checkpoint:
        path, trained_actions = args.checkpoint, None
    else:
        path, trained_actions = train_checkpoint(args.train_steps,
                                                 args.save_dir or tempfile.mkdtemp())
    print(f"checkpoint: {path}")

    algo = restore_with_evaluation(path)
    print(f"restored {type(algo).__name__} on {algo.config.env!r} at iteration {algo.iteration}")
    if trained_actions is not None:
        same = np.array_equal(greedy_actions(algo), trained_actions)
        print(f"restored agents act as the trained ones: {same} "
              f"({len(trained_actions)} greedy joint actions compared)")

    greedy = algo.evaluate()["env_runners"]
    print(f"greedy return over {greedy['num_episodes']} episodes: "
          f"mean={greedy['episode_return_mean']:.1f} min={greedy['episode_return_min']:.1f} "
          f"max={greedy['episode_return_max']:.1f}")

    result = algo.train()
    print(f"continued training: iteration {result['training_iteration']}, "
          f"{result['num_env_steps_sampled_lifetime']:.0f} env steps in all, "
          f"training return {result['env_runners']['episode_return_mean']:.1f}")
    algo.stop()


if __name__ == "__main__":
    main()
