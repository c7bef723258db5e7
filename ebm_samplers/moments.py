"""Running moments: `sample(..., keep="moments")` keeps per-chain means and variances instead of draws.

Welford's update (Welford 1962) over the kept draws x_1, x_2, ... of each chain, per coordinate:

    n <- n + 1,   delta = x - mean,   mean <- mean + delta / n,   M2 <- M2 + delta * (x - mean)

and variance = M2 / (n - 1). It is numerically stable over millions of draws (no difference of large
sums) and is accumulated in float64 whatever the sampling dtype. Every stat (acceptance rate, potential
energy, ...) keeps its per-chain running mean. Memory is O(chains x event), independent of the run length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ebm_samplers.kernels.base import Info, State
from ebm_samplers.trace import kept_stats


@dataclass
class Moments:
    """Per-chain running moments of the kept draws: `mean`, `variance` `(chain, *event)`, `stats_mean` `(chain,)`."""

    count: int
    mean: Tensor
    variance: Tensor
    stats_mean: dict[str, Tensor] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def n_chains(self) -> int:
        return self.mean.shape[0]

    @property
    def event_shape(self) -> torch.Size:
        return self.mean.shape[1:]

    def __repr__(self) -> str:
        return (
            f"Moments({self.n_chains} chains x {self.count} draws, event_shape={tuple(self.event_shape)}, "
            f"stats={sorted(self.stats_mean)}, sampler={self.attrs.get('sampler', '?')!r})"
        )


class MomentsRecorder:
    """Accumulates `Moments` of every `thin`-th post-warm-up state (the run loop's recorder interface)."""

    def __init__(self, n_chains: int, thin: int):
        self.n_chains = n_chains
        self.thin = thin
        self.count = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None
        self.stats_sum: dict[str, Tensor] = {}
        self._scratch: tuple[Tensor, Tensor, Tensor] | None = None

    def record(self, step: int, state: State, info: Info) -> None:
        if (step + 1) % self.thin:
            return
        position = state.position.detach()
        if self.mean is None:
            self.mean = torch.zeros_like(position, dtype=torch.float64)
            self.m2 = torch.zeros_like(self.mean)
        if self._scratch is None:  # three buffers the update writes into, instead of new tensors every draw
            self._scratch = tuple(torch.empty_like(self.mean) for _ in range(3))
        x, delta, term = self._scratch
        self.count += 1
        x.copy_(position)
        torch.sub(x, self.mean, out=delta)
        self.mean.add_(torch.div(delta, self.count, out=term))
        self.m2.add_(torch.mul(delta, x.sub_(self.mean), out=term))
        for name, value in kept_stats(state, info).items():
            value = value.detach()
            if name in self.stats_sum:
                self.stats_sum[name].add_(value)
            else:
                self.stats_sum[name] = value.to(torch.float64, copy=True)

    def flush(self) -> None:
        """Nothing is buffered."""

    def result(self, attrs: dict[str, Any]) -> Moments:
        variance = self.m2 / (self.count - 1) if self.count > 1 else torch.full_like(self.m2, float("nan"))
        return Moments(
            count=self.count,
            mean=self.mean.cpu(),
            variance=variance.cpu(),
            stats_mean={name: (total / self.count).cpu() for name, total in self.stats_sum.items()},
            attrs=attrs,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2, "stats_sum": dict(self.stats_sum)}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.count = saved["count"]
        self.mean, self.m2, self.stats_sum = saved["mean"], saved["m2"], dict(saved["stats_sum"])
