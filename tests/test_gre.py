"""QMIX-GRE and the credit-entropy diagnostic (GRE paper eq. 6-10)."""

import numpy as np
import pytest
import torch

from rllib_softqmix import ConfigError, QMIXConfig, QMIXGREConfig
from rllib_softqmix.core.credit import closed_form_credit, normalized_entropy
from rllib_softqmix.core.mixers import QMixer
from rllib_softqmix.core.running_stats import RunningHistogram


def random_mixer_inputs(seed, b1_shift=0.0):
    torch.manual_seed(seed)
    mixer = QMixer(n_agents=4, state_dim=6, embed_dim=8, hypernet_embed=16)
    with torch.no_grad():
        mixer.hyper_b1.bias += b1_shift
    return mixer, torch.randn(50, 6) * 2, torch.randn(50, 4) * 3


def autograd_credit(mixer, states, qs):
    leaf = qs.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(mixer(leaf, states).sum(), leaf)
    return grad


@pytest.mark.parametrize("seed", range(3))
def test_autograd_credit_equals_the_corrected_closed_form(seed):
    mixer, states, qs = random_mixer_inputs(seed)
    exact = closed_form_credit(mixer.mixing_weights(states), qs, release_slip=False)
    assert torch.allclose(autograd_credit(mixer, states, qs), exact, atol=1e-5)
    assert torch.allclose(normalized_entropy(autograd_credit(mixer, states, qs)),
                          normalized_entropy(exact), atol=1e-5)


def test_release_closed_form_slips_only_on_negative_pre_activations():
    mixer, states, qs = random_mixer_inputs(0)
    weights = mixer.mixing_weights(states)
    z = (qs.unsqueeze(-1) * weights.w1).sum(-2) + weights.b1
    assert (z < 0).any() and (z >= 0).any()
    slipped = closed_form_credit(weights, qs, release_slip=True)
    by_hand = (weights.w1 * (torch.where(z >= 0, 1.0, torch.exp(torch.exp(z) - 1)) * weights.w2)
               .unsqueeze(-2)).sum(-1)
    assert torch.allclose(slipped, by_hand, atol=1e-6)
    assert not torch.allclose(slipped, autograd_credit(mixer, states, qs), atol=1e-3)
    # With every pre-activation positive there is nothing to slip on.
    mixer, states, qs = random_mixer_inputs(0, b1_shift=1000.0)
    assert torch.allclose(closed_form_credit(mixer.mixing_weights(states), qs, release_slip=True),
                          autograd_credit(mixer, states, qs), atol=1e-4)


def test_normalized_entropy_bounds():
    assert torch.allclose(normalized_entropy(torch.ones(3, 5)), torch.ones(3))
    assert normalized_entropy(torch.tensor([1.0, 0.0, 0.0])).item() < 1e-5
    values = normalized_entropy(torch.rand(1000, 3))
    assert (values >= 0).all() and (values <= 1 + 1e-6).all()


def test_run_percentiles():
    histogram = RunningHistogram()
    histogram.add(torch.linspace(0, 1, 10001))
    percentiles = histogram.percentiles((0.05, 0.5, 0.95))
    assert percentiles[0.05] == pytest.approx(0.05, abs=2e-3)
    assert percentiles[0.5] == pytest.approx(0.5, abs=2e-3)
    histogram = RunningHistogram()
    histogram.add(torch.ones(10))
    assert histogram.percentiles((0.05,))[0.05] == 1.0


def build(config, **training):
    config = (config.environment("mpe_spread")
              .training(train_batch_size_episodes=4, replay_buffer_capacity=16, **training)
              .reporting(min_sample_timesteps_per_iteration=100).debugging(seed=0))
    algo = config.build_algo()
    algo.train()
    learner = algo.learner_group._learner
    module = learner.module["team"].unwrapped()
    batch = {k: torch.from_numpy(v) for k, v in algo.replay_buffer.sample(4, np.random.default_rng(0)).items()}
    return algo, learner, module, batch


@pytest.mark.parametrize("mixer", ["vdn", "qmix_simple"])
def test_equal_credit_mixers_have_entropy_exactly_one(ray_session, mixer):
    algo, learner, module, batch = build(QMIXConfig(), mixer=mixer)
    credit = learner.credit_gradients(module, batch, dict(module.forward_train(batch)))
    entropy = normalized_entropy(credit)[batch["mask"] > 0]
    assert torch.allclose(entropy, torch.ones_like(entropy), atol=1e-6)
    assert algo.train()["learners"]["team"]["credit_entropy_mean"] == pytest.approx(1.0, abs=1e-6)
    algo.stop()


def test_a_mixer_built_to_favour_one_agent_has_low_entropy(ray_session):
    algo, learner, module, batch = build(QMIXConfig())
    fwd_out = dict(module.forward_train(batch))
    before = normalized_entropy(learner.credit_gradients(module, batch, fwd_out)).mean()
    with torch.no_grad():  # W1's rows for agents 1 and 2 -> 0: agent 0 takes the credit
        last = module.mixer.hyper_w1[-1]
        rows = last.weight.view(module.n_agents, -1, last.weight.shape[-1])
        rows[1:] = 0.0
        last.bias.view(module.n_agents, -1)[1:] = 0.0
    after = normalized_entropy(learner.credit_gradients(module, batch, fwd_out)).mean()
    assert before > 0.9 and after < 0.05
    algo.stop()


def test_credit_from_the_loss_graph_equals_a_fresh_mixer_pass(ray_session):
    algo, learner, module, batch = build(QMIXConfig())
    fwd_out = dict(module.forward_train(batch))
    fresh = learner.credit_gradients(module, batch, dict(fwd_out))
    q_tot = learner.joint_values(module, batch, fwd_out)
    reused = learner.credit_gradients(module, batch, fwd_out)
    assert torch.allclose(reused, fresh, atol=1e-6) and (fresh > 0).any()
    module.zero_grad(set_to_none=True)
    q_tot.sum().backward()  # the loss's backward still has its graph
    assert module.mixer.hyper_w1[-1].weight.grad.abs().sum() > 0
    algo.stop()


SPEC_GRE_PARAMETERS = ("mixer.hyper_w1.", "mixer.hyper_b1.", "mixer.hyper_w2.")


@pytest.mark.parametrize("gradient", ["autograd", "release_closed_form"])
def test_regulariser_reaches_only_w1_b1_and_w_final(ray_session, gradient):
    algo, learner, module, batch = build(QMIXGREConfig(), gre_gradient=gradient)
    fwd_out = dict(module.forward_train(batch))
    q_tot = learner.joint_values(module, batch, fwd_out)
    term = learner.extra_losses(module, algo.config, batch, fwd_out, q_tot, None)["gre_loss"]
    module.zero_grad(set_to_none=True)
    term.backward()
    reached = {name for name, p in module.named_parameters()
               if p.grad is not None and p.grad.abs().sum() > 0}
    assert reached and all(name.startswith(SPEC_GRE_PARAMETERS) for name in reached)
    assert {prefix for prefix in SPEC_GRE_PARAMETERS
            if any(name.startswith(prefix) for name in reached)} == set(SPEC_GRE_PARAMETERS)
    algo.stop()


def test_gre_lambda_zero_is_qmix_exactly(ray_session):
    settings = dict(td_lambda=0.0, td_loss_scale=1.0, optimizer_type="rmsprop", lr=5e-4,
                    episodes_per_train_step=1, epsilon_anneal_time=50_000)
    runs = []
    for config, extra in ((QMIXGREConfig(), {"gre_lambda": 0.0}), (QMIXConfig(), {})):
        config.env_runners(num_envs_per_env_runner=1)
        algo, learner, module, batch = build(config, **settings, **extra)
        fwd_out = dict(module.forward_train(batch))
        terms, _ = learner.loss_terms(module, algo.config, batch, fwd_out)
        loss = sum(terms.values())
        learner.get_optimizer("team").zero_grad()
        loss.backward()
        learner.get_optimizer("team").step()
        runs.append((loss.item(), {k: v.clone() for k, v in module.state_dict().items()}))
        algo.stop()
    (gre_loss, gre_weights), (qmix_loss, qmix_weights) = runs
    assert gre_loss == qmix_loss
    assert all(torch.equal(gre_weights[key], qmix_weights[key]) for key in qmix_weights)


@pytest.mark.parametrize("training, key", [
    ({"gre_lambda": -1e-3}, "gre_lambda"), ({"gre_gradient": "numeric"}, "gre_gradient")])
def test_bad_gre_settings(training, key):
    with pytest.raises(ConfigError, match=key):
        QMIXGREConfig().training(**training)


def test_gre_needs_the_qmix_mixer():
    with pytest.raises(ConfigError, match="mixer"):
        QMIXGREConfig().environment("mpe_spread").training(mixer="vdn").validate()
    QMIXGREConfig().environment("mpe_spread").training(mixer="vdn", gre_lambda=0.0).validate()


def final_credit_entropy_and_greedy_return(seed, gre_lambda):
    config = (QMIXGREConfig().environment("m_step_matrix", env_config={"m": 4})
              .training(train_batch_size_episodes=32, replay_buffer_capacity=500,
                        episodes_per_train_step=8, epsilon_anneal_time=2000, gre_lambda=gre_lambda)
              .reporting(min_sample_timesteps_per_iteration=1000).debugging(seed=seed))
    algo = config.build_algo()
    for _ in range(6):
        result = algo.train()
    episodes = algo.env_runner.sample(num_episodes=8, explore=False)
    algo.stop()
    return (result["learners"]["team"]["credit_entropy_mean"],
            float(np.mean([episode.get_return() for episode in episodes])))


def test_gre_makes_credit_clearly_more_discriminative_without_losing_return(ray_session):
    """QMIX is QMIX-GRE with lambda 0 (the same classic-PyMARL learner, as in the paper).
    m-step game (m = 4), 6000 env steps, seeds 0-3. Measured over seeds 0-7 under two random
    streams (two ways of drawing the explorative action), 16 runs of each: final mean credit
    entropy QMIX 0.972-1.000, QMIX-GRE (lambda 0.1) 0.67-0.99, lower than QMIX's by 0.17 on
    average and by more than 0.05 in 14 of 16 runs; greedy return 4 (the decoy) in every
    run but one GRE run that found 7. Seeds 0-3 here: drops 0.22 / 0.01 / 0.26 / 0.03.
    lambda 1.0 goes down to 0.04. At the paper's lambda 1e-3 the entropy does not move
    measurably within CI budgets (README), so this uses 0.1 to test the mechanism."""
    drops = []
    for seed in range(4):
        qmix_entropy, qmix_return = final_credit_entropy_and_greedy_return(seed, 0.0)
        gre_entropy, gre_return = final_credit_entropy_and_greedy_return(seed, 0.1)
        assert qmix_entropy > 0.95
        assert gre_return >= qmix_return
        drops.append(qmix_entropy - gre_entropy)
    assert np.mean(drops) > 0.08, drops
    assert sum(drop > 0.05 for drop in drops) >= 2, drops
