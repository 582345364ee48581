"""Learning curves of many (algorithm, settings, seed) runs, for the reproduction benchmarks.

Each run trains in its own Ray task (one CPU each, so a 2-core machine runs two at a
time) without Tune, evaluates greedily after every training iteration of ``eval_every``
env steps and returns its curve (the greedy episodes' metrics are dropped, so they count
neither in the training return nor in the iteration's env steps); every finished run is
written to ``<out_dir>/runs/<name>.json`` at once, so an interrupted benchmark resumes
where it stopped. ``aggregate`` and ``plot`` turn the runs
into mean and spread over seeds per group.
"""

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np  # noqa: E402
import ray  # noqa: E402


@dataclass
class Job:
    """One training run: ``group`` is the curve it belongs to (e.g. "SoftQMIX a=0.03/hard")."""
    name: str
    group: str
    algorithm: str
    env: str
    env_config: Dict[str, Any]
    settings: Dict[str, Any]
    seed: int
    total_steps: int
    eval_every: int
    eval_episodes: int
    metrics: List[str] = field(default_factory=list)  # extra result keys to record ("a/b/c")


def _lookup(result: Dict, path: str):
    for part in path.split("/"):
        if not isinstance(result, dict) or part not in result:
            return None
        result = result[part]
    return result


def train_curve(job: Job) -> Dict[str, Any]:
    """Trains one job and returns its curve (runs inside a Ray task or in-process)."""
    import torch

    import rllib_softqmix

    torch.set_num_threads(1)
    config = (rllib_softqmix.ALGORITHMS[job.algorithm].get_default_config()
              .environment(job.env, env_config=job.env_config))
    config.update_from_dict({"min_sample_timesteps_per_iteration": job.eval_every, **job.settings})
    config.debugging(seed=job.seed)
    algo = config.build_algo()
    curve = {"env_steps": [], "greedy_return": [], "training_return": [],
             **{metric: [] for metric in job.metrics}}
    start = time.perf_counter()
    train_seconds = 0.0

    def evaluate(result: Optional[Dict]):
        episodes = algo.env_runner.sample(num_episodes=job.eval_episodes, explore=False)
        algo.env_runner.get_metrics()  # drop the greedy episodes: training metrics stay training-only
        curve["env_steps"].append(algo._env_steps)
        curve["greedy_return"].append(float(np.mean([e.get_return() for e in episodes])))
        training = _lookup(result or {}, "env_runners/episode_return_mean")
        curve["training_return"].append(None if training is None else float(training))
        for metric in job.metrics:
            value = _lookup(result or {}, metric)
            curve[metric].append(None if value is None else float(value))

    evaluate(None)
    while algo._env_steps < job.total_steps:
        tick = time.perf_counter()
        result = algo.train()
        train_seconds += time.perf_counter() - tick
        evaluate(result)
    algo.stop()
    return {"job": job.__dict__, "curve": curve, "seconds": round(time.perf_counter() - start, 1),
            "train_env_steps_per_s": round(algo._env_steps / max(train_seconds, 1e-9), 1)}


def run_all(jobs: List[Job], out_dir: Path, parallel: int = 2) -> List[Dict]:
    """Runs the jobs not done yet, ``parallel`` at a time, and returns all records."""
    runs = out_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    todo = [job for job in jobs if not (runs / f"{job.name}.json").is_file()]
    if todo:
        if not ray.is_initialized():
            ray.init(num_cpus=parallel, include_dashboard=False, log_to_driver=False)
        remote = ray.remote(num_cpus=1, max_retries=0)(train_curve)
        pending = {remote.remote(job): job for job in todo}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(done[0])
            record = ray.get(done[0])
            (runs / f"{job.name}.json").write_text(json.dumps(record))
            print(f"done {job.name}: final greedy {record['curve']['greedy_return'][-1]:.2f}, "
                  f"{record['train_env_steps_per_s']} env steps/s, {record['seconds']} s", flush=True)
    return [json.loads((runs / f"{job.name}.json").read_text()) for job in jobs]


def aggregate(records: List[Dict], key: str = "greedy_return") -> Dict[str, Dict[str, Any]]:
    """Per group: env steps, mean and std over seeds of ``key`` at each evaluation (up to
    the shortest run), and the final values (last evaluation of every seed)."""
    groups: Dict[str, List[Dict]] = {}
    for record in records:
        groups.setdefault(record["job"]["group"], []).append(record)
    summary = {}
    for group, members in groups.items():
        length = min(len(m["curve"][key]) for m in members)
        values = np.array([[np.nan if v is None else v for v in m["curve"][key][:length]]
                           for m in members], dtype=float)
        finals = np.array([np.nan if m["curve"][key][-1] is None else m["curve"][key][-1] for m in members],
                          dtype=float)  # each run's last evaluation, not the shortest run's length
        summary[group] = {
            "seeds": [m["job"]["seed"] for m in members],
            "env_steps": members[0]["curve"]["env_steps"][:length],
            "mean": np.nanmean(values, 0).round(3).tolist(),
            "std": np.nanstd(values, 0).round(3).tolist(),
            "final_mean": round(float(np.nanmean(finals)), 3),
            "final_std": round(float(np.nanstd(finals)), 3),
            "final_values": finals.round(3).tolist(),
            "env_steps_per_s": round(float(np.mean([m["train_env_steps_per_s"] for m in members])), 1),
        }
    return summary


def plot(summary: Dict[str, Dict], path: Path, title: str, panels: Callable[[str], str],
         ylabel: str = "greedy return") -> None:
    """One panel per ``panels(group)`` value, one line (mean, +- std band) per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({panels(group) for group in summary})
    figure, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    for axis, panel in zip(axes[0], names):
        for group, data in sorted(summary.items()):
            if panels(group) != panel:
                continue
            steps, mean, std = (np.array(data[k], dtype=float) for k in ("env_steps", "mean", "std"))
            line, = axis.plot(steps, mean, label=f"{group} (n={len(data['seeds'])})")
            axis.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        axis.set_title(panel)
        axis.set_xlabel("env steps")
        axis.set_ylabel(ylabel)
        axis.legend(fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
