"""Gaussian mixture sum_k w_k N(m_k, S_k): exact energy, gradient, log density, samples and moments.

E(x) = -log sum_k w_k N(x; m_k, S_k)   (normalised: E = -log p exactly)
grad E(x) = sum_k r_k(x) S_k^{-1} (x - m_k),   r_k(x) = w_k N(x; m_k, S_k) / p(x) (responsibilities).

Computed as E = u* - log sum_k exp(u* - u_k) with u_k = -log(w_k N(x; m_k, S_k)) and u* = min_k u_k, which
stays finite far from every mode. Diagonal S_k whiten elementwise (O(d) per point); others by a matrix product.

`GaussianMixture()` is the project's default target: equal weights, means (-2, -2) and (2, 2),
covariance 0.5 I. Its modes are separated by an energy barrier of 8 - log 2 = 7.31 nats (E(0) - E(mode), to 1e-4).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from energies.base import Energy
from energies.gaussian import _check_variances, _cholesky, _diagonal_of, _like, as_float_tensor


class GaussianMixture(Energy):
    """Mixture of `k` Gaussians in `d` dimensions; defaults to the two-mode 2-D target.

    `covariances` is one shared variance, `(k,)` per-component variances, a shared `(d, d)` matrix or
    `(k, d, d)` matrices. When every component's covariance is diagonal (the scalar and `(k,)` forms, or
    matrices whose off-diagonal entries are all zero) the whitening S_k^{-1}(x - m_k) is elementwise.
    """

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
        covariances = as_float_tensor(0.5 if covariances is None else covariances, means.dtype)
        variances = None  # (k, d) when every component is diagonal
        if covariances.ndim == 0:
            variances = covariances.expand(k, d).clone()
        elif covariances.ndim == 1 and covariances.shape[0] == k:
            variances = covariances[:, None].expand(k, d).clone()
        else:
            if covariances.ndim == 2 and covariances.shape == (d, d):
                covariances = covariances.expand(k, d, d)
            if covariances.shape != (k, d, d):
                raise ValueError(
                    f"GaussianMixture: covariances of shape {tuple(covariances.shape)}; expected a scalar, "
                    f"({k},) per-component variances, a shared ({d}, {d}) matrix or ({k}, {d}, {d})"
                )
            variances = _diagonal_of(covariances)
        self.register_buffer("weights", weights)
        self.register_buffer("means", means)
        if variances is not None:
            for i, component in enumerate(variances):
                _check_variances(component, f"GaussianMixture component {i}")
            self._diagonal = True
            self.register_buffer("_variances", variances)
            self.register_buffer("_precisions", (1.0 / variances)[:, None, :])  # (k, 1, d) broadcasts over points
            log_dets = torch.log(variances).sum(-1)
        else:
            covariances = covariances.clone()
            factors = torch.stack([_cholesky(c, f"GaussianMixture component {i}") for i, c in enumerate(covariances)])
            self._diagonal = False
            self.register_buffer("_covariances", covariances)
            self.register_buffer("_cholesky", factors)
            self.register_buffer("_precisions", torch.cholesky_inverse(factors))  # (k, d, d)
            log_dets = 2.0 * torch.log(torch.diagonal(factors, dim1=-2, dim2=-1)).sum(-1)
        # component k's energy at its own mean, -log(w_k) + 1/2 log det(2 pi S_k), shaped (k, 1, 1) like the energies
        offsets = 0.5 * (d * math.log(2 * math.pi) + log_dets) - torch.log(weights)
        self.register_buffer("_offsets", offsets[:, None, None])
        self.event_shape = torch.Size([d])

    def _component_energies(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """u_k(x) = -log(w_k N(x; m_k, S_k)) of shape (k, n, 1) and S_k^{-1}(x - m_k) of shape (k, n, d).

        The component axis leads because reductions over an outer axis are several times cheaper than
        over a short inner one; at 1,000 points in 2-D every tensor op's dispatch is the cost.
        """
        centred = x - _like(self.means, x).unsqueeze(1)
        precisions = _like(self._precisions, x)
        whitened = centred * precisions if self._diagonal else torch.bmm(centred, precisions)
        energies = torch.add(_like(self._offsets, x), (centred * whitened).sum(-1, keepdim=True), alpha=0.5)
        return energies, whitened

    def forward(self, x: Tensor) -> Tensor:
        energy, _, _ = _soft_minimum(self._component_energies(x)[0])
        return energy.squeeze(-1)

    def log_prob(self, x: Tensor) -> Tensor:
        return -self(x)

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        energies, whitened = self._component_energies(x)
        energy, terms, total = _soft_minimum(energies)
        return energy.squeeze(-1), (terms / total * whitened).sum(0)

    def responsibilities(self, x: Tensor) -> Tensor:
        """Posterior component probabilities r_k(x), shape (n, k)."""
        _, terms, total = _soft_minimum(self._component_energies(x)[0])
        return (terms / total).squeeze(-1).T.contiguous()

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        components = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        means = self.means
        noise = torch.randn(n, means.shape[1], generator=generator, dtype=means.dtype, device=means.device)
        if self._diagonal:
            return means[components] + self._variances[components].sqrt() * noise
        return means[components] + torch.einsum("nde,ne->nd", self._cholesky[components], noise)

    @property
    def covariances(self) -> Tensor:
        """The components' covariances, shape (k, d, d)."""
        return torch.diag_embed(self._variances) if self._diagonal else self._covariances.clone()

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
        """p * N(0, sigma^2 I): every component's covariance grows by sigma^2 I (diagonal ones stay diagonal)."""
        if not self._diagonal:
            eye = torch.eye(self.means.shape[1], dtype=self.means.dtype, device=self.means.device)
            return GaussianMixture(self.weights, self.means, self._covariances + sigma**2 * eye)
        variances = self._variances + sigma**2
        if (variances == variances[:, :1]).all():  # isotropic components: the (k,) form needs no (k, d, d)
            return GaussianMixture(self.weights, self.means, variances[:, 0].clone())
        return GaussianMixture(self.weights, self.means, torch.diag_embed(variances))


def _soft_minimum(energies: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """-log sum_k exp(-u_k) from component energies u of shape (k, n, 1), with the terms exp(min u - u_k)
    and their sum (the responsibilities are terms / sum). Shifting by min_k u_k keeps the exponentials
    finite far from every mode (u ~ 1e6); the one exp serves the energy and the responsibilities."""
    lowest = energies.amin(0)
    terms = torch.exp(lowest - energies)
    total = terms.sum(0)
    return lowest - total.log(), terms, total
