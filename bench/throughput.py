"""Training throughput of QMIX on MPE Spread at EPyMARL's default setting.

Setting (issue #2 / #7): 3 agents, 25-step episodes, one env, hidden 64, a batch of
32 episodes, one gradient step per collected episode, torch single-threaded, no test
episodes. ``--envs-per-runner 1 2`` adds rows with several envs per EnvRunner (acting
batched over them) at the same update ratio: n episodes per training step, n gradient
steps. Reports, for the GRU and the MLP agent:
- end-to-end env steps/s after warm-up (sampling + buffer + gradient steps),
- ms per gradient step, as the learner update (LearnerGroup.update) and as the bare
  loss + backward + optimizer step on the same batch,
- memory: the peak RSS of this process, and the peak of the whole process tree (this
  process plus Ray's daemons and workers), sampled while training.
and the ratio to EPyMARL's QMIX: to the numbers stated in the issue (230 env steps/s with
a GRU agent, 350 with an MLP agent, measured earlier on this machine) and, with
``--epymarl``, to EPyMARL run by ``bench/epymarl_baseline.py`` in every round, before
this library's rows (the machine's speed drifts by ~30% over an hour): env steps/s, and
EPyMARL's gradient step (its ``QLearner.train``, timed inside its run) over this row's
learner update.

Two modes, measured in the same run: "sequential" (one process: sample, then learn) and
"sample_while_learning" (one remote EnvRunner collects the next episode on the other
core while this process takes the gradient step). With ``--return-steps`` it also trains
every row to that many env steps for ``--return-seeds`` seeds and reports the greedy
return (32 episodes) at the end, to show the overlap and the extra envs keep the sample
efficiency.

    python bench/throughput.py --steps 10000 --repeats 3 \
        --epymarl /path/to/epymarl --epymarl-python /path/to/epymarl-venv/bin/python
    python bench/throughput.py --return-steps 100000 --return-seeds 3 --agents gru
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402
import rllib_softqmix as rq  # noqa: E402  (before ray.rllib, which would load JAX)
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch  # noqa: E402

EPYMARL_ENV_STEPS_PER_S = {"gru": 230.0, "mlp": 350.0}
MODES = ("sequential", "sample_while_learning")
ROW_KEYS = ("agent_network", "mode", "envs_per_runner")


def build(agent_network: str, seed: int, steps_per_iteration: int, config_class=rq.QMIXConfig,
          env: str = "mpe_spread", env_config: dict = None, envs_per_runner: int = 1,
          **overrides):
    """EPyMARL's default QMIX setting (or ``overrides`` of it) for ``config_class`` on ``env``;
    with ``envs_per_runner`` n, n envs per runner, n episodes and n gradient steps per
    training step (the same update ratio)."""
    settings = dict(agent_network=agent_network, rnn_hidden_dim=64, train_batch_size_episodes=32,
                    replay_buffer_capacity=5000, episodes_per_train_step=envs_per_runner,
                    gradient_steps_per_train_step=envs_per_runner,
                    target_update_interval_episodes=200, epsilon_anneal_time=50000,
                    bootstrap_truncated_episodes=True)  # EPyMARL bootstraps at its time limit
    settings.update(overrides)
    remote_runners = 1 if settings.get("sample_while_learning") else 0
    config = (config_class().environment(env, env_config=env_config or {}).training(**settings)
              .env_runners(num_envs_per_env_runner=envs_per_runner,
                           num_env_runners=remote_runners)
              .reporting(min_sample_timesteps_per_iteration=steps_per_iteration)
              .debugging(seed=seed))
    return config.build_algo()


def time_bare_gradient_steps(algo, repeats: int) -> float:
    """ms per loss + backward + clip + Adam step on a fixed 32-episode batch."""
    learner = algo.learner_group._learner
    module = learner.module["team"].unwrapped()
    optimizer = learner.get_optimizer("team")
    config = algo.config
    batch = algo.replay_buffer.sample(32, np.random.default_rng(0))
    tensors = {key: torch.from_numpy(value) for key, value in batch.items()}
    params = module.online_parameters()

    def step():
        fwd_out = module.forward_train(tensors)
        terms, _ = learner.loss_terms(module, config, tensors, dict(fwd_out))
        optimizer.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()

    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats * 1000.0


def time_learner_updates(algo, repeats: int) -> float:
    """ms per LearnerGroup.update (RLlib's full update path) on buffer batches."""
    rng = np.random.default_rng(1)
    start = time.perf_counter()
    for _ in range(repeats):
        batch = algo.replay_buffer.sample(32, rng)
        algo.learner_group.update(
            batch=MultiAgentBatch({"team": SampleBatch(batch)}, env_steps=int(batch["mask"].sum())),
            timesteps={"num_env_steps_sampled_lifetime": algo._env_steps,
                       "num_episodes_lifetime": algo._episodes})
    return (time.perf_counter() - start) / repeats * 1000.0


def own_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def process_tree_rss_mb() -> float:
    """Current RSS of this process and all its descendants (Ray's daemons included)."""
    process = psutil.Process()
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def measure(agent_network: str, mode: str, envs_per_runner: int, steps: int, warmup_steps: int,
            seed: int) -> dict:
    """Runs Algorithm.train() iterations of 1000 env steps, as Tune would."""
    algo = build(agent_network, seed, steps_per_iteration=1000, envs_per_runner=envs_per_runner,
                 sample_while_learning=mode == "sample_while_learning")
    while algo._env_steps < warmup_steps:  # fills the buffer past one batch, starts training
        algo.train()
    env_steps_before, start = algo._env_steps, time.perf_counter()
    updates_before = algo._gradient_steps
    tree_peak = process_tree_rss_mb()
    while algo._env_steps - env_steps_before < steps:
        algo.train()
        tree_peak = max(tree_peak, process_tree_rss_mb())
    elapsed = time.perf_counter() - start
    env_steps = algo._env_steps - env_steps_before
    result = {
        "agent_network": agent_network,
        "mode": mode,
        "envs_per_runner": envs_per_runner,
        "env_steps": env_steps,
        "gradient_steps": algo._gradient_steps - updates_before,
        "seconds": round(elapsed, 2),
        "env_steps_per_s": round(env_steps / elapsed, 1),
        "ms_per_gradient_step_learner_update": round(time_learner_updates(algo, 50), 2),
        "ms_per_gradient_step_bare": round(time_bare_gradient_steps(algo, 50), 2),
        "epymarl_env_steps_per_s": EPYMARL_ENV_STEPS_PER_S[agent_network],
        "process_tree_peak_rss_mb": round(max(tree_peak, process_tree_rss_mb()), 1),
    }
    result["ratio_to_epymarl"] = round(result["env_steps_per_s"] / result["epymarl_env_steps_per_s"], 2)
    algo.stop()
    return result


def measure_epymarl(python: str, checkout: str, agents: list, steps: int, warmup_steps: int
                    ) -> dict:
    """EPyMARL's QMIX on Spread, one run per agent network: {agent network: its run, with
    env_steps_per_s and ms_per_gradient_step}."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "epymarl.json"
        subprocess.run([python, str(Path(__file__).with_name("epymarl_baseline.py")),
                        "--epymarl", checkout, "--agents", *agents, "--rounds", "1",
                        "--start", str(warmup_steps), "--steps", str(steps), "--out", str(out)],
                       check=True, capture_output=True)
        return {run["agent_network"]: run for run in json.loads(out.read_text())["runs"]}


def median_row(rows: list) -> dict:
    """One row of the table: medians over the rounds of one (agent, mode), and their range."""
    speeds = [row["env_steps_per_s"] for row in rows]
    median = {key: round(float(np.median([row[key] for row in rows])), 2) for key in (
        "env_steps_per_s", "ms_per_gradient_step_learner_update", "ms_per_gradient_step_bare",
        "ratio_to_sequential_same_round")}
    median["ratio_to_epymarl"] = round(median["env_steps_per_s"] / rows[0]["epymarl_env_steps_per_s"], 2)
    for key in ("epymarl_env_steps_per_s_same_round", "ratio_to_epymarl_same_round",
                "epymarl_ms_per_gradient_step_same_round",
                "gradient_step_speedup_to_epymarl_same_round"):
        if key in rows[0]:
            median[key] = round(float(np.median([row[key] for row in rows])), 2)
    return {**{key: rows[0][key] for key in ROW_KEYS}, **median,
            "env_steps_per_s_range": [min(speeds), max(speeds)],
            "process_tree_peak_rss_mb": max(row["process_tree_peak_rss_mb"] for row in rows)}


def greedy_return_after(agent_network: str, mode: str, envs_per_runner: int, steps: int,
                        seed: int) -> float:
    """Mean greedy return over 32 episodes after training ``steps`` env steps."""
    algo = build(agent_network, seed, steps_per_iteration=5000, envs_per_runner=envs_per_runner,
                 sample_while_learning=mode == "sample_while_learning")
    while algo._env_steps < steps:
        algo.train()
    runner = algo.env_runner  # the local runner, given the learner's latest weights
    runner.module["team"].load_state_dict(algo.learner_group._learner.module["team"].state_dict(),
                                          strict=False)
    returns = [episode.get_return() for episode in runner.sample(num_episodes=32, explore=False)]
    algo.stop()
    return float(np.mean(returns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20000, help="measured env steps per agent type")
    parser.add_argument("--warmup-steps", type=int, default=2000)
    parser.add_argument("--agents", nargs="+", default=["gru", "mlp"], choices=["gru", "mlp"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--envs-per-runner", nargs="+", type=int, default=[1],
                        help="rows with n envs per runner, n episodes and n gradient steps per "
                             "training step (ratio_to_sequential_same_round: to the first n's "
                             "first mode)")
    parser.add_argument("--return-steps", type=int, default=0,
                        help="also train each mode this many env steps and report the greedy return")
    parser.add_argument("--return-seeds", type=int, default=3)
    parser.add_argument("--return-first-seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds over all rows; the report gives each row's median")
    parser.add_argument("--epymarl", help="an EPyMARL checkout: measure the baseline in every "
                                           "round too (bench/epymarl_baseline.py)")
    parser.add_argument("--epymarl-python", default=sys.executable,
                        help="a Python with EPyMARL's requirements and mpe2")
    parser.add_argument("--out", default="bench/results/throughput/throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = []
    for repeat in range(args.repeats):  # rounds interleave the rows: the machine drifts
        baseline = (measure_epymarl(args.epymarl_python, args.epymarl, args.agents, args.steps,
                                    args.warmup_steps) if args.epymarl else {})
        results = [measure(agent, mode, envs, args.steps, args.warmup_steps, args.seed)
                   for agent in args.agents for envs in args.envs_per_runner
                   for mode in args.modes]
        for result in results:
            sequential = next(r for r in results if r["agent_network"] == result["agent_network"])
            result["ratio_to_sequential_same_round"] = round(
                result["env_steps_per_s"] / sequential["env_steps_per_s"], 2)
            result["round"] = repeat
            if baseline:
                epymarl = baseline[result["agent_network"]]
                result["epymarl_env_steps_per_s_same_round"] = epymarl["env_steps_per_s"]
                result["ratio_to_epymarl_same_round"] = round(
                    result["env_steps_per_s"] / epymarl["env_steps_per_s"], 2)
                result["epymarl_ms_per_gradient_step_same_round"] = epymarl["ms_per_gradient_step"]
                result["gradient_step_speedup_to_epymarl_same_round"] = round(
                    epymarl["ms_per_gradient_step"] / result["ms_per_gradient_step_learner_update"], 2)
        runs.extend(results)
    medians = [median_row([run for run in runs if tuple(run[key] for key in ROW_KEYS) == row])
               for row in dict.fromkeys(tuple(run[key] for key in ROW_KEYS) for run in runs)]
    returns = {}
    seeds = range(args.return_first_seed, args.return_first_seed + args.return_seeds)
    if args.return_steps:
        for agent in args.agents:
            for envs in args.envs_per_runner:
                for mode in args.modes:
                    finals = [greedy_return_after(agent, mode, envs, args.return_steps, seed)
                              for seed in seeds]
                    returns[f"{agent}/{mode}/{envs}_envs"] = {
                        "env_steps": args.return_steps, "seeds": list(seeds),
                        "greedy_returns": finals, "mean": round(float(np.mean(finals)), 2),
                        "std": round(float(np.std(finals)), 2)}
    report = {"benchmark": "qmix_mpe_spread_throughput", "machine": {
        "cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "setting": "3 agents, 25-step episodes, envs_per_runner envs (EPyMARL: 1), GRU/MLP 64, "
                   "batch 32 episodes, 1 gradient step per collected episode, torch 1 thread, "
                   "no test episodes",
        "rounds": args.repeats, "medians": medians, "results": runs,
        "greedy_return_at_end": returns,
        "own_peak_rss_mb": round(own_peak_rss_mb(), 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
