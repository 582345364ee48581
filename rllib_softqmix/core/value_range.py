"""The range of Q_tot that the rewards allow, to catch diverging value estimates.

Every target is a (lambda-weighted) discounted sum of per-step terms
x_t = r_t + gamma (1 - d_t) E_{t+1} (the reward, plus Soft-QMIX's entropy bonus E) and of
bootstrap values, so a Q_tot that fits its targets satisfies

    |Q_tot| <= X * H,   X = max_t |r_t| + max_t |E_t|,
    H = 1 / (1 - gamma)                      if truncated episodes bootstrap (or gamma = 1: inf),
    H = (1 - gamma^L) / (1 - gamma)  (or L)  if every episode end is terminal,

with L the longest episode trained on. ``ValueRange`` keeps the running X and L over all
trained batches (rewards as the targets use them: standardised, MAVEN's intrinsic term
included) and flags a Q_tot beyond (1 + margin) (X H + Q_0), where Q_0 is the largest
|Q_tot| of the untrained network (its first batch), so that initial outputs of a net on
an env whose rewards have all been zero so far are not read as divergence.
"""

import math
from typing import Dict, Optional

import torch

DIVERGENCE_CHECKS = ("raise", "warn", "off")


class ValueRangeError(FloatingPointError):
    """Q_tot left the range the rewards allow; the update was not applied."""


class ValueRange:
    """Running reward scale X, longest episode L and untrained scale Q_0 (see module doc)."""

    def __init__(self):
        self.reward_max = 0.0
        self.bonus_max = 0.0
        self.longest = 0
        self.initial_q = None

    def update(self, rewards: torch.Tensor, bonus: Optional[torch.Tensor], mask: torch.Tensor,
               q_abs_max: float) -> None:
        """rewards [B, T] and mask [B, T] of a batch; bonus [B, T+1] or None."""
        valid = mask > 0
        if valid.any():
            self.reward_max = max(self.reward_max, float(rewards[valid].abs().max()))
            if bonus is not None:
                self.bonus_max = max(self.bonus_max, float(bonus[:, 1:][valid].abs().max()))
        self.longest = max(self.longest, int(mask.sum(1).max()))
        if self.initial_q is None:
            self.initial_q = q_abs_max

    def horizon(self, gamma: float, bootstrap_truncated: bool) -> float:
        """H: the largest discounted count of reward terms one value can sum."""
        if bootstrap_truncated:
            return math.inf if gamma >= 1.0 else 1.0 / (1.0 - gamma)
        if gamma >= 1.0:
            return float(self.longest)
        return (1.0 - gamma ** self.longest) / (1.0 - gamma)

    def bound(self, gamma: float, bootstrap_truncated: bool, margin: float) -> float:
        scale = (self.reward_max + self.bonus_max) * self.horizon(gamma, bootstrap_truncated)
        return (1.0 + margin) * (scale + (self.initial_q or 0.0))

    def describe(self, gamma: float, bootstrap_truncated: bool, margin: float) -> str:
        """How the bound was formed, for the error message."""
        horizon = (f"1 / (1 - gamma) = {self.horizon(gamma, True):.4g} (truncated episodes "
                   f"bootstrap, so values may sum an unbounded future)" if bootstrap_truncated else
                   f"(1 - gamma^L) / (1 - gamma) = {self.horizon(gamma, False):.4g} for the "
                   f"longest episode trained on, L = {self.longest} steps")
        rewards = f"max|r| {self.reward_max:.4g}" + (
            f" + max|entropy bonus| {self.bonus_max:.4g}" if self.bonus_max else "")
        return (f"(1 + divergence_margin {margin:g}) x ({rewards} x {horizon}, plus the untrained "
                f"network's |Q_tot| {self.initial_q or 0.0:.4g}), gamma = {gamma:g}")

    def get_state(self) -> Dict[str, float]:
        return {"reward_max": self.reward_max, "bonus_max": self.bonus_max,
                "longest": self.longest, "initial_q": self.initial_q}

    def set_state(self, state: Dict[str, float]) -> None:
        self.reward_max, self.bonus_max = state["reward_max"], state["bonus_max"]
        self.longest, self.initial_q = state["longest"], state["initial_q"]
