"""Learning curves and final-score tables from Tune result directories.

Reads the trials of one or more experiment directories (``results/<run name>/``, one
subdirectory per trial with ``params.json`` and ``result.json``) or single trial
directories. ``result.json`` is used rather than ``progress.csv``, whose columns are fixed
by the first row and so lose the evaluation results of later iterations.

- **Groups**: trials are grouped by algorithm (the ``<algorithm>_<env>_<trial id>`` prefix
  that Tune gives trial directories) and by the settings that differ between that
  algorithm's trials in ``params.json`` (nested keys as ``env_config.difficulty``), except
  ``seed``: the seeds are the spread within a group. Tune writes a value it cannot
  serialise (a function, a class instance) as its repr, whose memory address differs
  between runs of the same config (``<function f at 0x7f...>``); such values are compared
  and shown without it (``<function f>``).
- **Curves**: x is ``num_env_steps_sampled_lifetime``. Seeds are aligned on the union of
  their env steps; each seed is interpolated linearly between its own reports and counts
  only between its first and last report (no extrapolation), so the mean and the std band
  at a step are over the seeds that cover it.
- **Final scores**: each seed's last reported value of the metric (for evaluation metrics,
  its last evaluation), then mean ± std (population std, ddof=0) over seeds.
"""

import difflib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

ENV_STEPS = "num_env_steps_sampled_lifetime"
GREEDY_RETURN = "evaluation/env_runners/episode_return_mean"
TRAINING_RETURN = "env_runners/episode_return_mean"
GREEDY_WIN_RATE = "evaluation/env_runners/battle_won_mean"  # where the env reports battle_won
TRAINING_WIN_RATE = "env_runners/battle_won_mean"
UNKNOWN_ALGORITHM = "trial"
TUNE_DIRNAME_REPLACED = r'[/()<>:"\\|?*]'  # characters Tune turns into "_" in trial directory names
MEMORY_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # in Python's reprs: <function f at 0x7f...>


class ResultsError(ValueError):
    """A results path or a requested metric cannot be used; the message says why."""


@dataclass(frozen=True)
class Metric:
    """A plotted quantity: each trial uses the first of ``paths`` that it reports."""
    name: str
    paths: Tuple[str, ...]


DEFAULT_METRICS = (
    Metric("greedy return", (GREEDY_RETURN, TRAINING_RETURN)),
    Metric("win rate", (GREEDY_WIN_RATE, TRAINING_WIN_RATE)),
    Metric("credit entropy", ("learners/team/credit_entropy_mean",)),
)


@dataclass
class Trial:
    """One trial: its settings (``params.json`` flattened) and its results in env-step order."""
    path: Path
    algorithm: str
    settings: Dict[str, Any]
    results: List[Dict[str, Any]]


@dataclass
class Curve:
    """One trial's values of a metric, read from result ``path``."""
    steps: np.ndarray
    values: np.ndarray
    path: str


@dataclass
class AlignedCurves:
    """Mean and std over seeds at each env step, and how many seeds cover that step."""
    steps: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    seeds: np.ndarray


@dataclass
class Group:
    """The seeds of one algorithm with one combination of the varying settings."""
    algorithm: str
    settings: Dict[str, Any]
    trials: List[Trial]

    @property
    def label(self) -> str:
        return " ".join([self.algorithm, *(f"{key}={_format_setting(value)}"
                                           for key, value in self.settings.items())])

    def curves(self, metric: Metric) -> List[Curve]:
        return [curve for curve in (trial_curve(trial, metric) for trial in self.trials) if curve]


def _format_setting(value: Any) -> str:
    """Floats with 4 significant digits (Tune's sampled values have 16)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def result_value(result: Dict[str, Any], path: str) -> Any:
    """The value at a slash-separated path of a nested result, or None."""
    value = result
    for part in path.split("/"):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _finite_number(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _is_trial_dir(path: Path) -> bool:
    return (path / "params.json").is_file() and (path / "result.json").is_file()


def find_trial_dirs(path: Path) -> List[Path]:
    """The trial directories of an experiment directory, or ``[path]`` for a trial directory."""
    if not path.exists():
        raise ResultsError(f"{path} does not exist")
    if _is_trial_dir(path):
        return [path]
    trial_dirs = sorted(child for child in path.iterdir() if _is_trial_dir(child)) if path.is_dir() else []
    if trial_dirs:
        return trial_dirs
    if path.is_dir() and any(path.glob("experiment_state-*.json")):
        raise ResultsError(f"{path} is a Tune results directory without trials "
                           f"(no subdirectory has params.json and result.json)")
    raise ResultsError(f"{path} is not a Tune results directory: expected an experiment directory "
                       f"(e.g. results/<run name>/) or a trial directory with params.json and "
                       f"result.json")


def flatten(settings: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Nested settings as one level: ``{"env_config": {"difficulty": "hard"}}`` becomes
    ``{"env_config.difficulty": "hard"}``."""
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def without_addresses(value: Any) -> Any:
    """A ``params.json`` value with the memory addresses taken out of the object reprs in it."""
    if isinstance(value, str):
        return MEMORY_ADDRESS.sub("", value)
    if isinstance(value, list):
        return [without_addresses(item) for item in value]
    if isinstance(value, dict):
        return {key: without_addresses(item) for key, item in value.items()}
    return value


def read_results(path: Path) -> List[Dict[str, Any]]:
    """The results of ``result.json`` in env-step order, one per env-step count: a trial
    restored from a checkpoint repeats iterations, and its later report replaces the earlier.
    A cut-off last line (a trial still writing) is ignored."""
    lines = path.read_text().splitlines()
    by_steps = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            result = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                break
            raise ResultsError(f"{path}, line {number}: not a JSON result ({error})") from error
        steps = _finite_number(result.get(ENV_STEPS))
        if steps is not None:
            result.pop("config", None)
            by_steps[steps] = result
    return [by_steps[steps] for steps in sorted(by_steps)]


def algorithm_name(trial_dir: Path, settings: Dict[str, Any], trial_id: Any) -> str:
    """The algorithm from the trial directory name, which Tune writes as
    ``<algorithm>_<env>_<trial id>_<tag>_<date>``; "trial" for custom directory names."""
    prefix, found, _ = trial_dir.name.partition(f"_{trial_id}_")
    if not found:
        return UNKNOWN_ALGORITHM
    env_suffix = re.sub(TUNE_DIRNAME_REPLACED, "_", f"_{settings.get('env')}")
    return prefix[:-len(env_suffix)] if prefix.endswith(env_suffix) else prefix


def load_trials(result_dirs: Sequence) -> List[Trial]:
    """Every trial under the given experiment or trial directories that has reported results
    (a trial reached through two of the paths counts once)."""
    trials: Dict[Path, Trial] = {}
    for result_dir in map(Path, result_dirs):
        reported = False
        for trial_dir in find_trial_dirs(result_dir):
            results = read_results(trial_dir / "result.json")
            if results:
                reported = True
                params = json.loads((trial_dir / "params.json").read_text())
                settings = flatten(without_addresses(params))
                algorithm = algorithm_name(trial_dir, settings, results[0].get("trial_id"))
                trials[trial_dir.resolve()] = Trial(trial_dir, algorithm, settings, results)
        if not reported:
            raise ResultsError(f"{result_dir}: no trial has reported a result yet "
                               f"(every result.json is empty)")
    return list(trials.values())


def _comparable(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def varying_keys(trials: Sequence[Trial]) -> List[str]:
    """Settings whose values differ between the trials (missing counts as a value), but the seed."""
    keys = sorted({key for trial in trials for key in trial.settings})
    return [key for key in keys if key.rsplit(".", 1)[-1] != "seed"
            and len({_comparable(trial.settings.get(key, ...)) for trial in trials}) > 1]


def _sort_key(value: Any) -> Tuple[int, Any]:
    number = _finite_number(value)
    return (0, number) if number is not None else (1, _comparable(value))


def group_trials(trials: Sequence[Trial]) -> List[Group]:
    """Trials grouped by algorithm and the settings that vary within that algorithm's trials,
    sorted by algorithm then by setting values."""
    by_algorithm: Dict[str, List[Trial]] = {}
    for trial in trials:
        by_algorithm.setdefault(trial.algorithm, []).append(trial)
    groups: Dict[Tuple, Group] = {}
    for algorithm, members in by_algorithm.items():
        keys = varying_keys(members)
        for trial in members:
            settings = {key: trial.settings[key] for key in keys if key in trial.settings}
            identity = (algorithm, tuple((key, _comparable(value)) for key, value in settings.items()))
            groups.setdefault(identity, Group(algorithm, settings, [])).trials.append(trial)
    return sorted(groups.values(), key=lambda group: (
        group.algorithm, [(key, _sort_key(value)) for key, value in group.settings.items()]))


def trial_curve(trial: Trial, metric: Metric) -> Optional[Curve]:
    """The trial's values of the first of the metric's paths that it reports, or None."""
    for path in metric.paths:
        points = [(result[ENV_STEPS], value) for result in trial.results
                  if (value := _finite_number(result_value(result, path))) is not None]
        if points:
            steps, values = zip(*points)
            return Curve(np.array(steps, dtype=float), np.array(values, dtype=float), path)
    return None


def align(curves: Sequence[Curve]) -> AlignedCurves:
    """Mean and std over seeds on the union of their env steps; each seed is interpolated
    linearly between its own reports and counts only from its first to its last report."""
    steps = np.unique(np.concatenate([curve.steps for curve in curves]))
    values = np.full((len(curves), len(steps)), np.nan)
    for row, curve in zip(values, curves):
        covered = (steps >= curve.steps[0]) & (steps <= curve.steps[-1])
        row[covered] = np.interp(steps[covered], curve.steps, curve.values)
    return AlignedCurves(steps, np.nanmean(values, axis=0), np.nanstd(values, axis=0),
                         np.sum(~np.isnan(values), axis=0))


def metric_paths(trials: Sequence[Trial]) -> List[str]:
    """Every result path with a number in some trial's results."""
    def numeric_paths(value: Any, prefix: str):
        if isinstance(value, dict):
            for key, child in value.items():
                yield from numeric_paths(child, f"{prefix}{key}/")
        elif _finite_number(value) is not None:
            yield prefix[:-1]

    return sorted({path for trial in trials for result in trial.results
                   for path in numeric_paths(result, "")})


def choose_metrics(trials: Sequence[Trial], requested: Sequence[str] = ()) -> List[Metric]:
    """The requested result paths, or else the default metrics that some trial reports."""
    candidates = [Metric(path, (path,)) for path in requested] or list(DEFAULT_METRICS)
    reported = [metric for metric in candidates
                if any(trial_curve(trial, metric) for trial in trials)]
    missing = [metric for metric in candidates if metric not in reported]
    if requested and missing:
        existing = metric_paths(trials)
        match = difflib.get_close_matches(missing[0].name, existing, n=1)
        suggestion = f" Did you mean {match[0]!r}?" if match else ""
        raise ResultsError(f"no trial reports the metric {missing[0].name!r}.{suggestion} "
                           f"Metric paths that exist: {', '.join(existing)}")
    if not reported:
        raise ResultsError(f"no trial reports any of {[m.paths[0] for m in DEFAULT_METRICS]}; "
                           f"choose with --metric. Metric paths that exist: "
                           f"{', '.join(metric_paths(trials))}")
    return reported


def _uses_fallback(curves: Sequence[Curve], metric: Metric) -> bool:
    return any(curve.path != metric.paths[0] for curve in curves)


def plot_curves(groups: Sequence[Group], metrics: Sequence[Metric], out, title: str = ""):
    """Writes one panel per metric, one line per group (mean over seeds, shaded ± std) to
    ``out`` with matplotlib's Agg backend and returns the matplotlib Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5 * len(metrics), 4), layout="constrained")
    FigureCanvasAgg(figure)
    for axis, metric in zip(figure.subplots(1, len(metrics), squeeze=False)[0], metrics):
        paths = set()
        for group in groups:
            curves = group.curves(metric)
            if not curves:
                continue
            paths.update(curve.path for curve in curves)
            aligned = align(curves)
            marker = "*" if _uses_fallback(curves, metric) else ""
            line, = axis.plot(aligned.steps, aligned.mean, marker=".", markersize=3,
                              label=f"{group.label}{marker} (n={len(curves)})")
            axis.fill_between(aligned.steps, aligned.mean - aligned.std,
                              aligned.mean + aligned.std, color=line.get_color(), alpha=0.2)
        axis.set_title(metric.name)
        axis.set_xlabel(f"env steps ({ENV_STEPS})")
        axis.set_ylabel("\n".join(path for path in metric.paths if path in paths), fontsize=8)
        axis.legend(fontsize=7)
    figure.suptitle(f"{title}: mean over seeds, shaded ± std")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    return figure


def _format_steps(steps: float) -> str:
    return str(int(steps)) if float(steps).is_integer() else f"{steps:g}"


def final_score(curves: Sequence[Curve]) -> str:
    """``mean ± std (n seeds)`` of the seeds' last reported values."""
    finals = np.array([curve.values[-1] for curve in curves])
    seeds = f"{len(finals)} seed{'' if len(finals) == 1 else 's'}"
    return f"{finals.mean():.3f} ± {finals.std():.3f} ({seeds})"


def steps_reached(group: Group) -> str:
    """The env steps of the group's last reports: one number, or ``min–max`` if seeds differ."""
    reached = [trial.results[-1][ENV_STEPS] for trial in group.trials]
    low, high = min(reached), max(reached)
    return _format_steps(low) if low == high else f"{_format_steps(low)}–{_format_steps(high)}"


def final_scores_table(groups: Sequence[Group], metrics: Sequence[Metric]) -> str:
    """A Markdown table: one row per group, one column per metric (the final score, "n/a"
    where no seed reports it), and the env steps reached. A "*" marks scores that use a
    metric's fallback path for some seeds, explained below the table."""
    header = ["group", *(metric.name for metric in metrics), "env steps"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    with_fallback = set()
    for group in groups:
        cells = [group.label]
        for metric in metrics:
            curves = group.curves(metric)
            marker = "*" if _uses_fallback(curves, metric) else ""
            if marker:
                with_fallback.add(metric)
            cells.append(final_score(curves) + marker if curves else "n/a")
        lines.append("| " + " | ".join([*cells, steps_reached(group)]) + " |")
    notes = [f"(*) {metric.name}: seeds without {metric.paths[0]} use {' or '.join(metric.paths[1:])}"
             for metric in metrics if metric in with_fallback]
    return "\n".join(lines + ([""] + notes if notes else []))


def report(result_dirs: Sequence, requested_metrics: Sequence[str] = (), out=None) -> str:
    """The final-scores table of the trials under ``result_dirs``; with ``out``, also writes
    their learning curves there."""
    trials = load_trials(result_dirs)
    metrics = choose_metrics(trials, requested_metrics)
    groups = group_trials(trials)
    table = final_scores_table(groups, metrics)
    if out is None:
        return table
    plot_curves(groups, metrics, out, title=", ".join(Path(path).name for path in result_dirs))
    return f"{table}\n\nlearning curves: {out}"
