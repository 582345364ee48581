"""TeamEnv on RLlib MultiAgentEnvs (also grouped with with_agent_groups, and RLlib's PettingZoo
wrappers) and on PettingZoo AEC envs; the registry builds them from names and classes."""

import gymnasium as gym
import numpy as np
import pytest
from conftest import tiny_config
from mpe2 import simple_spread_v3
from ray.rllib.env.multi_agent_env import make_multi_agent
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv, PettingZooEnv
from ray.tune.registry import register_env
from toy_envs import ToyAECEnv, ToyEnv, ToyMultiAgentEnv

from rllib_softqmix import QMIXConfig, TeamEnv, TeamEnvError, make_team_env, register_team_env
from rllib_softqmix.envs.registry import UnknownEnvError

register_env("toy_multi_agent", lambda config: ToyMultiAgentEnv(config))
register_env("toy_grouped", lambda config: ToyMultiAgentEnv(config).with_agent_groups(
    {"team": ["a2", "a0", "a1"]}))
register_team_env("toy_aec", ToyAECEnv)  # an AEC env through the package's own registry
register_env("gym_cartpole", lambda config: gym.make("CartPole-v1"))
register_team_env("toy_multi_agent_mean", lambda **cfg: ToyMultiAgentEnv(cfg), team_reward="mean")
MultiCartPole = make_multi_agent("CartPole-v1")  # RLlib's MultiAgentEnv of independent CartPoles


def step(env, actions):
    obs, rewards, terminateds, truncateds, infos = env.step({"team": np.asarray(actions)})
    assert terminateds["__all__"] == terminateds["team"]
    assert truncateds["__all__"] == truncateds["team"]
    return obs["team"], rewards["team"], terminateds["team"], truncateds["team"], infos["team"]


# ---- RLlib MultiAgentEnv -----------------------------------------------------------------
def test_multi_agent_env_step_by_step_with_masks_state_a_death_and_a_truncation():
    toy = ToyMultiAgentEnv({"limit": 4, "agent2_lifetime": 2})
    env = TeamEnv(toy)
    space = env.observation_spaces["team"]
    assert (space["obs"].shape, space["state"].shape, space["action_mask"].shape) == \
        ((3, 4), (3,), (3, 4))
    assert list(env.action_spaces["team"].nvec) == [4, 4, 4]
    obs, _ = env.reset()
    team = obs["team"]
    assert team["obs"].tolist() == [[0, 0, 0, 0], [10, 10, 10, 0], [20, 20, 20, 20]]
    assert team["state"].tolist() == [300.0] * 3            # from its state(), no state_space
    assert team["action_mask"].tolist() == [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    assert space.contains(team)

    obs, reward, terminated, truncated, info = step(env, [0, 1, 2])
    assert toy.received[-1] == {"a0": 0, "a1": 1, "a2": 2}
    assert (reward, terminated, truncated) == (6.0, False, False)
    assert obs["state"].tolist() == [301.0] * 3 and info == {"step": 1.0}
    assert obs["action_mask"][0].tolist() == [0, 1, 1, 0]

    obs, reward, terminated, truncated, _ = step(env, [1, 2, 3])  # a2 terminates now
    assert (reward, terminated, truncated) == (6.0, False, False)  # a2 still acted
    assert obs["obs"][2].tolist() == [0.0] * 4 and obs["action_mask"][2].tolist() == [1, 0, 0, 0]
    assert obs["obs"][1].tolist() == [12, 12, 12, 0]

    obs, reward, *_ = step(env, [2, 3, 0])
    assert toy.received[-1] == {"a0": 2, "a1": 3}              # a dead agent's action is not sent
    assert reward == 3.0

    obs, reward, terminated, truncated, _ = step(env, [3, 0, 0])  # truncateds["__all__"] only
    assert (reward, terminated, truncated) == (3.0, False, True)
    assert obs["obs"][:2].tolist() == [[4, 4, 0, 0], [14, 14, 14, 0]]  # real final observations
    assert obs["obs"][2].tolist() == [0.0] * 4 and obs["state"].tolist() == [304.0] * 3


def test_register_team_env_with_a_kwargs_creator_passes_its_keys_and_the_team_options():
    env = make_team_env("toy_multi_agent_mean", {"limit": 2, "max_episode_steps": 5})
    env.reset()
    assert step(env, [0, 0, 0])[1:4] == (2.0, False, False)  # mean of the rewards 1, 2, 3
    assert step(env, [0, 0, 0])[2:4] == (False, True)        # the env's own limit: 2


def test_multi_agent_env_termination_is_not_a_truncation():
    env = TeamEnv(ToyMultiAgentEnv({"limit": 10, "terminate_at": 2}))
    env.reset()
    assert step(env, [0, 0, 0])[2:4] == (False, False)
    assert step(env, [0, 0, 0])[2:4] == (True, False)


def test_an_agent_that_dies_at_the_time_limit_does_not_make_the_episode_terminated():
    env = TeamEnv(ToyMultiAgentEnv({"limit": 2, "agent2_lifetime": 2}))
    env.reset()
    step(env, [0, 0, 0])
    assert step(env, [0, 0, 0])[2:4] == (False, True)  # the others were cut off: bootstrap


class SpaceMethodsEnv(ToyMultiAgentEnv):
    """Gives its spaces by get_observation_space/get_action_space, not by the dicts."""

    def __init__(self, config=None):
        super().__init__(config)
        self.spaces = self.observation_spaces, self.action_spaces
        self.observation_spaces = self.action_spaces = None

    def get_observation_space(self, agent_id):
        return self.spaces[0][agent_id]

    def get_action_space(self, agent_id):
        return self.spaces[1][agent_id]


def test_spaces_from_get_observation_space_and_get_action_space():
    env = TeamEnv(SpaceMethodsEnv())
    assert env.observation_spaces == TeamEnv(ToyMultiAgentEnv()).observation_spaces
    assert env.reset()[0]["team"]["action_mask"][2].tolist() == [0, 0, 1, 1]


class NoSpacesEnv(ToyMultiAgentEnv):
    def __init__(self, config=None):
        super().__init__(config)
        self.observation_spaces = None


@pytest.mark.parametrize("config, message", [
    ({"drop_all_key": True}, r"step\(\) returned terminateds \{\} without the '__all__' key; "
                             r"an RLlib MultiAgentEnv sets terminateds\['__all__'\]"),
    ({"vanish_at": 1}, r"observed \['a0', 'a1'\] after the live agents \['a0', 'a1', 'a2'\] "
                       r"acted.*mark an agent that leaves with terminateds\[agent\] = True")])
def test_multi_agent_envs_that_break_the_contract_get_a_clear_error(config, message):
    env = TeamEnv(ToyMultiAgentEnv(config))
    env.reset()
    with pytest.raises(TeamEnvError, match=message):
        step(env, [0, 0, 0])


def test_a_multi_agent_env_without_spaces_is_rejected_at_construction():
    with pytest.raises(TeamEnvError, match=r"NoSpacesEnv gives no observation space for agent "
                                           r"'a0': set its observation_spaces dict"):
        TeamEnv(NoSpacesEnv())


def test_rllib_multi_agent_cartpole_class_as_config_env():
    """RLlib's own make_multi_agent env (int agent ids, no masks, no state): agents leave as
    their poles fall, the episode ends with the last one."""
    config = QMIXConfig().environment(MultiCartPole, env_config={"num_agents": 2})
    config.validate()
    env = make_team_env(MultiCartPole, {"num_agents": 2})
    assert env.agent_ids == [0, 1] and env.observation_spaces["team"]["state"].shape == (8,)
    obs, _ = env.reset(seed=0)
    assert obs["team"]["state"].tolist() == obs["team"]["obs"].reshape(-1).tolist()
    poles = env.env.env  # TeamEnv -> the ParallelEnv adapter -> RLlib's MultiEnv
    fallen_at = {}
    for t in range(1, 100):  # pole 0 always pushed left falls first, pole 1 (alternating) later
        up = 2 - len(poles.terminateds)
        obs, reward, terminated, truncated, _ = step(env, [0, t % 2])
        assert reward == up  # CartPole pays 1 to each pole that was up when it acted
        fallen_at.update({pole: t for pole in poles.terminateds if pole not in fallen_at})
        if terminated:
            break
        for pole in fallen_at:  # fallen before the end: dead
            assert obs["obs"][pole].tolist() == [0.0] * 4
            assert obs["action_mask"][pole].tolist() == [1, 0]
        assert obs["state"].tolist() == obs["obs"].reshape(-1).tolist()
    assert (terminated, truncated) == (True, False)
    assert fallen_at[0] < fallen_at[1] == t


# ---- with_agent_groups and RLlib's PettingZoo wrappers ------------------------------------
def test_with_agent_groups_of_all_agents_is_the_team_in_the_group_order():
    env = make_team_env("toy_grouped", {"limit": 3})
    assert env.agent_ids == ["a2", "a0", "a1"]
    obs, _ = env.reset()
    assert obs["team"]["obs"].tolist() == [[20, 20, 20, 20], [0, 0, 0, 0], [10, 10, 10, 0]]
    step(env, [3, 1, 2])
    assert env.env.env.received[-1] == {"a2": 3, "a0": 1, "a1": 2}


@pytest.mark.parametrize("groups", [{"team": ["a0", "a1"]},
                                    {"left": ["a0"], "right": ["a1", "a2"]}])
def test_with_agent_groups_that_split_the_agents_is_refused_with_what_to_write(groups):
    with pytest.raises(TeamEnvError, match=r"Write env.with_agent_groups\(\{'team': \['a0', 'a1', "
                                           r"'a2'\]\}\), or pass the env itself"):
        TeamEnv(ToyMultiAgentEnv().with_agent_groups(groups))


def test_rllib_pettingzoo_wrappers_are_unwrapped_to_the_pettingzoo_env():
    toy = ToyEnv(with_state=True)
    env = TeamEnv(ParallelPettingZooEnv(toy))
    assert env.env is toy
    assert env.reset()[0]["team"]["state"].tolist() == [100.0] * 6
    aec = TeamEnv(PettingZooEnv(ToyAECEnv(with_state=True)))
    assert aec.reset()[0]["team"]["state"].tolist() == [400.0] * 2


# ---- PettingZoo AEC envs --------------------------------------------------------------------
def test_aec_env_step_by_step_through_aec_to_parallel():
    aec = ToyAECEnv(limit=2, with_state=True)
    env = TeamEnv(aec)
    assert env.observation_spaces["team"]["state"].shape == (2,)  # from state(), by one reset
    obs, _ = env.reset()
    assert obs["team"]["obs"].tolist() == [[0, 0, 0], [10, 10, 10]]
    assert obs["team"]["state"].tolist() == [400.0, 400.0]
    obs, reward, terminated, truncated, _ = step(env, [1, 2])
    assert aec.received == [("a0", 1), ("a1", 2)] and reward == 3.0
    assert (terminated, truncated) == (False, False)
    assert obs["obs"].tolist() == [[1, 1, 1], [11, 11, 11]] and obs["state"].tolist() == [401.0] * 2
    obs, reward, terminated, truncated, _ = step(env, [0, 0])
    assert (reward, terminated, truncated) == (3.0, False, True)
    assert obs["obs"].tolist() == [[2, 2, 2], [12, 12, 12]]


def test_aec_env_without_state_is_not_reset_at_construction():
    aec = ToyAECEnv()
    env = TeamEnv(aec)
    assert aec.resets == 0 and env.observation_spaces["team"]["state"].shape == (6,)


def test_mpe2_spread_as_aec_env_equals_its_parallel_env():
    aec = TeamEnv(simple_spread_v3.env(N=2, max_cycles=3))
    parallel = TeamEnv(simple_spread_v3.parallel_env(N=2, max_cycles=3))
    pairs = [(aec.reset(seed=3)[0]["team"], parallel.reset(seed=3)[0]["team"])]
    for actions in ([1, 2], [3, 4], [0, 1]):
        ours, theirs = step(aec, actions), step(parallel, actions)
        assert ours[1:4] == theirs[1:4]
        pairs.append((ours[0], theirs[0]))
    assert ours[2:4] == (False, True)  # max_cycles is a truncation
    for ours, theirs in pairs:
        for key in ("obs", "state", "action_mask"):
            np.testing.assert_array_equal(ours[key], theirs[key])


def test_an_aec_env_that_is_not_parallelizable_is_refused_with_the_reason():
    with pytest.raises(TeamEnvError, match=r"ToyAECEnv does not set "
                                           r"metadata\['is_parallelizable'\] = True.*aec_to_parallel"):
        TeamEnv(ToyAECEnv(parallelizable=False))


# ---- what is not accepted ---------------------------------------------------------------------
def test_unsupported_env_types_are_named_with_what_is_accepted():
    accepted = r"a PettingZoo ParallelEnv, a PettingZoo AECEnv .* or an RLlib MultiAgentEnv"
    with pytest.raises(TeamEnvError, match=r"TimeLimit is not an env TeamEnv can group; it "
                                           r"accepts " + accepted):
        TeamEnv(gym.make("CartPole-v1"))
    with pytest.raises(TeamEnvError, match=r"env 'gym_cartpole' built a TimeLimit; expected "
                                           + accepted):
        make_team_env("gym_cartpole", {})
    with pytest.raises(UnknownEnvError, match=r"config.env must be a registered env name or a "
                                              r"class of " + accepted):
        make_team_env(gym.Env, {})


# ---- training -----------------------------------------------------------------------------
@pytest.mark.parametrize("env, env_config, state", [
    ("toy_multi_agent", {"limit": 4, "agent2_lifetime": 2}, 300.0),
    ("toy_aec", {"limit": 4, "with_state": True}, 400.0)])
def test_qmix_trains_on_a_registered_multi_agent_env_and_an_aec_env(ray_session, env, env_config,
                                                                   state):
    algo = tiny_config("QMIX", env=env, env_config=env_config).build_algo()
    try:
        result = algo.train()
        assert result["num_env_steps_sampled_lifetime"] >= 64
        batch = algo.replay_buffer.gather(np.arange(len(algo.replay_buffer)))
        assert (batch["mask"].sum(1) == 4).all()                       # truncated at 4 steps
        assert (batch["state"][:, :, 0] == state + np.arange(5)).all()  # the env's state()
        assert (batch["terminated"] == 0).all()
        if env == "toy_multi_agent":  # agent 2 is dead from step 2 on: zeros, only action 0
            assert (batch["obs"][:, 2:, 2] == 0).all() and (batch["actions"][:, 2:, 2] == 0).all()
    finally:
        algo.stop()
