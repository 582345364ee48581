"""A Tune run killed with SIGKILL mid-training resumes from its last checkpoint (issue 8),
with ``tune.Tuner.restore`` and with the CLI's ``resume``: iteration count, env steps,
replay buffer, epsilon schedule, target networks, MAVEN's z-policy and its buffer go on
from the checkpoint, exactly as an in-process continuation of that checkpoint does.
"""

import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import ALGORITHM_SETTINGS, TINY_SETTINGS
from ray import tune

from rllib_softqmix import MAVEN, TEAM
from rllib_softqmix.cli import main

STOP = 6
SETTINGS = {**TINY_SETTINGS, **ALGORITHM_SETTINGS["MAVEN"], "replay_buffer_capacity": 1000,
            "num_envs_per_env_runner": 4, "min_sample_timesteps_per_iteration": 64, "seed": 0}
EXPERIMENT = {"algorithm": "MAVEN", "env": "m_step_matrix", "env_config": {"m": 4},
              "config": SETTINGS, "stop": {"training_iteration": STOP},
              "checkpoint": {"checkpoint_frequency": 1}, "run": {"name": "killed", "verbose": 0}}


def recorded_iteration(experiment_dir: Path) -> int:
    """The last training iteration in Tune's saved experiment state (what a restore sees)."""
    for state_file in sorted(experiment_dir.glob("experiment_state-*.json"), reverse=True):
        try:
            trials = json.loads(state_file.read_text())["trial_data"]
            return max(json.loads(metadata)["last_result"].get("training_iteration", 0)
                       for _, metadata in trials)
        except (ValueError, KeyError, TypeError):
            return 0
    return 0


def train_until_killed(experiment_file: Path, storage: Path, iteration: int) -> None:
    """Starts the CLI's `train` and SIGKILLs the driver (and its Ray processes) once Tune's
    experiment state records ``iteration``. TUNE_GLOBAL_CHECKPOINT_S=0 makes Tune save that
    state after every result instead of every >= 10 s, so the test need not wait for it."""
    command = [sys.executable, "-m", "rllib_softqmix", "train", str(experiment_file),
               f"run.storage_path={storage}"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "TUNE_GLOBAL_CHECKPOINT_S": "0"}
    driver = subprocess.Popen(command, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while recorded_iteration(storage / "killed") < iteration:
            assert driver.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.2)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()


def training_state(algo) -> dict:
    """Everything that must continue: counters, buffers, schedule, all weights (targets
    included) and the optimiser state."""
    learner = algo.learner_group._learner
    index = np.arange(len(algo.replay_buffer))
    return {
        "iteration": algo.iteration, "env_steps": algo._env_steps, "episodes": algo._episodes,
        "gradient_steps": algo._gradient_steps, "epsilon": algo.exploration_metrics()["epsilon"],
        "buffer": algo.replay_buffer.gather(index) if len(index) else {},
        "z_buffer": list(algo._z_buffer),
        "last_target_update_episode": learner._last_target_update_episode,
        "weights": learner.module[TEAM].state_dict(),
        "optimizer": learner.get_optimizer(TEAM).state_dict()["state"],
    }


def assert_same_state(state, other):
    assert state.keys() == other.keys()
    for key in ("iteration", "env_steps", "episodes", "gradient_steps", "epsilon",
                "last_target_update_episode"):
        assert state[key] == other[key], key
    for name, array in state["buffer"].items():
        assert np.array_equal(array, other["buffer"][name]), name
    assert len(state["z_buffer"]) == len(other["z_buffer"])
    for (s0, z, ret), (s1, z1, ret1) in zip(state["z_buffer"], other["z_buffer"]):
        assert np.array_equal(s0, s1) and z == z1 and ret == ret1
    for name, value in state["weights"].items():
        assert torch.equal(value, other["weights"][name]), name
    for slot, values in state["optimizer"].items():
        for name, value in values.items():
            other_value = other["optimizer"][slot][name]
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(other_value)), (slot, name)


def checkpoint_iteration(path) -> int:
    with open(Path(path) / "algorithm_state.pkl", "rb") as file:
        return pickle.load(file)["training_iteration"]


REPORTED = ("training_iteration", "num_env_steps_sampled_lifetime", "epsilon",
            "replay_buffer_episodes", "num_gradient_steps_lifetime",
            "env_runners/num_episodes_lifetime", "env_runners/episode_return_mean",
            "learners/team/num_target_updates")


def reported(result) -> dict:
    """The REPORTED values of a result dict (nested keys joined by "/", as in progress.csv)."""
    values = {}
    for key in REPORTED:
        value = result
        for part in key.split("/"):
            value = value[part]
        values[key] = float(value)
    return values


def continue_in_process(checkpoint, iterations):
    """The checkpoint's state, the results of ``iterations`` more training iterations in
    this process and the state after them: what any correct resume must reproduce."""
    algo = MAVEN.from_checkpoint(checkpoint)
    start = training_state(algo)
    start["num_target_updates"] = algo.metrics.peek(("learners", TEAM, "num_target_updates"))
    results = [reported(algo.train()) for _ in range(iterations)]
    end = training_state(algo)
    algo.stop()
    return start, results, end


@pytest.fixture(scope="module")
def killed_run(ray_session, tmp_path_factory):
    """One run killed mid-training, copied so that each way of resuming gets its own; the
    checkpoint a resume starts from, and its in-process continuation to the stop."""
    root = tmp_path_factory.mktemp("killed")
    experiment_file = root / "experiment.yaml"
    experiment_file.write_text(yaml.safe_dump(EXPERIMENT))
    train_until_killed(experiment_file, root / "tuner", iteration=3)
    shutil.copytree(root / "tuner", root / "cli")
    checkpoint = tune.ExperimentAnalysis(str(root / "tuner" / "killed")).get_last_checkpoint()
    resumed_from = checkpoint_iteration(checkpoint.path)
    assert 2 <= resumed_from < STOP
    start, results, end = continue_in_process(checkpoint.path, STOP - resumed_from)
    assert start["iteration"] == resumed_from and end["iteration"] == STOP
    return experiment_file, root, start, results, end


def test_tuner_restore_continues_a_killed_run(killed_run):
    _, root, start, expected_results, expected = killed_run
    tuner = tune.Tuner.restore(str(root / "tuner" / "killed"), trainable="MAVEN",
                               resume_errored=True)
    results = tuner.fit()
    assert not results.errors
    result = results[0]
    assert result.metrics["training_iteration"] == STOP

    # Every iteration after the restore reports what the in-process continuation did ...
    progress = result.metrics_dataframe
    resumed = [{key: float(row[key]) for key in REPORTED}
               for _, row in progress.iloc[len(progress) - len(expected_results):].iterrows()]
    assert resumed == expected_results
    # ... and the first one goes on from the checkpoint: the next iteration, more env steps,
    # the stored episodes plus the new ones, a lower epsilon, more target updates.
    first = resumed[0]
    assert first["training_iteration"] == start["iteration"] + 1
    new_episodes = first["env_runners/num_episodes_lifetime"] - start["episodes"]
    assert new_episodes >= 16 and first["num_env_steps_sampled_lifetime"] > start["env_steps"]
    assert first["replay_buffer_episodes"] == len(start["buffer"]["mask"]) + new_episodes
    assert first["epsilon"] < start["epsilon"]
    assert first["learners/team/num_target_updates"] > start["num_target_updates"] >= 1

    # At the stop, the whole state (weights, targets, optimiser, buffers) is the same too.
    final = MAVEN.from_checkpoint(result.checkpoint.path)
    assert_same_state(training_state(final), expected)
    final.stop()


def test_cli_resume_continues_a_killed_run(killed_run, capsys):
    experiment_file, root, _, _, expected = killed_run
    assert main(["resume", str(experiment_file), f"run.storage_path={root / 'cli'}"]) == 0
    output = capsys.readouterr().out
    summary = output[output.rindex("trial:"):]
    assert f"iterations={STOP} " in summary
    final = MAVEN.from_checkpoint(re.search(r"checkpoint: (\S+)", summary).group(1))
    assert_same_state(training_state(final), expected)
    final.stop()
