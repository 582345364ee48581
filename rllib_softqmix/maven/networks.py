"""MAVEN's networks (spec 4.1-4.4), as plain nn.Modules.

Shapes: B batch, T time, N agents, A actions, H hidden, S state, Z = noise_dim; a
latent z is a one-hot [..., Z], fixed for a whole episode.
"""

from typing import Tuple

import torch
from torch import nn

from rllib_softqmix.core.agent import AgentNetwork


class NoiseConditionedAgent(nn.Module):
    """QMIX's agent trunk with a Q head that is a hypernetwork of (z, agent id) (spec 4.2).

    W_i = Linear(Z + N -> H * A)([z ; onehot(i)]) reshaped to (A, H); Q_i = W_i h (no bias).
    """

    def __init__(self, input_dim: int, n_actions: int, hidden_dim: int, recurrent: bool,
                 n_agents: int, noise_dim: int):
        super().__init__()
        self.n_agents, self.n_actions, self.hidden_dim = n_agents, n_actions, hidden_dim
        self.trunk = AgentNetwork(input_dim, n_actions, hidden_dim, recurrent, with_head=False)
        self.hyper_head = nn.Linear(noise_dim + n_agents, hidden_dim * n_actions)

    def initial_hidden(self, *batch_shape: int) -> torch.Tensor:
        return self.trunk.initial_hidden(*batch_shape)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, z: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """inputs [B, T, N, I], hidden [B, N, H], z [B, Z] -> (Q [B, T, N, A], hidden [B, N, H])."""
        features, hidden = self.trunk.features(inputs, hidden)
        batch, n_agents = z.shape[0], self.n_agents
        ids = torch.eye(n_agents, dtype=z.dtype, device=z.device).expand(batch, n_agents, n_agents)
        head_input = torch.cat([z.unsqueeze(1).expand(batch, n_agents, z.shape[-1]), ids], -1)
        weights = self.hyper_head(head_input).view(batch, 1, n_agents, self.n_actions, self.hidden_dim)
        return (weights * features.unsqueeze(-2)).sum(-1), hidden


class ZPolicy(nn.Module):
    """pi_z(z | s_0) = softmax(Linear(128 -> Z)(ReLU(Linear(S -> 128)(s_0)))) (spec 4.1)."""

    def __init__(self, state_dim: int, noise_dim: int, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(state_dim, hidden), nn.ReLU(), nn.Linear(hidden, noise_dim))

    def forward(self, initial_states: torch.Tensor) -> torch.Tensor:
        """Log-probabilities [..., Z]."""
        return torch.log_softmax(self.net(initial_states), dim=-1)

    @torch.no_grad()
    def set_reinforce_gradients(self, states: torch.Tensor, z: torch.Tensor, returns: torch.Tensor,
                                entropy_scaling: float, exact_entropy: bool) -> torch.Tensor:
        """Writes into .grad the gradient of one REINFORCE step's loss (spec 4.1) on
        states [M, S], z [M] (indices), returns [M], and returns the loss:

            L = -sum_j R_j log pi(z_j|s_j) - entropy_scaling * sum_j H(pi(.|s_j))   (exact)
            L = -sum_j (R_j - entropy_scaling) log pi(z_j|s_j)                   (release)

        Backpropagated by hand: dL/dlogits = -R (onehot - p) [+ c p (log p + H) | + c (onehot - p)],
        then through the two layers. Autograd's graph bookkeeping cost ~5x more on these
        tiny tensors, and pi_z takes 100 such steps per episode in the paper's run.
        """
        first, _, last = self.net
        pre_activation = torch.addmm(first.bias, states, first.weight.t())
        hidden = pre_activation.clamp_min(0.0)
        log_probs = torch.log_softmax(torch.addmm(last.bias, hidden, last.weight.t()), dim=-1)
        probs = log_probs.exp()
        chosen = torch.zeros_like(probs).scatter_(-1, z.unsqueeze(-1), 1.0)
        log_pi = log_probs.gather(-1, z.unsqueeze(-1)).squeeze(-1)
        if exact_entropy:
            entropy = -(probs * log_probs).sum(-1, keepdim=True)
            grad_logits = (-returns.unsqueeze(-1) * (chosen - probs)
                           + entropy_scaling * probs * (log_probs + entropy))
            loss = -(returns * log_pi).sum() - entropy_scaling * entropy.sum()
        else:
            weight = (returns - entropy_scaling).unsqueeze(-1)
            grad_logits = -weight * (chosen - probs)
            loss = -(weight.squeeze(-1) * log_pi).sum()
        last.weight.grad = grad_logits.t() @ hidden
        last.bias.grad = grad_logits.sum(0)
        grad_hidden = (grad_logits @ last.weight) * (pre_activation > 0)
        first.weight.grad = grad_hidden.t() @ states
        first.bias.grad = grad_hidden.sum(0)
        return loss


class Discriminator(nn.Module):
    """Linear(in -> D)-ReLU, (layers - 1) x [Linear(D -> D)-ReLU], Linear(D -> Z): logits of z."""

    def __init__(self, input_dim: int, noise_dim: int, size: int, layers: int):
        super().__init__()
        modules = [nn.Linear(input_dim, size), nn.ReLU()]
        for _ in range(layers - 1):
            modules += [nn.Linear(size, size), nn.ReLU()]
        modules.append(nn.Linear(size, noise_dim))
        self.net = nn.Sequential(*modules)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)
