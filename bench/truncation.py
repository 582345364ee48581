"""Bootstrap at truncation, or not: the default's evidence (README, "Time limits").

Two envs, both settings of ``bootstrap_truncated_episodes``, several seeds each:
- MPE Spread with the main job's settings (tune_configs/qmix_mpe_spread.yaml): 25-step
  episodes ended by the env's time limit, no time in the observation;
- ``TimedTargetEnv`` (tests/outside_envs.py) with every QMIX default: a 3-step horizon
  that the agents see (t / horizon in the observation), max return 6.
Greedy return (32 episodes) and Q_tot after each evaluation interval; the divergence
check is off so that a diverging run is measured rather than stopped. Writes
``bench/results/truncation/truncation.json`` (summary) and ``runs/*.json``.

    python bench/truncation.py                 # ~15 minutes on 2 cores
    python bench/truncation.py --seeds 1 --spread-steps 20000   # a smoke run
"""

import argparse
import json
import sys
from pathlib import Path

import yaml
from curves import Job, aggregate, run_all

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import ray  # noqa: E402
from outside_envs import TimedTargetEnv  # noqa: E402
from ray.tune.registry import register_env  # noqa: E402

TIMED_TARGET = "timed_target"

METRICS = ["learners/team/q_tot_mean", "learners/team/q_tot_abs_max"]


def main_job_settings():
    spec = yaml.safe_load((ROOT / "tune_configs" / "qmix_mpe_spread.yaml").read_text())
    settings = dict(spec["config"])
    for key in ("seed", "evaluation_interval", "evaluation_duration",
                "min_sample_timesteps_per_iteration"):
        settings.pop(key, None)
    return spec["env"], spec["env_config"], settings


def jobs(seeds: int, spread_steps: int, timed_steps: int):
    env, env_config, settings = main_job_settings()
    for bootstrap in (False, True):
        label = "bootstrap" if bootstrap else "terminal"
        for seed in range(seeds):
            yield Job(name=f"spread_{label}_s{seed}", group=f"spread/{label}", algorithm="QMIX",
                      env=env, env_config=env_config,
                      settings={**settings, "bootstrap_truncated_episodes": bootstrap,
                                "divergence_check": "off"},
                      seed=seed, total_steps=spread_steps, eval_every=10_000, eval_episodes=32,
                      metrics=METRICS)
            yield Job(name=f"timed_{label}_s{seed}", group=f"timed_target/{label}",
                      algorithm="QMIX", env=TIMED_TARGET, env_config={},
                      settings={"bootstrap_truncated_episodes": bootstrap,
                                "divergence_check": "off"},
                      seed=seed, total_steps=timed_steps, eval_every=10_000, eval_episodes=32,
                      metrics=METRICS)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--spread-steps", type=int, default=60_000)
    parser.add_argument("--timed-steps", type=int, default=60_000)
    parser.add_argument("--out", default="bench/results/truncation")
    args = parser.parse_args()
    out = Path(args.out)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT / "tests")}})
    register_env(TIMED_TARGET, lambda env_config: TimedTargetEnv(**env_config))
    records = run_all(list(jobs(args.seeds, args.spread_steps, args.timed_steps)), out)
    summary = {"greedy_return": aggregate(records),
               **{metric.split("/")[-1]: aggregate(records, metric) for metric in METRICS}}
    (out / "truncation.json").write_text(json.dumps(summary, indent=1))
    for group, data in summary["greedy_return"].items():
        q = summary["q_tot_abs_max"][group]
        print(f"{group:24s} greedy {data['final_mean']:8.2f} +- {data['final_std']:6.2f} "
              f"{data['final_values']}   max|Q_tot| {q['final_values']}")


if __name__ == "__main__":
    main()
