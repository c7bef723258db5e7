"""Multivariate Gaussian N(mean, covariance): exact energy, gradient, log density, samples and moments.

E(x) = 1/2 (x - m)^T S^{-1} (x - m),   grad E(x) = S^{-1} (x - m),
log p(x) = -E(x) - 1/2 log det(2 pi S).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from energies.base import Energy


def as_float_tensor(value, dtype: torch.dtype | None = None) -> Tensor:
    """A floating tensor: numbers and lists are read in `dtype` (default: torch's default dtype), so
    no precision is lost on the way; floating tensors are converted to `dtype` when it is given."""
    if isinstance(value, Tensor) and value.is_floating_point():
        return value if dtype is None else value.to(dtype)
    return torch.as_tensor(value, dtype=dtype or torch.get_default_dtype())


def _as_matrix(value, dim: int, what: str) -> Tensor:
    """A (dim, dim) covariance from a scalar variance, a vector of variances or a full matrix."""
    value = as_float_tensor(value)
    if value.ndim == 0:
        return value * torch.eye(dim, dtype=value.dtype)
    if value.ndim == 1:
        if value.shape[0] != dim:
            raise ValueError(f"{what}: {value.shape[0]} variances given for a {dim}-dimensional mean")
        return torch.diag(value)
    if value.shape != (dim, dim):
        raise ValueError(f"{what}: covariance of shape {tuple(value.shape)}; expected ({dim}, {dim})")
    return value


def _cholesky(covariance: Tensor, what: str) -> Tensor:
    if not torch.allclose(covariance, covariance.transpose(-1, -2), atol=1e-6):
        raise ValueError(f"{what}: covariance must be symmetric")
    factor, info = torch.linalg.cholesky_ex(covariance)
    if (info != 0).any():
        raise ValueError(f"{what}: covariance must be positive definite")
    return factor


class Gaussian(Energy):
    """N(mean, covariance) in `d` dimensions; `covariance` is a matrix, a vector of variances or a scalar."""

    def __init__(self, mean, covariance=1.0):
        super().__init__()
        mean = as_float_tensor(mean)
        if mean.ndim != 1:
            raise ValueError(f"Gaussian: mean must be a vector of shape (d,); got shape {tuple(mean.shape)}")
        covariance = _as_matrix(as_float_tensor(covariance, mean.dtype), mean.shape[0], "Gaussian")
        factor = _cholesky(covariance, "Gaussian")
        self.register_buffer("_mean", mean)
        self.register_buffer("_covariance", covariance)
        self.register_buffer("_cholesky", factor)
        self.register_buffer("_precision", torch.cholesky_inverse(factor))
        self.event_shape = torch.Size(mean.shape)

    def forward(self, x: Tensor) -> Tensor:
        centred = x - self._mean.to(x)
        return 0.5 * (centred @ self._precision.to(x) * centred).sum(-1)

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        centred = x - self._mean.to(x)
        grad = centred @ self._precision.to(x)
        return 0.5 * (grad * centred).sum(-1), grad

    def log_prob(self, x: Tensor) -> Tensor:
        d = self._mean.shape[0]
        log_det = 2.0 * torch.log(torch.diagonal(self._cholesky)).sum()
        return -self(x) - 0.5 * (d * math.log(2 * math.pi) + log_det.to(x))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(n, self._mean.shape[0], generator=generator, dtype=self._mean.dtype)
        return self._mean + noise @ self._cholesky.T

    @property
    def mean(self) -> Tensor:
        return self._mean.clone()

    @property
    def covariance(self) -> Tensor:
        return self._covariance.clone()

    def perturbed(self, sigma: float) -> Gaussian:
        """p * N(0, sigma^2 I) = N(mean, covariance + sigma^2 I)."""
        eye = torch.eye(self._mean.shape[0], dtype=self._covariance.dtype)
        return Gaussian(self._mean, self._covariance + sigma**2 * eye)
