"""Command line: ``python -m rllib_softqmix {train,resume,check} FILE.yaml [key=value ...]``
and ``python -m rllib_softqmix plot RESULTS_DIR [...]``.

- ``train``  runs the experiment with Tune, shows Tune's progress, then prints each
  trial's greedy (evaluation) return, training return, env and EnvRunner restarts and
  checkpoint path. Fault tolerance is on (see ``rllib_softqmix.experiment``).
- ``resume`` continues the run of the same YAML from its last checkpoints (also one that
  was killed): counters, replay buffer, exploration schedule and networks go on.
- ``check``  only validates the file and its overrides (no Ray).
- ``plot``   prints a Markdown table of the final scores of finished or running
  experiments (mean ± std over seeds per algorithm and setting) and draws their
  learning curves into a PNG.
"""

import argparse
import os
import sys
from typing import List, Optional

from rllib_softqmix.core.validation import ConfigError
from rllib_softqmix.plotting import result_value

GREEDY_RETURN = "evaluation/env_runners/episode_return_mean"
TRAINING_RETURN = "env_runners/episode_return_mean"
ENV_RESTARTS = "env_runners/num_env_restarts_lifetime"
RUNNER_RESTARTS = "fault_tolerance/num_remote_worker_restarts"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rllib_softqmix", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for command, text in (("train", "run an experiment"), ("resume", "resume an interrupted run"),
                          ("check", "validate an experiment file")):
        sub = commands.add_parser(command, help=text)
        sub.add_argument("file", help="experiment YAML, e.g. tune_configs/qmix_mpe_spread.yaml")
        sub.add_argument("overrides", nargs="*", help="key=value, e.g. lr=0.0005 "
                         "stop.training_iteration=5 env_config.difficulty=hard")
        if command != "check":
            sub.add_argument("--address", default=None,
                             help="Ray cluster address (e.g. 'auto' after `ray start --head`)")
    plot = commands.add_parser("plot", help="learning curves and final scores of Tune results")
    plot.add_argument("results", nargs="+", help="experiment directory (e.g. results/qmix_mpe_spread) "
                      "or trial directory")
    plot.add_argument("--metric", action="append", default=[], help="result path to plot instead of "
                      "the defaults (repeatable), e.g. learners/team/td_loss")
    plot.add_argument("--out", default="learning_curves.png", help="image file (default: %(default)s)")
    plot.add_argument("--table", action="store_true", help="print only the table, draw no image")
    return parser


def summarize(results, search_keys: List[str]) -> str:
    lines = []
    for result in results:
        metrics = result.metrics or {}
        config = result.config or {}
        label = ", ".join(f"{key}={config.get(key)!r}" for key in search_keys) or "trial"
        greedy, training = result_value(metrics, GREEDY_RETURN), result_value(metrics, TRAINING_RETURN)
        lines.append(
            f"{label}: iterations={metrics.get('training_iteration')} "
            f"env_steps={metrics.get('num_env_steps_sampled_lifetime')} "
            f"greedy_return={'n/a' if greedy is None else f'{greedy:.3f}'} "
            f"training_return={'n/a' if training is None else f'{training:.3f}'} "
            f"env_restarts={int(result_value(metrics, ENV_RESTARTS) or 0)} "
            f"env_runner_restarts={int(result_value(metrics, RUNNER_RESTARTS) or 0)}"
            + (f" ERROR={result.error!r}" if result.error else ""))
        lines.append(f"  checkpoint: {result.checkpoint.path if result.checkpoint else 'none'}")
    lines.append(f"results: {results.experiment_path}")
    return "\n".join(lines)


def _plot(args: argparse.Namespace) -> int:
    from rllib_softqmix.plotting import ResultsError, report

    try:
        print(report(args.results, args.metric, out=None if args.table else args.out))
    except ResultsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    args = _parser().parse_args(argv)
    if args.command == "plot":
        return _plot(args)
    from rllib_softqmix import experiment as experiments

    try:
        experiment = experiments.load_experiment(args.file, args.overrides)
    except (ConfigError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.command == "check":
        print(f"{args.file}: OK ({experiment.algorithm} on {experiment.config.env}, "
              f"search keys: {experiment.search_keys or 'none'})")
        return 0
    try:
        results = experiments.run(experiment, address=args.address, resume=args.command == "resume")
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summarize(results, experiment.search_keys))
    return 1 if results.errors else 0
