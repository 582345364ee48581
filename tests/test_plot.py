"""``python -m rllib_softqmix plot``: reading Tune results, grouping seeds, curves, tables, errors."""

import json
import shutil
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from ray import tune

from rllib_softqmix import QMIXConfig
from rllib_softqmix.cli import main
from rllib_softqmix.plotting import (Curve, Metric, Trial, align, algorithm_name, choose_metrics,
                                     flatten, group_trials, load_trials, plot_curves, trial_curve)

GREEDY = "evaluation/env_runners/episode_return_mean"
TRAINING = "env_runners/episode_return_mean"
ENTROPY = "learners/team/credit_entropy_mean"
LEARNING_RATES = (0.0001, 0.01)
# Distinct payoffs, so that greedy returns tell the learned joint actions apart.
PAYOFF = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]


@pytest.fixture(scope="module")
def experiment(ray_session, tmp_path_factory):
    """A real Tune experiment: QMIX, 2 learning rates x 2 seeds, 3 iterations of 200 env
    steps, a greedy evaluation of 4 episodes every iteration."""
    config = (QMIXConfig().environment("one_step_matrix", env_config={"payoff": PAYOFF})
              .training(lr=tune.grid_search(list(LEARNING_RATES)), train_batch_size_episodes=16,
                        replay_buffer_capacity=64)
              .reporting(min_sample_timesteps_per_iteration=200)
              .evaluation(evaluation_interval=1, evaluation_duration=4)
              .debugging(seed=tune.grid_search([0, 1])))
    storage = tmp_path_factory.mktemp("tune")
    tune.Tuner("QMIX", param_space=config, run_config=tune.RunConfig(
        name="tiny", storage_path=str(storage), stop={"training_iteration": 3}, verbose=0)).fit()
    return storage / "tiny"


def trial_dirs(experiment_dir):
    return sorted(path for path in experiment_dir.iterdir() if (path / "result.json").is_file())


def read_lines(trial_dir):
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]


def write_lines(trial_dir, results):
    (trial_dir / "result.json").write_text("".join(json.dumps(result) + "\n" for result in results))


def lookup(result, path):
    for part in path.split("/"):
        result = result.get(part, {}) if isinstance(result, dict) else {}
    return None if result == {} else result


def final_value(trial_dir, path):
    """The trial's last reported value at ``path``, read independently of the plotting code."""
    values = [lookup(result, path) for result in read_lines(trial_dir)]
    return [value for value in values if value is not None][-1]


def trials_by_lr(experiment_dir):
    by_lr = {}
    for trial_dir in trial_dirs(experiment_dir):
        lr = json.loads((trial_dir / "params.json").read_text())["lr"]
        by_lr.setdefault(lr, []).append(trial_dir)
    return by_lr


def expected_cell(trial_dirs_of_group, path):
    finals = np.array([final_value(trial_dir, path) for trial_dir in trial_dirs_of_group])
    return f"{finals.mean():.3f} ± {finals.std():.3f} ({len(finals)} seeds)"


def table_rows(text):
    """The cells of a Markdown table's lines (header first, separator skipped)."""
    return [[cell.strip() for cell in line.strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|") and not line.startswith("|---")]


def test_table_has_one_row_per_setting_with_each_seeds_final_value(experiment, tmp_path,
                                                                    monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["plot", str(experiment), "--table"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows[0] == ["group", "greedy return", "credit entropy", "env steps"]
    by_lr = trials_by_lr(experiment)
    assert sorted(by_lr) == list(LEARNING_RATES) and all(len(dirs) == 2 for dirs in by_lr.values())
    assert rows[1:] == [[f"QMIX lr={lr}", expected_cell(by_lr[lr], GREEDY),
                         expected_cell(by_lr[lr], ENTROPY), "600"] for lr in LEARNING_RATES]
    assert list(tmp_path.iterdir()) == []  # --table draws no image


def test_cli_writes_the_png_and_prints_the_table(experiment, tmp_path, capsys):
    out = tmp_path / "figures" / "curves.png"
    assert main(["plot", str(experiment), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert len(table_rows(printed)) == 3
    assert printed.rstrip().endswith(f"learning curves: {out}")
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    height, width, _ = matplotlib.image.imread(out).shape
    assert width > height > 100


def test_figure_has_one_panel_per_metric_and_a_mean_line_per_group(experiment, tmp_path):
    trials = load_trials([experiment])
    metrics = choose_metrics(trials)
    figure = plot_curves(group_trials(trials), metrics, tmp_path / "curves.png")
    assert [axis.get_title() for axis in figure.axes] == ["greedy return", "credit entropy"]
    by_lr = trials_by_lr(experiment)
    for axis, path in zip(figure.axes, (GREEDY, ENTROPY)):
        lines = axis.get_lines()
        assert [line.get_label() for line in lines] == [f"QMIX lr={lr} (n=2)" for lr in LEARNING_RATES]
        for line, lr in zip(lines, LEARNING_RATES):
            seeds = [[lookup(result, path) for result in read_lines(trial_dir)]
                     for trial_dir in by_lr[lr]]
            assert np.array_equal(line.get_xdata(), [200, 400, 600])
            assert np.allclose(line.get_ydata(), np.mean(seeds, axis=0))


def test_metric_option_selects_result_paths(experiment, capsys):
    assert main(["plot", str(experiment), "--table", "--metric", "learners/team/td_loss",
                 "--metric", TRAINING]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows[0] == ["group", "learners/team/td_loss", TRAINING, "env steps"]
    by_lr = trials_by_lr(experiment)
    assert [row[1:3] for row in rows[1:]] == [
        [expected_cell(by_lr[lr], "learners/team/td_loss"), expected_cell(by_lr[lr], TRAINING)]
        for lr in LEARNING_RATES]


def test_a_single_trial_directory_is_one_group_of_one_seed(experiment, capsys):
    trial_dir = trial_dirs(experiment)[0]
    assert main(["plot", str(trial_dir), str(trial_dir), "--table"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows[1:] == [["QMIX", f"{final_value(trial_dir, GREEDY):.3f} ± 0.000 (1 seed)",
                         f"{final_value(trial_dir, ENTROPY):.3f} ± 0.000 (1 seed)", "600"]]


def test_trials_without_evaluation_fall_back_to_the_training_return(experiment, tmp_path, capsys):
    copy = tmp_path / "tiny"
    shutil.copytree(experiment, copy)
    without_evaluation = trials_by_lr(copy)[LEARNING_RATES[1]]
    for trial_dir in without_evaluation:
        write_lines(trial_dir, [{k: v for k, v in result.items() if k != "evaluation"}
                                for result in read_lines(trial_dir)])
    assert main(["plot", str(copy), "--table"]) == 0
    printed = capsys.readouterr().out
    rows = table_rows(printed)
    assert rows[1][1] == expected_cell(trials_by_lr(copy)[LEARNING_RATES[0]], GREEDY)
    assert rows[2][1] == expected_cell(without_evaluation, TRAINING) + "*"
    assert f"(*) greedy return: seeds without {GREEDY} use {TRAINING}" in printed


def test_repeated_iterations_of_a_restored_trial_and_a_cut_off_last_line(experiment, tmp_path,
                                                                       capsys):
    original = trial_dirs(experiment)[0]
    trial_dir = tmp_path / original.name
    shutil.copytree(original, trial_dir)
    results = read_lines(trial_dir)
    replayed = json.loads(json.dumps(results[1:]))  # restored after iteration 1, ran 2 and 3 again
    for result, value in zip(replayed, (100.0, 123.0)):
        result["evaluation"]["env_runners"]["episode_return_mean"] = value
    write_lines(trial_dir, results + replayed)
    with open(trial_dir / "result.json", "a") as file:
        file.write('{"num_env_steps_sampled_lifetime": 800.0, "evalua')
    curve = trial_curve(load_trials([trial_dir])[0], Metric("greedy", (GREEDY,)))
    assert np.array_equal(curve.steps, [200, 400, 600])
    assert np.array_equal(curve.values, [lookup(results[0], GREEDY), 100.0, 123.0])
    assert main(["plot", str(trial_dir), "--table", "--metric", GREEDY]) == 0
    assert table_rows(capsys.readouterr().out)[1] == ["QMIX", "123.000 ± 0.000 (1 seed)", "600"]


def test_a_metric_that_no_trial_reports_is_named_with_the_existing_paths(experiment, capsys):
    assert main(["plot", str(experiment), "--metric", "learners/team/td_los"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: no trial reports the metric 'learners/team/td_los'. "
                            "Did you mean 'learners/team/td_loss'?")
    existing = error.split("Metric paths that exist: ")[1].strip().split(", ")
    assert {GREEDY, TRAINING, ENTROPY, "learners/team/td_loss"} <= set(existing)
    assert "config/lr" not in existing


def make_bad_path(kind, tmp_path):
    if kind == "missing":
        return tmp_path / "nowhere"
    if kind == "plain directory":
        (tmp_path / "notes.txt").write_text("not a result")
        return tmp_path
    if kind == "experiment without trials":
        (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_text("{}")
        return tmp_path
    trial = tmp_path / "QMIX_one_step_matrix_abcde_00000_0_2026-01-01_00-00-00"
    trial.mkdir()
    (trial / "params.json").write_text('{"env": "one_step_matrix"}')
    (trial / "result.json").write_text("")
    return tmp_path


@pytest.mark.parametrize("kind, message", [
    ("missing", "nowhere does not exist"),
    ("plain directory", "is not a Tune results directory"),
    ("experiment without trials", "is a Tune results directory without trials"),
    ("trials without results", "no trial has reported a result yet"),
])
def test_paths_that_hold_no_results_are_errors(kind, message, tmp_path, capsys):
    path = make_bad_path(kind, tmp_path)
    assert main(["plot", str(path), "--out", str(tmp_path / "curves.png")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {path}") and message in error
    assert not (tmp_path / "curves.png").exists()


def test_align_averages_only_the_seeds_that_cover_each_step():
    first = Curve(np.array([0.0, 100.0, 200.0]), np.array([0.0, 10.0, 20.0]), GREEDY)
    second = Curve(np.array([50.0, 150.0]), np.array([5.0, 5.0]), GREEDY)
    aligned = align([first, second])
    assert np.array_equal(aligned.steps, [0, 50, 100, 150, 200])
    assert np.array_equal(aligned.seeds, [1, 2, 2, 2, 1])
    assert np.allclose(aligned.mean, [0, 5, 7.5, 10, 20])
    assert np.allclose(aligned.std, [0, 0, 2.5, 5, 0])


def synthetic_trial(algorithm, seed, **settings):
    return Trial(Path(f"{algorithm}_{seed}"), algorithm,
                 flatten({"env": "mpe_spread", "seed": seed, "lr": 0.0005, **settings}), [])


def test_groups_are_the_algorithm_and_its_varying_settings_without_the_seed():
    trials = [synthetic_trial("QMIX", seed, env_config={"difficulty": difficulty, "n_agents": 3})
              for difficulty in ("simple", "hard") for seed in (0, 1, 2)]
    trials += [synthetic_trial("SoftQMIX", seed, temperature=temperature, variant="full")
               for temperature in (0.1, 0.03) for seed in (0, 1)]
    groups = group_trials(trials)
    assert [group.label for group in groups] == [
        "QMIX env_config.difficulty=hard", "QMIX env_config.difficulty=simple",
        "SoftQMIX temperature=0.03", "SoftQMIX temperature=0.1"]
    assert [sorted(trial.settings["seed"] for trial in group.trials) for group in groups] == [
        [0, 1, 2], [0, 1, 2], [0, 1], [0, 1]]


@pytest.mark.parametrize("name, env, trial_id, algorithm", [
    ("SoftQMIX_mpe_spread_ab12c_00003_3_seed=1,temperature=0.0300_2026-01-01_00-00-00",
     "mpe_spread", "ab12c_00003", "SoftQMIX"),
    ("QMIXGRE_traffic_junction_0f00d_00000_0_2026-01-01_00-00-00", "traffic_junction",
     "0f00d_00000", "QMIXGRE"),
    ("my_custom_name", "mpe_spread", "0f00d_00000", "trial"),
])
def test_algorithm_name_from_the_trial_directory(name, env, trial_id, algorithm):
    assert algorithm_name(Path(name), {"env": env}, trial_id) == algorithm


def test_a_win_rate_gets_its_column_and_panel(experiment, tmp_path, capsys):
    """SMACv2-like results (battle_won_mean, here written into the real results)."""
    copy = tmp_path / "tiny"
    shutil.copytree(experiment, copy)
    finals = {}
    for index, trial_dir in enumerate(trial_dirs(copy)):
        results = read_lines(trial_dir)
        for step, result in enumerate(results):
            result["evaluation"]["env_runners"]["battle_won_mean"] = (index + step) / 10
        write_lines(trial_dir, results)
        finals[trial_dir] = (index + len(results) - 1) / 10
    out = tmp_path / "curves.png"
    assert main(["plot", str(copy), "--out", str(out)]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows[0] == ["group", "greedy return", "win rate", "credit entropy", "env steps"]
    for row, lr in zip(rows[1:], LEARNING_RATES):
        won = np.array([finals[trial_dir] for trial_dir in trials_by_lr(copy)[lr]])
        assert row[2] == f"{won.mean():.3f} ± {won.std():.3f} (2 seeds)"
    assert out.stat().st_size > 0
    figure = plot_curves(group_trials(load_trials([copy])), choose_metrics(load_trials([copy])),
                         tmp_path / "again.png")
    assert [axis.get_title() for axis in figure.axes] == ["greedy return", "win rate",
                                                          "credit entropy"]
