"""The team's RLModule: one agent network shared by all agents, the mixer, targets.

Acting (EnvRunner, TeamPolicy) uses only the agent network: the module is then
built ``inference_only`` and has no mixer and no target networks.

Batches:
- acting, one step of E parallel envs: ``obs`` = {"obs" [E, N, O], "state" [E, S],
  "action_mask" [E, N, A]}, ``state_in`` = the recurrent state (``h`` [E, N, H],
  ``last_action`` [E, N, A]) and, for exploration, ``timestep`` (global env steps).
  Returns ``actions`` [E, N] and ``state_out``.
- training, B padded episodes (see ``core.episodes``): ``obs`` [B, T+1, N, O],
  ``state`` [B, T+1, S], ``action_mask`` [B, T+1, N, A], ``actions`` [B, T, N], ...
  ``forward_train`` returns the utilities ``q`` [B, T+1, N, A].
"""

from typing import Any, Dict, List, Tuple

import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, TargetNetworkAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from torch.nn import functional as F

from rllib_softqmix.core.action_selection import LinearSchedule, epsilon_greedy, greedy
from rllib_softqmix.core.agent import (AgentNetwork, agent_input_dim, build_agent_inputs,
                                       shifted_onehot_actions)
from rllib_softqmix.core.mixers import make_mixer

TIMESTEP = "timestep"


class QMIXTorchRLModule(TorchRLModule, TargetNetworkAPI, InferenceOnlyAPI):
    """Agent network + mixer, epsilon-greedy acting (docs/algorithms/qmix.md)."""

    # Recurrent-state entries that are fixed for a whole episode and stored with it.
    EPISODE_CONSTANTS: Tuple[str, ...] = ()

    def setup(self) -> None:
        config = self.model_config
        self.n_agents, self.obs_dim = self.observation_space["obs"].shape
        self.state_dim = self.observation_space["state"].shape[0]
        self.n_actions = int(self.action_space.nvec[0])
        self.obs_last_action = bool(config["obs_last_action"])
        self.obs_agent_id = bool(config["obs_agent_id"])
        self.agent = self.build_agent()
        if not self.inference_only:
            self.mixer = self.build_mixer()
        self.epsilon = LinearSchedule(config["epsilon_start"], config["epsilon_finish"],
                                      config["epsilon_anneal_time"])

    # ---- construction hooks -------------------------------------------------
    def build_agent(self) -> AgentNetwork:
        config = self.model_config
        input_dim = agent_input_dim(self.obs_dim, self.n_actions, self.n_agents,
                                    obs_last_action=self.obs_last_action,
                                    obs_agent_id=self.obs_agent_id)
        return AgentNetwork(input_dim, self.n_actions, config["rnn_hidden_dim"],
                            recurrent=config["agent_network"] == "gru")

    def build_mixer(self) -> torch.nn.Module:
        config = self.model_config
        return make_mixer(config["mixer"], self.n_agents, self.state_dim,
                          embed_dim=config["mixing_embed_dim"],
                          hypernet_embed=config["hypernet_embed"],
                          hypernet_layers=config["hypernet_layers"])

    # ---- training -----------------------------------------------------------
    def unroll(self, agent: AgentNetwork, batch: Dict[str, Any]) -> torch.Tensor:
        """Q [B, T+1, N, A] of ``agent`` over whole episodes from a zero hidden state."""
        obs = batch["obs"]
        last_action = (shifted_onehot_actions(batch["actions"], self.n_actions)
                       if self.obs_last_action else None)
        inputs = build_agent_inputs(obs, last_action, self.obs_agent_id)
        hidden = agent.initial_hidden(obs.shape[0], self.n_agents).to(obs.device)
        q, _ = agent(inputs, hidden)
        return q

    def _forward_train(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        return {"q": self.unroll(self.agent, batch)}

    def utilities(self, q: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """The per-action values the mixer combines: Q itself in QMIX."""
        return q

    def mixer_states(self, batch: Dict[str, Any], time: slice) -> torch.Tensor:
        """What the mixer's hypernetworks see at the steps ``time``: the global state [B, T', S]."""
        return batch["state"][:, time]

    def mix(self, mixer: torch.nn.Module, agent_qs: torch.Tensor, batch: Dict[str, Any],
            time: slice) -> torch.Tensor:
        """Q_tot [B, T'] of ``mixer`` for agent_qs [B, T', N] at the steps ``time``."""
        return mixer(agent_qs, self.mixer_states(batch, time))

    def joint_value(self, chosen_q: torch.Tensor, batch: Dict[str, Any], time: slice) -> torch.Tensor:
        """Q_tot [B, T'] from the chosen local Q [B, T', N], through ``utilities`` (Soft-QMIX's
        g) and the online mixer: the map whose gradient is each agent's credit."""
        states = batch["state"][:, time]
        return self.mix(self.mixer, self.utilities(chosen_q, states), batch, time)

    # ---- target networks (TargetNetworkAPI) -------------------------------
    def make_target_networks(self) -> None:
        self._target_agent = make_target_network(self.agent)
        self._target_mixer = make_target_network(self.mixer)

    def get_target_network_pairs(self) -> List[Tuple[torch.nn.Module, torch.nn.Module]]:
        return [(self.agent, self._target_agent), (self.mixer, self._target_mixer)]

    def forward_target(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        with torch.no_grad():
            return {"target_q": self.unroll(self._target_agent, batch)}

    def online_parameters(self) -> List[torch.nn.Parameter]:
        """Parameters the optimiser trains: everything but the target copies."""
        return [p for name, p in self.named_parameters() if not name.startswith("_target")]

    def get_non_inference_attributes(self) -> List[str]:
        return ["mixer", "_target_agent", "_target_mixer"]

    # ---- acting ---------------------------------------------------------------
    def get_initial_state(self) -> Dict[str, torch.Tensor]:
        return {"h": self.agent.initial_hidden(self.n_agents),
                "last_action": torch.zeros(self.n_agents, self.n_actions)}

    def step_utilities(self, batch: Dict[str, Any]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """One acting step: Q [E, N, A] and the state_out without ``last_action``."""
        observation, state_in = batch[Columns.OBS], batch[Columns.STATE_IN]
        last_action = state_in["last_action"] if self.obs_last_action else None
        inputs = build_agent_inputs(observation["obs"], last_action, self.obs_agent_id)
        q, hidden = self.agent.step(inputs, state_in["h"])
        return q, {"h": hidden}

    @torch.no_grad()
    def _act(self, batch: Dict[str, Any], actions_fn) -> Dict[str, Any]:
        """Acting never needs gradients (RLlib's forward_* wrappers do not disable them)."""
        q, state_out = self.step_utilities(batch)
        actions = actions_fn(q, batch[Columns.OBS]["action_mask"])
        state_out["last_action"] = F.one_hot(actions, self.n_actions).to(q.dtype)
        return {Columns.ACTIONS: actions, Columns.STATE_OUT: state_out}

    def _forward_inference(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        """Greedy decentralised actions from each agent's own utilities."""
        return self._act(batch, greedy)

    def _forward_exploration(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        epsilon = self.epsilon(int(batch.get(TIMESTEP, 0)))
        return self._act(batch, lambda q, avail: epsilon_greedy(q, avail, epsilon))

    def exploration_probabilities(self, q: torch.Tensor, states: torch.Tensor, avail: torch.Tensor,
                                  timestep: int) -> torch.Tensor:
        """Each agent's acting distribution [..., N, A]: epsilon-greedy over available actions."""
        epsilon = self.epsilon(timestep)
        uniform = avail / avail.sum(-1, keepdim=True)
        best = F.one_hot(greedy(q, avail), self.n_actions).to(q.dtype)
        return (1.0 - epsilon) * best + epsilon * uniform

    @torch.no_grad()
    def first_step_diagnostics(self, observation: Dict[str, np.ndarray], timestep: int
                               ) -> Dict[str, List]:
        """At a first team observation: each agent's Q [N, A], acting probabilities [N, A]
        and, for two agents, Q_tot of every joint action [A, A] (the matrix-game table)."""
        batch = {Columns.OBS: {key: torch.as_tensor(value).unsqueeze(0)
                               for key, value in observation.items()},
                 Columns.STATE_IN: {key: value.unsqueeze(0)
                                    for key, value in self.get_initial_state().items()}}
        q, state_out = self.step_utilities(batch)
        states, avail = batch[Columns.OBS]["state"], batch[Columns.OBS]["action_mask"]
        result = {"agent_q": q[0].tolist(),
                  "action_probabilities": self.exploration_probabilities(q, states, avail, timestep)[0].tolist()}
        if self.n_agents == 2 and not self.inference_only:
            values = self.utilities(q, states)[0]
            first, second = torch.meshgrid(torch.arange(self.n_actions), torch.arange(self.n_actions),
                                           indexing="ij")
            joint = torch.stack([values[0, first.reshape(-1)], values[1, second.reshape(-1)]], -1)
            # Every joint action as one time step of a one-episode batch.
            table_batch = {"state": states.unsqueeze(1).expand(1, joint.shape[0], -1),
                           **{key: state_out[key] for key in self.EPISODE_CONSTANTS}}
            q_tot = self.mix(self.mixer, joint.unsqueeze(0), table_batch, slice(None))
            result["q_tot_table"] = q_tot.reshape(self.n_actions, self.n_actions).tolist()
        return result
