"""Credit assignment of a mixer: dQ_tot/dQ_i and its normalised entropy (GRE paper eq. 6-8).

Shapes: credit gradients [..., N]; entropies [...]. The normalised entropy
H(g') / log N, with g'_i = (g_i + 1e-8) / sum_j (g_j + 1e-8), is 1 for equal credit and
falls towards 0 as one agent takes all of it (paper eq. 6-8).
"""

import math

import torch
from torch.nn import functional as F

from rllib_softqmix.core.mixers import MixingWeights

EPSILON = 1e-8


def normalized_entropy(credit: torch.Tensor) -> torch.Tensor:
    """H(g') / log N over the last dim; 1 when N = 1 (all credit is equal)."""
    n_agents = credit.shape[-1]
    if n_agents < 2:
        return torch.ones_like(credit[..., 0])
    shares = credit + EPSILON
    shares = shares / shares.sum(-1, keepdim=True)
    return -(shares * shares.log()).sum(-1) / math.log(n_agents)


def closed_form_credit(weights: MixingWeights, agent_qs: torch.Tensor, *, release_slip: bool
                       ) -> torch.Tensor:
    """dQ_tot/dQ_i = |W1| diag(ELU'(z)) |W2| of the QMIX mixer, z = q |W1| + b1 (q detached).

    ELU'(z) = 1 for z >= 0 and exp(z) below. The released GRE code exponentiated the
    post-activation ELU(z) = exp(z) - 1 instead (``release_slip=True``), giving
    exp(exp(z) - 1) in [1/e, 1) where exp(z) lies in (0, 1).
    """
    z = (agent_qs.detach().unsqueeze(-1) * weights.w1).sum(-2) + weights.b1
    below = F.elu(z) if release_slip else z
    slope = torch.where(z >= 0, torch.ones_like(z), below.exp())
    return (weights.w1 * (slope * weights.w2).unsqueeze(-2)).sum(-1)
