"""Grid search with Tune by name, then restore the best trial and deploy its policy.

    python examples/tune_search_restore.py                  # ~3 minutes on 2 cores
    python examples/tune_search_restore.py --steps 2000     # a smoke run
"""

import argparse
import os
import tempfile

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np  # noqa: E402
from ray import tune  # noqa: E402
# Registers the algorithms and team envs; imported before ray.rllib, it keeps RLlib from
# loading JAX (see rllib_softqmix/__init__.py).
import rllib_softqmix  # noqa: E402
from ray.rllib.algorithms.algorithm import Algorithm  # noqa: E402
from rllib_softqmix import QMIXConfig, TeamPolicy  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60_000, help="env steps per trial")
    parser.add_argument("--storage", default=os.path.join(tempfile.gettempdir(), "rllib_softqmix"))
    args = parser.parse_args()

    config = (QMIXConfig()
              .environment("mpe_spread", env_config={"difficulty": "simple"})
              .training(td_lambda=tune.grid_search([0.0, 0.6]), lr=5e-4, standardize_rewards=True,
                        train_batch_size_episodes=32, episodes_per_train_step=4,
                        gradient_steps_per_train_step=2, epsilon_anneal_time=args.steps // 3)
              .env_runners(num_envs_per_env_runner=4)
              .reporting(min_sample_timesteps_per_iteration=min(5000, args.steps))
              .debugging(seed=0))
    results = tune.Tuner("QMIX", param_space=config, run_config=tune.RunConfig(
        name="td_lambda_search", storage_path=args.storage,
        stop={"num_env_steps_sampled_lifetime": args.steps},
        checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=True))).fit()
    best = results.get_best_result("env_runners/episode_return_mean", mode="max")
    print(f"best td_lambda={best.config['td_lambda']}, "
          f"return={best.metrics['env_runners']['episode_return_mean']:.1f}")

    algo = Algorithm.from_checkpoint(best.checkpoint.path)  # resumes training where it stopped
    print(f"restored at iteration {algo.iteration}; one more: {algo.train()['training_iteration']}")
    algo.stop()

    policy = TeamPolicy.from_checkpoint(best.checkpoint.path)  # agent network only, no Ray
    env = rllib_softqmix.make_team_env("mpe_spread", {"difficulty": "simple"})
    returns = []
    for episode in range(5):
        obs, _ = env.reset(seed=episode)
        policy.reset()
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step({"team": policy.act(obs["team"])})
            total += reward["team"]
            done = terminated["team"] or truncated["team"]
        returns.append(total)
    print(f"TeamPolicy greedy return over 5 episodes: {np.mean(returns):.1f}")


if __name__ == "__main__":
    main()
