"""Soft-QMIX's order-preserving transforms g and f (paper eq. 8 and Appendix G).

Shapes: values [..., N, *R] (R: nothing for chosen values, (A,) for every action's
value), states [..., S] with the same leading dims ``...``. Both transforms act on
each agent's values separately, with weights from the global state, and are strictly
increasing in the value, so each agent's action order is kept.
"""

import torch
from torch import nn
from torch.nn import functional as F


def _per_agent(weights: torch.Tensor, values: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """Reshapes per-agent weights [..., N, *W] to broadcast against values [..., N, *R, *W]."""
    extra = values.dim() - states.dim()  # the dims of R, beyond [..., N]
    lead = weights.shape[: states.dim()]
    return weights.reshape(*lead, *([1] * extra), *weights.shape[states.dim():])


class TransformG(nn.Module):
    """g_i(s, q) = q + B2_i(s) + sum_k W2_ki(s) ELU(W1_ki(s) q + B1_ki(s)), W1, W2 >= 0.

    The residual q makes the slope >= 1. ``hidden`` is K (the release uses
    mixing_embed_dim / 2 = 16); hypernetworks: W1 Linear-ReLU-Linear, B1 Linear, W2 and
    B2 two-layer MLPs, all of width ``hypernet_embed``.
    """

    def __init__(self, n_agents: int, state_dim: int, hidden: int = 16, hypernet_embed: int = 64):
        super().__init__()
        self.n_agents, self.hidden = n_agents, hidden

        def mlp(out_dim):
            return nn.Sequential(nn.Linear(state_dim, hypernet_embed), nn.ReLU(),
                                 nn.Linear(hypernet_embed, out_dim))

        self.hyper_w1 = mlp(n_agents * hidden)
        self.hyper_b1 = nn.Linear(state_dim, n_agents * hidden)
        self.hyper_w2 = mlp(n_agents * hidden)
        self.hyper_b2 = mlp(n_agents)

    def forward(self, values: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        lead = states.shape[:-1]
        per_agent = (*lead, self.n_agents, self.hidden)
        w1 = _per_agent(self.hyper_w1(states).abs().view(per_agent), values, states)
        b1 = _per_agent(self.hyper_b1(states).view(per_agent), values, states)
        w2 = _per_agent(self.hyper_w2(states).abs().view(per_agent), values, states)
        b2 = _per_agent(self.hyper_b2(states), values, states)
        hidden = F.elu(values.unsqueeze(-1) * w1 + b1)
        return values + b2 + (hidden * w2).sum(-1)


class TransformF(nn.Module):
    """f_i(s, x) = |w_i(s)| x + b_i(s); w, b: Linear(S, 64)-ReLU-Linear(64, N).

    The policy is softmax(f(g(Q)) / alpha): the bias cancels there, so |w_i(s)| acts as a
    state-dependent inverse-temperature multiplier per agent.
    """

    def __init__(self, n_agents: int, state_dim: int, hypernet_embed: int = 64):
        super().__init__()
        self.hyper_w = nn.Sequential(nn.Linear(state_dim, hypernet_embed), nn.ReLU(),
                                     nn.Linear(hypernet_embed, n_agents))
        self.hyper_b = nn.Sequential(nn.Linear(state_dim, hypernet_embed), nn.ReLU(),
                                     nn.Linear(hypernet_embed, n_agents))

    def forward(self, values: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        weight = _per_agent(self.hyper_w(states).abs(), values, states)
        bias = _per_agent(self.hyper_b(states), values, states)
        return weight * values + bias
