"""TeamPolicy: greedy, decentralised acting from a checkpoint, without Ray.

Loads only the inference part of the team's RLModule (the agent network; no mixer,
no targets) and keeps each agent's recurrent state between calls:

    policy = TeamPolicy.from_checkpoint(path)
    policy.reset()
    actions = policy.act(team_observation)   # {"obs": [N, O], "action_mask": [N, A], ...}
"""

import pickle
from pathlib import Path
from typing import Dict, Mapping, Union

import numpy as np
import torch
from ray.rllib.core.columns import Columns

from rllib_softqmix.envs.team_env import TEAM

MODULE_DIR = ("learner_group", "learner", "rl_module", TEAM)
CTOR_FILE = "class_and_ctor_args.pkl"


class CheckpointError(ValueError):
    """The path is not a checkpoint of this package."""


class TeamPolicy:
    """Acts for the whole team, one step at a time, with each agent's own network."""

    def __init__(self, module):
        self.module = module
        self.module.eval()
        self._state: Dict[str, torch.Tensor] = {}
        self.reset()

    @classmethod
    def from_checkpoint(cls, path: Union[str, Path]) -> "TeamPolicy":
        """Builds the policy from an Algorithm checkpoint directory (``algo.save()``)."""
        module_dir = Path(path).joinpath(*MODULE_DIR)
        if not (module_dir / CTOR_FILE).is_file():
            raise CheckpointError(
                f"{path} is not an rllib_softqmix Algorithm checkpoint: {module_dir / CTOR_FILE} "
                f"is missing. Pass the directory that algo.save() or Tune wrote.")
        with open(module_dir / CTOR_FILE, "rb") as file:
            ctor = pickle.load(file)
        args, kwargs = ctor["ctor_args_and_kwargs"]
        module = ctor["class"](*args, **{**kwargs, "inference_only": True})
        module.restore_from_path(module_dir)
        return cls(module)

    @property
    def n_agents(self) -> int:
        return self.module.n_agents

    def reset(self) -> None:
        """Starts a new episode: fresh recurrent state for every agent."""
        self._state = {key: value.unsqueeze(0)
                       for key, value in self.module.get_initial_state().items()}

    def act(self, team_observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Greedy joint action [N] (int64) for one TeamEnv observation.

        Only ``obs`` and ``action_mask`` are needed; ``state`` (the global state) is
        passed on when given and is ignored by decentralised policies.
        """
        obs = torch.as_tensor(np.asarray(team_observation["obs"], np.float32)).unsqueeze(0)
        mask = torch.as_tensor(np.asarray(team_observation["action_mask"], np.float32)).unsqueeze(0)
        if "state" in team_observation:
            state = torch.as_tensor(np.asarray(team_observation["state"], np.float32)).unsqueeze(0)
        else:
            state = torch.zeros(1, self.module.state_dim)
        batch = {Columns.OBS: {"obs": obs, "state": state, "action_mask": mask},
                 Columns.STATE_IN: self._state}
        out = self.module.forward_inference(batch)
        self._state = out[Columns.STATE_OUT]
        return out[Columns.ACTIONS][0].numpy()
