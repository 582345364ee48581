"""The per-agent utility network shared by all agents (docs/algorithms/qmix.md).

Shapes: B batch (episodes or parallel envs), T time, N agents, O observation size,
A actions, H hidden size, I = O (+ A if the last action is an input) (+ N if the
agent id is an input).
"""

import functools
from typing import Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from rllib_softqmix.core.fused_gru import gru_sequence


def agent_input_dim(obs_dim: int, n_actions: int, n_agents: int, *,
                    obs_last_action: bool, obs_agent_id: bool) -> int:
    """Size I of one agent's input vector."""
    return obs_dim + (n_actions if obs_last_action else 0) + (n_agents if obs_agent_id else 0)


def build_agent_inputs(obs: torch.Tensor, last_action_onehot: Optional[torch.Tensor],
                       obs_agent_id: bool) -> torch.Tensor:
    """Concatenates [o_t^i ; onehot(a_{t-1}^i) ; onehot(i)].

    obs: [..., N, O]; last_action_onehot: [..., N, A] or None. Returns [..., N, I].
    """
    parts = [obs]
    if last_action_onehot is not None:
        parts.append(last_action_onehot)
    if obs_agent_id:
        n_agents = obs.shape[-2]
        parts.append(agent_ids(n_agents, obs.dtype, obs.device).expand(*obs.shape[:-2], n_agents, n_agents))
    return torch.cat(parts, dim=-1) if len(parts) > 1 else obs


@functools.lru_cache(maxsize=None)
def agent_ids(n_agents: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The agent-id one-hots [N, N], built once (read-only: callers expand and concatenate it)."""
    return torch.eye(n_agents, dtype=dtype, device=device)


def shifted_onehot_actions(actions: torch.Tensor, n_actions: int) -> torch.Tensor:
    """The previous action of every step: zeros at t=0, onehot(a_{t-1}) after.

    actions: [B, T, N] (t = 0..T-1). Returns [B, T+1, N, A], one entry per stored
    observation t = 0..T.
    """
    onehot = F.one_hot(actions.long(), n_actions).to(torch.float32)
    return torch.cat([torch.zeros_like(onehot[:, :1]), onehot], dim=1)


class AgentNetwork(nn.Module):
    """fc1 -> ReLU -> GRU (or a second ReLU layer for the MLP agent) -> fc2.

    The recurrent trunk is an ``nn.GRU`` run over whole sequences (by ``gru_sequence``, fused
    on the CPU), so training unrolls T steps in one call and acting runs the same weights one
    step at a time.
    """

    def __init__(self, input_dim: int, n_actions: int, hidden_dim: int = 64,
                 recurrent: bool = True, with_head: bool = True):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.recurrent = recurrent
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        if recurrent:
            self.rnn = nn.GRU(hidden_dim, hidden_dim)
        else:
            self.fc_hidden = nn.Linear(hidden_dim, hidden_dim)
        if with_head:  # MAVEN replaces the head with a hypernetwork of its latent
            self.fc2 = nn.Linear(hidden_dim, n_actions)

    def initial_hidden(self, *batch_shape: int) -> torch.Tensor:
        """Zero hidden state, [*batch_shape, H] (the MLP agent ignores it)."""
        return torch.zeros(*batch_shape, self.hidden_dim)

    def features(self, inputs: torch.Tensor, hidden: torch.Tensor
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
        """inputs [B, T, N, I], hidden [B, N, H] -> (features [B, T, N, H], hidden [B, N, H])."""
        b, t, n, _ = inputs.shape
        if t == 1:
            features = self.step_features(inputs.view(b, n, -1), hidden)
            return features.unsqueeze(1), features if self.recurrent else hidden
        if not self.recurrent:
            return F.relu(self.fc_hidden(F.relu(self.fc1(inputs)))), hidden
        h = self.hidden_dim
        # Time-major and contiguous from the first layer on, so that the GRU's input
        # projection is one matmul over all steps (a batch-major input costs a bmm, 2x slower).
        x = F.relu(self.fc1(inputs.transpose(0, 1).contiguous())).view(t, b * n, h)
        out, h_last = gru_sequence(self.rnn, x, hidden.reshape(b * n, h))
        return out.view(t, b, n, h).transpose(0, 1), h_last.view(b, n, h)

    def step_features(self, inputs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """One acting step: inputs [E, N, I], hidden [E, N, H] -> features [E, N, H] (the new
        hidden state of the GRU agent). Calls the functional ops on the layers' weights: the
        nn.Module calls and nn.GRU's per-call checks cost more than these tiny products."""
        x = F.relu(F.linear(inputs, self.fc1.weight, self.fc1.bias))
        if not self.recurrent:
            return F.relu(F.linear(x, self.fc_hidden.weight, self.fc_hidden.bias))
        e, n, h = hidden.shape
        rnn = self.rnn
        return torch.gru_cell(x.reshape(e * n, h), hidden.reshape(e * n, h), rnn.weight_ih_l0,
                              rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0).view(e, n, h)

    def step(self, inputs: torch.Tensor, hidden: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """One acting step: inputs [E, N, I], hidden [E, N, H] -> (Q [E, N, A], hidden [E, N, H])."""
        features = self.step_features(inputs, hidden)
        q = F.linear(features, self.fc2.weight, self.fc2.bias)
        return q, features if self.recurrent else hidden

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """features [..., N, H] -> Q [..., N, A]."""
        return self.fc2(features)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """inputs [B, T, N, I], hidden [B, N, H] -> (Q [B, T, N, A], hidden [B, N, H])."""
        features, hidden = self.features(inputs, hidden)
        return self.head(features), hidden
