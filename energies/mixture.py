"""Gaussian mixture sum_k w_k N(m_k, S_k): exact energy, gradient, log density, samples and moments.

E(x) = -log sum_k w_k N(x; m_k, S_k)   (normalised: E = -log p exactly)
grad E(x) = sum_k r_k(x) S_k^{-1} (x - m_k),   r_k(x) = w_k N(x; m_k, S_k) / p(x) (responsibilities).

`GaussianMixture()` is the project's default target: equal weights, means (-2, -2) and (2, 2),
covariance 0.5 I. Its modes are separated by an energy barrier of about 8 nats.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from energies.base import Energy
from energies.gaussian import _cholesky, as_float_tensor


class GaussianMixture(Energy):
    """Mixture of `k` Gaussians in `d` dimensions; defaults to the two-mode 2-D target."""

    def __init__(self, weights=None, means=None, covariances=None):
        super().__init__()
        if means is None:
            means = [[-2.0, -2.0], [2.0, 2.0]]
        means = as_float_tensor(means)
        if means.ndim != 2:
            raise ValueError(f"GaussianMixture: means must have shape (k, d); got {tuple(means.shape)}")
        k, d = means.shape
        weights = as_float_tensor(torch.full((k,), 1.0 / k) if weights is None else weights, means.dtype)
        if weights.shape != (k,) or (weights <= 0).any() or not math.isclose(float(weights.sum()), 1.0, abs_tol=1e-6):
            raise ValueError(
                f"GaussianMixture: weights must be {k} positive numbers summing to 1; got {weights.tolist()}"
            )
        if covariances is None:
            covariances = 0.5
        covariances = as_float_tensor(covariances, means.dtype)
        # accepted forms: one shared variance, one variance per component, one shared (d, d) matrix, or (k, d, d)
        eye = torch.eye(d, dtype=means.dtype)
        if covariances.ndim == 0:
            covariances = covariances * eye.expand(k, d, d)
        elif covariances.ndim == 1 and covariances.shape[0] == k:
            covariances = covariances[:, None, None] * eye
        elif covariances.ndim == 2 and covariances.shape == (d, d):
            covariances = covariances.expand(k, d, d).clone()
        if covariances.shape != (k, d, d):
            raise ValueError(
                f"GaussianMixture: covariances of shape {tuple(covariances.shape)}; expected a scalar, "
                f"({k},) per-component variances, a shared ({d}, {d}) matrix or ({k}, {d}, {d})"
            )
        factors = torch.stack([_cholesky(c, f"GaussianMixture component {i}") for i, c in enumerate(covariances)])
        self.register_buffer("weights", weights)
        self.register_buffer("means", means)
        self.register_buffer("covariances", covariances)
        self.register_buffer("_cholesky", factors)
        self.register_buffer("_precisions", torch.cholesky_inverse(factors))
        log_dets = 2.0 * torch.log(torch.diagonal(factors, dim1=-2, dim2=-1)).sum(-1)
        self.register_buffer("_log_norm", torch.log(weights) - 0.5 * (d * math.log(2 * math.pi) + log_dets))
        self.event_shape = torch.Size([d])

    def _component_terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per-component log(w_k N(x; m_k, S_k)) of shape (n, k) and S_k^{-1}(x - m_k) of shape (n, k, d)."""
        centred = x[:, None, :] - self.means.to(x)  # (n, k, d)
        whitened = torch.einsum("kde,nke->nkd", self._precisions.to(x), centred)
        log_terms = self._log_norm.to(x) - 0.5 * (centred * whitened).sum(-1)
        return log_terms, whitened

    def forward(self, x: Tensor) -> Tensor:
        return -self.log_prob(x)

    def log_prob(self, x: Tensor) -> Tensor:
        log_terms, _ = self._component_terms(x)
        return torch.logsumexp(log_terms, dim=-1)

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        log_terms, whitened = self._component_terms(x)
        log_p = torch.logsumexp(log_terms, dim=-1)
        responsibilities = torch.exp(log_terms - log_p[:, None])
        return -log_p, (responsibilities[..., None] * whitened).sum(1)

    def responsibilities(self, x: Tensor) -> Tensor:
        """Posterior component probabilities r_k(x), shape (n, k)."""
        log_terms, _ = self._component_terms(x)
        return torch.softmax(log_terms, dim=-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        components = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.means.shape[1], generator=generator, dtype=self.means.dtype)
        return self.means[components] + torch.einsum("nde,ne->nd", self._cholesky[components], noise)

    @property
    def mean(self) -> Tensor:
        return self.weights @ self.means

    @property
    def covariance(self) -> Tensor:
        mean = self.mean
        second_moment = torch.einsum("k,kde->de", self.weights, self.covariances) + torch.einsum(
            "k,kd,ke->de", self.weights, self.means, self.means
        )
        return second_moment - torch.outer(mean, mean)

    def perturbed(self, sigma: float) -> GaussianMixture:
        """p * N(0, sigma^2 I): every component's covariance grows by sigma^2 I."""
        eye = torch.eye(self.means.shape[1], dtype=self.means.dtype)
        return GaussianMixture(self.weights, self.means, self.covariances + sigma**2 * eye)
