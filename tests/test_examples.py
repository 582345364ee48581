"""The scripts in examples/, run in this process on tiny budgets, and what they print."""

import contextlib
import io
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from ray.rllib.algorithms.algorithm import Algorithm

from rllib_softqmix import TEAM, QMIXConfig, TeamPolicy, make_team_env

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name, *args):
    """Runs examples/<name> as ``python examples/<name> args...`` and returns its stdout and
    the globals of its module."""
    argv, sys.argv = sys.argv, [name, *map(str, args)]
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output):
            module = runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    finally:
        sys.argv = argv
    return output.getvalue(), module


def number(pattern, text):
    return float(re.search(pattern, text).group(1))


@pytest.fixture(scope="module")
def restored(ray_session, tmp_path_factory):
    """restore_and_evaluate.py training its own 500-step checkpoint."""
    checkpoint = tmp_path_factory.mktemp("checkpoint")
    output, module = run_example("restore_and_evaluate.py", "--train-steps", 500,
                                 "--save-dir", checkpoint)
    return output, module, checkpoint


def test_restore_and_evaluate_restores_the_trained_agents_and_trains_on(restored):
    output, module, checkpoint = restored
    assert f"checkpoint: {checkpoint}" in output
    assert "restored QMIX on 'mpe_spread' at iteration 1" in output
    compared = re.search(r"restored agents act as the trained ones: True \((\d+) greedy", output)
    assert compared and re.search(r"greedy return over 32 episodes: mean=-\d+\.\d", output)
    assert "continued training: iteration 2, 1000 env steps in all" in output
    # The comparison tells agents apart: an untrained team with another seed acts otherwise.
    restored_algo = Algorithm.from_checkpoint(str(checkpoint))
    other = (QMIXConfig().environment("mpe_spread", env_config={"difficulty": "simple"})
             .debugging(seed=1).build_algo())
    try:
        actions, other_actions = (module["greedy_actions"](algo) for algo in (restored_algo, other))
    finally:
        restored_algo.stop()
        other.stop()
    assert actions.shape == (int(compared.group(1)), 3)
    assert not np.array_equal(actions, other_actions)


def test_deploy_team_policy_matches_the_team_env(restored):
    _, _, checkpoint = restored
    output, _ = run_example("deploy_team_policy.py", checkpoint, "--episodes", 3)
    # The same greedy policy through the package's TeamEnv, on the same seeds.
    policy = TeamPolicy.from_checkpoint(checkpoint)
    env = make_team_env("mpe_spread", {"difficulty": "simple"})
    returns = []
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        policy.reset()
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step({TEAM: policy.act(obs[TEAM])})
            total, done = total + reward[TEAM], terminated[TEAM] or truncated[TEAM]
        returns.append(total)
    assert (f"TeamPolicy (3 agents) on Spread (simple), greedy return over 3 episodes: "
            f"mean={np.mean(returns):.1f} min={np.min(returns):.1f} max={np.max(returns):.1f}"
            ) in output


def test_custom_pettingzoo_env_learns_to_coordinate(ray_session):
    output, module = run_example("custom_pettingzoo_env.py", "--iterations", 3)
    assert number(r"greedy return: (\d+\.\d) of 10", output) >= 9.0  # random play: 3.3
    source = Path(module["__file__"]).read_text()
    library_part = source.split("# ---- the library")[1].split("# ----")[0]
    code = [line for line in library_part.splitlines()[1:] if line.strip()]
    assert len(code) <= 10  # as its docstring says


def test_custom_variant_trains_with_its_own_hook_and_metrics(ray_session):
    from rllib_softqmix import ConfigError

    output, module = run_example("custom_variant.py", "--iterations", 2)
    assert "HuberQMIX after 2 iterations" in output
    # The learner's own metric (set by its td_loss hook, logged by extra_stats), the
    # callback's and the env's.
    assert 0.0 <= number(r"huber_clipped_fraction=(\d\.\d+)", output) <= 1.0
    assert number(r"return_per_env_step=(-?\d+\.\d+)", output) >= 0.0
    assert 0.0 <= number(r"good_payoff_mean=(\d\.\d+)", output) <= 1.0
    config = module["HuberQMIXConfig"]()
    assert config.get_default_learner_class() is module["HuberQMIXLearner"]
    with pytest.raises(ConfigError, match="huber_delta"):
        module["HuberQMIXConfig"]().training(huber_delta=0.0)


def test_optuna_search_reports_the_best_of_the_lambdas_it_tried(ray_session, tmp_path):
    output, _ = run_example("optuna_gre_lambda.py", "--steps", 1200, "--samples", 2,
                            "--storage", tmp_path)
    rows = re.findall(r"^\s+(\d\.\d{6})\s+(-?\d+\.\d)\s+(\d\.\d{3})$", output, re.MULTILINE)
    assert len(rows) == 2
    tried = {float(lam): float(ret) for lam, ret, _ in rows}
    assert all(1e-4 <= lam <= 1e-3 for lam in tried) and len(tried) == 2
    best = number(r"best gre_lambda=(\d\.\d+),", output)
    assert best in tried and tried[best] == max(tried.values())
    assert number(r"best gre_lambda=.*greedy return=(-?\d+\.\d)", output) == tried[best]


@pytest.mark.slow
def test_asha_stops_the_trailing_temperatures_early(ray_session, tmp_path):
    steps = 400
    output, _ = run_example("asha_temperature_search.py", "--steps", steps, "--samples", 6,
                            "--batch", 4, "--storage", tmp_path)
    rows = re.findall(r"^\s+(\d\.\d{4})\s+(\d+)\s+(-?\d+\.\d)$", output, re.MULTILINE)
    assert len(rows) == 6
    reached = [int(env_steps) for _, env_steps, _ in rows]
    # Rungs at 1/4 and 1/2 of the budget: a stopped trial ends at one of them.
    assert set(reached) <= {steps // 4, steps // 2, steps} and steps in reached
    stopped = sum(env_steps < steps for env_steps in reached)
    assert stopped >= 1 and f"ASHA stopped {stopped} of 6 trials before {steps} env steps" in output
    best = number(r"best temperature=(\d\.\d+),", output)
    returns = {float(alpha): float(ret) for alpha, _, ret in rows}
    assert returns[best] == max(returns.values())
