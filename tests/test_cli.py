"""The command line and the YAML experiments: checks, errors before Ray, a real run."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import ray

from rllib_softqmix.cli import main

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "tune_configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[path.name for path in CONFIGS])
def test_every_shipped_yaml_validates(path, capsys):
    assert main(["check", str(path)]) == 0
    assert "OK" in capsys.readouterr().out


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
