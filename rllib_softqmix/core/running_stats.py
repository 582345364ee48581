"""Running mean and variance (Chan et al.'s parallel update), for reward standardisation."""

from typing import Dict

import torch


class RunningMeanStd:
    """Mean and variance of every value seen so far; ``normalize(x) = (x - mean) / std``."""

    def __init__(self, epsilon: float = 1e-4):
        self.mean = torch.zeros((), dtype=torch.float64)
        self.var = torch.ones((), dtype=torch.float64)
        self.count = epsilon

    def update(self, values: torch.Tensor) -> None:
        values = values.detach().to(torch.float64).reshape(-1)
        if values.numel() == 0:
            return
        batch_mean, batch_var, batch_count = values.mean(), values.var(unbiased=False), values.numel()
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        self.var = (self.var * self.count + batch_var * batch_count
                    + delta.pow(2) * self.count * batch_count / total) / total
        self.count = total

    def normalize(self, values: torch.Tensor) -> torch.Tensor:
        return ((values - self.mean) / self.var.clamp(min=1e-8).sqrt()).to(values.dtype)

    def get_state(self) -> Dict[str, float]:
        return {"mean": float(self.mean), "var": float(self.var), "count": float(self.count)}

    def set_state(self, state: Dict[str, float]) -> None:
        self.mean = torch.tensor(state["mean"], dtype=torch.float64)
        self.var = torch.tensor(state["var"], dtype=torch.float64)
        self.count = state["count"]


class RunningHistogram:
    """Counts of values in [0, 1] in fixed bins, for percentiles over a whole run."""

    def __init__(self, bins: int = 1000):
        self.counts = torch.zeros(bins, dtype=torch.float64)

    def add(self, values: torch.Tensor) -> None:
        """Counts the finite values (NaN is left to the loss's finiteness check)."""
        values = values.detach().reshape(-1)
        bins = self.counts.numel()
        index = (values[values.isfinite()].clamp(0.0, 1.0) * bins).long().clamp(max=bins - 1)
        self.counts += torch.bincount(index, minlength=bins).to(torch.float64)

    def percentiles(self, quantiles) -> Dict[float, float]:
        """For each quantile, the upper edge of the bin it falls in (values are at most
        this, and exact 1.0 reads as 1.0)."""
        total = float(self.counts.sum())
        if total == 0:
            return {quantile: float("nan") for quantile in quantiles}
        cumulative = self.counts.cumsum(0) / total
        bins = self.counts.numel()
        return {quantile: (int(torch.searchsorted(cumulative, quantile)) + 1) / bins
                for quantile in quantiles}

    def get_state(self) -> Dict[str, list]:
        return {"counts": self.counts.tolist()}

    def set_state(self, state: Dict[str, list]) -> None:
        self.counts = torch.tensor(state["counts"], dtype=torch.float64)
