"""Neal's funnel (Neal 2003): a hierarchical shape whose scale changes by orders of magnitude.

    v ~ N(0, 3^2),   x_i | v ~ N(0, e^v),  i = 1..d-1

E(v, x) = v^2 / 18 + sum_i (x_i^2 e^{-v} / 2 + v / 2)   (normalised: E = -log p - d/2 log 2 pi - log 3).

Ground truth: mean 0; Var(v) = 9; Var(x_i) = E[e^v] = e^{9/2}; all covariances 0. Exact samples come
from the definition. The neck (v << 0) needs steps far smaller than the mouth (v >> 0), so no single
step size fits, and samplers typically under-explore the neck: a stress test for adaptation and for
divergence reporting.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from energies.base import Energy

SCALE_OF_V = 3.0


class Funnel(Energy):
    """Neal's funnel in `dim` dimensions (coordinate 0 is the log-variance v); 10 by default."""

    def __init__(self, dim: int = 10):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
            raise ValueError(f"Funnel: dim must be an integer >= 2; got {dim!r}")
        self.dim = dim
        self.event_shape = torch.Size([dim])

    def forward(self, x: Tensor) -> Tensor:
        v, rest = x[:, 0], x[:, 1:]
        return v.square() / (2 * SCALE_OF_V**2) + 0.5 * rest.square().sum(-1) * torch.exp(-v) + 0.5 * (self.dim - 1) * v

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        v, rest = x[:, 0], x[:, 1:]
        precision = torch.exp(-v)
        half_squares = 0.5 * rest.square().sum(-1)
        value = v.square() / (2 * SCALE_OF_V**2) + half_squares * precision + 0.5 * (self.dim - 1) * v
        grad_v = v / SCALE_OF_V**2 - half_squares * precision + 0.5 * (self.dim - 1)
        return value, torch.cat([grad_v[:, None], rest * precision[:, None]], dim=1)

    def log_prob(self, x: Tensor) -> Tensor:
        return -self(x) - 0.5 * self.dim * math.log(2 * math.pi) - math.log(SCALE_OF_V)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(n, self.dim, generator=generator)
        v = SCALE_OF_V * noise[:, :1]
        return torch.cat([v, noise[:, 1:] * torch.exp(0.5 * v)], dim=1)

    @property
    def mean(self) -> Tensor:
        return torch.zeros(self.dim)

    @property
    def covariance(self) -> Tensor:
        variances = torch.full((self.dim,), math.exp(SCALE_OF_V**2 / 2))
        variances[0] = SCALE_OF_V**2
        return torch.diag(variances)
