"""Running variance and covariance (Welford 1962; Chan et al. 1979 for merging a batch) and Stan's metric.

A batch of b draws with mean m_b and sum of squared deviations S_b merges into the running
(count, mean, S) as

    delta = m_b - mean;  count' = count + b;  mean' = mean + delta b / count'
    S' = S + S_b + delta^2 count b / count'

and the variance is S / (count - 1). Per chain, each chain is its own stream (b = 1 per step); pooled,
one stream takes all chains' positions of a step as one batch. `WelfordChains` keeps each chain's stream (and,
for a covariance, the same recursion with outer products, delta^2 -> delta delta^T) so that any subset of the
chains can be pooled afterwards by the same merge rule; `metric` turns that into a metric (Stan's shrinkage).
"""

from __future__ import annotations

import math

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

    def update(self, position: Tensor) -> Tensor:
        """Merge `position` (one draw per chain, or a batch pooled); return delta, its (batch) mean's deviation
        from the running mean before the merge."""
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
        self._mean = self._mean + delta * batch / total
        self._sum_squares = self._sum_squares + batch_squares + delta.square() * (self.count * batch / total)
        self.count = total
        return delta

    def mean(self) -> Tensor:
        """The mean: (n, *event) per chain, (*event) pooled."""
        return self._mean

    def sum_squares(self) -> Tensor:
        """S, the sum of squared deviations from the mean: (n, *event) per chain, (*event) pooled."""
        return self._sum_squares

    def variance(self) -> Tensor:
        """The sample variance: (n, *event) per chain, (*event) pooled."""
        if self.count < 2:
            raise ValueError(f"a variance needs at least 2 draws; the window held {self.count}")
        return self._sum_squares / (self.count - 1)

    def state_dict(self) -> dict[str, object]:
        return {"count": self.count, "mean": self._mean, "sum_squares": self._sum_squares}

    def load_state_dict(self, saved: dict[str, object]) -> None:
        self.count, self._mean, self._sum_squares = int(saved["count"]), saved["mean"], saved["sum_squares"]


class WelfordChains:
    """Each chain's running mean and sum of squared deviations over a window (a per-chain `WelfordVariance`), and
    the chains' within-chain scatter matrices (dense only), so that the pooled (co)variance of any subset of the
    chains can be formed at the end.

    Positions `(n, *event)` are flattened to d entries and accumulated in float64 (the sum of outer products of
    thousands of draws loses the small eigenvalues in float32). The scatter matrices are kept per chain when
    n * d^2 <= `SCATTER_ENTRIES`, else summed over blocks of consecutive chains (memory blocks * d^2), so that a
    subset can only leave out whole blocks (`block_mask`). Per step the products cost n * d^2, as for one pooled
    matrix, and the update writes the blocks * d^2 entries: the budget keeps that write near the product's cost
    (under 1 ms per step on one CPU core at the budget; 100 chains at d = 300 keep blocks of 10 chains).
    """

    #: the most float64 entries kept for the scatter matrices (8 MiB)
    SCATTER_ENTRIES = 2**20

    def __init__(self, *, dense: bool) -> None:
        self.dense = dense
        self.reset()

    def reset(self) -> None:
        self._moments = WelfordVariance(per_chain=True)
        self._scatter: Tensor | None = None

    @property
    def count(self) -> int:
        """Draws per chain in the window so far."""
        return self._moments.count

    def _chains_per_block(self, n: int, d: int) -> int:
        return max(1, math.ceil(n / max(1, self.SCATTER_ENTRIES // (d * d))))

    def update(self, position: Tensor) -> None:
        rows = position.detach().reshape(position.shape[0], -1).to(torch.float64)
        delta = self._moments.update(rows)
        if self.dense:
            n, d = rows.shape
            if self._scatter is None:
                self._scatter = rows.new_zeros(math.ceil(n / self._chains_per_block(n, d)), d, d)
            # Welford's x - mean_new = (1 - 1/count) delta, so the outer product stays symmetric
            shrink = (self.count - 1) / self.count
            blocks = self._scatter.shape[0]
            padded = torch.cat([delta, delta.new_zeros(blocks * math.ceil(n / blocks) - n, d)])
            padded = padded.reshape(blocks, -1, d)
            self._scatter.baddbmm_(padded.transpose(1, 2), padded, alpha=shrink)  # in place: one pass over it

    def means(self) -> Tensor:
        """The chains' window means (n, d), float64."""
        return self._moments.mean()

    def variances(self) -> Tensor:
        """The chains' own sample variances (n, d), float64."""
        return self._moments.variance()

    def block_mask(self, keep: Tensor) -> Tensor:
        """`keep` (n,) narrowed to whole blocks of the scatter matrices: a block stays only if all its chains do."""
        if not self.dense or self._scatter.shape[0] == keep.shape[0]:
            return keep
        blocks = self._scatter.shape[0]
        padded = torch.cat([keep, keep.new_ones(blocks * math.ceil(keep.shape[0] / blocks) - keep.shape[0])])
        return padded.reshape(blocks, -1).all(1).repeat_interleave(padded.shape[0] // blocks)[: keep.shape[0]]

    def pooled(self, keep: Tensor) -> Tensor:
        """The sample variance (d,) or covariance (d, d) of the draws of the chains where `keep` (n,) is True, as
        one sample: within-chain sums plus count * the spread of the chains' means about their mean."""
        self.variances()  # checks the window held 2 draws
        means = self.means()[keep]
        centred = means - means.mean(0)
        draws = self.count * means.shape[0]
        if not self.dense:
            within = self._moments.sum_squares()[keep].sum(0)
            return (within + self.count * centred.square().sum(0)) / (draws - 1)
        blocks = self._scatter.shape[0]
        kept_blocks = keep[:: math.ceil(keep.shape[0] / blocks)]  # `keep` is whole blocks (`block_mask`)
        within = self._scatter[kept_blocks].sum(0)
        return (within + self.count * centred.T @ centred) / (draws - 1)

    def state_dict(self) -> dict[str, object]:
        # the scatter is updated in place: a copy, so a saved state does not change with the run
        scatter = None if self._scatter is None else self._scatter.clone()
        return {"moments": self._moments.state_dict(), "scatter": scatter}

    def load_state_dict(self, saved: dict[str, object]) -> None:
        self._moments.load_state_dict(saved["moments"])
        self._scatter = None if saved["scatter"] is None else saved["scatter"].clone()
