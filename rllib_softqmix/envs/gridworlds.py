"""ma-gym's Lumberjacks and TrafficJunction as PettingZoo ParallelEnvs (spec section 3.5).

ma-gym itself no longer installs with current gym/gymnasium, so both games are written
again here from its rules (the -v0 versions: each agent sees only its own
neighbourhood). Neither game has a global state, so TeamEnv uses the agents'
observations concatenated, as GRE's wrapper did. Every agent stays in ``agents`` until
the episode is over; ``reset(seed=...)`` seeds the env's own numpy Generator.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

Cell = Tuple[int, int]


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _onehot(index: int, size: int) -> np.ndarray:
    vector = np.zeros(size, dtype=np.float32)
    vector[index] = 1.0
    return vector


class _GridGame(ParallelEnv):
    """Shared plumbing: fixed team, Box observations in [0, 1], Discrete actions, time limit."""

    def __init__(self, n_agents: int, n_actions: int, obs_dim: int, max_steps: int):
        self.max_steps = _check_int("max_steps", max_steps, 1)
        self.episode_limit = self.max_steps
        self.possible_agents = [f"agent_{i}" for i in range(n_agents)]
        self.agents: List[str] = []
        box = spaces.Box(0.0, 1.0, (obs_dim,), np.float32)
        self.observation_spaces = {agent: box for agent in self.possible_agents}
        self.action_spaces = {agent: spaces.Discrete(n_actions) for agent in self.possible_agents}
        self.n_actions = n_actions
        self._rng = np.random.default_rng()
        self._t = 0

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def _start(self, seed: Optional[int]) -> None:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self._t = 0

    def _actions_in_order(self, actions: Dict[str, int]) -> List[int]:
        if not self.agents:
            raise RuntimeError("step() called after the episode ended; call reset() first")
        missing = [agent for agent in self.agents if agent not in actions]
        if missing:
            raise ValueError(f"no action given for {missing}")
        ordered = [int(actions[agent]) for agent in self.possible_agents]
        invalid = [action for action in ordered if not 0 <= action < self.n_actions]
        if invalid:
            raise ValueError(f"actions must be in [0, {self.n_actions}), got {invalid}")
        return ordered

    def _finish_step(self, observations: Dict[str, np.ndarray], rewards: Sequence[float],
                     terminated: bool, info: Dict[str, float]):
        """Packs one step. The episode ends on ``terminated`` or else, as a truncation, at
        max_steps (a game won on the last step counts as terminated)."""
        truncated = not terminated and self._t >= self.max_steps
        agents = self.agents
        result = (observations,
                  {agent: float(reward) for agent, reward in zip(agents, rewards)},
                  {agent: terminated for agent in agents},
                  {agent: truncated for agent in agents},
                  {agent: dict(info) for agent in agents})
        if terminated or truncated:
            self.agents = []
        return result


class Lumberjacks(_GridGame):
    """Lumberjacks cut trees that may need several of them at once (ma-gym Lumberjacks-v0).

    Reset places the agents and ``n_trees`` trees on distinct random cells of the grid;
    agent ids follow the agents' cells in row-major order, as in ma-gym. Each tree's
    strength is uniform in [1, n_agents]. Actions: 0 no-op, 1 down, 2 left, 3 up,
    4 right. Agents move simultaneously, may share cells and may walk onto trees.
    After the moves, every tree whose cell holds at least ``strength`` agents is cut.

    Reward, the same for every agent: ``step_cost + tree_cut_reward * trees cut this
    step``. ma-gym's docstring says only the cutting agents earn the tree reward, but its
    code pays it to every agent; the code's rule is kept. The episode terminates when
    the last tree is cut and is truncated after ``max_steps`` steps.

    Borders: ma-gym clips moves into rows and columns 0 .. size - 1 - agent_view, one
    cell short of the far edges for the default view of 1. So an agent placed in the last
    row (or column) moves back one cell on its first step whatever it chose, and trees
    there can never be cut. That looks like a bug (present since 2020, so in GRE's runs
    too): ``reachable_edges=True`` (default) clips moves to the grid itself, and
    ``reachable_edges=False`` restores ma-gym's rule to reproduce GRE's setting exactly.

    Observation of agent i, size 4 + 2 * (2 * agent_view + 1)^2 (22 by default), in [0, 1]:
        [0]     i / n_agents
        [1:3]   row / (rows - 1), col / (cols - 1)
        [3]     step / max_steps
        [4:]    for each cell of the (2v+1) x (2v+1) view centred on the agent, row by row:
                (agents on the cell / n_agents, tree strength / n_agents); the agent counts
                itself, a cut tree has strength 0, cells outside the grid are (0, 0).
    Infos at every step: ``trees_cut`` (so far this episode) and ``trees_left``.

    Differences from ma-gym: the first episode is random as well (ma-gym does not
    shuffle its first layout), and the env is seeded through ``reset(seed=...)``.
    """

    metadata = {"name": "lumberjacks", "is_parallelizable": True}
    MOVES = np.array([(0, 0), (1, 0), (0, -1), (-1, 0), (0, 1)])

    def __init__(self, n_agents: int = 2, grid_shape: Tuple[int, int] = (5, 5), n_trees: int = 12,
                 agent_view: int = 1, max_steps: int = 100, step_cost: float = -1.0,
                 tree_cut_reward: float = 10.0, reachable_edges: bool = True):
        n_agents = _check_int("n_agents", n_agents, 1)
        if len(grid_shape) != 2:
            raise ValueError(f"grid_shape must be (rows, cols), got {grid_shape!r}")
        self.grid_shape = (_check_int("grid_shape[0]", grid_shape[0], 2),
                           _check_int("grid_shape[1]", grid_shape[1], 2))
        self.n_trees = _check_int("n_trees", n_trees, 1)
        if n_agents + self.n_trees > self.grid_shape[0] * self.grid_shape[1]:
            raise ValueError(
                f"n_agents + n_trees must fit on distinct cells of the {self.grid_shape} grid, "
                f"got {n_agents} + {self.n_trees}")
        self.agent_view = _check_int("agent_view", agent_view, 1)
        if self.agent_view >= min(self.grid_shape):
            raise ValueError(
                f"agent_view must be smaller than both grid sides {self.grid_shape}, "
                f"got {agent_view!r}")
        self.step_cost = float(step_cost)
        self.tree_cut_reward = float(tree_cut_reward)
        self.reachable_edges = bool(reachable_edges)
        self.n_agents = n_agents
        view_cells = (2 * self.agent_view + 1) ** 2
        super().__init__(n_agents, n_actions=5, obs_dim=4 + 2 * view_cells, max_steps=max_steps)
        margin = 0 if self.reachable_edges else self.agent_view
        self._highest_cell = np.array(self.grid_shape) - 1 - margin
        self.positions = np.zeros((n_agents, 2), dtype=np.int64)
        self.trees = np.zeros(self.grid_shape, dtype=np.int64)
        self.trees_cut = 0

    def reset(self, seed: Optional[int] = None, options: Optional[dict] = None):
        self._start(seed)
        cells = self._rng.permutation(self.grid_shape[0] * self.grid_shape[1])
        agent_cells = np.sort(cells[:self.n_agents])
        tree_cells = cells[self.n_agents:self.n_agents + self.n_trees]
        self.positions = np.stack(np.unravel_index(agent_cells, self.grid_shape), axis=1)
        self.trees = np.zeros(self.grid_shape, dtype=np.int64)
        self.trees.flat[tree_cells] = self._rng.integers(1, self.n_agents + 1, size=self.n_trees)
        self.trees_cut = 0
        return self._observations(), {agent: self._info() for agent in self.agents}

    def step(self, actions: Dict[str, int]):
        moves = self.MOVES[self._actions_in_order(actions)]
        self.positions = np.clip(self.positions + moves, 0, self._highest_cell)
        self._t += 1
        cut = (self.trees > 0) & (self._agent_counts() >= self.trees)
        self.trees[cut] = 0
        n_cut = int(cut.sum())
        self.trees_cut += n_cut
        reward = self.step_cost + self.tree_cut_reward * n_cut
        return self._finish_step(self._observations(), [reward] * self.n_agents,
                                 terminated=not self.trees.any(), info=self._info())

    def _agent_counts(self) -> np.ndarray:
        counts = np.zeros(self.grid_shape, dtype=np.int64)
        np.add.at(counts, (self.positions[:, 0], self.positions[:, 1]), 1)
        return counts

    def _info(self) -> Dict[str, float]:
        return {"trees_cut": float(self.trees_cut),
                "trees_left": float(np.count_nonzero(self.trees))}

    def _observations(self) -> Dict[str, np.ndarray]:
        view = self.agent_view
        layers = np.stack([self._agent_counts(), self.trees], axis=-1) / self.n_agents
        padded = np.pad(layers, ((view, view), (view, view), (0, 0)))
        scale = np.array(self.grid_shape) - 1
        observations = {}
        for i, agent in enumerate(self.possible_agents):
            row, col = self.positions[i]
            window = padded[row:row + 2 * view + 1, col:col + 2 * view + 1]
            header = [i / self.n_agents, row / scale[0], col / scale[1], self._t / self.max_steps]
            observations[agent] = np.concatenate([header, window.ravel()]).astype(np.float32)
        return observations


class TrafficJunction(_GridGame):
    """Cars cross a 4-way junction without colliding (ma-gym TrafficJunction-v0, CommNet's game).

    Roads: the two middle rows and the two middle columns of a ``grid_size`` square,
    one lane per direction, driving on the right. Cars enter at the four lane starts on
    the edges, heading east along row size/2, north along column size/2, west along row
    size/2 - 1 and south along column size/2 - 1. Each car follows a route fixed on entry,
    uniform among forward, turn right and turn left (it turns at the junction cell where
    its lane meets the target lane), and leaves the game on reaching the edge cell where
    that route ends. Every car enters at most once per episode.

    Arrivals: at reset cars 0 .. min(n_max, 4) - 1 take the four entries in random order.
    After every step, with probability ``arrive_prob``, the lowest-numbered car still
    waiting enters at a random entry no car stands on (at most one car per step).

    Actions: 0 gas (advance one cell along the route), 1 brake (stay). Cars move one at a
    time in id order; a car that gases into a cell held by another car collides: it
    gets ``collision_reward`` and stays put (the car hit gets nothing). Every car on the
    road also gets ``step_cost * tau`` each step, tau = the steps it has spent on the
    road including this one. Cars waiting to enter or already gone get 0 and their
    actions are ignored. The episode terminates once every car has left and is
    truncated after ``max_steps`` steps.

    Observation of car i: for each cell of the 3 x 3 view centred on the car, row by
    row, the features of the car on it, zeros if none (walls and cells outside the grid
    are empty): [one-hot id (n_max), row / (size - 1), col / (size - 1), one-hot route
    (forward, right, left)]; size 9 * (n_max + 5) = 135 for n_max = 10. A car sees
    itself in the centre. A car that has left keeps the view around its exit cell,
    without itself; a waiting car sees zeros.
    Infos at every step: ``collisions`` (so far this episode), ``success`` (1.0 while
    there was no collision: CommNet's success measure) and ``cars_done`` (cars that left).

    Differences from ma-gym: ma-gym parks waiting cars on the wall cell (0, 0) and stamps
    the last parked car's id there without ever clearing it, so waiting cars see that
    car's features in their centre cell; here a waiting car's view is all zeros. ma-gym
    draws its randomness from Python's unseeded ``random`` module; here all of it comes
    from the seeded Generator.
    """

    metadata = {"name": "traffic_junction", "is_parallelizable": True}
    GAS, BRAKE = 0, 1
    FORWARD, RIGHT, LEFT = 0, 1, 2
    N_ROUTES = 3
    WAITING, DRIVING, GONE = 0, 1, 2

    def __init__(self, n_max: int = 10, arrive_prob: float = 0.5, max_steps: int = 100,
                 collision_reward: float = -10.0, step_cost: float = -0.01, grid_size: int = 14):
        self.n_max = _check_int("n_max", n_max, 1)
        if not 0.0 <= arrive_prob <= 1.0:
            raise ValueError(f"arrive_prob must be in [0, 1], got {arrive_prob!r}")
        self.arrive_prob = float(arrive_prob)
        self.collision_reward = float(collision_reward)
        self.step_cost = float(step_cost)
        self.grid_size = _check_int("grid_size", grid_size, 4)
        self.cell_features = self.n_max + 2 + self.N_ROUTES
        super().__init__(self.n_max, n_actions=2, obs_dim=9 * self.cell_features,
                         max_steps=max_steps)
        self.entries, self.routes = self._build_routes()
        self.status = np.full(self.n_max, self.WAITING)
        self.entry = np.zeros(self.n_max, dtype=np.int64)
        self.route = np.zeros(self.n_max, dtype=np.int64)
        self.progress = np.zeros(self.n_max, dtype=np.int64)
        self.time_on_road = np.zeros(self.n_max, dtype=np.int64)
        self.collisions = 0

    def _build_routes(self) -> Tuple[List[Cell], List[List[List[Cell]]]]:
        """The entry cells and, per entry, the cells of its forward/right/left routes."""
        size, low, high = self.grid_size, self.grid_size // 2 - 1, self.grid_size // 2
        entries = [((high, 0), (0, 1)), ((size - 1, high), (-1, 0)),
                   ((low, size - 1), (0, -1)), ((0, low), (1, 0))]
        # Where a car heading (drow, dcol) turns right, and where it turns left.
        turns = {(0, 1): ((high, low), (high, high)), (-1, 0): ((high, high), (low, high)),
                 (0, -1): ((low, high), (low, low)), (1, 0): ((low, low), (high, low))}
        routes = []
        for start, heading in entries:
            right_turn, left_turn = turns[heading]
            routes.append([self._drive(start, heading, None),
                           self._drive(start, heading, (right_turn, (heading[1], -heading[0]))),
                           self._drive(start, heading, (left_turn, (-heading[1], heading[0])))])
        return [start for start, _ in entries], routes

    def _drive(self, cell: Cell, heading: Cell, turn: Optional[Tuple[Cell, Cell]]) -> List[Cell]:
        path = []
        while 0 <= cell[0] < self.grid_size and 0 <= cell[1] < self.grid_size:
            path.append(cell)
            if turn is not None and cell == turn[0]:
                heading, turn = turn[1], None
            cell = (cell[0] + heading[0], cell[1] + heading[1])
        return path

    def position(self, car: int) -> Cell:
        return self.routes[self.entry[car]][self.route[car]][self.progress[car]]

    def place_car(self, car: int, entry: int, route: int, progress: int = 0) -> None:
        """Puts ``car`` on the road: ``progress`` cells along a route from an entry."""
        self.status[car] = self.DRIVING
        self.entry[car], self.route[car], self.progress[car] = entry, route, progress
        self.time_on_road[car] = 0

    def reset(self, seed: Optional[int] = None, options: Optional[dict] = None):
        self._start(seed)
        self.status[:] = self.WAITING
        self.progress[:] = 0
        self.time_on_road[:] = 0
        self.collisions = 0
        entries = self._rng.permutation(len(self.entries))
        for car in range(min(self.n_max, len(self.entries))):
            self.place_car(car, entries[car], self._rng.integers(self.N_ROUTES))
        return self._observations(), {agent: self._info() for agent in self.agents}

    def step(self, actions: Dict[str, int]):
        joint = self._actions_in_order(actions)
        rewards = np.zeros(self.n_max)
        occupied = {self.position(car): car for car in self._cars_on_road()}
        for car in self._cars_on_road():
            self.time_on_road[car] += 1
            rewards[car] += self.step_cost * self.time_on_road[car]
            if joint[car] == self.BRAKE:
                continue
            path = self.routes[self.entry[car]][self.route[car]]
            ahead = path[self.progress[car] + 1]
            if ahead in occupied:
                rewards[car] += self.collision_reward
                self.collisions += 1
                continue
            del occupied[path[self.progress[car]]]
            self.progress[car] += 1
            if self.progress[car] == len(path) - 1:
                self.status[car] = self.GONE
            else:
                occupied[ahead] = car
        self._t += 1
        self._maybe_admit_car(occupied)
        return self._finish_step(self._observations(), rewards,
                                 terminated=bool(np.all(self.status == self.GONE)),
                                 info=self._info())

    def _cars_on_road(self) -> List[int]:
        return [int(car) for car in np.flatnonzero(self.status == self.DRIVING)]

    def _maybe_admit_car(self, occupied: Dict[Cell, int]) -> None:
        if self._rng.random() >= self.arrive_prob:
            return
        waiting = np.flatnonzero(self.status == self.WAITING)
        free = [i for i, cell in enumerate(self.entries) if cell not in occupied]
        if len(waiting) and free:
            self.place_car(int(waiting[0]), self._rng.choice(free),
                           self._rng.integers(self.N_ROUTES))

    def _info(self) -> Dict[str, float]:
        return {"collisions": float(self.collisions), "success": float(self.collisions == 0),
                "cars_done": float(np.count_nonzero(self.status == self.GONE))}

    def _car_features(self, car: int) -> np.ndarray:
        row, col = self.position(car)
        scale = self.grid_size - 1
        return np.concatenate([_onehot(car, self.n_max), [row / scale, col / scale],
                               _onehot(self.route[car], self.N_ROUTES)])

    def _observations(self) -> Dict[str, np.ndarray]:
        grid = np.zeros((self.grid_size + 2, self.grid_size + 2, self.cell_features),
                        dtype=np.float32)
        for car in self._cars_on_road():
            row, col = self.position(car)
            grid[row + 1, col + 1] = self._car_features(car)
        observations = {}
        for car, agent in enumerate(self.possible_agents):
            if self.status[car] == self.WAITING:
                observations[agent] = np.zeros(9 * self.cell_features, dtype=np.float32)
                continue
            row, col = self.position(car)
            observations[agent] = grid[row:row + 3, col:col + 3].ravel().copy()
        return observations
