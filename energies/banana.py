"""The twisted Gaussian "banana" of Haario, Saksman & Tamminen (1999).

Take y ~ N(0, C) with C = diag(100, 1, ..., 1) and bend the second coordinate along the first:

    x_1 = y_1,   x_2 = y_2 - b (y_1^2 - 100),   x_i = y_i (i >= 3).

The map has unit Jacobian, so p(x) = N(phi_b(x); 0, C) with phi_b(x) = (x_1, x_2 + b (x_1^2 - 100), x_3, ...):

    E(x) = x_1^2 / 200 + (x_2 + b x_1^2 - 100 b)^2 / 2 + sum_{i>=3} x_i^2 / 2   (+ log normaliser)

With b = 0.03 (Haario's moderately twisted case): mean 0 (E[y_1^2] = 100), covariance
diag(100, 1 + 2 b^2 100^2, 1, ...) = diag(100, 19, 1, ...) (Var(y_1^2) = 2 * 100^2, odd moments vanish).
Exact samples come from the definition.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from energies.base import Energy

VARIANCE_OF_X1 = 100.0


class Banana(Energy):
    """Haario's twisted Gaussian in `dim` >= 2 dimensions with twist `b` (0.03 by default)."""

    def __init__(self, dim: int = 2, b: float = 0.03):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
            raise ValueError(f"Banana: dim must be an integer >= 2; got {dim!r}")
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b):
            raise ValueError(f"Banana: b must be a finite number; got {b!r}")
        self.dim = dim
        self.b = float(b)
        self.event_shape = torch.Size([dim])

    def _untwisted(self, x: Tensor) -> Tensor:
        """phi_b(x): the Gaussian coordinates y."""
        bent = x[:, 1] + self.b * (x[:, 0].square() - VARIANCE_OF_X1)
        return torch.cat([x[:, :1], bent[:, None], x[:, 2:]], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        y = self._untwisted(x)
        return y[:, 0].square() / (2 * VARIANCE_OF_X1) + 0.5 * y[:, 1:].square().sum(-1)

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = self._untwisted(x)
        value = y[:, 0].square() / (2 * VARIANCE_OF_X1) + 0.5 * y[:, 1:].square().sum(-1)
        grad = y.clone()
        grad[:, 0] = y[:, 0] / VARIANCE_OF_X1 + y[:, 1] * 2 * self.b * x[:, 0]
        return value, grad

    def log_prob(self, x: Tensor) -> Tensor:
        return -self(x) - 0.5 * self.dim * math.log(2 * math.pi) - 0.5 * math.log(VARIANCE_OF_X1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        y = torch.randn(n, self.dim, generator=generator)
        y[:, 0] = y[:, 0] * math.sqrt(VARIANCE_OF_X1)
        bent = y[:, 1] - self.b * (y[:, 0].square() - VARIANCE_OF_X1)
        return torch.cat([y[:, :1], bent[:, None], y[:, 2:]], dim=1)

    @property
    def mean(self) -> Tensor:
        return torch.zeros(self.dim)

    @property
    def covariance(self) -> Tensor:
        variances = torch.ones(self.dim)
        variances[0] = VARIANCE_OF_X1
        variances[1] = 1.0 + 2.0 * self.b**2 * VARIANCE_OF_X1**2
        return torch.diag(variances)
