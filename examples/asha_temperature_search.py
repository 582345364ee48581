"""Soft-QMIX temperature (alpha) search on MPE Spread (hard) with Tune's ASHA scheduler.

Alpha is drawn log-uniformly from [0.003, 0.3]; ASHA stops the trials whose greedy
(evaluation) return trails the others' at 1/4 and 1/2 of the step budget, so most of the
budget goes to the promising temperatures. The greedy return is the fair measure here: the
training return falls with alpha because Soft-QMIX samples its actions at temperature alpha.

    python examples/asha_temperature_search.py                            # ~5 minutes on 2 cores
    python examples/asha_temperature_search.py --steps 400 --batch 4      # a smoke run
"""

import argparse
import os
import tempfile

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler  # noqa: E402
from ray.tune.search.basic_variant import BasicVariantGenerator  # noqa: E402

import rllib_softqmix  # noqa: E402,F401  (registers "SoftQMIX" and the team envs)
from rllib_softqmix import SoftQMIXConfig  # noqa: E402

GREEDY_RETURN = "evaluation/env_runners/episode_return_mean"
ENV_STEPS = "num_env_steps_sampled_lifetime"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=24_000, help="env steps of a trial ASHA keeps")
    parser.add_argument("--samples", type=int, default=6, help="temperatures to try")
    parser.add_argument("--batch", type=int, default=32,
                        help="episodes per gradient step (training starts once the replay "
                             "buffer holds that many; a smoke run needs it small)")
    parser.add_argument("--storage", default=os.path.join(tempfile.gettempdir(), "rllib_softqmix"))
    args = parser.parse_args()

    config = (SoftQMIXConfig()
              .environment("mpe_spread", env_config={"difficulty": "hard"})
              .training(temperature=tune.loguniform(0.003, 0.3), lr=5e-4,
                        standardize_rewards=True, train_batch_size_episodes=args.batch)
              .evaluation(evaluation_interval=1, evaluation_duration=16)
              .reporting(min_sample_timesteps_per_iteration=args.steps // 4)
              .debugging(seed=0))
    # Rungs at steps/4 and steps/2 (iterations 1 and 2): a trial goes on only if its greedy
    # return is in the top half of those that reached the rung.
    # ASHA also ends every trial at max_t, so no stop condition is needed.
    scheduler = ASHAScheduler(time_attr=ENV_STEPS, max_t=args.steps,
                              grace_period=args.steps // 4, reduction_factor=2)
    results = tune.Tuner("SoftQMIX", param_space=config, tune_config=tune.TuneConfig(
        metric=GREEDY_RETURN, mode="max", scheduler=scheduler, num_samples=args.samples,
        search_alg=BasicVariantGenerator(random_state=0)),  # the same temperatures every run
        run_config=tune.RunConfig(name="softqmix_asha_temperature",
                                  storage_path=args.storage)).fit()

    print("\ntemperature  env steps  greedy return")
    for result in sorted(results, key=lambda result: result.config["temperature"]):
        print(f"{result.config['temperature']:11.4f}  {result.metrics[ENV_STEPS]:9.0f}  "
              f"{result.metrics['evaluation']['env_runners']['episode_return_mean']:13.1f}")
    stopped = sum(result.metrics[ENV_STEPS] < args.steps for result in results)
    print(f"ASHA stopped {stopped} of {len(results)} trials before {args.steps} env steps")
    best = results.get_best_result()
    print(f"best temperature={best.config['temperature']:.4f}, greedy return="
          f"{best.metrics['evaluation']['env_runners']['episode_return_mean']:.1f} after "
          f"{best.metrics[ENV_STEPS]:.0f} env steps")


if __name__ == "__main__":
    main()
