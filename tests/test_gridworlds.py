"""Lumberjacks and TrafficJunction (ma-gym's rules) on hand-set situations."""

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from rllib_softqmix import make_team_env
from rllib_softqmix.envs import Lumberjacks, TrafficJunction

NOOP, DOWN, LEFT, UP, RIGHT = range(5)
GAS, BRAKE = TrafficJunction.GAS, TrafficJunction.BRAKE
FORWARD, TURN_RIGHT, TURN_LEFT = (TrafficJunction.FORWARD, TrafficJunction.RIGHT,
                                  TrafficJunction.LEFT)
EAST_ENTRY, NORTH_ENTRY, WEST_ENTRY, SOUTH_ENTRY = range(4)


def joint(env, *actions):
    return dict(zip(env.possible_agents, actions))


# ---- Lumberjacks ------------------------------------------------------------------


def lumberjacks(positions, trees, **kwargs):
    """A reset Lumberjacks with agents at ``positions`` and ``{cell: strength}`` trees."""
    env = Lumberjacks(n_agents=len(positions), **kwargs)
    env.reset(seed=0)
    env.positions = np.array(positions)
    env.trees[:] = 0
    for cell, strength in trees.items():
        env.trees[cell] = strength
    return env


def test_two_agents_cut_a_strength_two_tree_and_the_last_tree_terminates():
    env = lumberjacks([(1, 1), (1, 2)], {(1, 2): 2})
    obs, rewards, terminations, truncations, infos = env.step(joint(env, RIGHT, NOOP))
    assert env.trees[1, 2] == 0
    assert rewards == {"agent_0": 9.0, "agent_1": 9.0}
    assert all(terminations.values()) and not any(truncations.values())
    assert env.agents == [] and set(obs) == set(env.possible_agents)
    assert infos["agent_0"] == {"trees_cut": 1.0, "trees_left": 0.0}


def test_a_strength_two_tree_needs_two_agents():
    env = lumberjacks([(1, 2), (3, 3)], {(1, 2): 2, (0, 0): 1})
    _, rewards, terminations, _, infos = env.step(joint(env, NOOP, NOOP))
    assert env.trees[1, 2] == 2
    assert rewards == {"agent_0": -1.0, "agent_1": -1.0}
    assert not any(terminations.values()) and env.agents == env.possible_agents
    assert infos["agent_1"] == {"trees_cut": 0.0, "trees_left": 2.0}


def test_every_agent_is_paid_for_every_tree_cut_by_anyone():
    env = lumberjacks([(0, 0), (2, 2), (3, 0)], {(0, 1): 1, (2, 3): 2, (3, 1): 2, (0, 3): 1})
    _, rewards, *_ = env.step(joint(env, RIGHT, RIGHT, NOOP))
    assert env.trees[0, 1] == 0 and env.trees[2, 3] == 2 and env.trees[3, 1] == 2
    assert set(rewards.values()) == {9.0}
    env.positions = np.array([(2, 3), (2, 3), (3, 3)])
    _, rewards, *_ = env.step(joint(env, NOOP, NOOP, LEFT))
    assert env.trees[2, 3] == 0 and set(rewards.values()) == {9.0}
    env.positions = np.array([(0, 2), (3, 2), (3, 0)])
    _, rewards, terminations, _, infos = env.step(joint(env, RIGHT, LEFT, RIGHT))
    assert set(rewards.values()) == {19.0}                    # two trees in one step
    assert all(terminations.values()) and infos["agent_2"]["trees_cut"] == 4.0


def test_lumberjacks_observation_layout():
    env = lumberjacks([(0, 0), (1, 1)], {(0, 1): 2, (1, 0): 1, (2, 2): 1})
    obs, *_ = env.step(joint(env, NOOP, NOOP))
    assert env.observation_space("agent_0").shape == (22,)
    assert obs["agent_0"].dtype == np.float32
    # [id/N, row/4, col/4, step/100] then (agents/N, strength/N) for the 3x3 view, row by row;
    # agent 0 sits in the corner, so its top row and left column are outside the grid.
    np.testing.assert_allclose(obs["agent_0"], [
        0.0, 0.0, 0.0, 0.01,
        0, 0, 0, 0, 0, 0,
        0, 0, 0.5, 0, 0, 1,
        0, 0, 0, 0.5, 0.5, 0])
    np.testing.assert_allclose(obs["agent_1"], [
        0.5, 0.25, 0.25, 0.01,
        0.5, 0, 0, 1, 0, 0,
        0, 0.5, 0.5, 0, 0, 0,
        0, 0, 0, 0, 0, 0.5])


@pytest.mark.parametrize("action, expected", [
    (NOOP, (2, 2)), (DOWN, (3, 2)), (LEFT, (2, 1)), (UP, (1, 2)), (RIGHT, (2, 3))])
def test_lumberjack_moves(action, expected):
    env = lumberjacks([(2, 2), (0, 0)], {(4, 4): 1})
    env.step(joint(env, action, NOOP))
    assert tuple(env.positions[0]) == expected


def test_moves_stop_at_the_borders_and_ma_gym_keeps_agents_off_the_far_edges():
    env = lumberjacks([(0, 0), (3, 3)], {(4, 4): 1}, reachable_edges=False)
    env.step(joint(env, UP, DOWN))
    env.step(joint(env, LEFT, RIGHT))
    assert env.positions.tolist() == [[0, 0], [3, 3]]
    env.positions = np.array([(4, 1), (2, 4)])             # where reset may place agents
    env.step(joint(env, NOOP, NOOP))
    assert env.positions.tolist() == [[3, 1], [2, 3]]
    assert env.trees[4, 4] == 1

    env = lumberjacks([(3, 3), (4, 4)], {(4, 3): 1})  # the default: corrected borders
    _, rewards, terminations, *_ = env.step(joint(env, DOWN, DOWN))
    assert env.positions.tolist() == [[4, 3], [4, 4]]
    assert all(terminations.values()) and rewards["agent_1"] == 9.0
    env = lumberjacks([(4, 4), (0, 0)], {(2, 2): 1})
    env.step(joint(env, RIGHT, NOOP))
    env.step(joint(env, DOWN, NOOP))
    assert env.positions.tolist() == [[4, 4], [0, 0]]


def test_lumberjacks_truncates_at_max_steps():
    env = lumberjacks([(0, 0), (0, 1)], {(2, 2): 2}, max_steps=3)
    assert env.episode_limit == 3
    for _ in range(2):
        _, _, terminations, truncations, _ = env.step(joint(env, NOOP, NOOP))
        assert not any(truncations.values())
    obs, _, terminations, truncations, _ = env.step(joint(env, NOOP, NOOP))
    assert all(truncations.values()) and not any(terminations.values())
    assert env.agents == [] and obs["agent_0"][3] == 1.0
    env = lumberjacks([(0, 0), (0, 1)], {(0, 1): 1}, max_steps=1)
    _, _, terminations, truncations, _ = env.step(joint(env, NOOP, NOOP))
    assert all(terminations.values()) and not any(truncations.values())   # the last tree wins


def test_lumberjacks_reset_layout_and_seeding():
    env = Lumberjacks(n_agents=3)
    layouts = []
    for seed in (7, 7, 8):
        obs, _ = env.reset(seed=seed)
        layouts.append((env.positions.copy(), env.trees.copy()))
        cells = [tuple(p) for p in env.positions]
        assert len(set(cells)) == 3 and all(env.trees[cell] == 0 for cell in cells)
        assert cells == sorted(cells)                      # ids in row-major order
        assert np.count_nonzero(env.trees) == 12
        assert env.trees.max() <= 3 and env.trees[env.trees > 0].min() >= 1
        assert all(env.observation_space(a).contains(o) for a, o in obs.items())
    assert all(np.array_equal(a, b) for a, b in zip(layouts[0], layouts[1]))
    assert not all(np.array_equal(a, b) for a, b in zip(layouts[0], layouts[2]))
    env.reset(seed=7)
    env.reset()
    assert not all(np.array_equal(a, b) for a, b in zip(layouts[0],
                                                        (env.positions, env.trees)))


@pytest.mark.parametrize("kwargs, name", [
    ({"n_agents": 0}, "n_agents"), ({"n_trees": 24}, "n_trees"), ({"n_trees": 0}, "n_trees"),
    ({"agent_view": 5}, "agent_view"), ({"agent_view": 0}, "agent_view"),
    ({"max_steps": 0}, "max_steps"), ({"grid_shape": (5,)}, "grid_shape"),
    ({"grid_shape": (1, 5)}, "grid_shape")])
def test_lumberjacks_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Lumberjacks(**kwargs)


# ---- TrafficJunction --------------------------------------------------------------


def junction(cars, **kwargs):
    """A reset TrafficJunction, no arrivals, ``{car: (entry, route, progress)}`` on the road."""
    env = TrafficJunction(**{"arrive_prob": 0.0, **kwargs})
    env.reset(seed=0)
    env.status[:] = env.WAITING
    for car, (entry, route, progress) in cars.items():
        env.place_car(car, entry, route, progress)
    return env


def all_actions(env, action, **overrides):
    return {agent: overrides.get(agent, action) for agent in env.possible_agents}


def test_routes_run_from_the_entries_to_the_far_edges():
    env = TrafficJunction()
    assert env.entries == [(7, 0), (13, 7), (6, 13), (0, 6)]
    exits = [[path[-1] for path in routes] for routes in env.routes]
    assert exits == [[(7, 13), (13, 6), (0, 7)], [(0, 7), (7, 13), (6, 0)],
                     [(6, 0), (0, 7), (13, 6)], [(13, 6), (6, 0), (7, 13)]]


def test_gas_follows_the_route_and_brake_stays():
    env = junction({0: (EAST_ENTRY, TURN_RIGHT, 6), 1: (EAST_ENTRY, TURN_LEFT, 7),
                    2: (NORTH_ENTRY, FORWARD, 0)})
    assert [env.position(car) for car in range(3)] == [(7, 6), (7, 7), (13, 7)]
    env.step(all_actions(env, BRAKE))
    assert [env.position(car) for car in range(3)] == [(7, 6), (7, 7), (13, 7)]
    env.step(all_actions(env, GAS))
    assert [env.position(car) for car in range(3)] == [(8, 6), (6, 7), (12, 7)]
    env.step(all_actions(env, GAS))
    assert [env.position(car) for car in range(3)] == [(9, 6), (5, 7), (11, 7)]


def test_driving_into_another_car_costs_the_driver_ten_and_it_stays():
    env = junction({0: (EAST_ENTRY, FORWARD, 3), 1: (EAST_ENTRY, FORWARD, 4)})
    _, rewards, _, _, infos = env.step(all_actions(env, GAS, agent_1=BRAKE))
    assert [rewards["agent_0"], rewards["agent_1"]] == pytest.approx([-10.01, -0.01])
    assert env.position(0) == (7, 3) and env.position(1) == (7, 4)
    assert infos["agent_0"]["collisions"] == 1.0 and infos["agent_0"]["success"] == 0.0
    # Cars move in id order: car 0 still stands in car 1's way, car 1 then follows car 0.
    _, rewards, _, _, infos = env.step(all_actions(env, GAS))
    assert [rewards["agent_0"], rewards["agent_1"]] == pytest.approx([-10.02, -0.02])
    assert env.position(0) == (7, 3) and env.position(1) == (7, 5)
    env.place_car(0, EAST_ENTRY, FORWARD, 6)
    env.place_car(1, EAST_ENTRY, FORWARD, 5)
    _, rewards, _, _, infos = env.step(all_actions(env, GAS))
    assert env.position(0) == (7, 7) and env.position(1) == (7, 6)
    assert infos["agent_1"]["collisions"] == 2.0


def test_cars_in_different_lanes_pass_each_other():
    env = junction({0: (EAST_ENTRY, FORWARD, 3), 1: (WEST_ENTRY, FORWARD, 9)})
    assert env.position(1) == (6, 4)
    _, rewards, _, _, infos = env.step(all_actions(env, GAS))
    assert env.position(0) == (7, 4) and env.position(1) == (6, 3)
    assert infos["agent_0"] == {"collisions": 0.0, "success": 1.0, "cars_done": 0.0}


def test_each_car_on_the_road_pays_its_time_on_the_road():
    env = junction({0: (EAST_ENTRY, FORWARD, 0)})
    env.step(all_actions(env, BRAKE))
    env.place_car(2, SOUTH_ENTRY, TURN_LEFT, 0)
    for step in (2, 3, 4):
        _, rewards, *_ = env.step(all_actions(env, GAS))
        assert rewards["agent_0"] == pytest.approx(-0.01 * step)
        assert rewards["agent_2"] == pytest.approx(-0.01 * (step - 1))
        assert rewards["agent_1"] == 0.0
    assert env.position(0) == (7, 3) and env.time_on_road[0] == 4


def test_a_car_leaves_at_its_exit_and_the_episode_ends_when_all_have_left():
    env = junction({0: (SOUTH_ENTRY, FORWARD, 12), 1: (NORTH_ENTRY, FORWARD, 0)}, n_max=3)
    env.status[2] = env.GONE
    obs, rewards, terminations, _, infos = env.step(all_actions(env, GAS, agent_1=BRAKE))
    assert env.status.tolist() == [env.GONE, env.DRIVING, env.GONE]
    assert rewards == pytest.approx({"agent_0": -0.01, "agent_1": -0.01, "agent_2": 0.0})
    assert not any(terminations.values()) and infos["agent_0"]["cars_done"] == 2.0
    # Car 0 left from (13, 6): it still sees its exit's neighbourhood, without itself.
    assert not obs["agent_0"].reshape(9, -1)[4].any()
    assert obs["agent_0"].reshape(9, -1)[5][1] == 1.0           # car 1 at (13, 7)
    env.place_car(1, NORTH_ENTRY, FORWARD, 12)
    _, rewards, terminations, truncations, infos = env.step(all_actions(env, GAS))
    assert rewards == pytest.approx({"agent_0": 0.0, "agent_1": -0.01, "agent_2": 0.0})
    assert all(terminations.values()) and not any(truncations.values())
    assert env.agents == [] and infos["agent_1"]["cars_done"] == 3.0


def test_traffic_junction_observation_layout():
    env = junction({3: (EAST_ENTRY, TURN_LEFT, 5), 7: (WEST_ENTRY, FORWARD, 8)})
    env.place_car(1, env.entry[0], FORWARD, 0)                  # where car 0 stood at reset
    obs, *_ = env.step(all_actions(env, BRAKE))
    assert env.observation_space("agent_0").shape == (135,)
    assert env.position(3) == (7, 5) and env.position(7) == (6, 5)
    # 9 cells x [one-hot id (10), row/13, col/13, one-hot route (forward, right, left)].
    cells = obs["agent_3"].reshape(9, 15)
    expected = np.zeros((9, 15), dtype=np.float32)
    expected[4, 3], expected[4, 10:12], expected[4, 14] = 1, (7 / 13, 5 / 13), 1
    expected[1, 7], expected[1, 10:12], expected[1, 12] = 1, (6 / 13, 5 / 13), 1
    np.testing.assert_allclose(cells, expected, rtol=1e-6)
    np.testing.assert_allclose(obs["agent_7"].reshape(9, 15)[7], expected[4], rtol=1e-6)
    assert not obs["agent_0"].any()                              # waiting to enter


def test_arrivals():
    env = TrafficJunction(arrive_prob=1.0)
    env.reset(seed=1)
    assert sorted(env.position(car) for car in range(4)) == sorted(env.entries)
    assert env.status.tolist() == [env.DRIVING] * 4 + [env.WAITING] * 6
    env.step(all_actions(env, BRAKE))                            # every entry is taken
    assert env.status[4] == env.WAITING
    env.step(all_actions(env, GAS))
    assert env.status.tolist() == [env.DRIVING] * 5 + [env.WAITING] * 5
    assert env.position(4) in env.entries
    env = TrafficJunction(arrive_prob=0.0)
    env.reset(seed=1)
    for _ in range(5):
        env.step(all_actions(env, GAS))
    assert env.status[4:].tolist() == [env.WAITING] * 6


def test_traffic_junction_truncates_at_max_steps():
    env = TrafficJunction(max_steps=4)
    env.reset(seed=0)
    assert env.episode_limit == 4
    for _ in range(3):
        _, _, terminations, truncations, _ = env.step(all_actions(env, BRAKE))
        assert not any(truncations.values()) and len(env.agents) == 10
    obs, _, terminations, truncations, _ = env.step(all_actions(env, BRAKE))
    assert all(truncations.values()) and not any(terminations.values())
    assert env.agents == [] and len(obs) == 10


def test_traffic_junction_seeding():
    def start(env, seed):
        env.reset(seed=seed)
        return [(int(env.entry[car]), int(env.route[car])) for car in range(4)]

    env = TrafficJunction()
    assert start(env, 3) == start(env, 3)
    assert start(env, 3) != start(env, 4)


@pytest.mark.parametrize("kwargs, name", [
    ({"n_max": 0}, "n_max"), ({"arrive_prob": 1.5}, "arrive_prob"),
    ({"max_steps": 0}, "max_steps"), ({"grid_size": 3}, "grid_size")])
def test_traffic_junction_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        TrafficJunction(**kwargs)


# ---- both, through the PettingZoo API and TeamEnv -----------------------------------


@pytest.mark.parametrize("env_class", [Lumberjacks, TrafficJunction])
def test_pettingzoo_parallel_api(env_class):
    parallel_api_test(env_class(), num_cycles=200)


@pytest.mark.parametrize("name, n_agents, obs_dim, n_actions", [
    ("lumberjacks", 2, 22, 5), ("traffic_junction", 10, 135, 2)])
def test_random_episodes_through_team_env(name, n_agents, obs_dim, n_actions):
    env = make_team_env(name, {})
    assert env.episode_limit == 100
    assert env.observation_space["obs"].shape == (n_agents, obs_dim)
    assert env.observation_space["state"].shape == (n_agents * obs_dim,)
    assert env.action_space.nvec.tolist() == [n_actions] * n_agents
    env.action_space.seed(0)
    for episode in range(3):
        obs, _ = env.reset(seed=episode)
        steps, done = 0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step({"team": env.action_space.sample()})
            steps += 1
            done = terminated["__all__"] or truncated["__all__"]
            assert env.observation_space.contains(obs["team"])
        assert steps <= 100 and (truncated["team"] == (steps == 100))
        assert info["team"]
