"""Running variance (Welford 1962; Chan et al. 1979 for merging a batch) and Stan's regularised metric.

A batch of b draws with mean m_b and sum of squared deviations S_b merges into the running
(count, mean, S) as

    delta = m_b - mean;  count' = count + b;  mean' = mean + delta b / count'
    S' = S + S_b + delta^2 count b / count'

and the variance is S / (count - 1). Per chain, each chain is its own stream (b = 1 per step); pooled,
one stream takes all chains' positions of a step as one batch. The metric estimate shrinks the sample
variance toward 1e-3 with the weight Stan uses, so a short window cannot produce a tiny inverse mass:

    inverse_mass = n / (n + 5) * var + 1e-3 * 5 / (n + 5).
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

    def regularised_variance(self, like: Tensor) -> Tensor:
        """Stan's shrunk variance, shaped like `like` (n, *event) (pooled: the same for every chain)."""
        if self.count < 2:
            raise ValueError(f"a variance needs at least 2 draws; the window held {self.count}")
        n = self.count
        variance = self._sum_squares / (n - 1)
        shrunk = n / (n + 5.0) * variance + 1e-3 * 5.0 / (n + 5.0)
        return shrunk.expand_as(like).clone()

    def state_dict(self) -> dict[str, object]:
        return {"count": self.count, "mean": self._mean, "sum_squares": self._sum_squares}

    def load_state_dict(self, saved: dict[str, object]) -> None:
        self.count, self._mean, self._sum_squares = int(saved["count"]), saved["mean"], saved["sum_squares"]
