"""Noise-contrastive estimation (Gutmann & Hyvärinen 2010) with a learned log-normaliser.

Model log p(x) = -E(x) - c with c learned; noise q = N(mean, covariance) fitted to the training data;
nu noise samples per data sample. With G(x) = log p(x) - log(nu q(x)), logistic regression of data
against noise gives

    loss = E_data softplus(-G(x)) + nu E_q softplus(G(y))

whose minimiser is the data density itself (normalised, so c converges to log Z of exp(-E)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.functional import softplus

from ebm_samplers.training._method import TrainingMethod, register_method


@register_method("nce")
@dataclass
class NoiseContrastiveEstimation(TrainingMethod):
    noise_ratio: int = 4
    noise_scale: float = 1.0
    default_iterations = 8000  # thin rings and sharp checkerboard edges need it; ~1 min on one CPU core

    def __post_init__(self) -> None:
        self.log_normaliser = nn.Parameter(torch.zeros(()))

    def setup(self, energy: nn.Module, data: Tensor, generator: torch.Generator) -> None:
        if isinstance(self.noise_ratio, bool) or not isinstance(self.noise_ratio, int) or self.noise_ratio < 1:
            raise ValueError(f"nce noise_ratio must be a positive integer; got {self.noise_ratio!r}")
        flat = data.reshape(data.shape[0], -1).double()
        self._shape = data.shape[1:]
        self._mean = flat.mean(0)
        covariance = torch.atleast_2d(torch.cov(flat.T)) * self.noise_scale**2
        covariance = covariance + 1e-6 * covariance.diagonal().mean() * torch.eye(flat.shape[1], dtype=flat.dtype)
        self._cholesky = torch.linalg.cholesky(covariance)
        self._log_norm = -0.5 * flat.shape[1] * math.log(2 * math.pi) - torch.log(self._cholesky.diagonal()).sum()
        self.log_normaliser.data = self.log_normaliser.data.to(device=data.device, dtype=data.dtype)

    def parameters(self) -> list[nn.Parameter]:
        return [self.log_normaliser]

    def loss(self, energy: nn.Module, batch: Tensor, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        n_noise = self.noise_ratio * batch.shape[0]
        z = torch.randn(n_noise, self._mean.shape[0], generator=generator, dtype=torch.float64, device=batch.device)
        noise = self._mean + z @ self._cholesky.T
        log_nu = math.log(self.noise_ratio)

        def logit(points_flat: Tensor) -> Tensor:
            points = points_flat.to(batch.dtype).reshape(-1, *self._shape)
            log_q = self._log_noise(points_flat.double()).to(batch.dtype)
            return -energy(points) - self.log_normaliser - log_q - log_nu

        data_term = softplus(-logit(batch.reshape(batch.shape[0], -1))).mean()
        noise_term = softplus(logit(noise)).mean()
        loss = data_term + self.noise_ratio * noise_term
        return loss, {"log_normaliser": self.log_normaliser.item()}

    def _log_noise(self, points: Tensor) -> Tensor:
        whitened = torch.linalg.solve_triangular(self._cholesky, (points - self._mean).T, upper=False)
        return self._log_norm - 0.5 * whitened.square().sum(0)

    def state_dict(self) -> dict:
        return {"log_normaliser": self.log_normaliser.detach().clone()}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.log_normaliser.copy_(state["log_normaliser"])
