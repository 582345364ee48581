"""MAVEN's RLModule: the latent z, the z-conditioned agents and mixer, pi_z, the discriminator.

z is part of the module's recurrent state: the initial state has z = 0 ("not drawn"),
and the first step of an episode draws it from s_0 (pi_z or uniform) and carries it in
``state_out`` for the rest of the episode. So any EnvRunner (remote ones too), the
evaluation runners and TeamPolicy all hold one z per episode, and the TeamEnvRunner
stores it with the episode (``EPISODE_CONSTANTS``).
"""

from typing import Any, Dict, List, Tuple

import torch
from ray.rllib.core.columns import Columns
from torch.nn import functional as F

from rllib_softqmix.core.agent import agent_input_dim, build_agent_inputs, shifted_onehot_actions
from rllib_softqmix.core.mixers import QMixer
from rllib_softqmix.maven.networks import Discriminator, NoiseConditionedAgent, ZPolicy
from rllib_softqmix.qmix.rl_module import QMIXTorchRLModule

EXPLORING = "exploring"  # batch key set while acting for training


class MAVENTorchRLModule(QMIXTorchRLModule):

    EPISODE_CONSTANTS = ("z",)

    def setup(self) -> None:
        config = self.model_config
        self.noise_dim = config["noise_dim"]
        self.z_policy_mode = config["z_policy"]
        self.test_z = config["test_z"]
        super().setup()
        self.z_policy = ZPolicy(self.state_dim, self.noise_dim)
        if not self.inference_only:
            features = self.n_agents * self.n_actions + self.state_dim
            if config["rnn_discrim"]:
                self.aggregator = torch.nn.GRU(features, config["rnn_agg_size"], batch_first=True)
                features = config["rnn_agg_size"]
            self.discriminator = Discriminator(features, self.noise_dim, config["discrim_size"],
                                               config["discrim_layers"])

    def build_agent(self) -> NoiseConditionedAgent:
        config = self.model_config
        input_dim = agent_input_dim(self.obs_dim, self.n_actions, self.n_agents,
                                    obs_last_action=self.obs_last_action,
                                    obs_agent_id=self.obs_agent_id)
        return NoiseConditionedAgent(input_dim, self.n_actions, config["rnn_hidden_dim"],
                                     config["agent_network"] == "gru", self.n_agents, self.noise_dim)

    def build_mixer(self) -> QMixer:
        config = self.model_config
        return QMixer(self.n_agents, self.state_dim + self.noise_dim, config["mixing_embed_dim"],
                      config["hypernet_embed"], config["hypernet_layers"])

    def mixer_states(self, batch: Dict[str, Any], time: slice) -> torch.Tensor:
        """[s_t ; z]: the mixer's hypernetworks see the latent too."""
        states = batch["state"][:, time]
        z = batch["z"].unsqueeze(1).expand(*states.shape[:2], self.noise_dim)
        return torch.cat([states, z], dim=-1)

    def unroll(self, agent: NoiseConditionedAgent, batch: Dict[str, Any]) -> torch.Tensor:
        obs = batch["obs"]
        last_action = (shifted_onehot_actions(batch["actions"], self.n_actions)
                       if self.obs_last_action else None)
        inputs = build_agent_inputs(obs, last_action, self.obs_agent_id)
        q, _ = agent(inputs, agent.initial_hidden(obs.shape[0], self.n_agents).to(obs.device), batch["z"])
        return q

    def get_non_inference_attributes(self) -> List[str]:
        return super().get_non_inference_attributes() + ["aggregator", "discriminator"]

    # ---- the latent --------------------------------------------------------------
    def draw_z(self, initial_states: torch.Tensor, from_policy: bool) -> torch.Tensor:
        """One-hot z [E, Z] for each s_0 [E, S]: from pi_z, or uniform."""
        if from_policy and self.z_policy_mode == "learned":
            index = torch.multinomial(self.z_policy(initial_states).exp(), 1).squeeze(-1)
        else:
            index = torch.randint(self.noise_dim, initial_states.shape[:1])
        return F.one_hot(index, self.noise_dim).to(initial_states.dtype)

    def get_initial_state(self) -> Dict[str, torch.Tensor]:
        return {**super().get_initial_state(), "z": torch.zeros(self.noise_dim)}

    def step_utilities(self, batch: Dict[str, Any]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        observation, state_in = batch[Columns.OBS], batch[Columns.STATE_IN]
        z = state_in["z"]
        undrawn = z.sum(-1) == 0
        if undrawn.any():  # the first step of an episode: draw z from s_0
            from_policy = batch.get(EXPLORING, False) or self.test_z == "policy"
            z = torch.where(undrawn.unsqueeze(-1), self.draw_z(observation["state"], from_policy), z)
        last_action = state_in["last_action"] if self.obs_last_action else None
        inputs = build_agent_inputs(observation["obs"], last_action, self.obs_agent_id)
        q, hidden = self.agent(inputs.unsqueeze(1), state_in["h"], z)
        return q.squeeze(1), {"h": hidden, "z": z}

    def _forward_exploration(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        return super()._forward_exploration({**batch, EXPLORING: True})
