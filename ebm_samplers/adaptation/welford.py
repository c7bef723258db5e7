"""Running variance and covariance (Welford 1962; Chan et al. 1979 for merging a batch) and Stan's metric.

A batch of b draws with mean m_b and sum of squared deviations S_b merges into the running
(count, mean, S) as

    delta = m_b - mean;  count' = count + b;  mean' = mean + delta b / count'
    S' = S + S_b + delta^2 count b / count'

and the variance is S / (count - 1). Per chain, each chain is its own stream (b = 1 per step); pooled,
one stream takes all chains' positions of a step as one batch. The covariance is the same recursion with
outer products (delta^2 -> delta delta^T), pooled only. `metric` turns them into a metric (Stan's shrinkage).
"""

from __future__ import annotations

import torch
from torch import Tensor


class WelfordVariance:
    """Running variance of positions `(n, *event)`, per chain (default) or pooled over chains."""

    def __init__(self, *, per_chain: bool = True) -> None:
        self.per_chain = per_chain
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self._mean: Tensor | None = None
        self._sum_squares: Tensor | None = None

    def update(self, position: Tensor) -> None:
        position = position.detach()
        if self.per_chain:
            batch, batch_mean, batch_squares = 1, position, torch.zeros_like(position)
        else:
            batch = position.shape[0]
            batch_mean = position.mean(0)
            batch_squares = (position - batch_mean).square().sum(0)
        if self._mean is None:
            self._mean = torch.zeros_like(batch_mean)
            self._sum_squares = torch.zeros_like(batch_mean)
        total = self.count + batch
        delta = batch_mean - self._mean
        self._mean = self._mean + delta * (batch / total)
        self._sum_squares = self._sum_squares + batch_squares + delta.square() * (self.count * batch / total)
        self.count = total

    def variance(self) -> Tensor:
        """The sample variance: (n, *event) per chain, (*event) pooled."""
        if self.count < 2:
            raise ValueError(f"a variance needs at least 2 draws; the window held {self.count}")
        return self._sum_squares / (self.count - 1)

    def state_dict(self) -> dict[str, object]:
        return {"count": self.count, "mean": self._mean, "sum_squares": self._sum_squares}

    def load_state_dict(self, saved: dict[str, object]) -> None:
        self.count, self._mean, self._sum_squares = int(saved["count"]), saved["mean"], saved["sum_squares"]


class WelfordCovariance:
    """Running covariance (d, d) of positions `(n, *event)` flattened to d entries, pooled over chains.

    Accumulated in float64 whatever the positions' dtype: the sum of outer products of thousands of draws
    loses the small eigenvalues in float32, and a (d, d) accumulation is cheap next to a gradient.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self._mean: Tensor | None = None
        self._sum_products: Tensor | None = None

    def update(self, position: Tensor) -> None:
        rows = position.detach().reshape(position.shape[0], -1).to(torch.float64)
        batch = rows.shape[0]
        batch_mean = rows.mean(0)
        centred = rows - batch_mean
        if self._mean is None:
            self._mean = torch.zeros_like(batch_mean)
            self._sum_products = torch.zeros(rows.shape[1], rows.shape[1], dtype=rows.dtype, device=rows.device)
        total = self.count + batch
        delta = batch_mean - self._mean
        self._mean = self._mean + delta * (batch / total)
        between = torch.outer(delta, delta) * (self.count * batch / total)
        self._sum_products = self._sum_products + centred.T @ centred + between
        self.count = total

    def covariance(self) -> Tensor:
        """The sample covariance S (d, d), float64."""
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 draws; the window held {self.count}")
        return self._sum_products / (self.count - 1)

    def state_dict(self) -> dict[str, object]:
        return {"count": self.count, "mean": self._mean, "sum_products": self._sum_products}

    def load_state_dict(self, saved: dict[str, object]) -> None:
        self.count, self._mean, self._sum_products = int(saved["count"]), saved["mean"], saved["sum_products"]
