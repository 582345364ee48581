"""Whole team episodes and the FIFO episode replay buffer (docs/architecture.md).

An episode of L transitions stores L+1 observations (the successor of the final
transition included), L joint actions and L team rewards. Batches are padded to the
longest sampled episode T: observation-like arrays are [B, T+1, ...], transition
arrays [B, T, ...], and mask[b, t] = 1 for the valid transitions t < L_b.
"""

from dataclasses import dataclass, field
from typing import Dict, Sequence

import numpy as np


@dataclass
class TeamEpisode:
    """One finished episode of the team, as plain numpy arrays.

    obs [L+1, N, O], state [L+1, S], action_mask [L+1, N, A], actions [L, N],
    rewards [L]. ``extras`` holds per-episode constants (MAVEN's latent z);
    ``info`` the scalar metrics the env reported at the end (e.g. ``battle_won``).
    """
    obs: np.ndarray
    state: np.ndarray
    action_mask: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: bool
    truncated: bool
    extras: Dict[str, np.ndarray] = field(default_factory=dict)
    info: Dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rewards)

    def env_steps(self) -> int:
        return len(self.rewards)

    def agent_steps(self) -> int:
        """RLlib counts steps per agent id; the whole team is the one agent "team"."""
        return len(self.rewards)

    def get_return(self) -> float:
        return float(self.rewards.sum())


# name -> (per-step array of the episode, whether it has L+1 entries, batch dtype)
_STEP_FIELDS = {
    "obs": (True, np.float32),
    "state": (True, np.float32),
    "action_mask": (True, np.float32),
    "actions": (False, np.int64),
    "rewards": (False, np.float32),
}


class EpisodeReplayBuffer:
    """FIFO buffer of whole episodes in preallocated, zero-padded numpy arrays.

    Sampling is uniform without replacement, and a sampled batch is cut to the
    longest episode in it, as in PyMARL. The time axis grows if a longer episode
    than any seen arrives, so no episode is ever truncated by the buffer.
    """

    def __init__(self, capacity: int):
        if capacity <= 0:
            raise ValueError(f"replay capacity must be positive, got {capacity}")
        self.capacity = capacity
        self._arrays: Dict[str, np.ndarray] = {}
        self._lengths = np.zeros(capacity, dtype=np.int64)
        self._terminated = np.zeros(capacity, dtype=np.float32)
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def max_steps(self) -> int:
        return self._arrays["rewards"].shape[1] if self._arrays else 0

    def _allocate(self, episode: TeamEpisode, steps: int) -> None:
        for name, (has_successor, dtype) in _STEP_FIELDS.items():
            per_step = getattr(episode, name).shape[1:]
            self._arrays[name] = np.zeros((self.capacity, steps + has_successor, *per_step), dtype)
        for name, value in episode.extras.items():
            self._arrays["extra/" + name] = np.zeros((self.capacity, *np.shape(value)), np.float32)

    def _grow_time(self, steps: int) -> None:
        """Lengthens the time axis to ``steps``, copying only the filled slots: the rest of a
        fresh np.zeros array is not in memory until written, where padding the whole
        buffer wrote all of it (for SMAX 10 units, GBs per growth at capacity 5000)."""
        for name, (has_successor, _) in _STEP_FIELDS.items():
            old = self._arrays[name]
            grown = np.zeros((self.capacity, steps + has_successor, *old.shape[2:]), old.dtype)
            grown[: self._size, : old.shape[1]] = old[: self._size]
            self._arrays[name] = grown

    def add(self, episodes: Sequence[TeamEpisode]) -> None:
        for episode in episodes:
            steps = len(episode)
            if not self._arrays:
                self._allocate(episode, steps)
            elif steps > self.max_steps:
                self._grow_time(steps)
            slot = self._next
            for name in _STEP_FIELDS:
                target = self._arrays[name][slot]
                values = getattr(episode, name)
                target[: len(values)] = values
                target[len(values):] = 0
            for name, value in episode.extras.items():
                self._arrays["extra/" + name][slot] = value
            self._lengths[slot] = steps
            self._terminated[slot] = float(episode.terminated)
            self._next = (slot + 1) % self.capacity
            self._size = min(self._size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
        """A padded batch of ``batch_size`` distinct episodes (see module docstring)."""
        if batch_size > self._size:
            raise ValueError(f"cannot sample {batch_size} episodes from a buffer of {self._size}")
        index = rng.choice(self._size, size=batch_size, replace=False)
        return self.gather(index)

    def gather(self, index: np.ndarray) -> Dict[str, np.ndarray]:
        lengths = self._lengths[index]
        steps = int(lengths.max())
        batch = {}
        for name, (has_successor, _) in _STEP_FIELDS.items():
            batch[name] = self._arrays[name][index, : steps + has_successor]
        for name, array in self._arrays.items():
            if name.startswith("extra/"):
                batch[name[len("extra/"):]] = array[index]
        time = np.arange(steps)
        batch["mask"] = (time[None, :] < lengths[:, None]).astype(np.float32)
        batch["terminated"] = batch["mask"] * (time[None, :] == lengths[:, None] - 1) \
            * self._terminated[index, None]
        return batch

    def episode_lengths(self) -> np.ndarray:
        return self._lengths[: self._size].copy()

    def get_state(self) -> Dict:
        return {
            "capacity": self.capacity,
            "arrays": {name: array[: self._size].copy() for name, array in self._arrays.items()},
            "lengths": self._lengths[: self._size].copy(),
            "terminated": self._terminated[: self._size].copy(),
            "next": self._next,
            "size": self._size,
        }

    def set_state(self, state: Dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(
                f"checkpointed replay buffer has capacity {state['capacity']}, "
                f"this config asks for {self.capacity}")
        size = state["size"]
        self._arrays = {}
        for name, stored in state["arrays"].items():
            array = np.zeros((self.capacity, *stored.shape[1:]), stored.dtype)
            array[:size] = stored
            self._arrays[name] = array
        self._lengths[:] = 0
        self._lengths[:size] = state["lengths"]
        self._terminated[:] = 0
        self._terminated[:size] = state["terminated"]
        self._next, self._size = state["next"], size

