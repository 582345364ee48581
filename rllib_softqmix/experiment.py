"""Experiments as YAML files: load, check every key, run with Tune.

File layout (every section but ``algorithm`` and ``env`` is optional)::

    algorithm: QMIX            # a registered algorithm name
    env: mpe_spread            # a registered team env
    env_config: {difficulty: hard}
    config: {lr: 0.001, seed: {grid_search: [0, 1, 2]}}   # algorithm settings
    stop: {num_env_steps_sampled_lifetime: 100000}          # Tune stop criteria
    checkpoint: {checkpoint_frequency: 10, checkpoint_at_end: true, num_to_keep: 2}
    run: {name: my_run, storage_path: ./results, num_samples: 1, max_failures: 2}

Fault tolerance is on by default here: ``restart_failed_sub_environments: true`` (an env
that raises is rebuilt and its unfinished episode dropped; RLlib's
``restart_failed_env_runners`` is on already) and ``run.max_failures: 2`` (Tune restarts a
failed trial from its last checkpoint). Set them in ``config`` / ``run`` to change that.

``config`` values may be Tune search spaces written as one-key mappings:
``{grid_search: [...]}``, ``{choice: [...]}``, ``{uniform: [low, high]}``,
``{loguniform: [low, high]}``, ``{randint: [low, high]}``. Every key of every section
is checked (an unknown key is an error with a suggestion), and every value of every
search space is validated before Ray starts.
"""

import copy
import difflib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml
from ray import tune

from rllib_softqmix.core.validation import (Check, ConfigError, boolean, check_setting, integer,
                                            is_search_space, number, optional,
                                            search_space_candidates, text)

SECTIONS = ("description", "algorithm", "env", "env_config", "config", "stop", "checkpoint", "run")
CHECKPOINT_KEYS: Dict[str, Check] = {"checkpoint_frequency": integer(0),
                                     "checkpoint_at_end": boolean,
                                     "num_to_keep": optional(integer(1))}
RUN_KEYS: Dict[str, Check] = {"name": text, "storage_path": text, "num_samples": integer(1),
                              "max_failures": integer(-1), "verbose": integer(0)}
STOP_KEYS = ("training_iteration", "time_total_s", "num_env_steps_sampled_lifetime",
             "timesteps_total")
DEFAULT_MAX_FAILURES = 2
FAULT_TOLERANCE_DEFAULTS = {"restart_failed_sub_environments": True}
SEARCH_SPACES = {
    "grid_search": lambda values: tune.grid_search(list(values)),
    "choice": lambda values: tune.choice(list(values)),
    "uniform": lambda bounds: tune.uniform(*bounds),
    "loguniform": lambda bounds: tune.loguniform(*bounds),
    "randint": lambda bounds: tune.randint(*bounds),
}
MAX_VALIDATED_COMBINATIONS = 64


@dataclass
class Experiment:
    """A checked experiment, ready for ``run()``."""
    algorithm: str
    config: Any  # the algorithm's AlgorithmConfig, search spaces in its attributes
    stop: Dict[str, Any] = field(default_factory=dict)
    checkpoint: Dict[str, Any] = field(default_factory=dict)
    run: Dict[str, Any] = field(default_factory=dict)
    search_keys: List[str] = field(default_factory=list)


def _suggest(key: str, known: Sequence[str]) -> str:
    match = difflib.get_close_matches(key, list(known), n=1)
    return f" Did you mean {match[0]!r}?" if match else ""


def _check_keys(where: str, section: Dict[str, Any], known: Sequence[str]) -> None:
    if not isinstance(section, dict):
        raise ConfigError(f"{where} must be a mapping, got {section!r}")
    for key in section:
        if key not in known:
            listing = f" Allowed keys: {sorted(known)}." if len(known) <= 20 else ""
            raise ConfigError(f"{where}: unknown key {key!r}.{_suggest(key, known)}{listing}")


def parse_value(value: Any) -> Any:
    """A YAML value, with one-key search-space mappings turned into Tune search spaces."""
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in SEARCH_SPACES:
        kind, argument = next(iter(value.items()))
        return SEARCH_SPACES[kind](argument)
    return value


def apply_overrides(spec: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """Applies ``key=value`` overrides: ``lr=1e-4`` and ``td_lambda=0.3`` go to ``config``;
    ``stop.training_iteration=5``, ``env_config.difficulty=hard``, ``run.name=x`` to their
    section; ``env=...``/``algorithm=...`` replace those. Values are parsed as YAML."""
    spec = copy.deepcopy(spec)
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"override {override!r} must look like key=value, e.g. lr=0.0005")
        path, raw = override.split("=", 1)
        value = yaml.safe_load(raw)
        section, _, key = path.rpartition(".")
        if not section and key in ("algorithm", "env", "description"):
            spec[key] = value
            continue
        section = section or "config"
        if section not in SECTIONS or section in ("algorithm", "env", "description"):
            raise ConfigError(f"override {override!r}: unknown section {section!r}."
                              f"{_suggest(section, SECTIONS)}")
        if not isinstance(spec.setdefault(section, {}), dict):
            raise ConfigError(f"override {override!r}: section {section!r} is not a mapping.")
        spec[section][key] = value
    return spec


def load_experiment(path, overrides: Sequence[str] = ()) -> Experiment:
    with open(path) as file:
        try:
            spec = yaml.safe_load(file) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not valid YAML: {error}") from None
    try:
        _check_keys("experiment", spec, SECTIONS)
        return build_experiment(apply_overrides(spec, overrides))
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error


def build_experiment(spec: Dict[str, Any]) -> Experiment:
    """Checks an experiment spec (the parsed YAML) and builds its config."""
    from rllib_softqmix import ALGORITHMS

    _check_keys("experiment", spec, SECTIONS)
    for required in ("algorithm", "env"):
        if required not in spec:
            raise ConfigError(f"experiment: the key {required!r} is missing.")
    name = spec["algorithm"]
    if name not in ALGORITHMS:
        raise ConfigError(f"experiment: algorithm {name!r} is unknown.{_suggest(str(name), ALGORITHMS)} "
                          f"Registered algorithms: {sorted(ALGORITHMS)}.")
    config = ALGORITHMS[name].get_default_config()
    config.environment(spec["env"], env_config=spec.get("env_config") or {})

    settings = spec.get("config") or {}
    known = sorted(key for key in vars(config) if not key.startswith("_"))
    _check_keys(f"config (settings of {type(config).__name__}, documented in its training() "
                f"and in RLlib's AlgorithmConfig)", settings, known)
    settings = {key: parse_value(value) for key, value in settings.items()}
    config.check_settings(settings)
    config.update_from_dict({**FAULT_TOLERANCE_DEFAULTS, **settings})

    for section, checks in (("checkpoint", CHECKPOINT_KEYS), ("run", RUN_KEYS)):
        _check_keys(section, spec.get(section) or {}, checks)
        for key, value in (spec.get(section) or {}).items():
            check_setting(section, key, value, checks[key])
    stop = spec.get("stop") or {}
    if not isinstance(stop, dict):
        raise ConfigError(f"stop must be a mapping, got {stop!r}")
    for key, value in stop.items():
        if key not in STOP_KEYS and "/" not in str(key):
            raise ConfigError(f"stop: unknown key {key!r}.{_suggest(str(key), STOP_KEYS)} Use one "
                              f"of {list(STOP_KEYS)} or a result path such as "
                              f"'evaluation/env_runners/episode_return_mean'.")
        check_setting("stop", key, value, number(0.0) if key in STOP_KEYS else number())
    search_keys = [key for key, value in settings.items() if is_search_space(value)]
    experiment = Experiment(algorithm=name, config=config, stop=dict(stop),
                            checkpoint=dict(spec.get("checkpoint") or {}),
                            run=dict(spec.get("run") or {}), search_keys=search_keys)
    validate_all_trials(experiment)
    return experiment


def validate_all_trials(experiment: Experiment) -> None:
    """Runs the full config validation for every combination of search-space candidates."""
    config = experiment.config
    candidates = [search_space_candidates(getattr(config, key)) or [None]
                  for key in experiment.search_keys]
    for count, values in enumerate(itertools.product(*candidates)):
        if count >= MAX_VALIDATED_COMBINATIONS:
            break
        trial = copy.deepcopy(config)
        trial.update_from_dict({key: value for key, value in zip(experiment.search_keys, values)
                                if value is not None})
        trial.validate()


def run(experiment: Experiment, *, address: Optional[str] = None, resume: bool = False):
    """Runs the experiment with Tune and returns its ResultGrid."""
    import ray

    run_options = experiment.run
    storage_path = str(Path(run_options.get("storage_path", "results")).resolve())
    name = run_options.get("name", f"{experiment.algorithm}_{experiment.config.env}")
    experiment_dir = Path(storage_path) / name
    if resume and not tune.Tuner.can_restore(experiment_dir):
        raise ConfigError(
            f"resume: there is no run to resume at {experiment_dir}. Check run.name and "
            f"run.storage_path (they must be the ones it was trained with), or start it with "
            f"`train`.")
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False)
    if resume:
        tuner = tune.Tuner.restore(str(experiment_dir), trainable=experiment.algorithm,
                                   resume_errored=True)
    else:
        tuner = tune.Tuner(
            experiment.algorithm,
            param_space=experiment.config,
            tune_config=tune.TuneConfig(num_samples=run_options.get("num_samples", 1)),
            run_config=tune.RunConfig(
                name=name, storage_path=storage_path, stop=experiment.stop,
                verbose=run_options.get("verbose", 1),
                checkpoint_config=tune.CheckpointConfig(**{"checkpoint_at_end": True,
                                                           **experiment.checkpoint}),
                failure_config=tune.FailureConfig(
                    max_failures=run_options.get("max_failures", DEFAULT_MAX_FAILURES))))
    return tuner.fit()
