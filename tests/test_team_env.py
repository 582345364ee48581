"""TeamEnv on PettingZoo envs with and without state(), with masks, time limits, deaths."""

import gymnasium as gym
import numpy as np
import pytest
from pettingzoo import ParallelEnv
from toy_envs import ContinuousEnv, NoAgentsEnv, ToyEnv, UndeclaredStateEnv, UnequalActionsEnv

from rllib_softqmix import TeamEnv, TeamEnvError


def step(env, actions):
    obs, rewards, terminateds, truncateds, infos = env.step({"team": np.asarray(actions)})
    return obs["team"], rewards["team"], terminateds["team"], truncateds["team"], infos["team"]


def test_spaces_padding_and_state_from_concatenated_observations():
    toy = ToyEnv(with_state=False)
    env = TeamEnv(toy)
    assert toy.resets == 0  # its state() raises NotImplementedError: no reset to find a state
    space = env.observation_spaces["team"]
    assert space["obs"].shape == (3, 4) and space["state"].shape == (12,)
    assert space["action_mask"].shape == (3, 4)
    assert list(env.action_spaces["team"].nvec) == [4, 4, 4]
    obs, _ = env.reset()
    team = obs["team"]
    assert team["obs"][0].tolist() == [0, 0, 0, 0]              # size 2, zero-padded
    assert team["obs"][1].tolist() == [10, 10, 10, 0]           # size 3, zero-padded
    assert team["obs"][2].tolist() == [20, 20, 20, 20]
    assert team["state"].tolist() == team["obs"].reshape(-1).tolist()
    assert (team["action_mask"] == 1).all()                     # no masks given: all ones
    assert space.contains(team)


def test_state_comes_from_the_env_when_it_has_one():
    env = TeamEnv(ToyEnv(with_state=True))
    assert env.observation_spaces["team"]["state"].shape == (6,)
    obs, _ = env.reset()
    assert obs["team"]["state"].tolist() == [100.0] * 6
    obs, *_ = step(env, [0, 0, 0])
    assert obs["state"].tolist() == [101.0] * 6


def test_state_without_a_state_space_is_used_and_its_size_found_by_one_reset():
    toy = UndeclaredStateEnv()
    env = TeamEnv(toy)
    assert toy.resets == 1  # its state() fails before a reset: TeamEnv reset it once
    assert env.observation_spaces["team"]["state"].shape == (5,)
    obs, _ = env.reset()
    assert obs["team"]["state"].tolist() == [200.0] * 5
    obs, *_ = step(env, [0, 0, 0])
    assert obs["state"].tolist() == [201.0] * 5
    assert env.observation_spaces["team"].contains(obs)


def test_a_state_that_changes_size_is_an_error_naming_both_sizes():
    env = _reset(TeamEnv(UndeclaredStateEnv(grow_at=2)))
    step(env, [0, 0, 0])
    with pytest.raises(TeamEnvError, match=r"state\(\) returned 'state' of shape \(6,\).*\(5,\), "
                                           r"from the size of its first state\(\)"):
        step(env, [0, 0, 0])


class FailingResetEnv(UndeclaredStateEnv):
    def reset(self, seed=None, options=None):
        raise RuntimeError("no simulator")


class NoneStateEnv(UndeclaredStateEnv):
    def state(self):
        return None


class StateSpaceOnlyEnv(ParallelEnv):
    """Declares a state_space and keeps ParallelEnv's state()."""
    possible_agents = ["a0"]
    state_space = gym.spaces.Box(-1.0, 1.0, (2,))

    def observation_space(self, agent):
        return gym.spaces.Box(-1.0, 1.0, (2,))

    def action_space(self, agent):
        return gym.spaces.Discrete(2)


@pytest.mark.parametrize("env_class, message", [
    (FailingResetEnv, r"resets it once at construction.*no simulator.*Declare state_space"),
    (NoneStateEnv, r"state\(\) returned None; TeamEnv needs an array of numbers"),
    (StateSpaceOnlyEnv, r"declares a state_space but does not implement state\(\)")])
def test_unusable_states_are_rejected_at_construction(env_class, message):
    with pytest.raises(TeamEnvError, match=message):
        TeamEnv(env_class())


def test_a_declared_state_space_whose_state_raises_not_implemented_says_what_to_do():
    toy = ToyEnv()
    toy.state_space = gym.spaces.Box(-1.0, 1.0, (6,))
    env = TeamEnv(toy)
    with pytest.raises(TeamEnvError, match=r"raised NotImplementedError.*implement state\(\) or "
                                           r"remove state_space"):
        env.reset()


@pytest.mark.parametrize("mask_in", ["obs", "infos"])
def test_action_masks_are_read_from_dict_observations_and_from_infos(mask_in):
    env = TeamEnv(ToyEnv(mask_in=mask_in))
    obs, _ = env.reset()
    assert obs["team"]["action_mask"].tolist() == [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    assert obs["team"]["obs"][1].tolist() == [10, 10, 10, 0]
    obs, *_ = step(env, [0, 1, 2])
    assert obs["action_mask"][0].tolist() == [0, 1, 1, 0]


def test_team_reward_sum_and_mean():
    obs, reward, *_ = step(_reset(TeamEnv(ToyEnv(), team_reward="sum")), [0, 0, 0])
    assert reward == 6.0
    obs, reward, *_ = step(_reset(TeamEnv(ToyEnv(), team_reward="mean")), [0, 0, 0])
    assert reward == 2.0


def _reset(env):
    env.reset()
    return env


def test_time_limit_is_a_truncation_with_real_final_observations():
    env = _reset(TeamEnv(ToyEnv(limit=3)))
    for t in range(3):
        obs, _, terminated, truncated, _ = step(env, [0, 0, 0])
        assert terminated is False
        assert truncated is (t == 2)
    # The successor of the final step is the agents' real observation, not a dead mask.
    assert obs["obs"][2].tolist() == [23.0] * 4
    assert (obs["action_mask"] == 1).all()


def test_termination_is_not_a_truncation():
    env = _reset(TeamEnv(ToyEnv(limit=10, terminate_at=2)))
    step(env, [0, 0, 0])
    _, _, terminated, truncated, _ = step(env, [0, 0, 0])
    assert (terminated, truncated) == (True, False)


def test_teamenv_time_limit_on_top_of_the_env():
    env = _reset(TeamEnv(ToyEnv(limit=10), max_episode_steps=2))
    assert env.episode_limit == 2
    step(env, [0, 0, 0])
    _, _, terminated, truncated, _ = step(env, [0, 0, 0])
    assert (terminated, truncated) == (False, True)


def test_dead_agent_gets_zero_observation_only_noop_and_its_action_is_not_sent():
    toy = ToyEnv(limit=5, agent2_lifetime=1)
    env = _reset(TeamEnv(toy, dead_agent_action=0))
    obs, reward, *_ = step(env, [1, 1, 1])
    assert reward == 6.0  # agent 2 still acted on this step
    assert obs["obs"][2].tolist() == [0.0] * 4
    assert obs["action_mask"][2].tolist() == [1, 0, 0, 0]
    _, reward, *_ = step(env, [1, 1, 0])
    assert "a2" not in toy.received[-1]
    assert reward == 3.0


@pytest.mark.parametrize("env_class, message", [
    (ContinuousEnv, "Discrete"), (UnequalActionsEnv, "unequal"), (NoAgentsEnv, "no possible_agents")])
def test_envs_teamenv_cannot_group_are_rejected_at_construction(env_class, message):
    with pytest.raises(TeamEnvError, match=message):
        TeamEnv(env_class())


def test_bad_team_options_are_rejected():
    with pytest.raises(TeamEnvError, match="team_reward"):
        TeamEnv(ToyEnv(), team_reward="max")
    with pytest.raises(TeamEnvError, match="max_episode_steps"):
        TeamEnv(ToyEnv(), max_episode_steps=0)


@pytest.mark.parametrize("actions", [[0, 4, 0], [-1, 0, 0]])
def test_actions_outside_the_action_space_are_rejected(actions):
    env = _reset(TeamEnv(ToyEnv()))
    with pytest.raises(TeamEnvError, match=r"actions must be in \[0, 4\)"):
        step(env, actions)
