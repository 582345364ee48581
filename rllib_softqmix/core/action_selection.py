"""Action selectors over available actions (docs/algorithms/qmix.md, Acting).

Shapes: q [..., A] utilities, avail [..., A] with 1 = available; actions [...] (int64).
"""

from dataclasses import dataclass
from typing import Optional

import torch

# pymarl masks unavailable utilities with this constant before an argmax or softmax.
UNAVAILABLE = -9_999_999.0


@dataclass(frozen=True)
class LinearSchedule:
    """value(t) = max(finish, start - (start - finish) * t / duration), linear in env steps."""
    start: float
    finish: float
    duration: int

    def __call__(self, t: int) -> float:
        if t >= self.duration:
            return self.finish
        fraction = max(0.0, t / self.duration)
        return self.start + fraction * (self.finish - self.start)


def mask_unavailable(q: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    """Copy of q with unavailable entries set to UNAVAILABLE (the gradient of kept entries survives)."""
    return q.masked_fill(avail <= 0, UNAVAILABLE)


def greedy(q: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    """argmax over available actions."""
    return mask_unavailable(q, avail).argmax(dim=-1)


def uniform_available(avail: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A uniformly random available action for every entry of avail [..., A].

    The argmax of i.i.d. U[0, 1) draws over the available entries (unavailable ones set to
    -1, below every draw): each available action is the largest with equal probability.
    Three elementwise ops, where torch.multinomial costs ~3x as much for a few agents.
    """
    draws = torch.rand(avail.shape, generator=generator)
    return draws.masked_fill_(avail <= 0, -1.0).argmax(dim=-1)


def epsilon_greedy(q: torch.Tensor, avail: torch.Tensor, epsilon: float,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """With probability epsilon a uniform available action, else the greedy one."""
    actions = greedy(q, avail)
    if epsilon <= 0.0:
        return actions
    explore = torch.rand(actions.shape, generator=generator) < epsilon
    return torch.where(explore, uniform_available(avail, generator), actions)


def masked_log_softmax(logits: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    """log softmax over available actions; entries of all-unavailable rows are uniform."""
    return torch.log_softmax(mask_unavailable(logits, avail), dim=-1)


def sample_from_log_probs(log_probs: torch.Tensor,
                          generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One categorical sample per row of log_probs [..., A]."""
    flat = log_probs.reshape(-1, log_probs.shape[-1]).exp()
    return torch.multinomial(flat, 1, generator=generator).view(log_probs.shape[:-1])
