"""Soft-QMIX: transforms, soft targets, gradient routing, acting, config."""

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from rllib_softqmix import ConfigError, SoftQMIXConfig
from rllib_softqmix.core.targets import lambda_returns, release_soft_lambda_returns
from rllib_softqmix.qmix.learner import QMIXTorchLearner
from rllib_softqmix.qmix.rl_module import QMIXTorchRLModule
from rllib_softqmix.soft_qmix.learner import SoftQMIXTorchLearner
from rllib_softqmix.soft_qmix.transforms import TransformF, TransformG

GAMMA, LAM = 0.9, 0.5


@pytest.mark.parametrize("seed", range(5))
def test_g_and_f_keep_every_agents_action_order(seed):
    torch.manual_seed(seed)
    n, a, s = 4, 6, 9
    g, f = TransformG(n, s, hidden=16), TransformF(n, s)
    states = torch.randn(32, 7, s) * 3
    q = torch.randn(32, 7, n, a) * 10
    for values in (g(q, states), f(q, states), f(g(q, states), states)):
        assert values.shape == q.shape
        assert torch.equal(q.argsort(-1), values.argsort(-1))
    # Per-action and chosen-value calls agree (no shape ambiguity when N == A or T == N).
    chosen = q[..., 2]
    assert torch.allclose(g(q, states)[..., 2], g(chosen, states), atol=1e-5)
    assert torch.allclose(f(q, states)[..., 2], f(chosen, states), atol=1e-5)


def test_g_slope_is_at_least_one():
    torch.manual_seed(0)
    g = TransformG(3, 5)
    states, q = torch.randn(64, 5), torch.randn(64, 3, 1, requires_grad=True)
    (grad,) = torch.autograd.grad(g(q, states).sum(), q)
    assert (grad >= 1.0 - 1e-6).all()


def soft_episode(terminated):
    """2 transitions padded to 3: r = [1, 2], V_t = 10 (t+1), E_t = 0.1 (t+1)."""
    rewards = torch.tensor([[1.0, 2.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    term = torch.tensor([[0.0, 1.0 if terminated else 0.0, 0.0]])
    values = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    bonus = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    return rewards, term, mask, values, bonus


def test_soft_targets_terminated_corrected():
    rewards, term, mask, values, bonus = soft_episode(terminated=True)
    targets = lambda_returns(rewards, term, mask, values, GAMMA, LAM, bonus)
    g1 = 2.0  # terminal: no bootstrap, no entropy of the stored final state
    g0 = 1.0 + GAMMA * (0.2 + (1 - LAM) * 20.0 + LAM * g1)
    assert targets[0, :2].tolist() == pytest.approx([g0, g1])


def test_soft_targets_truncated_corrected():
    rewards, term, mask, values, bonus = soft_episode(terminated=False)
    targets = lambda_returns(rewards, term, mask, values, GAMMA, LAM, bonus)
    g1 = 2.0 + GAMMA * (0.3 + 30.0)  # bootstraps from its final state, with its entropy
    g0 = 1.0 + GAMMA * (0.2 + (1 - LAM) * 20.0 + LAM * g1)
    assert targets[0, :2].tolist() == pytest.approx([g0, g1])


def test_release_recursion_leaks_entropy_past_termination():
    rewards, term, mask, values, bonus = soft_episode(terminated=True)
    targets = release_soft_lambda_returns(rewards, term, mask, values, GAMMA, LAM, bonus)
    g3 = 0.0                                   # 40 * (1 - sum d)
    g2 = LAM * GAMMA * (g3 + 0.4)              # padding: only the leaked entropy
    g1 = LAM * GAMMA * (g2 + 0.3) + 2.0        # terminal step picks it up
    g0 = LAM * GAMMA * (g1 + 0.2) + 1.0 + (1 - LAM) * GAMMA * (20.0 + 0.2)
    assert targets[0].tolist() == pytest.approx([g0, g1, g2])
    corrected = lambda_returns(rewards, term, mask, values, GAMMA, LAM, bonus)
    assert targets[0, 1] > corrected[0, 1]


def test_release_recursion_equals_corrected_one_for_full_length_truncated_episodes():
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    mask, term = torch.ones(1, 3), torch.zeros(1, 3)
    values, bonus = torch.tensor([[1.0, 2.0, 3.0, 4.0]]), torch.tensor([[0.5, 0.1, 0.2, 0.3]])
    assert torch.allclose(release_soft_lambda_returns(rewards, term, mask, values, GAMMA, LAM, bonus),
                          lambda_returns(rewards, term, mask, values, GAMMA, LAM, bonus))


def build(ray_session=None, **training):
    config = (SoftQMIXConfig().environment("mpe_spread")
              .training(train_batch_size_episodes=4, replay_buffer_capacity=16, **training)
              .reporting(min_sample_timesteps_per_iteration=100).debugging(seed=0))
    return config.build_algo()


def learner_batch(algo):
    algo.train()
    batch = algo.replay_buffer.sample(4, np.random.default_rng(0))
    return {key: torch.from_numpy(value) for key, value in batch.items()}


def grads_of(module, loss):
    module.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return {name for name, p in module.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_f_fit_trains_only_f_and_td_never_reaches_f(ray_session):
    algo = build()
    learner = algo.learner_group._learner
    module = learner.module["team"].unwrapped()
    batch = learner_batch(algo)
    fwd_out = dict(module.forward_train(batch))
    terms, _ = learner.loss_terms(module, algo.config, batch, fwd_out)
    f_params = {name for name, _ in module.named_parameters() if name.startswith("transform_f.")}
    assert grads_of(module, terms["f_fit_loss"]) and grads_of(module, terms["f_fit_loss"]) <= f_params
    td_grads = grads_of(module, terms["td_loss"])
    assert not td_grads & f_params
    assert any(name.startswith("transform_g.") for name in td_grads)
    assert any(name.startswith("agent.") for name in td_grads)
    assert not any(name.startswith("_target") for name in td_grads)
    algo.stop()


def test_evaluation_is_argmax_of_raw_q_and_ignores_the_state(ray_session):
    algo = build()
    module = algo.env_runner.module["team"].unwrapped()
    torch.manual_seed(1)
    obs = torch.randn(64, 3, 18)
    avail = (torch.rand(64, 3, 5) > 0.3).float()
    avail[..., 0] = 1.0
    state_in = {k: v.unsqueeze(0).repeat(64, 1, 1) for k, v in module.get_initial_state().items()}
    actions = []
    for state in (torch.randn(64, 54), torch.randn(64, 54) * 100):
        batch = {Columns.OBS: {"obs": obs, "state": state, "action_mask": avail}, Columns.STATE_IN: state_in}
        actions.append(module.forward_inference(batch)[Columns.ACTIONS])
        q, _ = module.step_utilities(batch)
        assert torch.equal(actions[-1], q.masked_fill(avail == 0, -1e9).argmax(-1))
    assert torch.equal(actions[0], actions[1])
    algo.stop()


def test_training_policy_samples_softmax_of_f_of_g_of_q(ray_session):
    algo = build(temperature=0.5)
    module = algo.env_runner.module["team"].unwrapped()
    torch.manual_seed(2)
    samples = 20000
    obs, state = torch.randn(1, 3, 18).repeat(samples, 1, 1), torch.randn(1, 54).repeat(samples, 1)
    avail = torch.tensor([[1.0, 1.0, 0.0, 1.0, 1.0]]).repeat(3, 1).unsqueeze(0).repeat(samples, 1, 1)
    state_in = {k: v.unsqueeze(0).repeat(samples, 1, 1) for k, v in module.get_initial_state().items()}
    batch = {Columns.OBS: {"obs": obs, "state": state, "action_mask": avail}, Columns.STATE_IN: state_in}
    actions = module.forward_exploration(batch)[Columns.ACTIONS]
    with torch.no_grad():
        q, _ = module.step_utilities(batch)
        expected = module.policy_log_probs(module.transform_g(q[:1], state[:1]), state[:1], avail[:1],
                                           module.transform_f).exp()[0]
    for agent in range(3):
        freq = torch.bincount(actions[:, agent], minlength=5).float() / samples
        assert freq[2] == 0.0
        assert torch.allclose(freq, expected[agent], atol=0.015)
    algo.stop()


def test_variant_qmix_is_plain_qmix_and_logs_epsilon_not_temperature(ray_session):
    config = SoftQMIXConfig().training(variant="qmix")
    assert config.get_default_learner_class() is QMIXTorchLearner
    assert config.get_default_rl_module_spec().module_class is QMIXTorchRLModule
    assert SoftQMIXConfig().get_default_learner_class() is SoftQMIXTorchLearner
    algo = build(variant="qmix")
    result = algo.train()
    assert "epsilon" in result and "temperature" not in result
    algo.stop()
    algo = build()
    result = algo.train()
    assert "temperature" in result and "epsilon" not in result
    learner = result["learners"]["team"]
    for key in ("td_loss", "f_fit_loss", "policy_entropy_mean", "policy_entropy_agent_0", "temperature"):
        assert key in learner, key
    algo.stop()


@pytest.mark.parametrize("training, key", [
    ({"temperature": 0.0}, "temperature"), ({"temperature": -0.1}, "temperature"),
    ({"variant": "soft"}, "variant"), ({"joint_mixer": "max"}, "joint_mixer"),
    ({"weighted_td": "yes"}, "weighted_td"), ({"exact_entropy": 1}, "exact_entropy"),
])
def test_bad_soft_settings_are_rejected_with_the_allowed_values(training, key):
    with pytest.raises(ConfigError, match=key):
        SoftQMIXConfig().training(**training)


def test_variant_error_names_the_allowed_variants():
    with pytest.raises(ConfigError, match=r"\['qmix', 'entropy', 'function_f', 'full'\]"):
        SoftQMIXConfig().training(variant="soft")


def test_weighted_td_needs_f():
    config = SoftQMIXConfig().environment("one_step_matrix").training(variant="entropy", weighted_td=True)
    with pytest.raises(ConfigError, match="weighted_td"):
        config.validate()
