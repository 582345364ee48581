"""Soft-QMIX's RLModule: QMIX's plus the transforms g and f and the soft policy.

Acting for training samples from softmax(f(g(Q)) / alpha) over available actions
(paper eq. 15): g and f are conditioned on the global state, so they stay in the
inference-only module on the EnvRunners. Greedy acting (evaluation, TeamPolicy) is
QMIX's argmax of the raw local Q, which g and f cannot change (both are increasing).
"""

from typing import Any, Dict, List, Optional, Tuple

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.utils import make_target_network

from rllib_softqmix.core.action_selection import masked_log_softmax, sample_from_log_probs
from rllib_softqmix.core.mixers import make_mixer
from rllib_softqmix.qmix.rl_module import QMIXTorchRLModule
from rllib_softqmix.soft_qmix.transforms import TransformF, TransformG


class SoftQMIXTorchRLModule(QMIXTorchRLModule):
    """Agent network, g (optional), f (optional) and the joint mixer (sum or QMIX)."""

    def setup(self) -> None:
        super().setup()
        config = self.model_config
        self.temperature = config["temperature"]
        self.transform_g = (TransformG(self.n_agents, self.state_dim, config["mixing_embed_dim"] // 2,
                                       config["hypernet_embed"]) if config["transform_g"] else None)
        self.transform_f = (TransformF(self.n_agents, self.state_dim, config["hypernet_embed"])
                            if config["transform_f"] else None)

    def build_mixer(self) -> torch.nn.Module:
        config = self.model_config
        name = "vdn" if config["joint_mixer"] == "sum" else config["mixer"]
        return make_mixer(name, self.n_agents, self.state_dim, embed_dim=config["mixing_embed_dim"],
                          hypernet_embed=config["hypernet_embed"],
                          hypernet_layers=config["hypernet_layers"])

    def utilities(self, q: torch.Tensor, states: torch.Tensor,
                  transform_g: Optional[torch.nn.Module] = None) -> torch.Tensor:
        """g(s, Q) for every action [..., N, A] (Q itself without g); the online g unless
        another (the target g) is given."""
        g = transform_g or self.transform_g
        return q if g is None else g(q, states)

    def policy_log_probs(self, utilities: torch.Tensor, states: torch.Tensor, avail: torch.Tensor,
                         f: Optional[torch.nn.Module]) -> torch.Tensor:
        """log pi [..., N, A] = log softmax(f(s, utilities) / alpha) over available actions."""
        logits = utilities if f is None else f(utilities, states)
        return masked_log_softmax(logits / self.temperature, avail)

    def _forward_train(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        out = super()._forward_train(batch)
        out["utilities"] = self.utilities(out["q"], batch["state"])
        return out

    def _forward_exploration(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        states = batch[Columns.OBS]["state"]

        def sample(q, avail):
            utilities = self.utilities(q, states)
            return sample_from_log_probs(self.policy_log_probs(utilities, states, avail, self.transform_f))
        return self._act(batch, sample)

    def exploration_probabilities(self, q: torch.Tensor, states: torch.Tensor, avail: torch.Tensor,
                                  timestep: int) -> torch.Tensor:
        """softmax(f(g(Q)) / alpha) over available actions (the temperature is fixed)."""
        return self.policy_log_probs(self.utilities(q, states), states, avail, self.transform_f).exp()

    # ---- targets: g and f are copied with the agent and the mixer --------------
    def make_target_networks(self) -> None:
        super().make_target_networks()
        self._target_g = make_target_network(self.transform_g) if self.transform_g is not None else None
        self._target_f = make_target_network(self.transform_f) if self.transform_f is not None else None

    def get_target_network_pairs(self) -> List[Tuple[torch.nn.Module, torch.nn.Module]]:
        pairs = super().get_target_network_pairs()
        for online, target in ((self.transform_g, self._target_g), (self.transform_f, self._target_f)):
            if online is not None:
                pairs.append((online, target))
        return pairs

    def get_non_inference_attributes(self) -> List[str]:
        return super().get_non_inference_attributes() + ["_target_g", "_target_f"]
