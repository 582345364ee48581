"""Mixing networks: Q_tot = M(Q_1..Q_N; s), monotone in every Q_i.

Shapes: agent_qs [..., N] (the chosen-action utilities), states [..., S];
every mixer returns Q_tot [...].
"""

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

MIXERS = ("qmix", "vdn", "qmix_simple")


def hypernetwork(in_dim: int, out_dim: int, hidden_dim: int, layers: int) -> nn.Module:
    """Linear(S, out) for one layer, Linear(S, hidden) -> ReLU -> Linear(hidden, out) for two."""
    if layers == 1:
        return nn.Linear(in_dim, out_dim)
    if layers == 2:
        return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))
    raise ValueError(f"hypernet_layers must be 1 or 2, got {layers}")


class MixingWeights(NamedTuple):
    """The state-conditioned mixing parameters of QMIX (GRE paper eq. 1).

    w1 [..., N, E] (non-negative), b1 [..., E], w2 [..., E] (non-negative), v [...].
    """
    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    v: torch.Tensor


class QMixer(nn.Module):
    """QMIX: Q_tot = ELU(q |W1(s)| + b1(s)) |W2(s)| + V(s) (GRE paper eq. 1).

    ``hypernet_layers`` 2 is pymarl2's / GRE's mixer, 1 is MAVEN's.
    """

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int = 32,
                 hypernet_embed: int = 64, hypernet_layers: int = 2):
        super().__init__()
        self.n_agents, self.embed_dim = n_agents, embed_dim
        self.hyper_w1 = hypernetwork(state_dim, n_agents * embed_dim, hypernet_embed, hypernet_layers)
        self.hyper_b1 = nn.Linear(state_dim, embed_dim)
        self.hyper_w2 = hypernetwork(state_dim, embed_dim, hypernet_embed, hypernet_layers)
        self.hyper_v = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))

    def mixing_weights(self, states: torch.Tensor) -> MixingWeights:
        lead = states.shape[:-1]
        return MixingWeights(
            w1=self.hyper_w1(states).abs().view(*lead, self.n_agents, self.embed_dim),
            b1=self.hyper_b1(states),
            w2=self.hyper_w2(states).abs(),
            v=self.hyper_v(states).squeeze(-1),
        )

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        w = self.mixing_weights(states)
        # A broadcast product, not einsum: einsum lowers to batched 1xN @ NxE matmuls (slow).
        hidden = F.elu((agent_qs.unsqueeze(-1) * w.w1).sum(-2) + w.b1)
        return (hidden * w.w2).sum(-1) + w.v


class QMixSimpleMixer(nn.Module):
    """QMIX-simple: Q_tot = |w2(s)| ELU(|w1(s)| sum_i Q_i + b1(s)) + V(s) (GRE paper eq. 9).

    A monotone mixer that gives every agent the same credit dQ_tot/dQ_i (the GRE
    paper's equal-credit control): w1, w2 Linear(S, H)-ReLU-Linear(H, 1), b1 Linear(S, 1),
    V Linear(S, E)-ReLU-Linear(E, 1).
    """

    def __init__(self, state_dim: int, embed_dim: int = 32, hypernet_embed: int = 64):
        super().__init__()
        self.hyper_w1 = hypernetwork(state_dim, 1, hypernet_embed, 2)
        self.hyper_b1 = nn.Linear(state_dim, 1)
        self.hyper_w2 = hypernetwork(state_dim, 1, hypernet_embed, 2)
        self.hyper_v = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        total = agent_qs.sum(-1, keepdim=True)
        hidden = F.elu(self.hyper_w1(states).abs() * total + self.hyper_b1(states))
        return (self.hyper_w2(states).abs() * hidden + self.hyper_v(states)).squeeze(-1)


class VDNMixer(nn.Module):
    """VDN: Q_tot = sum_i Q_i; the state is not used."""

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        return agent_qs.sum(-1)


def make_mixer(name: str, n_agents: int, state_dim: int, *, embed_dim: int,
               hypernet_embed: int, hypernet_layers: int) -> nn.Module:
    if name == "qmix":
        return QMixer(n_agents, state_dim, embed_dim, hypernet_embed, hypernet_layers)
    if name == "vdn":
        return VDNMixer()
    if name == "qmix_simple":
        return QMixSimpleMixer(state_dim, embed_dim, hypernet_embed)
    raise ValueError(f"Unknown mixer {name!r}; choose one of {MIXERS}.")
