"""Multivariate Gaussian N(mean, covariance): exact energy, gradient, log density, samples and moments.

E(x) = 1/2 (x - m)^T S^{-1} (x - m),   grad E(x) = S^{-1} (x - m),
log p(x) = -E(x) - 1/2 log det(2 pi S).

A diagonal S (given as a scalar, a vector of variances, or a matrix whose off-diagonal entries are all
zero) is stored as its per-coordinate precisions 1 / S_ii, and every method works elementwise: O(d) per
point instead of the dense path's O(d^2) matrix product.
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


def _like(buffer: Tensor, x: Tensor) -> Tensor:
    """`buffer` in the dtype and on the device of `x`. The check runs in Python because `Tensor.to`
    costs a dispatch even when it returns its input, and at small batches dispatches are the cost."""
    if buffer.dtype is x.dtype and buffer.device == x.device:
        return buffer
    return buffer.to(x)


def _diagonal_of(covariance: Tensor) -> Tensor | None:
    """The diagonal of a (..., d, d) covariance whose off-diagonal entries are all zero, else None."""
    diagonal = torch.diagonal(covariance, dim1=-2, dim2=-1)
    return diagonal.clone() if torch.equal(covariance, torch.diag_embed(diagonal)) else None


def _check_variances(variances: Tensor, what: str) -> None:
    bad = ~(torch.isfinite(variances) & (variances > 0))
    if bad.any():
        index = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"{what}: variances must be finite and positive (the covariance must be positive definite); "
            f"got {variances[index].item()} at index {index[0] if len(index) == 1 else index}"
        )


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
        d = mean.shape[0]
        covariance = as_float_tensor(covariance, mean.dtype)
        variances = None
        if covariance.ndim == 0:
            variances = covariance.expand(d).clone()
        elif covariance.ndim == 1:
            if covariance.shape[0] != d:
                raise ValueError(f"Gaussian: {covariance.shape[0]} variances given for a {d}-dimensional mean")
            variances = covariance.clone()
        elif covariance.shape != (d, d):
            raise ValueError(f"Gaussian: covariance of shape {tuple(covariance.shape)}; expected ({d}, {d})")
        else:
            variances = _diagonal_of(covariance)
        self.register_buffer("_mean", mean)
        if variances is not None:
            _check_variances(variances, "Gaussian")
            self._diagonal = True
            self.register_buffer("_variances", variances)
            self.register_buffer("_precision", 1.0 / variances)  # (d,): S^{-1} is elementwise
            log_det = torch.log(variances).sum()
        else:
            factor = _cholesky(covariance, "Gaussian")
            self._diagonal = False
            self.register_buffer("_covariance", covariance)
            self.register_buffer("_cholesky", factor)
            self.register_buffer("_precision", torch.cholesky_inverse(factor))  # (d, d)
            log_det = 2.0 * torch.log(torch.diagonal(factor)).sum()
        self.register_buffer("_log_normaliser", 0.5 * (d * math.log(2 * math.pi) + log_det))
        self.event_shape = torch.Size(mean.shape)

    def _centred_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        centred = x - _like(self._mean, x)
        precision = _like(self._precision, x)
        return centred, (centred * precision if self._diagonal else centred @ precision)

    def forward(self, x: Tensor) -> Tensor:
        centred, grad = self._centred_and_grad(x)
        return 0.5 * (grad * centred).sum(-1)

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        centred, grad = self._centred_and_grad(x)
        return 0.5 * (grad * centred).sum(-1), grad

    def log_prob(self, x: Tensor) -> Tensor:
        return -self(x) - _like(self._log_normaliser, x)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        mean = self._mean
        noise = torch.randn(n, mean.shape[0], generator=generator, dtype=mean.dtype, device=mean.device)
        if self._diagonal:
            return mean + noise * self._variances.sqrt()
        return mean + noise @ self._cholesky.T

    @property
    def mean(self) -> Tensor:
        return self._mean.clone()

    @property
    def covariance(self) -> Tensor:
        return torch.diag(self._variances) if self._diagonal else self._covariance.clone()

    def perturbed(self, sigma: float) -> Gaussian:
        """p * N(0, sigma^2 I) = N(mean, covariance + sigma^2 I); a diagonal covariance stays diagonal."""
        if self._diagonal:
            return Gaussian(self._mean, self._variances + sigma**2)
        eye = torch.eye(self._mean.shape[0], dtype=self._covariance.dtype, device=self._covariance.device)
        return Gaussian(self._mean, self._covariance + sigma**2 * eye)
