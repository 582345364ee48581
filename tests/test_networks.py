"""Agent network, mixers and action selection."""

import torch

from rllib_softqmix.core.action_selection import (LinearSchedule, epsilon_greedy, greedy,
                                                  uniform_available)
from rllib_softqmix.core.agent import AgentNetwork, build_agent_inputs, shifted_onehot_actions
from rllib_softqmix.core.mixers import QMixer, VDNMixer


def test_qmix_is_monotone_in_every_agent_utility_on_random_states():
    torch.manual_seed(0)
    for layers in (1, 2):
        mixer = QMixer(n_agents=4, state_dim=7, embed_dim=8, hypernet_embed=16, hypernet_layers=layers)
        qs = torch.randn(64, 5, 4, requires_grad=True)
        states = torch.randn(64, 5, 7) * 3
        q_tot = mixer(qs, states)
        assert q_tot.shape == (64, 5)
        (grad,) = torch.autograd.grad(q_tot.sum(), qs)
        assert (grad >= 0).all()
        assert (grad > 0).any()


def test_vdn_is_the_sum_and_ignores_the_state():
    qs = torch.randn(3, 4, 5)
    assert torch.allclose(VDNMixer()(qs, torch.randn(3, 4, 9)), qs.sum(-1))


def test_whole_sequence_unroll_equals_step_by_step_acting():
    torch.manual_seed(0)
    agent = AgentNetwork(input_dim=6, n_actions=3, hidden_dim=8)
    inputs = torch.randn(2, 5, 4, 6)
    q_all, _ = agent(inputs, agent.initial_hidden(2, 4))
    hidden = agent.initial_hidden(2, 4)
    for t in range(5):
        q_t, hidden = agent(inputs[:, t:t + 1], hidden)
        assert torch.allclose(q_t[:, 0], q_all[:, t], atol=1e-6)


def test_agent_inputs_carry_last_action_and_agent_id():
    obs = torch.zeros(1, 2, 3, 4)  # B, T+1, N, O
    actions = torch.tensor([[[2, 0, 1]]])  # B, T, N
    last = shifted_onehot_actions(actions, n_actions=3)
    assert last.shape == (1, 2, 3, 3)
    assert last[0, 0].sum() == 0  # no previous action at t = 0
    assert last[0, 1].argmax(-1).tolist() == [2, 0, 1]
    inputs = build_agent_inputs(obs, last, obs_agent_id=True)
    assert inputs.shape == (1, 2, 3, 4 + 3 + 3)
    assert inputs[0, 1, :, -3:].argmax(-1).tolist() == [0, 1, 2]


def test_acting_step_equals_the_layers_called_as_modules():
    torch.manual_seed(0)
    inputs, hidden = torch.randn(2, 4, 6), torch.randn(2, 4, 8)
    for recurrent in (True, False):
        agent = AgentNetwork(input_dim=6, n_actions=3, hidden_dim=8, recurrent=recurrent)
        x = torch.relu(agent.fc1(inputs))
        if recurrent:
            _, expected_hidden = agent.rnn(x.view(1, 8, 8), hidden.view(1, 8, 8))
            features = expected_hidden = expected_hidden.view(2, 4, 8)
        else:
            features, expected_hidden = torch.relu(agent.fc_hidden(x)), hidden
        q, new_hidden = agent.step(inputs, hidden)
        assert torch.allclose(q, agent.fc2(features), atol=1e-6)
        assert torch.allclose(new_hidden, expected_hidden, atol=1e-6)
        assert torch.equal(agent(inputs.unsqueeze(1), hidden)[0][:, 0], q)


def test_greedy_and_random_actions_respect_masks():
    q = torch.tensor([[5.0, 1.0, 3.0]] * 1000)
    avail = torch.tensor([[0.0, 1.0, 1.0]] * 1000)
    assert (greedy(q, avail) == 2).all()
    random = uniform_available(avail)
    assert set(random.tolist()) == {1, 2}
    explored = epsilon_greedy(q, avail, epsilon=1.0)
    assert 0 not in set(explored.tolist())


def test_random_actions_are_uniform_over_each_rows_available_actions():
    avail = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0]]).repeat(30_000, 1)
    actions = uniform_available(avail, torch.Generator().manual_seed(0)).view(30_000, 2)
    counts = torch.bincount(actions[:, 0], minlength=5) / 30_000.0
    # Binomial standard deviation sqrt(p (1 - p) / n) = 0.0027 for p = 1/3: 0.015 is > 5 sigma.
    assert counts[[1, 4]].tolist() == [0.0, 0.0]
    assert (counts[[0, 2, 3]] - 1 / 3).abs().max() < 0.015
    assert (actions[:, 1] == 4).all()


def test_linear_schedule():
    schedule = LinearSchedule(1.0, 0.05, 100)
    assert schedule(0) == 1.0
    assert abs(schedule(50) - 0.525) < 1e-9
    assert schedule(100) == schedule(10_000) == 0.05
