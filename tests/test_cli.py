"""The command line and the YAML experiments: checks, errors before Ray, a real run."""

import importlib.util
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import ray

from rllib_softqmix.cli import main
from rllib_softqmix.core.validation import search_space_candidates
from rllib_softqmix.experiment import load_experiment

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "tune_configs").glob("*.yaml"))
SMACV2_CONFIGS = [path for path in CONFIGS if "smacv2" in path.name]


@pytest.mark.parametrize("path", CONFIGS, ids=[path.name for path in CONFIGS])
def test_every_shipped_yaml_validates(path, capsys, request):
    if path in SMACV2_CONFIGS:  # every key is checked, as where smacv2 and StarCraft II exist
        request.getfixturevalue("fake_smacv2_package")
    if "smax" in path.name and importlib.util.find_spec("jaxmarl") is None:
        pytest.skip("the SMAX envs need the smax extra (jaxmarl)")
    assert main(["check", str(path)]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("path", SMACV2_CONFIGS, ids=[path.name for path in SMACV2_CONFIGS])
def test_smacv2_yamls_without_smacv2_fail_on_that_alone(path, capsys, no_smacv2):
    assert main(["check", str(path)]) == 2
    error = capsys.readouterr().err
    assert "smacv2 cannot be imported" in error and "StarCraft II was not found" in error
    assert "pip install git+https://github.com/oxwhirl/smacv2.git" in error and "SC2PATH" in error


@pytest.mark.parametrize("overrides, message", [
    (["td_lamda=0.3"], "unknown key 'td_lamda'. Did you mean 'td_lambda'"),
    (["td_lambda=1.5"], "td_lambda=1.5 is invalid"),
    (["env=mpe_sprd"], "unknown env 'mpe_sprd'"),
    (["env_config.dificulty=hard"], "dificulty"),
    (["algorithm=QMX"], "algorithm 'QMX' is unknown"),
    (["stop.trainig_iteration=3"], "trainig_iteration"),
    (["run.nmae=x"], "unknown key 'nmae'"),
    (["lr={grid_search: [0.001, -1]}"], "lr=-1 is invalid"),
    (["replay_buffer_capacity=8"], "replay_buffer_capacity=8 is smaller"),
    (["lr"], "key=value"),
])
def test_bad_files_and_overrides_fail_before_ray_starts(overrides, message, capsys):
    was_initialized = ray.is_initialized()
    code = main(["train", str(ROOT / "tune_configs/qmix_mpe_spread.yaml"), *overrides])
    assert code == 2
    assert message in capsys.readouterr().err
    assert ray.is_initialized() == was_initialized


def test_unknown_top_level_section(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("algorithm: QMIX\nenv: mpe_spread\nconfg: {lr: 0.1}\n")
    assert main(["check", str(path)]) == 2
    assert "unknown key 'confg'" in capsys.readouterr().err


def run_cli(*args, cwd):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "rllib_softqmix", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_train_prints_greedy_return_and_an_existing_checkpoint(tmp_path):
    done = run_cli("train", str(ROOT / "tune_configs/qmix_mpe_spread.yaml"),
                   "stop.num_env_steps_sampled_lifetime=2000", "min_sample_timesteps_per_iteration=1000",
                   "evaluation_interval=2", "evaluation_duration=4", "epsilon_anneal_time=1000",
                   f"run.storage_path={tmp_path}", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = done.stdout[done.stdout.rindex("trial:"):]
    assert re.search(r"iterations=2 env_steps=2000(\.0)? greedy_return=-?\d+\.\d+", summary)
    checkpoint = re.search(r"checkpoint: (\S+)", summary).group(1)
    assert (Path(checkpoint) / "learner_group").is_dir()


def test_readme_example_script_runs(tmp_path):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run([sys.executable, str(ROOT / "examples/tune_search_restore.py"),
                           "--steps", "1000", "--storage", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "best td_lambda=" in done.stdout
    assert re.search(r"restored at iteration 1; one more: 2", done.stdout)
    assert re.search(r"TeamPolicy greedy return over 5 episodes: -\d+", done.stdout)


SC2_FREE_CONFIGS = [path for path in CONFIGS if path not in SMACV2_CONFIGS]
ONE_SMALL_ITERATION = ["min_sample_timesteps_per_iteration=1", "num_envs_per_env_runner=2",
                       "episodes_per_train_step=2", "train_batch_size_episodes=2",
                       "replay_buffer_capacity=4", "evaluation_duration=2"]


@pytest.mark.parametrize("path", SC2_FREE_CONFIGS, ids=[path.name for path in SC2_FREE_CONFIGS])
def test_every_sc2_free_yaml_trains_one_iteration(path, ray_session):
    if "smax" in path.name and importlib.util.find_spec("jaxmarl") is None:
        pytest.skip("the SMAX envs need the smax extra (jaxmarl)")
    experiment = load_experiment(path, ONE_SMALL_ITERATION)
    config = experiment.config.copy(copy_frozen=False)
    config.update_from_dict({key: search_space_candidates(getattr(config, key))[0]
                             for key in experiment.search_keys})
    algo = config.build_algo()
    try:
        result = algo.train()
    finally:
        algo.stop()
    assert result["training_iteration"] == 1 and result["num_gradient_steps_lifetime"] >= 1
    assert math.isfinite(result["env_runners"]["episode_return_mean"])
