"""Every invalid setting is rejected up front, with the key in the message."""

import pytest
from ray import tune

from rllib_softqmix import ConfigError, QMIXConfig, VDNConfig

INVALID_TRAINING = [
    ("mixer", "qmx"), ("mixer", None), ("agent_network", "lstm"),
    ("td_lambda", -0.1), ("td_lambda", 1.5), ("td_lambda", "0.5"),
    ("gamma", 0.0), ("gamma", 1.01), ("lr", 0.0), ("lr", -1e-3),
    ("train_batch_size_episodes", 0), ("train_batch_size_episodes", 2.5),
    ("replay_buffer_capacity", 0), ("target_update_interval_episodes", 0),
    ("episodes_per_train_step", 0), ("gradient_steps_per_train_step", 0),
    ("epsilon_start", 1.5), ("epsilon_finish", -0.1), ("epsilon_anneal_time", -1),
    ("rnn_hidden_dim", 0), ("mixing_embed_dim", 0), ("hypernet_layers", 3),
    ("double_q", "yes"), ("obs_agent_id", 1), ("optimizer_type", "sgd"),
    ("grad_clip", 0.0), ("td_loss_scale", 0.0), ("torch_num_threads", 0),
    ("td_lambda", tune.grid_search([0.5, 2.0])), ("lr", tune.uniform(-1.0, 1.0)),
    ("mixer", tune.choice(["qmix", "qmiks"])),
]


@pytest.mark.parametrize("key, value", INVALID_TRAINING)
def test_training_rejects_invalid_values_immediately(key, value):
    with pytest.raises(ConfigError, match=key):
        QMIXConfig().training(**{key: value})


@pytest.mark.parametrize("key, value", INVALID_TRAINING[:12])
def test_validate_rejects_invalid_values_set_any_other_way(key, value):
    config = QMIXConfig().environment("one_step_matrix")
    config.update_from_dict({key: value})
    with pytest.raises(ConfigError, match=key):
        config.validate()


def test_buffer_smaller_than_a_batch():
    config = QMIXConfig().environment("one_step_matrix").training(
        replay_buffer_capacity=16, train_batch_size_episodes=32)
    with pytest.raises(ConfigError, match="replay_buffer_capacity"):
        config.validate()


def test_unknown_env_and_env_keys():
    with pytest.raises(ConfigError, match="unknown env 'mpe_sprd'"):
        QMIXConfig().environment("mpe_sprd")
    with pytest.raises(ConfigError, match="difficulty_level"):
        QMIXConfig().environment("mpe_spread", env_config={"difficulty_level": "hard"})
    with pytest.raises(ConfigError, match="env is not set"):
        QMIXConfig().validate()


def test_env_whose_spaces_teamenv_cannot_handle():
    from ray.tune.registry import register_env
    from toy_envs import ContinuousEnv

    register_env("continuous_toy", lambda config: ContinuousEnv())
    with pytest.raises(ConfigError, match="Discrete"):
        QMIXConfig().environment("continuous_toy").validate()


def test_unknown_keys_from_a_dict_config_are_errors_with_a_suggestion():
    config = QMIXConfig().update_from_dict({"env": "mpe_spread", "td_lamda": 0.3})
    with pytest.raises(ConfigError, match="td_lamda.*did you mean 'td_lambda'"):
        config.validate()


@pytest.mark.parametrize("setting, replacement", [
    ({"train_batch_size": 64}, "train_batch_size_episodes"),
    ({"num_epochs": 4}, "gradient_steps_per_train_step"),
])
def test_rllib_settings_this_family_ignores_are_errors(setting, replacement):
    config = QMIXConfig().environment("mpe_spread").training(**setting)
    with pytest.raises(ConfigError, match=replacement):
        config.validate()


def test_other_policies_are_rejected():
    config = QMIXConfig().environment("mpe_spread").multi_agent(
        policies={"p0", "p1"}, policy_mapping_fn=lambda agent_id, *a, **k: "p0")
    with pytest.raises(ConfigError, match="policies"):
        config.validate()


def test_valid_defaults_and_vdn():
    QMIXConfig().environment("mpe_spread").validate()
    config = VDNConfig().environment("one_step_matrix")
    config.validate()
    assert config.mixer == "vdn"


def test_several_learners_are_not_taken_for_a_per_learner_batch_size():
    # RLlib derives train_batch_size_per_learner from num_learners; only a set value is an error.
    QMIXConfig().environment("one_step_matrix").learners(num_learners=2).validate()
