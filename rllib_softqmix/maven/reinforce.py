"""pi_z's REINFORCE steps with Adam, in numpy (docs/algorithms/maven.md).

This module imports nothing but numpy, so that a light Ray actor (ZPolicyWorker,
shipped by value, without this package's torch and RLlib imports) can run the steps on
another core while the learner takes its TD gradient step.

The two-layer pi_z = softmax(W2 [ReLU(W1 [s; 1]); 1]) is held as one flat float32 array
of [W1 | b1] then [W2 | b2] (each layer's bias as an extra weight column), and so are
Adam's two moments.
"""

import math
from dataclasses import dataclass, fields
from typing import List, Tuple

import numpy as np


@dataclass
class AdamSettings:
    lr: float
    beta1: float
    beta2: float
    eps: float


@dataclass
class PackedZPolicy:
    """pi_z's parameters and Adam state: flat arrays, layer shapes [(out, in + 1)], and
    the number of Adam steps taken so far."""
    parameters: np.ndarray
    exp_avg: np.ndarray
    exp_avg_sq: np.ndarray
    steps: int
    layer_shapes: List[Tuple[int, int]]


def layer_views(flat: np.ndarray, layer_shapes: List[Tuple[int, int]]) -> List[np.ndarray]:
    """Views of ``flat`` as each layer's [out, in + 1] matrix [W | b], in turn."""
    views, offset = [], 0
    for rows, columns in layer_shapes:
        views.append(flat[offset:offset + rows * columns].reshape(rows, columns))
        offset += rows * columns
    return views


def reinforce_steps(policy: PackedZPolicy, adam: AdamSettings, states: np.ndarray,
                    z: np.ndarray, returns: np.ndarray, index: np.ndarray,
                    entropy_scaling: float, exact_entropy: bool) -> Tuple[PackedZPolicy, np.ndarray]:
    """K Adam steps, step k on the samples index[k] [M] of the buffer states [L, S],
    z [L] (indices), returns [L]; returns the updated policy and the K losses

        L = -sum_j R_j log pi(z_j|s_j) - entropy_scaling * sum_j H(pi(.|s_j))   (exact)
        L = -sum_j (R_j - entropy_scaling) log pi(z_j|s_j)                   (release)

    backpropagated by hand, dL/dlogits = p (w + [c (log p + H)]) - w onehot(z) with
    w = R [or R - c]; Adam exactly as torch.optim.Adam (no weight decay, no amsgrad).
    ``policy`` is not modified.
    """
    flat, exp_avg, exp_avg_sq = (array.copy() for array in
                                 (policy.parameters, policy.exp_avg, policy.exp_avg_sq))
    grad, scratch = np.empty_like(flat), np.empty_like(flat)
    layer1, layer2 = layer_views(flat, policy.layer_shapes)
    grad1, grad2 = layer_views(grad, policy.layer_shapes)
    hidden_size, batch_size = layer1.shape[0], index.shape[1]
    inputs = np.concatenate([states, np.ones((len(states), 1), np.float32)], -1).astype(np.float32)[index]
    weights = (returns if exact_entropy else returns - entropy_scaling).astype(np.float32)[index]
    z = z[index]
    pre_activation = np.empty((batch_size, hidden_size), np.float32)
    hidden = np.ones((batch_size, hidden_size + 1), np.float32)  # last column: the bias input
    rows = np.arange(batch_size)
    losses = np.empty(len(index))
    for k in range(len(index)):
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
        step = policy.steps + k + 1
        exp_avg *= adam.beta1
        np.multiply(grad, 1.0 - adam.beta1, out=scratch)
        exp_avg += scratch
        exp_avg_sq *= adam.beta2
        np.multiply(grad, grad, out=scratch)
        scratch *= 1.0 - adam.beta2
        exp_avg_sq += scratch
        np.sqrt(exp_avg_sq, out=scratch)
        scratch *= 1.0 / math.sqrt(1.0 - adam.beta2 ** step)
        scratch += adam.eps
        np.divide(exp_avg, scratch, out=scratch)
        scratch *= adam.lr / (1.0 - adam.beta1 ** step)
        flat -= scratch
    return PackedZPolicy(flat, exp_avg, exp_avg_sq, policy.steps + len(index), policy.layer_shapes), losses


def plain(settings) -> tuple:
    """A dataclass of this module as a plain tuple of its fields, in order."""
    return tuple(getattr(settings, field.name) for field in fields(settings))


class ZPolicyWorker:
    """Runs ``reinforce_steps`` in its own process (as a Ray actor); holds no state.

    pi_z and Adam's settings cross the process boundary as plain tuples: pickling this
    module's classes by value on every call cost ~2 ms."""

    def reinforce_steps(self, policy: tuple, adam: tuple, *args) -> Tuple[tuple, np.ndarray]:
        updated, losses = reinforce_steps(PackedZPolicy(*policy), AdamSettings(*adam), *args)
        return plain(updated), losses
