"""MAVEN vs QMIX on the m-step matrix game (MAVEN's Figure 3).

MAVEN with the paper run's settings (noise_dim 16, learned z-policy with 100 REINFORCE
steps per episode, GRU discriminator, mi_loss 1, epsilon 1 -> 0.01 over 100 steps) and two
QMIX baselines with MAVEN's base learner: epsilon annealed over 100 steps as in MAVEN's
run, and over 50k steps (QMIX's usual schedule). m in {4, 10}; success = greedy return
m + 3. Reports success rates, the median and quartiles of the greedy return over time
(JSON, and a PNG like the paper's Figure 3) and env steps/s (the authors' code ran the
game at about 26 env steps/s here).

    python bench/maven_m_step.py                      # as many seeds as --seeds
    python bench/maven_m_step.py --steps 20000 --seeds 2 --ms 4
    python bench/maven_m_step.py --speed              # env steps/s alone: one process, no tests
    python bench/maven_m_step.py --summary-only       # summary.json + curves.png of every stored run
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from curves import Job, run_all

COMMON = dict(replay_buffer_capacity=1000, train_batch_size_episodes=32, episodes_per_train_step=1,
              num_envs_per_env_runner=1, lr=5e-4, optimizer_type="rmsprop", td_lambda=0.0,
              td_loss_scale=1.0, hypernet_layers=1, epsilon_finish=0.01)
AUTHORS_ENV_STEPS_PER_S = 26  # the authors' MAVEN code on the m-step game, this machine
VARIANTS = {
    "MAVEN": ("MAVEN", {"noise_dim": 16, "z_policy": "learned", "bandit_iters": 100,
                        "entropy_scaling": 0.001, "mi_loss": 1.0, "rnn_discrim": True,
                        "discrim_size": 32, "discrim_layers": 2, "epsilon_anneal_time": 100}),
    "QMIX eps 100": ("QMIX", {"epsilon_anneal_time": 100}),
    "QMIX eps 50k": ("QMIX", {"epsilon_anneal_time": 50_000}),
}


def jobs(steps, seeds, ms, eval_every, variants):
    """Seed-major, so that a run stopped early has every variant for its first seeds."""
    for seed in range(seeds):
        for m in ms:
            for label in variants:
                algorithm, settings = VARIANTS[label]
                yield Job(name=f"m{m}_{label.replace(' ', '_')}_s{seed}", group=f"{label}/m={m}",
                          algorithm=algorithm, env="m_step_matrix", env_config={"m": m},
                          settings={**COMMON, **settings}, seed=seed, total_steps=steps,
                          eval_every=eval_every, eval_episodes=64,
                          metrics=["z_policy_entropy"] if algorithm == "MAVEN" else [])


def measure_speed(m: int, label: str, steps: int, repeats: int) -> dict:
    """Training env steps/s of one variant in this process (no test episodes), after a
    warm-up iteration that fills the buffer past one batch; ``repeats`` separate runs."""
    import torch

    import rllib_softqmix

    torch.set_num_threads(1)
    algorithm, settings = VARIANTS[label]
    rates = []
    for seed in range(repeats):
        config = rllib_softqmix.ALGORITHMS[algorithm].get_default_config().environment(
            "m_step_matrix", env_config={"m": m})
        config.update_from_dict({"min_sample_timesteps_per_iteration": 1000, **COMMON, **settings})
        algo = config.debugging(seed=seed).build_algo()
        algo.train()
        start, steps_before = time.perf_counter(), algo._env_steps
        while algo._env_steps - steps_before < steps:
            algo.train()
        rates.append((algo._env_steps - steps_before) / (time.perf_counter() - start))
        algo.stop()
    return {"m": m, "variant": label, "env_steps_per_s": [round(rate, 1) for rate in rates],
            "mean": round(float(np.mean(rates)), 1),
            "ratio_to_authors_code": round(float(np.mean(rates)) / AUTHORS_ENV_STEPS_PER_S, 2)}


def on_grid(record, key: str, grid: np.ndarray) -> np.ndarray:
    """``key`` of one run at each grid step: its latest evaluation at or before that step
    (runs are evaluated once per training iteration, whose length varies by an episode)."""
    steps = np.asarray(record["curve"]["env_steps"])
    values = np.asarray(record["curve"][key], dtype=float)
    return values[np.searchsorted(steps, grid, side="right") - 1]


def first_success(record, optimum: float):
    """The env steps of the first evaluation at the optimum, or None."""
    for steps, value in zip(record["curve"]["env_steps"], record["curve"]["greedy_return"]):
        if np.isclose(value, optimum):
            return steps
    return None


def summarize(records):
    groups = {}
    for record in records:
        groups.setdefault(record["job"]["group"], []).append(record)
    summary = {}
    for group, members in sorted(groups.items()):
        members.sort(key=lambda r: r["job"]["seed"])
        m = members[0]["job"]["env_config"]["m"]
        grid = np.arange(0, min(r["job"]["total_steps"] for r in members) + 1, members[0]["job"]["eval_every"])
        curves = np.array([on_grid(r, "greedy_return", grid) for r in members])
        finals = np.array([r["curve"]["greedy_return"][-1] for r in members])
        summary[group] = {
            "seeds": len(members), "seed_ids": [r["job"]["seed"] for r in members], "optimum": m + 3,
            "success_rate": float(np.mean(np.isclose(finals, m + 3))),
            "reached_at_least_decoy": float(np.mean(finals >= m - 1e-6)),
            "final_returns": finals.tolist(),
            "first_success_env_steps": [first_success(r, m + 3) for r in members],
            "env_steps": grid.tolist(),
            "median": np.median(curves, 0).tolist(),
            "q25": np.quantile(curves, 0.25, 0).tolist(),
            "q75": np.quantile(curves, 0.75, 0).tolist(),
            "env_steps_per_s": float(np.mean([r["train_env_steps_per_s"] for r in members])),
        }
        if "z_policy_entropy" in members[0]["curve"]:
            summary[group]["z_policy_entropy_at_10k"] = [
                float(on_grid(r, "z_policy_entropy", np.array([10_000]))[0]) for r in members]
            summary[group]["final_z_policy_entropy"] = [r["curve"]["z_policy_entropy"][-1] for r in members]
    return summary


def plot(summary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({group.split("/")[1] for group in summary})
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for axis, panel in zip(axes[0], panels):
        for group, data in summary.items():
            if group.split("/")[1] != panel:
                continue
            line, = axis.plot(data["env_steps"], data["median"], label=f"{group} (n={data['seeds']})")
            axis.fill_between(data["env_steps"], data["q25"], data["q75"], color=line.get_color(), alpha=0.2)
        axis.set_title(f"{panel}: median and quartiles of the greedy return")
        axis.set_xlabel("env steps")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=105_000)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--ms", type=int, nargs="+", default=[10, 4])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--out", default="bench/results/maven_m_step")
    parser.add_argument("--speed", action="store_true",
                        help="only measure env steps/s of each variant alone (--speed-steps, 3 runs)")
    parser.add_argument("--speed-steps", type=int, default=3000)
    parser.add_argument("--summary-only", action="store_true",
                        help="train nothing; summarise every run stored under --out/runs (any seeds and m)")
    args = parser.parse_args()
    out = Path(args.out)
    if args.speed:
        results = [measure_speed(m, label, args.speed_steps, repeats=3)
                   for m in args.ms for label in args.variants]
        out.mkdir(parents=True, exist_ok=True)
        (out / "speed.json").write_text(json.dumps({"benchmark": "maven_m_step_speed", "common": COMMON,
                                                    "authors_code_env_steps_per_s": AUTHORS_ENV_STEPS_PER_S,
                                                    "results": results}, indent=2))
        for result in results:
            print(result)
        return
    if args.summary_only:
        records = [json.loads(path.read_text()) for path in sorted((out / "runs").glob("*.json"))]
    else:
        records = run_all(list(jobs(args.steps, args.seeds, args.ms, args.eval_every, args.variants)), out)
    summary = summarize(records)
    (out / "summary.json").write_text(json.dumps({"benchmark": "maven_m_step", "common": COMMON,
                                                  "variants": VARIANTS,
                                                  "steps": sorted({r["job"]["total_steps"] for r in records}),
                                                  "authors_code_env_steps_per_s": AUTHORS_ENV_STEPS_PER_S,
                                                  "groups": summary}, indent=2))
    plot(summary, out / "curves.png")
    for group, data in summary.items():
        print(f"{group:18s} success {data['success_rate']:.2f} (>= decoy {data['reached_at_least_decoy']:.2f}) "
              f"of {data['seeds']} seeds, finals {data['final_returns']}, {data['env_steps_per_s']:.0f} env steps/s")


if __name__ == "__main__":
    main()
