"""QMIX vs QMIX-GRE vs QMIX-simple: credit entropy and return (GRE paper Tables 2/3).

Runs each on Lumberjacks, TrafficJunction10 and MPE Spread with the GRE release's base
learner (classic PyMARL QMIX: one-step double Q, RMSprop 5e-4, batch 32, one env,
epsilon over 50k steps, 25-step episodes whose end is terminal as in GRE's wrapper, ma-gym's
Lumberjacks border rule). Writes per-run JSON, a summary with the table of normalised
credit-entropy percentiles (5/25/50/75/95 over all trained steps of the run, pooled over
seeds: the form of the paper's Tables 2/3) and PNGs of return and entropy curves.

    python bench/gre_entropy.py                      # ~1 hour on 2 cores
    python bench/gre_entropy.py --steps 20000 --seeds 1
"""

import argparse
import json
from pathlib import Path

import numpy as np
from curves import Job, aggregate, plot, run_all

BASE = dict(td_lambda=0.0, td_loss_scale=1.0, optimizer_type="rmsprop", lr=5e-4,
            train_batch_size_episodes=32, replay_buffer_capacity=5000, episodes_per_train_step=1,
            num_envs_per_env_runner=1, epsilon_anneal_time=50_000,
            target_update_interval_episodes=200, bootstrap_truncated_episodes=False)
ENVS = {"lumberjacks": {"max_episode_steps": 25, "reachable_edges": False},
        "traffic_junction": {"max_episode_steps": 25},
        "mpe_spread": {}}
ALGORITHMS = {"QMIX": {"gre_lambda": 0.0}, "QMIX-GRE": {"gre_lambda": 1e-3},
              "QMIX-simple": {"gre_lambda": 0.0, "mixer": "qmix_simple"}}
PERCENTILES = ("p05", "p25", "p50", "p75", "p95")
PAPER = {  # QMIX's normalised entropy percentiles in the paper (Tables 2/3)
    "lumberjacks": [0.972, 0.992, 0.997, 0.999, 1.000],
    "traffic_junction": [0.931, 0.961, 0.975, 0.985, 0.993],
    "spec_measured_epymarl_mpe_spread": [0.940, 0.973, 0.986, 0.995, 0.999],
}
RUN_PERCENTILES = [f"learners/team/credit_entropy_run_{p}" for p in PERCENTILES]


def jobs(steps, seeds, envs, eval_every):
    for env in envs:
        for label, settings in ALGORITHMS.items():
            for seed in range(seeds):
                yield Job(name=f"{env}_{label}_s{seed}", group=f"{label}/{env}", algorithm="QMIXGRE",
                          env=env, env_config=ENVS[env], settings={**BASE, **settings}, seed=seed,
                          total_steps=steps, eval_every=eval_every, eval_episodes=32,
                          metrics=["learners/team/credit_entropy_mean", *RUN_PERCENTILES])


def entropy_table(records):
    """Per group: the run-wide percentiles at the end of each seed's run, averaged."""
    table = {}
    for record in records:
        finals = [record["curve"][key][-1] for key in RUN_PERCENTILES]
        table.setdefault(record["job"]["group"], []).append(finals)
    return {group: np.round(np.nanmean(np.array(rows, dtype=float), 0), 4).tolist()
            for group, rows in table.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--envs", nargs="+", default=list(ENVS))
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--out", default="bench/results/gre_entropy")
    args = parser.parse_args()
    out = Path(args.out)
    records = run_all(list(jobs(args.steps, args.seeds, args.envs, args.eval_every)), out)
    returns = aggregate(records, "greedy_return")
    entropy = aggregate(records, "learners/team/credit_entropy_mean")
    table = entropy_table(records)
    report = {"benchmark": "gre_entropy", "settings": BASE, "steps": args.steps, "seeds": args.seeds,
              "entropy_percentiles_columns": list(PERCENTILES), "entropy_percentiles": table,
              "paper_qmix_entropy_percentiles": PAPER, "greedy_return": returns,
              "credit_entropy_mean": entropy}
    (out / "summary.json").write_text(json.dumps(report, indent=2))
    panel = lambda group: group.split("/")[1]  # noqa: E731
    plot(returns, out / "returns.png", "Greedy return, mean +- std over seeds", panel)
    plot(entropy, out / "credit_entropy.png", "Normalised credit entropy per iteration", panel,
         ylabel="H(dQ_tot/dQ_i) / log N")
    print(f"{'group':28s} {'  '.join(PERCENTILES)}   final greedy return")
    for group in sorted(table):
        print(f"{group:28s} {'  '.join(f'{v:.3f}' for v in table[group])}   "
              f"{returns[group]['final_mean']:.2f} +- {returns[group]['final_std']:.2f}")


if __name__ == "__main__":
    main()
