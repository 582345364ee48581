"""MAVEN's networks (spec 4.1-4.4), as plain nn.Modules.

Shapes: B batch, T time, N agents, A actions, H hidden, S state, Z = noise_dim; a
latent z is a one-hot [..., Z], fixed for a whole episode.
"""

import math
from typing import Tuple

import numpy as np
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
    def reinforce(self, optimizer: torch.optim.Adam, states: np.ndarray, z: np.ndarray,
                  returns: np.ndarray, entropy_scaling: float, exact_entropy: bool) -> np.ndarray:
        """K REINFORCE steps with ``optimizer``'s Adam, one per batch of states [K, M, S],
        z [K, M] (indices), returns [K, M] (spec 4.1); returns the K losses

            L = -sum_j R_j log pi(z_j|s_j) - entropy_scaling * sum_j H(pi(.|s_j))   (exact)
            L = -sum_j (R_j - entropy_scaling) log pi(z_j|s_j)                   (release)

        Backpropagated by hand, dL/dlogits = p (w + [c (log p + H)]) - w onehot(z) with
        w = R [or R - c], and run in numpy on one flat copy of the parameters and of Adam's
        moments (each layer's bias as an extra weight column, the inputs with a column of
        ones), written back at the end with Adam's step count, so the optimizer's state stays
        the checkpointed one. The paper's run takes 100 such steps per episode, and torch's
        per-op overhead on these tiny tensors made them 4x slower than this.
        """
        group = optimizer.param_groups[0]
        if group["weight_decay"] or group["amsgrad"] or group["maximize"]:
            raise ValueError("the z-policy's Adam must have no weight decay, amsgrad or maximize")
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        first, _, last = self.net
        layers = [(first.weight, first.bias), (last.weight, last.bias)]
        for p in self.parameters():
            if not optimizer.state[p]:
                optimizer.state[p].update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p),
                                          exp_avg_sq=torch.zeros_like(p))
        step0 = int(optimizer.state[first.weight]["step"].item())

        def packed(tensor_of):  # [W1 | b1] and [W2 | b2], flattened into one array
            return np.concatenate([np.concatenate([tensor_of(w).numpy(), tensor_of(b).numpy()[:, None]], 1).ravel()
                                   for w, b in layers])

        flat = packed(torch.Tensor.detach)
        exp_avg = packed(lambda p: optimizer.state[p]["exp_avg"])
        exp_avg_sq = packed(lambda p: optimizer.state[p]["exp_avg_sq"])
        grad, scratch = np.empty_like(flat), np.empty_like(flat)
        layer1, layer2 = _layer_views(flat, layers)
        grad1, grad2 = _layer_views(grad, layers)
        hidden_size = layer1.shape[0]
        batch_size = states.shape[1]
        inputs = np.concatenate([states, np.ones((*states.shape[:2], 1), states.dtype)], -1)
        pre_activation = np.empty((batch_size, hidden_size), np.float32)
        hidden = np.ones((batch_size, hidden_size + 1), np.float32)  # last column: the bias input
        rows = np.arange(batch_size)
        weights = returns if exact_entropy else returns - entropy_scaling
        losses = np.empty(states.shape[0])
        for k in range(states.shape[0]):
            x, chosen, w = inputs[k], z[k], weights[k]
            np.matmul(x, layer1.T, out=pre_activation)
            np.maximum(pre_activation, 0.0, out=hidden[:, :hidden_size])
            logits = hidden @ layer2.T
            logits -= logits.max(-1, keepdims=True)
            probs = np.exp(logits)
            total = probs.sum(-1, keepdims=True)
            probs /= total
            log_probs = logits - np.log(total)
            if exact_entropy:
                entropy = -(probs * log_probs).sum(-1, keepdims=True)
                grad_logits = probs * (w[:, None] + entropy_scaling * (log_probs + entropy))
                losses[k] = -(w * log_probs[rows, chosen]).sum() - entropy_scaling * entropy.sum()
            else:
                grad_logits = probs * w[:, None]
                losses[k] = -(w * log_probs[rows, chosen]).sum()
            grad_logits[rows, chosen] -= w
            np.matmul(grad_logits.T, hidden, out=grad2)
            grad_hidden = grad_logits @ layer2[:, :hidden_size]
            grad_hidden *= pre_activation > 0
            np.matmul(grad_hidden.T, x, out=grad1)
            # Adam, as torch.optim.Adam computes it (no weight decay, no amsgrad).
            step = step0 + k + 1
            exp_avg *= beta1
            np.multiply(grad, 1.0 - beta1, out=scratch)
            exp_avg += scratch
            exp_avg_sq *= beta2
            np.multiply(grad, grad, out=scratch)
            scratch *= 1.0 - beta2
            exp_avg_sq += scratch
            np.sqrt(exp_avg_sq, out=scratch)
            scratch *= 1.0 / math.sqrt(1.0 - beta2 ** step)
            scratch += eps
            np.divide(exp_avg, scratch, out=scratch)
            scratch *= lr / (1.0 - beta1 ** step)
            flat -= scratch
        for values, write in ((flat, lambda p: p), (exp_avg, lambda p: optimizer.state[p]["exp_avg"]),
                              (exp_avg_sq, lambda p: optimizer.state[p]["exp_avg_sq"])):
            for (w, b), packed_layer in zip(layers, _layer_views(values, layers)):
                write(w).copy_(torch.from_numpy(packed_layer[:, :-1]))
                write(b).copy_(torch.from_numpy(packed_layer[:, -1]))
        for p in self.parameters():
            optimizer.state[p]["step"].fill_(step0 + states.shape[0])
        return losses


def _layer_views(flat: np.ndarray, layers) -> list:
    """Views of ``flat`` as each layer's [out, in + 1] matrix [W | b], in turn."""
    views, offset = [], 0
    for weight, _ in layers:
        rows, columns = weight.shape[0], weight.shape[1] + 1
        views.append(flat[offset:offset + rows * columns].reshape(rows, columns))
        offset += rows * columns
    return views


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
