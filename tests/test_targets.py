"""TD(lambda) targets against hand-computed returns of tiny episodes."""

import pytest
import torch

from rllib_softqmix.core.targets import lambda_returns, last_valid_step

GAMMA = 0.9


def batch_of(rewards, values, length, terminated):
    """One padded episode: rewards [T], values [T+1], L valid steps."""
    steps = len(rewards)
    mask = torch.tensor([[1.0 if t < length else 0.0 for t in range(steps)]])
    term = torch.zeros(1, steps)
    if terminated:
        term[0, length - 1] = 1.0
    return (torch.tensor([rewards], dtype=torch.float32), term, mask,
            torch.tensor([values], dtype=torch.float32))


def test_last_valid_step_marks_episode_ends():
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert last_valid_step(mask).tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]


@pytest.mark.parametrize("terminated", [True, False])
def test_one_step_targets_bootstrap_only_when_not_terminated(terminated):
    rewards, term, mask, values = batch_of([1.0, 2.0, 3.0], [10.0, 20.0, 30.0, 40.0], 3, terminated)
    targets = lambda_returns(rewards, term, mask, values, GAMMA, td_lambda=0.0)
    last = 3.0 + (0.0 if terminated else GAMMA * 40.0)
    assert targets[0].tolist() == pytest.approx([1.0 + GAMMA * 20.0, 2.0 + GAMMA * 30.0, last])


@pytest.mark.parametrize("terminated", [True, False])
def test_lambda_one_is_the_monte_carlo_return(terminated):
    rewards, term, mask, values = batch_of([1.0, 2.0, 3.0], [10.0, 20.0, 30.0, 40.0], 3, terminated)
    targets = lambda_returns(rewards, term, mask, values, GAMMA, td_lambda=1.0)
    tail = 0.0 if terminated else GAMMA * 40.0          # bootstrap of a truncated episode
    g2 = 3.0 + tail
    g1 = 2.0 + GAMMA * g2
    g0 = 1.0 + GAMMA * g1
    assert targets[0].tolist() == pytest.approx([g0, g1, g2])


def test_intermediate_lambda_mixes_values_and_returns():
    lam = 0.5
    rewards, term, mask, values = batch_of([1.0, 2.0], [10.0, 20.0, 30.0], 2, terminated=False)
    targets = lambda_returns(rewards, term, mask, values, GAMMA, td_lambda=lam)
    g1 = 2.0 + GAMMA * 30.0
    g0 = 1.0 + GAMMA * ((1 - lam) * 20.0 + lam * g1)
    assert targets[0].tolist() == pytest.approx([g0, g1])


@pytest.mark.parametrize("lam", [0.0, 0.6, 1.0])
def test_padding_never_leaks_into_a_shorter_episode(lam):
    # Episode 0 has 2 transitions (terminated); episode 1 has 4. Padding values are huge.
    rewards = torch.tensor([[1.0, 1.0, 99.0, 99.0], [1.0, 1.0, 1.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    term = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    values = torch.tensor([[5.0, 5.0, 1e6, 1e6, 1e6], [5.0, 5.0, 5.0, 5.0, 5.0]])
    targets = lambda_returns(rewards, term, mask, values, GAMMA, td_lambda=lam)
    alone = lambda_returns(rewards[:1, :2], term[:1, :2], mask[:1, :2], values[:1, :3], GAMMA, lam)
    assert targets[0, :2].tolist() == pytest.approx(alone[0].tolist())
    assert targets[0, 2:].tolist() == [0.0, 0.0]
    assert targets[0, 1].item() == pytest.approx(1.0)  # terminal step: reward only


def test_truncated_episode_in_a_padded_batch_bootstraps_from_its_own_last_value():
    rewards = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    term = torch.zeros(2, 2)
    values = torch.tensor([[0.0, 7.0, -1e6], [0.0, 0.0, 0.0]])
    targets = lambda_returns(rewards, term, mask, values, GAMMA, td_lambda=0.8)
    assert targets[0, 0].item() == pytest.approx(1.0 + GAMMA * 7.0)


def test_bonus_is_added_to_every_bootstrapped_value():
    rewards, term, mask, values = batch_of([1.0, 2.0], [10.0, 20.0, 30.0], 2, terminated=True)
    bonus = torch.tensor([[100.0, 0.5, 0.25]])
    targets = lambda_returns(rewards, term, mask, values, GAMMA, td_lambda=0.0, bonus=bonus)
    # The terminal step gets no bonus (no next state); the first gets E_1.
    assert targets[0].tolist() == pytest.approx([1.0 + GAMMA * (20.0 + 0.5), 2.0])
