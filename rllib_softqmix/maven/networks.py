"""MAVEN's networks (docs/algorithms/maven.md), as plain nn.Modules.

Shapes: B batch, T time, N agents, A actions, H hidden, S state, Z = noise_dim; a
latent z is a one-hot [..., Z], fixed for a whole episode.
"""

from typing import Tuple

import numpy as np
import torch
from torch import nn

from rllib_softqmix.core.agent import AgentNetwork, agent_ids
from rllib_softqmix.maven.reinforce import AdamSettings, PackedZPolicy, layer_views


class NoiseConditionedAgent(nn.Module):
    """QMIX's agent trunk with a Q head that is a hypernetwork of (z, agent id).

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
        ids = agent_ids(n_agents, z.dtype, z.device).expand(batch, n_agents, n_agents)
        head_input = torch.cat([z.unsqueeze(1).expand(batch, n_agents, z.shape[-1]), ids], -1)
        weights = self.hyper_head(head_input).view(batch, 1, n_agents, self.n_actions, self.hidden_dim)
        return (weights * features.unsqueeze(-2)).sum(-1), hidden


class ZPolicy(nn.Module):
    """pi_z(z | s_0) = softmax(Linear(128 -> Z)(ReLU(Linear(S -> 128)(s_0))))."""

    def __init__(self, state_dim: int, noise_dim: int, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(state_dim, hidden), nn.ReLU(), nn.Linear(hidden, noise_dim))

    def forward(self, initial_states: torch.Tensor) -> torch.Tensor:
        """Log-probabilities [..., Z]."""
        return torch.log_softmax(self.net(initial_states), dim=-1)

    def packed(self, optimizer: torch.optim.Adam) -> Tuple[PackedZPolicy, AdamSettings]:
        """Copies of the parameters and of ``optimizer``'s Adam state as flat numpy arrays
        (layout in reinforce.py), for ``reinforce_steps``; Adam's state starts at zero."""
        group = optimizer.param_groups[0]
        if group["weight_decay"] or group["amsgrad"] or group["maximize"]:
            raise ValueError("the z-policy's Adam must have no weight decay, amsgrad or maximize")
        for p in self.parameters():
            if not optimizer.state[p]:
                optimizer.state[p].update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p),
                                          exp_avg_sq=torch.zeros_like(p))
        layers = self._layers()

        def flat(tensor_of):  # [W1 | b1] and [W2 | b2], flattened into one array
            return np.concatenate([torch.cat([tensor_of(w), tensor_of(b)[:, None]], 1).detach().numpy().ravel()
                                   for w, b in layers])

        steps = int(optimizer.state[layers[0][0]]["step"].item())
        policy = PackedZPolicy(flat(lambda p: p), flat(lambda p: optimizer.state[p]["exp_avg"]),
                               flat(lambda p: optimizer.state[p]["exp_avg_sq"]), steps,
                               [(w.shape[0], w.shape[1] + 1) for w, _ in layers])
        (beta1, beta2) = group["betas"]
        return policy, AdamSettings(float(group["lr"]), beta1, beta2, group["eps"])

    @torch.no_grad()
    def load_packed(self, optimizer: torch.optim.Adam, policy: PackedZPolicy) -> None:
        """Writes ``reinforce_steps``' result back into the parameters and Adam's state."""
        layers = self._layers()
        for values, write in ((policy.parameters, lambda p: p),
                              (policy.exp_avg, lambda p: optimizer.state[p]["exp_avg"]),
                              (policy.exp_avg_sq, lambda p: optimizer.state[p]["exp_avg_sq"])):
            for (w, b), packed_layer in zip(layers, layer_views(values, policy.layer_shapes)):
                write(w).copy_(torch.tensor(packed_layer[:, :-1]))
                write(b).copy_(torch.tensor(packed_layer[:, -1]))
        for p in self.parameters():
            optimizer.state[p]["step"].fill_(policy.steps)

    def _layers(self):
        first, _, last = self.net
        return [(first.weight, first.bias), (last.weight, last.bias)]


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
