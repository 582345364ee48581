"""TD(lambda) targets over padded whole episodes (docs/algorithms/qmix.md).

Shapes: B episodes, T transitions (the longest episode of the batch); every episode b
has L_b <= T valid transitions, marked by mask[b, t] = 1 for t < L_b.
"""

from typing import Optional

import torch


def last_valid_step(mask: torch.Tensor) -> torch.Tensor:
    """1 at t = L_b - 1 of every episode, else 0. mask [B, T] -> [B, T]."""
    following = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)
    return mask * (1.0 - following)


def lambda_returns(rewards: torch.Tensor, terminated: torch.Tensor, mask: torch.Tensor,
                   values: torch.Tensor, gamma: float, td_lambda: float,
                   bonus: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-episode lambda-returns G_t for t = 0..T-1 (zero where mask is 0).

    G_t = r_t + gamma (1 - d_t) [E_{t+1} + (1 - lambda) V_{t+1} + lambda G_{t+1}],
    with G_{L_b} := V_{L_b}, so the last transition of an episode bootstraps from the
    value of its stored final observation unless it terminated (d = 1). A time-limit
    truncation therefore bootstraps; a termination does not, and nothing after the
    end of an episode (padding) enters its return.

    Args:
        rewards: r_t, [B, T].
        terminated: d_t, [B, T]; 1 only on a transition that ended the episode by
            termination.
        mask: [B, T], 1 on valid transitions.
        values: the bootstrap values V_t for t = 0..T, [B, T+1].
        gamma: discount.
        td_lambda: lambda in [0, 1]; 0 gives one-step targets.
        bonus: optional E_t for t = 0..T, [B, T+1], added to every bootstrapped
            next value (Soft-QMIX's entropy bonus, docs/algorithms/soft_qmix.md).

    Returns:
        [B, T] targets.
    """
    # Unrolled, the recursion is G_t = sum_{k >= t} (gamma lambda)^(k - t) x_k within an
    # episode, with x_k = r_k + gamma (1 - d_k) [E_{k+1} + (1 - lambda) V_{k+1}] and, on the
    # last step only, the bootstrap's remaining lambda gamma (1 - d_k) V_{k+1}; one matmul.
    last = last_valid_step(mask)
    continuing = gamma * (1.0 - terminated)
    next_values = values[:, 1:]
    x = rewards + continuing * ((1.0 - td_lambda) + td_lambda * last) * next_values
    if bonus is not None:
        x = x + continuing * bonus[:, 1:]
    steps = rewards.shape[1]
    offsets = torch.arange(steps, device=rewards.device, dtype=rewards.dtype)
    powers = offsets[:, None] - offsets[None, :]  # k - t
    discount = torch.where(powers >= 0, (gamma * td_lambda) ** powers.clamp(min=0),
                           torch.zeros((), dtype=rewards.dtype, device=rewards.device))
    return (x * mask) @ discount


def release_soft_lambda_returns(rewards: torch.Tensor, terminated: torch.Tensor, mask: torch.Tensor,
                                values: torch.Tensor, gamma: float, td_lambda: float,
                                bonus: torch.Tensor) -> torch.Tensor:
    """The Soft-QMIX release's soft TD(lambda) recursion, kept for exact reproduction.

    G_T = V_T (1 - sum_t d_t), then for t = T-1..0 (as released):
    G_t = lambda gamma (G_{t+1} + E_{t+1}) + m_t [r_t + (1 - lambda) gamma (1 - d_t)(V_{t+1} + E_{t+1})].
    The lambda branch has no (1 - d_t) factor, so a terminated episode's last target
    picks up lambda gamma E from its stored final state and from the padding after it
    (the "entropy leak"). Shapes as in ``lambda_returns``.
    """
    steps = rewards.shape[1]
    returns = torch.zeros_like(rewards)
    next_return = values[:, steps] * (1.0 - terminated.sum(1))
    for t in reversed(range(steps)):
        soft_next = values[:, t + 1] + bonus[:, t + 1]
        next_return = (td_lambda * gamma * (next_return + bonus[:, t + 1])
                       + mask[:, t] * (rewards[:, t]
                                       + (1.0 - td_lambda) * gamma * (1.0 - terminated[:, t]) * soft_next))
        returns[:, t] = next_return
    return returns
