"""Soft-QMIX's learner: soft TD(lambda) targets, the f-fit loss, the weighted TD loss.

Only what differs from QMIX (docs/algorithms/soft_qmix.md):
- Q_tot from the transformed utilities g(Q) of the taken actions (sum or QMIX mixer);
- the bootstrap value of one sampled action per agent, a' ~ softmax(f(g(Q)) / alpha),
  through the target networks, plus the entropy bonus alpha sum_i -log pi_i(a'_i)
  (or the exact alpha sum_i H(pi_i));
- the f-fit loss 1/2 (sg[Q_tot] - sum_i f_i(sg[g_i(Q_i(a_i))]))^2, which trains f only;
- optionally the release's weighted TD loss.
"""

from typing import Any, Dict, Optional, Tuple

import torch

from rllib_softqmix.core.action_selection import sample_from_log_probs
from rllib_softqmix.core.targets import release_soft_lambda_returns
from rllib_softqmix.qmix.learner import QMIXTorchLearner, masked_mean


class SoftQMIXTorchLearner(QMIXTorchLearner):

    def joint_values(self, module, batch: Dict[str, Any], fwd_out: Dict[str, Any]) -> torch.Tensor:
        chosen = fwd_out["utilities"][:, :-1].gather(-1, batch["actions"].unsqueeze(-1)).squeeze(-1)
        q_tot = module.mix(module.mixer, chosen, batch, slice(0, -1))
        if module.transform_f is not None:
            fitted = module.transform_f(chosen.detach(), batch["state"][:, :-1]).sum(-1)
            fwd_out["f_fit_error"] = q_tot.detach() - fitted
        return q_tot

    def bootstrap_values(self, module, config, batch: Dict[str, Any], fwd_out: Dict[str, Any]
                         ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        states, avail = batch["state"], batch["action_mask"]
        target_f = module._target_f if config.soft_variant().target_policy_f == "target" else module.transform_f
        log_pi = module.policy_log_probs(fwd_out["utilities"].detach(), states, avail, target_f)
        sampled = sample_from_log_probs(log_pi)
        target_q = module.forward_target(batch)["target_q"]
        target_utilities = module.utilities(target_q, states, module._target_g)
        chosen = target_utilities.gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
        values = module.mix(module._target_mixer, chosen, batch, slice(None))
        entropy = -(log_pi.exp() * log_pi).sum(-1)  # exact H(pi_i), [B, T+1, N]
        fwd_out["policy_entropy"] = entropy
        if config.exact_entropy:
            bonus = config.temperature * entropy.sum(-1)
        else:
            bonus = -config.temperature * log_pi.gather(-1, sampled.unsqueeze(-1)).squeeze(-1).sum(-1)
        return values, bonus

    def td_targets(self, config, rewards: torch.Tensor, terminated: torch.Tensor,
                   mask: torch.Tensor, values: torch.Tensor,
                   bonus: Optional[torch.Tensor]) -> torch.Tensor:
        if not config.release_entropy_leak:
            return super().td_targets(config, rewards, terminated, mask, values, bonus)
        return release_soft_lambda_returns(rewards, terminated, mask, values, config.gamma,
                                           config.td_lambda, bonus)

    def td_loss(self, config, td_error: torch.Tensor, mask: torch.Tensor,
                fwd_out: Dict[str, Any]) -> torch.Tensor:
        """The release's weighted TD: delta^2 weighs 0.5 where the f-fit error e and delta
        have opposite signs ((e > 0) == (delta < 0)), 1 elsewhere; normalised by the weights."""
        if not config.soft_variant().weighted_td:
            return super().td_loss(config, td_error, mask, fwd_out)
        opposite = (fwd_out["f_fit_error"] > 0) == (td_error.detach() < 0)
        weights = torch.where(opposite, 0.5, 1.0) * mask
        return config.td_loss_scale * masked_mean(td_error.pow(2), weights)

    def extra_losses(self, module, config, batch, fwd_out, q_tot, td_error) -> Dict[str, torch.Tensor]:
        if "f_fit_error" not in fwd_out:
            return {}
        return {"f_fit_loss": 0.5 * masked_mean(fwd_out["f_fit_error"].pow(2), batch["mask"])}

    def extra_stats(self, module, config, batch, fwd_out) -> Dict[str, torch.Tensor]:
        entropy = fwd_out["policy_entropy"][:, :-1].detach()
        mask = batch["mask"]
        per_agent = {f"policy_entropy_agent_{i}": masked_mean(entropy[..., i], mask)
                     for i in range(entropy.shape[-1])}
        return {"policy_entropy_mean": masked_mean(entropy.mean(-1), mask),
                "temperature": torch.tensor(config.temperature), **per_agent}
