"""Cost per gradient step across algorithms, and cost per env step as the team grows.

Two tables (issue #7, targets 2 and 4), at EPyMARL's default QMIX setting (GRU 64, batch 32
episodes, one gradient step per episode, one env, torch single-threaded):
- algorithms: ms per learner update (LearnerGroup.update, RLlib's full path) of QMIX,
  Soft-QMIX, QMIX-GRE (regulariser on) and MAVEN on 32 Spread episodes of 3 agents, and the
  ratio to QMIX's (target <= 1.5);
- team size: QMIX env steps/s end to end and ms per learner update on Spread with 3, 6 and 12
  agents, and on SMAX (SMACv2-like) with 5 and 10 units when JaxMARL is installed; the growth
  relative to the smallest team, next to the growth in agents (target: no worse than linear).

The machine's speed drifts by 30-40% over hours, so ``--repeats`` rounds run every row in
turn; each row reports the median over the rounds of its values and of its ratios, each ratio
taken within one round, and keeps every round's values (``*_rounds``).

    python bench/scaling.py --repeats 3   # ~4 minutes a round; writes bench/results/throughput/scaling.json
"""

import argparse
import importlib.util
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import torch  # noqa: E402
from throughput import build, process_tree_rss_mb, time_learner_updates  # noqa: E402

import rllib_softqmix as rq  # noqa: E402

ALGORITHMS = {"QMIX": (rq.QMIXConfig, {}), "SoftQMIX": (rq.SoftQMIXConfig, {"temperature": 0.03}),
              "QMIXGRE": (rq.QMIXGREConfig, {"gre_lambda": 1e-3}),
              "MAVEN": (rq.MAVENConfig, {"noise_dim": 16, "z_policy": "learned"})}
TEAMS = [("mpe_spread", {"n_agents": 3}, 3), ("mpe_spread", {"n_agents": 6}, 6),
         ("mpe_spread", {"n_agents": 12}, 12)]
SMAX_TEAMS = [("smax_5_units", {}, 5), ("smax_10_units", {}, 10)]


def fill_buffer(algo, episodes: int) -> None:
    while len(algo.replay_buffer) < episodes:
        algo.train()


def algorithm_row(name: str, updates: int, seed: int) -> dict:
    config_class, overrides = ALGORITHMS[name]
    algo = build("gru", seed, steps_per_iteration=250, config_class=config_class, **overrides)
    fill_buffer(algo, 40)
    row = {"algorithm": name, "ms_per_learner_update": round(time_learner_updates(algo, updates), 2)}
    algo.stop()
    return row


def team_row(env: str, env_config: dict, agents: int, steps: int, updates: int, seed: int) -> dict:
    algo = build("gru", seed, steps_per_iteration=500, env=env, env_config=env_config)
    fill_buffer(algo, 40)
    env_steps_before, episodes_before = algo._env_steps, algo._episodes
    start = time.perf_counter()
    while algo._env_steps - env_steps_before < steps:
        algo.train()
    elapsed = time.perf_counter() - start
    row = {"env": env, "env_config": env_config, "agents": agents,
           "episode_length": round((algo._env_steps - env_steps_before)
                                   / max(1, algo._episodes - episodes_before), 1),
           "env_steps_per_s": round((algo._env_steps - env_steps_before) / elapsed, 1),
           "ms_per_learner_update": round(time_learner_updates(algo, updates), 2),
           "process_tree_rss_mb": round(process_tree_rss_mb(), 1)}
    algo.stop()
    return row


def with_growth(rows: list) -> list:
    """Adds each row's cost growth relative to the first (smallest) team of its env family."""
    base = rows[0]
    for row in rows:
        row["agents_ratio"] = round(row["agents"] / base["agents"], 2)
        row["ms_per_env_step_ratio"] = round(base["env_steps_per_s"] / row["env_steps_per_s"], 2)
        row["ms_per_learner_update_ratio"] = round(
            row["ms_per_learner_update"] / base["ms_per_learner_update"], 2)
    return rows


def with_ratio_to_qmix(rows: list) -> list:
    for row in rows:
        row["ratio_to_qmix"] = round(row["ms_per_learner_update"] / rows[0]["ms_per_learner_update"], 2)
    return rows


def median_over_rounds(rounds: list) -> list:
    """Rows of the same tables from several rounds -> one row each: the median of every number
    measured or derived, plus its values per round (the configuration fields as they were).

    The process tree's RSS is the first round's: SMAX imports JAX into this process at the end
    of the first round, so the Spread rows of later rounds carry it too (~0.6 GB)."""
    rows = []
    for per_round in zip(*rounds):
        row = dict(per_round[0])
        for key, value in per_round[0].items():
            if isinstance(value, float) and key != "agents_ratio":
                values = [other[key] for other in per_round]
                if key != "process_tree_rss_mb":
                    row[key] = round(statistics.median(values), 2)
                row[f"{key}_rounds"] = values
        rows.append(row)
    return rows


def one_round(args, smax: bool) -> dict:
    tables = {"algorithms": with_ratio_to_qmix([algorithm_row(name, args.updates, args.seed)
                                                for name in ALGORITHMS]),
              "mpe_spread": with_growth([team_row(*team, args.steps, args.updates, args.seed)
                                         for team in TEAMS])}
    if smax:
        tables["smax"] = with_growth([team_row(*team, args.steps, args.updates, args.seed)
                                      for team in SMAX_TEAMS])
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=50, help="timed learner updates per row")
    parser.add_argument("--steps", type=int, default=5000, help="timed env steps per team size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds over all rows; each row reports its medians")
    parser.add_argument("--out", default="bench/results/throughput/scaling.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    smax = importlib.util.find_spec("jaxmarl") is not None
    rounds = [one_round(args, smax) for _ in range(args.repeats)]
    tables = {name: median_over_rounds([tables[name] for tables in rounds]) for name in rounds[0]}
    teams = {"mpe_spread": tables["mpe_spread"],
             "smax": tables.get("smax", "skipped: JaxMARL not installed (pip install -e .[smax])")}
    report = {"benchmark": "scaling", "machine": {"cpus": os.cpu_count(),
                                                  "platform": platform.platform(),
                                                  "torch": torch.__version__},
              "setting": "GRU 64, batch 32 episodes, 1 gradient step per episode, 1 env, "
                         "torch 1 thread", "rounds": args.repeats,
              "algorithms": tables["algorithms"], "teams": teams}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
