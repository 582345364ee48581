"""EPyMARL's QMIX on PettingZoo Spread: the baseline of bench/throughput.py, measured here.

Runs an unmodified EPyMARL checkout (https://github.com/uoe-agents/epymarl) at its default QMIX setting on ``pz-mpe-simple-spread-v3``
with 25-step episodes, one env, batch 32, one gradient step per episode, hidden 64, no
test episodes, torch single-threaded, and reports env steps/s between two env-step marks
(the default: from 2,000 to 12,000, after the buffer holds a batch) and the mean time of
its gradient step (``QLearner.train`` on the sampled 32 episodes: forward, targets, mixers,
loss, backward, clip, RMSprop/Adam) between the same marks. GRU agent: ``use_rnn=True``;
MLP agent: EPyMARL's default ``use_rnn=False``.

Run it with a Python that has EPyMARL's requirements (sacred, PyYAML, torch, gymnasium,
pettingzoo) and mpe2 (PettingZoo 1.25+ moved MPE there; this script serves it as
``pettingzoo.mpe``, and an empty ``smaclite`` module where smaclite, which EPyMARL imports
unconditionally, is not installed).

    /path/to/epymarl-venv/bin/python bench/epymarl_baseline.py --epymarl /path/to/epymarl \\
        --rounds 3 --out bench/results/throughput/epymarl.json
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SETTING = ["--config=qmix", "--env-config=gymma", "with", "env_args.time_limit=25",
           "env_args.key=pz-mpe-simple-spread-v3", "use_cuda=False", "test_nepisode=0",
           "test_interval=100000000", "runner_log_interval=1000", "learner_log_interval=1000",
           "log_interval=1000", "save_model=False"]
MARK = "BENCH_MARK"

# Runs inside the child: serves mpe2 as pettingzoo.mpe, registers the env key, pins torch
# to one thread and prints (t_env, wall time) whenever EPyMARL logs its recent stats.
CHILD = f"""
import importlib.util, runpy, sys, time, types
import gymnasium as gym
import mpe2, mpe2.simple_spread_v3
import torch
sys.modules["pettingzoo.mpe"] = mpe2
sys.modules["pettingzoo.mpe.simple_spread_v3"] = mpe2.simple_spread_v3
if importlib.util.find_spec("smaclite") is None:
    sys.modules["smaclite"] = types.ModuleType("smaclite")
gym.register("pz-mpe-simple-spread-v3", entry_point="envs.pz_wrapper:PettingZooWrapper",
             kwargs={{"lib_name": "mpe", "env_name": "simple_spread_v3"}})
torch.set_num_threads(1)
sys.path.insert(0, "src")
import learners.q_learner
import utils.logging as epymarl_logging
train_time = [0, 0.0]  # gradient steps, seconds in QLearner.train
train = learners.q_learner.QLearner.train
def timed_train(*args, **kwargs):
    start = time.perf_counter()
    train(*args, **kwargs)
    train_time[0] += 1
    train_time[1] += time.perf_counter() - start
learners.q_learner.QLearner.train = timed_train
print_recent_stats = epymarl_logging.Logger.print_recent_stats
def marked(self):
    print("{MARK}", self.stats["episode"][-1][0], time.perf_counter(), *train_time, flush=True)
    print_recent_stats(self)
epymarl_logging.Logger.print_recent_stats = marked
sys.argv = ["src/main.py"] + sys.argv[1:]
runpy.run_path("src/main.py", run_name="__main__")
"""


def run_once(epymarl: Path, agent: str, start: int, end: int) -> dict:
    """One EPyMARL run to ``end`` env steps; env steps/s between the first logged marks
    at or after ``start`` and ``end``."""
    args = [*SETTING, f"use_rnn={agent == 'gru'}", f"t_max={end + 25}"]
    begin = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, *args], cwd=epymarl, capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    marks = [(int(t), float(wall), int(steps), float(train_s))
             for line in done.stdout.splitlines() if line.startswith(MARK)
             for _, t, wall, steps, train_s in [line.split()]]
    if done.returncode != 0 or not marks:
        raise RuntimeError(f"EPyMARL failed (rc {done.returncode}):\n{done.stdout[-3000:]}\n"
                           f"{done.stderr[-3000:]}")
    first = next(mark for mark in marks if mark[0] >= start)
    last = next(mark for mark in marks if mark[0] >= end)
    return {"agent_network": agent, "env_steps": last[0] - first[0],
            "seconds": round(last[1] - first[1], 2),
            "env_steps_per_s": round((last[0] - first[0]) / (last[1] - first[1]), 1),
            "ms_per_gradient_step": round((last[3] - first[3]) / (last[2] - first[2]) * 1000.0, 2),
            "process_seconds": round(time.perf_counter() - begin, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epymarl", required=True, type=Path, help="an EPyMARL checkout")
    parser.add_argument("--agents", nargs="+", default=["gru", "mlp"], choices=["gru", "mlp"])
    parser.add_argument("--start", type=int, default=2000, help="first env-step mark")
    parser.add_argument("--steps", type=int, default=10000, help="measured env steps")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="bench/results/throughput/epymarl.json")
    args = parser.parse_args()
    runs = [dict(run_once(args.epymarl, agent, args.start, args.start + args.steps), round=repeat)
            for repeat in range(args.rounds) for agent in args.agents]
    medians = {agent: statistics.median(run["env_steps_per_s"] for run in runs
                                        if run["agent_network"] == agent)
               for agent in args.agents}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=args.epymarl, capture_output=True,
                            text=True).stdout.strip() or None
    report = {"benchmark": "epymarl_qmix_mpe_spread_throughput", "epymarl_commit": commit,
              "setting": "EPyMARL qmix.yaml defaults, gymma pz-mpe-simple-spread-v3, time_limit 25, "
                         "1 env, batch 32, 1 gradient step per episode, hidden 64, no test "
                         "episodes, torch 1 thread",
              "median_env_steps_per_s": medians, "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
