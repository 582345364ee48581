"""TeamPolicy: greedy, decentralised acting from a checkpoint, without Ray.

Loads only the inference part of the team's RLModule (the agent network; no mixer,
no targets) and keeps each agent's recurrent state between calls:

    policy = TeamPolicy.from_checkpoint(path)
    policy.reset()
    actions = policy.act(team_observation)   # {"obs": [N, O], "action_mask": [N, A], ...}
"""

from pathlib import Path
from typing import Dict, Mapping, Union

import numpy as np
import torch
from ray.rllib.core.columns import Columns

from rllib_softqmix.core.checkpoints import (CLASS_FILE, MODULE_DIR, CheckpointError,
                                             other_checkpoints_advice, read_class_and_ctor_args)


class TeamPolicy:
    """Acts for the whole team, one step at a time, with each agent's own network."""

    def __init__(self, module):
        self.module = module
        self.module.eval()
        self._state: Dict[str, torch.Tensor] = {}
        self.reset()

    @classmethod
    def from_checkpoint(cls, path: Union[str, Path]) -> "TeamPolicy":
        """Builds the policy from an Algorithm checkpoint directory (``algo.save()``); a
        relative path is taken from the working directory."""
        checkpoint = Path(path).absolute()  # RLlib's loader refuses relative paths
        module_dir = checkpoint.joinpath(*MODULE_DIR)
        if not (module_dir / CLASS_FILE).is_file():
            raise CheckpointError(
                f"{path} is not an rllib_softqmix Algorithm checkpoint: {module_dir / CLASS_FILE} "
                f"is missing. Pass the directory that algo.save() or Tune wrote.")
        ctor = read_class_and_ctor_args(module_dir, "team module", checkpoint)
        args, kwargs = ctor["ctor_args_and_kwargs"]
        module = ctor["class"](*args, **{**kwargs, "inference_only": True})
        try:
            module.restore_from_path(module_dir)
        except Exception as error:  # noqa: BLE001 - a missing or truncated weights file
            raise CheckpointError(f"the team module's weights under {module_dir} cannot be loaded: "
                                  f"{error!r}. The checkpoint is incomplete or corrupt. "
                                  f"{other_checkpoints_advice(checkpoint)}") from error
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
        space = self.module.observation_space
        for name, value in (("obs", obs), ("action_mask", mask)):
            if tuple(value.shape[1:]) != space[name].shape:
                raise ValueError(
                    f"team observation {name!r} has shape {tuple(value.shape[1:])}, but this "
                    f"policy was trained on an env whose {name!r} has shape {space[name].shape}; "
                    f"use a checkpoint trained on this env.")
        if "state" in team_observation:
            state = torch.as_tensor(np.asarray(team_observation["state"], np.float32)).unsqueeze(0)
        else:
            state = torch.zeros(1, self.module.state_dim)
        batch = {Columns.OBS: {"obs": obs, "state": state, "action_mask": mask},
                 Columns.STATE_IN: self._state}
        out = self.module.forward_inference(batch)
        self._state = out[Columns.STATE_OUT]
        return out[Columns.ACTIONS][0].numpy()
