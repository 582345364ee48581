"""QMIX-GRE's learner: QMIX's loss plus lambda * mean normalised credit entropy (GRE paper eq. 10).

The entropy of dQ_tot/dQ_i is minimised, making credit more discriminative. The local
Q are detached, so the regulariser updates only the mixer's W1, b1 and W_final
hypernetworks (not V, not the agents), in the same optimiser step as the TD loss.
"""

from typing import Dict

import torch

from rllib_softqmix.core.credit import closed_form_credit, normalized_entropy
from rllib_softqmix.qmix.learner import QMIXTorchLearner, chosen_local_q, masked_mean


class QMIXGRETorchLearner(QMIXTorchLearner):

    def extra_losses(self, module, config, batch, fwd_out, q_tot, td_error) -> Dict[str, torch.Tensor]:
        if config.gre_lambda == 0:
            return {}
        if config.gre_gradient == "autograd":
            credit = self.credit_gradients(module, batch, fwd_out, create_graph=True)
            fwd_out["credit_entropy"] = normalized_entropy(credit)
            entropy = fwd_out["credit_entropy"]
        else:
            weights = module.mixer.mixing_weights(batch["state"][:, :-1])
            credit = closed_form_credit(weights, chosen_local_q(batch, fwd_out), release_slip=True)
            entropy = normalized_entropy(credit)
        return {"gre_loss": config.gre_lambda * masked_mean(entropy, batch["mask"])}
