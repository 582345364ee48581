"""Bad input, swept (issue 8): invalid configurations, env setups, checkpoints and YAML
files across all algorithms. Each is rejected with this package's error (or the CLI's
exit code 2), naming the key and the fix, raised by this package's code and not from
inside Ray, and before Ray starts.

The cases run in a fresh process that has never started Ray (``python
tests/test_bad_input.py DIR``), so ``ray.is_initialized()`` after each case shows that
nothing started; the outcomes come back as JSON.
"""

import contextlib
import io
import json
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Tuple

import gymnasium as gym
import pytest
import ray
from ray.rllib.env.multi_agent_env import MultiAgentEnv
from ray.tune.registry import register_env
from toy_envs import ContinuousEnv, NoAgentsEnv, ToyEnv, UnequalActionsEnv

import rllib_softqmix
from rllib_softqmix import (MAVEN, QMIX, SoftQMIX, MAVENConfig, QMIXConfig, QMIXGREConfig,
                            SoftQMIXConfig, TeamPolicy, VDNConfig, register_team_env)
from rllib_softqmix.cli import main

PACKAGE_DIR = Path(rllib_softqmix.__file__).parent


class DiscreteObservationEnv(ToyEnv):
    def observation_space(self, agent):
        return gym.spaces.Discrete(3)


class MissingStateEnv(ToyEnv):
    """Declares a global state_space but cannot give the state."""

    def __init__(self):
        super().__init__()
        self.state_space = gym.spaces.Box(-1.0, 1.0, (6,))


class WrongStateEnv(ToyEnv):
    """Its state() has 4 values; its state_space says 6."""

    def __init__(self):
        super().__init__(with_state=True)

    def state(self):
        return super().state()[:4]


class StatelessTeamEnv(MultiAgentEnv):
    """A hand-made team env whose observation has no global state."""

    def __init__(self, config=None):
        super().__init__()
        space = gym.spaces.Dict({"obs": gym.spaces.Box(-1, 1, (2, 3)),
                                 "action_mask": gym.spaces.Box(0, 1, (2, 4))})
        self.observation_spaces = {"team": space}
        self.action_spaces = {"team": gym.spaces.MultiDiscrete([4, 4])}
        self.agents = self.possible_agents = ["team"]


register_env("continuous_actions", lambda config: ContinuousEnv())
register_env("unequal_actions", lambda config: UnequalActionsEnv())
register_env("no_agents", lambda config: NoAgentsEnv())
register_env("discrete_observations", lambda config: DiscreteObservationEnv())
register_env("stateless_team", StatelessTeamEnv)
register_team_env("missing_state", MissingStateEnv)
register_team_env("wrong_state", WrongStateEnv)


class CliRejected(Exception):
    """The CLI exited with code 2 and printed this error (no traceback)."""


def cli(*args) -> None:
    """Runs the command line; CliRejected if it refused cleanly (exit code 2, no traceback)."""
    error = io.StringIO()
    with contextlib.redirect_stderr(error), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(arg) for arg in args])
    if code == 2 and "Traceback" not in error.getvalue():
        raise CliRejected(error.getvalue())


def experiment_file(directory: Path, text: str) -> Path:
    path = directory / f"experiment_{abs(hash(text))}.yaml"
    path.write_text(text)
    return path


QMIX_YAML = "algorithm: QMIX\nenv: one_step_matrix\n"


def yaml_case(text, *args, command="check"):
    return lambda directory: cli(command, experiment_file(directory, text), *args)


def garbage_checkpoint(directory: Path) -> Path:
    """A directory with every file of an Algorithm checkpoint, each one garbage."""
    path = directory / "garbage_checkpoint"
    module_dir = path.joinpath("learner_group", "learner", "rl_module", "team")
    module_dir.mkdir(parents=True, exist_ok=True)
    for file in (path / "class_and_ctor_args.pkl", path / "rllib_checkpoint.json",
                 path / "algorithm_state.pkl", module_dir / "class_and_ctor_args.pkl"):
        file.write_bytes(b"\x00 not a checkpoint {")
    return path


def half_written_checkpoint(directory: Path) -> Path:
    path = directory / "half_written_checkpoint"
    path.mkdir(exist_ok=True)
    (path / "rllib_checkpoint.json").write_text("{}")
    return path


@dataclass(frozen=True)
class Case:
    name: str
    algorithm: str  # which algorithm it is posed for ("all" for algorithm-independent input)
    call: Callable[[Path], object]
    expected: Tuple[str, ...]  # message fragments: the key (or path) and the fix


CASES = [
    # Wrong types.
    Case("lr as a string", "QMIX", lambda _: QMIXConfig().training(lr="0.001"),
         ("lr='0.001' is invalid", "must be a number")),
    Case("double_q as a string", "VDN", lambda _: VDNConfig().training(double_q="yes"),
         ("double_q='yes'", "must be true or false")),
    Case("noise_dim as a float", "MAVEN", lambda _: MAVENConfig().training(noise_dim=2.5),
         ("noise_dim=2.5", "must be an integer >= 1")),
    Case("temperature as a string", "SoftQMIX",
         lambda _: SoftQMIXConfig().training(temperature="0.1"),
         ("temperature='0.1'", "must be a number in (0.0, inf]")),
    Case("gre_lambda null", "QMIXGRE", lambda _: QMIXGREConfig().training(gre_lambda=None),
         ("gre_lambda=None", "must be a number in [0.0, inf]")),
    Case("seed as a string", "QMIX",
         lambda _: QMIXConfig().environment("one_step_matrix").debugging(seed="abc").build_algo(),
         ("seed='abc'", "must be an integer >= 0 or null")),
    # Out-of-range values.
    Case("temperature 0", "SoftQMIX", lambda _: SoftQMIXConfig().training(temperature=0),
         ("temperature=0 is invalid", "(0.0, inf]")),
    Case("temperature negative", "SoftQMIX", lambda _: SoftQMIXConfig().training(temperature=-0.1),
         ("temperature=-0.1", "(0.0, inf]")),
    Case("gre_lambda negative", "QMIXGRE", lambda _: QMIXGREConfig().training(gre_lambda=-1e-3),
         ("gre_lambda=-0.001", "[0.0, inf]")),
    Case("noise_dim 0", "MAVEN", lambda _: MAVENConfig().training(noise_dim=0),
         ("noise_dim=0", "integer >= 1")),
    Case("bandit_batch 0", "MAVEN", lambda _: MAVENConfig().training(bandit_batch=0),
         ("bandit_batch=0", "integer >= 1")),
    Case("td_lambda above 1", "VDN", lambda _: VDNConfig().training(td_lambda=1.5),
         ("td_lambda=1.5", "[0.0, 1.0]")),
    Case("epsilon_start above 1", "QMIX", lambda _: QMIXConfig().training(epsilon_start=2.0),
         ("epsilon_start=2.0", "[0.0, 1.0]")),
    Case("gamma 0", "QMIXGRE", lambda _: QMIXGREConfig().training(gamma=0.0),
         ("gamma=0.0", "(0.0, 1.0]")),
    Case("num_envs_per_env_runner 0", "SoftQMIX",
         lambda _: SoftQMIXConfig().env_runners(num_envs_per_env_runner=0),
         ("num_envs_per_env_runner=0", "integer >= 1")),
    Case("evaluation_duration 0", "VDN", lambda _: VDNConfig().evaluation(evaluation_duration=0),
         ("evaluation_duration=0", "integer >= 1 or 'auto'")),
    Case("num_learners negative", "MAVEN",
         lambda _: MAVENConfig().environment("one_step_matrix").learners(num_learners=-1)
         .validate(),
         ("num_learners=-1", "integer >= 0")),
    Case("buffer smaller than a batch", "QMIX",
         lambda _: QMIXConfig().environment("one_step_matrix")
         .training(replay_buffer_capacity=16, train_batch_size_episodes=32).build_algo(),
         ("replay_buffer_capacity=16", "Raise replay_buffer_capacity")),
    Case("temperature 0 in a grid search", "SoftQMIX",
         lambda _: SoftQMIXConfig().training(temperature={"grid_search": [0.03, 0.0]}),
         ("temperature=0.0 is invalid", "(0.0, inf]")),
    # Settings that do not go together.
    Case("MAVEN with the VDN mixer", "MAVEN",
         lambda _: MAVENConfig().environment("one_step_matrix").training(mixer="vdn").build_algo(),
         ("mixer='vdn'", "mixer must be 'qmix'")),
    Case("GRE regulariser on VDN", "QMIXGRE",
         lambda _: QMIXGREConfig().environment("one_step_matrix").training(mixer="vdn").validate(),
         ("mixer='vdn' with gre_lambda", "use mixer='qmix'")),
    Case("weighted TD without f", "SoftQMIX",
         lambda _: SoftQMIXConfig().environment("one_step_matrix")
         .training(variant="entropy", weighted_td=True).validate(),
         ("weighted_td=True", "use variant 'function_f' or 'full'")),
    Case("sample_while_learning without remote runners", "QMIX",
         lambda _: QMIXConfig().environment("one_step_matrix")
         .training(sample_while_learning=True).build_algo(),
         ("sample_while_learning=True", "num_env_runners=1")),
    Case("TensorFlow", "VDN",
         lambda _: VDNConfig().environment("one_step_matrix").framework("tf2").build_algo(),
         ("framework='tf2'", "set framework='torch'")),
    # Unknown keys.
    Case("temprature", "SoftQMIX",
         lambda _: SoftQMIXConfig().update_from_dict({"env": "one_step_matrix",
                                                      "temprature": 0.1}).build_algo(),
         ("'temprature'", "did you mean 'temperature'")),
    Case("gre_lamda", "QMIXGRE",
         lambda _: QMIXGREConfig().update_from_dict({"env": "one_step_matrix",
                                                     "gre_lamda": 1e-3}).validate(),
         ("'gre_lamda'", "did you mean 'gre_lambda'")),
    Case("train_batch_size", "MAVEN",
         lambda _: MAVENConfig().environment("one_step_matrix").training(train_batch_size=64)
         .validate(),
         ("train_batch_size=64", "use train_batch_size_episodes")),
    Case("env_config key", "QMIX",
         lambda _: QMIXConfig().environment("mpe_spread", env_config={"difficulty_level": "hard"}),
         ("difficulty_level", "accepted keys")),
    # Unknown env and unusable env setups.
    Case("unknown env", "VDN", lambda _: VDNConfig().environment("mpe_sprd"),
         ("unknown env 'mpe_sprd'", "Registered team envs")),
    Case("env not set", "QMIXGRE", lambda _: QMIXGREConfig().build_algo(),
         ("env is not set", "call config.environment(<name>)")),
    Case("env_config not a mapping", "QMIX",
         lambda _: QMIXConfig().environment("one_step_matrix", env_config=[1, 2]),
         ("env_config=[1, 2]", "must be a mapping")),
    Case("max_episode_steps 0", "MAVEN",
         lambda _: MAVENConfig().environment("m_step_matrix", env_config={"max_episode_steps": 0})
         .validate(), ("max_episode_steps", "positive integer")),
    Case("continuous actions", "SoftQMIX",
         lambda _: SoftQMIXConfig().environment("continuous_actions").build_algo(),
         ("continuous_actions", "TeamEnv needs Discrete actions")),
    Case("unequal action spaces", "QMIX",
         lambda _: QMIXConfig().environment("unequal_actions").validate(),
         ("unequal_actions", "Pad the smaller ones with masked actions")),
    Case("discrete observations", "VDN",
         lambda _: VDNConfig().environment("discrete_observations").validate(),
         ("discrete_observations", "needs a Box")),
    Case("no agents", "QMIXGRE", lambda _: QMIXGREConfig().environment("no_agents").validate(),
         ("no_agents", "no possible_agents")),
    Case("team env without a global state", "QMIX",
         lambda _: QMIXConfig().environment("stateless_team").build_algo(),
         ("stateless_team", "state=Box([S])", "Register a PettingZoo ParallelEnv")),
    Case("state_space without state()", "MAVEN",
         lambda _: MAVENConfig().environment("missing_state").validate(),
         ("missing_state", "implement state() or remove state_space")),
    Case("state() of the wrong size", "SoftQMIX",
         lambda _: SoftQMIXConfig().environment("wrong_state").validate(),
         ("'state' of shape (4,)", "(6,)", "must match its declared space")),
    # Checkpoints that are missing, half-written or corrupt.
    Case("missing checkpoint", "QMIX",
         lambda directory: QMIX.from_checkpoint(directory / "nowhere"),
         ("does not exist", "Pass the directory that algo.save() or Tune wrote")),
    Case("half-written checkpoint", "SoftQMIX",
         lambda directory: SoftQMIX.from_checkpoint(half_written_checkpoint(directory)),
         ("not a complete Algorithm checkpoint", "algorithm_state.pkl", "beside it")),
    Case("corrupt checkpoint", "MAVEN",
         lambda directory: MAVEN.from_checkpoint(garbage_checkpoint(directory)),
         ("class_and_ctor_args.pkl", "cannot be read", "is corrupt", "beside it")),
    Case("TeamPolicy from a missing checkpoint", "all",
         lambda directory: TeamPolicy.from_checkpoint(directory / "nowhere"),
         ("is not an rllib_softqmix Algorithm checkpoint", "Pass the directory")),
    Case("TeamPolicy from a corrupt checkpoint", "all",
         lambda directory: TeamPolicy.from_checkpoint(garbage_checkpoint(directory)),
         ("class_and_ctor_args.pkl", "cannot be read", "is corrupt", "beside it")),
    Case("CLI resume of a run that never started", "QMIX",
         lambda directory: cli("resume", experiment_file(
             directory, QMIX_YAML + f"run: {{storage_path: {directory}, name: never}}\n")),
         ("no run to resume", "never", "Check run.name and run.storage_path")),
    # YAML experiment files.
    Case("YAML typo'd setting", "QMIX", yaml_case(QMIX_YAML + "config: {td_lamda: 0.3}\n",
                                                  command="train"),
         ("unknown key 'td_lamda'", "Did you mean 'td_lambda'")),
    Case("YAML typo'd section", "VDN", yaml_case("algorithm: VDN\nenv: one_step_matrix\n"
                                                 "confg: {lr: 0.001}\n", command="train"),
         ("unknown key 'confg'", "Did you mean 'config'")),
    Case("YAML typo'd checkpoint key", "QMIX",
         yaml_case(QMIX_YAML + "checkpoint: {checkpoint_freq: 5}\n", command="train"),
         ("'checkpoint_freq'", "Did you mean 'checkpoint_frequency'")),
    Case("YAML typo'd stop key", "MAVEN",
         yaml_case("algorithm: MAVEN\nenv: m_step_matrix\nstop: {trainig_iteration: 5}\n"),
         ("'trainig_iteration'", "Did you mean 'training_iteration'")),
    Case("YAML syntax error", "QMIX", yaml_case(QMIX_YAML + "config: {lr: [0.1,\n"),
         ("is not valid YAML", "line")),
    Case("YAML max_failures as a word", "QMIXGRE",
         yaml_case("algorithm: QMIXGRE\nenv: one_step_matrix\nrun: {max_failures: two}\n"),
         ("max_failures='two'", "must be an integer >= -1")),
    Case("YAML num_samples 0", "SoftQMIX",
         yaml_case("algorithm: SoftQMIX\nenv: one_step_matrix\nrun: {num_samples: 0}\n"),
         ("num_samples=0", "must be an integer >= 1")),
    Case("YAML stop value as a word", "VDN",
         yaml_case("algorithm: VDN\nenv: one_step_matrix\nstop: {training_iteration: many}\n"),
         ("training_iteration='many'", "must be a number")),
    Case("YAML unknown algorithm", "all", yaml_case("algorithm: QMX\nenv: one_step_matrix\n"),
         ("algorithm 'QMX' is unknown", "Did you mean 'QMIX'")),
    Case("YAML without env", "all", yaml_case("algorithm: QMIX\n"),
         ("the key 'env' is missing",)),
    Case("YAML not a mapping, with an override", "all",
         yaml_case("- QMIX\n- one_step_matrix\n", "lr=0.001"),
         ("experiment must be a mapping",)),
    Case("YAML noise_dim 0 for MAVEN", "MAVEN",
         yaml_case("algorithm: MAVEN\nenv: m_step_matrix\nconfig: {noise_dim: 0}\n",
                   command="train"),
         ("noise_dim=0", "integer >= 1")),
    Case("YAML temperature grid with 0", "SoftQMIX",
         yaml_case("algorithm: SoftQMIX\nenv: one_step_matrix\n"
                   "config: {temperature: {grid_search: [0.03, 0]}}\n", command="train"),
         ("temperature=0 is invalid", "(0.0, inf]")),
]


def run_case(case: Case, directory: Path) -> dict:
    """Runs one case; what it raised, where, and whether Ray got started."""
    try:
        case.call(directory)
        outcome = {"error": None, "message": "", "raised_in": ""}
    except Exception as error:  # noqa: BLE001 - every outcome is recorded and judged by the test
        outcome = {"error": type(error).__name__, "message": str(error),
                   "raised_in": traceback.extract_tb(error.__traceback__)[-1].filename}
    outcome["ray_initialized"] = ray.is_initialized()
    return outcome


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bad_input")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run([sys.executable, __file__, str(directory)], env=env, capture_output=True,
                          text=True, timeout=600, cwd=Path(__file__).parent)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_rejected_cleanly_before_ray_starts(outcomes, case):
    outcome = outcomes[case.name]
    assert outcome["error"] in ("ConfigError", "CheckpointError", "CliRejected"), outcome
    for fragment in case.expected:
        assert fragment in outcome["message"], (fragment, outcome["message"])
    if outcome["error"] != "CliRejected":
        assert Path(outcome["raised_in"]).is_relative_to(PACKAGE_DIR), outcome["raised_in"]
    assert not outcome["ray_initialized"]


def test_the_sweep_covers_every_algorithm_with_at_least_30_inputs():
    assert len(CASES) >= 30 and len({case.name for case in CASES}) == len(CASES)
    assert {case.algorithm for case in CASES} == {*rllib_softqmix.ALGORITHMS, "all"}


if __name__ == "__main__":
    print(json.dumps({case.name: run_case(case, Path(sys.argv[1])) for case in CASES}))
