"""MAVEN's learner: QMIX's (z-conditioned) TD loss plus the mutual-information loss
(docs/algorithms/maven.md), and the REINFORCE step of the latent policy pi_z.

The discriminator predicts z from the behaviour features x_t = [softmax of every
agent's (masked) Q ; s_t]; its cross-entropy reaches the agent network through x (not
detached unless ``mi_intrinsic``), so the agents' Q-functions are shaped to make z
identifiable. pi_z has its own Adam optimiser and never gets TD gradients.
"""

from typing import Any, Dict, List, Tuple

import numpy as np
import torch
from torch.nn import functional as F

from rllib_softqmix.core.action_selection import mask_unavailable
from rllib_softqmix.envs.team_env import TEAM
from rllib_softqmix.maven.reinforce import AdamSettings, PackedZPolicy, reinforce_steps
from rllib_softqmix.qmix.learner import QMIXTorchLearner, masked_mean

Z_POLICY_OPTIMIZER = "z_policy"


class MAVENTorchLearner(QMIXTorchLearner):

    SEPARATE_OPTIMIZERS = (Z_POLICY_OPTIMIZER,)

    def td_parameters(self, module) -> List[torch.nn.Parameter]:
        z_policy = {id(p) for p in module.z_policy.parameters()}
        return [p for p in module.online_parameters() if id(p) not in z_policy]

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        super().configure_optimizers_for_module(module_id, config)
        params = list(self.module[module_id].unwrapped().z_policy.parameters())
        self.register_optimizer(module_id=module_id, optimizer_name=Z_POLICY_OPTIMIZER,
                                optimizer=torch.optim.Adam(params), params=params,
                                lr_or_lr_schedule=config.lr)

    # ---- the mutual-information loss ------------------------------------------
    def discriminator_cross_entropy(self, module, config, batch: Dict[str, Any],
                                    fwd_out: Dict[str, Any]) -> torch.Tensor:
        """Cross-entropy of z given the behaviour: per episode [B] with the GRU aggregator
        (its initial state all ones, as released), else per step [B, T]. Cached in fwd_out."""
        if "discriminator_ce" in fwd_out:
            return fwd_out["discriminator_ce"]
        with torch.enable_grad():
            q = mask_unavailable(fwd_out["q"][:, :-1], batch["action_mask"][:, :-1])
            if config.hard_qs:
                probs = F.one_hot(q.argmax(-1), q.shape[-1]).to(q.dtype)
            else:
                probs = torch.softmax(q, dim=-1)
            features = torch.cat([probs.flatten(-2), batch["state"][:, :-1]], dim=-1)
            if config.mi_intrinsic:
                features = features.detach()
            target = batch["z"].argmax(-1)
            if config.rnn_discrim:
                initial = torch.ones(1, features.shape[0], module.aggregator.hidden_size)
                hidden, _ = module.aggregator(features, initial)
                last = batch["mask"].sum(1).long() - 1
                logits = module.discriminator(hidden[torch.arange(hidden.shape[0]), last])
                cross_entropy = F.cross_entropy(logits, target, reduction="none")
            else:
                logits = module.discriminator(features)
                steps = logits.shape[1]
                cross_entropy = F.cross_entropy(logits.flatten(0, 1), target.repeat_interleave(steps),
                                                reduction="none").view(-1, steps)
        fwd_out["discriminator_ce"] = cross_entropy
        fwd_out["discriminator_correct"] = (logits.argmax(-1) == (
            target if config.rnn_discrim else target.unsqueeze(1))).to(logits.dtype).detach()
        return cross_entropy

    def rewards(self, config, batch: Dict[str, Any], fwd_out: Dict[str, Any]) -> torch.Tensor:
        """With ``mi_intrinsic``, the release adds mi_scaler * CE_t (the per-step discriminator
        cross-entropy, detached features) to the rewards of the TD targets."""
        rewards = super().rewards(config, batch, fwd_out)
        if not config.mi_intrinsic:
            return rewards
        cross_entropy = self.discriminator_cross_entropy(self.module[TEAM].unwrapped(), config, batch, fwd_out)
        return rewards + config.mi_scaler * cross_entropy.detach()

    def extra_losses(self, module, config, batch, fwd_out, q_tot, td_error) -> Dict[str, torch.Tensor]:
        cross_entropy = self.discriminator_cross_entropy(module, config, batch, fwd_out)
        mean = cross_entropy.mean() if config.rnn_discrim else masked_mean(cross_entropy, batch["mask"])
        return {"mi_loss": config.mi_loss * mean}

    def extra_stats(self, module, config, batch, fwd_out) -> Dict[str, torch.Tensor]:
        correct = fwd_out["discriminator_correct"]
        accuracy = correct.mean() if config.rnn_discrim else masked_mean(correct, batch["mask"])
        return {"discriminator_accuracy": accuracy}

    # ---- the latent policy ----------------------------------------------------------
    def packed_z_policy(self) -> Tuple[PackedZPolicy, AdamSettings]:
        """pi_z and its Adam state as numpy copies, for ``reinforce_steps`` elsewhere."""
        module = self.module[TEAM].unwrapped()
        return module.z_policy.packed(self.get_optimizer(TEAM, Z_POLICY_OPTIMIZER))

    def load_z_policy(self, policy: PackedZPolicy, losses: np.ndarray,
                      last_states: np.ndarray) -> Dict[str, float]:
        """Takes ``reinforce_steps``' result; returns the mean loss and pi_z's entropy at
        the states of the last batch [M, S], after the update. Counts as a new version of the
        weights (RLlib's weights seq no), which runners load only when it is newer than theirs:
        a pi_z update without a TD step would otherwise never reach them."""
        z_policy = self.module[TEAM].unwrapped().z_policy
        z_policy.load_packed(self.get_optimizer(TEAM, Z_POLICY_OPTIMIZER), policy)
        self._weights_seq_no += 1
        with torch.no_grad():
            log_probs = z_policy(torch.as_tensor(last_states, dtype=torch.float32))
            entropy = -(log_probs.exp() * log_probs).sum(-1).mean().item()
        return {"z_policy_loss": float(losses.mean()), "z_policy_entropy": entropy}

    def update_z_policy(self, states: np.ndarray, z_index: np.ndarray, returns: np.ndarray,
                        index: np.ndarray, entropy_scaling: float, entropy_bonus: str = "exact"
                        ) -> Dict[str, float]:
        """len(index) REINFORCE steps on pi_z, step k on the samples index[k]
        [M] of the buffered initial states [L, S], z [L] and returns [L]: summed over the M
        samples, no baseline, raw returns (as released); loss in ``reinforce_steps``."""
        policy, losses = reinforce_steps(*self.packed_z_policy(), states, z_index, returns, index,
                                         entropy_scaling, entropy_bonus == "exact")
        return self.load_z_policy(policy, losses, states[index[-1]])
