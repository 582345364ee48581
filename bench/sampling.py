"""Cost of one sampling env step on MPE Spread, split into acting and env stepping.

Runs the TeamEnvRunner of ``bench/throughput.py``'s setting (QMIX, 3 agents, one env,
exploration on) in this process, without learning, and times ``sample()`` over whole
episodes: microseconds per env step in total, in the acting forward pass
(``_compute_actions``: observations to tensors, agent network, epsilon-greedy) and in
``env.step`` (TeamEnv over mpe2); the rest is the runner's episode bookkeeping and resets.
Rounds alternate between the agents (the machine's speed drifts); the report gives medians.

    python bench/sampling.py --episodes 400 --rounds 3 --out /tmp/sampling.json
"""

import argparse
import collections
import json
import os
import platform
import statistics
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import ray  # noqa: E402
import torch  # noqa: E402

from throughput import build  # noqa: E402


def timed(obj, name: str, totals: dict) -> None:
    """Wraps ``obj.name`` to add its wall time to ``totals[name]``."""
    function = getattr(obj, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[name] += time.perf_counter() - start

    setattr(obj, name, wrapper)


def measure(runner, totals: dict, episodes: int) -> dict:
    totals.clear()
    steps_before = runner.num_env_steps_sampled_lifetime
    start = time.perf_counter()
    runner.sample(num_episodes=episodes)
    seconds = time.perf_counter() - start
    steps = runner.num_env_steps_sampled_lifetime - steps_before
    per_step = {name: value / steps * 1e6 for name, value in totals.items()}
    return {"us_per_env_step": seconds / steps * 1e6,
            "us_acting": per_step["_compute_actions"], "us_env_step": per_step["step"],
            "us_other": seconds / steps * 1e6 - per_step["_compute_actions"] - per_step["step"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=400, help="timed episodes per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--agents", nargs="+", default=["gru", "mlp"], choices=["gru", "mlp"])
    parser.add_argument("--out", default="bench/results/throughput/sampling.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    runners = {}
    for agent in args.agents:
        algo = build(agent, seed=0, steps_per_iteration=500)
        runner, totals = algo.env_runner, collections.defaultdict(float)
        timed(runner, "_compute_actions", totals)
        timed(runner.envs[0], "step", totals)
        runner.sample(num_episodes=20)  # warm-up
        runners[agent] = (algo, runner, totals)
    rounds = collections.defaultdict(list)
    for _ in range(args.rounds):
        for agent, (_, runner, totals) in runners.items():
            rounds[agent].append(measure(runner, totals, args.episodes))
    rows = []
    for agent, measured in rounds.items():
        medians = {key: round(statistics.median(m[key] for m in measured), 1) for key in measured[0]}
        rows.append({"agent_network": agent, **medians, "rounds": measured})
        print(f"{agent}: {medians}")
    for algo, _, _ in runners.values():
        algo.stop()
    report = {"benchmark": "sampling cost per env step, QMIX on mpe_spread (3 agents, one env)",
              "episodes_per_round": args.episodes, "rounds": args.rounds,
              "date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.platform(),
              "cpus": os.cpu_count(), "results": rows}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
